#!/usr/bin/env bash
# The test command: set up a fresh machine, then format check, clippy and every test.
# Ends with one line "N passed, M failed" summing every test binary (cargo's own last line is
# whichever binary ran last, often one with no tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -d ../shared/vectors ] || { echo "test: ../shared/vectors is missing (shared/ must sit beside the repo)" >&2; exit 1; }
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
