#!/usr/bin/env bash
# The main job on its embedded default: build synwall and show the cookie core at work
# (vectors, one SYN answered and its ACK validated, a forgery measurement).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet -p synwall
exec ./target/release/synwall demo
