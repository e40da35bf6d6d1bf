#!/usr/bin/env bash
# bench-single.sh RINGKVD - single-node PUT/GET benchmark next to nginx
# (the loopback HTTP ceiling), in one run, with ../shared/bench/compare.sh.
# 100-byte values over 100k keys at 1 and 32 connections; medians of the
# rounds and ratios to nginx go to docs/benchmarks.md.
#   env: ROUNDS (3), DUR (10 s), KEYS (100000), CONNS ("1 32"), PORT (18201),
#        BENCH_DIR (../shared/bench)
set -euo pipefail
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
bench=${BENCH_DIR:-$root/../shared/bench}
[ -x "$bench/compare.sh" ] || { echo "no bench harness at $bench (set BENCH_DIR)" >&2; exit 1; }
ROUNDS=${ROUNDS:-3} DUR=${DUR:-10} KEYS=${KEYS:-100000} CONNS=${CONNS:-"1 32"} PORT=${PORT:-18201}

work=$(mktemp -d /tmp/ringkv-bench.XXXXXX)
"$bin" --data "$work/node" --http "127.0.0.1:$PORT" --rpc "127.0.0.1:$((PORT + 1000))" \
  --insecure --n 1 --r 1 --w 1 --http-threads 128 2>"$work/node.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null && break
  sleep 0.1
done

out=$work/results
"$bench/compare.sh" -c "$CONNS" -d "$DUR" -r "$ROUNDS" -k "$KEYS" -s 100 --idle-wait 10 -o "$out" \
  nginx "ringkv=kv@http://127.0.0.1:$PORT/bench/key" --pids ringkv="$pid"

cmd="make bench-single  (tools/bench-single.sh: ROUNDS=$ROUNDS DUR=$DUR KEYS=$KEYS CONNS=\"$CONNS\")"
python3 "$root/tools/bench-report.py" --title "Single node, 100-byte values, $KEYS keys" \
  --command "$cmd" --baseline nginx --target ringkv "$out/results.tsv" \
  --meta "$out/logs/meta.txt" --into "$root/docs/benchmarks.md" --section single-node
echo "wrote docs/benchmarks.md (raw results were in $out)"
