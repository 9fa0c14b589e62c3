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
if ((${#need[@]})); then
  echo "setup: installing ${need[*]} (Debian packages)"
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}"; else
    sudo apt-get update -qq && sudo apt-get install -y -qq "${need[@]}"; fi
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
