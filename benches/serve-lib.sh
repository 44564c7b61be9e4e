# Sourced by the benchmarks that load `opsbot serve` beside the ack floor:
# wrk (installed with apt if missing), a release build, a scratch directory
# removed on exit (with every background job), and `serve_on PORT [VAR=value…]`,
# which starts `opsbot serve` (its pid in $serve_pid) with the shipped config on a fresh SQLite file
# there and returns once it is healthy.
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null 2>&1
cargo build --release -q || exit 1
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
serve_on() {
  local port=$1
  shift
  env "$@" OPSBOT_CONFIG=config/opsbot.toml OPSBOT_DATABASE_URL="sqlite://$work/opsbot.db?mode=rwc" \
    OPSBOT_LISTEN=127.0.0.1:$port RUST_LOG=error target/release/opsbot serve >"$work/serve.log" 2>&1 &
  serve_pid=$!
  until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do sleep 0.01; done
}
