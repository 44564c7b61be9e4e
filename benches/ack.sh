#!/usr/bin/env bash
# Throughput and latency of opsbot's Slack ack path, measured with wrk on
# loopback (-t1 -c32, 10 s per run). Prints req/s, p50, p99 and RSS per case:
#   stored    signed `/ops health` from an unknown member: verified, stored by the
#             group-committing writer, then acked (SQLite, and Postgres if reachable)
#   quick     signed `/queue retyr` typo: verified, answered with did-you-mean, nothing stored
#   refused   signed `/queue retry` from an unknown member: refusal in the ack, nothing stored
#   forged    bad signature: 401
# Also: idle RSS and start-to-healthy time. Needs wrk (installed with apt if missing)
# and python3 for signing. Usage: benches/ack.sh  (env RUNS=3, PG_URL=postgres://…)
# One identity floods every case, so the per-identity rate limit is lifted.
set -u
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null 2>&1
cargo build --release -q || exit 1
bin=$PWD/target/release/opsbot
work=$(mktemp -d)
lua=$work/req.lua
port=18181
pid=
ms=
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

sign() {  # user command text [bad] -> wrk lua script
  python3 - "$@" > "$lua" <<'PY'
import hashlib, hmac, sys, time, urllib.parse
user, cmd, text = sys.argv[1:4]
body = urllib.parse.urlencode({"token": "x", "team_id": "T1", "team_domain": "t", "channel_id": "C1",
    "channel_name": "ops", "user_id": user, "user_name": "u", "command": cmd, "text": text,
    "response_url": "http://127.0.0.1:9/r", "trigger_id": "1.2.3"})
ts = str(int(time.time()))
sig = "v0=" + hmac.new(b"bench-secret", f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
if len(sys.argv) > 4: sig = sig[:-2] + "00"
print(f'wrk.method="POST"\nwrk.body="{body}"\nwrk.headers["Content-Type"]="application/x-www-form-urlencoded"')
print(f'wrk.headers["X-Slack-Request-Timestamp"]="{ts}"\nwrk.headers["X-Slack-Signature"]="{sig}"')
PY
}

start() {  # database url -> starts opsbot; sets pid and ms (start to healthy)
  local t0 t1
  t0=$(date +%s%N)
  SLACK_SIGNING_SECRET=bench-secret SLACK_BOT_TOKEN=xoxb-bench OPSBOT_SLACK_API_URL=http://127.0.0.1:9/api/ \
    OPSBOT_PROFILES=queue OPSBOT_CONFIG=config/opsbot.toml OPSBOT_DATABASE_URL="$1" \
    OPSBOT_LISTEN=127.0.0.1:$port OPSBOT_COMMANDS_PER_MINUTE=100000000 OPSBOT_COMMAND_BURST=100000000 \
    RUST_LOG=error "$bin" serve >"$work/serve.log" 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do sleep 0.005; done
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
}

load() {  # label
  for r in $(seq "${RUNS:-3}"); do
    echo "$1 run $r: $(wrk -t1 -c32 -d10s -s "$lua" --latency "http://127.0.0.1:$port/slack/commands" 2>&1 \
      | grep -E 'Requests/sec|50%|99%|Non-2xx' | tr -s ' ' | tr '\n' ' ')"
  done
}

stop() {
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
}

# Each case runs on a fresh instance, so one case's stored backlog (processed in
# the background once the flood stops) does not share the CPU with the next.
case_sqlite() {  # label user command text [bad]
  rm -f "$work"/opsbot.db*
  start "sqlite://$work/opsbot.db?mode=rwc"
  sign "${@:2}"; load "$1"
  stop
}

start "sqlite://$work/opsbot.db?mode=rwc"
# Idle: 5 s after healthy (start-up's code pages are released at 0.5 s, and the
# periodic loops have run since).
sleep 5
echo "sqlite: start to healthy ${ms} ms; idle RSS $(awk '/VmRSS/{print $2}' /proc/$pid/status) kB"
sign U1 /ops health; load "stored sqlite"
echo "sqlite: peak RSS under load $(awk '/VmHWM/{print $2}' /proc/$pid/status) kB"
stop
case_sqlite "quick (usage)" U0ALICE /queue "retyr ai-analysis"
case_sqlite "refused" U1 /queue "retry ai-analysis"
case_sqlite "forged (401)" U1 /ops health bad

if psql "$PG" -c 'DROP SCHEMA IF EXISTS opsbot_bench CASCADE; CREATE SCHEMA opsbot_bench' >/dev/null 2>&1; then
  start "$PG?options=-c%20search_path%3Dopsbot_bench"
  echo "postgres: start to healthy ${ms} ms"
  sign U1 /ops health; load "stored postgres"
  stop
  psql "$PG" -c 'DROP SCHEMA opsbot_bench CASCADE' >/dev/null 2>&1
else
  echo "postgres: not reachable at $PG, skipped"
fi
