# shellcheck shell=bash
# shellcheck disable=SC2034 # GRIDSYNC_PG_* state is read by callers
# PostgreSQL for Gridsync's tests and benchmarks. Source it; do not run it.
#
#   setup_test_postgres       Use $GRIDSYNC_TEST_DATABASE_URL if it is set,
#                             otherwise start_throwaway_postgres. Prints one
#                             line saying which Postgres is used.
#   start_throwaway_postgres  initdb a fresh cluster in a `mktemp -d` folder,
#                             start it on a free port of 127.0.0.1, create the
#                             database gridsync_test and export
#                             GRIDSYNC_TEST_DATABASE_URL (superuser postgres,
#                             trust auth, so it can CREATE DATABASE). Registers
#                             stop_postgres to run on exit (see on_exit in
#                             common.sh), so the cluster goes away even when the
#                             caller fails or is interrupted.
#   stop_postgres             Stop the throwaway cluster (immediate mode) and
#                             delete its folder. Idempotent; a no-op when none
#                             was started.
#
# Knobs (environment):
#   GRIDSYNC_TEST_DATABASE_URL  use this server instead of a throwaway cluster
#   GRIDSYNC_PG_BIN_DIRS        colon-separated folders searched for initdb and
#                               pg_ctl after $PATH, instead of the defaults
#                               (/usr/local/bin, then /usr/lib/postgresql/*/bin
#                               newest version first, then /usr/local/pgsql/bin)
#   GRIDSYNC_PG_USER            OS user that owns the cluster when running as
#                               root (initdb and postgres refuse root); default
#                               postgres
#   GRIDSYNC_PG_KEEP=1          do not delete the cluster folder on stop (debug)
#
# Functions report errors on stderr and return non-zero; callers running with
# `set -e` then stop.

[[ -n ${_GRIDSYNC_POSTGRES_SH:-} ]] && return 0
_GRIDSYNC_POSTGRES_SH=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

GRIDSYNC_PG_DBNAME=gridsync_test

# State of the throwaway cluster (not exported; callers may read them).
GRIDSYNC_PG_DIR=
GRIDSYNC_PG_BINDIR=
GRIDSYNC_PG_PORT=
GRIDSYNC_PG_OWNER=
_GRIDSYNC_PG_POSTMASTER_PID=
_GRIDSYNC_PG_TRAP_SET=

# Print candidate bin folders, one per line, in search order.
_pg_candidate_dirs() {
  local d
  local -a path_dirs
  IFS=: read -r -a path_dirs <<<"${PATH:-}"
  for d in "${path_dirs[@]}"; do
    [[ -n $d ]] && printf '%s\n' "$d"
  done
  if [[ -n ${GRIDSYNC_PG_BIN_DIRS+set} ]]; then
    IFS=: read -r -a path_dirs <<<"$GRIDSYNC_PG_BIN_DIRS"
    for d in "${path_dirs[@]}"; do
      [[ -n $d ]] && printf '%s\n' "$d"
    done
  else
    printf '%s\n' /usr/local/bin
    compgen -G '/usr/lib/postgresql/*/bin' | sort -V -r || true
    printf '%s\n' /usr/local/pgsql/bin
  fi
}

# Set GRIDSYNC_PG_BINDIR to the first folder that has both initdb and pg_ctl.
# initdb is resolved through symlinks (/usr/local/bin/initdb ->
# /usr/lib/postgresql/15/bin/initdb) so that pg_ctl, postgres and psql all
# come from the same installation.
find_postgres_bindir() {
  local d real
  while IFS= read -r d; do
    [[ -x $d/initdb && -x $d/pg_ctl ]] || continue
    real=$(dirname "$(readlink -f "$d/initdb")")
    if [[ -x $real/pg_ctl && -x $real/postgres ]]; then
      GRIDSYNC_PG_BINDIR=$real
    else
      GRIDSYNC_PG_BINDIR=$d
    fi
    return 0
  done < <(_pg_candidate_dirs)
  return 1
}

_pg_missing_message() {
  local searched="/usr/local/bin, /usr/lib/postgresql/*/bin, /usr/local/pgsql/bin"
  [[ -n ${GRIDSYNC_PG_BIN_DIRS+set} ]] && searched="GRIDSYNC_PG_BIN_DIRS='$GRIDSYNC_PG_BIN_DIRS'"
  cat >&2 <<EOF
error: PostgreSQL server binaries (initdb and pg_ctl) were not found, and the
tests need a real Postgres server (they are never skipped). Searched: \$PATH, then $searched.
Either install them:
    apt-get update && apt-get install -y postgresql     # Debian/Ubuntu
or point the tests at a running server whose user may CREATE DATABASE:
    export GRIDSYNC_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/gridsync_test
(or set GRIDSYNC_PG_BIN_DIRS=/path/to/postgres/bin if they live elsewhere).
EOF
}

# Run a command as the cluster's owner.
_pg_as_owner() {
  if [[ $(id -u) -ne 0 ]]; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    runuser -u "$GRIDSYNC_PG_OWNER" -- "$@"
  else
    su -s /bin/sh "$GRIDSYNC_PG_OWNER" -c "$(printf '%q ' "$@")"
  fi
}

# Print a free TCP port on 127.0.0.1.
_pg_free_port() {
  if command -v python3 >/dev/null 2>&1 &&
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()' 2>/dev/null; then
    return 0
  fi
  # No python3: try random ports until nothing answers on one.
  local port i
  for ((i = 0; i < 100; i++)); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s\n' "$port"
      return 0
    fi
  done
  return 1
}

# Stop and delete clusters left behind by runs that were killed with SIGKILL
# (their EXIT trap never ran). Only folders whose owning script is gone.
_pg_reap_stale() {
  local d owner pid
  for d in "${TMPDIR:-/tmp}"/gridsync-pg.* /tmp/gridsync-pg.*; do
    [[ -d $d && -f $d/owner-pid ]] || continue
    owner=$(cat "$d/owner-pid" 2>/dev/null) || continue
    [[ $owner =~ ^[0-9]+$ && ! -d /proc/$owner ]] || continue
    pid=$(head -n 1 "$d/data/postmaster.pid" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && grep -qs "$d/data" "/proc/$pid/cmdline"; then
      kill -QUIT "$pid" 2>/dev/null || true
    fi
    rm -rf "$d" 2>/dev/null && warn "removed a stale throwaway Postgres cluster: $d"
  done
  return 0
}

start_throwaway_postgres() {
  if [[ -n $GRIDSYNC_PG_DIR ]]; then
    echo "error: a throwaway Postgres is already running in $GRIDSYNC_PG_DIR" >&2
    return 1
  fi
  if ! find_postgres_bindir; then
    _pg_missing_message
    return 1
  fi
  local bindir=$GRIDSYNC_PG_BINDIR

  if [[ $(id -u) -eq 0 ]]; then
    GRIDSYNC_PG_OWNER=${GRIDSYNC_PG_USER:-postgres}
    if ! id -u "$GRIDSYNC_PG_OWNER" >/dev/null 2>&1; then
      echo "error: running as root, and initdb refuses root, but the user '$GRIDSYNC_PG_OWNER' that should own the throwaway cluster does not exist." >&2
      echo "       Create it (useradd --system --no-create-home $GRIDSYNC_PG_OWNER; apt-get install postgresql does), or set GRIDSYNC_PG_USER to another user." >&2
      return 1
    fi
  else
    GRIDSYNC_PG_OWNER=$(id -un)
  fi

  local psql=
  if [[ -x $bindir/psql ]]; then
    psql=$bindir/psql
  elif command -v psql >/dev/null 2>&1; then
    psql=$(command -v psql)
  else
    echo "error: psql was not found (needed to create the database $GRIDSYNC_PG_DBNAME); install postgresql-client." >&2
    return 1
  fi

  _pg_reap_stale

  # Register the cleanup before anything exists that would need cleaning.
  if [[ -z $_GRIDSYNC_PG_TRAP_SET ]]; then
    _GRIDSYNC_PG_TRAP_SET=1
    on_exit stop_postgres
  fi

  local dir
  dir=$(mktemp -d -t gridsync-pg.XXXXXXXX) || return 1
  GRIDSYNC_PG_DIR=$dir
  printf '%s\n' "$$" >"$dir/owner-pid"
  if [[ $(id -u) -eq 0 ]]; then
    chown "$GRIDSYNC_PG_OWNER:" "$dir" || return 1
    # $TMPDIR may sit in a folder the owner cannot enter (e.g. under /root).
    if ! (cd / && _pg_as_owner test -w "$dir"); then
      rm -rf "$dir"
      dir=$(mktemp -d /tmp/gridsync-pg.XXXXXXXX) || return 1
      GRIDSYNC_PG_DIR=$dir
      printf '%s\n' "$$" >"$dir/owner-pid"
      chown "$GRIDSYNC_PG_OWNER:" "$dir" || return 1
    fi
  fi

  if ! (cd "$dir" && _pg_as_owner "$bindir/initdb" -D "$dir/data" -A trust -U postgres \
    --no-locale -E UTF8 --no-sync >"$dir/initdb.log" 2>&1); then
    echo "error: initdb failed ($bindir/initdb); its output:" >&2
    cat "$dir/initdb.log" >&2
    return 1
  fi

  local port _attempt started=
  for _attempt in 1 2 3 4 5; do
    port=$(_pg_free_port) || {
      echo "error: could not find a free TCP port on 127.0.0.1" >&2
      return 1
    }
    : >"$dir/postgres.log"
    chown "$GRIDSYNC_PG_OWNER:" "$dir/postgres.log" 2>/dev/null || true
    if (cd "$dir" && _pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 120 \
      -o "-h 127.0.0.1 -p $port -k '$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >"$dir/pg_ctl.log" 2>&1); then
      started=1
      break
    fi
    # Someone took the port between our check and the bind: try another.
    grep -qsE 'Address already in use|could not (bind|create listen socket)' "$dir/postgres.log" || break
  done
  if [[ -z $started ]]; then
    echo "error: the throwaway Postgres did not start ($bindir/pg_ctl). pg_ctl said:" >&2
    cat "$dir/pg_ctl.log" >&2
    echo "--- $dir/postgres.log:" >&2
    tail -n 40 "$dir/postgres.log" >&2
    return 1
  fi
  GRIDSYNC_PG_PORT=$port
  _GRIDSYNC_PG_POSTMASTER_PID=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)

  if ! "$psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "CREATE DATABASE $GRIDSYNC_PG_DBNAME" >/dev/null; then
    echo "error: could not create the database $GRIDSYNC_PG_DBNAME in the throwaway Postgres" >&2
    return 1
  fi

  export GRIDSYNC_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/$GRIDSYNC_PG_DBNAME"
  local version
  version=$("$bindir/postgres" --version 2>/dev/null | sed 's/^postgres (PostgreSQL) /PostgreSQL /')
  log "Postgres: throwaway ${version:-PostgreSQL} cluster at $GRIDSYNC_TEST_DATABASE_URL (binaries $bindir, data $dir)"
}

stop_postgres() {
  local dir=$GRIDSYNC_PG_DIR
  [[ -n $dir ]] || return 0
  if [[ -f $dir/data/postmaster.pid ]]; then
    (cd / && _pg_as_owner "$GRIDSYNC_PG_BINDIR/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop) >/dev/null 2>&1 || true
  fi
  # If pg_ctl could not stop it, do what immediate mode does: SIGQUIT, then SIGKILL.
  local pid=$_GRIDSYNC_PG_POSTMASTER_PID i
  if [[ $pid =~ ^[0-9]+$ ]] && grep -qs "$dir/data" "/proc/$pid/cmdline"; then
    kill -QUIT "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      grep -qs "$dir/data" "/proc/$pid/cmdline" || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  if [[ ${GRIDSYNC_PG_KEEP:-} == 1 ]]; then
    log "Postgres: stopped; kept its folder $dir (GRIDSYNC_PG_KEEP=1)"
  else
    rm -rf "$dir"
  fi
  GRIDSYNC_PG_DIR=
  GRIDSYNC_PG_PORT=
  _GRIDSYNC_PG_POSTMASTER_PID=
  return 0
}

# Print a URL with its password (if any) replaced by ***.
_pg_redact_url() {
  printf '%s\n' "$1" | sed -E 's#(://[^:/@]+):[^@/]*@#\1:***@#'
}

setup_test_postgres() {
  if [[ -n ${GRIDSYNC_TEST_DATABASE_URL:-} ]]; then
    export GRIDSYNC_TEST_DATABASE_URL
    local url
    url=$(_pg_redact_url "$GRIDSYNC_TEST_DATABASE_URL")
    # Check it early when a client is at hand, rather than in every test.
    if command -v psql >/dev/null 2>&1; then
      local can_create
      if ! can_create=$(psql "$GRIDSYNC_TEST_DATABASE_URL" -X -qAt -v ON_ERROR_STOP=1 \
        -c "select rolsuper or rolcreatedb from pg_roles where rolname = current_user" 2>&1); then
        echo "error: cannot connect to GRIDSYNC_TEST_DATABASE_URL=$url:" >&2
        printf '%s\n' "$can_create" >&2
        return 1
      fi
      [[ $can_create == t ]] ||
        warn "the user of GRIDSYNC_TEST_DATABASE_URL may not CREATE DATABASE; tests that need isolated databases will fail"
    fi
    log "Postgres: external server from GRIDSYNC_TEST_DATABASE_URL=$url"
    return 0
  fi
  start_throwaway_postgres
}
