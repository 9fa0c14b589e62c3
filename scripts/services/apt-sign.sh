#!/usr/bin/env bash
# Pulp signing-service script for pulp_deb (class deb:AptReleaseSigningService): signs one apt Release file.
#
# Pulp runs it as `apt-sign.sh <path of Release>` with PULP_SIGNING_KEY_FINGERPRINT (the key the service was
# registered with) and PULP_TEMP_WORKING_DIR (a fresh directory per release) in the environment. It writes
# InRelease (clearsigned) and Release.gpg (armored detached signature) into that directory and prints the JSON
# Pulp expects: {"signatures": {"inline": ".../InRelease", "detached": ".../Release.gpg"}}.
#
# The secret key is read from GNUPGHOME (the worker's, or the one a wrapper sets; scripts/services.sh signing
# registers a wrapper that points it at .services/pulp-signing/gnupg). No passphrase: the key directory is the
# secret, readable only by the user the Pulp workers run as.
#
# Example (as Pulp calls it): PULP_SIGNING_KEY_FINGERPRINT=<fpr> PULP_TEMP_WORKING_DIR=/tmp/x apt-sign.sh Release
set -euo pipefail

release=$(readlink -f "${1:?usage: apt-sign.sh <Release file>}")
out=${PULP_TEMP_WORKING_DIR:-$(dirname "$release")}
key=${PULP_SIGNING_KEY_FINGERPRINT:?PULP_SIGNING_KEY_FINGERPRINT is not set (Pulp sets it)}
gpg=(gpg --batch --yes --no-tty --armor --digest-algo SHA512 --local-user "$key")

"${gpg[@]}" --detach-sign --output "$out/Release.gpg" "$release" >&2
"${gpg[@]}" --clearsign --output "$out/InRelease" "$release" >&2
printf '{"signatures": {"inline": "%s", "detached": "%s"}}\n' "$out/InRelease" "$out/Release.gpg"
