"""The HTTP API of one ringkvd node, checked against docs/api.md.

One node serves the whole class; every test writes to its own table (or its
own keys), so the tests do not depend on each other or on their order.
"""

import itertools
import re
import sys
import time
import unittest
import urllib.parse

import harness
from harness import Node, json_equal, key_path, show

_counter = itertools.count()


def unique_table(prefix="t"):
    return f"{prefix}{next(_counter)}_{int(time.time() * 1000) % 1000000}"


def qs(**params):
    return "?" + urllib.parse.urlencode(params)


class ApiTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.node = Node(name="api")
        cls.addClassCleanup(cls.node.cleanup)
        cls.node.start()

    @classmethod
    def tearDownClass(cls):
        # A clean SIGTERM must exit 0 (stop() asserts it).
        cls.node.stop()

    # -- helpers ----------------------------------------------------------

    def put(self, table, key, value, context=None, headers=None, query="", method="PUT"):
        body = {"value": value}
        if context is not None:
            body["context"] = context
        return self.node.json(method, key_path(table, key) + query, body, headers)

    def get(self, table, key, query="", headers=None):
        return self.node.json("GET", key_path(table, key) + query, headers=headers)

    def delete(self, table, key, context=None, headers=None, query=""):
        if context is None:
            return self.node.json("DELETE", key_path(table, key) + query, headers=headers)
        return self.node.json("DELETE", key_path(table, key) + query, {"context": context}, headers)

    def assertStatus(self, resp, expected, what=""):
        status, body, headers = resp
        if isinstance(expected, int):
            expected = (expected,)
        self.assertIn(status, expected,
                      f"{what}: expected status {expected}, got {show(status, body, headers)}")

    def assertError(self, resp, status, code, what=""):
        st, body, headers = resp
        self.assertEqual(st, status, f"{what}: expected {status} {code}, got {show(st, body, headers)}")
        self.assertIsInstance(body, dict, f"{what}: error body is not a JSON object: {show(st, body)}")
        self.assertIsInstance(body.get("error"), str, f"{what}: no 'error' string: {show(st, body)}")
        self.assertEqual(body.get("code"), code, f"{what}: wrong code: {show(st, body)}")

    def assertRecord(self, resp, value, siblings=1, what=""):
        """A 200/201 record body: value, context, timestamp, owner, siblings + ETag."""
        status, body, headers = resp
        self.assertIsInstance(body, dict, f"{what}: {show(status, body)}")
        for field in ("value", "context", "timestamp", "owner", "siblings"):
            self.assertIn(field, body, f"{what}: field {field!r} missing: {show(status, body)}")
        self.assertTrue(json_equal(body["value"], value),
                        f"{what}: value {body['value']!r} != {value!r}: {show(status, body)}")
        self.assertIsInstance(body["context"], str, f"{what}: {show(status, body)}")
        self.assertTrue(body["context"], f"{what}: empty context: {show(status, body)}")
        self.assertIsInstance(body["timestamp"], int, f"{what}: {show(status, body)}")
        self.assertNotIsInstance(body["timestamp"], bool)
        now_ms = time.time() * 1000
        self.assertLess(abs(body["timestamp"] - now_ms), 10 * 60 * 1000,
                        f"{what}: timestamp is not wall-clock ms: {show(status, body)}")
        self.assertIsInstance(body["owner"], str, f"{what}: {show(status, body)}")
        self.assertEqual(body["siblings"], siblings, f"{what}: siblings: {show(status, body)}")
        self.assertEqual(headers.get("etag"), '"' + body["context"] + '"',
                         f"{what}: ETag must carry the context: {show(status, body, headers)}")
        return body

    def make_siblings(self, table, key, a, b):
        """Write v0, then a and b both with v0's context -> two live siblings."""
        r0 = self.put(table, key, {"v": 0})
        self.assertStatus(r0, 201, "PUT v0")
        ctx0 = r0[1]["context"]
        ra = self.put(table, key, a, context=ctx0)
        self.assertStatus(ra, 200, "PUT a with ctx0")
        self.assertEqual(ra[1]["siblings"], 1, f"PUT a replaces v0: {show(*ra)}")
        rb = self.put(table, key, b, context=ctx0)
        self.assertStatus(rb, 200, "PUT b with ctx0 (concurrent with a)")
        self.assertEqual(rb[1]["siblings"], 2,
                         f"PUT b with the same stale context must leave a as a sibling: {show(*rb)}")
        return ra[1], rb[1]

    # -- records ----------------------------------------------------------

    def test_put_creates_201_then_updates_200(self):
        t = unique_table()
        r1 = self.put(t, "k", {"n": 1})
        self.assertStatus(r1, 201, "first PUT")
        b1 = self.assertRecord(r1, {"n": 1}, what="first PUT")
        r2 = self.put(t, "k", {"n": 2}, context=b1["context"])
        self.assertStatus(r2, 200, "PUT with context over a live value")
        b2 = self.assertRecord(r2, {"n": 2}, what="second PUT")
        self.assertNotEqual(b1["context"], b2["context"], "context must change on write")
        self.assertGreaterEqual(b2["timestamp"], b1["timestamp"])
        r3 = self.put(t, "k", {"n": 3})
        self.assertStatus(r3, 200, "blind PUT over a live value")
        self.assertRecord(r3, {"n": 3}, what="blind PUT")

    def test_post_is_the_same_as_put(self):
        t = unique_table()
        r1 = self.put(t, "k", "first", method="POST")
        self.assertStatus(r1, 201, "POST new key")
        b1 = self.assertRecord(r1, "first", what="POST new key")
        r2 = self.put(t, "k", "second", context=b1["context"], method="POST")
        self.assertStatus(r2, 200, "POST existing key")
        self.assertRecord(self.get(t, "k"), "second", what="GET after POST")

    def test_get_returns_the_record_the_put_returned(self):
        t = unique_table()
        put = self.put(t, "k", [1, "two", {"three": 3}])
        self.assertStatus(put, 201)
        pb = put[1]
        got = self.get(t, "k")
        self.assertStatus(got, 200, "GET")
        gb = self.assertRecord(got, [1, "two", {"three": 3}], what="GET")
        self.assertEqual(gb["context"], pb["context"], f"GET context != PUT context: {pb} {gb}")
        self.assertEqual(gb["timestamp"], pb["timestamp"])
        self.assertEqual(gb["owner"], pb["owner"])
        self.assertEqual(got[2].get("content-type", "").split(";")[0].strip(), "application/json",
                         f"Content-Type: {got[2]}")
        # ?local=1 answers from this node's replica: the same record on one node.
        loc = self.get(t, "k", "?local=1")
        self.assertStatus(loc, 200, "GET ?local=1")
        self.assertRecord(loc, [1, "two", {"three": 3}], what="GET ?local=1")
        self.assertEqual(loc[1]["context"], pb["context"])

    def test_get_missing_key_is_404_not_found(self):
        t = unique_table()
        self.assertError(self.get(t, "never-written"), 404, "not_found", "GET missing key")

    def test_every_json_type_round_trips(self):
        t = unique_table()
        values = {
            "object": {"a": 1, "nested": {"b": [1, 2, {"c": None}], "e": {}}, "z": "last"},
            "empty_object": {},
            "array": [1, "two", 3.5, None, True, False, [], {}],
            "empty_array": [],
            "string": "plain",
            "empty_string": "",
            "unicode": "h\u00e9llo w\u00f6rld \u2603 \u4e2d\u6587 \U0001d11e \U0001f600",
            "escapes": "quote\" backslash\\ slash/ nl\n cr\r tab\t bell\u0007 del\u007f",
            "int": 42,
            "zero": 0,
            "negative": -17,
            "float": 3.5,
            "small": 1e-7,
            "big": 1.5e300,
            "tenth": 0.1,
            "max_safe_int": 2 ** 53,
            "neg_float": -0.25,
            "true": True,
            "false": False,
            "null": None,
            "deep": [[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]],
        }
        failures = []
        for name, value in values.items():
            put = self.put(t, name, value)
            if put[0] != 201 or not json_equal(put[1].get("value") if put[1] else None, value):
                failures.append(f"PUT {name}: sent {value!r}, got {show(*put)}")
                continue
            got = self.get(t, name)
            if got[0] != 200 or not json_equal(got[1].get("value") if got[1] else None, value):
                failures.append(f"GET {name}: wrote {value!r}, got {show(*got)}")
        self.assertEqual(failures, [], "\n".join(failures))

    def test_ascii_escaped_unicode_body_is_decoded(self):
        # The same string sent as \\uXXXX escapes (incl. a surrogate pair) and
        # as raw UTF-8 must be stored as the same value.
        t = unique_table()
        raw = b'{"value":"\\u00e9\\u2603\\ud834\\udd1e"}'
        st, hd, body = self.node.request("PUT", key_path(t, "esc"), raw,
                                         {"Content-Type": "application/json"})
        self.assertEqual(st, 201, show(st, body, hd))
        got = self.get(t, "esc")
        self.assertStatus(got, 200)
        self.assertEqual(got[1]["value"], "\u00e9\u2603\U0001d11e", show(*got))

    def test_string_with_nul_character_round_trips(self):
        # "\u0000" is a valid JSON string character; a C string copy loses it.
        t = unique_table()
        value = "before\u0000after"
        put = self.put(t, "nul", value)
        self.assertStatus(put, 201, "PUT a string with U+0000")
        got = self.get(t, "nul")
        self.assertStatus(got, 200)
        self.assertEqual(got[1]["value"], value, f"U+0000 inside a string lost: {show(*got)}")

    def test_default_table_alias(self):
        put = self.put(None, "alias-a", {"via": "/key"})
        self.assertStatus(put, (200, 201), "PUT /key/alias-a")
        got = self.get("default", "alias-a")
        self.assertStatus(got, 200, "GET /default/key/alias-a")
        self.assertRecord(got, {"via": "/key"}, what="GET /default/key")
        self.assertEqual(got[1]["context"], put[1]["context"])

        put2 = self.put("default", "alias-b", [2])
        self.assertStatus(put2, (200, 201), "PUT /default/key/alias-b")
        got2 = self.get(None, "alias-b")
        self.assertStatus(got2, 200, "GET /key/alias-b")
        self.assertRecord(got2, [2], what="GET /key")

        dl = self.delete(None, "alias-b")
        self.assertStatus(dl, 200, "DELETE /key/alias-b")
        self.assertError(self.get("default", "alias-b"), 404, "not_found", "GET after DELETE via /key")

    def test_url_encoded_keys(self):
        t = unique_table()
        keys = ["a/b", "with space", "\u00fcn\u00efc\u00f8d\u00e9 \u043a\u043b\u044e\u0447 \u952e",
                "100%", "a?b#c", "semi;colon", "a+b", "back\\slash", "..", ".", "\U0001f511",
                "tab\there", "'\"<>"]
        for i, k in enumerate(keys):
            self.assertStatus(self.put(t, k, {"i": i}), 201, f"PUT key {k!r}")
        for i, k in enumerate(keys):
            got = self.get(t, k)
            self.assertStatus(got, 200, f"GET key {k!r}")
            self.assertEqual(got[1]["value"], {"i": i}, f"key {k!r}: {show(*got)}")
        # A '+' in a path is a plus, not a space (paths are not form-encoded).
        st, body, hd = self.node.json("GET", f"/{t}/key/a+b")
        self.assertEqual(st, 200, f"GET /{t}/key/a+b (raw plus): {show(st, body)}")
        self.assertEqual(body["value"], {"i": keys.index("a+b")})
        self.assertError(self.node.json("GET", f"/{t}/key/with+space"), 404, "not_found",
                         "raw '+' must not decode to a space")
        # Mixed encodings of the same key reach the same record.
        st, body, _ = self.node.json("GET", f"/{t}/key/with%20space")
        self.assertEqual(st, 200, show(st, body))
        # The listing returns the decoded keys.
        st, body, _ = self.node.json("GET", f"/{t}/keys?limit=1000")
        self.assertEqual(st, 200, show(st, body))
        self.assertEqual(sorted(body["keys"]), sorted(keys), show(st, body))

    def test_delete_then_get_404_with_context(self):
        t = unique_table()
        put = self.put(t, "k", "v")
        self.assertStatus(put, 201)
        dl = self.delete(t, "k")
        self.assertStatus(dl, 200, "DELETE live key")
        self.assertIs(dl[1].get("deleted"), True, show(*dl))
        self.assertIsInstance(dl[1].get("context"), str, show(*dl))
        self.assertTrue(dl[1]["context"])
        got = self.get(t, "k")
        self.assertError(got, 404, "not_found", "GET deleted key")
        self.assertIsInstance(got[1].get("context"), str,
                              f"404 of a tombstoned key must carry a context: {show(*got)}")
        self.assertTrue(got[1]["context"])
        self.assertError(self.delete(t, "k"), 404, "not_found", "DELETE an already deleted key")
        self.assertError(self.delete(t, "never"), 404, "not_found", "DELETE a never-written key")
        self.assertError(self.get(t, "never"), 404, "not_found", "GET never-written key")

    def test_write_after_delete_with_the_404_context(self):
        t = unique_table()
        self.assertStatus(self.put(t, "k", "old"), 201)
        self.assertStatus(self.delete(t, "k"), 200)
        ctx = self.get(t, "k")[1]["context"]
        put = self.put(t, "k", "new", context=ctx)
        self.assertStatus(put, 201, "PUT with the tombstone's context (no live value before)")
        self.assertRecord(put, "new", what="PUT after delete")
        got = self.get(t, "k")
        self.assertStatus(got, 200)
        self.assertRecord(got, "new", what="GET after re-create")
        allv = self.get(t, "k", "?siblings=all")
        self.assertStatus(allv, 200, "siblings=all after resurrect with context: one sibling")

    def test_delete_with_context_in_body(self):
        t = unique_table()
        ctx = self.put(t, "k", 1)[1]["context"]
        dl = self.delete(t, "k", context=ctx)
        self.assertStatus(dl, 200, "DELETE with body context")
        self.assertError(self.get(t, "k"), 404, "not_found", "GET after DELETE with context")

    def test_concurrent_writes_become_siblings_and_resolve(self):
        t = unique_table()
        a, b = self.make_siblings(t, "k", {"who": "a"}, {"who": "b"})
        plain = self.get(t, "k")
        self.assertStatus(plain, 200, "plain GET of a key with siblings")
        pb = plain[1]
        self.assertEqual(pb["siblings"], 2, show(*plain))
        # Winner: latest timestamp, then actor, then counter. b was written
        # after a by the same node, so b wins.
        self.assertEqual(pb["value"], {"who": "b"}, f"winner should be the later write: {show(*plain)}")
        self.assertEqual(plain[2].get("etag"), '"' + pb["context"] + '"')

        allv = self.get(t, "k", "?siblings=all")
        st, body, hd = allv
        self.assertEqual(st, 300, f"?siblings=all with 2 live siblings: {show(*allv)}")
        self.assertIsInstance(body.get("siblings"), list, show(*allv))
        self.assertEqual(len(body["siblings"]), 2, show(*allv))
        vals = sorted(s["value"]["who"] for s in body["siblings"])
        self.assertEqual(vals, ["a", "b"], show(*allv))
        for s in body["siblings"]:
            self.assertIsInstance(s.get("timestamp"), int, show(*allv))
            self.assertIsInstance(s.get("owner"), str, show(*allv))
        self.assertIsInstance(body.get("context"), str, show(*allv))
        ts = {s["value"]["who"]: s["timestamp"] for s in body["siblings"]}
        self.assertEqual(ts["a"], a["timestamp"])
        self.assertEqual(ts["b"], b["timestamp"])

        # Writing with the 300's context resolves the siblings into one.
        res = self.put(t, "k", {"who": "merged"}, context=body["context"])
        self.assertStatus(res, 200, "PUT with the 300 context")
        self.assertRecord(res, {"who": "merged"}, siblings=1, what="resolving PUT")
        after = self.get(t, "k")
        self.assertStatus(after, 200)
        self.assertRecord(after, {"who": "merged"}, siblings=1, what="GET after resolve")
        one = self.get(t, "k", "?siblings=all")
        self.assertStatus(one, 200, "?siblings=all with a single sibling answers 200")
        self.assertRecord(one, {"who": "merged"}, siblings=1, what="siblings=all single")

    def test_plain_get_context_also_resolves_siblings(self):
        # The context of a plain GET has seen every sibling it counts.
        t = unique_table()
        self.make_siblings(t, "k", "a", "b")
        ctx = self.get(t, "k")[1]["context"]
        res = self.put(t, "k", "ab", context=ctx)
        self.assertStatus(res, 200)
        self.assertEqual(res[1]["siblings"], 1, show(*res))

    def test_blind_write_replaces_siblings(self):
        t = unique_table()
        self.make_siblings(t, "k", "a", "b")
        blind = self.put(t, "k", "blind")
        self.assertStatus(blind, 200, "blind PUT over siblings")
        self.assertRecord(blind, "blind", siblings=1, what="blind PUT")
        got = self.get(t, "k")
        self.assertRecord(got, "blind", siblings=1, what="GET after blind PUT")
        self.assertStatus(self.get(t, "k", "?siblings=all"), 200, "siblings=all after blind PUT")

    def test_delete_with_stale_context_keeps_concurrent_sibling(self):
        # A delete is a write: with a context it replaces exactly what the
        # context saw, so a version written concurrently survives.
        t = unique_table()
        ctx0 = self.put(t, "k", "v0")[1]["context"]
        self.assertStatus(self.put(t, "k", "concurrent", context=ctx0), 200)
        dl = self.delete(t, "k", context=ctx0)
        self.assertStatus(dl, 200, "DELETE with a stale context (key is live)")
        got = self.get(t, "k")
        self.assertStatus(got, 200, "the concurrent write must survive a stale-context delete")
        self.assertEqual(got[1]["value"], "concurrent", show(*got))

    def test_if_none_match_star(self):
        t = unique_table()
        inm = {"If-None-Match": "*"}
        r1 = self.put(t, "k", "first", headers=inm)
        self.assertStatus(r1, 201, "If-None-Match: * on a new key")
        r2 = self.put(t, "k", "second", headers=inm)
        self.assertError(r2, 412, "precondition_failed", "If-None-Match: * on an existing key")
        got = self.get(t, "k")
        self.assertEqual(got[1]["value"], "first", f"a failed conditional write changed the value: {show(*got)}")
        self.assertEqual(got[1]["context"], r1[1]["context"])
        # After a delete there is no live value: create-only succeeds again.
        self.assertStatus(self.delete(t, "k"), 200)
        r3 = self.put(t, "k", "third", headers=inm)
        self.assertStatus(r3, 201, "If-None-Match: * on a deleted key")

    def test_if_match(self):
        t = unique_table()
        c1 = self.put(t, "k", 1)[1]["context"]
        r2 = self.put(t, "k", 2, headers={"If-Match": f'"{c1}"'})
        self.assertStatus(r2, 200, "If-Match with the current context (quoted)")
        c2 = r2[1]["context"]
        r3 = self.put(t, "k", 3, headers={"If-Match": c1})
        self.assertError(r3, 412, "precondition_failed", "If-Match with a stale context")
        r3q = self.put(t, "k", 3, headers={"If-Match": f'"{c1}"'})
        self.assertError(r3q, 412, "precondition_failed", "If-Match with a stale quoted context")
        got = self.get(t, "k")
        self.assertEqual(got[1]["value"], 2, f"a failed If-Match write changed the value: {show(*got)}")
        self.assertEqual(got[1]["context"], c2)
        r4 = self.put(t, "k", 4, headers={"If-Match": c2})
        self.assertStatus(r4, 200, "If-Match with the current context (unquoted)")
        c4 = r4[1]["context"]
        # The ETag of a GET is usable as If-Match verbatim.
        etag = self.get(t, "k")[2]["etag"]
        r5 = self.put(t, "k", 5, headers={"If-Match": etag})
        self.assertStatus(r5, 200, "If-Match with the GET's ETag")
        # DELETE honours If-Match too.
        self.assertError(self.delete(t, "k", headers={"If-Match": c4}), 412,
                         "precondition_failed", "DELETE with a stale If-Match")
        self.assertStatus(self.get(t, "k"), 200, "a failed conditional DELETE deleted the key")
        self.assertStatus(self.delete(t, "k", headers={"If-Match": r5[1]["context"]}), 200,
                          "DELETE with the current If-Match")
        self.assertError(self.get(t, "k"), 404, "not_found", "GET after conditional DELETE")

    def test_if_match_fails_after_concurrent_sibling(self):
        t = unique_table()
        ctx0 = self.put(t, "k", "v0")[1]["context"]
        self.assertStatus(self.put(t, "k", "a", context=ctx0), 200)
        self.assertError(self.put(t, "k", "b", headers={"If-Match": ctx0}), 412,
                         "precondition_failed", "If-Match with a context the key has moved past")

    def test_etag_equals_context(self):
        t = unique_table()
        st, body, hd = self.put(t, "k", {"e": 1})
        self.assertEqual(hd.get("etag"), f'"{body["context"]}"', show(st, body, hd))
        st, body, hd = self.get(t, "k")
        self.assertEqual(hd.get("etag"), f'"{body["context"]}"', show(st, body, hd))

    # -- listing ----------------------------------------------------------

    def _walk_keys(self, t, limit):
        seen, pages, after = [], 0, None
        while True:
            path = f"/{t}/keys?limit={limit}"
            if after is not None:
                path += "&after=" + urllib.parse.quote(after, safe="")
            st, body, hd = self.node.json("GET", path)
            self.assertEqual(st, 200, f"GET {path}: {show(st, body)}")
            self.assertIsInstance(body.get("keys"), list, show(st, body))
            self.assertIn("next", body, show(st, body))
            self.assertLessEqual(len(body["keys"]), limit, f"page larger than limit: {path}")
            seen.extend(body["keys"])
            pages += 1
            self.assertLess(pages, 1000, "pagination does not terminate")
            if body["next"] is None:
                return seen, pages
            self.assertIsInstance(body["next"], str, show(st, body))
            self.assertTrue(body["keys"], f"empty page with a non-null next: {show(st, body)}")
            after = body["next"]

    def test_keys_pagination_walks_every_key_once(self):
        t = unique_table()
        keys = [f"key-{i:04d}" for i in range(250)]
        # Some keys need URL-encoding as `after`.
        keys += [f"odd/{i} \u00e9&x=1" for i in range(10)]
        with self.node.client() as c:
            for k in keys:
                st, body, _ = c.json("PUT", key_path(t, k), {"value": k})
                self.assertEqual(st, 201, f"PUT {k!r}: {show(st, body)}")
        seen, pages = self._walk_keys(t, 100)
        self.assertEqual(len(seen), len(set(seen)), f"duplicate keys across pages ({pages} pages)")
        self.assertEqual(set(seen), set(keys))
        self.assertGreaterEqual(pages, 3)
        # Ring order is stable: a second walk (other page size) gives the same order.
        seen2, _ = self._walk_keys(t, 7)
        self.assertEqual(seen2, seen, "key order differs between walks")
        # Default limit is 100.
        st, body, _ = self.node.json("GET", f"/{t}/keys")
        self.assertEqual(st, 200, show(st, body))
        self.assertLessEqual(len(body["keys"]), 100, "default limit is 100")
        self.assertIsNotNone(body["next"], "260 keys do not fit in one default page")
        # One page holding everything ends with next null.
        st, body, _ = self.node.json("GET", f"/{t}/keys?limit=10000")
        self.assertEqual(st, 200, show(st, body))
        self.assertEqual(body["keys"], seen)
        self.assertIsNone(body["next"])

    def test_keys_of_empty_table(self):
        st, body, _ = self.node.json("GET", f"/{unique_table()}/keys")
        self.assertEqual(st, 200, show(st, body))
        self.assertEqual(body, {"keys": [], "next": None})

    def test_keys_bad_limit_is_400(self):
        t = unique_table()
        self.assertStatus(self.put(t, "k", 1), 201)
        for limit in ("0", "10001", "-1", "abc", "10x"):
            self.assertError(self.node.json("GET", f"/{t}/keys?limit={limit}"), 400, "bad_param",
                             f"GET /keys?limit={limit}")

    def test_batch_get_in_request_order(self):
        t = unique_table()
        ctx = {}
        for k, v in (("k1", "one"), ("k3", {"three": 3}), ("gone", 0)):
            st, body, _ = self.put(t, k, v)
            self.assertEqual(st, 201)
            ctx[k] = body["context"]
        self.assertStatus(self.delete(t, "gone"), 200)
        req = ["k3", "k2", "k1", "gone", "k1"]
        st, body, _ = self.node.json("POST", f"/{t}/keys", req)
        self.assertEqual(st, 200, f"POST /{t}/keys: {show(st, body)}")
        res = body.get("results")
        self.assertIsInstance(res, list, show(st, body))
        self.assertEqual([r.get("key") for r in res], req, f"results not in request order: {show(st, body)}")
        expected_values = {"k1": "one", "k3": {"three": 3}}
        for r in res:
            if r["key"] in expected_values:
                self.assertEqual(r.get("value"), expected_values[r["key"]], show(st, body))
                self.assertEqual(r.get("context"), ctx[r["key"]], show(st, body))
                self.assertIsInstance(r.get("timestamp"), int, show(st, body))
                self.assertIsInstance(r.get("owner"), str, show(st, body))
                self.assertEqual(r.get("siblings"), 1, show(st, body))
            else:
                self.assertEqual(r.get("code"), "not_found", f"{r['key']}: {show(st, body)}")
                self.assertIsInstance(r.get("error"), str, show(st, body))
                self.assertNotIn("value", r, show(st, body))
        st, body, _ = self.node.json("POST", f"/{t}/keys", [])
        self.assertEqual((st, body), (200, {"results": []}), "batch get of no keys")

    def test_batch_get_over_1000_keys_is_rejected(self):
        t = unique_table()
        st, body, _ = self.node.json("POST", f"/{t}/keys", [f"k{i}" for i in range(1001)])
        self.assertIn(st, (400, 413), f"1001 keys: {show(st, body)}")
        self.assertIsInstance(body, dict, show(st, body))
        self.assertIn("code", body, show(st, body))
        st, body, _ = self.node.json("POST", f"/{t}/keys", [f"k{i}" for i in range(1000)])
        self.assertEqual(st, 200, f"1000 keys is allowed: {show(st, body)}")
        self.assertEqual(len(body["results"]), 1000)

    def test_store_pagination_leaves_out_tombstones(self):
        t = unique_table()
        live = {}
        with self.node.client() as c:
            for i in range(150):
                k = f"s{i}"
                v = {"i": i, "tag": "x" * (i % 7)}
                st, body, _ = c.json("PUT", key_path(t, k), {"value": v})
                self.assertEqual(st, 201, show(st, body))
                live[k] = (v, body["context"])
            for i in range(0, 150, 7):
                k = f"s{i}"
                st, body, _ = c.json("DELETE", key_path(t, k))
                self.assertEqual(st, 200, show(st, body))
                del live[k]
        items, after, pages = [], None, 0
        while True:
            path = f"/{t}/store?limit=50"
            if after is not None:
                path += "&after=" + urllib.parse.quote(after, safe="")
            st, body, _ = self.node.json("GET", path)
            self.assertEqual(st, 200, f"GET {path}: {show(st, body)}")
            self.assertLessEqual(len(body["items"]), 50)
            items.extend(body["items"])
            pages += 1
            self.assertLess(pages, 100, "store pagination does not terminate")
            if body["next"] is None:
                break
            after = body["next"]
        keys = [it["key"] for it in items]
        self.assertEqual(len(keys), len(set(keys)), "duplicate keys across store pages")
        self.assertEqual(set(keys), set(live), "store must list exactly the live keys")
        for it in items:
            v, c = live[it["key"]]
            self.assertEqual(it.get("value"), v, f"store item {it}")
            self.assertEqual(it.get("context"), c, f"store item {it}")
            self.assertIsInstance(it.get("timestamp"), int, f"store item {it}")
            self.assertIsInstance(it.get("owner"), str, f"store item {it}")
            self.assertEqual(it.get("siblings"), 1, f"store item {it}")

    def test_tables_are_independent(self):
        ta, tb = unique_table("ta"), unique_table("tb")
        self.assertStatus(self.put(ta, "same", "in a"), 201)
        self.assertStatus(self.put(tb, "same", "in b"), 201, "same key in another table is new")
        self.assertEqual(self.get(ta, "same")[1]["value"], "in a")
        self.assertEqual(self.get(tb, "same")[1]["value"], "in b")
        self.assertStatus(self.put(ta, "only-a", 1), 201)
        self.assertError(self.get(tb, "only-a"), 404, "not_found", "key of table a read in table b")
        self.assertStatus(self.delete(ta, "same"), 200)
        self.assertEqual(self.get(tb, "same")[1]["value"], "in b", "delete in a touched b")
        st, body, _ = self.node.json("GET", f"/{tb}/keys")
        self.assertEqual(body["keys"], ["same"], show(st, body))
        st, body, _ = self.node.json("GET", f"/{ta}/keys")
        # (Whether a tombstoned key is listed is not specified for /keys.)
        self.assertIn("only-a", body["keys"], show(st, body))
        self.assertLessEqual(set(body["keys"]), {"only-a", "same"}, show(st, body))

    # -- cluster and operations ------------------------------------------

    def test_health(self):
        st, body, hd = self.node.json("GET", "/health")
        self.assertEqual(st, 200, show(st, body))
        self.assertEqual(body.get("status"), "ok", show(st, body))
        self.assertEqual(body.get("node"), self.node.name, show(st, body))
        self.assertRegex(body.get("id", ""), r"^[0-9a-f]+$", show(st, body))

    def test_membership(self):
        st, body, _ = self.node.json("GET", "/membership")
        self.assertEqual(st, 200, show(st, body))
        self.assertEqual(body, [self.node.http_addr], show(st, body))

    def test_cluster(self):
        st, body, _ = self.node.json("GET", "/cluster")
        self.assertEqual(st, 200, show(st, body))
        node_id = self.node.health()["id"]
        self.assertIn("cluster_id", body, show(st, body))
        self.assertEqual(body.get("node"), self.node.name, show(st, body))
        self.assertEqual((body.get("n"), body.get("r"), body.get("w")), (1, 1, 1), show(st, body))
        self.assertIsInstance(body.get("partitions"), int, show(st, body))
        members = body.get("members")
        self.assertIsInstance(members, list, show(st, body))
        self.assertEqual(len(members), 1, show(st, body))
        m = members[0]
        self.assertEqual(m.get("id"), node_id, show(st, body))
        self.assertEqual(m.get("name"), self.node.name, show(st, body))
        self.assertEqual(m.get("http"), self.node.http_addr, show(st, body))
        self.assertEqual(m.get("rpc"), self.node.rpc_addr, show(st, body))
        self.assertEqual(m.get("status"), "member", show(st, body))
        self.assertEqual(m.get("liveness"), "alive", show(st, body))
        self.assertIs(m.get("self"), True, show(st, body))
        self.assertIsInstance(m.get("last_heard_ms_ago"), int, show(st, body))
        self.assertAlmostEqual(m.get("ownership"), 1.0, places=6, msg=show(st, body))

    def _metrics(self):
        st, hd, data = self.node.request("GET", "/metrics")
        self.assertEqual(st, 200, show(st, data, hd))
        self.assertTrue(hd.get("content-type", "").startswith("text/plain"), f"metrics headers {hd}")
        return data.decode("utf-8")

    def test_metrics(self):
        t = unique_table()
        for i in range(5):
            self.put(t, f"m{i}", i)
            self.get(t, f"m{i}")
        self.get(t, "missing")
        text = self._metrics()
        self.assertIn("ringkv_http_requests_total", text)
        self.assertRegex(text, r"(?m)^ringkv_\w*_bucket\{", "no histogram bucket line")
        sample = re.compile(
            r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})?'
            r' [-+]?([0-9.eE+-]+|NaN|\+Inf|-Inf)( -?[0-9]+)?$')
        bad = [ln for ln in text.splitlines()
               if ln and not ln.startswith("#") and not sample.match(ln)]
        self.assertEqual(bad, [], "lines that are not Prometheus text samples")

        def total_requests(txt):
            return sum(float(ln.rsplit(" ", 1)[1]) for ln in txt.splitlines()
                       if ln.startswith("ringkv_http_requests_total"))

        before = total_requests(text)
        for i in range(10):
            self.get(t, f"m{i % 5}")
        after = total_requests(self._metrics())
        self.assertGreaterEqual(after - before, 10, "ringkv_http_requests_total does not count requests")

    def test_quorum_params_out_of_range_are_400(self):
        t = unique_table()
        self.assertStatus(self.put(t, "k", "v"), 201)
        bad_values = ("0", "2", "-1", "abc", "1x", "", "1.5")
        for v in bad_values:
            q = "?" + urllib.parse.urlencode({"w": v})
            self.assertError(self.put(t, "new", "x", query=q), 400, "bad_param", f"PUT ?w={v!r}")
            self.assertError(self.delete(t, "k", query=q), 400, "bad_param", f"DELETE ?w={v!r}")
            q = "?" + urllib.parse.urlencode({"r": v})
            self.assertError(self.get(t, "k", query=q), 400, "bad_param", f"GET ?r={v!r}")
        self.assertError(self.get(t, "new"), 404, "not_found", "a rejected PUT wrote anyway")
        self.assertStatus(self.get(t, "k"), 200, "a rejected DELETE deleted anyway")
        for v in ("abc", "1x", ""):
            q = "?" + urllib.parse.urlencode({"timeout_ms": v})
            self.assertError(self.get(t, "k", query=q), 400, "bad_param", f"GET ?timeout_ms={v}")
            self.assertError(self.put(t, "k", "y", query=q), 400, "bad_param", f"PUT ?timeout_ms={v}")
        # Valid values are accepted.
        self.assertStatus(self.get(t, "k", query="?r=1&timeout_ms=2000"), 200, "GET ?r=1&timeout_ms=2000")
        self.assertStatus(self.put(t, "k", "z", query="?w=1&timeout_ms=2000"), 200,
                          "PUT ?w=1&timeout_ms=2000")
        self.assertStatus(self.delete(t, "k", query="?w=1"), 200, "DELETE ?w=1")

    def test_writes_to_reserved_tables_are_403(self):
        for table in ("_users", "_x", "_"):
            self.assertError(self.put(table, "k", "v"), 403, "reserved_table", f"PUT /{table}")
            self.assertError(self.put(table, "k", "v", method="POST"), 403, "reserved_table",
                             f"POST /{table}")
            self.assertError(self.delete(table, "k"), 403, "reserved_table", f"DELETE /{table}")


if __name__ == "__main__":
    print(f"ringkvd: {harness.RINGKVD}", file=sys.stderr)
    unittest.main()
