#!/usr/bin/env bash
# Prints the runtime classpath of the Apache Kafka broker described by
# pom.xml (one line, ':'-separated). Resolves it with Maven on first use and
# caches the result in target/; later runs do not touch Maven or the network
# as long as pom.xml is unchanged and every jar is still in ~/.m2.
# All diagnostics go to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TARGET="$HERE/target"
CP_FILE="$TARGET/classpath.txt"
STAMP_FILE="$TARGET/classpath.stamp"

log() { printf 'kafka/classpath: %s\n' "$*" >&2; }

stamp() { sha256sum "$HERE/pom.xml" | cut -d' ' -f1; }

cached_ok() {
  [[ -s "$CP_FILE" && -f "$STAMP_FILE" ]] || return 1
  [[ "$(cat "$STAMP_FILE")" == "$(stamp)" ]] || return 1
  local jar
  while IFS= read -r jar; do
    [[ -z "$jar" || -f "$jar" ]] || return 1
  done < <(tr ':' '\n' <"$CP_FILE")
}

if ! cached_ok; then
  command -v mvn >/dev/null 2>&1 || { log "mvn not found (install maven)"; exit 1; }
  mkdir -p "$TARGET"
  log "resolving Kafka broker classpath with Maven (first run downloads ~60 MB)..."
  start=$SECONDS
  tmp="$CP_FILE.tmp.$$"
  # Try offline first (works when ~/.m2 already has everything), then online.
  # Maven's output goes to target/mvn.log and is shown only on failure.
  mvnlog="$TARGET/mvn.log"
  for mode in -o ""; do
    if mvn -B -q -Dstyle.color=never $mode -f "$HERE/pom.xml" \
        dependency:build-classpath \
        -Dmdep.includeScope=runtime -Dmdep.outputFile="$tmp" \
        </dev/null >"$mvnlog" 2>&1; then
      break
    fi
    rm -f "$tmp"
    if [[ -z "$mode" ]]; then
      log "Maven could not resolve the Kafka classpath; tail of $mvnlog:"
      tail -n 40 "$mvnlog" >&2
      exit 1
    fi
    log "offline resolution failed, retrying online"
  done
  mv "$tmp" "$CP_FILE"
  stamp >"$STAMP_FILE"
  log "resolved $(tr ':' '\n' <"$CP_FILE" | grep -c .) jars in $((SECONDS - start))s"
fi

cat "$CP_FILE"
echo
