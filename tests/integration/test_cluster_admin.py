"""The routes and CLI commands that change the cluster (issue 4), on real nodes.

- one node (a cluster of one): leave is refused (409, the last member),
  repair answers 202, remove refuses this node (409), an unknown node (404;
  the CLI exits 1) and bad bodies (400); hints/drop answers 200; other
  methods get 405; GET /cluster has "sync" with every counter and /metrics
  the sync metrics;
- three nodes: removing a live node is 409; a SIGKILLed node, once seen
  down, is removed by name through the CLI and shows removed on every node;
  `ringkv cluster leave` with two nodes given is a usage error, and with one
  makes that node leave: it exits 0 by itself and shows removed.

Whether the data survives leave and remove (handoff, re-replication) is
test_membership.py's part.
"""

import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, Node, show, wait_for  # noqa: E402

SYNC_FIELDS = [
    "ranges_pending", "handoff_keys_sent", "handoff_bytes_sent", "handoff_keys_dropped",
    "keys_received", "bytes_received", "ae_exchanges", "ae_keys_compared", "ae_keys_repaired",
    "ae_bytes_sent", "tombstones_purged", "hints_delivered", "hint_bytes_sent",
]

SYNC_METRICS = {
    "ringkv_sync_ranges_pending": "gauge",
    "ringkv_handoff_keys_sent_total": "counter",
    "ringkv_handoff_bytes_sent_total": "counter",
    "ringkv_handoff_keys_dropped_total": "counter",
    "ringkv_sync_keys_received_total": "counter",
    "ringkv_sync_bytes_received_total": "counter",
    "ringkv_anti_entropy_exchanges_total": "counter",
    "ringkv_anti_entropy_keys_compared_total": "counter",
    "ringkv_anti_entropy_keys_repaired_total": "counter",
    "ringkv_anti_entropy_bytes_sent_total": "counter",
    "ringkv_tombstones_purged_total": "counter",
    "ringkv_hint_bytes_sent_total": "counter",
    # hints_delivered is ringkv_hints_total{event="delivered"}, with kv's hints
}


def cli(*args, nodes):
    """The ringkv CLI with --nodes (Nodes or addresses) -> CompletedProcess."""
    addrs = ",".join(n.http_addr if isinstance(n, Node) else n for n in nodes)
    env = {k: v for k, v in os.environ.items() if k not in ("RINGKV_NODES", "RINGKV_TOKEN")}
    return subprocess.run([harness.RINGKV_CLI, "--nodes", addrs, *args], capture_output=True,
                          text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)


def said(p):
    return f"exit {p.returncode}\n--- stdout ---\n{p.stdout}--- stderr ---\n{p.stderr}"


class OneNode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = Node(name="solo")
        cls.node.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.node.stop()
        finally:
            cls.node.cleanup()

    def post(self, path, obj=harness._NOBODY):
        return self.node.json("POST", path, obj)

    def test_leave_is_refused_for_the_last_member(self):
        st, body, _ = self.post("/cluster/leave")
        self.assertEqual(st, 409, show(st, body))
        self.assertEqual(body.get("code"), "conflict", show(st, body))
        self.assertIn("last member", body.get("error", ""), show(st, body))
        p = cli("cluster", "leave", nodes=[self.node])
        self.assertEqual(p.returncode, 4, said(p))
        self.assertIn("last member", p.stderr, said(p))
        self.assertTrue(self.node.running(), "the node must not have left")

    def test_repair(self):
        st, body, _ = self.post("/cluster/repair")
        self.assertEqual((st, body), (202, {"repair": "started"}), show(st, body))
        p = cli("cluster", "repair", nodes=[self.node])
        self.assertEqual(p.returncode, 0, said(p))
        self.assertIn("started", p.stdout, said(p))

    def test_remove_refusals(self):
        node_id = self.node.health()["id"]
        for who in ("solo", node_id, node_id.upper()):
            st, body, _ = self.post("/cluster/remove", {"node": who})
            self.assertEqual(st, 409, show(st, body))
            self.assertIn("is this node", body.get("error", ""), show(st, body))
        st, body, _ = self.post("/cluster/remove", {"node": "nobody"})
        self.assertEqual((st, body.get("code")), (404, "not_found"), show(st, body))
        st, body, _ = self.post("/cluster/remove", {"node": "f" * 16})
        self.assertEqual(st, 404, show(st, body))
        for bad, code in ((b"not json", "bad_json"), (b"", "bad_json"), (b"[]", "bad_json"),
                          (b"{}", "missing_node"), (b'{"node":""}', "missing_node"),
                          (b'{"node":1}', "missing_node")):
            st, _, data = self.node.request("POST", "/cluster/remove", bad)
            body = harness.loads_or_none(data) or {}
            self.assertEqual((st, body.get("code")), (400, code), f"{bad!r}: {show(st, data)}")

        p = cli("cluster", "remove", "nobody", nodes=[self.node])
        self.assertEqual(p.returncode, 1, said(p))
        self.assertIn("nobody", p.stderr, said(p))
        p = cli("cluster", "remove", "solo", nodes=[self.node])
        self.assertEqual(p.returncode, 4, said(p))
        self.assertIn("is this node", p.stderr, said(p))
        p = cli("cluster", "remove", nodes=[self.node])
        self.assertEqual(p.returncode, 2, said(p))

    def test_hints_drop(self):
        st, body, _ = self.post("/cluster/hints/drop")
        self.assertEqual((st, body), (200, {"dropped": 0}), show(st, body))

    def test_other_methods(self):
        for path in ("/cluster/leave", "/cluster/remove", "/cluster/repair",
                     "/cluster/hints/drop"):
            for method in ("GET", "PUT", "DELETE"):
                st, hd, data = self.node.request(method, path)
                self.assertEqual(st, 405, f"{method} {path}: {st} {data!r}")
                self.assertEqual(hd.get("allow"), "POST", f"{method} {path}: {hd}")

    def test_sync_in_cluster_and_metrics(self):
        st, body, _ = self.node.json("GET", "/cluster")
        self.assertEqual(st, 200, show(st, body))
        sync = body.get("sync")
        self.assertIsInstance(sync, dict, show(st, body))
        self.assertEqual(list(sync), SYNC_FIELDS + ["leaving"], show(st, body))
        for f in SYNC_FIELDS:
            self.assertIsInstance(sync[f], int, f"{f}: {show(st, body)}")
        self.assertIs(sync["leaving"], False, show(st, body))

        st, _, data = self.node.request("GET", "/metrics")
        text = data.decode()
        for name, kind in SYNC_METRICS.items():
            self.assertIn(f"# TYPE {name} {kind}\n", text)
            self.assertRegex(text, rf"(?m)^{name} \d+$")

        p = cli("cluster", "status", nodes=[self.node])
        self.assertEqual(p.returncode, 0, said(p))
        self.assertRegex(p.stdout, r"sync on solo: \d+ ranges to hand off", said(p))


class ThreeNodes(unittest.TestCase):
    def test_remove_a_dead_node_and_leave(self):
        c = Cluster(3)
        try:
            n1, n2, n3 = c.nodes
            st, body, _ = n1.json("POST", "/cluster/remove", {"node": "n2"})
            self.assertEqual(st, 409, show(st, body))
            self.assertIn("not down", body.get("error", ""), show(st, body))

            c.kill(2)
            c.wait_seen_down(2, timeout=20)
            p = cli("cluster", "remove", "n3", nodes=[n1])
            self.assertEqual(p.returncode, 0, said(p))
            n3_id = c.member(c.cluster_view(n2), "n3")["id"]
            self.assertIn(n3_id, p.stdout, said(p))
            st, body, _ = n2.json("POST", "/cluster/remove", {"node": n3_id})
            self.assertEqual((st, body), (200, {"removed": "n3", "id": n3_id}),
                             "again, by id, on another node: " + show(st, body))

            def removed_everywhere(name, nodes):
                return all(c.member(c.cluster_view(n), name).get("status") == "removed"
                           for n in nodes)

            wait_for(lambda: removed_everywhere("n3", [n1, n2]), 15, what="n3 removed everywhere")

            p = cli("cluster", "leave", nodes=[n2, n1])
            self.assertEqual(p.returncode, 2, said(p))
            self.assertIn("exactly one node", p.stderr, said(p))
            self.assertTrue(n2.running() and n1.running())

            p = cli("cluster", "leave", nodes=[n2])
            self.assertEqual(p.returncode, 0, said(p))
            self.assertIn("n2", p.stdout, said(p))
            self.assertIn("leaving", p.stdout, said(p))
            rc = n2.wait_exit(60)
            self.assertEqual(rc, 0, f"n2 after leave: exit {rc}\n{n2.log_tail()}")
            wait_for(lambda: removed_everywhere("n2", [n1]), 15, what="n1 to see n2 removed")
            p = cli("cluster", "status", nodes=[n1])
            self.assertRegex(p.stdout, re.compile(r"^[* ] n2 .*removed", re.M), said(p))
        finally:
            c.stop(check=False)  # n3 was SIGKILLed, n2 exited by itself
            c.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
