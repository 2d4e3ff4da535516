#!/usr/bin/env bash
# Sync throughput: `allot sync` of a generated book (`allot emulator
# --generate N`: N accounts, N leads and N contacts per CRM) at 0 ms and
# 50 ms of emulated API latency, one CRM at a time, each into a fresh store.
# Prints records per second and the share of the request budget used (the
# busiest 10 s window against the calls allot allows itself per 10 s).
#   N=100000 HS_LIMIT=190 bash scripts/bench-sync.sh
set -euo pipefail
N=${N:-100000}
HS_LIMIT=${HS_LIMIT:-190}
LATENCIES=${LATENCIES:-"0 50"}
BIN=${BIN:-./target/release/allot}
OUT=target/bench/sync
PORT=${PORT:-7781}
mkdir -p "$OUT"

stat() { curl -sf "http://127.0.0.1:$PORT/_emulator/stats" | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }

for latency in $LATENCIES; do
  "$BIN" emulator --generate "$N" --listen "127.0.0.1:$PORT" --hubspot-calls-per-10s "$HS_LIMIT" \
    --hubspot-daily-limit 10000000 --salesforce-daily-quota 10000000 > "$OUT/emulator.log" 2>&1 &
  emu=$!
  trap 'kill $emu 2>/dev/null || true' EXIT
  for _ in $(seq 1 300); do
    grep -q "listening on" "$OUT/emulator.log" && break
    sleep 0.2
  done
  curl -sf -X POST "http://127.0.0.1:$PORT/_emulator/faults" -H 'content-type: application/json' \
    -d "{\"latency_ms\": $latency}" > /dev/null
  for crm in salesforce hubspot; do
    rm -rf "$OUT/store"
    before=$(stat "s['peak_requests_10s']['$crm']")
    line=$(ALLOT__STORE__PATH="$OUT/store" ALLOT__EMULATOR__LISTEN="127.0.0.1:$PORT" \
      ALLOT__WRITER__HUBSPOT__CALLS_PER_10S="$HS_LIMIT" ALLOT__TELEMETRY__LEVEL=warn \
      "$BIN" sync --crm "$crm" 2>/dev/null | tail -1)
    peak=$(stat "s['peak_requests_10s']['$crm']")
    limited=$(stat "s['rate_limited']['$crm']")
    calls=$(stat "sum(v for k,v in s['calls'].items() if k.startswith('$([ "$crm" = salesforce ] && echo sf || echo hs).'))")
    if [ "$crm" = hubspot ]; then budget=$((HS_LIMIT * 9 / 10)); else budget=180; fi
    share=$(python3 -c "print(f'{100*$peak/$budget:.0f}%')")
    echo "latency ${latency} ms, $crm: $line; calls so far $calls, busiest 10 s $peak of $budget allowed ($share of the budget; CRM limit ${HS_LIMIT}/10 s for HubSpot), 429s $limited"
  done
  kill "$emu" 2>/dev/null || true
  wait "$emu" 2>/dev/null || true
  trap - EXIT
done
