# docker-lib.sh - sourced by compose-test.sh and swarm-test.sh: the tools
# they need, a Docker engine (started here if none answers: there is no
# systemd on these machines), the debian:bookworm base made locally (no
# registry is reachable), and polling with a deadline.
# Callers define fail() and log() first, and call docker_engine_stop on exit.
docker=/usr/bin/docker   # another docker client earlier on PATH lacks compose support
export DOCKER=$docker
engine_pid=""

docker_require() {
  local tool
  for tool in "$docker" docker-compose dockerd debootstrap curl python3; do
    command -v "$tool" >/dev/null ||
      fail "$tool is not installed (make compose-test installs docker.io docker-compose debootstrap)"
  done
}

# Starts an engine if none answers; docker_engine_stop stops only that one.
docker_engine_start() {
  if ! "$docker" info >/dev/null 2>&1; then
    local state=${RINGKV_DOCKER_DIR:-/var/tmp/ringkv-docker}
    mkdir -p "$state"
    log "no Docker engine answers: starting one (data in $state)"
    dockerd --storage-driver=overlay2 --data-root="$state/root" --pidfile="$state/dockerd.pid" \
      >"$state/dockerd.log" 2>&1 &
    engine_pid=$!
    local _
    for _ in $(seq 150); do "$docker" info >/dev/null 2>&1 && break; sleep 0.1; done
    "$docker" info >/dev/null 2>&1 ||
      fail "the Docker engine did not start: $(tail -3 "$state/dockerd.log")"
  fi
  "$root/tools/docker-base-image.sh" || fail "could not make the debian:bookworm base image"
}

docker_engine_stop() {
  [ -n "$engine_pid" ] || return 0
  kill "$engine_pid" 2>/dev/null || true
  wait "$engine_pid" 2>/dev/null || true
  engine_pid=""
}

# Polls a command until it succeeds, for up to $1 seconds.
until_ok() {
  local secs=$1; shift
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.2
  done
}

# Reads /cluster JSON on stdin: exit 0 when COUNT members have STATUS and
# are alive.
members_are() { # STATUS COUNT
  python3 -c "import sys, json; d = json.load(sys.stdin); \
ms = [m for m in d['members'] if m['status'] == '$1' and m['liveness'] == 'alive']; \
sys.exit(0 if len(ms) == $2 else 1)"
}
