#!/usr/bin/env bash
# bench-sync.sh RINGKVD - ring changes and anti-entropy (`make bench-sync`).
#  1. join: a fresh local 3-node cluster (N=3 R=2 W=2, temp data dirs and
#     secret, free loopback ports) is loaded with KEYS keys of 100-byte values
#     (one wrk per node, each PUTting its slice once, CONNS connections in
#     all); then wrk runs a GET/PUT mix (MIX_PUT_PCT% PUT, ?r=R / ?w=W, random
#     keys, one wrk per node 1-3) in back-to-back WIN-second windows: one
#     "before" window, then node 4 starts with --join and windows go on until
#     every node sees 4 members "member" and sync.ranges_pending 0 (or
#     JOIN_MAX s), then one "after" window. Reported: join duration,
#     handoff_keys_sent / handoff_bytes_sent summed over the nodes, keys/s,
#     MiB/s, and req/s and p99 before / during / after.
#  2. anti-entropy: in the 4-node cluster (once sync counters are quiet),
#     AE_NODE is stopped (SIGTERM), AE_KEYS new keys that have it as a replica
#     are written (w=2), the others drop their hints (POST /cluster/hints/drop),
#     AE_NODE restarts and gets POST /cluster/repair; timed until every key is
#     readable with ?local=1 on it. Bytes = its ae_bytes_sent + bytes_received
#     and its peers' ae_bytes_sent, against the size of its copy.
# Figures go to docs/benchmarks.md (section bench:sync); raw files to OUT.
#   env: KEYS (1000000), CONNS (32), R (2), W (2), MIX_PUT_PCT (10), WIN (10 s),
#        JOIN_MAX (900 s), RATE_MB (0 = no cap; ringkvd's default is 32),
#        AE_INTERVAL_MS (0: exchanges only on demand and on a node's return,
#        so none runs in the middle of a measurement), AE_NODE (2), AE_KEYS
#        (100), AE_MAX (300 s), LOAD_MAX (1800 s), PORT (18401), REPORT (1),
#        OUT (${BENCH_RUN_DIR:-/tmp/kvbench}/ringkv-sync-DATE)
# Every wait is bounded; all traffic goes to 127.0.0.1; every process this
# script started is stopped on exit, Ctrl-C included.
set -euo pipefail
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
KEYS=${KEYS:-1000000} CONNS=${CONNS:-32} R=${R:-2} W=${W:-2} MIX_PUT_PCT=${MIX_PUT_PCT:-10}
WIN=${WIN:-10} JOIN_MAX=${JOIN_MAX:-900} RATE_MB=${RATE_MB:-0} AE_INTERVAL_MS=${AE_INTERVAL_MS:-0}
AE_NODE=${AE_NODE:-2} AE_KEYS=${AE_KEYS:-100} AE_MAX=${AE_MAX:-300} LOAD_MAX=${LOAD_MAX:-1800}
PORT=${PORT:-18401} REPORT=${REPORT:-1}
VSIZE=100 TABLE=bench
source "$root/tools/node-lib.sh"
helper() { python3 "$root/tools/bench-sync-helper.py" "$@"; }
command -v wrk >/dev/null || { echo "wrk not found (make bench-deps)" >&2; exit 1; }

base=$(find_node_ports "$PORT" 4) || exit 1

work=$(mktemp -d /tmp/ringkv-bench-sync.XXXXXX)
OUT=${OUT:-${BENCH_RUN_DIR:-/tmp/kvbench}/ringkv-sync-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/logs" "$OUT/win"
pids=(- - - -) wrks=() watchers=() watchdog=
cleanup() {
  trap - INT TERM EXIT
  set +e
  [ -n "$watchdog" ] && kill -TERM "$watchdog" 2>/dev/null
  local live=()
  for p in "${wrks[@]}" "${watchers[@]}" "${pids[@]}"; do [ "$p" != - ] && live+=("$p"); done
  [ ${#live[@]} -gt 0 ] && { kill -TERM "${live[@]}" 2>/dev/null; wait "${live[@]}" 2>/dev/null; }
  cp "$work"/node*.log "$OUT/logs/" 2>/dev/null
  rm -rf "$work"
  echo "all processes stopped; raw results in $OUT" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

url() { echo "http://127.0.0.1:$((base + $1 - 1))"; }
flags=(--sync-rate-mb "$RATE_MB" --anti-entropy-interval-ms "$AE_INTERVAL_MS")
start() { # K [extra flags]: start node K, record its pid
  local k=$1; shift
  start_node "$bin" "$work" "$k" $((base + k - 1)) "${flags[@]}" "$@" 2>/dev/null
  pids[$((k - 1))]=$started_pid
}
make_secret "$work"
start 1
for k in 2 3; do start $k --join "127.0.0.1:$((base + 1000))"; done
for k in 1 2 3; do wait_ready $((base + k - 1)) "${pids[$((k - 1))]}" "$work/node$k.log"; done
( while kill -0 $$ 2>/dev/null; do sleep 2; done
  for p in "${pids[@]}"; do [ "$p" != - ] && kill -TERM "$p"; done ) >/dev/null 2>&1 &
watchdog=$!
members_ok() { # node count
  local j; j=$(curl -fsS -m 1 "$(url "$1")/cluster" 2>/dev/null) || return 1
  [ "$(grep -o '"status": *"member"' <<<"$j" | wc -l)" -ge "$2" ] &&
    [ "$(grep -o '"liveness": *"alive"' <<<"$j" | wc -l)" -ge "$2" ]
}
for _ in $(seq 1 150); do
  members_ok 1 3 && members_ok 2 3 && members_ok 3 3 && break
  sleep 0.2
done
members_ok 1 3 && members_ok 2 3 && members_ok 3 3 || { echo "3 nodes do not see 3 members after 30 s" >&2; exit 1; }

{
  echo "date: $(date -Is)"
  echo "host: $(nproc) cpus, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
  echo "ringkvd: $(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet HEAD -- src include 2>/dev/null || echo ' + uncommitted changes in src/include')"
  echo "args: KEYS=$KEYS CONNS=$CONNS R=$R W=$W MIX_PUT_PCT=$MIX_PUT_PCT WIN=$WIN JOIN_MAX=$JOIN_MAX RATE_MB=$RATE_MB AE_INTERVAL_MS=$AE_INTERVAL_MS AE_NODE=$AE_NODE AE_KEYS=$AE_KEYS"
  echo "nodes: N=3 R=2 W=2 --secret-file --sync-rate-mb $RATE_MB --anti-entropy-interval-ms $AE_INTERVAL_MS, http $base..$((base + 3)) (node4 joins)"
} | tee "$OUT/meta.txt" >&2

# wrk scripts (written here so that the benchmark is one file): a loader that
# PUTs keys [KV_LO, KV_HI) once each, and a lazy GET/PUT mix that writes its
# latency histogram like tools/wrk/cluster-kv.lua (keys and values as the
# shared common.lua makes them: bench-%08d, 100 bytes of [a-z0-9])
cat >"$work/common.lua" <<'EOF'
prefix = "bench-"
local alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
local t = {}
for i = 1, tonumber(os.getenv("KV_VALUE_SIZE") or "100") do
  local j = ((i * 7919) % #alphabet) + 1
  t[i] = alphabet:sub(j, j)
end
body = '{"value":"' .. table.concat(t) .. '"}'
headers = { ["Content-Type"] = "application/json" }
base = (wrk.path or "/"):gsub("/+$", "")
function write_result(summary, latency, hist)
  local e, secs = summary.errors, summary.duration / 1e6
  local line = string.format(
    "RESULT rps=%.1f p50_ms=%.3f p95_ms=%.3f p99_ms=%.3f max_ms=%.3f requests=%d duration_s=%.3f "
    .. "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, summary.requests, secs,
    e.connect, e.read, e.write, e.status, e.timeout)
  io.write(line)
  if hist then
    local f = assert(io.open(hist, "w"))
    f:write(line)
    for i = 1, #latency do local v, c = latency(i); f:write(string.format("H %d %d\n", v, c)) end
    f:close()
  end
end
EOF
cat >"$work/load.lua" <<EOF
dofile("$work/common.lua")
local lo, hi = tonumber(os.getenv("KV_LO")), tonumber(os.getenv("KV_HI"))
local next_i, answered = lo, 0
function request()
  local i = next_i
  next_i = next_i + 1
  if next_i >= hi then next_i = lo end   -- the last few connections rewrite early keys
  return wrk.format("PUT", string.format("%s/%s%08d?w=$W", base, prefix, i), headers, body)
end
function response(status, hdrs, b)
  answered = answered + 1
  if answered >= hi - lo then wrk.thread:stop() end
end
function done(summary, latency, requests) write_result(summary, latency, nil) end
EOF
cat >"$work/mix.lua" <<EOF
dofile("$work/common.lua")
local n, put_pct = tonumber(os.getenv("KV_KEYS")), tonumber(os.getenv("KV_PUT_PCT"))
function init(args) math.randomseed(tonumber(os.getenv("KV_SEED"))) end
function request()
  local path = string.format("%s/%s%08d", base, prefix, math.random(0, n - 1))
  if math.random(1, 100) <= put_pct then return wrk.format("PUT", path .. "?w=$W", headers, body) end
  return wrk.format("GET", path .. "?r=$R")
end
function done(summary, latency, requests) write_result(summary, latency, os.getenv("KV_HIST")) end
EOF

since() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
conns_of() { echo $((CONNS / 3 + ($1 <= CONNS % 3 ? 1 : 0))); }

# --- load -------------------------------------------------------------------
echo "== load $KEYS keys ($VSIZE-byte values, w=$W), one wrk per node, $CONNS connections" >&2
t0=$(date +%s.%N)
wrks=()
for k in 1 2 3; do
  lo=$(((k - 1) * KEYS / 3)) hi=$((k * KEYS / 3))
  KV_LO=$lo KV_HI=$hi KV_VALUE_SIZE=$VSIZE wrk -t1 -c"$(conns_of $k)" -d"${LOAD_MAX}s" --timeout 10s \
    -s "$work/load.lua" "$(url $k)/$TABLE/key" >"$OUT/logs/load-node$k.txt" 2>&1 &
  wrks+=($!)
done
# wrk sleeps for -d after its threads stop: interrupt each once only its main thread is left
# (and only once it has had its threads: at start it has none yet)
end=$((SECONDS + LOAD_MAX + 10))
declare -A had_threads=()
while [ $SECONDS -lt $end ]; do
  alive=0
  for p in "${wrks[@]}"; do
    kill -0 "$p" 2>/dev/null || continue
    alive=1
    nt=$(ls /proc/"$p"/task 2>/dev/null | wc -l)
    if [ "$nt" -gt 1 ]; then had_threads[$p]=1
    elif [ -n "${had_threads[$p]:-}" ]; then kill -INT "$p" 2>/dev/null || true
    fi
  done
  [ $alive = 0 ] && break
  sleep 0.2
done
wait "${wrks[@]}" || true
wrks=()
load_s=$(since "$t0")
load_err=0
for k in 1 2 3; do
  l=$(grep '^RESULT' "$OUT/logs/load-node$k.txt") || { cat "$OUT/logs/load-node$k.txt" >&2; exit 1; }
  e=$(sed 's/.*err_status=\([0-9]*\) err_timeout=\([0-9]*\).*/\1+\2/' <<<"$l")
  load_err=$((load_err + e))
  echo "   node$k: ${l#RESULT }" >&2
done
for i in 0 $((KEYS / 3)) $((KEYS - 1)); do
  curl -fsS -m 5 -o /dev/null "$(url 1)/$TABLE/key/$(printf 'bench-%08d' "$i")" ||
    { echo "load check failed: bench-$i not found" >&2; exit 1; }
done
load_rps=$(awk -v k="$KEYS" -v s="$load_s" 'BEGIN { printf "%d", k / s }')
echo "   loaded $KEYS keys in ${load_s%.*} s ($load_rps PUT/s, $load_err errors)" >&2
helper quiet --max 120 --hold 3 "$(url 1)" "$(url 2)" "$(url 3)" >/dev/null || true

# --- join under load ----------------------------------------------------------
win=0
run_window() { # -> group of histogram files in $group
  local k f=() seed
  win=$((win + 1))
  wrks=()
  for k in 1 2 3; do
    f+=("$OUT/win/w$win-node$k.hist")
    KV_KEYS=$KEYS KV_PUT_PCT=$MIX_PUT_PCT KV_SEED=$((42 + 7 * k + 1000 * win)) KV_HIST=${f[-1]} \
      KV_VALUE_SIZE=$VSIZE timeout $((WIN + 30)) wrk -t1 -c"$(conns_of $k)" -d"${WIN}s" --timeout 5s \
      -s "$work/mix.lua" "$(url $k)/$TABLE/key" >"$OUT/win/w$win-node$k.txt" 2>&1 &
    wrks+=($!)
  done
  wait "${wrks[@]}" || true
  wrks=()
  group=$(IFS=,; echo "${f[*]}")
}
stats4() { helper stats "$(url 1)" "$(url 2)" "$(url 3)" "$(url 4)"; }
echo "== before: ${WIN}s mix" >&2
stats4 >"$OUT/stats-before.json"
run_window; g_before=$group
helper hist --out "$OUT/before.json" "$g_before" >&2
echo "== node4 joins (--sync-rate-mb $RATE_MB) while the mix runs" >&2
tj0=$(date +%s.%N)
start 4 --join "127.0.0.1:$((base + 1000))"
helper watch-join --out "$OUT/join.tsv" --max "$JOIN_MAX" "$(url 1)" "$(url 2)" "$(url 3)" "$(url 4)" \
  >"$OUT/join-done.txt" 2>"$OUT/logs/watch-join.err" &
watchers=($!)
g_during=()
while :; do
  run_window; g_during+=("$group")
  echo "   window $win: $(helper hist --out /dev/null "$group" | cut -d' ' -f1,4,7-)" >&2
  kill -0 "${watchers[0]}" 2>/dev/null || break
done
join_status=done
wait "${watchers[0]}" || join_status="NOT DONE after"
watchers=()
join_s=$(tail -1 "$OUT/join-done.txt" 2>/dev/null || true)
[ -n "$join_s" ] || join_s=$(since "$tj0")
stats4 >"$OUT/stats-joined.json"
node4_keys=$(helper count-local "$(url 4)" "$TABLE" || echo -1)
echo "   node4 holds $node4_keys keys after the join (N=3 of 4 nodes: ~$((KEYS * 3 / 4)) expected)" >&2
echo "   join $join_status ${join_s} s" >&2
helper hist --out "$OUT/during.json" "${g_during[@]}" >&2
echo "== after: ${WIN}s mix" >&2
run_window
helper hist --out "$OUT/after.json" "$group" >&2

# --- anti-entropy after a missed write ---------------------------------------
echo "== anti-entropy: node$AE_NODE misses $AE_KEYS writes" >&2
all=("$(url 1)" "$(url 2)" "$(url 3)" "$(url 4)")
helper quiet --max 300 --hold 5 "${all[@]}" >"$OUT/quiet-before-ae.txt" || echo "   note: sync counters still moving" >&2
stats4 >"$OUT/stats-before-ae.json"
via=1; [ "$AE_NODE" = 1 ] && via=3
keys=$(helper pick --node "node$AE_NODE" --count "$AE_KEYS" --prefix ae- --table "$TABLE" "$(url $via)")
vp=${pids[$((AE_NODE - 1))]}
kill -TERM "$vp"
for _ in $(seq 1 300); do kill -0 "$vp" 2>/dev/null || break; sleep 0.1; done
kill -0 "$vp" 2>/dev/null && { echo "node$AE_NODE did not exit on SIGTERM within 30 s" >&2; exit 1; }
wait "$vp" 2>/dev/null || true
pids[$((AE_NODE - 1))]=-
# shellcheck disable=SC2086
read -r put_ok put_bad < <(helper put --w 2 --value-size $VSIZE --table "$TABLE" "$(url $via)" $keys)
sleep 2   # hints taken after the ack
dropped=0
for k in 1 2 3 4; do
  [ $k = "$AE_NODE" ] && continue
  d=$(curl -fsS -m 5 -X POST "$(url $k)/cluster/hints/drop" | grep -o '"dropped": *[0-9]*' | grep -o '[0-9]*$')
  dropped=$((dropped + d))
done
echo "   $put_ok keys written ($put_bad failed), $dropped hints dropped" >&2
stats4 >"$OUT/stats-ae-peers0.json"
tr0=$(date +%s.%N)
start "$AE_NODE"
wait_ready $((base + AE_NODE - 1)) "${pids[$((AE_NODE - 1))]}" "$work/node$AE_NODE.log"
t_rep=$(date +%s.%N)
curl -fsS -m 5 -X POST "$(url "$AE_NODE")/cluster/repair" >"$OUT/repair.json"
# shellcheck disable=SC2086
read -r ae_wait ae_found < <(helper wait-local --max "$AE_MAX" "$(url "$AE_NODE")" "$TABLE" $keys) || true
t_done=$(date +%s.%N)
echo "   $ae_found/$AE_KEYS keys local on node$AE_NODE $(since "$tr0") s after its restart" >&2
helper quiet --max 120 --hold 5 "${all[@]}" >/dev/null || echo "   note: sync counters still moving" >&2
stats4 >"$OUT/stats-after-ae.json"
copy_keys=$(helper count-local "$(url "$AE_NODE")" "$TABLE")
copy_disk=$(du -sb "$work/node$AE_NODE" | cut -f1)

python3 - "$OUT" "$AE_NODE" "$copy_keys" "$copy_disk" "$tr0" "$t_rep" "$t_done" "$ae_found" <<'EOF' >"$OUT/ae.json"
import json, sys
out, node, copy_keys, copy_disk, tr0, trep, tdone, found = sys.argv[1:]
ld = lambda n: json.load(open(f"{out}/{n}"))
b, a = ld("stats-ae-peers0.json"), ld("stats-after-ae.json")
urls = sorted(a)
me = urls[int(node) - 1]
peers = [u for u in urls if u != me]
d = lambda u, f: a[u]["sync"][f] - b[u]["sync"][f]
s = a[me]["sync"]   # the restarted node's counters start at 0
res = {"node": f"node{node}", "from_restart_s": float(tdone) - float(tr0),
       "from_repair_s": float(tdone) - float(trep), "found": int(found),
       "exchanges_node": s["ae_exchanges"], "exchanges_peers": sum(d(u, "ae_exchanges") for u in peers),
       "keys_repaired": s["ae_keys_repaired"] + sum(d(u, "ae_keys_repaired") for u in peers),
       "keys_compared_node": s["ae_keys_compared"],
       "bytes_sent_node": s["ae_bytes_sent"], "bytes_received_node": s["bytes_received"],
       "bytes_sent_peers": sum(d(u, "ae_bytes_sent") for u in peers),
       "copy_keys": int(copy_keys), "copy_disk_bytes": int(copy_disk),
       "copy_logical_bytes": int(copy_keys) * (len("bench-00000000") + 100)}
res["bytes_total"] = res["bytes_sent_node"] + res["bytes_received_node"]   # through the restarted node
print(json.dumps(res))
EOF
cat "$OUT/ae.json" >&2

cmd="make bench-sync  (tools/bench-sync.sh: KEYS=$KEYS CONNS=$CONNS WIN=$WIN RATE_MB=$RATE_MB AE_INTERVAL_MS=$AE_INTERVAL_MS AE_NODE=$AE_NODE AE_KEYS=$AE_KEYS)"
python3 - "$OUT" "$cmd" "$KEYS" "$VSIZE" "$CONNS" "$MIX_PUT_PCT" "$WIN" "$RATE_MB" "$AE_INTERVAL_MS" \
  "$load_s" "$load_rps" "$load_err" "$join_status" "$join_s" "$dropped" "$AE_KEYS" "$node4_keys" <<'EOF' >"$OUT/results.json"
import json, sys
(out, cmd, keys, vsize, conns, pct, win, rate, aei, load_s, load_rps, load_err, jst, join_s,
 dropped, aekeys, node4_keys) = sys.argv[1:]
member_s = None   # first poll at which no node reports anyone "joining"
for line in open(f"{out}/join.tsv").read().splitlines()[1:]:
    f = line.split("\t")
    if "joining" not in line and "-" not in f[1::8]:
        member_s = float(f[0]); break
ld = lambda n: json.load(open(f"{out}/{n}"))
b, a = ld("stats-before.json"), ld("stats-joined.json")
def delta(f, urls=None):
    return sum(a[u]["sync"][f] - ((b.get(u) or {}).get("sync", {}).get(f) or 0)
               for u in (urls or a) if a[u])
urls = sorted(a)
ae = ld("ae.json"); ae["hints_dropped"] = int(dropped); ae["keys"] = int(aekeys)
meta = open(f"{out}/meta.txt").read().splitlines()
print(json.dumps({
    "date": meta[0].split(": ", 1)[1][:16].replace("T", " "), "command": cmd, "keys": int(keys),
    "value_size": int(vsize), "conns": int(conns), "put_pct": int(pct), "window_s": int(win),
    "rate_mb": int(rate), "ae_interval_ms": int(aei),
    "join": {"load_s": float(load_s), "load_rps": int(load_rps), "load_errors": int(load_err),
             "status": jst, "duration_s": float(join_s),
             "keys_sent": delta("handoff_keys_sent"), "bytes_sent": delta("handoff_bytes_sent"),
             "node4_keys_received": a[urls[3]]["sync"]["keys_received"] if a[urls[3]] else -1,
             "ae_exchanges": delta("ae_exchanges"), "member_s": member_s,
             "node4_keys": int(node4_keys)},
    "before": ld("before.json"), "during": ld("during.json"), "after": ld("after.json"),
    "ae": ae, "meta": meta}))
EOF
if [ "$REPORT" = 1 ]; then
  helper report --results "$OUT/results.json" --into "$root/docs/benchmarks.md"
  echo "wrote docs/benchmarks.md (section bench:sync)" >&2
fi
