"""Integration-test harness: real ringkvd processes on free loopback ports.

Every Node gets its own temporary directory (data + log), free HTTP and RPC
ports, and is always stopped: by its context manager, by cleanup(), and as a
last resort by an atexit hook that SIGKILLs whatever is still running. On
Linux the child also gets PR_SET_PDEATHSIG, so even a SIGKILLed test run
leaves no ringkvd behind (note: the signal follows the *thread* that started
the node, so start nodes from the main thread).

Waiting is done by polling with a deadline (wait_for), never by bare sleeps.

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
    """One ringkvd process (single node: --n 1 --r 1 --w 1 --insecure)."""

    def __init__(self, name="n1", data_dir=None, extra_args=(), env=None):
        self.name = name
        self.extra_args = list(extra_args)
        self.env = env
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
        return [
            RINGKVD,
            "--data", self.data_dir,
            "--http", self.http_addr,
            "--rpc", self.rpc_addr,
            "--insecure",
            "--n", "1", "--r", "1", "--w", "1",
            "--name", self.name,
            *self.extra_args,
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

    def stop(self, timeout=10, expect_exit=0):
        """SIGTERM and wait; assert the exit code (skip with expect_exit=None)."""
        if self.proc is None:
            return None
        already = self.proc.poll()
        if already is None:
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
            when = "after SIGTERM" if already is None else "on its own, before SIGTERM"
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
        self._reap(self.proc.returncode)
        return self.proc.returncode

    def restart(self, timeout=15):
        """Start again with the same data dir and ports (stops first if running)."""
        if self.running():
            self.stop()
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
