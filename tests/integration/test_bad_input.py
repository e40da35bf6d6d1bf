"""Bad input: each malformed request gets the exact status and JSON error of
docs/api.md, and a fuzz phase of a few thousand random, truncated and lying
requests over raw sockets leaves the node alive with every acknowledged value
intact.

The fuzz phase prints its seed; RINGKV_TEST_SEED=<seed> replays it
(RINGKV_FUZZ_COUNT changes the number of requests, RINGKV_FUZZ_ONLY=a:b sends
only requests a..b-1 of that seed).
"""

import collections
import concurrent.futures
import json
import os
import random
import re
import select
import socket
import sys
import tempfile
import time
import unittest
import urllib.parse

import harness
from harness import Node, key_path, show

MAX_VALUE = 1000


def parse_status(raw):
    m = re.match(rb"HTTP/\d\.\d (\d{3})", raw or b"")
    return int(m.group(1)) if m else None


def read_response(sock, deadline, head=False):
    """Read one response (or until close / deadline); returns the raw bytes."""
    buf = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, OSError):
            break
        if not chunk:
            break
        buf += chunk
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            status = parse_status(buf)
            if head or status in (204, 304) or (status is not None and 100 <= status < 200):
                break
            m = re.search(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*\r?$", buf[:end])
            if m and len(buf) - end - 4 >= int(m.group(1)):
                break
    return buf


def split_response(raw):
    """(status, headers_lowercase, body_bytes) of a raw response with a Content-Length."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return parse_status(raw), headers, body


class BadInputTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.node = Node(name="badinput", extra_args=["--max-value-bytes", str(MAX_VALUE)])
        cls.addClassCleanup(cls.node.cleanup)
        cls.node.start()
        cls.deaths = []
        cls.last_test = None

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        if cls.deaths:
            raise AssertionError("the shared node died and was restarted: " + "; ".join(cls.deaths))

    def setUp(self):
        # A test that kills the shared node fails by itself; revive the node so
        # that one crash does not turn every later test into an error.
        if not self.node.running():
            rc = self.node.proc.poll()
            type(self).deaths.append(f"exit code {rc} after {self.last_test}")
            print(f"\nringkvd died (exit code {rc}) after {self.last_test}; restarting\n"
                  f"{self.node.log_tail(20)}", file=sys.stderr)
            self.node.start()
        type(self).last_test = self.id()

    # -- helpers ----------------------------------------------------------

    def raw(self, method, path, body=None, headers=None):
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        st, hd, data = self.node.request(method, path, body, hdrs)
        return st, hd, data

    def assertError(self, resp, status, codes, what):
        """resp = (status, headers, body_bytes); codes: one code or a tuple of allowed codes."""
        st, hd, data = resp
        if isinstance(status, int):
            status = (status,)
        if isinstance(codes, str):
            codes = (codes,)
        msg = f"{what}: expected {status} {codes}, got {show(st, data, hd)}"
        self.assertIn(st, status, msg)
        try:
            body = json.loads(data)
        except ValueError:
            self.fail(f"{what}: error body is not JSON: {msg}")
        self.assertIsInstance(body, dict, msg)
        self.assertIsInstance(body.get("error"), str, f"{what}: no 'error' message: {msg}")
        self.assertIn(body.get("code"), codes, msg)
        self.assertEqual(hd.get("content-type", "").split(";")[0].strip(), "application/json",
                         f"{what}: error Content-Type: {msg}")
        return body

    def put_json(self, path, obj, headers=None):
        return self.raw("PUT", path, harness.dumps(obj), headers)

    def assertAbsent(self, path, what):
        st, hd, data = self.node.request("GET", path)
        self.assertEqual(st, 404, f"{what}: a rejected write was stored: {show(st, data)}")

    # -- exact cases ------------------------------------------------------

    def test_malformed_json_is_bad_json(self):
        bodies = [b'{"value": ', b"not json", b'{"value": 1,}', b"{'value': 1}",
                  b'{"value": 1} trailing', b'{"value": tru}', b'{"value": 1}}',
                  b'{"value": [1, 2}', b'{"value": "unterminated}', b"\x00\x01\x02",
                  b'{"value": 01}', b'{"value": NaN}', b'{"value": .5}']
        for i, b in enumerate(bodies):
            path = key_path("badjson", f"k{i}")
            self.assertError(self.raw("PUT", path, b), 400, "bad_json", f"PUT body {b!r}")
            self.assertError(self.raw("POST", path, b), 400, "bad_json", f"POST body {b!r}")
            self.assertAbsent(path, f"body {b!r}")

    def test_invalid_utf8_in_json_is_bad_json(self):
        # JSON text is UTF-8 (RFC 8259): a value with invalid bytes would be
        # echoed back as invalid JSON.
        for i, b in enumerate([b'{"value": "\xff"}', b'{"value": "a\xc3"}', b'{"value": "\xed\xa0\x80"}',
                               b'\xef\xbb\xbf\xff{"value": 1}']):
            path = key_path("badutf8", f"k{i}")
            self.assertError(self.raw("PUT", path, b), 400, "bad_json", f"PUT body {b!r}")
            self.assertAbsent(path, f"body {b!r}")

    def test_body_not_an_object(self):
        for i, b in enumerate([b"[1]", b'"value"', b"1", b"null", b"true", b""]):
            path = key_path("notobj", f"k{i}")
            self.assertError(self.raw("PUT", path, b), 400, ("bad_json", "missing_value"), f"PUT body {b!r}")
            self.assertAbsent(path, f"body {b!r}")

    def test_missing_value(self):
        for i, obj in enumerate([{}, {"context": None}, {"Value": 1}, {"val": 1, "ctx": "x"}]):
            path = key_path("noval", f"k{i}")
            self.assertError(self.put_json(path, obj), 400, "missing_value", f"PUT {obj!r}")
            self.assertAbsent(path, f"body {obj!r}")
        # null is a value, not a missing one.
        st, hd, data = self.put_json(key_path("noval", "null"), {"value": None})
        self.assertEqual(st, 201, f"value null must be accepted: {show(st, data)}")

    def test_invalid_table_names(self):
        bad = ["bad!name", "a" * 65, "bad%20name", "t%C3%A9", "a*b", "bad%2Fname", "a:b", "%ff", "a%00b"]
        for t in bad:
            what = f"table {t!r}"
            self.assertError(self.put_json(f"/{t}/key/k", {"value": 1}), 400, "invalid_table", "PUT " + what)
            self.assertError(self.raw("GET", f"/{t}/key/k"), 400, "invalid_table", "GET " + what)
            self.assertError(self.raw("DELETE", f"/{t}/key/k"), 400, "invalid_table", "DELETE " + what)
            self.assertError(self.raw("GET", f"/{t}/keys"), 400, "invalid_table", "GET keys " + what)
            self.assertError(self.raw("POST", f"/{t}/keys", b'["k"]'), 400, "invalid_table",
                             "POST keys " + what)
            self.assertError(self.raw("GET", f"/{t}/store"), 400, "invalid_table", "GET store " + what)
        for t in ("a" * 64, "A-z_0.9", "x"):
            st, hd, data = self.put_json(f"/{t}/key/k", {"value": 1})
            self.assertIn(st, (200, 201), f"valid table {t!r}: {show(st, data)}")

    def test_empty_key(self):
        for method, body in (("PUT", b'{"value": 1}'), ("GET", None), ("DELETE", None)):
            self.assertError(self.raw(method, "/emptykey/key/", body), (400, 404), ("invalid_key", "no_route"),
                             f"{method} /emptykey/key/")
            st, hd, data = self.raw(method, "/emptykey/key/", body)
            code = json.loads(data)["code"]
            self.assertEqual(code, {400: "invalid_key", 404: "no_route"}[st], show(st, data))
        self.assertError(self.raw("GET", "/key/"), (400, 404), ("invalid_key", "no_route"), "GET /key/")

    def test_key_length_is_counted_in_bytes(self):
        ok = ["a" * 1024, "\u00e9" * 512, "\u20ac" * 341 + "a"]  # 1024 bytes each
        too_long = ["a" * 1025, "\u00e9" * 512 + "a", "\u20ac" * 342]  # 1025 / 1025 / 1026 bytes
        for k in ok:
            self.assertEqual(len(k.encode()), 1024)
            st, hd, data = self.put_json(key_path("keylen", k), {"value": len(k)})
            self.assertEqual(st, 201, f"PUT a 1024-byte key ({len(k)} chars): {show(st, data)}")
            st, hd, data = self.raw("GET", key_path("keylen", k))
            self.assertEqual(st, 200, f"GET a 1024-byte key: {show(st, data)}")
            self.assertEqual(json.loads(data)["value"], len(k))
        for k in too_long:
            n = len(k.encode())
            self.assertError(self.put_json(key_path("keylen", k), {"value": 1}), 400, "invalid_key",
                             f"PUT a {n}-byte key")
            self.assertError(self.raw("GET", key_path("keylen", k)), 400, "invalid_key", f"GET a {n}-byte key")
            self.assertError(self.raw("DELETE", key_path("keylen", k)), 400, "invalid_key",
                             f"DELETE a {n}-byte key")
        st, hd, data = self.raw("GET", "/keylen/keys?limit=100")
        keys = json.loads(data)["keys"]
        self.assertEqual(sorted(keys), sorted(ok), "only the valid keys were stored")

    def test_key_with_invalid_utf8_or_nul(self):
        for enc in ("%ff", "a%ffb", "%C0%AF", "%ED%A0%80", "%F4%90%80%80", "%C3", "%80", "%00", "a%00b"):
            path = f"/badkey/key/{enc}"
            self.assertError(self.put_json(path, {"value": 1}), 400, "invalid_key", f"PUT key {enc}")
            self.assertError(self.raw("GET", path), 400, "invalid_key", f"GET key {enc}")
            self.assertError(self.raw("DELETE", path), 400, "invalid_key", f"DELETE key {enc}")
        st, hd, data = self.raw("GET", "/badkey/keys")
        self.assertEqual(json.loads(data)["keys"], [], f"invalid keys were stored: {show(st, data)}")

    def test_malformed_percent_encoding_in_key(self):
        for enc in ("%", "a%", "%g0", "%2", "a%zz"):
            self.assertError(self.put_json(f"/badpct/key/{enc}", {"value": 1}), 400, "invalid_key",
                             f"PUT key {enc!r}")
            self.assertError(self.raw("GET", f"/badpct/key/{enc}"), 400, "invalid_key", f"GET key {enc!r}")

    def test_batch_get_bad_bodies(self):
        self.assertError(self.raw("POST", "/batchbad/keys", b"not json"), 400, "bad_json", "POST keys junk")
        self.assertError(self.raw("POST", "/batchbad/keys", b'["a", '), 400, "bad_json", "POST keys truncated")
        for b in (b'{"keys": ["a"]}', b'"a"', b"1", b'[1, 2]', b'[["a"]]', b"[null]"):
            st, hd, data = self.raw("POST", "/batchbad/keys", b)
            self.assertEqual(st, 400, f"POST keys {b!r}: {show(st, data, hd)}")
            body = json.loads(data)
            self.assertIn(body.get("code"), ("bad_json", "bad_param", "invalid_key"), show(st, data))

    def test_value_over_the_limit_is_413(self):
        # Compact JSON text of the value: a string of n x's is n + 2 bytes.
        st, hd, data = self.put_json(key_path("limit", "exact"), {"value": "x" * (MAX_VALUE - 2)})
        self.assertEqual(st, 201, f"a value of exactly --max-value-bytes: {show(st, data)}")
        self.assertError(self.put_json(key_path("limit", "one-over"), {"value": "x" * (MAX_VALUE - 1)}),
                         413, "too_large", "value one byte over the limit")
        self.assertAbsent(key_path("limit", "one-over"), "one-over")
        self.assertError(self.put_json(key_path("limit", "big"), {"value": "y" * 2000}), 413, "too_large",
                         "2000-byte value")
        self.assertAbsent(key_path("limit", "big"), "2000-byte value")
        obj = {f"field{i}": i for i in range(200)}
        self.assertError(self.put_json(key_path("limit", "obj"), {"value": obj}), 413, "too_large",
                         "large object value")
        # An over-size update must not replace the stored value.
        st, hd, data = self.put_json(key_path("limit", "exact"), {"value": "z" * 5000})
        self.assertEqual(st, 413, show(st, data))
        st, hd, data = self.raw("GET", key_path("limit", "exact"))
        self.assertEqual(json.loads(data)["value"], "x" * (MAX_VALUE - 2))

    def test_huge_body_is_413_and_node_survives(self):
        total = 5 * 1024 * 1024
        prefix = b'{"value":"'
        body_iter_len = total
        head = (f"PUT {key_path('limit', 'huge')} HTTP/1.1\r\nHost: {self.node.http_addr}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {body_iter_len}\r\n\r\n").encode()
        chunk = b"x" * 65536
        s = socket.create_connection(("127.0.0.1", self.node.http_port), timeout=10)
        try:
            s.sendall(head + prefix)
            sent = len(prefix)
            deadline = time.monotonic() + 30
            while sent < total and time.monotonic() < deadline:
                r, w, _ = select.select([s], [s], [], 1.0)
                if r:
                    break  # the server answered early: stop sending
                if w:
                    try:
                        sent += s.send(chunk[: total - sent])
                    except OSError:
                        break
            raw = read_response(s, time.monotonic() + 10)
        finally:
            s.close()
        st, hd, data = split_response(raw)
        self.assertIsNotNone(st, f"no HTTP response to a 5 MB body (sent {sent} bytes): {raw[:500]!r}")
        self.assertError((st, hd, data), 413, "too_large", "5 MB body")
        self.assertEqual(self.node.request("GET", "/health")[0], 200)
        self.assertAbsent(key_path("limit", "huge"), "5 MB body")

    def test_unknown_routes_are_404_no_route(self):
        for method, path in (("GET", "/a/b/c/d/e"), ("GET", "/t/frob/k"), ("PUT", "/t/frob/k"),
                             ("GET", "/nope"), ("GET", "/t/keys/extra"), ("GET", "/t/store/extra"),
                             ("GET", "/healthz"), ("POST", "/t")):
            self.assertError(self.raw(method, path), 404, "no_route", f"{method} {path}")

    def test_wrong_method_is_405_with_allow(self):
        cases = [("PATCH", "/t/key/k", {"GET", "PUT", "POST", "DELETE"}),
                 ("PATCH", "/key/k", {"GET", "PUT", "POST", "DELETE"}),
                 ("PUT", "/health", {"GET"}),
                 ("DELETE", "/t/keys", {"GET", "POST"}),
                 ("PUT", "/t/store", {"GET"}),
                 ("POST", "/membership", {"GET"}),
                 ("DELETE", "/cluster", {"GET"}),
                 ("POST", "/metrics", {"GET"})]
        for method, path, must_allow in cases:
            resp = self.raw(method, path)
            self.assertError(resp, 405, "method_not_allowed", f"{method} {path}")
            allow = {m.strip().upper() for m in resp[1].get("allow", "").split(",") if m.strip()}
            self.assertTrue(must_allow <= allow,
                            f"{method} {path}: Allow {resp[1].get('allow')!r} lacks {must_allow - allow}")
            self.assertNotIn(method, allow, f"{method} {path}: Allow lists the refused method")

    def test_garbage_context_is_bad_context(self):
        path = key_path("ctx", "k")
        st, hd, data = self.put_json(path, {"value": "orig"})
        self.assertEqual(st, 201, show(st, data))
        for ctx in ("!!!not base64!!!", "%%%", "a b c", "\u00e9\u00e9", "===="):
            self.assertError(self.put_json(path, {"value": "new", "context": ctx}), 400, "bad_context",
                             f"PUT context {ctx!r}")
            self.assertError(self.raw("DELETE", path, harness.dumps({"context": ctx})), 400, "bad_context",
                             f"DELETE context {ctx!r}")
        for ctx in (12345, ["a"], {"c": 1}, True):
            self.assertError(self.put_json(path, {"value": "new", "context": ctx}), 400,
                             ("bad_context", "bad_json"), f"PUT context {ctx!r}")
        st, hd, data = self.raw("GET", path)
        self.assertEqual(json.loads(data)["value"], "orig", f"a rejected write changed the value: {show(st, data)}")

    def test_bad_json_in_delete_body(self):
        path = key_path("delbad", "k")
        self.assertEqual(self.put_json(path, {"value": 1})[0], 201)
        self.assertError(self.raw("DELETE", path, b'{"context": '), 400, "bad_json", "DELETE junk body")
        self.assertEqual(self.raw("GET", path)[0], 200, "a rejected DELETE deleted the key")

    def test_deeply_nested_json_does_not_crash(self):
        # Found by the fuzz phase (a worker-thread stack is small: a recursive
        # parser must cap the depth before it recurses). Any 4xx is fine here;
        # a dead node is not. Own node, so a crash stays in this test.
        with Node(name="deep", extra_args=["--max-value-bytes", str(MAX_VALUE)]) as node:
            self._deep_json(node)

    def _deep_json(self, node):
        for depth in (128, 129, 999, 1000, 1001, 100000):
            arr = b"[" * depth + b"]" * depth
            cases = [("POST", "/deep/keys", arr),
                     ("PUT", key_path("deep", f"k{depth}"), b'{"value":' + arr + b"}"),
                     ("POST", key_path("deep", f"k{depth}"), b'{"value":' + b"[" * depth + b"}"),
                     ("DELETE", key_path("deep", "k"), b'{"context":' + arr + b"}")]
            for method, path, body in cases:
                what = f"{method} {path} with JSON nested {depth} deep"
                try:
                    st, hd, data = node.request(method, path, body, {"Content-Type": "application/json"})
                except (OSError, harness.http.client.HTTPException) as e:
                    st, hd, data = None, {}, repr(e).encode()
                try:
                    healthy = node.request("GET", "/health", timeout=2)[0] == 200
                except OSError:
                    healthy = False
                self.assertTrue(healthy and node.running(),
                                f"{what} killed the node (exit code {node.proc.poll()})\n"
                                f"{node.log_tail(20)}")
                self.assertIsNotNone(st, f"{what}: no response ({data!r})")
                self.assertTrue(400 <= st < 500 or st in (200, 201), f"{what}: {show(st, data, hd)}")

    def test_no_path_traversal(self):
        for path in ("/ui/../../../../../../etc/passwd", "/ui/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                     "/ui/..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd", "/%2e%2e/%2e%2e/etc/passwd"):
            st, hd, data = self.node.request("GET", path)
            self.assertNotIn(b"root:", data, f"GET {path} served /etc/passwd")

    # -- fuzz ---------------------------------------------------------------
    # Named zz so it runs last: a crash here cannot take the exact cases with it.

    def test_zz_fuzz_then_known_keys_intact(self):
        seed = int(os.environ.get("RINGKV_TEST_SEED") or random.SystemRandom().randrange(2 ** 32))
        count = int(os.environ.get("RINGKV_FUZZ_COUNT", "3000"))
        first, last = 0, count
        if os.environ.get("RINGKV_FUZZ_ONLY"):
            a, _, b = os.environ["RINGKV_FUZZ_ONLY"].partition(":")
            first, last = int(a), int(b or a) + (0 if b else 1)
        print(f"\nfuzz: seed {seed} (replay with RINGKV_TEST_SEED={seed}), requests {first}..{last - 1}",
              file=sys.stderr)

        # 1. Known keys, written before the storm.
        known = {}
        with self.node.client() as c:
            krng = random.Random(seed ^ 0x5EED)
            for i in range(200):
                key = f"known-{i}-" + random_unicode(krng, krng.randint(0, 8))
                value = random_json(krng, depth=3)
                st, body, _ = c.json("PUT", key_path(KNOWN_TABLE, key), {"value": value})
                self.assertIn(st, (200, 201), f"PUT known key {key!r}: {show(st, body)}")
                known[key] = (value, body["context"])

        # 2. The storm, in batches so a dead node is noticed early.
        statuses = collections.Counter()
        server_errors = []
        deadline = time.monotonic() + 50
        port = self.node.http_port
        sent = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for batch_start in range(first, last, 200):
                if time.monotonic() > deadline:
                    print(f"fuzz: time budget reached after {sent} requests", file=sys.stderr)
                    break
                idx = range(batch_start, min(batch_start + 200, last))
                for i, (st, req) in zip(idx, pool.map(lambda i: fuzz_one(port, seed, i), idx)):
                    statuses[st] += 1
                    # 501 (unknown method) and 505 (HTTP version) are proper answers.
                    if st is not None and st >= 500 and st not in (501, 503, 505):
                        server_errors.append((i, st, req[:300]))
                sent += len(idx)
                if not self.node.running():
                    path = dump_batch(seed, idx)
                    self.fail(f"ringkvd died during fuzz requests {idx.start}..{idx.stop - 1} "
                              f"(seed {seed}, requests saved to {path}); exit code "
                              f"{self.node.proc.returncode}\n--- log tail ---\n{self.node.log_tail()}")
        print(f"fuzz: {sent} requests, statuses {dict(sorted(statuses.items(), key=str))}", file=sys.stderr)
        for i, st, req in server_errors[:10]:
            print(f"fuzz: WARNING request {i} got {st} (malformed input should be 4xx): {req!r}",
                  file=sys.stderr)

        # 3. The node is alive, healthy, and every known key is intact.
        self.assertTrue(self.node.running(), f"ringkvd exited (seed {seed})\n{self.node.log_tail()}")
        harness.wait_for(lambda: self._healthy(), 10, what=f"/health after the fuzz (seed {seed})")
        bad = []
        with self.node.client() as c:
            for key, (value, ctx) in known.items():
                st, body, _ = c.json("GET", key_path(KNOWN_TABLE, key), retry=True)
                if st != 200 or not harness.json_equal(body.get("value"), value) or body.get("context") != ctx:
                    bad.append(f"{key!r}: wrote {value!r} ctx {ctx}, read {show(st, body)}")
        self.assertEqual(bad, [], f"known keys changed by the fuzz (seed {seed}):\n" + "\n".join(bad[:10]))
        log = self.node.log_text()
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "stack smashing"):
            self.assertNotIn(marker, log, f"sanitizer report in the log (seed {seed})\n{self.node.log_tail(80)}")
        self.assertTrue(self.node.running(), f"ringkvd exited (seed {seed})\n{self.node.log_tail()}")

    def _healthy(self):
        try:
            return self.node.request("GET", "/health", timeout=2)[0] == 200
        except OSError:
            return False


# ---------------------------------------------------------------------------
# Fuzz request generation. Request i of a seed is a pure function of (seed, i).

KNOWN_TABLE = "fuzzknown"
FUZZ_TABLES = ["fz", "fz2", "default", "_users", "_x", "bad!name", "a" * 64, "a" * 65, "", "%", "%ff",
               "t%2Fx", "%2e%2e", "..", "x" * 300]
METHODS = ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "PROPFIND",
           "get", "", "G\x00ET", "X" * 300, "PUT PUT"]
QUERY_BITS = ["r=0", "r=1", "r=2", "r=99999999999999999999", "w=abc", "w=1", "w=-1", "limit=-1", "limit=0",
              "limit=99999999", "limit=1", "after=%", "after=%ff", "after=", "siblings=all", "local=1",
              "timeout_ms=0", "timeout_ms=-1", "timeout_ms=99999999999999", "timeout_ms=1", "&&&", "=",
              "a=b=c", "%" * 10, "r", "w=", "siblings=all&siblings=none", "r=1&r=2", "%00=%00"]


def random_unicode(rng, n):
    alphabet = "abcxyz019 -_/.%+?#&=\u00e9\u00fc\u4e2d\u0416\U0001f600\u2603\t\\\"'"
    return "".join(rng.choice(alphabet) for _ in range(n))


def random_json(rng, depth=2):
    kind = rng.randrange(8 if depth > 0 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.randint(-2 ** 53, 2 ** 53)
    if kind == 3:
        return rng.choice([0.5, -1.25, 3.0e10, 1e-5, 123.456])
    if kind in (4, 5):
        return random_unicode(rng, rng.randint(0, 20))
    if kind == 6:
        return [random_json(rng, depth - 1) for _ in range(rng.randint(0, 4))]
    return {random_unicode(rng, rng.randint(0, 6)): random_json(rng, depth - 1) for _ in range(rng.randint(0, 4))}


def junk_bytes(rng, n):
    return bytes(rng.randrange(256) for _ in range(n))


def fuzz_key(rng):
    c = rng.randrange(14)
    if c == 0:
        return f"k{rng.randrange(50)}"
    if c == 1:
        return rng.choice(["%", "%%", "%g0", "%2", "%ff", "%00", "%C0%AF", "%ED%A0%80", "%F4%90%80%80"])
    if c == 2:
        return "a" * rng.choice([1023, 1024, 1025, 5000, 70000])
    if c == 3:
        return urllib.parse.quote(junk_bytes(rng, rng.randint(1, 40)), safe="")
    if c == 4:
        return urllib.parse.quote(random_unicode(rng, rng.randint(1, 30)), safe="")
    if c == 5:
        return rng.choice(["..", ".", "", "a/b/c", "%2F", "%2e%2e", "%2F%2F%2F", "key/"])
    if c == 6:
        return random_unicode(rng, rng.randint(1, 20)).replace(" ", "%20")  # raw, partly invalid
    if c == 7:
        return "%" + junk_bytes(rng, 2).hex()
    if c == 8:
        return junk_bytes(rng, rng.randint(1, 10)).decode("latin-1")  # raw binary in the path
    return f"k{rng.randrange(50)}"


def fuzz_path(rng):
    t = rng.choice(FUZZ_TABLES) if rng.random() < 0.8 else urllib.parse.quote(random_unicode(rng, 5), safe="")
    k = fuzz_key(rng)
    c = rng.randrange(20)
    if c < 7:
        p = f"/{t}/key/{k}"
    elif c < 9:
        p = f"/key/{k}"
    elif c < 11:
        p = f"/{t}/keys"
    elif c == 11:
        p = f"/{t}/store"
    elif c == 12:
        p = rng.choice(["/health", "/metrics", "/cluster", "/membership", f"/{KNOWN_TABLE}/keys",
                        f"/{KNOWN_TABLE}/store"])
    elif c == 13:
        p = rng.choice(["/", "//", "*", "http://127.0.0.1/health", "/%", "/..%2F..%2Fetc/passwd",
                        "/ui/../../etc/passwd", "/\x00", "", "/" + "%" * 50])
    elif c == 14:
        p = "/" + "a/" * rng.randint(1, 3000)
    elif c == 15:
        p = "/" + "x" * rng.choice([100, 5000, 20000, 100000])
    elif c == 16:
        p = "/" + junk_bytes(rng, rng.randint(1, 50)).decode("latin-1")
    elif c == 17:
        p = f"/{t}/subscribe/{k}"
    else:
        p = f"/{t}/key/{k}/{fuzz_key(rng)}"
    if rng.random() < 0.35:
        p += "?" + "&".join(rng.choice(QUERY_BITS) for _ in range(rng.randint(1, 4)))
    return p


def fuzz_body(rng):
    c = rng.randrange(16)
    if c < 3:
        return harness.dumps({"value": random_json(rng)})
    if c == 3:
        return harness.dumps({"value": random_json(rng), "context": random_unicode(rng, rng.randint(0, 40))})
    if c == 4:
        return b""
    if c == 5:
        return junk_bytes(rng, rng.randint(1, 5000))
    if c == 6:
        full = harness.dumps({"value": random_json(rng, 3)})
        return full[: rng.randint(0, len(full))]
    if c == 7:
        n = rng.choice([100, 999, 1000, 1001, 100000])
        return b'{"value":' + b"[" * n + b"]" * n + b"}"
    if c == 8:
        return b'{"value":' + b"[" * rng.choice([1000, 100000]) + b"}"
    if c == 9:
        return rng.choice([b'{"value": 1e999999}', b'{"value": -}', b'{"value": "\\ud800"}',
                           b'{"value": "\xff\xfe"}', b'{"value": "a\x00b"}', b'{"value": 1, "value": 2}',
                           b'{"value": "\\u0000"}', b'{"context": null, "value": {}}'])
    if c == 10:
        return harness.dumps({"value": "x" * rng.choice([990, 1000, 2000, 100000])})
    if c == 11:
        keys = [rng.choice(["k1", "", "known-1-", random_unicode(rng, 5), "a" * 1025]) for _ in range(rng.randint(0, 20))]
        return harness.dumps(keys)
    if c == 12:
        return harness.dumps([f"k{i}" for i in range(rng.choice([999, 1000, 1001, 5000]))])
    if c == 13:
        return harness.dumps([rng.randrange(10), None, {"a": 1}, ["x"]])
    if c == 14:
        return b'{"value":"' + b"\\" * rng.randint(1, 9) + b'"}'
    return harness.dumps({"value": random_json(rng), "context": "AAAA" * rng.randint(0, 100)})


def fuzz_request(rng):
    """-> (bytes, expect_answer). expect_answer False: the request is cut or lies."""
    if rng.random() < 0.05:
        return rng.choice([b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                           b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + junk_bytes(rng, 200),
                           junk_bytes(rng, rng.randint(1, 2000)), b"\r\n\r\n", b"GET /health\r\n",
                           b"\x00" * 100]), False
    method = rng.choice(METHODS) if rng.random() < 0.3 else rng.choice(["GET", "PUT", "POST", "DELETE"])
    path = fuzz_path(rng)
    version = rng.choice(["HTTP/1.1"] * 8 + ["HTTP/1.0", "HTTP/2.0", "HTTP/9.9", "HTTP/1.1 extra", "", "http/1.1"])
    body = fuzz_body(rng) if method not in ("GET", "HEAD") or rng.random() < 0.2 else b""
    headers = []
    if rng.random() < 0.9:
        headers.append(b"Host: 127.0.0.1")
    honest = True
    cl = rng.randrange(12)
    if cl < 6:
        headers.append(b"Content-Length: %d" % len(body))
    elif cl == 6:
        headers.append(b"Content-Length: %d" % (len(body) + rng.randint(1, 100000)))
        honest = False
    elif cl == 7:
        headers.append(b"Content-Length: %d" % max(0, len(body) - rng.randint(1, 50)))
    elif cl == 8:
        headers.append(rng.choice([b"Content-Length: -1", b"Content-Length: abc", b"Content-Length: ",
                                   b"Content-Length: 99999999999999999999", b"Content-Length: 9223372036854775807",
                                   b"Content-Length: 1, 2", b"Content-Length: 0x10", b"Content-Length: +5"]))
        honest = False
    elif cl == 9:
        headers += [b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + 7)]
        honest = False
    elif cl == 10:
        headers.append(b"Transfer-Encoding: chunked")
        if rng.random() < 0.7:
            body = (b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
        else:
            body = rng.choice([b"zz\r\nabc\r\n", b"ffffffffffffffff\r\nabc", b"5\r\nab", b"-1\r\n\r\n"]) + body
            honest = False
    # cl == 11: no framing header at all
    if rng.random() < 0.6:
        headers.append(rng.choice([b"Content-Type: application/json", b"Content-Type: text/plain",
                                   b"Content-Type: application/json; charset=latin1", b"Content-Type: \xff"]))
    for _ in range(rng.choice([0, 0, 0, 1, 2, 5, 200])):
        headers.append(rng.choice([
            b"If-Match: " + random_unicode(rng, rng.randint(0, 40)).encode(),
            b'If-Match: "' + b"A" * rng.randint(0, 200) + b'"',
            b"If-None-Match: *", b"If-None-Match: " + junk_bytes(rng, 5).replace(b"\r", b"").replace(b"\n", b""),
            b"Expect: 100-continue", b"Connection: close", b"Connection: keep-alive", b"Connection: \x00",
            b"X-Junk: " + b"j" * rng.choice([10, 8000, 70000]),
            b"NoColonHeader", b" folded continuation", b": empty-name", b"X-Nul: a\x00b",
            b"X-Bin: " + junk_bytes(rng, 20).replace(b"\n", b""), b"Authorization: Bearer " + b"t" * 500,
            b"Range: bytes=0-1", b"Accept-Encoding: gzip",
        ]))
    rng.shuffle(headers)
    eol = b"\r\n" if rng.random() < 0.9 else b"\n"
    line = to_bytes(method) + b" " + to_bytes(path)
    if version:
        line += b" " + version.encode()
    data = eol.join([line] + headers) + eol + eol + body
    cut = rng.random()
    if cut < 0.15:
        # Cut mid-headers (or anywhere), then close.
        data = data[: rng.randint(0, len(data))]
        honest = False
    elif cut < 0.2:
        data = data + data  # pipelined twice
    return data, honest


def to_bytes(s):
    try:
        return s.encode("latin-1")  # junk bytes decoded as latin-1 go out as they were
    except UnicodeEncodeError:
        return s.encode("utf-8")  # raw (unencoded) unicode in a path


def fuzz_one(port, seed, i):
    """Send request i of the seed; return (status or None, request bytes)."""
    rng = random.Random(seed * 1000003 + i)
    data, honest = fuzz_request(rng)
    wait = 1.0 if honest else rng.choice([0.0, 0.05, 0.2])
    status = None
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        return None, data
    try:
        s.settimeout(2)
        try:
            s.sendall(data)
        except OSError:
            pass
        if rng.random() < 0.3:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if wait > 0:
            head = data.startswith(b"HEAD ")
            raw = read_response(s, time.monotonic() + wait, head=head)
            status = parse_status(raw)
    finally:
        s.close()
    return status, data


def dump_batch(seed, idx):
    fd, path = tempfile.mkstemp(prefix=f"ringkv-fuzz-{seed}-{idx.start}-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        for i in idx:
            data, honest = fuzz_request(random.Random(seed * 1000003 + i))
            f.write(f"--- request {i} (honest={honest}, {len(data)} bytes)\n{data[:4000]!r}\n")
    return path


if __name__ == "__main__":
    print(f"ringkvd: {harness.RINGKVD}", file=sys.stderr)
    unittest.main()
