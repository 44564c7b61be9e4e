#!/usr/bin/env bash
# opsbot's stored-then-acked slash commands against the bare multi-row floor of
# ../shared/bench/ack-floor/run.sh at the same SQLite synchronous setting
# (opsbot runs synchronous=FULL, so the floor variant is multi:sqlite-full), in
# the same run, one after the other (never at once), with the per-identity
# rate limit lifted (the load is one identity) and every opsbot request a
# fresh signed command (benches/fresh-slash.lua). Prints both figures and
# the ratio. Usage: benches/ack-vs-floor.sh   (env FLOOR_RUNS=3)
set -u
cd "$(dirname "$0")/.."
floor=../shared/bench/ack-floor/run.sh
[ -x "$floor" ] || [ -f "$floor" ] || { echo "no $floor"; exit 1; }
port=18282
. benches/serve-lib.sh
serve_on $port SLACK_SIGNING_SECRET=peer-secret-123 SLACK_BOT_TOKEN=xoxb-bench OPSBOT_SLACK_API_URL=http://127.0.0.1:9/api/ \
  OPSBOT_PROFILES=queue OPSBOT_COMMANDS_PER_MINUTE=100000000 OPSBOT_COMMAND_BURST=100000000
# The floor as its script runs it; then opsbot with every request a fresh
# command (a replayed body would be deduplicated, not stored).
out=$(FLOOR_VARIANTS="multi:sqlite-full" bash "$floor")
for r in $(seq "${FLOOR_RUNS:-3}"); do
  run=$(wrk -t1 -c32 -d10s -s benches/fresh-slash.lua --latency "http://127.0.0.1:$port/slack/commands" 2>&1)
  sent=$(( ${sent:-0} + $(echo "$run" | awk '/requests in/{print $1}') ))
  out="$out
opsbot run $r: $(echo "$run" | grep -E 'Requests/sec|50%|99%|Non-2xx' | tr -s ' ' | tr '\n' ' ')"
done
echo "$out"
# Every answered request must be a stored one (a replay or a busy answer
# would be a fast 200 that stored nothing).
echo "opsbot stored: $(sqlite3 "$work/opsbot.db" 'SELECT COUNT(*) FROM inbox' 2>/dev/null || echo '?') rows of $sent requests answered"
echo "$out" | awk '
  /^floor multi sqlite-full run/ { for (i = 1; i <= NF; i++) if ($i == "Requests/sec:") { f += $(i+1); nf++ } }
  /^opsbot run/                  { for (i = 1; i <= NF; i++) if ($i == "Requests/sec:") { o += $(i+1); no++ } }
  END { if (nf && no) printf "mean: floor %.0f req/s, opsbot %.0f req/s, ratio %.2f\n", f/nf, o/no, (o/no)/(f/nf) }'
