#!/usr/bin/env bash
# Stops the PostgreSQL cluster started by start.sh and deletes its run
# directory.
#
#   deploy/postgres/stop.sh [--dir DIR] [--keep]
#
#   --dir DIR  run directory given to start.sh (default ${TMPDIR:-/tmp}/sluice-postgres)
#   --keep     keep the run directory (data, logs) after stopping
#
# pg_ctl stop -m fast (disconnects clients), then SIGKILL of the postmaster
# after 20 s. Safe to run when nothing is running. Only deletes a directory
# that start.sh created.
set -euo pipefail

RUN="${TMPDIR:-/tmp}/sluice-postgres"
KEEP=0
GRACE="${SLUICE_POSTGRES_STOP_GRACE:-20}"
MARKER_NAME=".sluice-postgres-run"

log() { printf 'postgres/stop: %s\n' "$*" >&2; }

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
DATA="$RUN/data"

# True while PID is alive and is the postmaster of this run dir (guards
# against pid reuse: never signal a process that is not ours).
ours() {
  [[ "$1" =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$DATA"
}

pid=""
[[ -f "$DATA/postmaster.pid" ]] && pid="$(head -n1 "$DATA/postmaster.pid" 2>/dev/null || true)"
if ours "$pid"; then
  t0=$SECONDS
  # Fast shutdown: SIGINT to the postmaster, which is what `pg_ctl stop -m
  # fast` sends; signalling directly needs no user switch.
  kill -INT "$pid" 2>/dev/null || true
  while ours "$pid" && ((SECONDS - t0 < GRACE)); do sleep 0.1; done
  if ours "$pid"; then
    log "postmaster $pid still running after ${GRACE}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while ours "$pid"; do sleep 0.1; done
  fi
  log "stopped postmaster $pid in $((SECONDS - t0))s"
else
  log "server not running in $RUN"
fi

if ((KEEP)); then
  log "kept $RUN"
elif [[ -f "$RUN/$MARKER_NAME" ]]; then
  rm -rf "$RUN"
else
  log "not deleting $RUN: not created by start.sh"
fi
