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
docker=/usr/bin/docker   # another docker client earlier on PATH lacks compose support
export DOCKER=$docker
project=ringkvtest$$
work=$(mktemp -d /tmp/ringkv-compose.XXXXXX)
engine_pid=""
fail() { echo "compose-test: FAIL: $*" >&2; exit 1; }
log() { echo "compose-test: $*"; }

cleanup() {
  trap - EXIT INT TERM
  (cd "$root" && docker-compose -p "$project" --profile extra down -v --remove-orphans >/dev/null 2>&1) || true
  [ -n "$engine_pid" ] && kill "$engine_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in "$docker" docker-compose dockerd debootstrap curl; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (make compose-test installs docker.io docker-compose debootstrap)"
done
if ! "$docker" info >/dev/null 2>&1; then
  state=${RINGKV_DOCKER_DIR:-/var/tmp/ringkv-docker}
  mkdir -p "$state"
  log "no Docker engine answers: starting one (data in $state)"
  dockerd --storage-driver=overlay2 --data-root="$state/root" --pidfile="$state/dockerd.pid" \
    >"$state/dockerd.log" 2>&1 &
  engine_pid=$!
  for _ in $(seq 100); do "$docker" info >/dev/null 2>&1 && break; sleep 0.1; done
  "$docker" info >/dev/null 2>&1 || fail "the Docker engine did not start: $(tail -3 "$state/dockerd.log")"
fi
"$root/tools/docker-base-image.sh" || fail "could not make the debian:bookworm base image"

export CLUSTER_SECRET
CLUSTER_SECRET=$(head -c 24 /dev/urandom | base64)
cd "$root"
log "building the image and starting 3 nodes"
docker-compose -p "$project" build -q >"$work/build.log" 2>&1 || fail "image build: $(tail -5 "$work/build.log")"
docker-compose -p "$project" up -d >"$work/up.log" 2>&1 || fail "up: $(tail -5 "$work/up.log")"

# Polls a command until it succeeds, for up to $1 seconds.
until_ok() {
  local secs=$1; shift
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.2
  done
}
members() { # URL STATUS COUNT: the node at URL sees COUNT members with STATUS, all alive
  curl -fsS "$1/cluster" | python3 -c "import sys, json; d = json.load(sys.stdin); \
ms = [m for m in d['members'] if m['status'] == '$2' and m['liveness'] == 'alive']; \
sys.exit(0 if len(ms) == $3 else 1)"
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

docker-compose -p "$project" --profile extra up -d ringkv4 >"$work/up4.log" 2>&1 || fail "up ringkv4: $(tail -5 "$work/up4.log")"
until_ok 90 members "$(node 1)" member 4 || fail "ringkv4 did not become a member"
log "a fourth node joined and became a member"

docker-compose -p "$project" stop ringkv3 >/dev/null 2>&1 || fail "stop ringkv3"
acked=()
for i in $(seq 1 30); do
  if curl -fsS -X PUT "$(node 1)/compose/key/down-$i" -d "{\"value\": $i}" >/dev/null; then
    acked+=("$i")
  fi
done
[ ${#acked[@]} -eq 30 ] || fail "only ${#acked[@]} of 30 writes acknowledged with one node stopped"
docker-compose -p "$project" start ringkv3 >/dev/null 2>&1 || fail "start ringkv3"
until_ok 60 curl -fsS "$(node 3)/health" || fail "ringkv3 not healthy after its restart"
for i in "${acked[@]}"; do
  got=$(curl -fsS "$(node 3)/compose/key/down-$i?r=3") || fail "GET down-$i through node 3"
  [[ $got == *"\"value\":$i,"* ]] || fail "down-$i read back as $got"
done
log "30 writes acknowledged while ringkv3 was stopped; every one reads back through it"
log "ok"
