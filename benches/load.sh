#!/usr/bin/env bash
# Load test of the hot endpoints with wrk (apt-get install wrk), server and load generator on
# the same machine, every figure compared with a yardstick measured in the same run: a bare poem
# endpoint that parses the same JSON and checks the same HS256 token and does nothing else.
#   Tessera on PostgreSQL + Redis (a fresh database on $PG, key prefix per run), throttling off
#   (THROTTLE=true: on, with rates no load generator reaches), log level warn, release build.
# Knobs: DURATION (10s), ROUNDS (5) and PAIR_DURATION (4s) of the hot endpoints' alternation with
# the yardstick, CONNECTIONS (32), THREADS (2), PG (postgres://postgres@127.0.0.1:5432),
# REDIS_URL (redis://127.0.0.1:6379/0).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-10s}
rounds=${ROUNDS:-5}
pair_duration=${PAIR_DURATION:-4s}
connections=${CONNECTIONS:-32}
threads=${THREADS:-2}
pg=${PG:-postgres://postgres@127.0.0.1:5432}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379/0}
key=load-test-signing-key-0123456789abcdef0123
work=$(mktemp -d)
db="tessera_load_$$"
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  # cargo bench leaves the yardstick binary running when killed: stop it by name too.
  pkill -f "deps/bare_verify-.* --bench" || true
  wait 2>/dev/null || true
  psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-$PWD/target}
bin="$target/release/tessera"
cargo build --release --quiet --bin tessera
cargo bench --quiet --bench bare_verify --no-run 2>/dev/null
cargo bench --quiet --bench argon2_rate --no-run 2>/dev/null
psql -q "$pg/postgres" -c "CREATE DATABASE $db" >/dev/null

serve() { # port database-url [extra env...]
  local port=$1 url=$2
  shift 2
  (cd "$work" && env DATABASE_URL="$url" TESSERA__JWT__SIGNING_KEY="$key" TESSERA__LOG__LEVEL=warn \
    TESSERA__THROTTLE__ENABLED="${THROTTLE:-false}" TESSERA__THROTTLE__ANON=100000000/second \
    TESSERA__THROTTLE__USER=100000000/second TESSERA__THROTTLE__SCOPES__LOGIN=100000000/second \
    TESSERA__THROTTLE__SCOPES__REFRESH=100000000/second TESSERA__THROTTLE__LOCKOUT_FAILURES=0 \
    TESSERA__SERVER__BIND="127.0.0.1:$port" "$@" "$bin" serve) &
  pids+=($!)
  for _ in $(seq 1 100); do
    curl -sf "localhost:$port/health/ready" >/dev/null && return
    sleep 0.1
  done
  echo "tessera on $port did not start" >&2
  exit 1
}
rss() { awk '/^VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$1/status"; }
peak() { awk '/^VmHWM/ {printf "%.1f MB", $2/1024}' "/proc/$1/status"; }

# Idle memory first, each server alone: the embedded default, then PostgreSQL + Redis.
serve 8102 "sqlite://$work/sqlite/tessera.db"
sqlite_pid=${pids[-1]}
# Idle: five seconds after start-up, when the memory start-up freed has been given back.
sleep 5
idle_sqlite=$(rss "$sqlite_pid")
kill "$sqlite_pid"
serve 8100 "$pg/$db" REDIS_URL="$redis_url" TESSERA__REDIS__KEY_PREFIX="load:$$:"
server=${pids[-1]}
sleep 5
idle_pg=$(rss "$server")
BARE_KEY="$key" BARE_BIND=127.0.0.1:8101 cargo bench --quiet --bench bare_verify >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null localhost:8101/verify && break; sleep 0.2; done

login='{"username": "loadtest", "password": "correct horse battery"}'
curl -sf -X POST localhost:8100/auth/users/ -H 'Content-Type: application/json' -d "$login" >/dev/null
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
pair=$(curl -sf -X POST localhost:8100/api/token/ -H 'Content-Type: application/json' -d "$login")
access=$(field "$pair" access)
token=$(field "$(curl -sf -X POST localhost:8100/auth/token/login/ -H 'Content-Type: application/json' -d "$login")" auth_token)
# One refresh family per wrk connection, and as many spare (wrk's probe request takes one).
for _ in $(seq 1 $((2 * connections))); do
  field "$(curl -sf -X POST localhost:8100/api/token/ -H 'Content-Type: application/json' -d "$login")" refresh
done > "$work/refresh-tokens"

declare -A rate p99
run() { # name url method body auth [connections]
  local out
  out=$(WRK_METHOD=$3 WRK_BODY=$4 WRK_AUTH=$5 wrk -t"$threads" -c"${6:-$connections}" -d"$duration" --latency \
    -s benches/wrk_request.lua "$2")
  report "$1" "$out"
}
report() { # name wrk-output
  local rps p50 p99_ non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$2")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$2")
  p99_=$(awk '$1 == "99%" {print $2}' <<<"$2")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$2")
  rate[$1]=$rps
  p99[$1]=$p99_
  local ratio=""
  [ -n "${rate[yardstick]:-}" ] && ratio=$(python3 -c "print(f'{$rps / ${rate[yardstick]}:.2f}')")
  printf '%-36s %10s req/s %6s  p50 %-9s p99 %-9s non-2xx %s\n' "$1" "$rps" "$ratio" "$p50" "$p99_" "${non2xx:-0}"
}

# The three hot endpoints against the yardstick in alternating short runs (ROUNDS of
# PAIR_DURATION): this machine's speed drifts within a minute (other tenants), so each ratio is
# taken between neighbouring runs, and the median of the rounds is reported with all of them.
paired() { # name url method body auth
  local out yard ratios=()
  for _ in $(seq 1 "$rounds"); do
    out=$(WRK_METHOD=POST WRK_BODY="{\"token\": \"$access\"}" WRK_AUTH="" wrk -t"$threads" \
      -c"$connections" -d"$pair_duration" -s benches/wrk_request.lua http://127.0.0.1:8101/verify)
    yard=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    rate[yardstick]=$yard
    out=$(WRK_METHOD=$3 WRK_BODY=$4 WRK_AUTH=$5 wrk -t"$threads" -c"$connections" -d"$pair_duration" \
      --latency -s benches/wrk_request.lua "$2")
    ratios+=("$(python3 -c "print(f'{$(awk '/Requests\/sec/ {print $2}' <<<"$out") / $yard:.2f}')")")
  done
  local median
  median=$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(((rounds + 1) / 2))p")
  printf '%-36s %10s req/s %6s  p99 %-9s (rounds: %s; yardstick %s req/s last)\n' "$1" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$median" "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
    "${ratios[*]}" "$yard"
}

echo "wrk -t$threads -c$connections, server and load generator on the same $(nproc) cores"
echo "hot endpoints: median ratio to the yardstick over $rounds alternating rounds of $pair_duration"
paired "POST /api/token/verify/" http://127.0.0.1:8100/api/token/verify/ POST "{\"token\": \"$access\"}" ""
paired "GET /auth/users/me/ (Bearer)" http://127.0.0.1:8100/auth/users/me/ GET "" "Bearer $access"
paired "GET /auth/users/me/ (Token key)" http://127.0.0.1:8100/auth/users/me/ GET "" "Token $token"
echo "the rest: -d$duration each"
report "POST /api/token/refresh/ (rotation)" "$(WRK_TOKENS="$work/refresh-tokens" WRK_PER_THREAD=$((2 * connections / threads)) \
  wrk -t"$threads" -c"$connections" -d"$duration" --latency -s benches/wrk_refresh.lua http://127.0.0.1:8100)"
run "POST /api/token/ (argon2id login)" http://127.0.0.1:8100/api/token/ POST "$login" ""
limit=$(cargo bench --quiet --bench argon2_rate 2>/dev/null | awk '{print $NF}')
logins=${rate["POST /api/token/ (argon2id login)"]}
python3 -c "print(f'argon2 limit (same cost, one thread per core): $limit/s; logins reach {$logins / $limit:.0%} of it')"

# Verify latency under a login storm: 64 connections logging in, 32 verifying, at once.
WRK_METHOD=POST WRK_BODY="$login" wrk -t1 -c64 -d"$duration" -s benches/wrk_request.lua \
  http://127.0.0.1:8100/api/token/ >"$work/storm" &
storm=$!
run "verify during a login storm (c=64)" http://127.0.0.1:8100/api/token/verify/ POST "{\"token\": \"$access\"}" "" 32
wait "$storm"

# Memory: idle, and the peak under 1,000 concurrent logins (the hashing queue bounds it).
WRK_METHOD=POST WRK_BODY="$login" wrk -t2 -c1000 -d"$duration" -s benches/wrk_request.lua \
  http://127.0.0.1:8100/api/token/ >"$work/flood" 2>&1 || true
echo "RSS idle: SQLite $idle_sqlite, PostgreSQL+Redis $idle_pg; peak after 1,000 concurrent logins: $(peak "$server")"
