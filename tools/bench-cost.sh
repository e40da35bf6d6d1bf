#!/usr/bin/env bash
# bench-cost.sh RINGKVD [BASE_PORT] - what one quorum request costs a
# 3-node cluster (`make bench-cost`): CPU microseconds and voluntary
# context switches per request, summed over the three nodes, beside req/s
# and latency. CPU per request barely moves when other work shares the
# machine, where req/s does, so this is the figure to compare two builds
# by on a busy 2-core machine (run them back to back, alternating).
# Starts a fresh cluster (N=3, R=2, W=2, temporary dirs and secret, free
# loopback ports from BASE_PORT, default 18501), preloads KEYS keys, then
# runs wrk at CONNS connections through node 1 for DUR seconds per run,
# GET (?r=2) then PUT (?w=2), ROUNDS times. Every run is bounded; all
# traffic goes to 127.0.0.1; the nodes are stopped on exit.
#   env: DUR (6), CONNS (32), KEYS (10000), ROUNDS (2), BENCH_DIR (../shared/bench)
set -euo pipefail
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
bench=$(realpath "${BENCH_DIR:-$root/../shared/bench}")
DUR=${DUR:-6} CONNS=${CONNS:-32} KEYS=${KEYS:-10000} ROUNDS=${ROUNDS:-2}
source "$root/tools/node-lib.sh"
base=$(find_node_ports "${2:-18501}" 3) || exit 1
work=$(mktemp -d /tmp/ringkv-bench-cost.XXXXXX)
pids=()
cleanup() {
  trap - INT TERM EXIT
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
make_secret "$work"
start_cluster_nodes "$bin" "$work" "$base" 3 2>/dev/null
wait_nodes_ready "$work" "$base" 3
members_ready() {
  curl -fsS -m 2 "http://127.0.0.1:$1/cluster" | python3 -c 'import json, sys
d = json.load(sys.stdin)
ok = len(d["members"]) == 3 and all(m["status"] == "member" and m["liveness"] == "alive" for m in d["members"])
sys.exit(0 if ok else 1)'
}
for k in 0 1 2; do
  for _ in $(seq 1 300); do members_ready $((base + k)) && break; sleep 0.1; done
  members_ready $((base + k)) || { echo "node $((k + 1)) never saw 3 alive members" >&2; exit 1; }
done
export BENCH_WRK_DIR=$bench/wrk KV_KEYS=$KEYS KV_VALUE_SIZE=100
"$bench/http-kv.sh" -c 16 -d 60 -k "$KEYS" preload "http://127.0.0.1:$base/bench/key" >/dev/null 2>&1
ticks() {
  local t=0 p
  for p in "${pids[@]}"; do
    set -- $(cut -d' ' -f14,15 "/proc/$p/stat")
    t=$((t + $1 + $2))
  done
  echo $t
}
switches() {
  cat /proc/"${pids[0]}"/task/*/status /proc/"${pids[1]}"/task/*/status \
      /proc/"${pids[2]}"/task/*/status 2>/dev/null |
    awk '/^voluntary_ctxt_switches/ {s += $2} END {print s}'
}
hz=$(getconf CLK_TCK)
echo "bench-cost: $(basename "$bin") $("$bin" --help >/dev/null 2>&1; git -C "$root" rev-parse --short HEAD 2>/dev/null) conns=$CONNS dur=${DUR}s keys=$KEYS"
for round in $(seq 1 "$ROUNDS"); do
  for op in get put; do
    t0=$(ticks) s0=$(switches)
    out=$(KV_OP=$op KV_R=2 KV_W=2 timeout $((DUR + 30)) wrk -t2 -c"$CONNS" -d"${DUR}s" --latency \
          -s "$root/tools/wrk/cluster-kv.lua" "http://127.0.0.1:$base/bench/key" 2>&1)
    t1=$(ticks) s1=$(switches)
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    awk -v op="$op" -v r="$round" -v reqs="$reqs" -v dt=$((t1 - t0)) -v ds=$((s1 - s0)) -v hz="$hz" \
        -v rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
        -v p50="$(echo "$out" | awk '$1 == "50%" {print $2}')" \
        -v p99="$(echo "$out" | awk '$1 == "99%" {print $2}')" \
        'BEGIN { printf "RESULT round=%d op=%s rps=%s p50=%s p99=%s cpu_us_per_req=%.0f switches_per_req=%.2f\n",
                 r, op, rps, p50, p99, dt * 1e6 / hz / reqs, ds / reqs }'
  done
done
