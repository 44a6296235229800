#!/usr/bin/env bash
# Instructions per request of the hot endpoints and of the yardstick (`bare_verify.rs`), counted
# by valgrind's callgrind: unlike wrk's requests per second, the count does not drift with what
# else the machine is doing, so it settles what a noisy throughput ratio cannot.
#   Tessera on the embedded SQLite default (no network store: the same checks from memory as with
#   Redis), throttling off as in load.sh, log level warn, release build; each server under callgrind, warmed for 3 s, then
#   counted over 5 s of `wrk -t1 -c4`. Needs valgrind and wrk.
# CACHE=1 also simulates the caches and branch predictors (slower): instruction and data cache
# misses and mispredicted branches per request, which equal instruction counts do not show.
set -euo pipefail
cd "$(dirname "$0")/.."
key=load-test-signing-key-0123456789abcdef0123
work=$(mktemp -d)
cleanup() {
  pkill -f "callgrind-out-file=$work/" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for tool in valgrind wrk; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install $tool)" >&2; exit 1; }
done
target=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --quiet --bin tessera
cargo bench --quiet --bench bare_verify --no-run 2>/dev/null
yardstick=$(find "$target/release/deps" -maxdepth 1 -type f -executable -name 'bare_verify-*' \
  -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)
simulate=()
[ "${CACHE:-0}" = 1 ] && simulate=(--cache-sim=yes --branch-sim=yes)
grind() { # out-file program [args...] (settings in the environment)
  local out=$1
  shift
  (cd "$work" && exec valgrind --tool=callgrind "${simulate[@]}" --callgrind-out-file="$out" "$@" \
    >"$out.log" 2>&1) &
  grinding=$!
}
wait_for() { # url
  for _ in $(seq 1 120); do curl -s -o /dev/null "$1" && return; sleep 0.5; done
  echo "nothing answers $1" >&2
  exit 1
}
count() { # pid out-file url method body auth
  local n total dump out
  WRK_METHOD=$4 WRK_BODY=$5 WRK_AUTH=$6 wrk -t1 -c4 -d3s -s benches/wrk_request.lua "$3" >/dev/null
  callgrind_control -z "$1" >/dev/null
  out=$(WRK_METHOD=$4 WRK_BODY=$5 WRK_AUTH=$6 wrk -t1 -c4 -d5s -s benches/wrk_request.lua "$3")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  # Only the answers that did the work count: a refusal is cheaper and would flatter the figure.
  if grep -q Non-2xx <<<"$out"; then
    echo "$3 answered errors under load: $(grep Non-2xx <<<"$out")" >&2
    exit 1
  fi
  callgrind_control -d "$1" >/dev/null
  dump=$(find "$work" -name "$(basename "$2").[0-9]*" -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)
  # Per request: instructions, then (CACHE=1) I1 misses, D1 misses, mispredicted branches.
  awk -v n="$n" '/^events:/ {for (i = 2; i <= NF; i++) ev[$i] = i}
    /^summary:/ {
      out = int($ev["Ir"] / n)
      if ("I1mr" in ev) out = out sprintf(" %d %d %d", $ev["I1mr"] / n,
        ($ev["D1mr"] + $ev["D1mw"]) / n, ($ev["Bcm"] + $ev["Bim"]) / n)
      print out
    }' "$dump"
}

BARE_KEY="$key" BARE_BIND=127.0.0.1:8141 grind "$work/yardstick" "$yardstick" --bench
yardstick_pid=$grinding
DATABASE_URL="sqlite://$work/tessera.db" TESSERA__JWT__SIGNING_KEY="$key" TESSERA__LOG__LEVEL=warn \
  TESSERA__THROTTLE__ENABLED=false TESSERA__SERVER__BIND=127.0.0.1:8140 grind "$work/tessera" "$target/release/tessera" serve
tessera_pid=$grinding
wait_for http://127.0.0.1:8141/verify
wait_for http://127.0.0.1:8140/health/ready
login='{"username": "loadtest", "password": "correct horse battery"}'
curl -sf -X POST localhost:8140/auth/users/ -H 'Content-Type: application/json' -d "$login" >/dev/null
access=$(curl -sf -X POST localhost:8140/api/token/ -H 'Content-Type: application/json' -d "$login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])')
body="{\"token\": \"$access\"}"
yard=$(count "$yardstick_pid" "$work/yardstick" http://127.0.0.1:8141/verify POST "$body" "")
verify=$(count "$tessera_pid" "$work/tessera" http://127.0.0.1:8140/api/token/verify/ POST "$body" "")
me=$(count "$tessera_pid" "$work/tessera" http://127.0.0.1:8140/auth/users/me/ GET "" "Bearer $access")
{
echo "per request (callgrind); ratio = yardstick / endpoint, as throughput would be"
[ ${#simulate[@]} -gt 0 ] && echo "columns: instructions, ratio, I1 misses, D1 misses, mispredicted branches"
printf '%-32s %8s  %4s  %s\n' yardstick "${yard%% *}" "" "$(cut -s -d' ' -f2- <<<"$yard")"
for pair in "POST /api/token/verify/:$verify" "GET /auth/users/me/ (Bearer):$me"; do
  counts=${pair##*:}
  printf '%-32s %8s  %4s  %s\n' "${pair%:*}" "${counts%% *}" \
    "$(python3 -c "print(f'{${yard%% *} / ${counts%% *}:.2f}')")" "$(cut -s -d' ' -f2- <<<"$counts")"
done
} | sed 's/ *$//'
