#!/usr/bin/env bash
# Stops the broker started by start.sh and deletes its run directory.
#
#   deploy/kafka/stop.sh [--dir DIR] [--keep]
#
#   --dir DIR  run directory given to start.sh (default deploy/kafka/.run)
#   --keep     keep the run directory (logs, data) after stopping
#
# SIGTERM (controlled shutdown), then SIGKILL after 20 s. Safe to run when
# nothing is running. Only deletes a directory that start.sh created.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN="$HERE/.run"
KEEP=0
GRACE="${SLUICE_KAFKA_STOP_GRACE:-20}"
MARKER_NAME=".sluice-kafka-run"

log() { printf 'kafka/stop: %s\n' "$*" >&2; }

while (($#)); do
  case "$1" in
    --dir) RUN="${2:?--dir needs a value}"; shift 2 ;;
    --dir=*) RUN="${1#--dir=}"; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 0 ;;
    *) log "unknown argument: $1"; exit 2 ;;
  esac
done

if [[ ! -d "$RUN" ]]; then
  log "nothing to stop ($RUN does not exist)"
  exit 0
fi
RUN="$(cd "$RUN" && pwd)"
PID_FILE="$RUN/kafka.pid"

# True while PID is alive and is the broker of this run dir (guards against
# pid reuse: never signal a process that is not ours).
ours() {
  [[ "$1" =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$RUN/server.properties"
}

if [[ -f "$PID_FILE" ]]; then
  pid="$(cat "$PID_FILE")"
  if ours "$pid"; then
    t0=$SECONDS
    kill -TERM "$pid" 2>/dev/null || true
    while ours "$pid" && ((SECONDS - t0 < GRACE)); do sleep 0.2; done
    if ours "$pid"; then
      log "broker $pid still running after ${GRACE}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while ours "$pid"; do sleep 0.1; done
    fi
    log "stopped broker $pid in $((SECONDS - t0))s"
  else
    log "broker not running (stale pid file)"
  fi
else
  log "no pid file in $RUN"
fi

if ((KEEP)); then
  log "kept $RUN"
elif [[ -f "$RUN/$MARKER_NAME" ]]; then
  rm -rf "$RUN"
else
  log "not deleting $RUN: not created by start.sh"
fi
