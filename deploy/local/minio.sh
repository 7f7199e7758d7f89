#!/usr/bin/env bash
# Local MinIO (S3) for genhub: minio.sh build|start|stop|status
# Honours S3_ENDPOINT (external S3: if reachable we do nothing) and the root credentials
# MINIO_ROOT_USER/MINIO_ROOT_PASSWORD, else S3_ACCESS_KEY/S3_SECRET_KEY, else genhub/genhub-secret-key.
set -euo pipefail
COMPONENT=minio
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# MinIO publishes no semver tags, so the Go proxy only knows pseudo-versions. This is the final
# community commit (RELEASE.2025-10-15T17-29-55Z + later fixes; the proxy refuses that tag itself).
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
BIN_DIR="$CACHE_DIR/bin-minio-$MINIO_VERSION"
BIN="$BIN_DIR/minio"
DATA_DIR="$VAR_DIR/minio/data"
PIDFILE="$RUN_DIR/minio.pid"
LOG_FILE="$LOG_DIR/minio.log"
HOST=127.0.0.1 PORT=9000 CONSOLE_PORT=9001
export MINIO_ROOT_USER="${MINIO_ROOT_USER:-${S3_ACCESS_KEY:-genhub}}"
export MINIO_ROOT_PASSWORD="${MINIO_ROOT_PASSWORD:-${S3_SECRET_KEY:-genhub-secret-key}}"
export MINIO_BROWSER=off MINIO_UPDATE=off

external_ok() {
  [[ -n "${S3_ENDPOINT:-}" ]] || return 1
  local host port
  read -r host port <<<"$(hostport_of "$S3_ENDPOINT")"
  is_port_open "$host" "$port"
}
ready() { curl -fsS -o /dev/null -m 2 "http://$HOST:$PORT/minio/health/ready" 2>/dev/null; }

build() {
  [[ -x "$BIN" ]] && return 0
  [[ -x /usr/local/go/bin/go ]] && PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null || die "go not found (needed once to build MinIO)"
  # One builder at a time; a concurrent caller waits and then finds the binary.
  exec 9>"$CACHE_DIR/minio-build.lock"
  flock 9
  [[ -x "$BIN" ]] && return 0
  say "building MinIO $MINIO_VERSION with go install (first time only, takes minutes)"
  local t0=$SECONDS
  # Install into a temp dir and rename, so an interrupted build never looks finished.
  rm -rf "$BIN_DIR.tmp"
  GOBIN="$BIN_DIR.tmp" go install "github.com/minio/minio@$MINIO_VERSION" >"$LOG_DIR/minio-build.log" 2>&1 \
    || LOG_FILE="$LOG_DIR/minio-build.log" die "go install failed"
  mv "$BIN_DIR.tmp" "$BIN_DIR"
  say "built in $((SECONDS - t0))s"
}

start() {
  if pid_running "$PIDFILE" "minio server"; then say "already running (pid $(cat "$PIDFILE"))"; return 0; fi
  if external_ok; then say "using external S3 at $S3_ENDPOINT"; return 0; fi
  is_port_open $HOST $PORT && die "$HOST:$PORT is taken by a process not started by this script"
  command -v curl >/dev/null || die "curl not found"
  build
  mkdir -p "$DATA_DIR"
  [[ -f "$LOG_FILE" ]] && LOG_OFFSET=$(stat -c %s "$LOG_FILE")
  say "starting MinIO on http://$HOST:$PORT"
  # setsid+nohup: the server must outlive this shell and ignore its terminal's signals.
  setsid nohup "$BIN" server "$DATA_DIR" --address "$HOST:$PORT" --console-address "$HOST:$CONSOLE_PORT" \
    >>"$LOG_FILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + 60))
  until ready; do
    pid_running "$PIDFILE" || die "server exited during startup"
    ((SECONDS < deadline)) || die "not ready after 60s"
    sleep 0.3
  done
  say "ready on http://$HOST:$PORT"
}

status() {
  if pid_running "$PIDFILE" "minio server"; then say "running (pid $(cat "$PIDFILE")) on http://$HOST:$PORT"
  elif external_ok; then say "external at $S3_ENDPOINT"
  else say "stopped"; return 1; fi
}

case "${1:-}" in
  build) external_ok || build ;;   # nothing to build when S3 (or our MinIO) already answers
  start) start ;;
  stop) stop_pid "$PIDFILE" "minio server" 30 ;;
  status) status ;;
  *) echo "usage: $0 build|start|stop|status" >&2; exit 2 ;;
esac
