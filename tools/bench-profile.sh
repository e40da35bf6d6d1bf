#!/usr/bin/env bash
# bench-profile.sh RINGKVD - where a cluster node spends its CPU (`make bench-profile`).
# Starts a fresh local 3-node cluster (temp dirs and secret, free loopback
# ports), loads KEYS keys of 100-byte values, then for PUT and for GET runs the
# same spread load as `make bench` (one wrk per node, CONNS connections in
# all, ?w=W / ?r=R) for DUR seconds and `perf record -g` on node 1 for the
# middle PERF_SECS of it. Prints, per op, the CPU each node and wrk used, the
# self time per library (civetweb, NNG, libsodium, RocksDB, protobuf-c, libc,
# kernel, ringkvd...) and the top symbols; perf.data and reports stay in OUT.
#   env: KEYS (100000), CONNS (32), DUR (20 s), PERF_SECS (12), R (2), W (2),
#        PORT (first HTTP port tried, 18401), OUT, BENCH_DIR (../shared/bench)
# Needs perf (Debian: linux-perf). Every load and the recording are bounded;
# all traffic goes to 127.0.0.1; the nodes are stopped on exit, Ctrl-C included.
set -euo pipefail
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
bench=$(realpath "${BENCH_DIR:-$root/../shared/bench}")
KEYS=${KEYS:-100000} CONNS=${CONNS:-32} DUR=${DUR:-20} PERF_SECS=${PERF_SECS:-12} R=${R:-2} W=${W:-2}
PORT=${PORT:-18401}
command -v perf >/dev/null || { echo "perf not found (Debian: apt-get install linux-perf)" >&2; exit 1; }
source "$root/tools/node-lib.sh"
acc=$bench/lib/cpu-account.sh

base=
for b in $(seq "$PORT" 10 $((PORT + 990))); do
  ok=1
  for p in $b $((b + 1)) $((b + 2)); do
    if port_busy "$p" || port_busy $((p + 1000)); then ok=0; break; fi
  done
  [ $ok = 1 ] && { base=$b; break; }
done
[ -n "$base" ] || { echo "no 3 free ports from $PORT on" >&2; exit 1; }

work=$(mktemp -d /tmp/ringkv-profile.XXXXXX)
OUT=${OUT:-${BENCH_RUN_DIR:-/tmp/kvbench}/ringkv-profile-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
pids=() wrks=() perfpid=
cleanup() {
  trap - INT TERM EXIT
  set +e
  [ -n "$perfpid" ] && kill -INT "$perfpid" 2>/dev/null
  [ ${#wrks[@]} -gt 0 ] && kill -TERM "${wrks[@]}" 2>/dev/null
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" "${wrks[@]}" $perfpid 2>/dev/null
  cp "$work"/node*.log "$OUT/" 2>/dev/null
  rm -rf "$work"
  echo "all nodes stopped; perf data and reports in $OUT" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make_secret "$work"
start_cluster_nodes "$bin" "$work" "$base" 3 2>/dev/null
wait_nodes_ready "$work" "$base" 3
url() { echo "http://127.0.0.1:$((base + $1 - 1))/bench/key"; }
for _ in $(seq 1 150); do
  n=0
  for k in 1 2 3; do
    j=$(curl -fsS -m 1 "http://127.0.0.1:$((base + k - 1))/cluster" 2>/dev/null || true)
    [ "$(grep -o '"liveness": *"alive"' <<<"$j" | wc -l)" -ge 3 ] && n=$((n + 1))
  done
  [ $n = 3 ] && break
  sleep 0.2
done

echo "== preload $KEYS keys through node 1" >&2
"$bench/http-kv.sh" -k "$KEYS" -s 100 preload "$(url 1)" >"$OUT/preload.txt" 2>&1 \
  || { cat "$OUT/preload.txt" >&2; exit 1; }

for op in put get; do
  echo "== $op: spread load, $CONNS connections, ${DUR}s; perf record -g on node 1 (pid ${pids[0]}) for ${PERF_SECS}s" >&2
  wrks=()
  for k in 1 2 3; do
    c=$((CONNS / 3 + (k <= CONNS % 3 ? 1 : 0)))
    BENCH_WRK_DIR=$bench/wrk KV_KEYS=$KEYS KV_VALUE_SIZE=100 KV_SEED=$((42 + 7 * k)) KV_OP=$op KV_R=$R KV_W=$W \
      timeout $((DUR + 30)) wrk -t1 -c"$c" -d"${DUR}s" --timeout 5s \
      -s "$root/tools/wrk/cluster-kv.lua" "$(url "$k")" >"$OUT/wrk-$op-node$k.txt" 2>&1 &
    wrks+=($!)
  done
  sleep $(((DUR - PERF_SECS) / 2))
  "$acc" snap "$work/c0"
  timeout $((PERF_SECS + 30)) perf record -e cpu-clock -F 999 -g -p "${pids[0]}" -o "$OUT/perf-$op.data" \
    -- sleep "$PERF_SECS" >"$OUT/perf-record-$op.txt" 2>&1 &
  perfpid=$!
  wait "$perfpid" || true; perfpid=
  "$acc" snap "$work/c1"
  wait "${wrks[@]}" || true
  {
    echo "## $op"
    for k in 1 2 3; do
      echo "node$k: $("$acc" diff "$work/c0" "$work/c1" "${pids[$((k - 1))]}" | grep -o 'cpu_measured_cores=[^ ]*' | sed 's/measured_//')"
    done
    echo "wrk (3 processes): $("$acc" diff "$work/c0" "$work/c1" "${wrks[@]}" | grep -o 'cpu_measured_cores=[^ ]*' | sed 's/measured_//')"
    echo "whole machine: $("$acc" diff "$work/c0" "$work/c1" | grep -o 'cpu_busy_cores=[^ ]*' | sed 's/busy_//')"
    grep -h '^RESULT' "$OUT"/wrk-$op-node*.txt | grep -o 'rps=[^ ]*\|p99_ms=[^ ]*\|err_status=[^ ]*\|err_timeout=[^ ]*' |
      paste -sd' ' | sed 's/^/wrk per node: /'
    echo
    echo "### self time by library (node 1)"
    perf report -i "$OUT/perf-$op.data" --stdio --no-children --sort dso -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | awk 'NR <= 20' || true
    echo
    echo "### top symbols, self time (node 1)"
    perf report -i "$OUT/perf-$op.data" --stdio --no-children --sort dso,sym -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | awk 'NR <= 45' || true
    echo
  } | tee "$OUT/report-$op.txt"
  wrks=()
  # callers of the hottest symbols, for reading later
  perf report -i "$OUT/perf-$op.data" --stdio --children --sort sym -g caller,0.5,callee --percent-limit 2 \
    >"$OUT/callgraph-$op.txt" 2>/dev/null || true
done
