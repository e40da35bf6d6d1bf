#!/usr/bin/env bash
# bench-cluster.sh RINGKVD - the cluster benchmark (`make bench`).
# Starts a fresh local 3-node cluster (N=3 R=2 W=2, temporary data dirs, a
# temporary cluster secret, free loopback ports) and one single node (N=1,
# same secret, same flags) for the quorum-vs-single ratio, then:
#  1. spread: loads KEYS keys of 100-byte values and runs wrk at CONNS
#     connections spread over the 3 nodes (one wrk per node, started
#     together, CONNS/3 connections each, latency histograms merged:
#     tools/wrk/cluster-kv.lua) for GET (?r=R), PUT (?w=W) and a mix of
#     MIX_PUT_PCT% PUTs, DUR seconds each, ROUNDS rounds interleaved;
#  2. compare (COMPARE=1): ../shared/bench/compare.sh in one run with a 3-node
#     etcd, nginx, the cluster through node 1 ("ringkv", pids of all three
#     nodes) and the single node ("single").
# Medians and ratios go to docs/benchmarks.md (sections cluster-spread and
# cluster-compare); raw results stay in OUT.
#   env: ROUNDS (3), DUR (10 s), KEYS (100000), CONNS (32), R (2), W (2),
#        MIX_PUT_PCT (10), COMPARE (1), IDLE_WAIT (10 s), PORT (first HTTP
#        port tried, 18301), OUT (${BENCH_RUN_DIR:-/tmp/kvbench}/ringkv-cluster-DATE),
#        BENCH_DIR (../shared/bench)
# Every wrk run is bounded (-d, and `timeout`); all traffic goes to 127.0.0.1;
# every node is stopped on exit, Ctrl-C included.
set -euo pipefail
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
bench=${BENCH_DIR:-$root/../shared/bench}
[ -x "$bench/compare.sh" ] || { echo "no bench harness at $bench (set BENCH_DIR)" >&2; exit 1; }
bench=$(realpath "$bench")
ROUNDS=${ROUNDS:-3} DUR=${DUR:-10} KEYS=${KEYS:-100000} CONNS=${CONNS:-32} R=${R:-2} W=${W:-2}
MIX_PUT_PCT=${MIX_PUT_PCT:-10} COMPARE=${COMPARE:-1} IDLE_WAIT=${IDLE_WAIT:-10} PORT=${PORT:-18301}
source "$root/tools/node-lib.sh"
acc=$bench/lib/cpu-account.sh

base=$(find_node_ports "$PORT" 4) || exit 1

work=$(mktemp -d /tmp/ringkv-bench-cluster.XXXXXX)
OUT=${OUT:-${BENCH_RUN_DIR:-/tmp/kvbench}/ringkv-cluster-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/logs"
pids=() wrks=() watchdog=
cleanup() {
  trap - INT TERM EXIT
  set +e   # a kill of a process already gone must not end the cleanup
  [ -n "$watchdog" ] && kill -TERM "$watchdog" 2>/dev/null
  [ ${#wrks[@]} -gt 0 ] && kill -TERM "${wrks[@]}" 2>/dev/null
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" "${wrks[@]}" 2>/dev/null
  cp "$work"/node*.log "$OUT/logs/" 2>/dev/null
  rm -rf "$work"
  echo "all nodes stopped; raw results in $OUT" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make_secret "$work"
start_cluster_nodes "$bin" "$work" "$base" 3 2>/dev/null
# the single node: same binary, secret and HTTP threads, its own ring of one
start_node "$bin" "$work" 4 $((base + 3)) --n 1 --r 1 --w 1 2>/dev/null
pids+=("$started_pid")
wait_nodes_ready "$work" "$base" 4
# should this script be killed outright, the nodes still go
( while kill -0 $$ 2>/dev/null; do sleep 2; done; kill -TERM "${pids[@]}" 2>/dev/null ) >/dev/null 2>&1 &
watchdog=$!
cluster_pids="${pids[*]:0:3}" single_pid=${pids[3]}
url() { echo "http://127.0.0.1:$((base + $1 - 1))/bench/key"; }
echo "cluster: $(url 1) $(url 2) $(url 3) (pids $cluster_pids); single: $(url 4) (pid $single_pid)" >&2
# every node must see three alive members before the load (a joiner answers
# /health before gossip has told the third node about it)
members_ok() { # node
  local j; j=$(curl -fsS -m 1 "http://127.0.0.1:$((base + $1 - 1))/cluster" 2>/dev/null) || return 1
  [ "$(grep -o '"status": *"member"' <<<"$j" | wc -l)" -ge 3 ] &&
    [ "$(grep -o '"liveness": *"alive"' <<<"$j" | wc -l)" -ge 3 ]
}
for _ in $(seq 1 150); do
  members_ok 1 && members_ok 2 && members_ok 3 && break
  sleep 0.2
done
members_ok 1 && members_ok 2 && members_ok 3 || { echo "the 3 nodes do not all see 3 alive members after 30 s" >&2; exit 1; }

tsv=$OUT/spread.tsv
{
  echo "date: $(date -Is)"
  echo "host: $(nproc) cpus, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
  echo "ringkvd: $(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet HEAD -- src include 2>/dev/null || echo ' + uncommitted changes in src/include')"
  echo "args: ROUNDS=$ROUNDS DUR=$DUR KEYS=$KEYS CONNS=$CONNS R=$R W=$W MIX_PUT_PCT=$MIX_PUT_PCT"
  echo "cluster: 3 nodes N=3 R=2 W=2, --secret-file, http $base..$((base + 2)); single: N=1, http $((base + 3))"
} | tee "$OUT/meta.txt" >&2
{ echo "single node: $(curl -fsS -m 2 "http://127.0.0.1:$((base + 3))/cluster" | grep -o '"n":[0-9]*,"r":[0-9]*,"w":[0-9]*')"
  echo "cluster, as node 1 sees it: $(curl -fsS -m 2 "http://127.0.0.1:$base/cluster")"; } >>"$OUT/meta.txt" 2>/dev/null || true

echo "== preload $KEYS keys through node 1" >&2
"$bench/http-kv.sh" -k "$KEYS" -s 100 preload "$(url 1)" >"$OUT/logs/preload.txt" 2>&1 \
  || { cat "$OUT/logs/preload.txt" >&2; exit 1; }
tail -1 "$OUT/logs/preload.txt" >&2

# idle_wait: up to IDLE_WAIT s for a second in which processes other than this
# script's (nodes, wrk) use < 0.3 cores, as the shared harness does
idle_wait() {
  local end=$((SECONDS + IDLE_WAIT)) other
  while [ $SECONDS -lt $end ]; do
    "$acc" snap "$work/i0"; sleep 1; "$acc" snap "$work/i1"
    other=$("$acc" diff "$work/i0" "$work/i1" $$ | sed 's/.*cpu_other_cores=//')
    awk -v o="$other" 'BEGIN { exit !(o < 0.3) }' && return 0
  done
  echo "   note: machine not quiet after ${IDLE_WAIT}s (other=$other cores), running anyway" >&2
}

run_spread() { # op round
  local op=$1 r=$2 k c hists=() line cpu
  idle_wait
  echo "== round $r: cluster $op c=$CONNS over 3 nodes" >&2
  "$acc" snap "$work/c0"
  wrks=()
  for k in 1 2 3; do
    c=$((CONNS / 3 + (k <= CONNS % 3 ? 1 : 0)))
    hists+=("$OUT/logs/spread-$op-r$r-node$k.hist")
    BENCH_WRK_DIR=$bench/wrk KV_KEYS=$KEYS KV_VALUE_SIZE=100 KV_SEED=$((42 + 7 * k + 1000 * r)) \
      KV_OP=$op KV_PUT_PCT=$MIX_PUT_PCT KV_R=$R KV_W=$W KV_HIST=${hists[-1]} \
      timeout $((DUR + 30)) wrk -t1 -c"$c" -d"${DUR}s" --timeout 5s --latency \
      -s "$root/tools/wrk/cluster-kv.lua" "$(url "$k")" >"$OUT/logs/spread-$op-r$r-node$k.txt" 2>&1 &
    wrks+=($!)
  done
  wait "${wrks[@]}" || true
  wrks=()
  "$acc" snap "$work/c1"
  cpu=$("$acc" diff "$work/c0" "$work/c1" $$)
  line=$(python3 "$root/tools/bench-merge-hist.py" "${hists[@]}") || { echo "   run failed" >&2; return 0; }
  line="round=$r label=ringkv-3 op=$op conns=$CONNS $line $cpu"
  [ -s "$tsv" ] || echo "$line" | tr ' ' '\n' | cut -d= -f1 | paste -sd'\t' >"$tsv"
  echo "$line" | tr ' ' '\n' | cut -d= -f2- | paste -sd'\t' >>"$tsv"
  echo "   $(echo "$line" | grep -o 'rps=[^ ]*\|p50_ms=[^ ]*\|p99_ms=[^ ]*\|max_ms=[^ ]*\|err_status=[^ ]*\|cpu_other_cores=[^ ]*' | tr '\n' ' ')" >&2
}

for ((r = 1; r <= ROUNDS; r++)); do
  for op in get put mix; do run_spread "$op" "$r"; done
done

cmd="make bench  (tools/bench-cluster.sh: ROUNDS=$ROUNDS DUR=$DUR KEYS=$KEYS CONNS=$CONNS R=$R W=$W MIX_PUT_PCT=$MIX_PUT_PCT)"
report=(--command "$cmd" --spread "$tsv" --meta "$OUT/meta.txt" --conns "$CONNS" --r "$R" --w "$W"
        --mix-pct "$MIX_PUT_PCT" --into "$root/docs/benchmarks.md")
if [ "$COMPARE" = 1 ]; then
  echo "== compare.sh: etcd, nginx, ringkv (3 nodes, via node 1), single node" >&2
  cargs=(-c "$CONNS" -d "$DUR" -r "$ROUNDS" -k "$KEYS" -s 100 --idle-wait "$IDLE_WAIT"
         etcd nginx "ringkv=kv@$(url 1)" "single=kv@$(url 4)"
         --pids ringkv="$cluster_pids" --pids single="$single_pid")
  "$bench/compare.sh" -o "$OUT/compare" "${cargs[@]}"
  shown="../shared/bench/compare.sh ${cargs[*]:0:16} --pids ringkv=\"$cluster_pids\" --pids single=$single_pid"
  report+=(--compare "$OUT/compare" --compare-command "$shown")
fi
python3 "$root/tools/bench-cluster-report.py" "${report[@]}"
echo "wrote docs/benchmarks.md" >&2
