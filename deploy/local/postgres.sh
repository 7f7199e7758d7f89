#!/usr/bin/env bash
# Local PostgreSQL for genhub: postgres.sh start|stop|status
# Honours PGHOST/PGPORT (default 127.0.0.1:5432) and PGUSER/PGPASSWORD (default genhub/genhub:
# the superuser role that owns the service databases).
# Order of preference: a server that already accepts PGUSER -> the machine's Debian cluster on
# that port (role created through the postgres OS user) -> our own cluster in $VAR_DIR/postgres.
set -euo pipefail
COMPONENT=postgres
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}"
export PGUSER="${PGUSER:-genhub}" PGPASSWORD="${PGPASSWORD:-genhub}" PGCONNECT_TIMEOUT=3
# The *_test databases belong to the services' own DB-backed unit tests.
DATABASES=(genhub_gateway genhub_billing genhub_orchestrator genhub_storage genhub_notifier
  genhub_gateway_test genhub_billing_test genhub_orchestrator_test genhub_storage_test
  genhub_notifier_test genhub_platform_test)
PGDATA_DIR="$VAR_DIR/postgres/data"
LOG_FILE="$LOG_DIR/postgres.log"

# Postgres refuses to run as root; "cd /" avoids "could not change directory" noise.
as_pg() { (cd / && runuser -u postgres -- "$@"); }

# find_pgbin: sets PGBIN to the newest installed major's bin dir; fails if none is installed.
find_pgbin() {
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || return 1
  PGBIN="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
}

ensure_package() {
  find_pgbin && return 0
  say "installing the Debian postgresql package"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; } \
    >"$LOG_DIR/postgres-apt.log" 2>&1 || LOG_FILE="$LOG_DIR/postgres-apt.log" die "apt-get install postgresql failed"
  find_pgbin || die "postgresql installed but no /usr/lib/postgresql/*/bin/postgres"
}

login_ok() { psql -d postgres -Atqc 'select 1' >/dev/null 2>&1; }
own_running() { [[ -f "$PGDATA_DIR/postmaster.pid" ]] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; }
debian_cluster_online() { pg_lsclusters --no-header 2>/dev/null | awk -v p="$PGPORT" '$3 == p && $4 ~ /^online/' | grep -q .; }

# Idempotent: (optionally) the login role, then any missing database, owned by $PGUSER.
# $1 = "debian" runs as the postgres OS user over the Debian cluster's unix socket.
ensure_dbs() {
  local psql=(psql -d postgres -v ON_ERROR_STOP=1 -Atq -v u="$PGUSER" -v p="$PGPASSWORD")
  [[ "${1:-}" != debian ]] || psql=(as_pg env -u PGHOST -u PGUSER -u PGPASSWORD "${psql[@]}")
  {
    if [[ "${1:-}" == debian ]]; then
      echo "SELECT format('CREATE ROLE %I', :'u') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \\gexec"
      echo "SELECT format('ALTER ROLE %I LOGIN SUPERUSER PASSWORD %L', :'u', :'p') \\gexec"
    fi
    for db in "${DATABASES[@]}"; do
      echo "SELECT format('CREATE DATABASE %I OWNER %I', '$db', :'u') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$db') \\gexec"
    done
  } | "${psql[@]}" >/dev/null || die "could not create role/databases"
  say "databases ready: ${DATABASES[*]}"
}

# The postgres user must be able to reach its data dir and log file, e.g. when $VAR_DIR lives
# under a root-owned checkout.
ensure_traversable() {
  local d="$1"
  while [[ "$d" != / ]]; do
    as_pg test -x "$d" || chmod o+x "$d"
    d="$(dirname "$d")"
  done
}

init_cluster() {
  mkdir -p "$VAR_DIR/postgres"
  chown postgres:postgres "$VAR_DIR/postgres"
  ensure_traversable "$VAR_DIR/postgres"
  [[ -f "$PGDATA_DIR/PG_VERSION" ]] && return 0
  say "initdb in $PGDATA_DIR"
  local pwfile
  pwfile="$(mktemp)"
  printf '%s\n' "$PGPASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U "$PGUSER" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >"$LOG_DIR/postgres-initdb.log" 2>&1 \
    || { rm -f "$pwfile"; LOG_FILE="$LOG_DIR/postgres-initdb.log" die "initdb failed"; }
  rm -f "$pwfile"
  echo "include 'genhub.conf'" >>"$PGDATA_DIR/postgresql.conf"
}

start_own() {
  case "$PGHOST" in 127.0.0.1|localhost|::1) ;; *) die "no server accepts $PGUSER at $PGHOST:$PGPORT" ;; esac
  is_port_open "$PGHOST" "$PGPORT" && die "$PGHOST:$PGPORT is in use but rejects $PGUSER/\$PGPASSWORD"
  init_cluster
  # Rewritten on every start so the script stays the source of truth. TCP only: no unix socket,
  # so nothing depends on /var/run/postgresql existing.
  cat >"$PGDATA_DIR/genhub.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = ''
max_connections = 300
shared_buffers = 256MB
# Dev box: losing the last few commits on a crash is fine, waiting for fsync on each is not.
synchronous_commit = off
# Write-heavy event workload (outbox, inbox, ledger): fewer checkpoints mean fewer full-page
# images in the WAL, compressed ones cost less to write, and a bigger WAL buffer is rarely full.
max_wal_size = 4GB
min_wal_size = 512MB
checkpoint_timeout = 15min
wal_compression = lz4
wal_buffers = 64MB
CONF
  touch "$LOG_FILE"
  chown postgres "$LOG_FILE"
  ensure_traversable "$LOG_DIR"
  say "starting own cluster on $PGHOST:$PGPORT"
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$LOG_FILE" -w -t 60 start >/dev/null || die "pg_ctl start failed"
}

start() {
  ensure_package
  if own_running; then
    say "own cluster already running"
  elif login_ok; then
    say "using the server already on $PGHOST:$PGPORT"
  elif debian_cluster_online; then
    say "reusing the Debian cluster on port $PGPORT"
    ensure_dbs debian
    login_ok || die "Debian cluster still rejects $PGUSER over TCP (check its pg_hba.conf)"
    return 0
  else
    start_own
  fi
  ensure_dbs
}

stop() {
  if ! find_pgbin; then say "not installed"; return 0; fi
  if own_running; then
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null || die "pg_ctl stop failed"
    say "stopped"
  elif login_ok; then
    say "server on $PGHOST:$PGPORT was not started by this script; leaving it running"
  else
    say "not running"
  fi
}

status() {
  if ! find_pgbin; then say "stopped (postgresql not installed)"; return 1; fi
  if own_running; then say "running (own cluster, $PGDATA_DIR) on $PGHOST:$PGPORT"
  elif login_ok; then say "running (external) on $PGHOST:$PGPORT"
  else say "stopped"; return 1; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
