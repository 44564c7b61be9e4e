#!/usr/bin/env bash
# Durable alert ingest through `opsbot serve` in the same run as the ack floor
# of ../shared/bench/ack-floor/run.sh (multi:sqlite-full, opsbot's SQLite
# setting), one after the other, each load from wrk on loopback (as the floor's):
#   alertmanager  posts of 100 new alerts each (benches/am-post.lua), -c8
#   pagerduty     single new Events v2 triggers (benches/pd-event.lua), -c32
# Every answer is a 2xx only after its alerts are committed. Prints req/s,
# alerts/s, p50 and p99 per run, and the floor's figures.
# Usage: benches/ingest-vs-floor.sh   (env FLOOR_RUNS=3, RUNS=3)
set -u
cd "$(dirname "$0")/.."
floor=../shared/bench/ack-floor/run.sh
[ -f "$floor" ] || { echo "no $floor"; exit 1; }
port=18383
. benches/serve-lib.sh
serve_on $port OPSBOT_ALERT_TOKEN=bench-alert-token OPSBOT_ALERT_ROUTING_KEY_PDF=benchbenchbenchbenchbenchbench01
FLOOR_VARIANTS="multi:sqlite-full" bash "$floor" | grep -v RSS
run() {  # name connections script path alerts-per-request
  for r in $(seq "${RUNS:-3}"); do
    out=$(wrk -t1 -c"$2" -d10s -s "$3" --latency "http://127.0.0.1:$port$4" 2>&1)
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    echo "opsbot $1 run $r: $(echo "$out" | grep -E 'Requests/sec|50%|99%|Non-2xx' | tr -s ' ' | tr '\n' ' ')= $(awk -v r="$rps" -v n="$5" 'BEGIN {printf "%.0f", r * n}') alerts/s"
  done
}
run alertmanager 8 benches/am-post.lua /alerts/alertmanager 100
run pagerduty 32 benches/pd-event.lua /alerts/v2/enqueue 1
echo "opsbot stored: $(sqlite3 "$work/opsbot.db" 'SELECT COUNT(*) FROM alerts' 2>/dev/null || echo '?') alerts"
