#!/usr/bin/env bash
# Real Pulp 3 (with PostgreSQL) and devpi-server for the live tests and for trying `mirrorctl publish` by hand.
#
#   bash scripts/services.sh install   # Debian's postgresql; Pulp and devpi from PyPI into their own venvs (idempotent)
#   bash scripts/services.sh start     # start all on 127.0.0.1, wait until healthy, write .services/env
#   bash scripts/services.sh stop      # stop all (only the processes whose ids this script recorded)
#   bash scripts/services.sh status    # what runs, and whether it answers
#   bash scripts/services.sh reset     # stop, then delete all service data (not the venvs): the next start is fresh
#   bash scripts/services.sh lock      # re-pin scripts/services/*-requirements.txt from the *.in files
#   bash scripts/services.sh signing   # (part of start) the pulp_deb signing service mirrorctl-archive, on its own
#
# Everything lives under .services/ (venvs, database cluster, Pulp storage, devpi data, secrets, logs, pids).
# Settings (environment): SERVICES_DIR, SERVICES_PG_PORT (54329), SERVICES_PULP_API_PORT (24817),
# SERVICES_PULP_CONTENT_PORT (24816), SERVICES_DEVPI_PORT (3141), SERVICES_PULP_WORKERS (2),
# SERVICES_PULP_API_WORKERS (2), SERVICES_TIMEOUT (180, seconds per service), SERVICES_PYTHON (python3).
# Example: bash scripts/services.sh install && bash scripts/services.sh start && . .services/env
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=$ROOT/scripts/services
SVC=${SERVICES_DIR:-$ROOT/.services}
PG_PORT=${SERVICES_PG_PORT:-54329}
API_PORT=${SERVICES_PULP_API_PORT:-24817}
CONTENT_PORT=${SERVICES_PULP_CONTENT_PORT:-24816}
DEVPI_PORT=${SERVICES_DEVPI_PORT:-3141}
WORKERS=${SERVICES_PULP_WORKERS:-2}
API_WORKERS=${SERVICES_PULP_API_WORKERS:-2}
TIMEOUT=${SERVICES_TIMEOUT:-180}
PYTHON=${SERVICES_PYTHON:-python3}

PULP_VENV=$SVC/pulp-venv
DEVPI_VENV=$SVC/devpi-venv
RUN=$SVC/run
LOGS=$SVC/logs
SECRETS=$SVC/secrets
PG_DIR=$SVC/pg
[ -L "$PG_DIR" ] && PG_DIR=$(readlink -f "$PG_DIR")  # see prepare_pg_dir: programs run as postgres need the real path
PULP_DIR=$SVC/pulp
DEVPI_DIR=$SVC/devpi
API_URL=http://127.0.0.1:$API_PORT
CONTENT_URL=http://127.0.0.1:$CONTENT_PORT
DEVPI_URL=http://127.0.0.1:$DEVPI_PORT

say() { echo "services: [${SECONDS}s] $*"; }
die() { echo "services: error: $*" >&2; exit 1; }

# pip for the service venvs, isolated from this machine's pip configuration: config files may add extra indexes,
# find-links and constraints meant for other projects. The index itself (PIP_INDEX_URL) is left as configured.
pip_in() {
  local venv=$1; shift
  env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT -u PIP_REQUIREMENT -u PIP_NO_INDEX \
    PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip "$@"
}

# ---------------------------------------------------------------------------------------------------- install

pg_bin() {
  local d
  d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)  # the newest installed major version
  [ -x "$d/initdb" ] && echo "$d"
}

install_postgresql() {
  if pg_bin >/dev/null; then return; fi
  say "installing PostgreSQL (Debian package postgresql)"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  pg_bin >/dev/null || die "postgresql installed but no initdb under /usr/lib/postgresql/*/bin"
}

# install_venv NAME REQUIREMENTS: create the venv and pip-install the pinned file, unless it already holds exactly it.
install_venv() {
  local venv=$1 req=$2 stamp want
  stamp=$venv/.services-installed
  want="$(sha256sum "$req" | cut -d' ' -f1) $("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    say "$(basename "$venv") up to date"
    return
  fi
  say "installing $(basename "$req" -requirements.txt) into $venv"
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv" \
    || die "could not create $venv: on Debian, apt-get install python3-venv (or set SERVICES_PYTHON)"
  pip_in "$venv" install -q -r "$req"
  echo "$want" >"$stamp"
}

cmd_install() {
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Pulp needs Python 3.11 or newer")'
  mkdir -p "$SVC"
  install_postgresql
  # The two venvs are independent: install them side by side (about a third less wall-clock on a fresh machine).
  local pulp_job devpi_job
  install_venv "$PULP_VENV" "$HERE/pulp-requirements.txt" & pulp_job=$!
  install_venv "$DEVPI_VENV" "$HERE/devpi-requirements.txt" & devpi_job=$!
  wait "$pulp_job" || die "installing Pulp into $PULP_VENV failed (see the pip output above)"
  wait "$devpi_job" || die "installing devpi into $DEVPI_VENV failed (see the pip output above)"
  say "installed: $(pg_version); $(pulp_versions); $(devpi_versions)"
}

pg_version() { "$(pg_bin)/postgres" --version | awk '{print "PostgreSQL " $3}'; }
pulp_versions() {
  pip_in "$PULP_VENV" list --format=freeze 2>/dev/null | grep -iE '^(pulpcore|pulp-(python|deb|npm|maven))==' | tr '\n' ' '
}
devpi_versions() { pip_in "$DEVPI_VENV" list --format=freeze 2>/dev/null | grep -iE '^devpi-(server|client)==' | tr '\n' ' '; }

# lock: resolve the *.in files in scratch venvs and write every pinned dependency to the *.txt files.
cmd_lock() {
  local name tmp
  for name in pulp devpi; do
    tmp=$(mktemp -d)
    "$PYTHON" -m venv "$tmp/venv"
    pip_in "$tmp/venv" install -q -r "$HERE/$name-requirements.in"
    {
      echo "# Generated by \`bash scripts/services.sh lock\` from $name-requirements.in with Python $("$PYTHON" -c 'import sys; print(sys.version.split()[0])'). Do not edit."
      pip_in "$tmp/venv" list --format=freeze --exclude pip --exclude setuptools --exclude wheel
    } >"$HERE/$name-requirements.txt"
    rm -rf "$tmp"
    say "wrote scripts/services/$name-requirements.txt"
  done
}

# ---------------------------------------------------------------------------------------------------- processes

pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }

# running NAME: the recorded process is alive and is still the program we started (pids get reused).
running() {
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

# launch NAME PATTERN PORT CMD...: start CMD in its own session (so stop can signal its whole process group), log to
# .services/logs/NAME.log, and record its pid. A script's background job is not a group leader, so setsid execs
# in place and $! is the program's own pid.
launch() {
  local name=$1 pattern=$2 port=$3; shift 3
  if running "$name" "$pattern"; then say "$name already running (pid $(pid_of "$name"))"; return; fi
  if [ "$port" != - ]; then "$PYTHON" "$HERE/svctool.py" port-free "$port" || fail_start "cannot start $name"; fi
  echo "=== $(date -u +%FT%TZ) start: $*" >>"$LOGS/$name.log"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

# terminate NAME:PATTERN...: SIGTERM each recorded process group at once, wait for all (30 s), then SIGKILL what is
# left. Only the pids this script recorded are signalled.
terminate() {
  local item name pattern pid i alive
  local -a names=() pids=()
  for item in "$@"; do
    name=${item%%:*} pattern=${item#*:}
    pid=$(pid_of "$name")
    if running "$name" "$pattern"; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      names+=("$name") pids+=("$pid")
    else
      rm -f "$RUN/$name.pid"
    fi
  done
  for i in $(seq 1 150); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.2
  done
  for i in "${!pids[@]}"; do
    if kill -0 -- "-${pids[$i]}" 2>/dev/null; then
      say "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM for 30s: killing it"
      kill -KILL -- "-${pids[$i]}" 2>/dev/null || true
    fi
    rm -f "$RUN/${names[$i]}.pid"
    say "stopped ${names[$i]}"
  done
}

tails() {
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    echo "----- last lines of $f" >&2
    tail -n 40 "$f" >&2
  done
}

fail_start() {  # inside cmd_start: the EXIT trap shows the logs and stops what was started
  echo "services: error: $*" >&2
  exit 1
}

on_start_exit() {
  local rc=$1
  trap - EXIT
  [ "$rc" -eq 0 ] && return
  tails "$PG_DIR/postgresql.log" "$LOGS"/*.log
  say "start failed: stopping what was started"
  cmd_stop >&2 || true
  exit "$rc"
}

secret() {  # secret NAME: a generated secret kept in .services/secrets/NAME (made on first use)
  local f=$SECRETS/$1
  if [ ! -s "$f" ]; then
    (umask 077; head -c 32 /dev/urandom | base64 | tr -d '/+=\n' >"$f")
  fi
  cat "$f"
}

# ---------------------------------------------------------------------------------------------------- PostgreSQL

as_pg() {  # PostgreSQL refuses to run as root: run its server programs as the postgres user.
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The cluster belongs to the postgres user, who must reach it. A checkout under a private directory (mode 700, as
# mktemp makes) hides .services/pg from that user: then the cluster lives in the postgres user's home, one per
# services dir, and .services/pg is a link to it.
prepare_pg_dir() {
  [ "$(id -u)" -eq 0 ] || { mkdir -p "$PG_DIR"; return; }
  id postgres >/dev/null 2>&1 || die "no 'postgres' user: is Debian's postgresql package installed?"
  [ -L "$PG_DIR" ] || mkdir -p "$PG_DIR"
  chown postgres: "$PG_DIR/."
  runuser -u postgres -- test -w "$PG_DIR/." && return
  local home alt
  home=$(getent passwd postgres | cut -d: -f6)
  alt=$home/mirrorctl-services/$(printf '%s' "$SVC" | sha256sum | cut -c1-16)
  mkdir -p "$alt"
  chown postgres: "$home/mirrorctl-services" "$alt"
  rmdir "$PG_DIR" 2>/dev/null || rm -f "$PG_DIR"
  ln -s "$alt" "$PG_DIR"
  say "the postgres user cannot reach $SVC: the cluster lives in $alt (linked from $PG_DIR)"
  PG_DIR=$alt
}

start_postgresql() {
  local bin data log
  bin=$(pg_bin) || die "PostgreSQL is not installed: run 'bash scripts/services.sh install'"
  prepare_pg_dir
  data=$PG_DIR/data log=$PG_DIR/postgresql.log
  touch "$log"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$log"
  if [ ! -s "$data/PG_VERSION" ]; then
    say "creating the PostgreSQL cluster in $data"
    rm -f "$PG_DIR/pulp-migrated"
    local pwfile=$PG_DIR/.pwfile
    (umask 077; secret pg-superuser >"$pwfile")
    [ "$(id -u)" -eq 0 ] && chown postgres: "$pwfile"
    as_pg "$bin/initdb" -D "$data" -U postgres --pwfile="$pwfile" --auth=scram-sha-256 -E UTF8 --no-locale \
      >>"$log" 2>&1 || { rm -f "$pwfile"; fail_start "initdb failed"; }
    rm -f "$pwfile"
  fi
  if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    say "postgresql already running"
  else
    "$PYTHON" "$HERE/svctool.py" port-free "$PG_PORT" || fail_start "cannot start PostgreSQL"
    # TCP on loopback only, no unix socket: a socket path under a deep checkout can exceed the 107-byte limit.
    as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t "$TIMEOUT" \
      -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=''" start >/dev/null \
      || fail_start "PostgreSQL did not start on 127.0.0.1:$PG_PORT"
  fi
  # The pulp role and database (idempotent); the role's password follows the secret file.
  local psql=(env PGPASSWORD="$(secret pg-superuser)" PGCONNECT_TIMEOUT=10 "$bin/psql" -X -q -v ON_ERROR_STOP=1
    -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
  "${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'pulp'" | grep -q 1 \
    || "${psql[@]}" -c "CREATE ROLE pulp LOGIN" || fail_start "could not create the pulp role"
  "${psql[@]}" -c "ALTER ROLE pulp PASSWORD '$(secret pg-pulp)'" >/dev/null
  "${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'pulp'" | grep -q 1 \
    || "${psql[@]}" -c "CREATE DATABASE pulp OWNER pulp ENCODING 'UTF8'" || fail_start "could not create database pulp"
  say "postgresql ready on 127.0.0.1:$PG_PORT"
}

stop_postgresql() {
  local bin data=$PG_DIR/data
  bin=$(pg_bin) || return 0
  [ -s "$data/PG_VERSION" ] || return 0
  if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null && say "stopped postgresql"
  fi
}

# ---------------------------------------------------------------------------------------------------- Pulp

# Every Pulp program reads the same settings file. HOME is Pulp's own dir so nothing lands in root's home.
PULP_ENV=(env PULP_SETTINGS="$PULP_DIR/settings.py" HOME="$PULP_DIR")

start_pulp() {
  [ -x "$PULP_VENV/bin/pulpcore-manager" ] || die "Pulp is not installed: run 'bash scripts/services.sh install'"
  mkdir -p "$PULP_DIR"/{media,tmp,static,import,export,certs}
  local key=$PULP_DIR/certs/database_fields.symmetric.key
  [ -s "$key" ] || (umask 077; head -c 32 /dev/urandom | base64 | tr '+/' '-_' >"$key")
  "$PYTHON" "$HERE/svctool.py" render "$HERE/pulp-settings.py.in" "$PULP_DIR/settings.py" \
    secret_key="$(secret pulp-secret-key)" db_encryption_key="$key" db_password="$(secret pg-pulp)" \
    pg_port="$PG_PORT" content_origin="$CONTENT_URL" api_origin="$API_URL" media_root="$PULP_DIR/media" \
    static_root="$PULP_DIR/static" working_directory="$PULP_DIR/tmp" \
    "allowed_import_paths[]=$PULP_DIR/import" "allowed_export_paths[]=$PULP_DIR/export" \
    || fail_start "could not write $PULP_DIR/settings.py"

  # migrate and reset-admin-password each load all of Django (seconds apiece): run them only when the installed
  # Pulp, the admin password or the database (a new cluster drops the stamp) changed since they last succeeded.
  local stamp=$PG_DIR/pulp-migrated want
  want="$(cat "$PULP_VENV/.services-installed") $(secret pulp-admin | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "pulp: migrating the database"
    "${PULP_ENV[@]}" "$PULP_VENV/bin/pulpcore-manager" migrate --noinput >>"$LOGS/pulp-migrate.log" 2>&1 \
      || fail_start "pulpcore-manager migrate failed"
    "${PULP_ENV[@]}" "$PULP_VENV/bin/pulpcore-manager" reset-admin-password --password "$(secret pulp-admin)" \
      >>"$LOGS/pulp-migrate.log" 2>&1 || fail_start "pulpcore-manager reset-admin-password failed"
    echo "$want" >"$stamp"
  fi

  launch pulp-api pulpcore-api "$API_PORT" "${PULP_ENV[@]}" "$PULP_VENV/bin/pulpcore-api" --bind "127.0.0.1:$API_PORT" \
    --workers "$API_WORKERS" --no-control-socket
  launch pulp-content pulpcore-content "$CONTENT_PORT" "${PULP_ENV[@]}" "$PULP_VENV/bin/pulpcore-content" \
    --bind "127.0.0.1:$CONTENT_PORT" --no-control-socket
  local i
  for i in $(seq 1 "$WORKERS"); do
    launch "pulp-worker-$i" pulpcore-worker - "${PULP_ENV[@]}" "$PULP_VENV/bin/pulpcore-worker" \
      --name-template "worker-$i@{hostname}"
  done
}

stop_pulp() {  # stop_pulp [NAME:PATTERN...]: the Pulp processes, and any others given, together
  local f items=()
  for f in "$RUN"/pulp-worker-*.pid; do
    [ -e "$f" ] && items+=("$(basename "$f" .pid):pulpcore-worker")
  done
  terminate "${items[@]}" pulp-content:pulpcore-content pulp-api:pulpcore-api "$@"
}

# Hooks for later set-up that needs a running Pulp (e.g. a pulp_deb signing service): each executable
# scripts/services/hooks/post-start-*.sh runs with .services/env exported.
run_hooks() {
  local hook
  for hook in "$HERE"/hooks/post-start-*.sh; do
    [ -e "$hook" ] || continue
    say "hook $(basename "$hook")"
    # shellcheck disable=SC1091  # written by this script at run time
    (set -a; . "$SVC/env"; set +a; bash "$hook") >>"$LOGS/hooks.log" 2>&1 || fail_start "hook $hook failed"
  done
}

# ---------------------------------------------------------------------------------------------------- devpi

start_devpi() {
  [ -x "$DEVPI_VENV/bin/devpi-server" ] || die "devpi is not installed: run 'bash scripts/services.sh install'"
  local secretfile=$SECRETS/devpi-server-secret
  [ -s "$secretfile" ] || (umask 077; head -c 48 /dev/urandom | base64 >"$secretfile")
  if [ ! -e "$DEVPI_DIR/.serverversion" ]; then
    say "devpi: initialising $DEVPI_DIR"
    # No root/pypi: inside the gap there is no upstream to mirror.
    "$DEVPI_VENV/bin/devpi-init" --serverdir "$DEVPI_DIR" --no-root-pypi --root-passwd "$(secret devpi-root)" \
      >>"$LOGS/devpi.log" 2>&1 || fail_start "devpi-init failed"
  fi
  # --offline-mode: never connect to an upstream, whatever an index's bases say.
  launch devpi devpi-server "$DEVPI_PORT" "$DEVPI_VENV/bin/devpi-server" --serverdir "$DEVPI_DIR" --host 127.0.0.1 \
    --port "$DEVPI_PORT" --offline-mode --secretfile "$secretfile" --outside-url "$DEVPI_URL"
}

# ---------------------------------------------------------------------------------------------------- apt signing

# pulp_deb signs each Release through a "signing service": a script Pulp's workers run with a gpg key. This makes
# the key (once, under .services/pulp-signing/gnupg), registers the service APT_SIGNING_SERVICE with the class
# deb:AptReleaseSigningService (again only when missing or registered with another key), exports the public
# keyring workspaces trust, and adds the facts to .services/env. Needs a running Pulp; `start` runs it, and
# `bash scripts/services.sh signing` runs it alone against the running services.
APT_SIGNING_SERVICE=${SERVICES_APT_SIGNING_SERVICE:-mirrorctl-archive}
SIGN_DIR=$SVC/pulp-signing

cmd_signing() {
  [ -s "$SVC/env" ] || die "no $SVC/env: start the services first ('bash scripts/services.sh start')"
  local home=$SIGN_DIR/gnupg fpr wrapper=$SIGN_DIR/apt-sign keyring=$SIGN_DIR/archive-keyring.gpg registered
  mkdir -p "$home" && chmod 700 "$SIGN_DIR" "$home"
  local gpg=(gpg --batch --homedir "$home")
  fpr=$("${gpg[@]}" --with-colons --list-secret-keys 2>/dev/null | awk -F: '/^fpr:/ {print $10; exit}')
  if [ -z "$fpr" ]; then
    say "signing: creating the archive key for $APT_SIGNING_SERVICE"
    "${gpg[@]}" --passphrase '' --quick-generate-key \
      "mirrorctl internal archive ($APT_SIGNING_SERVICE) <archive@mirror.internal>" ed25519 sign never \
      >>"$LOGS/signing.log" 2>&1 || die "gpg could not create the signing key (see $LOGS/signing.log)"
    fpr=$("${gpg[@]}" --with-colons --list-secret-keys | awk -F: '/^fpr:/ {print $10; exit}')
  fi
  "${gpg[@]}" --export "$fpr" >"$keyring.tmp" 2>>"$LOGS/signing.log" && mv "$keyring.tmp" "$keyring"
  # Pulp's workers do not run with this GNUPGHOME: the registered script is a wrapper that sets it.
  printf '#!/bin/sh\nGNUPGHOME=%q exec %q "$@"\n' "$home" "$HERE/apt-sign.sh" >"$wrapper.tmp"
  chmod 700 "$wrapper.tmp" && mv "$wrapper.tmp" "$wrapper"

  registered=$(curl -sf -u "admin:$(secret pulp-admin)" \
    "$API_URL/pulp/api/v3/signing-services/?name=$APT_SIGNING_SERVICE&fields=pubkey_fingerprint" \
    | "$PYTHON" -c 'import json,sys; r=json.load(sys.stdin)["results"]; print(r[0]["pubkey_fingerprint"] if r else "")') \
    || die "cannot ask Pulp at $API_URL for its signing services"
  if [ "$registered" != "$fpr" ]; then
    if [ -n "$registered" ]; then
      say "signing: $APT_SIGNING_SERVICE has key $registered, not $fpr: registering it again"
      "${PULP_ENV[@]}" "$PULP_VENV/bin/pulpcore-manager" remove-signing-service "$APT_SIGNING_SERVICE" \
        >>"$LOGS/signing.log" 2>&1 || die "could not remove the old $APT_SIGNING_SERVICE (see $LOGS/signing.log)"
    fi
    say "signing: registering $APT_SIGNING_SERVICE (deb:AptReleaseSigningService, key $fpr)"
    "${PULP_ENV[@]}" "$PULP_VENV/bin/pulpcore-manager" add-signing-service "$APT_SIGNING_SERVICE" "$wrapper" "$fpr" \
      --class deb:AptReleaseSigningService --home "$home" >>"$LOGS/signing.log" 2>&1 \
      || die "pulpcore-manager add-signing-service failed (see $LOGS/signing.log)"
  fi
  # The facts go into .services/env (replacing earlier ones), atomically like write_env.
  {
    grep -v '^export PULP_APT_SIGNING_' "$SVC/env"
    printf 'export %s=%q\n' PULP_APT_SIGNING_SERVICE "$APT_SIGNING_SERVICE" PULP_APT_SIGNING_FINGERPRINT "$fpr" \
      PULP_APT_SIGNING_KEYRING "$keyring" PULP_APT_SIGNING_GNUPGHOME "$home"
  } >"$SVC/env.tmp"
  chmod 600 "$SVC/env.tmp" && mv "$SVC/env.tmp" "$SVC/env"
  say "signing: $APT_SIGNING_SERVICE ready (key $fpr, public keyring $keyring)"
}

# ---------------------------------------------------------------------------------------------------- commands

write_env() {  # write_env KEY=VALUE...: the shell-sourceable summary the tests and mirrorctl read
  local tmp=$SVC/env.tmp kv
  {
    echo "# Written by scripts/services.sh start on $(date -u +%FT%TZ). Source it: . .services/env"
    for kv in "$@"; do printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"; done
  } >"$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$SVC/env"
}

cmd_start() {
  mkdir -p "$RUN" "$LOGS" "$SECRETS"
  chmod 700 "$SECRETS"
  local t0=$SECONDS
  trap 'on_start_exit $?' EXIT
  rm -f "$SVC/env"  # a stale file would claim services that may not be up
  start_postgresql
  start_devpi  # first: it boots while Pulp migrates
  start_pulp
  local pulp_pids=("$RUN"/pulp-*.pid) pulp_out devpi_out
  pulp_out=$("$PYTHON" "$HERE/svctool.py" wait-pulp "$API_URL" "$CONTENT_URL" --workers "$WORKERS" \
    --timeout "$TIMEOUT" "${pulp_pids[@]/#/--pid-file=}") || fail_start "Pulp did not become healthy"
  say "pulp ready: api $API_URL, content $CONTENT_URL, $WORKERS workers"
  devpi_out=$("$PYTHON" "$HERE/svctool.py" wait-devpi "$DEVPI_URL" --timeout "$TIMEOUT" \
    --pid-file="$RUN/devpi.pid") || fail_start "devpi-server did not become healthy"
  say "devpi ready: $DEVPI_URL"
  local client
  client=$("$DEVPI_VENV/bin/devpi" --version 2>/dev/null | awk '/devpi-client/ {print $2; exit}')
  local versions
  mapfile -t versions < <(printf '%s\n' "$pulp_out" "$devpi_out" | grep .)
  write_env PULP_URL="$API_URL" PULP_API_ROOT=/pulp/ PULP_CONTENT_URL="$CONTENT_URL" \
    PULP_CONTENT_PATH_PREFIX=/pulp/content/ PULP_USERNAME=admin PULP_PASSWORD="$(secret pulp-admin)" \
    PULP_SETTINGS="$PULP_DIR/settings.py" PULPCORE_MANAGER="$PULP_VENV/bin/pulpcore-manager" \
    PULP_IMPORT_DIR="$PULP_DIR/import" PULP_EXPORT_DIR="$PULP_DIR/export" \
    DEVPI_URL="$DEVPI_URL" DEVPI_ROOT_PASSWORD="$(secret devpi-root)" DEVPI_CLIENT="$DEVPI_VENV/bin/devpi" \
    DEVPI_CLIENT_VERSION="$client" POSTGRESQL_VERSION="$(pg_version | awk '{print $2}')" \
    "${versions[@]}"
  cmd_signing
  run_hooks
  say "all services healthy in $((SECONDS - t0))s; settings in $SVC/env"
}

cmd_stop() {
  mkdir -p "$RUN"
  rm -f "$SVC/env"
  stop_pulp devpi:devpi-server  # all at once; the database last, once nothing uses it
  stop_postgresql
}

cmd_reset() {  # stop, then delete every service's data (database, Pulp storage, devpi, secrets); keep the venvs
  cmd_stop
  if [ -L "$SVC/pg" ]; then rm -rf "$(readlink -f "$SVC/pg")"; fi
  rm -rf "$SVC/pg" "$PULP_DIR" "$DEVPI_DIR" "$SECRETS" "$RUN" "$LOGS"
  say "deleted the services' data under $SVC (the venvs stay)"
}

cmd_status() {
  local rc=0 name pattern f
  if [ -n "$(pg_bin)" ] && [ -s "$PG_DIR/data/PG_VERSION" ] \
    && as_pg "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
    echo "postgresql: running on 127.0.0.1:$PG_PORT"
  else
    echo "postgresql: stopped"; rc=1
  fi
  for f in pulp-api:pulpcore-api pulp-content:pulpcore-content devpi:devpi-server "$RUN"/pulp-worker-*.pid; do
    case $f in
      *.pid) [ -e "$f" ] || continue; name=$(basename "$f" .pid); pattern=pulpcore-worker ;;
      *) name=${f%%:*}; pattern=${f#*:} ;;
    esac
    if running "$name" "$pattern"; then echo "$name: running (pid $(pid_of "$name"))"; else echo "$name: stopped"; rc=1; fi
  done
  if "$PYTHON" "$HERE/svctool.py" wait-pulp "$API_URL" "$CONTENT_URL" --workers "$WORKERS" --timeout 0 >/dev/null 2>&1
  then echo "pulp: healthy at $API_URL"; else echo "pulp: not healthy"; rc=1; fi
  if "$PYTHON" "$HERE/svctool.py" wait-devpi "$DEVPI_URL" --timeout 0 >/dev/null 2>&1
  then echo "devpi: healthy at $DEVPI_URL"; else echo "devpi: not healthy"; rc=1; fi
  return $rc
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  lock) cmd_lock ;;
  signing) cmd_signing ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
