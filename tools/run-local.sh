#!/usr/bin/env bash
# run-local.sh RINGKVD RUN_DIR HTTP_PORT - runs a local ringkv node in the
# foreground until Ctrl-C. Its data stays in RUN_DIR/node1, so a second
# `make run` finds every key again. (The cluster issue turns this into a
# local 3-node cluster.)
set -euo pipefail
bin=$1 run=$2 port=$3
rpc_port=$((port + 1000))
mkdir -p "$run/node1"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$port" "$rpc_port"; do
  if port_busy "$p"; then
    echo "port 127.0.0.1:$p is in use: stop what runs there, or pick another: make run HTTP_PORT=8101" >&2
    exit 1
  fi
done

# A random cluster secret, made once and kept with the data.
if [ ! -s "$run/secret" ]; then
  (umask 077; head -c 32 /dev/urandom | base64 > "$run/secret")
fi

"$bin" --data "$run/node1" --http "127.0.0.1:$port" --rpc "127.0.0.1:$rpc_port" \
  --secret-file "$run/secret" --name node1 --n 1 --r 1 --w 1 2> >(tee -a "$run/node1.log" >&2) &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; echo "node stopped"' INT TERM EXIT

for _ in $(seq 1 100); do
  curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || { echo "ringkvd exited; see $run/node1.log" >&2; exit 1; }
  sleep 0.1
done
cat <<MSG

ringkv is running (1 node, data in $run/node1):
  API          http://127.0.0.1:$port/   e.g. curl -X PUT http://127.0.0.1:$port/demo/key/hello -d '{"value":"world"}'
$( [ -f webclient/index.html ] && echo "  web client   http://127.0.0.1:$port/ui/" )
  metrics      http://127.0.0.1:$port/metrics
  CLI          $(dirname "$bin")/src/cli/ringkv --nodes 127.0.0.1:$port get hello --table demo
Ctrl-C stops it.

MSG
wait $pid
