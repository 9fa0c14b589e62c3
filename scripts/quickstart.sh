#!/usr/bin/env bash
# Set up mirrorctl and run its main job on the embedded default, end to end, for profiles/example.toml:
#   outside: init (upstream from your pip's own settings) -> key generate -> lock -> snapshot -> bundle export
#   inside:  bundle verify -> import -> serve -> workspace-config, then pip installs from the mirror
# Everything is written under .quickstart/ (or $QUICKSTART_DIR). The mirror keeps serving until Ctrl-C;
# set QUICKSTART_SERVE=0 to stop it at the end instead.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
EXTRAS="" bash scripts/setup.sh
M="$REPO/.venv/bin/mirrorctl"
W=${QUICKSTART_DIR:-$REPO/.quickstart}
PORT=${QUICKSTART_PORT:-8080}
rm -rf "$W"
mkdir -p "$W/outside/profiles" "$W/inside"
cp profiles/example.toml "$W/outside/profiles/"

step() { printf '\n== %s\n' "$*"; }

step "outside: settings, key, lock, snapshot, export"
cd "$W/outside"
"$M" init
mkdir -p keys && "$M" key generate --out keys/mirrorctl.key
"$M" lock example
"$M" snapshot example
"$M" bundle export --out "$W/example.bundle" example

step "inside: verify, import"
cd "$W/inside"
mkdir -p keys && cp "$W/outside/keys/mirrorctl.key.pub" keys/trusted.pub
cat > mirrorctl.toml <<TOML
# The inside: no upstreams at all; only bundles signed by a trusted key are imported.
[store]
path = "store"

[trust]
keys = ["keys/trusted.pub"]

[serve]
host = "127.0.0.1"
port = $PORT
TOML
"$M" bundle verify "$W/example.bundle"
"$M" import "$W/example.bundle"

step "inside: serve and workspace config"
"$M" serve > serve.log 2>&1 &
SERVE_PID=$!
trap 'kill $SERVE_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 $SERVE_PID 2>/dev/null || { cat serve.log; exit 1; }
  sleep 0.2
done
"$M" workspace-config --mirror-url "http://127.0.0.1:$PORT" --out workspace-config \
  --install-dir "$W/inside/workspace-config"
for f in $(cd workspace-config && find . -type f | sort); do
  printf -- '--- workspace-config/%s\n' "${f#./}"; cat "workspace-config/$f"
done

step "a workspace: pip installs the profile from the mirror, using only the generated config"
python3 -m venv "$W/workspace-venv"
(
  set -a; . "$W/inside/workspace-config/mirrorctl.env"; set +a
  "$W/workspace-venv/bin/python" -m pip install -q requests httpx rich
)
"$W/workspace-venv/bin/python" -c 'import requests, httpx, rich; print("workspace imports requests", requests.__version__, "httpx", httpx.__version__)'

if [ "${QUICKSTART_SERVE:-1}" = "1" ]; then
  step "the mirror serves at http://127.0.0.1:$PORT/pypi/simple/ — Ctrl-C to stop"
  wait $SERVE_PID
fi
