"""Failpoints (docs/failpoints.md) on real ringkvd processes.

- A node started without --failpoints has no /debug/failpoints (404 for
  GET, PUT and DELETE), and --failpoint without --failpoints refuses to
  start.
- --failpoint rules given at start act at once (a store.write that fails
  once) and are listed with their counters.
- On a 3-node cluster started with --failpoints: bad rules are refused
  with the line and the reason; rules naming the peers by node name drop
  every message node 1 sends them, so a strict W=3 write through node 1 is
  503 (and the rules' counters say they fired); after DELETE the same write
  succeeds again.
- A delay of const(200) on the link from node 1 to node 2 shows in an R=3
  read through node 1: node 2 is among X-Ringkv-Replicas and the read took
  at least 200 ms (it cannot be faster: no other timing is asserted).

Every node is stopped with SIGTERM and must exit 0, held messages or not.
"""

import time
import unittest

import harness
from harness import Cluster, Node, key_path, show, wait_for, with_query

PATH = "/debug/failpoints"


def names_header(hdrs, name):
    raw = hdrs.get(name, "")
    return [p.strip() for p in raw.split(",") if p.strip()]


class FailpointsOffTest(unittest.TestCase):
    def test_routes_are_404_without_the_flag(self):
        with Node("plain") as node:
            for method, body in (("GET", None), ("PUT", "rpc.send=drop"), ("DELETE", None)):
                st, _, data = node.request(method, PATH, body)
                self.assertEqual(st, 404, f"{method} {PATH}: {show(st, data)}")
            # and nothing was set: writes go on
            st, body, hd = node.json("PUT", key_path("t", "k"), {"value": 1})
            self.assertIn(st, (200, 201), show(st, body, hd))

    def test_rule_without_the_flag_refuses_to_start(self):
        node = Node("refused", extra_args=["--failpoint", "rpc.send=drop"])
        try:
            node.launch()
            rc = node.wait_exit(15)
            self.assertEqual(rc, 2, f"exit code {rc}\n{node.log_tail()}")
            self.assertIn("--failpoint needs --failpoints", node.log_text())
        finally:
            node.cleanup()

    def test_bad_rule_on_the_command_line(self):
        node = Node("bad", extra_args=["--failpoints", "--failpoint", "store.read=drop"])
        try:
            node.launch()
            rc = node.wait_exit(15)
            self.assertEqual(rc, 2, f"exit code {rc}\n{node.log_tail()}")
            self.assertIn("drop is for the rpc points", node.log_text())
        finally:
            node.cleanup()


class FailpointsStartTest(unittest.TestCase):
    def test_rules_from_the_command_line(self):
        with Node("fp", extra_args=["--failpoints", "--failpoint", "store.write=1*fail"]) as node:
            st, body, _ = node.json("GET", PATH)
            self.assertEqual(st, 200, show(st, body))
            self.assertTrue(body["enabled"], show(st, body))
            self.assertEqual([r["spec"] for r in body["rules"]], ["store.write=1*fail"])
            # The first write fails in the store, the next one does not.
            st, body, hd = node.json("PUT", key_path("t", "a"), {"value": 1})
            self.assertGreaterEqual(st, 500, show(st, body, hd))
            st, body, hd = node.json("PUT", key_path("t", "a"), {"value": 2})
            self.assertIn(st, (200, 201), show(st, body, hd))
            st, body, hd = node.json("GET", key_path("t", "a"))
            self.assertEqual((st, body and body.get("value")), (200, 2), show(st, body, hd))
            st, body, _ = node.json("GET", PATH)
            rule = body["rules"][0]
            self.assertEqual((rule["fired"], rule["n"]), (1, 1), show(st, body))
            self.assertGreaterEqual(rule["hits"], 2, show(st, body))
            self.assertIn("--failpoint: set 1 rule", node.log_text())


class FailpointsClusterTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(3, n=3, r=2, w=2, extra_args=["--failpoints"])

    @classmethod
    def tearDownClass(cls):
        try:
            cls.c.stop()
        finally:
            cls.c.cleanup()

    def setUp(self):
        for node in self.c.nodes:
            st, body, _ = node.json("DELETE", PATH)
            self.assertEqual(st, 200, show(st, body))

    def strict_put(self, key, value):
        return self.c[0].json("PUT", with_query(key_path("fp", key), w=3, sloppy="false"),
                              {"value": value})

    def test_bad_rules_are_400(self):
        n1 = self.c[0]
        st, _, data = n1.request("PUT", PATH, "rpc.send@n2=drop\nrpc.send@n3=dorp\n")
        body = harness.loads_or_none(data)
        self.assertEqual(st, 400, show(st, data))
        self.assertEqual(body["code"], "bad_failpoint", show(st, data))
        self.assertIn("line 2: unknown action", body["error"], show(st, data))
        st, body, _ = n1.json("PUT", PATH, [{"point": "rpc.send", "action": "drop", "p": 5}])
        self.assertEqual(st, 400, show(st, body))
        self.assertIn("\"p\" is a probability", body["error"], show(st, body))
        # nothing was set by either
        st, body, _ = n1.json("GET", PATH)
        self.assertEqual(body["rules"], [], show(st, body))

    def test_dropping_every_peer_fails_a_strict_quorum(self):
        n1 = self.c[0]
        st, hd, data = n1.request("PUT", PATH, "# node 1 is cut off\nrpc.send@n2=drop\n"
                                               "rpc.send@n3=drop\n")
        self.assertEqual(st, 200, show(st, data, hd))
        st, body, hd = self.strict_put("cut", 1)
        self.assertEqual(st, 503, f"strict w=3 with every message to n2, n3 lost: "
                                  f"{show(st, body, hd)}")
        self.assertEqual(body.get("code"), "quorum", show(st, body, hd))
        self.assertEqual(body.get("needed"), 3, show(st, body, hd))
        self.assertLess(body.get("acks"), 3, show(st, body, hd))
        st, body, _ = n1.json("GET", PATH)
        fired = {r["peer"]: r["fired"] for r in body["rules"]}
        self.assertGreaterEqual(fired.get("n2", 0), 1, show(st, body))
        self.assertGreaterEqual(fired.get("n3", 0), 1, show(st, body))
        self.assertIn("PUT /debug/failpoints from 127.0.0.1: set 2 rules", n1.log_text())

        st, body, _ = n1.json("DELETE", PATH)
        self.assertEqual((st, body["rules"]), (200, []), show(st, body))
        # The failure detector may have called the peers down meanwhile:
        # poll until they are back and the strict quorum is met.
        last = []

        def healed():
            st, body, hd = self.strict_put("healed", 2)
            last[:] = [st, body, hd]
            return st in (200, 201)

        try:
            wait_for(healed, 30, interval=0.2, what="a strict w=3 write after DELETE")
        except AssertionError:
            self.fail(f"after DELETE {PATH}: {show(*last)}")

    def test_a_slow_link_shows_in_a_read(self):
        n1 = self.c[0]
        st, body, hd = n1.json("PUT", with_query(key_path("fp", "slow"), w=3), {"value": "v"})
        self.assertIn(st, (200, 201), show(st, body, hd))
        st, body, _ = n1.json("PUT", PATH, [{"point": "rpc.send", "peer": "n2",
                                             "action": "delay(const(200))"}])
        self.assertEqual(st, 200, show(st, body))
        self.assertEqual([r["spec"] for r in body["rules"]], ["rpc.send@n2=delay(const(200))"])
        t0 = time.monotonic()
        st, body, hd = n1.json("GET", with_query(key_path("fp", "slow"), r=3, timeout_ms=5000))
        took = time.monotonic() - t0
        self.assertEqual(st, 200, show(st, body, hd))
        self.assertIn("n2", names_header(hd, "x-ringkv-replicas"), show(st, body, hd))
        self.assertGreaterEqual(took, 0.2, f"an r=3 read over a 200 ms link took {took:.3f} s")
        st, body, _ = n1.json("GET", PATH)
        self.assertGreaterEqual(body["rules"][0]["fired"], 1, show(st, body))


if __name__ == "__main__":
    unittest.main(verbosity=2)
