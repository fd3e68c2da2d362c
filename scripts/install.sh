#!/usr/bin/env bash
# Install synwall as a service on this machine (run as root):
#   the binary, /etc/synwall/synwall.toml (the example, only if absent), a fresh master secret
#   (only if absent), the systemd unit, man pages and shell completions.
# Never overwrites a config or a secret that exists: what you had stays as it was.
#
#   bash scripts/install.sh                 # build in release mode and install under /usr/local
#   PREFIX=/usr DESTDIR=/tmp/stage SYNWALL_BIN=target/release/synwall bash scripts/install.sh
#
# Then edit /etc/synwall/synwall.toml, check it (`synwall check-config /etc/synwall/synwall.toml`)
# and start it: `systemctl daemon-reload && systemctl enable --now synwall`.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
ETC=${ETC:-/etc/synwall}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}

if [[ -z "${SYNWALL_BIN:-}" ]]; then
  bash scripts/setup.sh
  cargo build --release -p synwall
  SYNWALL_BIN=target/release/synwall
fi

bin="$DESTDIR$PREFIX/bin/synwall"
install -D -m 0755 "$SYNWALL_BIN" "$bin"
install -d -m 0755 "$DESTDIR$ETC"
if [[ -e "$DESTDIR$ETC/synwall.toml" ]]; then
  echo "install: keeping the existing $ETC/synwall.toml (the new example is $ETC/synwall.toml.example)"
  install -m 0644 dist/synwall.toml "$DESTDIR$ETC/synwall.toml.example"
else
  install -m 0644 dist/synwall.toml "$DESTDIR$ETC/synwall.toml"
fi
if [[ -e "$DESTDIR$ETC/secret" ]]; then
  echo "install: keeping the existing master secret $ETC/secret"
else
  # Every node of a deployment needs the SAME secret: copy this file to the others.
  (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$DESTDIR$ETC/secret" && echo >> "$DESTDIR$ETC/secret")
  echo "install: made a new master secret $ETC/secret (copy it to every node of the deployment)"
fi
# The unit names the installed binary.
install -d -m 0755 "$DESTDIR$UNIT_DIR"
sed "s|/usr/bin/synwall|$PREFIX/bin/synwall|g" dist/synwall.service > "$DESTDIR$UNIT_DIR/synwall.service"
chmod 0644 "$DESTDIR$UNIT_DIR/synwall.service"
install -d -m 0755 "$DESTDIR$PREFIX/share/man/man1"
"$bin" man --out "$DESTDIR$PREFIX/share/man/man1" >/dev/null
install -d -m 0755 "$DESTDIR$PREFIX/share/bash-completion/completions" \
  "$DESTDIR$PREFIX/share/zsh/site-functions" "$DESTDIR$PREFIX/share/fish/vendor_completions.d"
"$bin" completions bash > "$DESTDIR$PREFIX/share/bash-completion/completions/synwall"
"$bin" completions zsh > "$DESTDIR$PREFIX/share/zsh/site-functions/_synwall"
"$bin" completions fish > "$DESTDIR$PREFIX/share/fish/vendor_completions.d/synwall.fish"
echo "install: synwall $("$bin" --version | cut -d' ' -f2) installed in $DESTDIR$PREFIX"
