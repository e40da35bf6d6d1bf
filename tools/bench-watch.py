#!/usr/bin/env python3
"""bench-watch.py RINGKVD - live updates (SSE) next to etcd's watch (`make bench-watch`).

One run measures ringkv (3 nodes, N=3 R=2 W=2) and a 3-node etcd (through its
JSON gateway) the same way, phase by phase, targets interleaved, a fresh
cluster for every phase of every target and round (so that each RSS baseline
is a node that has held nothing yet):

  A  CONNECTIONS subscriber connections on one node, spread over KEYS keys
     (connection i watches key i % KEYS), RATE writes/s for DURATION s through
     the two other nodes: latency from the writer's acknowledgement of value V
     to the subscriber's parse of the event carrying V (one monotonic clock),
     and the node's RSS growth per connection.
  B  MULTI_CONNS connections watching KEYS_PER_CONN distinct keys each (ours:
     GET /{t}/subscribe?key=..&key=..; etcd: that many create_requests on one
     POST /v3/watch stream, see "etcd" below): RSS growth per watched key, and
     a delivery check (a few writes; each event must arrive).
  C  FANOUT_SUBS subscribers of one key; FANOUT_WRITES writes to it, one at a
     time: time from the acknowledgement until the last subscriber has it.
  D  closed-loop PUT load (../shared/bench/http-kv.sh: wrk, PUT_CONNS
     connections, PUT_DURATION s) on one node, without and then with a stalled
     subscriber on that node (a socket with a 4 KiB receive buffer that never
     reads, subscribed to every key written): PUT p99 with / without.

Subscribers are held by WORKERS processes (non-blocking sockets, epoll); each
timestamps an event at the recv() that completed it. The writer (threads of
this process, keep-alive connections) records the time it read the answer of
each PUT; a value is "bw<seq>z" padded to 100 bytes, so each event is matched
to its write. RSS = VmRSS of the node holding the subscribers
(/proc/PID/status), before connecting and once all are connected.

etcd: ../shared/bench/peers/etcd-cluster.sh (3 members, Raft, fsync). The
subscribers go to a follower (POST /v3/watch, body
{"create_request":{"key":"<base64>"}}), the writes to the leader and the other
follower (POST /v3/kv/put). In D the load and the stalled watcher (a range
watch over the written keys) are on the leader, as compare.sh loads it.
The gateway (grpc-gateway v1 in etcd 3.4) reads a streaming request body only
until it writes the response headers; then Go's HTTP server discards the rest
of the body if it is under 256 KiB. So several create_requests in one POST
register only racily (measured: 91-100 of 100). A body padded past 256 KiB
(whitespace, with an empty `{}` request every 4 KB, which etcd ignores) is
not discarded, and every create_request registers (300 of 300): that is how
B gives etcd KEYS_PER_CONN watchers per stream. Each stream counts its
`"created":true` answers, so the figures divide by watchers that exist.

Output (OUT, default ${BENCH_RUN_DIR:-/tmp/kvbench}/watch-DATE): results.tsv
(round, phase, target, figure, value, unit: every figure), results.json (the
same plus the run's parameters), summary.md (medians over the rounds, ours
next to etcd, ratio, goal; printed too), logs/ (node and etcd logs, wrk).

Every load is bounded in time; all traffic goes to 127.0.0.1; every process
started here is stopped on exit (Ctrl-C included; the nodes also get SIGTERM
should this process die). --quick: small scale, about 2 minutes.
"""
import argparse
import array
import base64
import collections
import ctypes
import errno
import http.client
import json
import multiprocessing
import os
import pickle
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MS = 1e6  # ns per ms
VALUE_BYTES = 100
TOKEN_RE = re.compile(rb'bw(\d+)z')
ETCD_VALUE_RE = re.compile(rb'"value":"([A-Za-z0-9+/=]*)"')

# ---------------------------------------------------------------- helpers


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def now_ns():
    return time.monotonic_ns()


def rss_kib(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def settled_rss_kib(pid, settle_s):
    """Median of 5 VmRSS samples over a second, after settle_s of quiet (Go's
    GC and glibc's arenas move RSS by a few MiB; a median of samples is
    steadier than one read)."""
    time.sleep(settle_s)
    samples = []
    for _ in range(5):
        samples.append(rss_kib(pid))
        time.sleep(0.2)
    return statistics.median(samples)


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def port_busy(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def value_for(seq):
    v = f"bw{seq}z"
    return v + "." * (VALUE_BYTES - len(v))


_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def http_json(port, method, path, body=None, timeout=2):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body, {"Content-Type": "application/json"} if body else {})
        r = conn.getresponse()
        data = r.read()
        return r.status, data
    finally:
        conn.close()


class CpuAccount:
    """../shared/bench/lib/cpu-account.sh around a window: how many cores
    processes other than ours (this script, its workers, the nodes) used."""

    def __init__(self, script, workdir):
        self.script = script if script and os.access(script, os.X_OK) else None
        self.workdir = workdir
        self.n = 0

    def start(self):
        if not self.script:
            return None
        self.n += 1
        a = os.path.join(self.workdir, f"cpu{self.n}a")
        subprocess.run([self.script, "snap", a], check=False)
        return a

    def stop(self, a, pids):
        if not self.script or not a:
            return {}
        b = a[:-1] + "b"
        subprocess.run([self.script, "snap", b], check=False)
        out = subprocess.run([self.script, "diff", a, b, str(os.getpid())] + [str(p) for p in pids],
                             capture_output=True, text=True, check=False).stdout
        return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", out)}


# ---------------------------------------------------------------- targets


class Ours:
    """A fresh 3-node ringkv cluster per phase (or an external one)."""

    name = "ours"
    kind = "sse"

    def __init__(self, args, workdir, logdir):
        self.args, self.workdir, self.logdir = args, workdir, logdir
        self.procs = []
        self.next_base = args.port
        self.external = bool(args.ours_nodes)

    def start(self, tag):
        a = self.args
        if self.external:
            ports = [urllib.parse.urlsplit(u).port for u in a.ours_nodes.split(",")]
            self.ports = ports
            self.pids = [int(p) for p in a.ours_pids.split()]
            self.sub_pid = self.pids[0]
            self.table = "watch"
            return
        base = self.find_base()
        self.next_base = base + 10
        run = tempfile.mkdtemp(prefix="ringkv-bench-watch.", dir=self.workdir)
        with open(os.path.join(run, "secret"), "w") as f:
            f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
        os.chmod(os.path.join(run, "secret"), 0o600)
        self.ports = [base, base + 1, base + 2]
        self.procs = []
        for k in (1, 2, 3):
            port = base + k - 1
            cmd = [a.ringkvd, "--data", os.path.join(run, f"node{k}"), "--http", f"127.0.0.1:{port}",
                   "--rpc", f"127.0.0.1:{port + 1000}", "--secret-file", os.path.join(run, "secret"),
                   "--name", f"node{k}", "--n", "3", "--r", "2", "--w", "2",
                   "--max-subscribers", str(a.max_subscribers), "--http-threads", str(a.http_threads)]
            if k > 1:
                cmd += ["--join", f"127.0.0.1:{base + 1000}"]
            os.makedirs(os.path.join(run, f"node{k}"), exist_ok=True)
            logf = open(os.path.join(self.logdir, f"ours-{tag}-node{k}.log"), "w")
            self.procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                               preexec_fn=_die_with_parent))
            logf.close()
            if k == 1:
                self.wait_health(port, self.procs[0])
        for k, p in enumerate(self.procs):
            self.wait_health(self.ports[k], p)
        deadline = time.time() + 30
        while not all(self.members_ok(p) for p in self.ports):
            if time.time() > deadline:
                raise RuntimeError("the 3 ringkv nodes do not all see 3 alive members after 30 s")
            time.sleep(0.2)
        self.pids = [p.pid for p in self.procs]
        self.sub_pid = self.pids[0]
        self.table = "watch"
        self.run_dir = run

    def find_base(self):
        for b in range(self.next_base, self.next_base + 1000, 10):
            if not any(port_busy(p) or port_busy(p + 1000) for p in (b, b + 1, b + 2)):
                return b
        raise RuntimeError(f"no 3 free ports from {self.next_base} on")

    def wait_health(self, port, proc):
        deadline = time.time() + 20
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ringkvd on port {port} exited (status {proc.returncode}); see {self.logdir}")
            try:
                if http_json(port, "GET", "/health", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"ringkvd on port {port} did not answer /health within 20 s")

    def members_ok(self, port):
        try:
            st, body = http_json(port, "GET", "/cluster", timeout=1)
        except OSError:
            return False
        return (st == 200 and len(re.findall(rb'"status": *"member"', body)) >= 3
                and len(re.findall(rb'"liveness": *"alive"', body)) >= 3)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []
        if not self.external and getattr(self, "run_dir", None):
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None

    # where things go
    def sub_port(self):
        return self.ports[0]

    def write_ports(self):
        return self.ports[1:]

    def load_port(self):  # D: the PUT load and the stalled subscriber
        return self.ports[0]

    def all_pids(self):
        return list(self.pids)

    # requests
    def sub_request(self, keys, multi=False):
        t = self.table
        if len(keys) == 1 and not multi:
            path = f"/{t}/subscribe/{urllib.parse.quote(keys[0], safe='')}"
        else:
            path = f"/{t}/subscribe?" + "&".join("key=" + urllib.parse.quote(k, safe="") for k in keys)
        return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()

    def stall_request(self):
        # every change of the table http-kv.sh writes to
        return b"GET /bench/subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"

    def put(self, conn, key, seq):
        conn.request("PUT", f"/{self.table}/key/{urllib.parse.quote(key, safe='')}",
                     json.dumps({"value": value_for(seq)}), {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        return r.status

    def kv_api(self):
        return "kv", f"http://127.0.0.1:{self.load_port()}/bench/key"

    def dropped_slow(self):
        try:
            st, body = http_json(self.load_port(), "GET", "/metrics")
        except OSError:
            return float("nan")
        m = re.search(rb'ringkv_subscribers_dropped_total\{reason="slow"\} ([0-9.e+]+)', body)
        return float(m.group(1)) if m else float("nan")

    def describe(self):
        if self.external:
            return f"ringkv: running nodes {self.args.ours_nodes}, subscribers on the first"
        return (f"ringkv: 3 nodes N=3 R=2 W=2, --max-subscribers {self.args.max_subscribers} "
                f"--http-threads {self.args.http_threads}; subscribers on node1, writes through node2 and node3")


class Etcd:
    """A fresh 3-member etcd per phase, through the harness's peer script."""

    name = "etcd"
    kind = "etcd"

    def __init__(self, args, workdir, logdir):
        self.args, self.workdir, self.logdir = args, workdir, logdir
        self.script = os.path.join(args.bench_dir, "peers", "etcd-cluster.sh")
        self.env = dict(os.environ, BENCH_RUN_DIR=os.path.join(workdir, "etcd-run"),
                        BENCH_MAX_LIFETIME=str(args.max_lifetime))
        self.running = False

    def start(self, tag):
        self.tag = tag
        base = self.find_base()
        self.env["ETCD_PORT_BASE"] = str(base)
        self.ports = [base, base + 10000, base + 20000]
        with open(os.path.join(self.logdir, "etcd-peers.txt"), "a") as f:
            f.write(f"== start {tag}\n")
            f.flush()
            r = subprocess.run([self.script, "start"], env=self.env, stdout=f, stderr=f, check=False)
        self.running = True
        if r.returncode != 0:
            raise RuntimeError(f"etcd did not start; see {self.logdir}/etcd-peers.txt")
        state = os.path.join(self.env["BENCH_RUN_DIR"], "etcd-state")
        self.wrappers, self.pids = [], []
        for n in (1, 2, 3):
            with open(os.path.join(state, f"node{n}.pid")) as f:
                w = int(f.read().strip())
            self.wrappers.append(w)
            kids = children_of(w)
            self.pids.append(kids[0] if kids else w)
        self.leader = None
        for _ in range(50):
            roles = self.roles()
            if roles.count(True) == 1:
                self.leader = roles.index(True)
                break
            time.sleep(0.2)
        if self.leader is None:
            raise RuntimeError("etcd has no leader")
        followers = [i for i in range(3) if i != self.leader]
        if self.args.etcd_watch_member == "leader":
            self.sub_idx, self.write_idx = self.leader, followers
        else:
            self.sub_idx, self.write_idx = followers[0], [self.leader, followers[1]]
        self.sub_pid = self.pids[self.sub_idx]
        self.tag = tag

    def find_base(self):
        for b in range(self.args.etcd_port_base, self.args.etcd_port_base + 500, 10):
            if not any(port_busy(b + 10000 * i + j) for i in range(3) for j in (0, 1)):
                return b
        raise RuntimeError("no free etcd ports")

    def roles(self):
        out = []
        for p in self.ports:
            try:
                st, body = http_json(p, "POST", "/v3/maintenance/status", b"{}")
                j = json.loads(body)
                out.append(j["header"]["member_id"] == j["leader"])
            except (OSError, ValueError, KeyError):
                out.append(None)
        return out

    def stop(self):
        if not self.running:
            return
        with open(os.path.join(self.logdir, "etcd-peers.txt"), "a") as f:
            subprocess.run([self.script, "stop"], env=self.env, stdout=f, stderr=f, check=False)
        logs = os.path.join(self.env["BENCH_RUN_DIR"], "etcd")
        for n in (1, 2, 3):
            src = os.path.join(logs, f"node{n}.log")
            if os.path.exists(src):
                shutil.copy(src, os.path.join(self.logdir, f"etcd-{self.tag}-node{n}.log"))
        self.running = False

    def sub_port(self):
        return self.ports[self.sub_idx]

    def write_ports(self):
        return [self.ports[i] for i in self.write_idx]

    def load_port(self):
        return self.ports[self.leader]

    def all_pids(self):
        return self.wrappers + self.pids

    @staticmethod
    def b64(s):
        return base64.b64encode(s.encode()).decode()

    def watch_request(self, creates, pad=False):
        body = b"".join(json.dumps({"create_request": c}, separators=(",", ":")).encode() for c in creates)
        if len(creates) > 1 or pad:
            # past Go's 256 KiB post-handler discard limit (see the file head)
            body += (b"{}" + b" " * 4000) * 70
        return (b"POST /v3/watch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)) + body

    def sub_request(self, keys, multi=False):
        return self.watch_request([{"key": self.b64(k)} for k in keys], pad=multi)

    def stall_request(self):
        # every key http-kv.sh writes ("bench-00000042"): the range [bench-, bench.)
        return self.watch_request([{"key": self.b64("bench-"), "range_end": self.b64("bench.")}])

    def put(self, conn, key, seq):
        conn.request("POST", "/v3/kv/put", json.dumps({"key": self.b64(key), "value": self.b64(value_for(seq))}),
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        return r.status

    def kv_api(self):
        return "etcd", f"http://127.0.0.1:{self.load_port()}"

    def dropped_slow(self):
        return float("nan")  # etcd keeps a slow watcher (as a "victim"), it does not drop it

    def describe(self):
        where = ("the leader, writes through the two followers" if self.args.etcd_watch_member == "leader"
                 else "a follower, writes through the leader and the other follower")
        return f"etcd {etcd_version()}: 3 members (Raft, fsync), JSON gateway; watchers on {where}"


def etcd_version():
    try:
        out = subprocess.run(["etcd", "--version"], capture_output=True, text=True, timeout=5).stdout
        return out.split("\n")[0].split()[-1]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


# ---------------------------------------------------------------- subscriber workers
# counters shared with the main process (one RawArray per worker, written by it only)
C_READY, C_FAILED, C_EVENTS, C_WATCHERS, C_CLOSED, C_RESETS, C_CONNECTED = range(7)


class Conn:
    __slots__ = ("sock", "cid", "out", "state", "buf", "body", "chunked", "chunk_left", "ready",
                 "watchers", "want")


def hold_worker(kind, specs, max_inflight, ctrl, counters, outfile, deadline):
    """Holds subscriber connections until told to stop (or the deadline): specs
    is a list of (cid, port, request bytes, watchers expected on it). Records
    (seq, recv time ns, cid) for every value seen, and writes them to outfile."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    sel = selectors.DefaultSelector()
    sel.register(ctrl.fileno(), selectors.EVENT_READ, None)
    pending = collections.deque(specs)
    conns = {}
    inflight = 0
    seqs, times, cids = array.array("q"), array.array("q"), array.array("l")
    failures = collections.Counter()

    def fail(c, reason):
        nonlocal inflight
        failures[reason] += 1
        if c.ready:
            counters[C_CLOSED] += 1
        else:
            counters[C_FAILED] += 1
            inflight -= 1
        close(c)

    def close(c):
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        conns.pop(c.cid, None)

    def became_ready(c):
        nonlocal inflight
        c.ready = True
        inflight -= 1
        counters[C_READY] += 1

    def frames(c, t):
        data = c.body
        sep = b"\n\n" if kind == "sse" else b"\n"
        end = data.rfind(sep)
        if end < 0:
            return
        chunk = bytes(data[:end])
        del data[:end + len(sep)]
        if kind == "sse":
            if not c.ready and b": subscribed" in chunk:
                became_ready(c)
            if b"event: reset" in chunk:
                counters[C_RESETS] += chunk.count(b"event: reset")
            for m in TOKEN_RE.finditer(chunk):
                seqs.append(int(m.group(1)))
                times.append(t)
                cids.append(c.cid)
                counters[C_EVENTS] += 1
        else:
            if b'"created":true' in chunk:
                n = chunk.count(b'"created":true')
                c.watchers += n
                counters[C_WATCHERS] += n
                if not c.ready and c.watchers >= c.want:
                    became_ready(c)
            if b'"canceled":true' in chunk:
                failures["etcd canceled"] += chunk.count(b'"canceled":true')
            if b'"events"' in chunk:
                for m in ETCD_VALUE_RE.finditer(chunk):
                    mm = TOKEN_RE.match(base64.b64decode(m.group(1)))
                    if mm:
                        seqs.append(int(mm.group(1)))
                        times.append(t)
                        cids.append(c.cid)
                        counters[C_EVENTS] += 1

    def dechunk(c, data):
        # Transfer-Encoding: chunked -> c.body (etcd's gateway; civetweb may too)
        buf = c.buf
        buf += data
        while buf:
            if c.chunk_left > 0:
                n = min(c.chunk_left, len(buf))
                c.body += buf[:n]
                del buf[:n]
                c.chunk_left -= n
                if c.chunk_left == 0:
                    c.chunk_left = -2  # the CRLF after the data
                continue
            if c.chunk_left == -2:
                if len(buf) < 2:
                    return True
                del buf[:2]
                c.chunk_left = 0
                continue
            i = buf.find(b"\r\n")
            if i < 0:
                return True
            size = int(bytes(buf[:i]).split(b";")[0], 16)
            del buf[:i + 2]
            if size == 0:
                return False  # end of the body
            c.chunk_left = size
        return True

    def on_read(c):
        try:
            data = c.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            fail(c, errno.errorcode.get(e.errno, str(e)))
            return
        t = now_ns()
        if not data:
            fail(c, "closed by server" if c.ready else "closed before ready")
            return
        if c.state == 1:  # status line and headers
            c.buf += data
            i = c.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            head = bytes(c.buf[:i]).decode("latin-1")
            rest = bytes(c.buf[i + 4:])
            c.buf = bytearray()
            status = head.split(" ", 2)[1] if " " in head else "?"
            if status != "200":
                fail(c, f"HTTP {status}")
                return
            c.chunked = "transfer-encoding: chunked" in head.lower()
            c.state = 2
            data = rest
        if c.chunked:
            if not dechunk(c, data):
                fail(c, "end of body")
                return
        else:
            c.body += data
        frames(c, t)

    def on_write(c):
        if c.state == 0:
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                fail(c, errno.errorcode.get(err, str(err)))
                return
            c.state = 1
            counters[C_CONNECTED] += 1
        try:
            n = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            fail(c, errno.errorcode.get(e.errno, str(e)))
            return
        c.out = c.out[n:]
        if not c.out:
            sel.modify(c.sock, selectors.EVENT_READ, c)

    def open_next():
        nonlocal inflight
        cid, port, req, want = pending.popleft()
        c = Conn()
        c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sock.setblocking(False)
        c.cid, c.out, c.state, c.buf, c.body = cid, memoryview(req), 0, bytearray(), bytearray()
        c.chunked, c.chunk_left, c.ready, c.watchers, c.want = False, 0, False, 0, want
        inflight += 1
        conns[cid] = c
        try:
            c.sock.connect(("127.0.0.1", port))
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:
            fail(c, errno.errorcode.get(e.errno, str(e)))
            return
        sel.register(c.sock, selectors.EVENT_WRITE, c)

    running = True
    while running:
        while pending and inflight < max_inflight:
            open_next()
        for key, mask in sel.select(timeout=0.1):
            c = key.data
            if c is None:
                msg = ctrl.recv()
                if msg == "stop":
                    running = False
                continue
            if mask & selectors.EVENT_WRITE:
                on_write(c)
            elif mask & selectors.EVENT_READ:
                on_read(c)
        if time.time() > deadline or os.getppid() != parent:
            running = False
    for c in list(conns.values()):
        try:  # RST, not FIN: no TIME_WAIT left for the next phase's ports
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        c.sock.close()
    with open(outfile, "wb") as f:
        pickle.dump((seqs, times, cids, dict(failures)), f)
    ctrl.send("done")


class Holders:
    """WORKERS processes holding subscriber connections."""

    def __init__(self, kind, specs, nworkers, workdir, tag, max_lifetime):
        self.procs, self.ctrls, self.counters, self.files = [], [], [], []
        ctx = multiprocessing.get_context("fork")
        inflight = 64
        for w in range(nworkers):
            part = specs[w::nworkers]
            parent_end, child_end = ctx.Pipe()
            counters = ctx.RawArray("q", 7)
            f = os.path.join(workdir, f"events-{tag}-{w}.pickle")
            p = ctx.Process(target=hold_worker, daemon=True,
                            args=(kind, part, inflight, child_end, counters, f, time.time() + max_lifetime))
            p.start()
            self.procs.append(p)
            self.ctrls.append(parent_end)
            self.counters.append(counters)
            self.files.append(f)
        self.total = len(specs)

    def count(self, i):
        return sum(c[i] for c in self.counters)

    def wait_ready(self, timeout):
        """Until every connection is ready or failed, or timeout s."""
        deadline = time.time() + timeout
        last = -1
        while time.time() < deadline:
            done = self.count(C_READY) + self.count(C_FAILED)
            if done >= self.total:
                return True
            if done != last and done and done % 1000 < 50:
                log(f"   {self.count(C_READY)} ready, {self.count(C_FAILED)} failed of {self.total}")
            last = done
            time.sleep(0.05)
        return False

    def stop(self):
        """Stops the workers; returns (seqs, times, cids, failures) of all."""
        for c in self.ctrls:
            try:
                c.send("stop")
            except OSError:
                pass
        seqs, times, cids, failures = array.array("q"), array.array("q"), array.array("l"), collections.Counter()
        for p, c, f in zip(self.procs, self.ctrls, self.files):
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
            try:
                with open(f, "rb") as fh:
                    s, t, ci, fl = pickle.load(fh)
                os.unlink(f)
            except (OSError, EOFError, pickle.PickleError):
                continue
            seqs.extend(s)
            times.extend(t)
            cids.extend(ci)
            failures.update(fl)
        return seqs, times, cids, failures

    def pids(self):
        return [p.pid for p in self.procs]


# ---------------------------------------------------------------- writer


class SeqSource:
    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            self.n += 1
            return self.n


def paced_writes(target, ports, keys, key_of, rate, duration, seqs, threads=16):
    """RATE writes/s for DURATION s (open-loop schedule, at most THREADS in
    flight), round-robin over PORTS. Returns a list of
    (seq, key index, t_send_ns, t_ack_ns, status)."""
    results = []
    lock = threading.Lock()
    t0 = now_ns() + 50 * 1_000_000
    total = int(rate * duration)
    counter = [0]

    def run(i):
        port = ports[i % len(ports)]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        mine = []
        while True:
            with lock:
                n = counter[0]
                counter[0] += 1
            if n >= total:
                break
            when = t0 + int(n * 1e9 / rate)
            delay = (when - now_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)
            seq = seqs.take()
            k = key_of(n)
            ts = now_ns()
            try:
                st = target.put(conn, keys[k], seq)
            except (OSError, http.client.HTTPException):
                st = 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            mine.append((seq, k, ts, now_ns(), st))
        conn.close()
        with lock:
            results.extend(mine)

    ths = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(timeout=duration + 60)
    return results


# ---------------------------------------------------------------- phases


class Run:
    def __init__(self, args):
        self.args = args
        self.rows = []  # dicts: round phase target figure value unit
        self.seqs = SeqSource()

    def rec(self, rnd, phase, target, figure, value, unit=""):
        self.rows.append({"round": rnd, "phase": phase, "target": target, "figure": figure,
                          "value": value, "unit": unit})
        if isinstance(value, float):
            value = f"{value:.3f}"
        log(f"   {phase} {target} {figure} = {value} {unit}")


def specs_one_key(target, port, n, keys):
    reqs = [target.sub_request([k]) for k in keys]
    return [(i, port, reqs[i % len(keys)], 1) for i in range(n)]


def connect(run, target, specs, tag, timeout):
    a = run.args
    h = Holders(target.kind, specs, a.workers, a.workdir, tag, a.max_lifetime)
    ok = h.wait_ready(timeout)
    if not ok:
        log(f"   not all ready after {timeout} s: {h.count(C_READY)} ready, {h.count(C_FAILED)} failed")
    return h


def latency_figures(run, rnd, phase, tname, writes, seqs_, times_, cids_, subs_of_key, prefix):
    """Matches events to acknowledged writes: ack -> event latency of each
    (write, subscriber) pair, and the pairs that never came."""
    ack = {}
    expected = 0
    for seq, k, ts, ta, st in writes:
        if 200 <= st < 300:
            ack[seq] = (ta, k)
            expected += len(subs_of_key(k))
    seen = set()
    lat, dup = [], 0
    for s, t, c in zip(seqs_, times_, cids_):
        if s not in ack:
            continue
        if (s, c) in seen:
            dup += 1
            continue
        seen.add((s, c))
        lat.append((t - ack[s][0]) / MS)
    lat.sort()
    run.rec(rnd, phase, tname, f"{prefix}events_expected", expected)
    run.rec(rnd, phase, tname, f"{prefix}events_missing", expected - len(lat))
    run.rec(rnd, phase, tname, f"{prefix}events_duplicate", dup)
    run.rec(rnd, phase, tname, f"{prefix}events_before_ack", sum(1 for x in lat if x < 0))
    for p in (50, 90, 99, 99.9):
        run.rec(rnd, phase, tname, f"{prefix}ack_to_event_p{p:g}", pct(lat, p), "ms")
    run.rec(rnd, phase, tname, f"{prefix}ack_to_event_max", lat[-1] if lat else float("nan"), "ms")
    return ack


def write_stats(run, rnd, phase, tname, writes, duration):
    ok = sorted((ta - ts) / MS for _, _, ts, ta, st in writes if 200 <= st < 300)
    run.rec(rnd, phase, tname, "writes_acked", len(ok))
    run.rec(rnd, phase, tname, "writes_failed", len(writes) - len(ok))
    run.rec(rnd, phase, tname, "write_rate", len(ok) / duration, "/s")
    run.rec(rnd, phase, tname, "write_p50", pct(ok, 50), "ms")
    run.rec(rnd, phase, tname, "write_p99", pct(ok, 99), "ms")


def connection_figures(run, rnd, phase, tname, h, failures):
    run.rec(rnd, phase, tname, "connections_ready", h.count(C_READY))
    run.rec(rnd, phase, tname, "connections_failed", h.count(C_FAILED))
    run.rec(rnd, phase, tname, "connections_closed_by_server", h.count(C_CLOSED))
    run.rec(rnd, phase, tname, "resets", h.count(C_RESETS))
    if failures:
        run.rec(rnd, phase, tname, "failure_reasons",
                "; ".join(f"{k}: {v}" for k, v in failures.most_common(5)))


def phase_a(run, rnd, target):
    a = run.args
    t, tn = target, target.name
    keys = [f"k{i:05d}" for i in range(a.keys)]
    rss0 = settled_rss_kib(t.sub_pid, a.settle)
    specs = specs_one_key(t, t.sub_port(), a.connections, keys)
    log(f"== round {rnd}: A {tn}: {a.connections} subscribers over {a.keys} keys on port {t.sub_port()}")
    h = connect(run, t, specs, f"A-{tn}-{rnd}", a.connect_timeout)
    try:
        ready = h.count(C_READY)
        rss1 = settled_rss_kib(t.sub_pid, a.settle)
        run.rec(rnd, "A", tn, "rss_before", rss0 / 1024, "MiB")
        run.rec(rnd, "A", tn, "rss_connected", rss1 / 1024, "MiB")
        run.rec(rnd, "A", tn, "rss_growth", (rss1 - rss0) / 1024, "MiB")
        run.rec(rnd, "A", tn, "rss_per_connection", (rss1 - rss0) * 1024 / max(ready, 1), "bytes")
        log(f"   load: {a.rate} writes/s for {a.duration} s through ports {t.write_ports()}")
        cpu = run.cpu.start()
        writes = paced_writes(t, t.write_ports(), keys, lambda n: (n * 7919) % len(keys), a.rate,
                              a.duration, run.seqs)
        time.sleep(a.drain)
        cpu = run.cpu.stop(cpu, t.all_pids())
        rss2 = rss_kib(t.sub_pid)
    finally:
        seqs_, times_, cids_, failures = h.stop()
    run.rec(rnd, "A", tn, "rss_after_load", rss2 / 1024, "MiB")
    connection_figures(run, rnd, "A", tn, h, failures)
    write_stats(run, rnd, "A", tn, writes, a.duration)
    nk = len(keys)
    subs = {k: range(k, a.connections, nk) for k in range(nk)}
    latency_figures(run, rnd, "A", tn, writes, seqs_, times_, cids_, lambda k: subs[k], "")
    for k, v in cpu.items():
        run.rec(rnd, "A", tn, k, v, "cores")


def phase_b(run, rnd, target):
    """First MULTI_CONNS streams of one key each, then MULTI_CONNS streams of
    KEYS_PER_CONN keys (same request shape: ?key= for ours, a padded body for
    etcd). Goal figure: growth from the second set / its watched keys (the
    connections' cost included). Marginal figure: what a watched key costs
    beyond its stream, (growth2 - growth1 scaled to the same streams) /
    (watched2 - streams2) - etcd's "per watcher on a shared stream"."""
    a = run.args
    t, tn = target, target.name
    nconn, kpc = a.multi_conns, a.keys_per_conn
    keys = [f"m{i:06d}" for i in range(nconn * kpc)]
    rss0 = settled_rss_kib(t.sub_pid, a.settle)
    log(f"== round {rnd}: B {tn}: {nconn} connections x 1 key, then {nconn} x {kpc} keys on port {t.sub_port()}")
    specs1 = [(i, t.sub_port(), t.sub_request([f"s{i:06d}"], multi=True), 1) for i in range(nconn)]
    h1 = connect(run, t, specs1, f"B1-{tn}-{rnd}", a.connect_timeout)
    h2 = None
    writes = []
    try:
        ready1 = h1.count(C_READY)
        rss1 = settled_rss_kib(t.sub_pid, a.settle)
        specs2 = [(nconn + i, t.sub_port(), t.sub_request(keys[i * kpc:(i + 1) * kpc], multi=True), kpc)
                  for i in range(nconn)]
        h2 = connect(run, t, specs2, f"B-{tn}-{rnd}", a.connect_timeout)
        ready2 = h2.count(C_READY)
        watched = ready2 * kpc if t.kind == "sse" else h2.count(C_WATCHERS)
        rss2 = settled_rss_kib(t.sub_pid, a.settle)
        g1, g2 = (rss1 - rss0) * 1024, (rss2 - rss1) * 1024
        run.rec(rnd, "B", tn, "one_key_connections_ready", ready1)
        run.rec(rnd, "B", tn, "rss_per_one_key_connection", g1 / max(ready1, 1), "bytes")
        run.rec(rnd, "B", tn, "watched_keys", watched)
        run.rec(rnd, "B", tn, "rss_before", rss1 / 1024, "MiB")
        run.rec(rnd, "B", tn, "rss_connected", rss2 / 1024, "MiB")
        run.rec(rnd, "B", tn, "rss_growth", g2 / 1048576, "MiB")
        run.rec(rnd, "B", tn, "rss_per_watched_key", g2 / max(watched, 1), "bytes")
        extra = watched - ready2
        run.rec(rnd, "B", tn, "rss_per_extra_watched_key",
                (g2 - g1 * ready2 / max(ready1, 1)) / extra if extra > 0 else float("nan"), "bytes")
        # delivery check: writes to keys spread over all the multi-key connections
        n = a.check_writes
        writes = paced_writes(t, t.write_ports(), keys, lambda i: (i * 7919 + 13) % len(keys),
                              max(n, 1) / 2.0, 2.0, run.seqs, threads=4)
        time.sleep(a.drain)
    finally:
        h1.stop()
        seqs_, times_, cids_, failures = h2.stop() if h2 else ([], [], [], collections.Counter())
    if h2:
        connection_figures(run, rnd, "B", tn, h2, failures)
    latency_figures(run, rnd, "B", tn, writes, seqs_, times_, cids_, lambda k: [nconn + k // kpc], "check_")


def phase_c(run, rnd, target):
    a = run.args
    t, tn = target, target.name
    key = "hot"
    specs = [(i, t.sub_port(), t.sub_request([key]), 1) for i in range(a.fanout_subs)]
    log(f"== round {rnd}: C {tn}: {a.fanout_subs} subscribers of one key, {a.fanout_writes} writes")
    h = connect(run, t, specs, f"C-{tn}-{rnd}", a.connect_timeout)
    writes = []
    try:
        ready = h.count(C_READY)
        time.sleep(1)
        cpu = run.cpu.start()
        port = t.write_ports()[0]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for i in range(a.fanout_writes):
            before = h.count(C_EVENTS)
            seq = run.seqs.take()
            ts = now_ns()
            try:
                st = t.put(conn, key, seq)
            except (OSError, http.client.HTTPException):
                st = 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            writes.append((seq, 0, ts, now_ns(), st))
            deadline = time.time() + a.fanout_timeout
            while h.count(C_EVENTS) - before < ready and time.time() < deadline:
                time.sleep(0.001)
            time.sleep(a.fanout_gap)
        conn.close()
        cpu = run.cpu.stop(cpu, t.all_pids())
    finally:
        seqs_, times_, cids_, failures = h.stop()
    connection_figures(run, rnd, "C", tn, h, failures)
    write_stats(run, rnd, "C", tn, writes, 1.0)
    ack = {s: ta for s, _, _, ta, st in writes if 200 <= st < 300}
    per = collections.defaultdict(list)
    for s, tm in zip(seqs_, times_):
        if s in ack:
            per[s].append((tm - ack[s]) / MS)
    last, mid, missing = [], [], 0
    for s in ack:
        v = sorted(per.get(s, []))
        missing += ready - len(v)
        if v:
            last.append(v[-1])
            mid.append(v[len(v) // 2])
    last.sort()
    run.rec(rnd, "C", tn, "events_missing", missing)
    run.rec(rnd, "C", tn, "last_subscriber_p50", pct(last, 50), "ms")
    run.rec(rnd, "C", tn, "last_subscriber_p99", pct(last, 99), "ms")
    run.rec(rnd, "C", tn, "last_subscriber_max", last[-1] if last else float("nan"), "ms")
    run.rec(rnd, "C", tn, "median_subscriber_p50", pct(sorted(mid), 50), "ms")
    for k, v in cpu.items():
        run.rec(rnd, "C", tn, k, v, "cores")


def http_kv(run, target, tag):
    """One ../shared/bench/http-kv.sh PUT run; returns its RESULT fields."""
    a = run.args
    api, url = target.kv_api()
    logf = os.path.join(a.logdir, f"D-{tag}.txt")
    cmd = [os.path.join(a.bench_dir, "http-kv.sh"), "--api", api, "--label", target.name,
           "-c", str(a.put_conns), "-d", str(a.put_duration), "-k", "10000", "-s", "100",
           "--idle-wait", str(a.idle_wait), "--pids", " ".join(str(p) for p in target.all_pids()),
           "put", url]
    with open(logf, "w") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False,
                       timeout=a.put_duration + a.idle_wait + 120)
    with open(logf) as f:
        for line in f:
            if line.startswith("RESULT "):
                return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    raise RuntimeError(f"http-kv.sh gave no RESULT; see {logf}")


def phase_d(run, rnd, target):
    a = run.args
    t, tn = target, target.name
    log(f"== round {rnd}: D {tn}: PUT c={a.put_conns} {a.put_duration} s on port {t.load_port()}, "
        "without then with a stalled subscriber")
    without = http_kv(run, t, f"{tn}-r{rnd}-without")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    s.settimeout(5)
    s.connect(("127.0.0.1", t.load_port()))
    s.sendall(t.stall_request())
    head = s.recv(64)  # the status line only; then never read again
    stalled_ok = head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200")
    dropped0 = t.dropped_slow()
    rss0 = rss_kib(t.pids[0] if tn == "ours" else t.pids[t.leader])
    try:
        with_ = http_kv(run, t, f"{tn}-r{rnd}-with")
    finally:
        rss1 = rss_kib(t.pids[0] if tn == "ours" else t.pids[t.leader])
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        s.close()
    run.rec(rnd, "D", tn, "stalled_subscriber_accepted", int(stalled_ok))
    for name, r in (("without", without), ("with", with_)):
        run.rec(rnd, "D", tn, f"put_rps_{name}", float(r.get("rps", "nan")), "/s")
        run.rec(rnd, "D", tn, f"put_p50_{name}", float(r.get("p50_ms", "nan")), "ms")
        run.rec(rnd, "D", tn, f"put_p99_{name}", float(r.get("p99_ms", "nan")), "ms")
        errs = sum(int(r.get(k, "0")) for k in ("err_connect", "err_read", "err_write", "err_status",
                                                "err_timeout") if r.get(k, "NA") != "NA")
        run.rec(rnd, "D", tn, f"put_errors_{name}", errs)
        run.rec(rnd, "D", tn, f"cpu_other_cores_{name}", float(r.get("cpu_other_cores", "nan")), "cores")
    run.rec(rnd, "D", tn, "put_p99_with_over_without",
            float(with_.get("p99_ms", "nan")) / float(without.get("p99_ms", "nan")))
    run.rec(rnd, "D", tn, "rss_growth_with_stalled", (rss1 - rss0) / 1024, "MiB")
    run.rec(rnd, "D", tn, "stalled_dropped_slow", t.dropped_slow() - dropped0)


PHASES = {"A": phase_a, "B": phase_b, "C": phase_c, "D": phase_d}

# ---------------------------------------------------------------- report

# (phase, figure, label, goal text, goal test on ours's value or None, ratio wanted)
SUMMARY = [
    ("A", "ack_to_event_p50", "ack -> event p50 (ms)", "-", None),
    ("A", "ack_to_event_p99", "ack -> event p99 (ms)", "< 5 ms", lambda v: v < 5),
    ("A", "events_missing", "events missing", "0", lambda v: v == 0),
    ("A", "write_rate", "writes acknowledged per s", "-", None),
    ("A", "rss_growth", "RSS growth, all connections (MiB)", "< 1024 MiB", lambda v: v < 1024),
    ("A", "rss_per_connection", "RSS growth per connection (bytes)", "-", None),
    ("A", "connections_ready", "connections ready", "-", None),
    ("A", "cpu_other_cores", "other processes' CPU during the load (cores; > 0.3: disturbed)", "-", None),
    ("B", "rss_per_watched_key", "RSS growth per watched key (bytes)", "< 1024 B", lambda v: v < 1024),
    ("B", "rss_per_extra_watched_key", "RSS per watched key beyond its stream's first (bytes)", "-", None),
    ("B", "rss_per_one_key_connection", "RSS per connection watching one key (bytes)", "-", None),
    ("B", "watched_keys", "watched keys", "-", None),
    ("B", "check_events_missing", "delivery check: events missing", "0", lambda v: v == 0),
    ("C", "last_subscriber_p50", "write -> last subscriber p50 (ms)", "-", None),
    ("C", "last_subscriber_p99", "write -> last subscriber p99 (ms)", "< 150 ms", lambda v: v < 150),
    ("C", "median_subscriber_p50", "write -> median subscriber p50 (ms)", "-", None),
    ("C", "events_missing", "events missing", "0", lambda v: v == 0),
    ("C", "cpu_other_cores", "other processes' CPU during the writes (cores)", "-", None),
    ("D", "put_p99_without", "PUT p99 without stalled subscriber (ms)", "-", None),
    ("D", "put_p99_with", "PUT p99 with a stalled subscriber (ms)", "-", None),
    ("D", "put_p99_with_over_without", "PUT p99 with / without", "<= 1.10", lambda v: v <= 1.10),
    ("D", "put_rps_without", "PUT req/s without", "-", None),
    ("D", "put_rps_with", "PUT req/s with", "-", None),
    ("D", "stalled_dropped_slow", "stalled subscriber dropped (slow)", "-", None),
    ("D", "cpu_other_cores_without", "other processes' CPU, run without (cores)", "-", None),
    ("D", "cpu_other_cores_with", "other processes' CPU, run with (cores)", "-", None),
]


def fmt(v):
    if isinstance(v, str):
        return v
    if v != v:  # NaN
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10 or float(v).is_integer():
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def summarize(run, meta):
    vals = collections.defaultdict(list)
    for r in run.rows:
        if isinstance(r["value"], (int, float)):
            vals[(r["phase"], r["target"], r["figure"])].append(r["value"])
    med = {k: statistics.median(v) for k, v in vals.items() if v}
    per = {k: " / ".join(fmt(x) for x in v) for k, v in vals.items()}
    out = ["| phase | figure | ours | etcd | ours / etcd | goal (ours) | | ours per round | etcd per round |",
           "|---|---|---|---|---|---|---|---|---|"]
    for ph, fig, label, goal, test in SUMMARY:
        o, e = med.get((ph, "ours", fig)), med.get((ph, "etcd", fig))
        if o is None and e is None:
            continue
        # a ratio only of two positive figures (ack -> event can be negative)
        ratio = fmt(o / e) if o is not None and e is not None and o > 0 and e > 0 else "-"
        verdict = "-"
        if test and o is not None and o == o:
            verdict = "met" if test(o) else "**not met**"
        out.append(f"| {ph} | {label} | {fmt(o) if o is not None else '-'} | "
                   f"{fmt(e) if e is not None else '-'} | {ratio} | {goal} | {verdict} | "
                   f"{per.get((ph, 'ours', fig), '-')} | {per.get((ph, 'etcd', fig), '-')} |")
    return "\n".join(out) + "\n\nMedians over the rounds; ratio = ours / etcd.\n\n```\n" + meta + "\n```\n"


# ---------------------------------------------------------------- main

QUICK = dict(connections=200, keys=20, rate=100, duration=5, multi_conns=50, keys_per_conn=20,
             fanout_subs=200, fanout_writes=5, put_duration=4, put_conns=8, rounds=1, idle_wait=2,
             settle=1.0, check_writes=20)
FULL = dict(connections=10000, keys=1000, rate=1000, duration=30, multi_conns=1000, keys_per_conn=100,
            fanout_subs=10000, fanout_writes=20, put_duration=15, put_conns=32, rounds=3, idle_wait=10,
            settle=2.0, check_writes=200)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Defaults are the full benchmark; --quick sets: "
                                + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    p.add_argument("ringkvd", nargs="?", help="the ringkvd binary (not needed with --ours-nodes)")
    p.add_argument("--quick", action="store_true", help="small scale, about 2 minutes")
    p.add_argument("--targets", default="ours,etcd", help="ours,etcd (default both)")
    p.add_argument("--phases", default="A,B,C,D")
    for k, v in FULL.items():
        p.add_argument("--" + k.replace("_", "-"), type=type(v), default=None, help=f"(default {v})")
    p.add_argument("--workers", type=int, default=2, help="subscriber-holding processes (2)")
    p.add_argument("--max-subscribers", type=int, default=None,
                   help="ringkvd --max-subscribers (default: the most connections a phase opens + 100)")
    p.add_argument("--http-threads", type=int, default=256, help="ringkvd --http-threads (256)")
    p.add_argument("--port", type=int, default=18501, help="first HTTP port tried for ringkv (18501)")
    p.add_argument("--etcd-port-base", type=int, default=12379, help="first etcd client port tried (12379)")
    p.add_argument("--etcd-watch-member", choices=("follower", "leader"), default="follower",
                   help="etcd member holding the watchers in A-C (follower)")
    p.add_argument("--bench-dir", default=os.path.join(ROOT, "..", "shared", "bench"))
    p.add_argument("--ours-nodes", help="use running nodes instead: URL1,URL2,URL3 (subscribers on the first)")
    p.add_argument("--ours-pids", help="with --ours-nodes: their pids, \"P1 P2 P3\" (RSS is read from P1)")
    p.add_argument("--connect-timeout", type=float, default=120, help="s to wait for all subscribers (120)")
    p.add_argument("--drain", type=float, default=2.0, help="s after the last write before stopping (2)")
    p.add_argument("--fanout-gap", type=float, default=0.3, help="C: s between two writes (0.3)")
    p.add_argument("--fanout-timeout", type=float, default=5.0, help="C: s to wait for all subscribers (5)")
    p.add_argument("--max-lifetime", type=int, default=3600, help="s any process started here may live (3600)")
    p.add_argument("-o", "--out", help="results folder (default ${BENCH_RUN_DIR:-/tmp/kvbench}/watch-DATE)")
    args = p.parse_args()
    preset = QUICK if args.quick else FULL
    for k, v in FULL.items():
        if getattr(args, k) is None:
            setattr(args, k, preset.get(k, v))
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    phases = [x.strip().upper() for x in args.phases.split(",") if x.strip()]
    if "ours" in targets and not args.ours_nodes:
        if not args.ringkvd:
            p.error("give the ringkvd binary (or --ours-nodes)")
        args.ringkvd = os.path.realpath(args.ringkvd)
        helptext = subprocess.run([args.ringkvd, "--help"], capture_output=True, text=True).stdout + \
            subprocess.run([args.ringkvd, "--help"], capture_output=True, text=True).stderr
        if "--max-subscribers" not in helptext:
            sys.exit(f"{args.ringkvd} has no --max-subscribers: build a ringkvd with live updates (SSE)")
    if args.ours_nodes and not args.ours_pids:
        p.error("--ours-nodes needs --ours-pids")
    if args.max_subscribers is None:
        args.max_subscribers = max(args.connections, args.fanout_subs, args.multi_conns) + 100
    args.bench_dir = os.path.realpath(args.bench_dir)
    if "D" in phases and not os.access(os.path.join(args.bench_dir, "http-kv.sh"), os.X_OK):
        sys.exit(f"no bench harness at {args.bench_dir} (--bench-dir)")

    # descriptors: the holders need one per connection, the nodes (our children) theirs
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(args.connections, args.fanout_subs) + 1000
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(need, soft), hard), hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < need:
        log(f"warning: RLIMIT_NOFILE is {soft} (hard {hard}), below the {need} this run needs")

    out = args.out or os.path.join(os.environ.get("BENCH_RUN_DIR", os.path.join(
        tempfile.gettempdir(), "kvbench")), "watch-" + time.strftime("%Y%m%d-%H%M%S"))
    args.out = out
    args.logdir = os.path.join(out, "logs")
    os.makedirs(args.logdir, exist_ok=True)
    args.workdir = tempfile.mkdtemp(prefix="bench-watch.")

    run = Run(args)
    run.cpu = CpuAccount(os.path.join(args.bench_dir, "lib", "cpu-account.sh"), args.workdir)
    objs = {"ours": Ours(args, args.workdir, args.logdir), "etcd": Etcd(args, args.workdir, args.logdir)}

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")

    signal.signal(signal.SIGTERM, on_signal)
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    params = {k: getattr(args, k) for k in list(FULL) + ["workers", "max_subscribers", "http_threads"]}
    meta = "\n".join([
        f"date: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}",
        f"host: {os.cpu_count()} cpus, {os.uname().release}, python {sys.version.split()[0]}",
        f"ringkvd: {git}" + (f" (external nodes {args.ours_nodes})" if args.ours_nodes else ""),
        "args: " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in params.items()),
        "phases: " + ",".join(phases) + "  targets: " + ",".join(targets),
    ])
    log(meta)
    t_start = time.time()
    current = None
    try:
        for rnd in range(1, args.rounds + 1):
            for ph in phases:
                for tn in targets:
                    current = objs[tn]
                    current.start(f"{ph}-r{rnd}")
                    try:
                        PHASES[ph](run, rnd, current)
                    finally:
                        current.stop()
                        current = None
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
    finally:
        if current is not None:
            current.stop()
        shutil.rmtree(args.workdir, ignore_errors=True)
    meta += "\n" + "\n".join(o.describe() for n, o in objs.items() if n in targets)
    meta += f"\nduration: {time.time() - t_start:.0f} s"
    with open(os.path.join(out, "results.tsv"), "w") as f:
        f.write("round\tphase\ttarget\tfigure\tvalue\tunit\n")
        for r in run.rows:
            f.write(f"{r['round']}\t{r['phase']}\t{r['target']}\t{r['figure']}\t{r['value']}\t{r['unit']}\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "params": params, "rows": run.rows}, f, indent=1, default=str)
    summary = summarize(run, meta)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(summary)
    print(summary)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
