#!/usr/bin/env bash
# run-local.sh RINGKVD RUN_DIR HTTP_PORT [NODES] - runs a local ringkv cluster
# in the foreground until Ctrl-C: NODES nodes (default 3, N=3 R=2 W=2) on
# 127.0.0.1, node k serving HTTP on HTTP_PORT+k-1 and RPC on that + 1000.
# Node 1 starts the cluster, the others join it. Data stays in RUN_DIR/nodeK,
# so a second `make run` finds every key (and every member) again.
set -euo pipefail
bin=$1 run=$2 port=$3 count=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/node-lib.sh"

for k in $(seq 1 "$count"); do
  check_ports $((port + k - 1)) $((port + k - 1 + 1000))
done
make_secret "$run"

pids=()
stop_all() {
  trap - INT TERM EXIT
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null
  echo "all nodes stopped"
}
trap stop_all INT TERM EXIT

start_cluster_nodes "$bin" "$run" "$port" "$count"
wait_nodes_ready "$run" "$port" "$count"

echo
echo "ringkv is running: $count nodes, N=3 R=2 W=2 (data in $run/)"
for k in $(seq 1 "$count"); do
  p=$((port + k - 1))
  echo "  node$k   http://127.0.0.1:$p/$( [ -f webclient/index.html ] && echo "   web client http://127.0.0.1:$p/ui/" )"
done
cat <<MSG
  try      curl -X PUT http://127.0.0.1:$port/demo/key/hello -d '{"value":"world"}'
           curl http://127.0.0.1:$((port + 2))/demo/key/hello
  cluster  $(dirname "$bin")/src/cli/ringkv --nodes 127.0.0.1:$port cluster status
  add one  make run-second-node   (in another terminal; NODE=5 for the next)
Ctrl-C stops every node.

MSG
wait -n "${pids[@]}" || true
