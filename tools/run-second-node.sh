#!/usr/bin/env bash
# run-second-node.sh RINGKVD RUN_DIR HTTP_PORT NODE - starts one more node
# (slot NODE: HTTP on HTTP_PORT+NODE-1, RPC on that + 1000, data in
# RUN_DIR/nodeNODE) that joins the cluster `make run` started, and runs it
# in the foreground until Ctrl-C.
set -euo pipefail
bin=$1 run=$2 port=$3 k=$4
here=$(cd "$(dirname "$0")" && pwd)
source "$here/node-lib.sh"

if [ ! -s "$run/secret" ]; then
  echo "no cluster to join: start one first with 'make run' (it makes $run/secret)" >&2
  exit 1
fi
http=$((port + k - 1))
if port_busy "$http"; then
  echo "slot $k is taken (127.0.0.1:$http answers): pick another, e.g. make run-second-node NODE=$((k + 1))" >&2
  exit 1
fi
check_ports $((http + 1000))
seeds=$(for s in 1 2 3; do printf '127.0.0.1:%d,' $((port + s - 1 + 1000)); done)
start_node "$bin" "$run" "$k" "$http" --join "${seeds%,}"
pid=$started_pid
# The node may also stop by itself (`ringkv cluster leave`): then wait has
# reaped it already, and the trap must not fail on that.
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; echo "node$k stopped"' INT TERM EXIT
wait_ready "$http" "$pid" "$run/node$k.log"
cat <<MSG

node$k joined: http://127.0.0.1:$http/   (members: curl http://127.0.0.1:$http/cluster)
Ctrl-C stops it; it rejoins from $run/node$k when started again.

MSG
wait $pid
