"""Integration tests of the ringkv command-line client against a real ringkvd.

One node serves the whole class; each test uses its own keys or table. The
fail-over tests add closed ports and small stand-in servers (one answers
503, one accepts and never answers) in front of the live node.

The cluster commands that wait (`cluster leave`, `cluster remove`) run
against real 4-node clusters, and against a scripted pair of stand-in nodes
for what a real cluster cannot be made to do on cue: never settle (the
--timeout), wait while Ctrl-C comes, and draw the bar on a terminal (a pty).
"""

import http.server
import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CLI = harness.RINGKV_CLI


def closed_port_addr():
    """127.0.0.1:PORT where nothing listens (connection refused)."""
    return f"127.0.0.1:{harness.free_port()}"


class _Busy503(http.server.BaseHTTPRequestHandler):
    """Answers every request as an overloaded coordinator would."""

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"error": "only 0 of 1 replicas answered", "code": "quorum",
                           "acks": 0, "needed": 1}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_DELETE = do_POST = _answer

    def log_message(self, *args):
        pass


class StandIn:
    """A loopback server thread: '503' answers 503, 'silent' never answers."""

    def __init__(self, kind):
        self.kind = kind
        self.conns = []
        if kind == "503":
            self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Busy503)
            self.port = self.server.server_address[1]
            self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        else:
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.sock.listen(16)
            self.port = self.sock.getsockname()[1]
            self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)  # keep it open and say nothing

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def close(self):
        if self.kind == "503":
            self.server.shutdown()
            self.server.server_close()
        else:
            self.sock.close()
            for c in self.conns:
                c.close()


class CliTest(unittest.TestCase):
    node = None

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(CLI):
            raise AssertionError(f"ringkv CLI not found at {CLI} (set RINGKV_CLI)")
        cls.node = harness.Node("cli1")
        try:
            cls.node.start()
        except BaseException:
            cls.node.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.node.stop()
        finally:
            cls.node.cleanup()

    # -- helpers

    def run_cli(self, *args, nodes=None, stdin=None, env=None, timeout=30):
        """Runs ringkv with --nodes (the live node unless given) -> CompletedProcess.

        stdout/stderr are str; stdin may be str or bytes."""
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("RINGKV_NODES", "RINGKV_TOKEN")}
        if env:
            full_env.update(env)
        argv = [CLI]
        if nodes is not False:
            argv += ["--nodes", nodes or self.node.http_addr]
        argv += list(args)
        if isinstance(stdin, str):
            stdin = stdin.encode()
        proc = subprocess.run(argv, input=stdin if stdin is not None else b"",
                              capture_output=True, env=full_env, timeout=timeout)
        proc.stdout = proc.stdout.decode("utf-8", "replace")
        proc.stderr = proc.stderr.decode("utf-8", "replace")
        return proc

    def ok(self, *args, **kw):
        p = self.run_cli(*args, **kw)
        self.assertEqual(p.returncode, 0, self.show(args, p))
        return p

    @staticmethod
    def show(args, p):
        return (f"ringkv {' '.join(map(str, args))} -> exit {p.returncode}\n"
                f"stdout: {p.stdout!r}\nstderr: {p.stderr!r}")

    def get_value(self, key, *extra):
        p = self.ok("get", key, *extra)
        return json.loads(p.stdout)

    @staticmethod
    def unique(prefix):
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    # -- put / get

    def test_put_get_string(self):
        key = self.unique("str")
        self.ok("put", key, "hello world")
        p = self.ok("get", key)
        self.assertEqual(p.stdout, '"hello world"\n')
        self.assertEqual(p.stderr, "", "get without -v keeps stderr quiet")
        status, body, _ = self.node.json("GET", harness.key_path("default", key))
        self.assertEqual((status, body["value"]), (200, "hello world"))

    def test_put_get_json_object(self):
        key = self.unique("obj")
        value = {"name": "ada", "tags": ["x", "y"], "n": 3, "ok": True, "none": None}
        self.ok("put", key, json.dumps(value))
        self.assertTrue(harness.json_equal(self.get_value(key), value))
        # Scalars that parse as JSON are JSON; --string keeps them strings.
        self.ok("put", key, "42")
        self.assertTrue(harness.json_equal(self.get_value(key), 42))
        self.ok("put", key, "42", "--string")
        self.assertTrue(harness.json_equal(self.get_value(key), "42"))

    def test_put_json_flag_rejects_non_json(self):
        key = self.unique("badjson")
        p = self.run_cli("put", key, "--json", "{not json")
        self.assertEqual(p.returncode, 2, self.show(("put", key), p))
        self.assertIn("not valid JSON", p.stderr)
        self.assertEqual(self.run_cli("get", key).returncode, 1, "nothing was written")

    def test_put_from_stdin(self):
        key = self.unique("stdin")
        self.ok("put", key, stdin="from stdin\n")
        self.assertEqual(self.get_value(key), "from stdin")
        self.ok("put", key, "-", stdin='{"a": [1, 2]}\n')
        self.assertTrue(harness.json_equal(self.get_value(key), {"a": [1, 2]}))

    def test_verbose_shows_context_and_siblings(self):
        key = self.unique("verbose")
        self.ok("put", key, "v")
        p = self.ok("-v", "get", key)
        self.assertEqual(p.stdout, '"v"\n')
        self.assertIn("context: ", p.stderr)
        self.assertIn("siblings: 1", p.stderr)

    def test_key_is_url_encoded(self):
        key = "a/b c%?#&é~._-"
        self.ok("put", key, "odd")
        status, body, _ = self.node.json("GET", harness.key_path("default", key))
        self.assertEqual((status, body and body.get("value")), (200, "odd"))
        self.assertEqual(self.get_value(key), "odd")
        # A key that starts with '-' goes after "--".
        self.ok("put", "--", "-dash", "d")
        self.assertEqual(json.loads(self.ok("get", "--", "-dash").stdout), "d")

    def test_table_option(self):
        table = self.unique("tbl")
        key = self.unique("k")
        self.ok("--table", table, "put", key, "in table")
        self.assertEqual(json.loads(self.ok("--table", table, "get", key).stdout), "in table")
        p = self.run_cli("get", key)
        self.assertEqual(p.returncode, 1, "the default table does not have it: "
                         + self.show(("get", key), p))
        status, body, _ = self.node.json("GET", harness.key_path(table, key))
        self.assertEqual((status, body["value"]), (200, "in table"))

    # -- del

    def test_del_then_get_exits_1(self):
        key = self.unique("del")
        self.ok("put", key, "doomed")
        self.ok("del", key)
        p = self.run_cli("get", key)
        self.assertEqual(p.returncode, 1, self.show(("get", key), p))
        self.assertEqual(p.stdout, "")
        self.assertIn("not found", p.stderr)
        p = self.run_cli("del", key)
        self.assertEqual(p.returncode, 1, "deleting a missing key: " + self.show(("del", key), p))

    # -- keys

    def test_keys_all_lists_every_key(self):
        table = self.unique("keys")
        written = {f"key-{i:03d}" for i in range(23)} | {"with space", "slash/y", "ünï"}
        for k in written:
            self.ok("--table", table, "put", k, "1")
        p = self.ok("--table", table, "keys", "--all", "--limit", "5")
        listed = p.stdout.splitlines()
        self.assertEqual(sorted(listed), sorted(written))
        self.assertEqual(len(listed), len(set(listed)), "no key twice")

        one = self.ok("--table", table, "keys", "--limit", "5")
        self.assertEqual(len(one.stdout.splitlines()), 5)
        self.assertIn("--after", one.stderr, "a partial listing says how to go on")

    # -- cluster status

    def test_cluster_status(self):
        p = self.ok("cluster", "status")
        self.assertIn("cli1", p.stdout)
        self.assertIn(self.node.http_addr, p.stdout)
        self.assertIn("alive", p.stdout)
        self.assertIn("N=1", p.stdout)
        self.assertIn("100.0%", p.stdout)
        self.assertRegex(p.stdout, re.compile(r"^\* cli1 ", re.M))
        self.assertIn(f"* = the node that answered ({self.node.http_addr})", p.stdout)

    def test_wait_options_only_for_leave_and_remove(self):
        for args in (("cluster", "status", "--no-wait"), ("cluster", "repair", "--timeout", "5"),
                     ("cluster", "leave", "--no-wait", "--timeout", "5"),
                     ("cluster", "leave", "--timeout", "0"), ("cluster", "leave", "--timeout", "x"),
                     ("get", "k", "--no-wait")):
            p = self.run_cli(*args)
            self.assertEqual(p.returncode, 2, self.show(args, p))
        self.assertTrue(self.node.running())

    # -- fail-over and exit codes

    def test_failover_skips_closed_port(self):
        dead = closed_port_addr()
        key = self.unique("fo")
        p = self.ok("put", key, "over", nodes=f"{dead},{self.node.http_addr}")
        self.assertIn(dead, p.stderr)
        self.assertIn("unreachable", p.stderr)
        self.assertIn(self.node.http_addr, p.stderr, "says which node it tries next")
        p = self.ok("get", key, nodes=f"{dead},{self.node.http_addr}")
        self.assertEqual(p.stdout, '"over"\n')

    def test_failover_on_read_timeout_and_503(self):
        silent, busy = StandIn("silent"), StandIn("503")
        try:
            key = self.unique("fo2")
            self.ok("put", key, "x")
            nodes = f"{silent.addr},{busy.addr},{self.node.http_addr}"
            p = self.ok("--timeout-ms", "300", "get", key, nodes=nodes)
            self.assertEqual(p.stdout, '"x"\n')
            self.assertIn(f"node {silent.addr} unreachable", p.stderr)
            self.assertIn(f"node {busy.addr} answered 503", p.stderr)
            # Only busy nodes: the 503 is the answer (exit 4), not "unreachable".
            p = self.run_cli("get", key, nodes=busy.addr)
            self.assertEqual(p.returncode, 4, self.show(("get", key), p))
            self.assertIn("only 0 of 1 replicas answered", p.stderr)
        finally:
            silent.close()
            busy.close()

    def test_all_nodes_down_exits_3(self):
        a, b = closed_port_addr(), closed_port_addr()
        p = self.run_cli("get", "k", nodes=f"{a},{b}")
        self.assertEqual(p.returncode, 3, self.show(("get",), p))
        self.assertIn(a, p.stderr)
        self.assertIn(b, p.stderr)
        self.assertIn("no node reachable", p.stderr)

    def test_a_4xx_is_an_answer_not_a_failure(self):
        # The reserved table's 403 comes from the first node: no fail-over,
        # and the server's message is shown with exit 4.
        dead = closed_port_addr()
        p = self.run_cli("--table", "_system", "put", "k", "v",
                         nodes=f"{self.node.http_addr},{dead}")
        self.assertEqual(p.returncode, 4, self.show(("put", "_system"), p))
        self.assertIn("403", p.stderr)
        self.assertIn("reserved", p.stderr)
        self.assertNotIn(dead, p.stderr)

    def test_nodes_from_environment(self):
        key = self.unique("env")
        self.ok("put", key, "e", nodes=False, env={"RINGKV_NODES": self.node.http_addr})
        p = self.ok("get", key, nodes=False,
                    env={"RINGKV_NODES": f"{closed_port_addr()},{self.node.http_addr}"})
        self.assertEqual(p.stdout, '"e"\n')

    def test_bad_usage_exits_2_with_help(self):
        cases = [
            (),
            ("frobnicate",),
            ("get",),
            ("get", "a", "b"),
            ("put", "k", "v", "--bogus"),
            ("get", "k", "--string"),
            ("--timeout-ms", "soon", "get", "k"),
            ("--nodes", "no-port", "get", "k"),
            ("put", "k", "v", "--string", "--json"),
            ("cluster", "explode"),
        ]
        for args in cases:
            with self.subTest(args=args):
                p = self.run_cli(*args)
                self.assertEqual(p.returncode, 2, self.show(args, p))
                self.assertIn("Usage:", p.stderr)
                self.assertEqual(p.stdout, "")

    def test_help_and_version(self):
        p = self.ok("--help", nodes=False)
        for text in ("put KEY", "get KEY", "del KEY", "keys", "cluster status",
                     "Exit status", "no node reachable"):
            self.assertIn(text, p.stdout)
        p = self.ok("get", "--help", nodes=False)
        self.assertIn("--siblings", p.stdout)
        self.assertNotIn("cluster status", p.stdout, "only the command's help")
        p = self.ok("--version", nodes=False)
        self.assertTrue(p.stdout.startswith("ringkv "), p.stdout)

    # -- exact values: numbers keep their digits, white space stays

    EXACT = '{"big": 12345678901234567890, "f": 1.50}'
    PRETTY = '{\n  "big": 12345678901234567890,\n  "f": 1.50\n}'

    def assert_stored(self, path, values, status=200, query=""):
        """The node's own answer holds each value's text exactly as sent."""
        st, _, data = self.node.request("GET", path + query)
        self.assertEqual(st, status, data)
        for v in values:
            self.assertIn(b'"value":' + v.encode() + b",", data)

    def test_get_prints_the_exact_stored_text(self):
        key = self.unique("exact")
        path = harness.key_path("default", key)
        self.ok("put", key, self.EXACT)
        self.assert_stored(path, [self.EXACT])
        # A parse and print would give 1.2345678901234567e+19 and 1.5.
        self.assertEqual(self.ok("get", key).stdout, self.EXACT + "\n")
        # One version: the node answers 200 even to --siblings.
        self.assertEqual(self.ok("get", key, "--siblings").stdout, self.EXACT + "\n")

        # Line breaks are the value's own white space: get keeps them,
        # --siblings turns them into spaces to keep one value per line.
        self.ok("put", key, "-", stdin=self.PRETTY + "\n")
        self.assert_stored(path, [self.PRETTY])
        self.assertEqual(self.ok("get", key).stdout, self.PRETTY + "\n")
        self.assertEqual(self.ok("get", key, "--siblings").stdout,
                         self.PRETTY.replace("\n", " ") + "\n")

    def test_get_siblings_prints_each_exact_text(self):
        key = self.unique("exactsib")
        path = harness.key_path("default", key)
        status, body, _ = self.node.json("PUT", path, {"value": "base"})
        self.assertIn(status, (200, 201), body)
        values = [self.EXACT, "[1.0, -0E+5, 99999999999999999999999]", self.PRETTY]
        for v in values:  # concurrent: each saw only "base"
            st, _, data = self.node.request(
                "PUT", path, '{"value": %s, "context": "%s"}' % (v, body["context"]),
                {"Content-Type": "application/json"})
            self.assertIn(st, (200, 201), data)
        self.assert_stored(path, values, status=300, query="?siblings=all")

        p = self.ok("-v", "get", key, "--siblings")
        self.assertIn("siblings: 3", p.stderr)
        self.assertEqual(sorted(p.stdout.splitlines()),
                         sorted(v.replace("\n", " ") for v in values), self.show(("get",), p))

    # -- siblings

    def test_get_siblings_after_concurrent_writes(self):
        key = self.unique("sib")
        path = harness.key_path("default", key)
        status, body, _ = self.node.json("PUT", path, {"value": "base"})
        self.assertIn(status, (200, 201), body)
        ctx = body["context"]
        # Two writers that both read "base": neither saw the other.
        s1, b1, _ = self.node.json("PUT", path, {"value": "left", "context": ctx})
        s2, b2, _ = self.node.json("PUT", path, {"value": {"right": 2}, "context": ctx})
        self.assertIn(s1, (200, 201), b1)
        self.assertIn(s2, (200, 201), b2)

        p = self.ok("-v", "get", key, "--siblings")
        values = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertEqual(len(values), 2, self.show(("get", "--siblings"), p))
        self.assertTrue(any(harness.json_equal(v, "left") for v in values), values)
        self.assertTrue(any(harness.json_equal(v, {"right": 2}) for v in values), values)
        self.assertIn("siblings: 2", p.stderr)

        # Without --siblings: one winner, and -v still says there are two.
        p = self.ok("-v", "get", key)
        self.assertEqual(len(p.stdout.splitlines()), 1)
        self.assertIn("siblings: 2", p.stderr)

        # Writing back with the siblings' context resolves them.
        merged_ctx = next(line.split(": ", 1)[1] for line in p.stderr.splitlines()
                          if line.startswith("context: "))
        self.ok("put", key, "merged", "--context", merged_ctx)
        p = self.ok("get", key, "--siblings")
        self.assertEqual(p.stdout, '"merged"\n')


class CliWatchTest(unittest.TestCase):
    """ringkv watch against a real 3-node cluster: events as writes happen,
    and the stream moving to another node when its node dies."""

    cluster = None

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(CLI):
            raise AssertionError(f"ringkv CLI not found at {CLI} (set RINGKV_CLI)")
        cls.cluster = harness.Cluster(3, prefix="watch")  # started and converged

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop(check=False)

    def nodes_arg(self, order):
        return ",".join(self.cluster[i].http_addr for i in order)

    def start_watch(self, order, *args):
        """Starts `ringkv -v watch ARGS` and waits until it is subscribed."""
        p = subprocess.Popen([CLI, "--nodes", self.nodes_arg(order), "-v", "watch", *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait()))
        line = p.stderr.readline()  # "ringkv: watching via node X"
        self.assertIn("watching via node", line, line + p.stderr.read() if p.poll() else line)
        return p

    def cli(self, node, *args):
        p = subprocess.run([CLI, "--nodes", self.cluster[node].http_addr, *args],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

    def finish(self, p, timeout=30):
        out, err = p.communicate(timeout=timeout)
        self.assertEqual(p.returncode, 0, err)
        return out.splitlines(), err

    def test_watch_prints_each_change_of_a_key(self):
        t, k = f"w{uuid.uuid4().hex[:8]}", "a key"
        p = self.start_watch([0, 1, 2], "--table", t, k, "--count", "3")
        # All three through node 2 while the stream is on node 1: a blind
        # write (no context) builds on its coordinator's own copy, and one
        # through another node could find the previous write not there yet
        # (W=2 of 3) and make a sibling, as a GET would then show too (it
        # did once in CI: "two" came with siblings=2).
        self.cli(1, "--table", t, "put", k, '{"n": 1}')
        self.cli(1, "--table", t, "put", k, "two")
        self.cli(1, "--table", t, "del", k)
        lines, _ = self.finish(p)
        self.assertEqual(len(lines), 3, lines)
        self.assertRegex(lines[0], rf'^updated {t}/a key {{"n": 1}} context=\S+$')
        self.assertRegex(lines[1], rf'^updated {t}/a key "two" context=\S+$')
        self.assertRegex(lines[2], rf"^deleted {t}/a key context=\S+$")

    def test_watch_json_of_a_table_and_several_keys(self):
        t = f"w{uuid.uuid4().hex[:8]}"
        table = self.start_watch([1], "--table", t, "--json", "--count", "2")
        keys = self.start_watch([2], "--table", t, "x", "y", "--json", "--count", "1")
        self.cli(0, "--table", t, "put", "other", "1")
        self.cli(0, "--table", t, "put", "y", "2")
        events = [json.loads(line) for line in self.finish(table)[0]]
        self.assertEqual([(e["event"], e["data"]["key"]) for e in events],
                         [("updated", "other"), ("updated", "y")])
        self.assertTrue(all(e["id"] for e in events))
        (event,) = [json.loads(line) for line in self.finish(keys)[0]]
        self.assertEqual((event["event"], event["data"]["key"], event["data"]["value"]),
                         ("updated", "y", 2))

    def test_watch_moves_to_the_next_node_when_its_node_dies(self):
        t, k = f"w{uuid.uuid4().hex[:8]}", "k"
        # Node 2 serves the stream; node 0 comes next, so it survives the kill.
        p = self.start_watch([2, 0], "--table", t, k, "--count", "2")
        self.cli(0, "--table", t, "put", k, "before")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the first event, then the kill
            if p.stdout.readline().startswith("updated"):
                break
        # "after" goes through node 1 as a blind write: it must find
        # "before" in node 1's copy, or it makes a sibling (W=2 of 3).
        harness.wait_for(lambda: self.cluster[1].json(
            "GET", harness.with_query(harness.key_path(t, k), local=1))[0] == 200, 10,
            what="node 1's own copy of the first write")
        self.cluster.kill(2)
        self.addCleanup(lambda: self.cluster.restart(2))
        line = p.stderr.readline()
        self.assertIn("resuming from " + self.cluster[0].http_addr, line)
        self.assertIn("watching via node " + self.cluster[0].http_addr, p.stderr.readline())
        self.cli(1, "--table", t, "put", k, "after")
        lines, _ = self.finish(p)
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], rf'^updated {t}/k "after" context=\S+$')


# -- cluster leave / remove: following the change --------------------------

def run_ringkv(*args, nodes, timeout=120):
    """ringkv --nodes NODES ARGS with stdout and stderr piped -> CompletedProcess (str)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RINGKV_NODES", "RINGKV_TOKEN")}
    return subprocess.run([CLI, "--nodes", nodes, *args], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def said(args, p):
    return (f"ringkv {' '.join(map(str, args))} -> exit {p.returncode}\n"
            f"--- stdout ---\n{p.stdout}--- stderr ---\n{p.stderr}")


def without_time(line):
    """A progress line without its elapsed time: what says its state."""
    return re.sub(r", [0-9.]+ s$", "", line)


class CliClusterChangeTest(unittest.TestCase):
    """cluster leave and remove wait, with progress, until the change has
    settled; cluster status sorts the members and marks the node asked.
    Each test has its own 4-node cluster."""

    def setUp(self):
        if not os.path.exists(CLI):
            raise AssertionError(f"ringkv CLI not found at {CLI} (set RINGKV_CLI)")
        self.c = harness.Cluster(4, prefix="chg")
        # A node left or was killed: stop whatever still runs, as it is.
        self.addCleanup(self.c.cleanup)
        self.addCleanup(self.c.stop, check=False)

    def views_of(self, nodes):
        return {n.name: self.c.cluster_view(n) for n in nodes}

    def assert_settled(self, gone, nodes, context):
        """What the CLI promised when it returned: every other member sees
        `gone` removed, none has ranges pending, they agree on the ring."""
        views = self.views_of(nodes)
        for name, v in views.items():
            m = self.c.member(v, gone.name)
            self.assertEqual(m and m.get("status"), "removed", f"{name}'s view\n{context}")
            self.assertEqual(v["sync"]["ranges_pending"], 0, f"{name}'s view\n{context}")
        versions = {v["ring_version"] for v in views.values()}
        self.assertEqual(len(versions), 1, f"ring versions {versions}\n{context}")

    def test_leave_piped_shows_progress_lines_and_a_summary(self):
        c = self.c
        harness.put_many([c[0]], "chg", [(f"k{i}", {"i": i}) for i in range(2000)])
        leaver, others = c[1], [c[0], c[2], c[3]]
        args = ("cluster", "leave")
        p = run_ringkv(*args, nodes=leaver.http_addr)
        context = said(args, p)
        self.assertEqual(p.returncode, 0, context)
        self.assert_settled(leaver, others, context)

        self.assertNotIn("\r", p.stdout, "a pipe gets plain lines, no bar\n" + context)
        lines = p.stdout.splitlines()
        self.assertTrue(lines[0].startswith(f"node {leaver.name} ({leaver.http_addr}) is leaving"),
                        context)
        progress, summary = lines[1:-1], lines[-1]
        self.assertGreaterEqual(len(progress), 1, context)
        name = re.escape(leaver.name)
        for line in progress:
            self.assertRegex(line, rf"^{name} (leaving|removed, [^:]+): \d+ ranges pending "
                                   rf"\(\d+ of 65536 done\), \d+ keys moved, [0-9.]+ s$", context)
        # One line per change of state, not one per poll.
        for a, b in zip(progress, progress[1:]):
            self.assertNotEqual(without_time(a), without_time(b), context)
        m = re.fullmatch(rf"{name} left: (\d+) ranges handed off, (\d+) keys moved in [0-9.]+ s",
                         summary)
        self.assertIsNotNone(m, context)
        self.assertEqual(int(m.group(1)), 65536, context)
        self.assertGreater(int(m.group(2)), 0, "it held keys that its ranges' new replicas "
                                               "lacked\n" + context)
        rc = leaver.wait_exit(30)
        self.assertEqual(rc, 0, f"{leaver.name} after leaving: exit {rc}\n{leaver.log_tail()}")

    def test_remove_of_a_killed_node_waits_until_settled(self):
        c = self.c
        dead, survivors = c[3], [c[0], c[1], c[2]]
        dead_id = c.member(c.cluster_view(0), dead.name)["id"]
        c.kill(3)
        c.wait_seen_down(3, timeout=20)
        args = ("cluster", "remove", dead.name)
        p = run_ringkv(*args, nodes=c[0].http_addr)
        context = said(args, p)
        self.assertEqual(p.returncode, 0, context)
        self.assert_settled(dead, survivors, context)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], f"node {dead.name} ({dead_id}) is removed; the other nodes "
                                   f"re-replicate its data", context)
        name = re.escape(dead.name)
        for line in lines[1:-1]:
            self.assertRegex(line, rf"^{name} removed, [^:]+: \d+ ranges pending", context)
        self.assertRegex(lines[-1], rf"^{name} removed: 3 members agree on the ring, \d+ ranges "
                                    rf"handed off, \d+ keys moved in [0-9.]+ s$", context)

        # --no-wait: the old answer, at once; the node leaves by itself.
        args = ("cluster", "leave", "--no-wait")
        p = run_ringkv(*args, nodes=c[2].http_addr)
        self.assertEqual(p.returncode, 0, said(args, p))
        self.assertEqual(p.stdout, f"node {c[2].name} ({c[2].http_addr}) is leaving: it hands off "
                                   f"its data, then stops (follow it with cluster status on "
                                   f"another node)\n", said(args, p))
        self.assertEqual(c[2].wait_exit(60), 0, c[2].log_tail())

    def test_status_sorted_by_name_with_the_node_asked_marked(self):
        c = self.c
        names = sorted(n.name for n in c.nodes)
        for asked in (c[2], c[0]):
            args = ("cluster", "status")
            # The mark is on the node that answered, not the first of --nodes.
            p = run_ringkv(*args, nodes=f"{closed_port_addr()},{asked.http_addr}")
            context = said(args, p)
            self.assertEqual(p.returncode, 0, context)
            rows = [line for line in p.stdout.splitlines()
                    if re.match(r"^[* ] \S+ +[0-9a-f]{16} ", line)]
            self.assertEqual([r[2:].split()[0] for r in rows], names, context)
            marked = [r[2:].split()[0] for r in rows if r.startswith("* ")]
            self.assertEqual(marked, [asked.name], context)
            self.assertIn(f"\n* = the node that answered ({asked.http_addr})\n", p.stdout, context)
            self.assertRegex(p.stdout, re.compile(r"^  NAME +ID +HTTP", re.M), context)


class ScriptedCluster:
    """Two stand-in nodes answering GET /cluster as a leaving node ("lv",
    asked by the CLI) and another member ("wit") would. After POST
    /cluster/leave, each GET to lv hands off 4 of its 16 ranges (10 keys
    each); then lv is removed, and wit sees it so at its next GET. With
    settle=False lv stays leaving with 16 ranges pending for ever."""

    LV, WIT = "00000000000000a1", "00000000000000b2"

    def __init__(self, settle=True):
        self.settle = settle
        self.lock = threading.Lock()
        self.leaving = False
        self.polls = 0         # GETs to lv since the leave
        self.removed = False   # in lv's own view
        self.wit_knows = False
        self.servers = [self._serve("lv"), self._serve("wit")]

    def _serve(self, who):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/cluster":
                    return self._send(404, {"error": "no route", "code": "no_route"})
                self._send(200, fake.view(who))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if who != "lv" or self.path != "/cluster/leave":
                    return self._send(404, {"error": "no route", "code": "no_route"})
                with fake.lock:
                    fake.leaving = True
                self._send(202, {"node": "lv", "status": "leaving"})

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def addr(self, i):
        return f"127.0.0.1:{self.servers[i].server_address[1]}"

    def view(self, who):
        with self.lock:
            pending, lv_status = 0, "member"
            if self.leaving and who == "lv":
                if self.settle:
                    self.polls += 1
                pending = max(0, 16 - 4 * self.polls) if self.settle else 16
                if self.settle and pending == 0:
                    self.removed = True
                lv_status = "removed" if self.removed else "leaving"
            elif self.leaving:
                if self.removed:
                    self.wit_knows = True
                lv_status = "removed" if self.wit_knows else "leaving"
                pending = 0
            sent = 10 * min(4 * self.polls, 16) if who == "lv" else 0
            received = 10 * min(4 * self.polls, 16) if who == "wit" else 0
            return {
                "cluster_id": "00000000000000cc", "node": who,
                "id": self.LV if who == "lv" else self.WIT, "partitions": 16,
                "ring_version": "02" if (who == "wit" and self.wit_knows) else "01",
                "members": [
                    {"id": self.LV, "name": "lv", "http": self.addr(0), "status": lv_status,
                     "liveness": "alive", "self": who == "lv"},
                    {"id": self.WIT, "name": "wit", "http": self.addr(1), "status": "member",
                     "liveness": "alive", "self": who == "wit"},
                ],
                "sync": {"ranges_pending": pending, "handoff_keys_sent": sent,
                         "keys_received": received, "leaving": who == "lv" and self.leaving},
            }

    def close(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()


class CliScriptedChangeTest(unittest.TestCase):
    """What a real cluster cannot be made to do on cue, against ScriptedCluster."""

    def setUp(self):
        if not os.path.exists(CLI):
            raise AssertionError(f"ringkv CLI not found at {CLI} (set RINGKV_CLI)")

    def scripted(self, settle=True):
        fake = ScriptedCluster(settle)
        self.addCleanup(fake.close)
        return fake

    def test_timeout_when_it_does_not_settle(self):
        fake = self.scripted(settle=False)
        args = ("cluster", "leave", "--timeout", "1")
        p = run_ringkv(*args, nodes=fake.addr(0), timeout=30)
        context = said(args, p)
        self.assertEqual(p.returncode, 5, context)
        self.assertIn("the leave of lv has not settled after 1 s", p.stderr, context)
        self.assertIn("it goes on in the cluster", p.stderr, context)
        self.assertIn("lv leaving: 16 ranges pending (0 of 16 done)", p.stdout, context)
        self.assertNotIn(" left:", p.stdout, context)

    def test_ctrl_c_stops_the_waiting_not_the_change(self):
        fake = self.scripted(settle=False)
        env = {k: v for k, v in os.environ.items() if k not in ("RINGKV_NODES", "RINGKV_TOKEN")}
        proc = subprocess.Popen([CLI, "--nodes", fake.addr(0), "cluster", "leave"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait()))
        first = proc.stdout.readline()    # "node lv (...) is leaving: ..."
        progress = proc.stdout.readline()  # the first progress line: it waits
        self.assertIn("is leaving", first)
        self.assertTrue(progress.startswith("lv leaving: "), progress)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 130, f"stdout: {out!r}\nstderr: {err!r}")
        self.assertIn("stopped waiting; the leave of lv goes on in the cluster", err)

    def test_terminal_gets_a_bar_redrawn_in_place(self):
        fake = self.scripted()
        master, slave = pty.openpty()
        env = {k: v for k, v in os.environ.items() if k not in ("RINGKV_NODES", "RINGKV_TOKEN")}
        try:
            proc = subprocess.Popen([CLI, "--nodes", fake.addr(0), "cluster", "leave"],
                                    stdout=slave, stderr=subprocess.PIPE, env=env,
                                    stdin=subprocess.DEVNULL)
        finally:
            os.close(slave)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait()))
        out = b""
        while True:  # until the CLI exits and the pty says EOF (EIO on Linux)
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        rc = proc.wait(timeout=30)
        text = out.decode("utf-8", "replace").replace("\r\n", "\n")
        context = f"exit {rc}\n--- terminal ---\n{text!r}\n--- stderr ---\n{proc.stderr.read()!r}"
        proc.stderr.close()
        self.assertEqual(rc, 0, context)
        self.assertIn("\r", text, "the bar is redrawn with \\r\n" + context)
        self.assertRegex(text, r"\rlv leaving \[[#-]+\] +\d+% \d+ ranges pending", context)
        self.assertRegex(text, r"\rlv left \[#+\] 100% 0 ranges pending", context)
        self.assertRegex(text, r"\nlv left: 16 ranges handed off, 160 keys moved in [0-9.]+ s\n$",
                         context)


if __name__ == "__main__":
    unittest.main(verbosity=2)
