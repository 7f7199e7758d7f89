#!/usr/bin/env bash
# Start/stop the five genhub services as background processes on loopback.
# Usage: services.sh start|stop|restart|status [service...]   (default: all five)
# Each service migrates its own database first, then serves HTTP and consumes Kafka.
set -euo pipefail
COMPONENT=services
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SERVICES=(billing orchestrator storage notifier gateway)
declare -A PORTS=([gateway]=8080 [billing]=8081 [orchestrator]=8082 [storage]=8083 [notifier]=8084)
BIN="$ROOT/.venv/bin"
SECRETS="$VAR_DIR/secrets.env"

# Local secrets are generated once per var/ and never committed.
ensure_secrets() {
  [[ -s "$SECRETS" ]] && return 0
  "$BIN/python" - >"$SECRETS" <<'PY'
import base64, secrets
print(f"GENHUB_ADMIN_TOKEN=gh_admin_{secrets.token_urlsafe(32)}")
print(f"NOTIFIER_ENCRYPTION_KEY={base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}")
PY
  chmod 600 "$SECRETS"
}

service_env() {
  set -a
  source "$SECRETS"
  set +a
  export GENHUB_ENV="${GENHUB_ENV:-local}"
  # The local profile talks to receivers and images on loopback; production refuses them.
  export NOTIFIER_ALLOW_PRIVATE_WEBHOOKS="${NOTIFIER_ALLOW_PRIVATE_WEBHOOKS:-true}"
  export GATEWAY_ALLOW_PRIVATE_URLS="${GATEWAY_ALLOW_PRIVATE_URLS:-true}"
  export STORAGE_ALLOW_PRIVATE_URLS="${STORAGE_ALLOW_PRIVATE_URLS:-true}"
  # Local profile: a compressed webhook retry schedule (seconds) so retries are observable.
  export NOTIFIER_RETRY_SCHEDULE="${NOTIFIER_RETRY_SCHEDULE:-0,1,2,3,4}"
  export BILLING_URL="${BILLING_URL:-http://127.0.0.1:8081}"
  export ORCHESTRATOR_URL="${ORCHESTRATOR_URL:-http://127.0.0.1:8082}"
  export STORAGE_URL="${STORAGE_URL:-http://127.0.0.1:8083}"
  export NOTIFIER_URL="${NOTIFIER_URL:-http://127.0.0.1:8084}"
}

ready() { curl -fsS -o /dev/null "http://127.0.0.1:$1/readyz" 2>/dev/null; }

start_one() {
  local svc=$1 port=${PORTS[$1]} pidfile="$RUN_DIR/$1.pid"
  LOG_FILE="$LOG_DIR/$svc.log"
  if pid_running "$pidfile" "genhub-$svc"; then
    return 0
  fi
  "$BIN/genhub-$svc" migrate >>"$LOG_FILE" 2>&1 || die "$svc: migration failed"
  # Own session: the service outlives the shell (or CI job) that started it.
  setsid nohup "$BIN/genhub-$svc" serve --port "$port" >>"$LOG_FILE" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

wait_ready() {
  local svc=$1 deadline=$((SECONDS + 60))
  LOG_FILE="$LOG_DIR/$svc.log"
  until ready "${PORTS[$svc]}"; do
    pid_running "$RUN_DIR/$svc.pid" "genhub-$svc" || die "$svc exited during start-up"
    ((SECONDS < deadline)) || die "$svc not ready after 60s"
    sleep 0.3
  done
}

stop_all() {
  for svc in "${SELECTED[@]}"; do
    COMPONENT=$svc stop_pid "$RUN_DIR/$svc.pid" "genhub-$svc" 20
  done
}

start_all() {
  ensure_secrets
  service_env
  for svc in "${SELECTED[@]}"; do start_one "$svc"; done
  for svc in "${SELECTED[@]}"; do wait_ready "$svc"; done
  say "ready: ${SELECTED[*]} (gateway http://127.0.0.1:8080, logs in $LOG_DIR)"
}

ACTION=${1:-}
shift || true
SELECTED=("$@")
((${#SELECTED[@]})) || SELECTED=("${SERVICES[@]}")
for svc in "${SELECTED[@]}"; do
  [[ -n "${PORTS[$svc]:-}" ]] || die "unknown service: $svc"
done

case "$ACTION" in
  start) start_all ;;
  stop) stop_all ;;
  restart)
    stop_all
    start_all
    ;;
  status)
    for svc in "${SELECTED[@]}"; do
      if ready "${PORTS[$svc]}"; then echo "$svc: ready on ${PORTS[$svc]}"; else echo "$svc: down"; fi
    done
    ;;
  *)
    echo "usage: $0 start|stop|restart|status [service...]" >&2
    exit 2
    ;;
esac
