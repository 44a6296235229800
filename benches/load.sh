#!/usr/bin/env bash
# Load test of the hot endpoints, with wrk (apt-get install wrk) on the same machine:
#   POST /api/token/verify/ (and, for comparison, a bare poem endpoint doing JSON + HS256 + Redis EXISTS),
#   GET /auth/users/me/ with a Bearer token, POST /api/token/ (argon2-bound).
# Needs Redis on 127.0.0.1:6379 (REDIS_URL). DATABASE_URL defaults to a fresh SQLite file.
# Knobs: DURATION (10s), CONNECTIONS (32), THREADS (2), THROTTLE (true: on, as by default, with
# rates no load generator reaches, so its Redis call is part of every request's cost; false: off).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-10s}
connections=${CONNECTIONS:-32}
threads=${THREADS:-2}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379/0}
key=load-test-signing-key-0123456789abcdef0123
work=$(mktemp -d)
pids=()
# cargo bench leaves the yardstick binary running when killed: stop it by name too.
trap 'kill "${pids[@]}" 2>/dev/null || true; pkill -f "deps/bare_verify-.* --bench" || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet --bin tessera
cargo bench --quiet --bench bare_verify --no-run 2>/dev/null

(cd "$work" && DATABASE_URL="${DATABASE_URL:-sqlite://$work/data/tessera.db}" REDIS_URL="$redis_url" \
  TESSERA__JWT__SIGNING_KEY="$key" TESSERA__REDIS__KEY_PREFIX="load:$$:" TESSERA__LOG__LEVEL=warn \
  TESSERA__THROTTLE__ENABLED="${THROTTLE:-true}" TESSERA__THROTTLE__ANON=100000000/second TESSERA__THROTTLE__USER=100000000/second \
  TESSERA__THROTTLE__SCOPES__LOGIN=100000000/second TESSERA__THROTTLE__LOCKOUT_FAILURES=0 \
  TESSERA__SERVER__BIND=127.0.0.1:8100 "$OLDPWD/target/release/tessera" serve) &
pids+=($!)
BARE_KEY="$key" BARE_BIND=127.0.0.1:8101 REDIS_URL="$redis_url" cargo bench --quiet --bench bare_verify >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -sf localhost:8100/health/ready >/dev/null && curl -s -o /dev/null localhost:8101/verify && break
  sleep 0.2
done

curl -sf -X POST localhost:8100/auth/users/ -H 'Content-Type: application/json' \
  -d '{"username": "loadtest", "password": "correct horse battery"}' >/dev/null
pair=$(curl -sf -X POST localhost:8100/api/token/ -H 'Content-Type: application/json' \
  -d '{"username": "loadtest", "password": "correct horse battery"}')
access=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access"])' "$pair")

run() { # name url method body auth
  local out
  out=$(WRK_METHOD=$3 WRK_BODY=$4 WRK_AUTH=$5 wrk -t"$threads" -c"$connections" -d"$duration" --latency \
    -s benches/wrk_request.lua "$2")
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-34s %10s req/s   p50 %-9s p99 %-9s non-2xx %s\n' "$1" "$rps" "$p50" "$p99" "${non2xx:-0}"
}

echo "wrk -t$threads -c$connections -d$duration, server and load generator on the same $(nproc) cores"
run "bare poem verify (yardstick)" http://127.0.0.1:8101/verify POST "{\"token\": \"$access\"}" ""
run "POST /api/token/verify/" http://127.0.0.1:8100/api/token/verify/ POST "{\"token\": \"$access\"}" ""
run "GET /auth/users/me/ (Bearer)" http://127.0.0.1:8100/auth/users/me/ GET "" "Bearer $access"
run "POST /api/token/ (argon2id login)" http://127.0.0.1:8100/api/token/ POST \
  '{"username": "loadtest", "password": "correct horse battery"}' ""
