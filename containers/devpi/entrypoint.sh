#!/bin/sh
# Initialize the server directory once (no mirror of a public index), then serve offline.
set -eu
DIR=/var/lib/devpi/server
if [ ! -e "$DIR/.serverversion" ]; then
  devpi-init --serverdir "$DIR" --no-root-pypi --root-passwd "$(cat /run/secrets/devpi_root_password)"
fi
exec devpi-server --serverdir "$DIR" --host 0.0.0.0 --port 3141 --offline-mode --restrict-modify root "$@"
