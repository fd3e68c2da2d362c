#!/usr/bin/env bash
# The test command: set up a fresh machine, then format check, clippy and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -d ../shared/vectors ] || { echo "test: ../shared/vectors is missing (shared/ must sit beside the repo)" >&2; exit 1; }
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
