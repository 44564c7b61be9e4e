#!/usr/bin/env bash
# Where the ack-vs-floor gap comes from: CPU time per stored-then-acked slash
# command and SQLite's I/O per commit, for the bare multi-row floor
# (multi:sqlite-full) and for opsbot, one after the other on the same load
# (wrk -t1 -c32, 10 s each). Prints req/s, p99, CPU µs per request (user +
# system of the server process) and, from perf's syscall tracepoints when
# perf is installed, fsyncs (= commits) and WAL pwrites per commit.
# Usage: benches/ack-cpu.sh
set -u
cd "$(dirname "$0")/.."
here=../shared/bench/ack-floor
[ -f "$here/run.sh" ] || { echo "no $here/run.sh"; exit 1; }
port=18283
. benches/serve-lib.sh
floor_target=${CARGO_TARGET_DIR_FLOOR:-/tmp/ack-floor-target}
(cd "$here" && CARGO_TARGET_DIR=$floor_target cargo build --release -q) || exit 1
floor_lua=$(mktemp --suffix .lua)
python3 "$here/mkwrk.py" peer-secret-123 --user U1 --command /ops --text health >"$floor_lua"
measure() { # NAME PID URL LUA
  local ev=syscalls:sys_enter_fsync,syscalls:sys_enter_pwrite64 stat="$work/stat.$1" perf_pid=
  if command -v perf >/dev/null; then perf stat -x, -e $ev -p "$2" -o "$stat" 2>/dev/null & perf_pid=$!; fi
  local t0 t1 out req
  t0=$(awk '{print $14+$15}' "/proc/$2/stat")
  out=$(wrk -t1 -c32 -d10s -s "$4" --latency "$3" 2>&1)
  t1=$(awk '{print $14+$15}' "/proc/$2/stat")
  [ -n "$perf_pid" ] && { kill -INT $perf_pid; wait $perf_pid; }
  req=$(echo "$out" | awk '/requests in/{print $1}')
  printf '%s: %s cpu %d us/req' "$1" "$(echo "$out" | grep -E 'Requests/sec|99%' | tr -s ' ' | tr '\n' ' ')" \
    $(( (t1 - t0) * 10000 / req ))
  if [ -s "$stat" ]; then
    awk -F, -v req="$req" '/fsync/{f=$1} /pwrite64/{w=$1} END { if (f) printf " · %.1f requests and %.1f pwrites per commit", req/f, w/f }' "$stat"
  fi
  echo
}
rm -f /tmp/ack-floor.db*
LIMIT_MODE=multi LIMIT_DB="sqlite:///tmp/ack-floor.db?mode=rwc" LIMIT_SYNC=FULL \
  "$floor_target/release/ack-floor" 2>/dev/null &
floor=$!
sleep 1
measure floor $floor http://127.0.0.1:3109/slack/commands "$floor_lua"
kill $floor; wait $floor 2>/dev/null; rm -f /tmp/ack-floor.db* "$floor_lua"
serve_on $port SLACK_SIGNING_SECRET=peer-secret-123 SLACK_BOT_TOKEN=xoxb-bench OPSBOT_SLACK_API_URL=http://127.0.0.1:9/api/ \
  OPSBOT_PROFILES=queue OPSBOT_COMMANDS_PER_MINUTE=100000000 OPSBOT_COMMAND_BURST=100000000
measure opsbot "$serve_pid" "http://127.0.0.1:$port/slack/commands" benches/fresh-slash.lua
