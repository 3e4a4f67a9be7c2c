#!/usr/bin/env bash
# Load test with an external generator (wrk, Debian package "wrk") against a
# real `kluis serve` on loopback: authenticated GET /me and audited PATCH /me.
# Usage: scripts/load.sh [sqlite|postgres] [seconds]   (figures: docs/PERFORMANCE.md)
# KLUIS_BIN=/path/to/kluis runs that binary instead of building this tree
# (to compare builds with the same load); KLUIS_LOAD_CONNECTIONS sets wrk's
# connections (16).
set -euo pipefail
engine=${1:-sqlite}
secs=${2:-10}
conns=${KLUIS_LOAD_CONNECTIONS:-16}
command -v wrk >/dev/null || { echo "load.sh: install wrk (apt-get install wrk)" >&2; exit 2; }
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; [ -n "${db:-}" ] && psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; rm -rf "$work"' EXIT
if [ -n "${KLUIS_BIN:-}" ]; then cp "$KLUIS_BIN" "$work/kluis"; else go build -o "$work/kluis" ./cmd/kluis; fi
export KLUIS_DATA="$work/data" KLUIS_ARGON2_MEMORY_KIB=1024 KLUIS_ARGON2_TIME=1
if [ "$engine" = postgres ]; then
  db=kluis_load_$$
  psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $db"
  export KLUIS_DB="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
fi
port=$((20000 + RANDOM % 20000))
"$work/kluis" serve --addr 127.0.0.1:$port >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
base=http://127.0.0.1:$port/api/v1/orgs/load
link=$("$work/kluis" org create load --name Load --manager-email load@example.org 2>/dev/null)
token=${link#*#}
json='Content-Type: application/json'
curl -fs -H "$json" -d "{\"token\":\"$token\",\"name\":\"Load\",\"password\":\"load-passw0rd\"}" "$base/invitations/accept" >/dev/null
session=$(curl -fs -H "$json" -d '{"email":"load@example.org","password":"load-passw0rd"}' "$base/login" | sed 's/.*"token":"\([^"]*\)".*/\1/')
# One thread, so one Lua state and one counter: every PATCH sends a name no
# request sent before, so every one changes the user and is audited (an
# unchanged name is not). The chain's growth is checked against wrk's count.
cat >"$work/patch.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  return wrk.format("PATCH", nil, {["Authorization"] = "Bearer $session", ["Content-Type"] = "application/json"}, '{"name":"Name ' .. n .. '"}')
end
LUA
# CPU time of the server process in ms (utime + stime, 100 ticks a second).
cpu() { awk '{print ($14 + $15) * 10}' "/proc/$pid/stat"; }
events() { "$work/kluis" audit verify | sed -n 's/^org:.*: ok, \([0-9]*\) events$/\1/p'; }
echo "== $engine: GET /me"
c0=$(cpu)
wrk -t1 -c"$conns" -d"${secs}s" -H "Authorization: Bearer $session" "$base/me" | tee "$work/get.out" | grep -E "Requests/sec|Latency|Non-2xx"
n=$(grep -oE '^ *[0-9]+ requests' "$work/get.out" | tr -d ' ' | sed 's/requests//')
c1=$(cpu)
echo "   server CPU per request: $(( (c1 - c0) * 1000 / n )) µs, $(( (c1 - c0) / secs / 10 )) % of a core"
echo "== $engine: PATCH /me (audited, one organisation)"
before=$(events)
c0=$(cpu)
wrk -t1 -c"$conns" -d"${secs}s" -s "$work/patch.lua" "$base/me" | tee "$work/patch.out" | grep -E "Requests/sec|Latency|Non-2xx"
c1=$(cpu)
after=$(events)
n=$(grep -oE '^ *[0-9]+ requests' "$work/patch.out" | tr -d ' ' | sed 's/requests//')
echo "   $n PATCH answers counted by wrk, $((after - before)) events appended to the chain; server CPU per request: $(( (c1 - c0) * 1000 / n )) µs, $(( (c1 - c0) / secs / 10 )) % of a core"
"$work/kluis" audit verify >/dev/null && echo "== audit chains verify after the load"
