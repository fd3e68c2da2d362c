#!/usr/bin/env bash
# Install what synwall needs on a fresh Debian 12 machine (idempotent; run as root).
# Rust comes from the machine's rustup toolchain; everything else from Debian's packages.
set -euo pipefail

need_pkgs=()
want() { # want COMMAND PACKAGE: install PACKAGE when COMMAND is missing
  command -v "$1" >/dev/null 2>&1 || need_pkgs+=("$2")
}
want python3 python3
want pkg-config pkg-config
want make make
want cc gcc
want ip iproute2
want nsenter util-linux
want ethtool ethtool

if ((${#need_pkgs[@]})); then
  echo "setup: installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found (install Rust with rustup)" >&2; exit 1; }
rustup component add clippy rustfmt >/dev/null 2>&1 || true
