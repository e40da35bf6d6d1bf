#!/usr/bin/env bash
# compose-test.sh - the docker-compose cluster end to end (`make
# compose-test`): starts a Docker engine if none answers (there is no
# systemd here), makes the debian:bookworm base locally if missing, builds
# the image, brings the three nodes up under a project of its own, and
# checks what a user would: all three members, a write through node 1 read
# through node 3, an SSE subscriber on node 2 that sees a write, a fourth
# node that joins and becomes a member, writes that go on while a node is
# stopped and are all there once it is back. Tears everything down,
# volumes included, whatever happens. Fails with the reason; never skips.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
project=ringkvtest$$
work=$(mktemp -d /tmp/ringkv-compose.XXXXXX)
fail() { echo "compose-test: FAIL: $*" >&2; exit 1; }
log() { echo "compose-test: $*"; }
source "$root/tools/docker-lib.sh"

# The cluster's files: the three nodes, and the fourth that grows it.
dc() { docker-compose -p "$project" -f "$root/docker-compose.yml" -f "$root/docker-compose.grow.yml" "$@"; }

cleanup() {
  trap - EXIT INT TERM
  (cd "$root" && dc down -v --remove-orphans >/dev/null 2>&1) || true
  docker_engine_stop
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

docker_require
docker_engine_start

export CLUSTER_SECRET
CLUSTER_SECRET=$(head -c 24 /dev/urandom | base64)
cd "$root"
log "building the image and starting 3 nodes"
docker-compose -p "$project" -f docker-compose.yml build -q >"$work/build.log" 2>&1 || fail "image build: $(tail -5 "$work/build.log")"
docker-compose -p "$project" -f docker-compose.yml up -d >"$work/up.log" 2>&1 || fail "up: $(tail -5 "$work/up.log")"

members() { # URL STATUS COUNT: the node at URL sees COUNT members with STATUS, all alive
  curl -fsS "$1/cluster" | members_are "$2" "$3"
}
node() { echo "http://127.0.0.1:800$1"; }

until_ok 60 members "$(node 1)" member 3 || fail "3 members alive not seen through node 1"
log "3 members, all alive"

curl -fsS -X PUT "$(node 1)/compose/key/hello" -d '{"value": "through node 1"}' >/dev/null || fail "PUT through node 1"
got=$(curl -fsS "$(node 3)/compose/key/hello?r=3") || fail "GET through node 3"
[[ $got == *'"through node 1"'* ]] || fail "node 3 read $got"
log "a write through node 1 reads back through node 3"

curl -sN -m 20 "$(node 2)/compose/subscribe/live" >"$work/sse" &
sse=$!
until_ok 10 grep -q subscribed "$work/sse" || fail "no subscription through node 2: $(cat "$work/sse")"
curl -fsS -X PUT "$(node 1)/compose/key/live" -d '{"value": "seen live"}' >/dev/null || fail "PUT live"
until_ok 10 grep -q '"seen live"' "$work/sse" || fail "the subscriber on node 2 saw no event: $(cat "$work/sse")"
kill $sse 2>/dev/null || true
log "a subscriber on node 2 saw a write through node 1"

# Records for the fourth node to take over: it holds about 3 in 4 of them.
for i in $(seq 1 40); do
  curl -fsS -X PUT "$(node 2)/compose/key/before-$i" -d "{\"value\": $i}" >/dev/null || fail "PUT before-$i"
done
dc up -d ringkv4 >"$work/up4.log" 2>&1 || fail "up ringkv4: $(tail -5 "$work/up4.log")"
until_ok 90 members "$(node 1)" member 4 || fail "ringkv4 did not become a member"
received() { # the fourth node holds records it was sent as it joined
  curl -fsS "$(node 4)/cluster" | python3 -c "import sys, json; \
sys.exit(0 if json.load(sys.stdin)['sync']['keys_received'] > 0 else 1)"
}
until_ok 30 received || fail "ringkv4 received no records of the ranges it took over"
log "a fourth node joined, received its ranges and became a member"

dc stop ringkv3 >/dev/null 2>&1 || fail "stop ringkv3"
acked=()
for i in $(seq 1 30); do
  if curl -fsS -X PUT "$(node 1)/compose/key/down-$i" -d "{\"value\": $i}" >/dev/null; then
    acked+=("$i")
  fi
done
[ ${#acked[@]} -eq 30 ] || fail "only ${#acked[@]} of 30 writes acknowledged with one node stopped"
dc start ringkv3 >/dev/null 2>&1 || fail "start ringkv3"
until_ok 60 curl -fsS "$(node 3)/health" || fail "ringkv3 not healthy after its restart"
for i in "${acked[@]}"; do
  got=$(curl -fsS "$(node 3)/compose/key/down-$i?r=3") || fail "GET down-$i through node 3"
  [[ $got == *"\"value\":$i,"* ]] || fail "down-$i read back as $got"
done
log "30 writes acknowledged while ringkv3 was stopped; every one reads back through it"
log "ok"
