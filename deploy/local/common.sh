# Shared helpers for deploy/local/*.sh (sourced, not executed).
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
# Layout: runtime state under $VAR_DIR (wipe-able), downloads/builds under $CACHE_DIR (kept).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/local"
VAR_DIR="${GENHUB_VAR_DIR:-$ROOT/var}"
CACHE_DIR="${GENHUB_CACHE_DIR:-$HOME/.cache/genhub}"
mkdir -p "$VAR_DIR/log" "$VAR_DIR/run" "$CACHE_DIR"
VAR_DIR="$(cd "$VAR_DIR" && pwd)"   # absolute: paths end up in config files and pid files
CACHE_DIR="$(cd "$CACHE_DIR" && pwd)"
LOG_DIR="$VAR_DIR/log"
RUN_DIR="$VAR_DIR/run"

COMPONENT="${COMPONENT:-infra}"
LOG_FILE="${LOG_FILE:-}"    # set by each script; its tail is shown on failure...
LOG_OFFSET=0                # ...from this byte on (so a failed start shows only its own lines)

say() { echo "[$COMPONENT] $*"; }

die() {
  echo "[$COMPONENT] ERROR: $*" >&2
  if [[ -n "$LOG_FILE" && -s "$LOG_FILE" ]]; then
    echo "[$COMPONENT] last lines of $LOG_FILE:" >&2
    tail -c +$((LOG_OFFSET + 1)) "$LOG_FILE" | tail -n 25 | sed 's/^/    /' >&2
  fi
  exit 1
}

# is_port_open HOST PORT -> 0 if a TCP connect succeeds (bash /dev/tcp; no nc needed).
is_port_open() {
  # shellcheck disable=SC2016  # $1/$2 expand in the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# wait_for_port HOST PORT TIMEOUT_SECONDS
wait_for_port() {
  local deadline=$((SECONDS + $3))
  until is_port_open "$1" "$2"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.3
  done
}

# pid_running PIDFILE [CMDLINE_PATTERN] -> 0 if the recorded process is alive
# (the pattern guards against a recycled pid after a reboot).
pid_running() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(cat "$1")"
  kill -0 "$pid" 2>/dev/null || return 1
  [[ -z "${2:-}" ]] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# stop_pid PIDFILE PATTERN TIMEOUT: SIGTERM, wait, then SIGKILL as a last resort.
stop_pid() {
  local pidfile=$1 pattern=$2 timeout=$3 pid deadline
  if ! pid_running "$pidfile" "$pattern"; then
    rm -f "$pidfile"
    say "not running"
    return 0
  fi
  pid="$(cat "$pidfile")"
  kill "$pid"
  deadline=$((SECONDS + timeout))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      say "did not exit in ${timeout}s, sending SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
    fi
    sleep 0.3
  done
  rm -f "$pidfile"
  say "stopped"
}

# hostport_of "PLAINTEXT://h:p,h2:p2" or "http://h:p/x" -> "h p" of the first entry.
hostport_of() {
  local s="${1%%,*}" port=80
  [[ "$s" != https://* ]] || port=443
  s="${s#*://}"
  s="${s%%/*}"
  if [[ "$s" == *:* ]]; then echo "${s%:*} ${s##*:}"; else echo "$s $port"; fi
}
