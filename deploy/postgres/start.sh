#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for tests, in the background, with
# the Debian server binaries (/usr/lib/postgresql/*/bin, the newest).
#
#   deploy/postgres/start.sh [--dir DIR] [--watch-pid PID]
#
#   --dir DIR        run directory (data, socket, logs); default
#                    ${TMPDIR:-/tmp}/sluice-postgres. Must be empty, missing, or
#                    a previous run dir of this script (which is wiped).
#                    When run as root the server runs as the `postgres` user,
#                    who must be able to reach DIR (so not under a 0700 dir).
#   --watch-pid PID  stop the server (stop.sh) once process PID is gone, so a
#                    killed test run does not leave a server behind.
#
# The cluster trusts every local connection (user postgres, no password),
# listens on 127.0.0.1 on a free port with its unix socket in DIR/sock, and
# runs with fsync off: test data only. Waits until the server accepts
# queries, then prints ONLY the DSN
# (postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable) on stdout,
# as its last line, and also writes it to DIR/dsn. Everything else goes to
# stderr; the server log is DIR/logs/postgres.log.
#
# Environment knobs:
#   SLUICE_POSTGRES_START_TIMEOUT  seconds to wait for readiness (default 60)
#   SLUICE_POSTGRES_BIN            directory of initdb/pg_ctl/postgres (default:
#                                  the newest /usr/lib/postgresql/*/bin)
#   SLUICE_POSTGRES_OPTS           extra server options, e.g. "-c log_statement=all"
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN="${TMPDIR:-/tmp}/sluice-postgres"
WATCH_PID=""
TIMEOUT="${SLUICE_POSTGRES_START_TIMEOUT:-60}"
MARKER_NAME=".sluice-postgres-run"

log() { printf 'postgres/start: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; }

while (($#)); do
  case "$1" in
    --dir) RUN="${2:?--dir needs a value}"; shift 2 ;;
    --dir=*) RUN="${1#--dir=}"; shift ;;
    --watch-pid) WATCH_PID="${2:?--watch-pid needs a value}"; shift 2 ;;
    --watch-pid=*) WATCH_PID="${1#--watch-pid=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage; die "unknown argument: $1" ;;
  esac
done

# ---------------------------------------------------------------- binaries
BIN="${SLUICE_POSTGRES_BIN:-}"
if [[ -z "$BIN" ]]; then
  BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
fi
[[ -n "$BIN" && -x "$BIN/initdb" && -x "$BIN/pg_ctl" && -x "$BIN/postgres" ]] ||
  die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (install: apt-get install postgresql)"
PG_VERSION="$("$BIN/postgres" --version | awk '{print $3}')"

# As root, initdb and the server must run as an unprivileged user.
AS=()
if ((EUID == 0)); then
  id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user (the Debian package creates it)"
  if command -v runuser >/dev/null 2>&1; then
    AS=(runuser -u postgres --)
  else
    AS=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  fi
fi
as_pg() { "${AS[@]}" "$@"; }

# ---------------------------------------------------------------- run dir
mkdir -p "$RUN"
RUN="$(cd "$RUN" && pwd)"
DATA="$RUN/data"
SOCK="$RUN/sock"

# A server of ours already running in this dir?
server_pid() { # prints the postmaster pid if it runs on $DATA
  local pid
  [[ -f "$DATA/postmaster.pid" ]] || return 1
  pid="$(head -n1 "$DATA/postmaster.pid" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DATA" || return 1
  echo "$pid"
}
if pid="$(server_pid)"; then
  if [[ -s "$RUN/dsn" && -s "$RUN/port" ]] &&
      "$BIN/pg_isready" -q -h 127.0.0.1 -p "$(cat "$RUN/port")" -U postgres; then
    log "already running in $RUN (pid $pid)"
    cat "$RUN/dsn"
    exit 0
  fi
  die "a server (pid $pid) is running in $RUN but not answering; run stop.sh --dir $RUN"
fi

# Only ever wipe a directory that this script created.
if [[ -n "$(ls -A "$RUN")" && ! -f "$RUN/$MARKER_NAME" ]]; then
  die "$RUN is not empty and not a postgres run dir; refusing to use it"
fi
find "$RUN" -mindepth 1 -maxdepth 1 ! -name "$MARKER_NAME" -exec rm -rf {} +
echo "created by deploy/postgres/start.sh; stop.sh deletes this directory" >"$RUN/$MARKER_NAME"
mkdir -p "$DATA" "$SOCK" "$RUN/logs"
chmod 0700 "$DATA"
if ((EUID == 0)); then
  chown -R postgres: "$RUN"
  as_pg test -w "$RUN" ||
    die "the postgres user cannot write $RUN (is a parent directory private?); pass --dir under /tmp"
fi

free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
  else
    echo $((20000 + RANDOM % 10000))
  fi
}

# ---------------------------------------------------------------- init
t0=$SECONDS
T0_NS=$(date +%s%N)
if ! as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C \
    --no-sync --no-instructions </dev/null >"$RUN/logs/initdb.log" 2>&1; then
  tail -n 30 "$RUN/logs/initdb.log" >&2
  die "initdb failed (see $RUN/logs/initdb.log)"
fi
T_INIT_MS=$((($(date +%s%N) - T0_NS) / 1000000))

# ---------------------------------------------------------------- start
# Throwaway test cluster: no durability (fsync off), small memory, enough
# connections for parallel test packages (each store pool + listeners).
# shellcheck disable=SC2206 # word splitting of the knob is intended
SERVER_OPTS=(-c listen_addresses=127.0.0.1 -c "unix_socket_directories=$SOCK"
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off
  -c max_connections=200 -c shared_buffers=32MB -c max_wal_size=256MB
  -c logging_collector=off -c log_min_messages=warning
  ${SLUICE_POSTGRES_OPTS:-})

PORT=""
for attempt in 1 2 3; do
  PORT="$(free_port)"
  echo "$PORT" >"$RUN/port"
  log "starting PostgreSQL $PG_VERSION on 127.0.0.1:$PORT, dir $RUN"
  # pg_ctl -w waits until the server accepts connections. setsid: the
  # server must not die with the caller's terminal session.
  if as_pg setsid "$BIN/pg_ctl" -D "$DATA" -l "$RUN/logs/postgres.log" -w -t "$TIMEOUT" \
      -o "-p $PORT $(printf '%q ' "${SERVER_OPTS[@]}")" start </dev/null >"$RUN/logs/pg_ctl.log" 2>&1; then
    break
  fi
  if ((attempt < 3)) && grep -q 'Address already in use' "$RUN/logs/postgres.log" 2>/dev/null; then
    log "port clash on $PORT, retrying with a new port"
    continue
  fi
  tail -n 30 "$RUN/logs/postgres.log" "$RUN/logs/pg_ctl.log" >&2 2>/dev/null || true
  as_pg "$BIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
  die "PostgreSQL did not start (see $RUN/logs)"
done

# Readiness: a real query over TCP, not just an accepting socket.
deadline=$((SECONDS + TIMEOUT))
until "$BIN/psql" -XAtq -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; do
  if ((SECONDS >= deadline)); then
    tail -n 30 "$RUN/logs/postgres.log" >&2
    die "PostgreSQL not answering queries after ${TIMEOUT}s (see $RUN/logs)"
  fi
  sleep 0.1
done
T_READY_MS=$((($(date +%s%N) - T0_NS) / 1000000))

PID="$(server_pid)" || die "server started but its pid is unknown"
DSN="postgres://postgres@127.0.0.1:$PORT/postgres?sslmode=disable"
echo "$DSN" >"$RUN/dsn"
cat >"$RUN/env" <<EOF
SLUICE_TEST_POSTGRES_DSN=$DSN
POSTGRES_VERSION=$PG_VERSION
POSTGRES_PID=$PID
POSTGRES_PORT=$PORT
POSTGRES_SOCKET_DIR=$SOCK
POSTGRES_RUN_DIR=$RUN
EOF

if [[ -n "$WATCH_PID" ]]; then
  # Watchdog: when WATCH_PID disappears while the server still runs, stop it.
  setsid bash -c '
    while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 2; done
    if kill -0 "$2" 2>/dev/null; then "$3" --dir "$4"; fi' \
    _ "$WATCH_PID" "$PID" "$HERE/stop.sh" "$RUN" </dev/null >/dev/null 2>&1 &
fi

log "ready at 127.0.0.1:$PORT in $((SECONDS - t0))s (initdb ${T_INIT_MS} ms, ready ${T_READY_MS} ms; pid $PID, logs $RUN/logs)"
echo "$DSN"
