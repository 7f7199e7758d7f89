#!/usr/bin/env bash
# Local infrastructure for genhub: infra.sh up|down|status|env
#   up      start PostgreSQL, Kafka and MinIO (idempotent), then print the endpoints
#   down    stop what these scripts started
#   status  one line per component; non-zero if any is down
#   env     print export lines for the services: eval "$(deploy/local/infra.sh env)"
set -euo pipefail
COMPONENT=infra
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

endpoints() {
  local s3_user="${MINIO_ROOT_USER:-${S3_ACCESS_KEY:-genhub}}" s3_pass="${MINIO_ROOT_PASSWORD:-${S3_SECRET_KEY:-genhub-secret-key}}"
  cat <<ENV
export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}
export S3_ENDPOINT=${S3_ENDPOINT:-http://127.0.0.1:9000}
export S3_ACCESS_KEY=$s3_user
export S3_SECRET_KEY=$s3_pass
export PGHOST=${PGHOST:-127.0.0.1}
export PGPORT=${PGPORT:-5432}
export PGUSER=${PGUSER:-genhub}
export PGPASSWORD=${PGPASSWORD:-genhub}
ENV
}

up() {
  local failed=() t0=$SECONDS
  # The MinIO build (minutes, first time only) overlaps with starting the other two.
  bash "$HERE/minio.sh" build &
  local build_pid=$!
  bash "$HERE/postgres.sh" start || failed+=(postgres)
  bash "$HERE/kafka.sh" start || failed+=(kafka)
  if wait "$build_pid"; then
    bash "$HERE/minio.sh" start || failed+=(minio)
  else
    failed+=(minio)
  fi
  if ((${#failed[@]})); then
    echo "[infra] FAILED to start: ${failed[*]} (details above; logs in $LOG_DIR)" >&2
    exit 1
  fi
  say "up in $((SECONDS - t0))s; endpoints:"
  endpoints | sed 's/^export /    /'
  say "    databases: genhub_gateway genhub_billing genhub_orchestrator genhub_storage genhub_notifier"
}

down() {
  local rc=0
  bash "$HERE/minio.sh" stop || rc=1
  bash "$HERE/kafka.sh" stop || rc=1
  bash "$HERE/postgres.sh" stop || rc=1
  return $rc
}

status() {
  local rc=0
  bash "$HERE/postgres.sh" status || rc=1
  bash "$HERE/kafka.sh" status || rc=1
  bash "$HERE/minio.sh" status || rc=1
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) endpoints ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
