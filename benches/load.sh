#!/usr/bin/env bash
# Load test of the hot endpoints with wrk (apt-get install wrk), server and load generator on
# the same machine, every figure compared with a yardstick measured in the same run: a bare poem
# endpoint that parses the same JSON and checks the same HS256 token and does nothing else.
#   Tessera on PostgreSQL + Redis (a fresh database on $PG, key prefix per run), throttling off
#   (THROTTLE=true: on, with rates no load generator reaches), log level warn, release build.
# Knobs: DURATION (10s), ROUNDS (5) and PAIR_DURATION (4s) of the alternations (the hot endpoints
# with the yardstick, logins with the argon2 limit), CONNECTIONS (32), THREADS (2),
# PG (postgres://postgres@127.0.0.1:5432), REDIS_URL (redis://127.0.0.1:6379/0).
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

non2xx() { awk '/Non-2xx/ {n = $5} END {print n + 0}' <<<"$1"; }
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
median_ms() { # wrk latencies (478.00us, 6.42ms, 1.08s) -> their median in ms
  python3 -c 'import statistics, sys
def ms(v):
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * scale
print(f"{statistics.median(ms(v) for v in sys.argv[1:]):.2f}ms")' "$@"
}

# The three hot endpoints against the yardstick in alternating short runs (ROUNDS of
# PAIR_DURATION): this machine's speed drifts within a minute (other tenants), so each ratio is
# taken between neighbouring runs, and the median of the rounds is reported with all of them.
paired() { # name url method body auth
  local out yard ratios=() refused=0
  for _ in $(seq 1 "$rounds"); do
    out=$(WRK_METHOD=POST WRK_BODY="{\"token\": \"$access\"}" WRK_AUTH="" wrk -t"$threads" \
      -c"$connections" -d"$pair_duration" -s benches/wrk_request.lua http://127.0.0.1:8101/verify)
    yard=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    out=$(WRK_METHOD=$3 WRK_BODY=$4 WRK_AUTH=$5 wrk -t"$threads" -c"$connections" -d"$pair_duration" \
      --latency -s benches/wrk_request.lua "$2")
    refused=$((refused + $(non2xx "$out")))
    ratios+=("$(python3 -c "print(f'{$(awk '/Requests\/sec/ {print $2}' <<<"$out") / $yard:.2f}')")")
  done
  printf '%-36s %10s req/s %6s  p99 %-9s (rounds: %s; yardstick %s req/s last) non-2xx %s\n' "$1" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(median "${ratios[@]}")" \
    "$(awk '$1 == "99%" {print $2}' <<<"$out")" "${ratios[*]}" "$yard" "$refused"
}

echo "wrk -t$threads -c$connections, server and load generator on the same $(nproc) cores"
echo "hot endpoints: median ratio to the yardstick over $rounds alternating rounds of $pair_duration"
paired "POST /api/token/verify/" http://127.0.0.1:8100/api/token/verify/ POST "{\"token\": \"$access\"}" ""
paired "GET /auth/users/me/ (Bearer)" http://127.0.0.1:8100/auth/users/me/ GET "" "Bearer $access"
paired "GET /auth/users/me/ (Token key)" http://127.0.0.1:8100/auth/users/me/ GET "" "Token $token"
echo "the rest: -d$duration each"
out=$(WRK_TOKENS="$work/refresh-tokens" WRK_PER_THREAD=$((2 * connections / threads)) \
  wrk -t"$threads" -c"$connections" -d"$duration" --latency -s benches/wrk_refresh.lua http://127.0.0.1:8100)
printf '%-36s %10s req/s  p50 %-9s p99 %-9s non-2xx %s\n' "POST /api/token/refresh/ (rotation)" \
  "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1 == "50%" {print $2}' <<<"$out")" \
  "$(awk '$1 == "99%" {print $2}' <<<"$out")" "$(non2xx "$out")"
# Logins against the argon2 limit (the same cost, one thread per core), alternating like the
# hot endpoints: the limit drifts as much as the rest. Each login run starts and ends with an
# idle hashing pool, so neither run pays for the other's leftover jobs.
idle_pool() {
  for _ in $(seq 1 300); do
    curl -sf localhost:8100/metrics | grep -q '^tessera_password_hashing_in_flight 0$' && return
    sleep 0.1
  done
  echo "the hashing pool did not empty within 30 s" >&2
  exit 1
}
login_ratios=()
refused=0
for _ in $(seq 1 "$rounds"); do
  idle_pool
  limit=$(ARGON2_SECONDS=${pair_duration%s} cargo bench --quiet --bench argon2_rate 2>/dev/null | awk '{print $NF}')
  out=$(WRK_METHOD=POST WRK_BODY="$login" WRK_AUTH="" wrk -t"$threads" -c"$connections" -d"$pair_duration" \
    --latency -s benches/wrk_request.lua http://127.0.0.1:8100/api/token/)
  logins=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  refused=$((refused + $(non2xx "$out")))
  login_ratios+=("$(python3 -c "print(f'{$logins / $limit:.2f}')")")
done
idle_pool
printf '%-36s %10s req/s %6s  p99 %-9s (rounds: %s; argon2 limit %s/s last) non-2xx %s\n' \
  "POST /api/token/ (argon2id login)" "$logins" \
  "$(median "${login_ratios[@]}")" \
  "$(awk '$1 == "99%" {print $2}' <<<"$out")" "${login_ratios[*]}" "$limit" "$refused"

# Verify latency under a login storm: 64 connections logging in, 32 verifying, at once; ROUNDS
# storms of PAIR_DURATION, each from an idle hashing pool, every round's p99 printed with the
# median (one neighbour's burst on this shared machine moves a single p99 by tens of ms).
storm_p99=()
storm_logins=()
for _ in $(seq 1 "$rounds"); do
  idle_pool
  WRK_METHOD=POST WRK_BODY="$login" wrk -t1 -c64 -d"$pair_duration" -s benches/wrk_request.lua \
    http://127.0.0.1:8100/api/token/ >"$work/storm" &
  storm=$!
  out=$(WRK_METHOD=POST WRK_BODY="{\"token\": \"$access\"}" WRK_AUTH="" wrk -t"$threads" -c32 \
    -d"$pair_duration" --latency -s benches/wrk_request.lua http://127.0.0.1:8100/api/token/verify/)
  wait "$storm"
  storm_p99+=("$(awk '$1 == "99%" {print $2}' <<<"$out")")
  storm_logins+=("$(awk '/Requests\/sec/ {print $2}' "$work/storm")")
done
printf '%-36s %10s req/s  p99 median %s (rounds: %s; logins/s meanwhile: %s)\n' \
  "verify during a login storm (c=64)" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
  "$(median_ms "${storm_p99[@]}")" "${storm_p99[*]}" "${storm_logins[*]}"

# Memory: idle, and the peak under 1,000 concurrent logins (the hashing queue bounds it).
WRK_METHOD=POST WRK_BODY="$login" wrk -t2 -c1000 -d"$duration" -s benches/wrk_request.lua \
  http://127.0.0.1:8100/api/token/ >"$work/flood" 2>&1 || true
echo "RSS idle: SQLite $idle_sqlite, PostgreSQL+Redis $idle_pg; peak after 1,000 concurrent logins: $(peak "$server")"
