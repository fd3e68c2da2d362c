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
# BPF programs (bpf/, built by crates/synwall-bpf): clang 19 targets BPF; bpftool for debugging.
want clang-19 clang-19
want bpftool bpftool
# Headers and libraries without a command: the uapi headers the BPF C includes, and what
# libbpf-sys's vendored libbpf build links against.
for pkg in linux-libc-dev libelf-dev zlib1g-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need_pkgs+=("$pkg")
done
want ip iproute2
want nsenter util-linux
want ethtool ethtool
# The end-to-end tests' policy routing (fwmark on SYNs) and SYN counters in a namespace.
want nft nftables
# The lab benchmarks (synwall-lab, crates/synwall-bench): nginx as the backend, trafgen
# (netsniff-ng) for spoofed SYN floods, hping3, wrk and curl as clients, iptables for the
# SYNPROXY baseline (iptables-nft turns -j SYNPROXY into nft's synproxy, the kernel's
# nf_synproxy), chrt/taskset (util-linux) to pin the data path.
want nginx nginx-light
want trafgen netsniff-ng
want hping3 hping3
want wrk wrk
want curl curl
want iptables iptables
want chrt util-linux
# The anycast lab (synwall-lab bgp, crates/synwall-bench/tests/bgp.rs): BIRD 2 on the router,
# ExaBGP with its healthcheck on the edges (dist/bgp/), which asks /healthz with curl.
want bird bird2
want exabgp exabgp
# The man-page and unit-file checks (groff renders the pages, systemd-analyze verifies the unit),
# setpriv (util-linux) runs the daemon with exactly the unit's capabilities.
want groff groff-base
want systemd-analyze systemd
want setpriv util-linux
# The benchmark charts (docs/bench/*.svg): crates/synwall-bench/tests/charts.rs renders each with
# rsvg-convert, as a reader's viewer would.
want rsvg-convert librsvg2-bin

if ((${#need_pkgs[@]})); then
  echo "setup: installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The lab starts its own nginx in a namespace: keep the package from starting a system
  # service (policy-rc.d 101 = "not allowed"), unless the machine already has a policy.
  own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  if ((own_policy)); then rm -f /usr/sbin/policy-rc.d; fi
fi

# bpffs, for pinning and bpftool (the tests themselves pin nothing).
mountpoint -q /sys/fs/bpf 2>/dev/null || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true

command -v cargo >/dev/null || { echo "setup: cargo not found (install Rust with rustup)" >&2; exit 1; }
rustup component add clippy rustfmt >/dev/null 2>&1 || true
