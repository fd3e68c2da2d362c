#!/usr/bin/env bash
# The main job on its embedded default: build synwall, then run a netns lab (client | edge |
# backend) with the real XDP edge and tc backend, real TCP clients and a small spoofed SYN flood,
# and print the negotiated options and the counters. Needs root; everything is torn down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet -p synwall
exec ./target/release/synwall demo
