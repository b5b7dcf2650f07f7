#!/usr/bin/env bash
# The Kafka front door benchmark (`sluice bench --phases wire`) with the
# gateway in a process and on CPUs of its own, next to a real Apache Kafka
# broker: what a deployment looks like, where the gateway runs on its own
# hosts. The in-process bench shares one process and every core between the
# embedded broker, the gateway and the client; this one pins
#
#   - the Kafka broker (JVM) and the bench's franz-go client to --client-cpus
#     (default 0): the direct read is that client reading that broker;
#   - `sluice serve --brokers` to --gateway-cpus (default 1): the front door
#     read goes client -> gateway -> broker.
#
# So "front door / direct" is the gateway's throughput on its cores against
# a raw consumer on the client's cores, and the gateway's cores needed for a
# target follow from it.
#
#   deploy/bench/wire-dedicated.sh [--gateway-cpus LIST] [--client-cpus LIST]
#                                  [--brokers HOST:PORT] [--bin PATH] [--keep]
#                                  [--gateway-profile FILE [--profile-seconds N]]
#                                  [-- BENCH FLAGS]
#
#   --gateway-cpus LIST  taskset CPU list of the gateway (default 1)
#   --client-cpus LIST   taskset CPU list of the broker and the bench (default 0)
#   --brokers ADDR       use this running broker (not pinned) instead of
#                        starting one with deploy/kafka/start.sh
#   --bin PATH           this sluice binary for both processes instead of
#                        building the tree's (to compare two builds)
#   --gateway-profile F  write a CPU profile of the gateway process (its
#                        --debug-listen) to F: the first N seconds of the
#                        bench (--profile-seconds, default 10), from the
#                        preload on; `go tool pprof F` reads it
#   --keep               keep the work directory (logs, config, data)
#   BENCH FLAGS          passed to `sluice bench` (default: --repeat 3
#                        --wire-live=false); e.g. --records 400000 --wire-format avro
#
# It builds sluice, starts the broker (C2 JIT on, as for throughput), writes
# the gateway's config (dev key, the demo partners' subscriptions, plans
# with limits no client reaches, a self-signed certificate for the front
# door), creates every topic the gateway's readiness asks for, runs the
# bench and stops everything. The report is the bench's Markdown on stdout;
# progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GATEWAY_CPUS=1 CLIENT_CPUS=0 BROKERS="" BIN="" KEEP=0 PROFILE="" PROFILE_SECONDS=10
BENCH_FLAGS=()
while (($#)); do
  case "$1" in
    --gateway-cpus) GATEWAY_CPUS="$2"; shift 2 ;;
    --client-cpus) CLIENT_CPUS="$2"; shift 2 ;;
    --brokers) BROKERS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --gateway-profile) PROFILE="$2"; shift 2 ;;
    --profile-seconds) PROFILE_SECONDS="$2"; shift 2 ;;
    --) shift; BENCH_FLAGS=("$@"); break ;;
    *) echo "wire-dedicated: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
((${#BENCH_FLAGS[@]})) || BENCH_FLAGS=(--repeat 3 --wire-live=false)

log() { printf 'wire-dedicated: %s\n' "$*" >&2; }
for c in taskset openssl python3 curl go; do
  command -v "$c" >/dev/null || { log "$c not found"; exit 1; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-wire-dedicated.XXXXXX")"
GW_PID="" KAFKA_STARTED=0
cleanup() {
  if [[ -n "$GW_PID" ]]; then
    kill "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
  fi
  if ((KAFKA_STARTED)); then
    bash "$ROOT/deploy/kafka/stop.sh" --dir "$WORK/kafka" >/dev/null 2>&1 || true
  fi
  if ((KEEP)); then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [[ -n "$BIN" ]]; then
  cp "$BIN" "$WORK/sluice"
else
  log "building sluice"
  (cd "$ROOT" && go build -o "$WORK/sluice" ./cmd/sluice)
fi

if [[ -z "$BROKERS" ]]; then
  log "starting Apache Kafka"
  KAFKA_STARTED=1
  BROKERS="$(SLUICE_KAFKA_JVM_OPTS="${SLUICE_KAFKA_JVM_OPTS:--XX:TieredStopAtLevel=4}" \
    bash "$ROOT/deploy/kafka/start.sh" --dir "$WORK/kafka" --watch-pid $$)"
  taskset -a -cp "$CLIENT_CPUS" "$(cat "$WORK/kafka/kafka.pid")" >/dev/null
  log "broker $BROKERS pinned to CPUs $CLIENT_CPUS"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HTTP_ADDR="127.0.0.1:$(free_port)"
KAFKA_ADDR="127.0.0.1:$(free_port)"
DEBUG_ADDR="127.0.0.1:$(free_port)"
GW="$WORK/gateway"
mkdir -p "$GW"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$GW/key.pem" -out "$GW/cert.pem" 2>/dev/null
plan() { # id default
  cat <<EOF
  - {id: $1, name: $1, records_per_second: 1000000000, bytes_per_second: 1000000000000, concurrent_streams: 1000000,
     monthly_record_quota: 1000000000000000, replay_window: 720h, formats: [json, ndjson, sse, kafka], default: $2}
EOF
}
{
  echo "auth: {dev_key: true}"
  echo "seed_demo: true"
  echo "kafka_listen_tls: {cert_file: $GW/cert.pem, key_file: $GW/key.pem}"
  echo "plans:"
  plan trial false
  plan standard true
  plan premium false
} >"$GW/sluice.yaml"

log "starting the gateway on CPUs $GATEWAY_CPUS (HTTP $HTTP_ADDR, front door $KAFKA_ADDR)"
taskset -c "$GATEWAY_CPUS" "$WORK/sluice" serve --config "$GW/sluice.yaml" --brokers "$BROKERS" --generate=false \
  --data-dir "$GW" --http "$HTTP_ADDR" --kafka-listen "$KAFKA_ADDR" --debug-listen "$DEBUG_ADDR" >"$WORK/gateway.log" 2>&1 &
GW_PID=$!

# Readiness names every upstream topic the gateway is missing; create each
# (6 partitions; the consent topic compacted) until it is ready.
CP="$(bash "$ROOT/deploy/kafka/classpath.sh")"
for _ in $(seq 1 120); do
  kill -0 "$GW_PID" 2>/dev/null || { log "the gateway exited:"; tail -20 "$WORK/gateway.log" >&2; exit 1; }
  ready="$(curl -s "http://$HTTP_ADDR/readyz" || true)"
  [[ "$ready" == *'"status":"ready"'* ]] && break
  for topic in $(grep -o 'unknown topic \\"[^\\]*' <<<"$ready" | sed 's/.*\\"//' | sort -u); do
    cfg=()
    [[ "$topic" == *consent ]] && cfg=(--config cleanup.policy=compact)
    log "creating topic $topic"
    java -cp "$CP" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKERS" --create --if-not-exists \
      --topic "$topic" --partitions 6 --replication-factor 1 "${cfg[@]}" >/dev/null
  done
  sleep 1
done
[[ "$ready" == *'"status":"ready"'* ]] || { log "gateway not ready: $ready"; exit 1; }

PROF_PID=""
if [[ -n "$PROFILE" ]]; then
  log "profiling the gateway for ${PROFILE_SECONDS}s into $PROFILE"
  curl -s -o "$PROFILE" "http://$DEBUG_ADDR/debug/pprof/profile?seconds=$PROFILE_SECONDS" &
  PROF_PID=$!
fi
log "bench on CPUs $CLIENT_CPUS: ${BENCH_FLAGS[*]}"
taskset -c "$CLIENT_CPUS" "$WORK/sluice" bench --target "http://$HTTP_ADDR" --brokers "$BROKERS" \
  --front-door "$KAFKA_ADDR" --front-door-ca "$GW/cert.pem" --data-dir "$GW" \
  --phases wire --partner internal-noc --purpose network-analytics "${BENCH_FLAGS[@]}"
if [[ -n "$PROF_PID" ]]; then
  wait "$PROF_PID" || log "the profile request failed"
fi
