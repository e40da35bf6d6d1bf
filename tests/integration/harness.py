"""Integration-test harness: real ringkvd processes on free loopback ports.

Every Node gets its own temporary directory (data + log), free HTTP and RPC
ports, and is always stopped: by its context manager, by cleanup(), and as a
last resort by an atexit hook that SIGKILLs whatever is still running. On
Linux the child also gets PR_SET_PDEATHSIG, so even a SIGKILLed test run
leaves no ringkvd behind (note: the signal follows the *thread* that started
the node, so start nodes from the main thread).

Waiting is done by polling with a deadline (wait_for), never by bare sleeps.

Cluster(size, n=3, r=2, w=2) starts several nodes that join the first one
through its RPC address, with a shared random cluster secret, and waits until
every node lists every node as an alive member (see Cluster).
Cluster.add_node starts one more node joining a running cluster.

For membership changes: put_many/get_many send thousands of requests
pipelined over a few keep-alive connections; local_keys/local_store list
what one node holds itself; Load is background client traffic (writes new
keys, reads and updates its own) that records every acknowledged value and
every read that contradicts one; run_cli runs the ringkv CLI.

Environment:
  RINGKVD          path of the ringkvd binary (default <repo>/build/ringkvd)
  RINGKV_CLI       path of the ringkv CLI (default <repo>/build/src/cli/ringkv)
  RINGKV_SOURCE    repo root (default: two levels above this file)
  RINGKV_KEEP_TMP  if set, temp dirs (data + logs) are kept and their path printed
"""

import atexit
import http.client
import json as _json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

SOURCE = os.environ.get(
    "RINGKV_SOURCE",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
)
RINGKVD = os.environ.get("RINGKVD", os.path.join(SOURCE, "build", "ringkvd"))
RINGKV_CLI = os.environ.get("RINGKV_CLI", os.path.join(SOURCE, "build", "src", "cli", "ringkv"))
KEEP_TMP = bool(os.environ.get("RINGKV_KEEP_TMP"))

_NOBODY = object()

# --------------------------------------------------------------------------
# Process discipline: no ringkvd outlives the test run.

_live_lock = threading.Lock()
_live_nodes = set()


def _kill_all_live():
    with _live_lock:
        nodes = list(_live_nodes)
    for node in nodes:
        try:
            node.kill()
        except Exception:  # noqa: BLE001 - last resort at exit, keep going
            pass
        try:
            node.cleanup()
        except Exception:  # noqa: BLE001
            pass


atexit.register(_kill_all_live)


def _sigterm_to_interrupt(signum, frame):
    # meson (or a user) terminating the test run: unwind through finally
    # blocks and atexit so the nodes are stopped. KeyboardInterrupt, because
    # unittest re-raises it instead of recording it as a test error.
    raise KeyboardInterrupt(f"received signal {signum}")


if threading.current_thread() is threading.main_thread():
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)


def _preexec_pdeathsig():
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:  # noqa: BLE001 - not Linux: atexit still covers us
        pass


# --------------------------------------------------------------------------
# Small helpers


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (bind to port 0, read, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_for(cond, timeout, interval=0.05, what="condition"):
    """Poll cond() until it returns something truthy; return that value.

    Raises AssertionError("timed out after {timeout}s waiting for {what}").
    """
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def quote_key(key) -> str:
    """Percent-encode a key (str or bytes) for use as one path segment.

    The keys "." and ".." are sent as %2E / %2E%2E: a literal dot segment
    would be removed by URL normalization before the server saw it.
    """
    q = urllib.parse.quote(key, safe="")
    if q in (".", ".."):
        q = q.replace(".", "%2E")
    return q


def key_path(table, key) -> str:
    """/{table}/key/{key} with the key percent-encoded (table=None: /key/{key})."""
    if table is None:
        return "/key/" + quote_key(key)
    return f"/{table}/key/{quote_key(key)}"


def dumps(obj) -> bytes:
    """Compact UTF-8 JSON, as a typical client sends it."""
    return _json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads_or_none(body):
    if not body:
        return None
    try:
        return _json.loads(body)
    except ValueError:
        return None


def show(status, body, headers=None) -> str:
    """Render a response for an assertion message."""
    if isinstance(body, (bytes, bytearray)):
        text = bytes(body[:2000]).decode("utf-8", "replace")
    else:
        text = _json.dumps(body, ensure_ascii=False)[:2000]
    out = f"status={status} body={text}"
    if headers:
        out += f" headers={headers}"
    return out


def _collect_headers(resp):
    hdrs = {}
    for k, v in resp.getheaders():
        k = k.lower()
        hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
    return hdrs


# --------------------------------------------------------------------------
# Node


class Node:
    """One ringkvd process (by default a single node: --n 1 --r 1 --w 1 --insecure).

    Cluster options (all default to the single-node behaviour):
      n, r, w       replication factor and default quorums
      secret_file   pass --secret-file FILE instead of --insecure
      insecure      None: --insecure unless secret_file is given or env sets
                    CLUSTER_SECRET; True/False forces it on/off
      join          list of seed RPC addresses, passed as --join on the first
                    start only (a restarted node rejoins from its data dir)
      extra_args    appended to every start; restart(extra_args=...) adds more
                    for that one run only
    """

    def __init__(self, name="n1", data_dir=None, extra_args=(), env=None,
                 n=1, r=1, w=1, secret_file=None, insecure=None, join=None):
        self.name = name
        self.extra_args = list(extra_args)
        self.run_args = []  # extra args for the current run only (restart(extra_args=))
        self.env = env
        self.n, self.r, self.w = n, r, w
        self.secret_file = secret_file
        if insecure is None:
            insecure = secret_file is None and not (env and "CLUSTER_SECRET" in env)
        self.insecure = insecure
        self.join = list(join or [])
        self.paused = False
        self._tmp = tempfile.mkdtemp(prefix=f"ringkv-{name}-")
        self._owns_data = data_dir is None
        if data_dir is None:
            data_dir = os.path.join(self._tmp, "data")
            os.makedirs(data_dir)
        self.data_dir = data_dir
        self.log_path = os.path.join(self._tmp, "ringkvd.log")
        self.http_port = free_port()
        self.rpc_port = free_port()
        while self.rpc_port == self.http_port:
            self.rpc_port = free_port()
        self.proc = None
        self.returncode = None
        self._starts = 0
        self._cleaned = False
        self._terminated = False  # terminate() sent SIGTERM, stop() has not waited yet

    # -- addresses

    @property
    def http_addr(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def rpc_addr(self) -> str:
        return f"127.0.0.1:{self.rpc_port}"

    @property
    def url(self) -> str:
        return f"http://{self.http_addr}"

    def command(self):
        security = []
        if self.secret_file is not None:
            security += ["--secret-file", self.secret_file]
        if self.insecure:
            security.append("--insecure")
        join = []
        if self.join and self._starts == 0:
            join = ["--join", ",".join(self.join)]
        return [
            RINGKVD,
            "--data", self.data_dir,
            "--http", self.http_addr,
            "--rpc", self.rpc_addr,
            *security,
            "--n", str(self.n), "--r", str(self.r), "--w", str(self.w),
            "--name", self.name,
            *join,
            # Tests run many nodes at once, and civetweb starts every worker
            # at start-up (1024 + 1024 by default, ~56 MB a node): a small
            # gateway unless a test asks for more (later flags win).
            "--http-threads", "64", "--max-subscribers", "64",
            *self.extra_args,
            *self.run_args,
        ]

    # -- lifecycle

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=15):
        """Launch ringkvd and wait until GET /health answers 200."""
        if self.running():
            raise AssertionError(f"node {self.name} is already running")
        if not os.path.exists(RINGKVD):
            raise AssertionError(f"ringkvd binary not found at {RINGKVD} (set RINGKVD)")
        # Ports are picked free but could be taken by someone else before the
        # first bind; on the first start only, retry with fresh ports.
        attempts = 3 if self._starts == 0 else 1
        for attempt in range(attempts):
            self._spawn()
            try:
                self.wait_ready(timeout)
                self._starts += 1
                return self
            except AssertionError:
                tail = self.log_tail(20).lower()
                port_taken = not self.running() and (
                    "in use" in tail or "eaddrinuse" in tail or "cannot bind" in tail)
                if attempt + 1 < attempts and port_taken:
                    self.http_port = free_port()
                    self.rpc_port = free_port()
                    continue
                if self.running():
                    self.kill()
                raise
        return self

    def _spawn(self):
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        with open(self.log_path, "ab") as log:
            log.write(f"=== harness: starting {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_preexec_pdeathsig if sys.platform.startswith("linux") else None,
            )
        self.returncode = None
        self.paused = False
        self._terminated = False
        with _live_lock:
            _live_nodes.add(self)

    def wait_ready(self, timeout=15):
        """Poll GET /health until 200; raise with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self._reap(rc)
                raise AssertionError(
                    f"ringkvd {self.name} exited with code {rc} before becoming ready\n"
                    f"command: {' '.join(self.command())}\n"
                    f"--- log tail ({self.log_path}) ---\n{self.log_tail()}")
            try:
                status, _, body = self.request("GET", "/health", timeout=1)
                if status == 200:
                    return True
                last = show(status, body)
            except OSError as e:
                last = repr(e)
            except http.client.HTTPException as e:
                last = repr(e)
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for ringkvd {self.name} to answer "
                    f"GET /health with 200 (last: {last})\n"
                    f"--- log tail ({self.log_path}) ---\n{self.log_tail()}")
            time.sleep(0.05)

    def _reap(self, rc):
        self.returncode = rc
        with _live_lock:
            _live_nodes.discard(self)

    def launch(self):
        """Start the process without waiting for it to become ready
        (for nodes expected to fail; see wait_exit)."""
        if self.running():
            raise AssertionError(f"node {self.name} is already running")
        self._spawn()
        return self

    def wait_exit(self, timeout):
        """Wait up to timeout seconds for the process to exit on its own;
        return its exit code, or None if it is still running."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reap(rc)
        return rc

    def pause(self):
        """SIGSTOP: the process stays alive but answers nothing."""
        if not self.running():
            raise AssertionError(f"node {self.name} is not running")
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True
        # kill() returns before the stop reaches every thread: on a busy
        # machine a thread can still answer a request for a while. A test
        # that checks the node answered nothing must start after that.
        deadline = time.monotonic() + 10
        while not self._all_threads_stopped():
            if time.monotonic() > deadline:
                raise AssertionError(f"node {self.name}: SIGSTOP did not stop every thread in 10s")
            time.sleep(0.005)

    def _all_threads_stopped(self):
        """Every thread of the process is in state T (stopped)."""
        task_dir = f"/proc/{self.proc.pid}/task"
        for tid in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{tid}/stat") as f:
                    stat = f.read()
            except FileNotFoundError:
                continue  # the thread exited meanwhile
            # The state follows the command name, which is in parentheses.
            if stat[stat.rindex(")") + 2] not in "Tt":
                return False
        return True

    def resume(self):
        """SIGCONT after pause()."""
        if self.running():
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def terminate(self):
        """Send SIGTERM (resuming a paused node first) without waiting;
        stop() then waits for the exit and checks the code."""
        if self.running():
            if self.paused:
                self.resume()
            self.proc.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self, timeout=10, expect_exit=0):
        """SIGTERM and wait; assert the exit code (skip with expect_exit=None)."""
        if self.proc is None:
            return None
        if self.paused:
            self.resume()
        already = self.proc.poll()
        sent, self._terminated = self._terminated, False
        if already is None:
            if not sent:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._reap(self.proc.returncode)
                raise AssertionError(
                    f"ringkvd {self.name} did not exit within {timeout}s of SIGTERM "
                    f"(SIGKILLed)\n--- log tail ---\n{self.log_tail()}")
        rc = self.proc.returncode
        self._reap(rc)
        if expect_exit is not None and rc != expect_exit:
            when = "after SIGTERM" if already is None or sent else "on its own, before SIGTERM"
            raise AssertionError(
                f"ringkvd {self.name} exited with code {rc} {when}, expected "
                f"{expect_exit}\n--- log tail ---\n{self.log_tail()}")
        return rc

    def kill(self):
        """SIGKILL and wait."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.paused = False
        self._terminated = False
        self._reap(self.proc.returncode)
        return self.proc.returncode

    def restart(self, timeout=15, extra_args=None):
        """Start again with the same data dir and ports (stops first if running).

        extra_args are added to the command line for this run only.
        """
        if self.running():
            self.stop()
        self.run_args = list(extra_args or [])
        return self.start(timeout)

    def cleanup(self):
        """Kill if still running, then remove the temp dir (unless RINGKV_KEEP_TMP)."""
        if self.running():
            self.kill()
        if self._cleaned:
            return
        self._cleaned = True
        if KEEP_TMP:
            print(f"harness: kept {self._tmp} (node {self.name})", file=sys.stderr)
            return
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if self.running():
                try:
                    self.stop()
                except AssertionError:
                    self.kill()
                    if exc_type is None:
                        raise
        finally:
            self.cleanup()
        return False

    # -- logs

    def log_tail(self, n=50) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 256 * 1024))
                data = f.read()
        except OSError as e:
            return f"(no log: {e})"
        lines = data.decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # -- HTTP

    def request(self, method, path, body=None, headers=None, timeout=10):
        """One request on a fresh connection -> (status, headers_lowercase, body_bytes).

        Never raises on 4xx/5xx; raises OSError/HTTPException on transport errors.
        """
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, _collect_headers(resp), data
        finally:
            conn.close()

    def json(self, method, path, obj=_NOBODY, headers=None, timeout=10):
        """request() with a JSON body -> (status, parsed_body_or_None, headers)."""
        headers = dict(headers or {})
        body = None
        if obj is not _NOBODY:
            body = dumps(obj)
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        status, hdrs, data = self.request(method, path, body, headers, timeout)
        return status, loads_or_none(data), hdrs

    def client(self, timeout=10):
        """A keep-alive Client bound to this node (one per thread)."""
        return Client(self, timeout)

    def health(self):
        status, body, _ = self.json("GET", "/health")
        if status != 200:
            raise AssertionError(f"GET /health: {show(status, body)}")
        return body


class Client:
    """A keep-alive HTTP connection to a node; not thread-safe (one per thread).

    Same request()/json() results as Node. With retry=True a request that hits
    a dropped connection is sent once more on a fresh connection.
    """

    def __init__(self, node, timeout=10):
        self.node = node
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def request(self, method, path, body=None, headers=None, retry=False):
        if isinstance(body, str):
            body = body.encode("utf-8")
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    "127.0.0.1", self.node.http_port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=dict(headers or {}))
                resp = self.conn.getresponse()
                data = resp.read()
                hdrs = _collect_headers(resp)
                if resp.will_close:
                    self.close()
                return resp.status, hdrs, data
            except (http.client.HTTPException, OSError):
                self.close()
                if not retry or attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def json(self, method, path, obj=_NOBODY, headers=None, retry=False):
        headers = dict(headers or {})
        body = None
        if obj is not _NOBODY:
            body = dumps(obj)
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        status, hdrs, data = self.request(method, path, body, headers, retry)
        return status, loads_or_none(data), hdrs


# --------------------------------------------------------------------------
# JSON comparison that does not confuse True with 1 or 1.0 with "1".


def _kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def json_equal(a, b) -> bool:
    """Structural JSON equality: numbers compare by value, bools are not numbers."""
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        return False
    if ka == "array":
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if ka == "object":
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return a == b


# --------------------------------------------------------------------------
# Cluster

DELETED = object()  # in an acknowledged {key: value} dict: the key was deleted


def with_query(path, **params) -> str:
    """path plus ?k=v&... for the params that are not None."""
    q = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    return path + ("?" + q if q else "")


class Cluster:
    """size ringkvd nodes forming one cluster on loopback.

    Node 1 starts alone; every other node starts with --join <node 1's RPC
    address>. All share a random cluster secret (a --secret-file by default,
    or env CLUSTER_SECRET with secret_via="env"). start() returns once every
    node's GET /cluster lists all nodes as alive members; last_ready_at is the
    monotonic time the last node answered /health and converged_after the
    seconds from then until convergence was seen.

    Always stopped: use it as a context manager, or call stop()/cleanup().
    """

    def __init__(self, size, n=3, r=2, w=2, secret=None, secret_via="file", prefix="n",
                 extra_args=(), start=True, converge_timeout=30):
        import secrets as _secrets

        self.size, self.n, self.r, self.w = size, n, r, w
        self.prefix = prefix
        self.extra_args = list(extra_args)
        self.converge_timeout = converge_timeout
        self._tmp = tempfile.mkdtemp(prefix="ringkv-cluster-")
        self.secret = secret if secret is not None else _secrets.token_hex(16)
        self.secret_file = None
        self.env = None
        if secret_via == "file":
            self.secret_file = os.path.join(self._tmp, "secret")
            with open(self.secret_file, "w") as f:
                f.write(self.secret)
            os.chmod(self.secret_file, 0o600)
        elif secret_via == "env":
            self.env = {"CLUSTER_SECRET": self.secret}
        else:
            raise ValueError(f"secret_via must be 'file' or 'env', not {secret_via!r}")
        self.nodes = []
        self.last_ready_at = None
        self.converged_after = None
        self._cleaned = False
        if start:
            try:
                self.start()
            except BaseException:
                self.cleanup()
                raise

    # -- building

    def new_node(self, name, join=None, extra_args=(), **kw):
        """A Node with this cluster's n/r/w and secret (not started, not in nodes)."""
        return Node(name=name, n=self.n, r=self.r, w=self.w, secret_file=self.secret_file,
                    env=self.env, join=join, extra_args=[*self.extra_args, *extra_args], **kw)

    def start(self):
        """Start node 1, then the others joining through it; wait for convergence."""
        for i in range(self.size):
            join = [self.nodes[0].rpc_addr] if i > 0 else None
            node = self.new_node(f"{self.prefix}{i + 1}", join=join)
            self.nodes.append(node)
            node.start()
        self.last_ready_at = time.monotonic()
        self.wait_converged(self.converge_timeout)
        self.converged_after = time.monotonic() - self.last_ready_at
        return self

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.stop(check=exc_type is None)
        finally:
            self.cleanup()
        return False

    def __getitem__(self, i):
        return self.nodes[i]

    def __len__(self):
        return len(self.nodes)

    # -- addresses

    def url(self, i, path=""):
        return self.nodes[i].url + path

    def names(self):
        return [node.name for node in self.nodes]

    def running_nodes(self):
        return [node for node in self.nodes if node.running() and not node.paused]

    # -- lifecycle of members

    def kill(self, i):
        """SIGKILL node i and wait for the process to be gone."""
        return self.nodes[i].kill()

    def restart(self, i, extra_args=(), converge=True):
        """Restart node i from its data dir (no --join), with extra_args for
        this run only; by default wait until the cluster has converged again."""
        self.nodes[i].restart(extra_args=list(extra_args))
        if converge:
            self.wait_converged(self.converge_timeout)
        return self.nodes[i]

    def pause(self, i):
        self.nodes[i].pause()

    def resume(self, i):
        self.nodes[i].resume()

    def stop(self, check=True):
        """SIGTERM every running node at once, then wait for each; with check,
        raise if any did not exit 0 (after all were stopped)."""
        for node in self.nodes:
            node.terminate()
        errors = []
        for node in self.nodes:
            try:
                node.stop(expect_exit=0 if check else None)
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            raise AssertionError("cluster stop:\n" + "\n".join(errors))

    def cleanup(self):
        for node in self.nodes:
            node.cleanup()
        if self._cleaned:
            return
        self._cleaned = True
        if KEEP_TMP:
            print(f"harness: kept {self._tmp} (cluster secret)", file=sys.stderr)
            return
        shutil.rmtree(self._tmp, ignore_errors=True)

    # -- membership views

    def cluster_view(self, i_or_node, timeout=3):
        """GET /cluster of a node -> parsed body; raises AssertionError otherwise."""
        node = self.nodes[i_or_node] if isinstance(i_or_node, int) else i_or_node
        status, body, _ = node.json("GET", "/cluster", timeout=timeout)
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("members"), list):
            raise AssertionError(f"GET /cluster on {node.name}: {show(status, body)}")
        return body

    def views(self):
        """{name: /cluster body or an error string} of every running node (for messages)."""
        out = {}
        for node in self.running_nodes():
            try:
                out[node.name] = self.cluster_view(node)
            except (AssertionError, OSError, http.client.HTTPException) as e:
                out[node.name] = f"error: {e!r}"
        return out

    @staticmethod
    def member(view, name):
        """The member entry named name in a /cluster body, or None."""
        for m in view.get("members", []):
            if m.get("name") == name:
                return m
        return None

    @staticmethod
    def summary(views):
        """One line per viewing node: name:status/liveness of every member."""
        lines = []
        for name, view in views.items():
            if isinstance(view, str):
                lines.append(f"  {name}: {view}")
                continue
            ms = ", ".join(f"{m.get('name')}:{m.get('status')}/{m.get('liveness')}"
                           f"({m.get('last_heard_ms_ago')}ms)" for m in view.get("members", []))
            lines.append(f"  {name} sees: {ms}")
        return "\n".join(lines)

    def converged(self):
        """True when every node runs and lists exactly the cluster's nodes,
        each as status member and liveness alive."""
        want = set(self.names())
        for node in self.nodes:
            if not node.running() or node.paused:
                return False
            try:
                view = self.cluster_view(node)
            except (AssertionError, OSError, http.client.HTTPException):
                return False
            members = {m.get("name"): m for m in view["members"]
                       if m.get("status") != "removed"}
            if set(members) != want:
                return False
            if any(m.get("status") != "member" or m.get("liveness") != "alive"
                   for m in members.values()):
                return False
        return True

    def wait_converged(self, timeout=30):
        try:
            wait_for(self.converged, timeout, interval=0.05,
                     what=f"all {len(self.nodes)} nodes to list each other as alive members")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.summary(self.views())}") from None

    def seen_down_by_all(self, i):
        """True when every other running node lists node i with liveness down."""
        name = self.nodes[i].name
        for node in self.running_nodes():
            if node is self.nodes[i]:
                continue
            try:
                m = self.member(self.cluster_view(node), name)
            except (AssertionError, OSError, http.client.HTTPException):
                return False
            if m is None or m.get("liveness") != "down":
                return False
        return True

    def wait_seen_down(self, i, timeout):
        try:
            wait_for(lambda: self.seen_down_by_all(i), timeout, interval=0.1,
                     what=f"every node to see {self.nodes[i].name} down")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.summary(self.views())}") from None

    # -- data

    def check_acked(self, testcase, acked, table, via=0, r=None):
        """Read every acknowledged key through node `via` with r=N (all replicas
        must answer) and assert the value (or 404 for DELETED) and one sibling."""
        r = self.n if r is None else r
        bad = []
        with self.nodes[via].client() as c:
            for key, value in acked.items():
                path = with_query(key_path(table, key), r=r)
                status, body, hdrs = c.json("GET", path, retry=True)
                if value is DELETED:
                    if status != 404 or not isinstance(body, dict) or body.get("code") != "not_found":
                        bad.append(f"{key!r}: deleted, but GET r={r} gave {show(status, body, hdrs)}")
                    continue
                if status != 200 or not isinstance(body, dict):
                    bad.append(f"{key!r}: GET r={r} gave {show(status, body, hdrs)}, "
                               f"acknowledged {value!r}")
                elif not json_equal(body.get("value"), value):
                    bad.append(f"{key!r}: value {body.get('value')!r} != acknowledged {value!r}")
                elif body.get("siblings") != 1:
                    bad.append(f"{key!r}: {body.get('siblings')} siblings, expected 1: {show(status, body)}")
        testcase.assertEqual(
            bad, [], f"{len(bad)} of {len(acked)} acknowledged keys wrong on an r={r} read through "
                     f"{self.nodes[via].name} (first 10):\n" + "\n".join(bad[:10]))

    # -- membership changes and bulk checks

    def add_node(self, name, via=0, extra_args=()):
        """Start a new node that joins this running cluster through node `via`'s
        RPC address; it is appended to nodes (so stop()/cleanup() cover it) and
        returned once it answers /health. No wait for it to become a member."""
        node = self.new_node(name, join=[self.nodes[via].rpc_addr], extra_args=extra_args)
        self.nodes.append(node)
        node.start()
        return node

    def sync_stats(self, i_or_node, timeout=3):
        """The "sync" object of a node's GET /cluster (handoff, anti-entropy and
        tombstone counters); AssertionError when the answer has none."""
        node = self.nodes[i_or_node] if isinstance(i_or_node, int) else i_or_node
        view = self.cluster_view(node, timeout=timeout)
        sync = view.get("sync")
        if not isinstance(sync, dict):
            raise AssertionError(f"GET /cluster on {node.name} has no \"sync\" object (is the sync "
                                 f"service in this build?): {show(200, view)}")
        return sync

    def check_acked_bulk(self, testcase, acked, table, via=0, r=None, conns=4):
        """check_acked with pipelined requests (for tens of thousands of keys):
        every acknowledged key read through node `via` with r=N must give its
        value (or 404 for DELETED) and one sibling."""
        r = self.n if r is None else r
        keys = list(acked)
        results = get_many([self.nodes[via]], table, keys, conns=conns, r=r)
        bad = []
        for key, (status, body) in zip(keys, results):
            value = acked[key]
            if value is DELETED:
                if status != 404 or not isinstance(body, dict) or body.get("code") != "not_found":
                    bad.append(f"{key!r}: deleted, but GET r={r} gave {show(status, body)}")
            elif status != 200 or not isinstance(body, dict):
                bad.append(f"{key!r}: GET r={r} gave {show(status, body)}, acknowledged {value!r}")
            elif not json_equal(body.get("value"), value):
                bad.append(f"{key!r}: value {body.get('value')!r} != acknowledged {value!r}")
            elif body.get("siblings") != 1:
                bad.append(f"{key!r}: {body.get('siblings')} siblings, expected 1: {show(status, body)}")
        testcase.assertEqual(
            bad, [], f"{len(bad)} of {len(acked)} acknowledged keys wrong on an r={r} read through "
                     f"{self.nodes[via].name} (first 10):\n" + "\n".join(bad[:10]))


def local_keys(node, table, limit=10000, timeout=30):
    """Every key of table this node holds a live copy of (GET /{table}/keys,
    which reads the node's own store), page by page, in ring order."""
    return list(_walk(node, table, "keys", limit, timeout))


def local_store(node, table, limit=2000, timeout=30):
    """{key: item} of GET /{table}/store on this node: its own live records
    (value, context, siblings, ...), page by page."""
    return {item["key"]: item for item in _walk(node, table, "store", limit, timeout)}


def _walk(node, table, what, limit, timeout):
    array = "keys" if what == "keys" else "items"
    after = None
    with node.client(timeout=timeout) as c:
        while True:
            path = with_query(f"/{table}/{what}", limit=limit, after=after)
            status, body, _ = c.json("GET", path, retry=True)
            if status != 200 or not isinstance(body, dict) or not isinstance(body.get(array), list):
                raise AssertionError(f"GET {path} on {node.name}: {show(status, body)}")
            yield from body[array]
            after = body.get("next")
            if after is None:
                return


def run_cli(*args, nodes, timeout=60):
    """Run the ringkv CLI with --nodes (a node, its HTTP address or a list)
    -> CompletedProcess with str stdout/stderr. RINGKV_NODES/TOKEN of the
    caller's environment are not passed on."""
    if isinstance(nodes, Node):
        nodes = nodes.http_addr
    elif not isinstance(nodes, str):
        nodes = ",".join(n.http_addr if isinstance(n, Node) else n for n in nodes)
    if not os.path.exists(RINGKV_CLI):
        raise AssertionError(f"ringkv CLI not found at {RINGKV_CLI} (set RINGKV_CLI)")
    env = {k: v for k, v in os.environ.items() if k not in ("RINGKV_NODES", "RINGKV_TOKEN")}
    proc = subprocess.run([RINGKV_CLI, "--nodes", nodes, *map(str, args)], input=b"",
                          capture_output=True, env=env, timeout=timeout)
    proc.stdout = proc.stdout.decode("utf-8", "replace")
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


# --------------------------------------------------------------------------
# Bulk traffic: pipelined keep-alive HTTP/1.1, several connections at once.
#
# http.client costs ~0.5 ms of Python per request, which caps a loader at
# ~1,700 requests/s on a 2-core machine whatever the thread count (the GIL);
# writing the requests by hand and pipelining 16 per round trip over two
# connections per node reaches 2,500-4,000 PUT/s against a 3-node cluster,
# so 50,000 keys load in 13-20 s.


def _encode_request(method, path, body):
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    elif method in ("PUT", "POST"):
        head += "Content-Length: 0\r\n"
    return head.encode("latin-1") + b"\r\n" + (body or b"")


class PipelinedConn:
    """One keep-alive connection that sends a batch of requests at once and
    reads the answers in order (not thread-safe). Keep a batch small (a few
    dozen requests of a few KiB): requests are written before any answer is
    read. A connection the server closes is opened again and the requests
    not answered yet are sent again (at most 3 times per batch), so use it
    for idempotent requests only (GETs, PUTs of a fixed value)."""

    def __init__(self, node, timeout=30):
        self.node = node
        self.timeout = timeout
        self.sock = None
        self.buf = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.buf = b""

    def _recv(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _read_response(self):
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            self._recv()
        lines = self.buf[:end].decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise ConnectionError(f"bad status line {lines[0]!r}") from None
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            length = int(hdrs["content-length"])
        elif status in (204, 304) or status < 200:
            length = 0
        else:
            raise AssertionError(f"{self.node.name}: an answer without Content-Length: {lines}")
        while len(self.buf) < end + 4 + length:
            self._recv()
        body = self.buf[end + 4:end + 4 + length]
        self.buf = self.buf[end + 4 + length:]
        return status, hdrs, body

    def exchange(self, requests):
        """requests: encoded requests (bytes) -> [(status, body bytes)] in order."""
        out = []
        pending = list(requests)
        failures = 0
        while pending:
            try:
                if self.sock is None:
                    self.sock = socket.create_connection(("127.0.0.1", self.node.http_port),
                                                         timeout=self.timeout)
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.sock.sendall(b"".join(pending))
                while pending:
                    status, hdrs, body = self._read_response()
                    out.append((status, body))
                    pending.pop(0)
                    if hdrs.get("connection", "").lower() == "close":
                        self.close()
                        break
            except OSError as e:
                self.close()
                failures += 1
                if failures > 3:
                    raise AssertionError(f"{self.node.name}: pipelined requests failed {failures} "
                                         f"times, last: {e!r}") from None
        return out


def bulk_requests(requests, conns=2, depth=16, timeout=30):
    """Send requests = [(node, method, path, json_obj or None)] over `conns`
    keep-alive connections per node, `depth` pipelined per round trip ->
    [(status, parsed body or None)] in the order of requests. Transport
    failures raise AssertionError."""
    results = [None] * len(requests)
    errors = []
    by_node = {}
    for i, req in enumerate(requests):
        by_node.setdefault(id(req[0]), (req[0], []))[1].append(i)
    jobs = [(node, idx[k::conns]) for node, idx in by_node.values() for k in range(conns)]

    def worker(node, mine):
        conn = PipelinedConn(node, timeout)
        try:
            for start in range(0, len(mine), depth):
                idx = mine[start:start + depth]
                batch = []
                for i in idx:
                    _, method, path, obj = requests[i]
                    batch.append(_encode_request(method, path, None if obj is None else dumps(obj)))
                for i, (status, body) in zip(idx, conn.exchange(batch)):
                    results[i] = (status, loads_or_none(body))
        except BaseException as e:  # noqa: BLE001 - reported by the caller's thread
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=job, daemon=True) for job in jobs if job[1]]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise AssertionError(f"bulk requests: {errors[0]!r}") from errors[0]
    return results


def put_many(nodes, table, items, expect=(200, 201), conns=2, depth=16, retry_503=2, **params):
    """PUT every (key, value) of items, pipelined, item i through
    nodes[i % len(nodes)] over `conns` connections per node; AssertionError
    showing the first failures unless every status is in expect. params
    become the query (w=2, ...).

    A PUT answered 503 (a quorum not reached in time, as happens on a busy
    2-core machine) may have been applied by some replicas: it is sent
    again, up to retry_503 times, with the context a read of the key gives
    (none when the read finds nothing), so that it replaces the first try
    instead of becoming its sibling."""
    items = list(items)
    nodes = list(nodes)
    results = [None] * len(items)
    todo = list(range(len(items)))
    contexts = {}
    for attempt in range(retry_503 + 1):
        reqs = []
        for i in todo:
            body = {"value": items[i][1]}
            if contexts.get(i):
                body["context"] = contexts[i]
            reqs.append((nodes[i % len(nodes)], "PUT",
                         with_query(key_path(table, items[i][0]), **params), body))
        for i, answer in zip(todo, bulk_requests(reqs, conns=conns, depth=depth)):
            results[i] = answer
        todo = [i for i in todo if results[i][0] == 503]
        if not todo or attempt == retry_503:
            break
        time.sleep(0.5 * (attempt + 1))
        reads = bulk_requests([(nodes[i % len(nodes)], "GET", key_path(table, items[i][0]), None)
                               for i in todo], conns=conns, depth=depth)
        for i, (status, body) in zip(todo, reads):
            if isinstance(body, dict) and isinstance(body.get("context"), str):
                contexts[i] = body["context"]
    bad = [f"{k!r}: {show(st, body)}" for (k, _), (st, body) in zip(items, results)
           if st not in expect]
    if bad:
        raise AssertionError(f"{len(bad)} of {len(items)} PUTs to {table!r} {params} failed "
                             f"(first 5):\n" + "\n".join(bad[:5]))


def get_many(nodes, table, keys, conns=2, depth=16, **params):
    """GET every key, pipelined, key i through nodes[i % len(nodes)] over
    `conns` connections per node -> [(status, body)] in order."""
    nodes = list(nodes)
    reqs = [(nodes[i % len(nodes)], "GET", with_query(key_path(table, k), **params), None)
            for i, k in enumerate(keys)]
    return bulk_requests(reqs, conns=conns, depth=depth)


# --------------------------------------------------------------------------
# Background load: a client that keeps writing and reading while the
# cluster changes underneath it.


class Load:
    """Bounded client traffic in background threads, checking what it reads.

    Each thread owns its keys (a share of `initial`, the {key: value} already
    acknowledged, and the new keys it writes), so a read of an owned key
    must return exactly the value last acknowledged for it: with the default
    quorums (R + W > N) a 404 or an older value is a lost write. Per
    operation, with rate ops/s in all: write a new key (blind PUT), read one
    of its keys (GET, default quorum), or update one (GET, then PUT with the
    context it read). Requests go round-robin to `nodes` (add_node/
    remove_node change that list while it runs).

    After stop():
      acked      {key: value} every key with a known acknowledged value
      uncertain  {key: [possible values]} keys whose last write got no
                 answer or a 503 (it may or may not have been applied;
                 DELETED in the list: the key may not exist at all)
      failures   what must never happen (404, another value, other errors)
      counts     Counter of outcomes ("read ok", "write 503", ...)

    Stops by itself after max_seconds. Always stop() it (try/finally).
    """

    TOLERATED = (503,)  # a quorum not reached is unavailability, not a lost write

    def __init__(self, nodes, table, initial=None, threads=2, rate=300, max_seconds=300,
                 prefix="load", seed=0, value_size=40, timeout=10):
        import collections
        import random

        self.nodes = list(nodes)
        self.table = table
        self.rate = rate
        self.max_seconds = max_seconds
        self.prefix = prefix
        self.value_size = value_size
        self.timeout = timeout
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rngs = [random.Random(seed * 1000 + t) for t in range(threads)]
        initial = dict(initial or {})
        keys = list(initial)
        self._owned = [{k: initial[k] for k in keys[t::threads]} for t in range(threads)]
        self._uncertain = [{} for _ in range(threads)]
        self.failures = []
        self.counts = collections.Counter()
        self._threads = [threading.Thread(target=self._run, args=(t,), daemon=True,
                                          name=f"load-{t}") for t in range(threads)]
        self.started_at = None
        self.stopped_at = None

    # -- control

    def add_node(self, node):
        with self._lock:
            if node not in self.nodes:
                self.nodes.append(node)

    def remove_node(self, node):
        with self._lock:
            self.nodes = [n for n in self.nodes if n is not node]

    def start(self):
        self.started_at = time.monotonic()
        for th in self._threads:
            th.start()
        return self

    def stop(self):
        self._stop.set()
        for th in self._threads:
            if th.is_alive():
                th.join(self.timeout * 3 + 5)
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- results

    @property
    def acked(self):
        out = {}
        for owned in self._owned:
            out.update(owned)
        return out

    @property
    def uncertain(self):
        out = {}
        for u in self._uncertain:
            out.update(u)
        return out

    def summary(self):
        secs = (self.stopped_at or time.monotonic()) - (self.started_at or time.monotonic())
        return (f"{sum(self.counts.values())} operations in {secs:.1f}s: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())))

    def assert_ok(self, testcase, min_reads=20, min_ok_ratio=0.5):
        """No failure at all; at least min_reads reads and writes done; and
        at least min_ok_ratio of the requests answered (503s and dropped
        connections are tolerated, but a cluster that answers nothing else
        is not available)."""
        testcase.assertEqual(self.failures[:10], [],
                             f"{len(self.failures)} failed operations under load "
                             f"({self.summary()}), first 10 shown")
        reads = self.counts["read ok"] + self.counts["update ok"] + self.counts["update 201 ok"]
        testcase.assertGreaterEqual(reads, min_reads, f"the load hardly read: {self.summary()}")
        testcase.assertGreaterEqual(self.counts["write ok"], min_reads,
                                    f"the load hardly wrote: {self.summary()}")
        done = sum(v for k, v in self.counts.items() if k.endswith(" ok"))
        total = sum(self.counts.values())
        testcase.assertGreaterEqual(done, min_ok_ratio * total,
                                    f"most requests under load were not answered: {self.summary()}")

    # -- the threads

    def _fail(self, msg):
        with self._lock:
            self.failures.append(msg)

    def _count(self, what):
        with self._lock:
            self.counts[what] += 1

    def _value(self, rng, t, i):
        return {"by": f"{self.prefix}-{t}", "i": i, "pad": "x" * rng.randint(0, self.value_size)}

    def _run(self, t):
        rng = self._rngs[t]
        owned, uncertain = self._owned[t], self._uncertain[t]
        readable = list(owned)
        clients = {}
        period = len(self._threads) / self.rate if self.rate else 0
        deadline = self.started_at + self.max_seconds
        next_at = time.monotonic()
        i = 0
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                if period:
                    delay = next_at - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                    next_at = max(next_at + period, time.monotonic() - 1)
                with self._lock:
                    nodes = list(self.nodes)
                if not nodes:
                    self._stop.wait(0.05)
                    continue
                node = nodes[i % len(nodes)]
                i += 1
                c = clients.get(node)
                if c is None:
                    c = clients[node] = node.client(timeout=self.timeout)
                op = rng.random()
                try:
                    if op < 0.4 or not readable:
                        self._write_new(c, rng, t, i, owned, uncertain, readable)
                    elif op < 0.85:
                        self._read(c, rng.choice(readable), owned)
                    else:
                        self._update(c, rng, t, i, rng.choice(readable), owned, uncertain, readable)
                except (OSError, http.client.HTTPException) as e:
                    # A dropped connection: tolerated like a 503 (the write
                    # it carried, if any, was marked uncertain).
                    c.close()
                    self._count(f"transport error ({type(e).__name__})")
        except BaseException as e:  # noqa: BLE001 - a bug in the load itself
            self._fail(f"load thread {t} crashed: {e!r}")
        finally:
            for c in clients.values():
                c.close()

    def _check_read(self, node_name, key, status, body, hdrs, expected):
        """True when a read of an owned key is right; records a failure otherwise."""
        if status == 200 and isinstance(body, dict) and json_equal(body.get("value"), expected):
            return True
        if status in self.TOLERATED:
            return False
        what = "404 for an acknowledged key" if status == 404 else (
            "a value other than the one acknowledged" if status == 200 else f"status {status}")
        self._fail(f"GET {key!r} via {node_name}: {what}: {show(status, body, hdrs)}; "
                   f"acknowledged {expected!r}")
        return False

    def _read(self, c, key, owned):
        path = key_path(self.table, key)
        status, body, hdrs = c.json("GET", path)
        if self._check_read(c.node.name, key, status, body, hdrs, owned[key]):
            self._count("read ok")
        else:
            self._count(f"read {status}")

    def _write_new(self, c, rng, t, i, owned, uncertain, readable):
        key = f"{self.prefix}-{t}-{i:07d}"
        value = self._value(rng, t, i)
        uncertain[key] = [DELETED, value]  # until acknowledged
        status, body, hdrs = c.json("PUT", key_path(self.table, key), {"value": value})
        if status == 201:
            del uncertain[key]
            owned[key] = value
            readable.append(key)
            self._count("write ok")
            return
        self._count(f"write {status}")
        if status not in self.TOLERATED:
            self._fail(f"PUT new key {key!r} via {c.node.name}: {show(status, body, hdrs)}")

    def _update(self, c, rng, t, i, key, owned, uncertain, readable):
        path = key_path(self.table, key)
        status, body, hdrs = c.json("GET", path)
        if not self._check_read(c.node.name, key, status, body, hdrs, owned[key]):
            self._count(f"update read {status}")
            return
        value = self._value(rng, t, i)
        old = owned.pop(key)
        readable.remove(key)
        uncertain[key] = [old, value]
        status, body, hdrs = c.json("PUT", path, {"value": value, "context": body.get("context")})
        if status in (200, 201) and isinstance(body, dict) and body.get("siblings") == 1:
            del uncertain[key]
            owned[key] = value
            readable.append(key)
            # 201 says the coordinator saw no live value, though one was just
            # read: not a lost write (the context supersedes it), but counted
            # apart so that a test can show it.
            self._count("update ok" if status == 200 else "update 201 ok")
            return
        self._count(f"update {status}")
        if status not in self.TOLERATED:
            self._fail(f"PUT {key!r} with the context just read via {c.node.name}: "
                       f"{show(status, body, hdrs)}")
