#!/usr/bin/env bash
# sluice's full test suite: exactly what CI runs (.ci/run -> make test -> here).
# Idempotent on a fresh machine: installs what is missing, then
#   1. tools        system packages / toolchains (need_pkg, one place)
#   2. gofmt        gofmt -l must print nothing
#   3. go-deps      go mod download
#   4. vet          go vet ./...
#      lint         staticcheck ./... (pinned version, from the Go module proxy)
#   5. postgres-up  deploy/postgres/start.sh: throwaway PostgreSQL on a free port
#                   (stopped by the EXIT trap: deploy/postgres/stop.sh)
#   6. unit         SLUICE_TEST_POSTGRES_DSN=<dsn> go test -race -count=1 ./...
#                   (embedded kfake broker; store tests on SQLite and PostgreSQL)
#   7. kafka-up     deploy/kafka/start.sh: real Apache Kafka (KRaft) on free ports
#   8. integration  SLUICE_TEST_BROKERS=<addr> SLUICE_TEST_POSTGRES_DSN=<dsn>
#                   go test -race -count=1 -run '^TestIntegration' ./...
#   9. kafka-down   deploy/kafka/stop.sh (also done by the EXIT trap)
# and prints a summary with the seconds each phase took. Every phase runs even
# if an earlier one failed (unless SLUICE_FAIL_FAST=1); exits non-zero if any
# phase failed.
#
# Environment knobs:
#   SLUICE_SKIP_REAL_KAFKA=1   skip phases 7-9 (quick local runs)
#   SLUICE_TEST_BROKERS=addr   use this already-running broker for phase 8
#                              instead of starting one (phase 6 never sees it)
#   SLUICE_TEST_POSTGRES_DSN=dsn  use this already-running PostgreSQL for
#                              phases 6 and 8 instead of starting one
#   SLUICE_FAIL_FAST=1         stop at the first failing phase
#   SLUICE_GO_TEST_TIMEOUT     go test -timeout (default 8m)
#   SLUICE_GO_TEST_FLAGS       extra go test flags (e.g. -v, -p=1)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
KAFKA_DIR="$ROOT/deploy/kafka"
PG_DIR="$ROOT/deploy/postgres"
GO_TEST_TIMEOUT="${SLUICE_GO_TEST_TIMEOUT:-8m}"
# shellcheck disable=SC2206 # intended word splitting
GO_TEST_EXTRA=(${SLUICE_GO_TEST_FLAGS:-})
PRESET_BROKERS="${SLUICE_TEST_BROKERS:-}"
unset SLUICE_TEST_BROKERS # only phase 8 may see it
PRESET_PG_DSN="${SLUICE_TEST_POSTGRES_DSN:-}"
unset SLUICE_TEST_POSTGRES_DSN # the go test phases get PG_DSN explicitly
export DEBIAN_FRONTEND=noninteractive

T_START=$SECONDS
PHASES=() RESULTS=() DURATIONS=() NOTES=()
FAILED=0
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-test.XXXXXX")"
KAFKA_RUN="" KAFKA_STOPPED=1 BROKERS=""
PG_RUN="" PG_STOPPED=1 PG_DSN=""

say() { printf '%s\n' "$*"; }
banner() { printf '\n===== %s =====\n' "$*"; }

# ------------------------------------------------------------------ packages
# The one place for system packages. need_pkg installs missing Debian
# packages (dpkg -s first; `apt-get update` at most once per run, and only if
# something is actually missing). need_cmd installs PACKAGE only when COMMAND
# is not already on PATH (toolchains may come from outside apt).
# Later additions go in install_tools() below, e.g. `need_pkg kcat`,
# `need_pkg postgresql`, `need_cmd chromium chromium`.
APT_UPDATED=0
need_pkg() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  local SUDO=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || { say "need root (or sudo) to install: ${missing[*]}"; return 1; }
    SUDO=(sudo -n)
  fi
  if ((!APT_UPDATED)); then
    say "apt-get update"
    "${SUDO[@]}" apt-get update -qq </dev/null || return 1
    APT_UPDATED=1
  fi
  say "apt-get install ${missing[*]}"
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null || return 1
}
need_cmd() { # COMMAND DEBIAN_PACKAGE
  command -v "$1" >/dev/null 2>&1 || need_pkg "$2"
}

# Python packages the tests use live in one venv (a Debian python3 is
# externally managed: pip may not install into it), reused across runs and
# rebuilt when it no longer works or PY_REQS changed. The tests find it
# through SLUICE_PYVENV (exported here, so that under this script a missing
# venv fails those tests instead of skipping them).
PYVENV="${SLUICE_PYVENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/pyvenv}"
export SLUICE_PYVENV="$PYVENV"
# confluent-kafka's wheels bundle a librdkafka built with OIDC (libcurl):
# TestIntegrationLibrdkafkaOAuthBearer logs in with SASL/OAUTHBEARER.
PY_REQS=(confluent-kafka==2.16.1)
need_pyvenv() {
  local py="$PYVENV/bin/python" stamp="$PYVENV/.sluice-reqs"
  if [[ -x "$py" && "$(cat "$stamp" 2>/dev/null)" == "${PY_REQS[*]}" ]] &&
    "$py" -c 'import confluent_kafka' >/dev/null 2>&1; then
    return 0
  fi
  # Debian's python3 has venv but not ensurepip without python3-venv.
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_pkg python3-venv || return 1
  if ! "$py" -c 'import sys' >/dev/null 2>&1; then
    say "python3 -m venv $PYVENV"
    mkdir -p "$(dirname "$PYVENV")" && python3 -m venv --clear "$PYVENV" || return 1
  fi
  say "pip install ${PY_REQS[*]} (into $PYVENV)"
  "$py" -m pip install -q --disable-pip-version-check "${PY_REQS[@]}" </dev/null || return 1
  "$py" -c 'import confluent_kafka' || return 1
  printf '%s' "${PY_REQS[*]}" >"$stamp"
}

install_tools() {
  local ok=0
  command -v go >/dev/null 2>&1 || { say "Go toolchain not found on PATH (need Go matching go.mod)"; ok=1; }
  need_cmd gcc gcc || ok=1         # go test -race needs cgo
  need_cmd python3 python3 || ok=1 # go test output summary, kafka probe
  need_cmd git git || ok=1
  if [[ "${SLUICE_SKIP_REAL_KAFKA:-0}" != 1 && -z "$PRESET_BROKERS" ]]; then
    need_cmd java openjdk-17-jre-headless || ok=1
    need_cmd mvn maven || ok=1
    # Resolve the broker classpath now (Maven; cached in ~/.m2 after the first run)
    # so kafka-up measures only the broker start.
    "$KAFKA_DIR/classpath.sh" >/dev/null || ok=1
  fi
  # PostgreSQL server binaries (/usr/lib/postgresql/*/bin) for the store tests.
  [[ -n "$PRESET_PG_DSN" ]] || need_pkg postgresql || ok=1
  # kcat (librdkafka) for the Kafka front door's client tests (TestIntegrationKcat).
  need_cmd kcat kafkacat || ok=1
  # Python confluent-kafka (librdkafka with OIDC) in $PYVENV, for
  # TestIntegrationLibrdkafkaOAuthBearer.
  need_pyvenv || ok=1
  # Future test dependencies go here, e.g.: need_pkg chromium
  {
    go version
    "$PYVENV/bin/python" -c 'import sys, confluent_kafka as c; print("confluent-kafka %s (librdkafka %s) in %s" % (c.__version__, c.libversion()[0], sys.prefix))' 2>/dev/null
    command -v java >/dev/null && java -version 2>&1 | head -n1
    command -v mvn >/dev/null && mvn -v 2>/dev/null | head -n1 | sed 's/\x1b\[[0-9;]*m//g'
  } | sed 's/^/  /'
  return $ok
}

# ------------------------------------------------------------------ phases
# run_phase NAME FUNCTION: runs it, records result and duration.
# A function may print a one-line note to $WORK/note.
run_phase() {
  local name="$1" fn="$2" t0 rc note=""
  if ((FAILED)) && [[ "${SLUICE_FAIL_FAST:-0}" == 1 ]]; then
    record "$name" skipped 0 "fail fast"
    return 0
  fi
  banner "$name"
  rm -f "$WORK/note"
  t0=$SECONDS
  "$fn"
  rc=$?
  [[ -f "$WORK/note" ]] && note="$(cat "$WORK/note")"
  if ((rc == 0)); then
    record "$name" ok $((SECONDS - t0)) "$note"
  elif ((rc == 99)); then
    record "$name" skipped $((SECONDS - t0)) "$note"
  else
    record "$name" FAILED $((SECONDS - t0)) "$note"
    FAILED=1
  fi
  say "----- $name: ${RESULTS[-1]} (${DURATIONS[-1]}s)"
}
record() { PHASES+=("$1"); RESULTS+=("$2"); DURATIONS+=("$3"); NOTES+=("${4:-}"); }
note() { printf '%s' "$*" >"$WORK/note"; }
SKIP=99

GO_PKGS_STATE="" # "none" when the module has no packages yet
go_packages() {
  # Distinguish "no packages yet" (skip) from "go list failed" (run and fail).
  local out
  if out="$(go list ./... 2>/dev/null)"; then
    [[ -n "$out" ]] && GO_PKGS_STATE=some || GO_PKGS_STATE=none
  else
    GO_PKGS_STATE=error
  fi
}

phase_gofmt() {
  local files=() bad
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files -co --exclude-standard -- '*.go' | grep -v '/testdata/' | while read -r f; do [[ -f "$f" ]] && echo "$f"; done)
  else
    mapfile -t files < <(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -not -path './vendor/*')
  fi
  if ((${#files[@]} == 0)); then
    note "no Go files"
    return 0
  fi
  bad="$(gofmt -l "${files[@]}")" || return 1
  if [[ -n "$bad" ]]; then
    say "gofmt -l lists unformatted files (run: gofmt -w <file>):"
    say "$bad"
    # shellcheck disable=SC2086
    gofmt -d $bad | head -n 200
    note "$(wc -l <<<"$bad") unformatted file(s)"
    return 1
  fi
  note "${#files[@]} files"
}

phase_go_deps() {
  go mod download || return 1
  go_packages
  case "$GO_PKGS_STATE" in
    none) note "module has no Go packages yet" ;;
    some) note "$(go list ./... | wc -l) packages" ;;
    error) go list ./... >/dev/null; return 1 ;;
  esac
}

phase_vet() {
  [[ "$GO_PKGS_STATE" == none ]] && { note "no packages"; return $SKIP; }
  go vet ./...
}

# staticcheck from the Go module proxy, pinned (cached after the first run).
STATICCHECK="honnef.co/go/tools/cmd/staticcheck@v0.8.2"
phase_lint() {
  [[ "$GO_PKGS_STATE" == none ]] && { note "no packages"; return $SKIP; }
  go run "$STATICCHECK" ./...
}

# go test -json rendered like plain `go test` output: package result lines,
# full output of failing tests only; counts written to $2.
read -r -d '' RENDER_PY <<'PY'
import collections, json, sys
counts_file = sys.argv[1]
counts = collections.Counter()
buf = collections.defaultdict(list)
failed = []
out = sys.stdout
def w(s):
    out.write(s); out.flush()
for line in sys.stdin:
    try:
        ev = json.loads(line)
        if not isinstance(ev, dict):
            raise ValueError
    except ValueError:
        w(line); continue
    a = ev.get("Action"); pkg = ev.get("Package") or ev.get("ImportPath", ""); t = ev.get("Test")
    text = ev.get("Output", "")
    if a == "build-output":
        w(text); continue
    if t is None:
        if a == "output":
            if (text.strip() not in ("PASS", "FAIL") and not text.startswith("=== ")
                    and not text.startswith("testing: warning: no tests to run")):
                w(text)
        elif a == "fail":
            # flush output of tests that never finished (panic, timeout)
            for key in [k for k in buf if k[0] == pkg]:
                w("".join(buf.pop(key)))
        continue
    key = (pkg, t)
    if a == "output":
        buf[key].append(text)
    elif a == "pass":
        counts["passed"] += 1; buf.pop(key, None)
    elif a == "skip":
        counts["skipped"] += 1; buf.pop(key, None)
    elif a == "fail":
        counts["failed"] += 1; failed.append("%s %s" % (pkg, t))
        w("".join(buf.pop(key, [])))
if failed:
    w("failed tests:\n" + "".join("  %s\n" % f for f in failed))
with open(counts_file, "w") as f:
    f.write("%d %d %d\n" % (counts["passed"], counts["failed"], counts["skipped"]))
PY

TOTAL_PASSED=0 TOTAL_FAILED=0 TOTAL_SKIPPED=0
# go_test LABEL go-test-args... : runs go test -json through the renderer.
go_test() {
  local label="$1" rc p f s
  shift
  rm -f "$WORK/counts"
  go test -json "$@" 2>&1 | python3 -c "$RENDER_PY" "$WORK/counts"
  rc=${PIPESTATUS[0]}
  read -r p f s <"$WORK/counts" 2>/dev/null || { p=0 f=0 s=0; }
  TOTAL_PASSED=$((TOTAL_PASSED + p)) TOTAL_FAILED=$((TOTAL_FAILED + f)) TOTAL_SKIPPED=$((TOTAL_SKIPPED + s))
  say "$label: $p passed, $f failed, $s skipped (go test exit $rc)"
  note "$p passed, $f failed, $s skipped"
  # A non-zero go test exit (build error, panic, timeout) fails even with 0 failed tests.
  return $rc
}

phase_postgres_up() {
  if [[ -n "$PRESET_PG_DSN" ]]; then
    PG_DSN="$PRESET_PG_DSN"
    note "using preset SLUICE_TEST_POSTGRES_DSN"
    return 0
  fi
  # Not under $WORK: as root the server runs as the postgres user, who
  # cannot enter the private $WORK.
  PG_RUN="$(mktemp -d "${TMPDIR:-/tmp}/sluice-postgres.XXXXXX")" || return 1
  PG_STOPPED=0
  # --watch-pid: the server goes away even if this script is SIGKILLed.
  PG_DSN="$("$PG_DIR/start.sh" --dir "$PG_RUN" --watch-pid $$)" || { PG_DSN=""; return 1; }
  PG_DSN="$(tail -n1 <<<"$PG_DSN")"
  note "PostgreSQL $(sed -n 's/^POSTGRES_VERSION=//p' "$PG_RUN/env") at ${PG_DSN#*@}"
}

phase_unit() {
  [[ "$GO_PKGS_STATE" == none ]] && { note "no packages"; return $SKIP; }
  SLUICE_TEST_POSTGRES_DSN="$PG_DSN" go_test "unit" \
    -race -count=1 -timeout "$GO_TEST_TIMEOUT" "${GO_TEST_EXTRA[@]}" ./...
}

phase_kafka_up() {
  if [[ -n "$PRESET_BROKERS" ]]; then
    BROKERS="$PRESET_BROKERS"
    note "using preset SLUICE_TEST_BROKERS=$BROKERS"
    return 0
  fi
  KAFKA_RUN="$WORK/kafka"
  KAFKA_STOPPED=0
  # --watch-pid: the broker goes away even if this script is SIGKILLed.
  BROKERS="$("$KAFKA_DIR/start.sh" --dir "$KAFKA_RUN" --watch-pid $$)" || { BROKERS=""; return 1; }
  BROKERS="$(tail -n1 <<<"$BROKERS")"
  note "Apache Kafka $(sed -n 's/^KAFKA_VERSION=//p' "$KAFKA_RUN/env") at $BROKERS"
}

phase_integration() {
  [[ "$GO_PKGS_STATE" == none ]] && { note "no packages"; return $SKIP; }
  [[ -n "$BROKERS" ]] || { note "no broker (kafka-up failed)"; return 1; }
  local oauth=""
  [[ -n "$KAFKA_RUN" && -f "$KAFKA_RUN/env" ]] && oauth="$(sed -n 's/^SLUICE_TEST_OAUTH_BROKERS=//p' "$KAFKA_RUN/env")"
  SLUICE_TEST_OAUTH_BROKERS="$oauth" SLUICE_TEST_BROKERS="$BROKERS" SLUICE_TEST_POSTGRES_DSN="$PG_DSN" \
    go_test "integration vs real Kafka" \
    -race -count=1 -timeout "$GO_TEST_TIMEOUT" -run '^TestIntegration' "${GO_TEST_EXTRA[@]}" ./...
  local rc=$?
  if ((rc != 0)) && [[ -n "$KAFKA_RUN" && -f "$KAFKA_RUN/logs/server.log" ]]; then
    say "last broker WARN/ERROR lines ($KAFKA_RUN/logs/server.log):"
    grep -E '\] (WARN|ERROR) ' "$KAFKA_RUN/logs/server.log" | tail -n 30 | cut -c1-400
  fi
  return $rc
}

stop_kafka() { # [--keep]
  ((KAFKA_STOPPED)) && return 0
  KAFKA_STOPPED=1
  "$KAFKA_DIR/stop.sh" --dir "$KAFKA_RUN" "$@"
}

phase_kafka_down() {
  [[ -n "$KAFKA_RUN" ]] || { note "nothing started"; return $SKIP; }
  if ((FAILED)); then
    # Keep broker logs of a failed run for inspection.
    stop_kafka --keep && note "logs kept in $KAFKA_RUN/logs"
  else
    stop_kafka
  fi
}

stop_postgres() {
  ((PG_STOPPED)) && return 0
  PG_STOPPED=1
  "$PG_DIR/stop.sh" --dir "$PG_RUN"
  rmdir "$PG_RUN" 2>/dev/null || true # start.sh failed before using it
}

cleanup() {
  local rc=$?
  stop_kafka 2>/dev/null || true
  stop_postgres 2>/dev/null || true
  if [[ -z "$KAFKA_RUN" || ! -d "$KAFKA_RUN" ]]; then rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ main
say "sluice test suite in $ROOT (CI=${CI:-false})"
run_phase tools install_tools
run_phase gofmt phase_gofmt
run_phase go-deps phase_go_deps
run_phase vet phase_vet
run_phase lint phase_lint
run_phase postgres-up phase_postgres_up
run_phase unit phase_unit
if [[ "${SLUICE_SKIP_REAL_KAFKA:-0}" == 1 ]]; then
  record kafka-up skipped 0 "SLUICE_SKIP_REAL_KAFKA=1"
  record integration skipped 0 "SLUICE_SKIP_REAL_KAFKA=1"
else
  run_phase kafka-up phase_kafka_up
  run_phase integration phase_integration
  run_phase kafka-down phase_kafka_down
fi

banner "sluice test summary"
printf '  %-12s %-8s %7s  %s\n' phase result seconds note
for i in "${!PHASES[@]}"; do
  printf '  %-12s %-8s %7s  %s\n' "${PHASES[$i]}" "${RESULTS[$i]}" "${DURATIONS[$i]}" "${NOTES[$i]}"
done
if ((FAILED)); then
  say "RESULT: FAIL ($((SECONDS - T_START))s total; failed: $(for i in "${!PHASES[@]}"; do [[ ${RESULTS[$i]} == FAILED ]] && printf '%s' "${sep:-}${PHASES[$i]}" && sep=", "; done))"
else
  say "RESULT: PASS ($((SECONDS - T_START))s total)"
fi
say "tests: $TOTAL_PASSED passed, $TOTAL_FAILED failed, $TOTAL_SKIPPED skipped"
exit $FAILED
