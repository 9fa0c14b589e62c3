#!/usr/bin/env bash
# Set up a development environment on a fresh Debian machine: the system tools mirrorctl's tests use and a
# virtual environment (.venv) with mirrorctl and its test dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# apt ecosystem: gpgv verifies upstream InRelease files, gpg signs the served repository (archive key), the tests
# build .debs with dpkg-deb and compare indexes with dpkg-scanpackages
command -v gpg >/dev/null 2>&1 || need+=(gnupg)
command -v gpgv >/dev/null 2>&1 || need+=(gpgv)
command -v dpkg-scanpackages >/dev/null 2>&1 || need+=(dpkg-dev)
command -v xz >/dev/null 2>&1 || need+=(xz-utils)
# serve --front nginx: mirrorctl starts its own nginx (never the system service); /usr/sbin is not on every PATH
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
if ((${#need[@]})); then
  echo "setup: installing ${need[*]} (Debian packages)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  # The nginx package would start the system's nginx on port 80: tell invoke-rc.d not to start services
  # (exit 101 = action forbidden) while installing, unless the machine already has such a policy.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod 755 "$policy"
  fi
  status=0
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" || status=$?
  [ -z "$policy" ] || $sudo rm -f "$policy"
  [ "$status" -eq 0 ] || exit "$status"
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mirrorctl needs Python 3.11 or newer")'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# pip isolated from this machine's pip configuration exactly as scripts/services.sh's pip_in does: config files
# may add extra indexes, find-links and constraints meant for other projects. The index itself (PIP_INDEX_URL)
# and its certificate (PIP_CERT) are left as configured, so the index the machine uses is still reached.
pip_here() {
  env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT -u PIP_REQUIREMENT -u PIP_NO_INDEX \
    PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 .venv/bin/python -m pip "$@"
}
if [ -n "${EXTRAS-test}" ]; then pip_here install -q -e ".[${EXTRAS-test}]"; else pip_here install -q -e .; fi
echo "setup: .venv ready ($(.venv/bin/mirrorctl --help >/dev/null && echo mirrorctl ok))"
