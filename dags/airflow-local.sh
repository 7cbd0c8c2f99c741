#!/usr/bin/env bash
# Local Airflow 3 for Ampere Lakehouse: `make airflow` / `make airflow-stop` call this.
#
#   dags/airflow-local.sh env     print the environment (source it to use the `airflow` CLI)
#   dags/airflow-local.sh start   metadata DB `airflow` on the project's PostgreSQL, migrate,
#                                 variables and connections, dbt manifest, then api-server
#                                 (127.0.0.1:$AIRFLOW_PORT), scheduler, dag-processor, triggerer
#   dags/airflow-local.sh stop    stop those processes (by the PIDs recorded at start)
#   dags/airflow-local.sh status
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-airflow"
LAKEHOUSE="${LAKEHOUSE_BIN:-$ROOT/.venv/bin/lakehouse}"
STATE="$ROOT/.state"
HOME_DIR="${AIRFLOW_HOME:-$STATE/airflow}"
PORT="${AIRFLOW_PORT:-8080}"
PIDS="$HOME_DIR/pids"
COMPONENTS=(api-server scheduler dag-processor triggerer)
# Extra arguments per component. The scheduler's and triggerer's log servers would listen on all
# interfaces (their host is not configurable): skip them; with LocalExecutor the api-server reads
# the task logs from the local log folder.
declare -A ARGS=([scheduler]="--skip-serve-logs" [triggerer]="--skip-serve-logs")

pg_port() {
  "$ROOT/.venv/bin/python" - <<'PY'
from lakehouse.core.settings import load_settings
print(load_settings().postgres.port)
PY
}

secret() { # a random secret kept in the Airflow home, so every component shares it
  local f="$HOME_DIR/.$1"
  [[ -s "$f" ]] || { mkdir -p "$HOME_DIR"; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f"; chmod 600 "$f"; }
  cat "$f"
}

environment() {
  local pg; pg="$(pg_port)"
  cat <<ENV
export AIRFLOW_HOME="$HOME_DIR"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__PARALLELISM=4
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://lakehouse@127.0.0.1:$pg/airflow"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=$PORT
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$PORT/execution/"
export AIRFLOW__API__SECRET_KEY="$(secret api_secret)"
export AIRFLOW__API_AUTH__JWT_SECRET="$(secret jwt_secret)"
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True
export AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK=False
export AIRFLOW__OPENLINEAGE__NAMESPACE=lakehouse-local
export AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "file", "log_file_path": "$STATE/lineage/airflow.jsonl", "append": true}'
export LAKEHOUSE_LINEAGE_FILE="$STATE/lineage/pipeline.jsonl"
export LAKEHOUSE_ROOT="$ROOT"
export LAKEHOUSE_DBT_MANIFEST="$HOME_DIR/dbt/manifest.json"
export LAKEHOUSE_BIN="$LAKEHOUSE"
ENV
}

running() { [[ -f "$PIDS/$1.pid" ]] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

start() {
  [[ -x "$VENV/bin/airflow" ]] || { echo "no $VENV: run make setup-airflow" >&2; exit 1; }
  "$LAKEHOUSE" services start >/dev/null
  eval "$(environment)"
  mkdir -p "$PIDS" "$HOME_DIR/logs" "$STATE/lineage"
  "$ROOT/.venv/bin/python" - "$(pg_port)" <<'PY'
import sys, psycopg
with psycopg.connect(f"postgresql://lakehouse@127.0.0.1:{sys.argv[1]}/postgres", autocommit=True) as c:
    if not c.execute("SELECT 1 FROM pg_database WHERE datname = 'airflow'").fetchone():
        c.execute("CREATE DATABASE airflow")
PY
  echo "==> airflow db migrate (metadata in the local PostgreSQL, database airflow)"
  "$VENV/bin/airflow" db migrate >"$HOME_DIR/logs/db-migrate.log" 2>&1
  "$VENV/bin/airflow" variables set lakehouse_bin "$LAKEHOUSE" >/dev/null
  "$VENV/bin/airflow" variables set lakehouse_notify "file://$HOME_DIR/logs/lakehouse-failures.jsonl" >/dev/null
  local pg; pg="$(pg_port)"
  "$VENV/bin/airflow" connections delete lakehouse_serving >/dev/null 2>&1 || true
  "$VENV/bin/airflow" connections add lakehouse_serving --conn-uri "postgresql://lakehouse@127.0.0.1:$pg/serving" >/dev/null
  "$VENV/bin/airflow" connections delete lakehouse_source >/dev/null 2>&1 || true
  "$VENV/bin/airflow" connections add lakehouse_source --conn-uri "postgresql://lakehouse@127.0.0.1:$pg/source" >/dev/null
  if [[ -x "$ROOT/.venv-dbt/bin/dbt" && -f "$ROOT/dbt/dbt_project.yml" ]]; then
    echo "==> dbt parse (one Airflow task per dbt model)"
    (cd "$ROOT/dbt" && DBT_PROFILES_DIR="$ROOT/dbt" "$ROOT/.venv-dbt/bin/dbt" parse --quiet \
       --target-path "$HOME_DIR/dbt" --log-path "$HOME_DIR/logs/dbt") || echo "warning: dbt parse failed: gold runs as one task"
  fi
  for c in "${COMPONENTS[@]}"; do
    if running "$c"; then echo "$c already running (pid $(cat "$PIDS/$c.pid"))"; continue; fi
    # shellcheck disable=SC2086
    # its own process group: `stop` ends the component with the workers it started
    nohup setsid "$VENV/bin/airflow" "$c" ${ARGS[$c]:-} >"$HOME_DIR/logs/$c.log" 2>&1 </dev/null &
    echo $! >"$PIDS/$c.pid"
    echo "started $c (pid $!, log $HOME_DIR/logs/$c.log)"
  done
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$PORT/api/v2/monitor/health" >/dev/null 2>&1; then
      echo "Airflow is up: http://127.0.0.1:$PORT  (no login locally; DAGs: lakehouse_*)"
      return 0
    fi
    running api-server || { echo "api-server exited: see $HOME_DIR/logs/api-server.log" >&2; exit 1; }
    sleep 1
  done
  echo "Airflow did not answer on 127.0.0.1:$PORT within 120 s: see $HOME_DIR/logs/" >&2
  exit 1
}

stop() {
  for c in "${COMPONENTS[@]}"; do
    running "$c" || { rm -f "$PIDS/$c.pid"; continue; }
    local pid; pid="$(cat "$PIDS/$c.pid")"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    kill -KILL -- "-$pid" 2>/dev/null || true  # workers left behind by the component
    rm -f "$PIDS/$c.pid"
    echo "stopped $c (pid $pid)"
  done
}

status() {
  for c in "${COMPONENTS[@]}"; do
    if running "$c"; then echo "$c: running (pid $(cat "$PIDS/$c.pid"))"; else echo "$c: stopped"; fi
  done
}

case "${1:-}" in
  env) environment ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 env|start|stop|status" >&2; exit 2 ;;
esac
