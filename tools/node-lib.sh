# node-lib.sh - what run-local.sh and run-second-node.sh share: ports,
# the cluster secret, starting one node and waiting for it.

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_ports() {
  for p in "$@"; do
    if port_busy "$p"; then
      echo "port 127.0.0.1:$p is in use: stop what runs there, or pick others: make run HTTP_PORT=8101" >&2
      exit 1
    fi
  done
}

# A random cluster secret, made once and kept with the data.
make_secret() {
  mkdir -p "$1"
  if [ ! -s "$1/secret" ]; then
    (umask 077; head -c 32 /dev/urandom | base64 > "$1/secret")
  fi
}

# start_node BIN RUN_DIR K HTTP_PORT [ringkvd flags...]: starts node K in the
# background with its log in RUN_DIR/nodeK.log (and on stderr); sets
# started_pid.
start_node() {
  local bin=$1 run=$2 k=$3 http=$4
  shift 4
  mkdir -p "$run/node$k"
  "$bin" --data "$run/node$k" --http "127.0.0.1:$http" --rpc "127.0.0.1:$((http + 1000))" \
    --secret-file "$run/secret" --name "node$k" --n 3 --r 2 --w 2 "$@" \
    2> >(sed -u "s/^/[node$k] /" | tee -a "$run/node$k.log" >&2) &
  started_pid=$!
}

# wait_ready HTTP_PORT PID LOG: polls /health for up to 20 s.
wait_ready() {
  for _ in $(seq 1 200); do
    curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$1/health" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "ringkvd on port $1 exited; see $3" >&2; exit 1; }
    sleep 0.1
  done
  echo "ringkvd on port $1 did not answer within 20 s; see $3" >&2
  exit 1
}

# start_cluster_nodes BIN RUN_DIR HTTP_BASE COUNT: starts nodes 1..COUNT on
# HTTP_BASE.., node 1 first and the others joining it; appends their pids to
# the caller's array `pids` (which must be empty or hold only earlier nodes
# of the same numbering).
start_cluster_nodes() {
  local bin=$1 run=$2 base=$3 count=$4 k
  for k in $(seq 1 "$count"); do
    local join=()
    [ "$k" -gt 1 ] && join=(--join "127.0.0.1:$((base + 1000))")
    start_node "$bin" "$run" "$k" $((base + k - 1)) "${join[@]}"
    pids+=("$started_pid")
  done
}

# wait_nodes_ready RUN_DIR HTTP_BASE COUNT: wait_ready for nodes 1..COUNT,
# whose pids are pids[0..COUNT).
wait_nodes_ready() {
  local run=$1 base=$2 count=$3 k
  for k in $(seq 1 "$count"); do
    wait_ready $((base + k - 1)) "${pids[$((k - 1))]}" "$run/node$k.log"
  done
}

# find_node_ports FROM COUNT: prints the first base (FROM, FROM+10, ...) such
# that HTTP ports base..base+COUNT-1 and their RPC ports (+1000) are free.
find_node_ports() {
  local from=$1 count=$2 b p ok
  for b in $(seq "$from" 10 $((from + 990))); do
    ok=1
    for p in $(seq "$b" $((b + count - 1))); do
      if port_busy "$p" || port_busy $((p + 1000)); then ok=0; break; fi
    done
    [ $ok = 1 ] && { echo "$b"; return 0; }
  done
  echo "no $count free ports from $from on" >&2
  return 1
}
