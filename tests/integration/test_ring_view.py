"""What the web client draws, on a real 4-node cluster (N=3): the tables a
node holds (/tables), the ring's owners (/ring), where a key lives
(/{table}/placement/{key}) checked against what a request really did, and
a peer's /metrics fetched through another node (/cluster/metrics/{node}).
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, show, wait_for  # noqa: E402


def names(members):
    return [m["name"] for m in members]


class RingViewTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(4, n=3, r=2, w=2)

    @classmethod
    def tearDownClass(cls):
        cls.c.stop(check=False)
        cls.c.cleanup()

    def key_held_by(self, table, node):
        for i in range(100):
            status, body, _ = self.c[0].json("GET", f"/{table}/placement/k{i}")
            if node in names(body["replicas"]):
                return f"k{i}"
        self.fail(f"no key of {table} held by {node} among 100")

    def test_1_tables_lists_what_was_written_sorted_and_survives_a_restart(self):
        for table in ("zebra", "apples", "mid.table"):
            key = self.key_held_by(table, "n1")
            status, body, _ = self.c[1].json("PUT", f"/{table}/key/{key}", {"value": 1})
            self.assertIn(status, (200, 201), show(status, body))
        # W=2 of 3: node 1 may be the third replica, still receiving it.
        def listed():
            status, body, _ = self.c[0].json("GET", "/tables")
            return body if status == 200 and len(body["tables"]) >= 3 else None
        body = wait_for(listed, 10, what="node 1 to list the 3 tables")
        self.assertEqual(body["tables"], ["apples", "mid.table", "zebra"])
        self.c[0].restart()
        status, body, _ = self.c[0].json("GET", "/tables")
        self.assertEqual(status, 200, show(status, body))
        self.assertEqual(body["tables"], ["apples", "mid.table", "zebra"])

    def test_2_ring_gives_one_owner_per_segment(self):
        status, body, _ = self.c[2].json("GET", "/ring")
        self.assertEqual(status, 200, show(status, body))
        self.assertEqual(body["partitions"], 65536)
        self.assertEqual(body["replicas_per_key"], 3)
        self.assertEqual(sorted(names(body["members"])), ["n1", "n2", "n3", "n4"])
        ids = [m["id"] for m in body["members"]]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(body["segments"]), 360)
        # Every member owns some of 360 samples of a ring where each holds ~1/4.
        self.assertEqual(set(body["segments"]), {0, 1, 2, 3})
        status, body, _ = self.c[2].json("GET", "/ring?segments=4096")
        self.assertEqual((status, len(body["segments"])), (200, 4096))
        for bad in ("0", "4097", "abc", "-1"):
            status, body, _ = self.c[2].json("GET", f"/ring?segments={bad}")
            self.assertEqual((status, body["code"]), (400, "bad_param"), bad)

    def test_3_placement_names_the_replicas_a_read_asks(self):
        status, body, _ = self.c[0].json("GET", "/places/placement/some%2Fkey")
        self.assertEqual(status, 200, show(status, body))
        self.assertEqual((body["table"], body["key"]), ("places", "some/key"))
        self.assertTrue(0 <= body["angle"] < 1)
        self.assertEqual(len(body["replicas"]), 3)
        self.assertEqual(len(body["fallbacks"]), 1)
        self.assertEqual(body["stand_ins"], [])
        everyone = set(names(body["replicas"]) + names(body["fallbacks"]))
        self.assertEqual(everyone, {"n1", "n2", "n3", "n4"})
        self.c[0].json("PUT", "/places/key/some%2Fkey", {"value": "v"})
        status, _, headers = self.c[0].json("GET", "/places/key/some%2Fkey?r=3")
        self.assertEqual(status, 200)
        self.assertEqual(set(headers["x-ringkv-replicas"].split(",")),
                         set(names(body["replicas"])))
        for bad in ("/bad$/placement/k", "/t/placement/a%00b"):
            status, body, _ = self.c[0].json("GET", bad)
            self.assertEqual(status, 400, (bad, show(status, body)))

    def test_4_a_down_replica_shows_its_stand_in_and_the_write_uses_it(self):
        # A key whose replicas include n4 but not n1 (the node we ask).
        for i in range(1000):
            status, body, _ = self.c[0].json("GET", f"/moves/placement/k{i}")
            reps = names(body["replicas"])
            if "n4" in reps and "n1" not in reps:
                key = f"k{i}"
                break
        else:
            self.fail("no key with n4 and without n1 among 1000")
        fallback = body["fallbacks"][0]["name"]
        self.assertEqual(fallback, "n1")
        self.c.kill(3)
        try:
            def stood_in():
                status, body, _ = self.c[0].json("GET", f"/moves/placement/{key}")
                return body if body["stand_ins"] else None
            body = wait_for(stood_in, 15, what="n4 seen down and a stand-in named")
            self.assertEqual(body["stand_ins"], [{"fallback": "n1", "for": "n4"}])
            down = [m for m in body["replicas"] if m["name"] == "n4"][0]
            self.assertEqual(down["liveness"], "down")
            status, body, headers = self.c[0].json("PUT", f"/moves/key/{key}?w=3", {"value": 2})
            self.assertIn(status, (200, 201), show(status, body))
            self.assertEqual(headers.get("x-ringkv-fallbacks"), "n1=n4")
        finally:
            self.c[3].restart()
            self.c.wait_converged(30)

    def test_5_cluster_metrics_brings_a_peers_metrics(self):
        for _ in range(3):
            self.c[1].json("GET", "/ring?segments=7")
        status, headers, text = self.c[0].request("GET", "/cluster/metrics/n2")
        self.assertEqual(status, 200, text[:300])
        self.assertIn("text/plain", headers["content-type"])
        m = re.search(rb'ringkv_http_requests_total\{route="ring",status="2xx"\} (\d+)', text)
        self.assertIsNotNone(m, text[:500])
        self.assertGreaterEqual(int(m.group(1)), 3)
        # by id, and this node itself
        status, body, _ = self.c[0].json("GET", "/cluster")
        n2 = [m for m in body["members"] if m["name"] == "n2"][0]
        status, _, text = self.c[0].request("GET", f"/cluster/metrics/{n2['id']}")
        self.assertEqual(status, 200)
        status, _, text = self.c[0].request("GET", "/cluster/metrics/n1")
        self.assertEqual(status, 200)
        self.assertIn(b"ringkv_http_requests_total", text)
        status, body, _ = self.c[0].json("GET", "/cluster/metrics/nobody")
        self.assertEqual((status, body["code"]), (404, "not_found"))

    def test_6_cluster_metrics_of_a_dead_node_is_a_502(self):
        self.c.kill(2)
        try:
            status, body, _ = self.c[0].json("GET", "/cluster/metrics/n3")
            self.assertEqual((status, body["code"]), (502, "unreachable"), show(status, body))
            self.assertIn(self.c[2].http_addr, body["error"])
        finally:
            self.c[2].restart()
            self.c.wait_converged(30)


if __name__ == "__main__":
    unittest.main()
