# ringkv - thin wrapper over meson/ninja. Every target installs what is
# missing first, so a fresh Debian 12 machine needs nothing but `make`.
#
#   make            build (build/)
#   make run        build, start a local 3-node cluster, print its addresses (Ctrl-C stops)
#   make run-second-node   one more node joining it (NODE=k picks the slot; default 4)
#   make test       unit + integration tests, and the unit tests under ASan+UBSan
#   make bench      cluster benchmark -> docs/benchmarks.md: a fresh local 3-node
#                   cluster (temp dirs, temp secret, free ports), wrk spread over
#                   the 3 nodes (GET/PUT/90-10 mix at 32 conns), then one
#                   ../shared/bench/compare.sh run next to etcd, nginx and a
#                   single node (tools/bench-cluster.sh; ~13 min; env ROUNDS,
#                   DUR, KEYS, CONNS, R, W, COMPARE=0 skips the comparison)
#   make bench-single   the single-node benchmark next to nginx (tools/bench-single.sh)
#   make bench-profile  perf record -g of one cluster node under PUT, then GET
#                   load -> top symbols printed (tools/bench-profile.sh)
#   make browser-test   the web client in headless Chromium against a real
#                   3-node cluster (tests/browser; screenshots in
#                   build/browser-screenshots/)
#   make format     clang-format every C file in place (the root .clang-format)
#   make format-check   fail, listing the files, if any C file is not formatted
#                   (CI runs it: .ci/run)
#   make deps       install the Debian packages (idempotent; root or sudo)
#   make clean      remove build trees (not .run/ data)

SHELL := /bin/bash
BUILD ?= build
ASAN_BUILD ?= build-asan
RUN_DIR ?= .run
HTTP_PORT ?= 8001
NODE ?= 4

DEPS := gcc libc6-dev make meson ninja-build pkg-config python3 curl \
        libprotobuf-c-dev protobuf-c-compiler libnng-dev libsodium-dev \
        librocksdb-dev libcjson-dev libcivetweb-dev libcmocka-dev \
        libcurl4-openssl-dev
BENCH_DEPS := wrk nginx-light etcd-server etcd-client
PROFILE_DEPS := linux-perf
FORMAT_DEPS := clang-format
# Every C source and header of ours (generated protobuf code is in build/).
C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find src include tests tools -name '*.[ch]')

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build deps bench-deps run run-second-node test test-unit test-asan bench bench-single bench-profile clean format format-check

all: build

deps:
	@tools/install-deps.sh $(DEPS)

bench-deps:
	@tools/install-deps.sh $(BENCH_DEPS)

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) --buildtype=debugoptimized

$(ASAN_BUILD)/build.ninja: | deps
	meson setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined \
	    -Db_lundef=false -Dintegration=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	@tools/run-local.sh $(BUILD)/ringkvd $(RUN_DIR) $(HTTP_PORT)

run-second-node: build
	@tools/run-second-node.sh $(BUILD)/ringkvd $(RUN_DIR) $(HTTP_PORT) $(NODE)

# One summary line at the end: "N passed, N failed"; non-zero exit on any
# failure. The sanitizer build runs the unit tests (fast, where memory bugs
# hide); the normal build runs everything.
test: deps $(BUILD)/build.ninja $(ASAN_BUILD)/build.ninja
	@ninja -C $(BUILD) && ninja -C $(ASAN_BUILD)
	@tools/run-tests.sh $(BUILD) $(ASAN_BUILD)

# The web client (webclient/) driven in headless Chromium from Debian by
# playwright-core (pinned in tests/browser/package-lock.json) against a real
# 3-node cluster: tests/browser/run.mjs. Installs chromium (and node + npm
# when missing), then the npm packages; fails with the reason if it cannot.
# One summary line at the end: "browser: N passed, N failed".
BROWSER_DEPS := chromium
.PHONY: browser-test
browser-test: build
	@tools/install-deps.sh $(BROWSER_DEPS)
	@{ command -v node && command -v npm; } >/dev/null || tools/install-deps.sh nodejs npm
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' || \
	  { echo "browser-test: node 18 or newer is needed (found $$(node --version))"; exit 1; }
	@cd tests/browser && npm ci --no-audit --no-fund --loglevel=error || \
	  { echo "browser-test: npm ci failed in tests/browser (is registry.npmjs.org reachable?)"; exit 1; }
	@RINGKVD=$(CURDIR)/$(BUILD)/ringkvd node tests/browser/run.mjs

bench: build bench-deps
	@tools/bench-cluster.sh $(BUILD)/ringkvd

bench-single: build bench-deps
	@tools/bench-single.sh $(BUILD)/ringkvd

# Ring changes and anti-entropy -> docs/benchmarks.md (section bench:sync):
# a 4th node joins a loaded 3-node cluster under load, then a restarted node
# catches up on missed writes by anti-entropy (tools/bench-sync.sh; env KEYS,
# RATE_MB, WIN, JOIN_MAX, ...).
.PHONY: bench-sync
bench-sync: build bench-deps
	@tools/bench-sync.sh $(BUILD)/ringkvd

# CPU and context switches per quorum request on a 3-node cluster: the
# figure to compare two builds by on a busy machine (tools/bench-cost.sh;
# env DUR, CONNS, KEYS, ROUNDS).
.PHONY: bench-cost
bench-cost: build bench-deps
	@tools/bench-cost.sh $(BUILD)/ringkvd

# What 100,000 records of ~50 words cost one node: RSS, and disk after a
# full compaction (tools/bench-footprint.py -> docs/benchmarks.md).
.PHONY: bench-footprint
bench-footprint: build
	@tools/install-deps.sh rocksdb-tools
	@tools/bench-footprint.py $(BUILD)/ringkvd --markdown docs/benchmarks.md

# Live updates (SSE) next to etcd's watch, in one run: ack -> event latency
# with 10,000 subscribers, RSS per connection and per watched key, fan-out
# to 10,000 subscribers of one key, PUT p99 with a stalled subscriber
# (tools/bench-watch.py; ~20 min; WATCH_ARGS=--quick for ~2 min at small
# scale, or any of its options, e.g. WATCH_ARGS="--rounds 1 --phases A,C").
# Results folder printed at the end; figures go to docs/benchmarks.md by hand.
.PHONY: bench-watch
bench-watch: build bench-deps
	@tools/bench-watch.py $(BUILD)/ringkvd $(WATCH_ARGS)

# The quorum lab (tools/quorum-lab, docs/quorum-lab.md): 5 local nodes with
# injected link delays, every N/R/W measured beside GET /pbs's prediction;
# CSV, SVG plots and report.md in build/quorum-lab/<time>/. The full grid
# takes about half an hour; LAB_ARGS=--quick runs a small one in about a
# minute (CI does), LAB_ARGS="--publish 127.0.0.1:8001" puts the figures
# in a running cluster for its web client's quorum view.
.PHONY: lab
lab: build
	@tools/quorum-lab $(LAB_ARGS)

# The docker-compose cluster end to end (tools/compose-test.sh): installs
# docker.io, docker-compose and debootstrap if missing, starts an engine if
# none answers, builds the image and checks the cluster. .ci/run runs it.
COMPOSE_DEPS := docker.io docker-compose debootstrap curl python3
.PHONY: compose-test
compose-test:
	@tools/install-deps.sh $(COMPOSE_DEPS)
	@tools/compose-test.sh

# The same docker-compose.yml deployed with `docker stack deploy` on a
# one-node swarm (tools/swarm-test.sh); .ci/run runs it after compose-test.
.PHONY: swarm-test
swarm-test:
	@tools/install-deps.sh $(COMPOSE_DEPS)
	@tools/swarm-test.sh

bench-profile: build bench-deps
	@tools/install-deps.sh $(PROFILE_DEPS)
	@tools/bench-profile.sh $(BUILD)/ringkvd

format:
	@tools/install-deps.sh $(FORMAT_DEPS)
	clang-format -i --style=file $(C_FILES)

format-check:
	@tools/install-deps.sh $(FORMAT_DEPS)
	@bad=$$(for f in $(C_FILES); do clang-format --style=file --dry-run -Werror "$$f" >/dev/null 2>&1 || echo "$$f"; done); \
	if [ -n "$$bad" ]; then echo "not formatted (run make format):"; echo "$$bad" | sed 's/^/  /'; exit 1; fi; \
	echo "format-check: $(words $(C_FILES)) C files formatted"

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
