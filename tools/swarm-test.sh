#!/usr/bin/env bash
# swarm-test.sh - the same docker-compose.yml on a multi-host engine
# (`make swarm-test`): `docker stack deploy` on a one-node swarm (made here
# if the engine is in none, and left again after). Builds the image with
# docker-compose (a stack cannot build), deploys the three nodes, waits
# for all three members, writes through ringkv1 and reads through
# ringkv3, adds ringkv4 with docker-compose.grow.yml and sees it become a
# member, then removes the stack and its volumes.
#
# Swarm publishes ports through its routing mesh on every address (it
# ignores the 127.0.0.1 of the compose ports). That mesh does not work on
# this machine's kernel (nf_tables without the ingress chains), so the
# checks run inside the nodes' containers, over the stack's own network.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
stack=ringkvswarm$$
swarm_made=""
fail() { echo "swarm-test: FAIL: $*" >&2; exit 1; }
log() { echo "swarm-test: $*"; }
source "$root/tools/docker-lib.sh"

stack_gone() { [ -z "$("$docker" ps -aq -f "label=com.docker.stack.namespace=$stack")" ]; }

cleanup() {
  trap - EXIT INT TERM
  "$docker" stack rm "$stack" >/dev/null 2>&1 || true
  # Volumes can go once the stack's containers are gone.
  until_ok 60 stack_gone || true
  local k
  for k in 1 2 3 4; do "$docker" volume rm -f "${stack}_ringkv$k" >/dev/null 2>&1 || true; done
  [ -n "$swarm_made" ] && "$docker" swarm leave --force >/dev/null 2>&1 || true
  docker_engine_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

docker_require
docker_engine_start
cd "$root"
export CLUSTER_SECRET
CLUSTER_SECRET=$(head -c 24 /dev/urandom | base64)
log "building the image"
docker-compose -f docker-compose.yml build -q >/dev/null 2>&1 || fail "image build failed (try make compose-test)"

if [ "$("$docker" info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
  "$docker" swarm init --advertise-addr 127.0.0.1 >/dev/null || fail "docker swarm init"
  swarm_made=1
  log "made a one-node swarm"
fi
"$docker" stack deploy -c docker-compose.yml "$stack" >/dev/null 2>&1 ||
  fail "stack deploy: $("$docker" stack deploy -c docker-compose.yml "$stack" 2>&1 | tail -3)"

# curl inside the task of service ringkvK, at that node's own address
in_node() { # K ARGS...
  local k=$1; shift
  local c
  c=$("$docker" ps -q -f "label=com.docker.swarm.service.name=${stack}_ringkv$k" | head -1)
  [ -n "$c" ] || return 1
  "$docker" exec "$c" curl -fsS "$@"
}
members() { in_node "$1" "http://ringkv$1:8001/cluster" | members_are "$2" "$3"; }

until_ok 120 members 1 member 3 || fail "3 members alive not seen through ringkv1"
log "deployed: 3 members, all alive"
in_node 1 -X PUT "http://ringkv1:8001/swarm/key/hello" -d '{"value": "on a swarm"}' >/dev/null ||
  fail "PUT through ringkv1"
got=$(in_node 3 "http://ringkv3:8001/swarm/key/hello?r=3") || fail "GET through ringkv3"
[[ $got == *'"on a swarm"'* ]] || fail "ringkv3 read $got"
log "a write through ringkv1 reads back through ringkv3 (r=3)"

"$docker" stack deploy -c docker-compose.yml -c docker-compose.grow.yml "$stack" >/dev/null 2>&1 ||
  fail "stack deploy with docker-compose.grow.yml"
until_ok 120 members 1 member 4 || fail "ringkv4 did not become a member"
log "ringkv4 joined the stack and became a member"
log "ok"
