#!/usr/bin/env bash
# The main job on its embedded default: build synwall and the lab binary, then run a netns lab
# (client | edge | backend) with the real XDP edge and tc backend (`synwall run`), real TCP clients
# and a small spoofed SYN flood, and print the negotiated options and the counters. Needs root;
# everything is torn down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# synwall-lab runs the synwall binary that sits beside it.
cargo build --release --quiet -p synwall -p synwall-bench --bin synwall --bin synwall-lab
exec ./target/release/synwall-lab demo
