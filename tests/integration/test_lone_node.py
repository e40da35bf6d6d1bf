"""A cluster smaller than N serves (DESIGN.md, "A cluster with fewer ring
members than N").

- `ringkvd --data DIR --insecure` alone, with every other setting at its
  default (N=3, R=2, W=2), answers a PUT with 201 and a GET with the value,
  and says where a user looks that each key has one replica: a log line at
  start, /cluster's replicas_per_key and under_replicated, and an
  X-Ringkv-Under-Replicated header on each such answer;
- a second member joins: keys have two replicas, and W=2 needs both of them,
  so with one of the two killed a write is 503 (down is not fewer members);
- a third member joins: full quorums, no header, under_replicated false.
"""

import os
import sys
import unittest

import harness
from harness import Node, free_port, show, wait_for


class LoneNode(Node):
    """A ringkvd started with only --data and --insecure; its addresses come
    from the environment (RINGKV_HTTP, RINGKV_RPC), as a user's defaults
    would, so that the test does not take the default ports."""

    def __init__(self, name):
        super().__init__(name=name)
        self.env = dict(os.environ, RINGKV_HTTP=self.http_addr, RINGKV_RPC=self.rpc_addr)

    def command(self):
        return [harness.RINGKVD, "--data", self.data_dir, "--insecure"]


def cluster_info(node):
    status, body, _ = node.json("GET", "/cluster")
    assert status == 200, show(status, body)
    return body


class LoneNodeTest(unittest.TestCase):
    def test_lone_node_serves_then_full_quorums_return_at_n_members(self):
        lone = LoneNode("lone")
        self.addCleanup(lone.cleanup)
        lone.start()

        status, body, hdrs = lone.json("PUT", "/t/key/a", {"value": {"hello": "alone"}})
        self.assertEqual(status, 201, show(status, body, hdrs))
        self.assertEqual(hdrs.get("x-ringkv-under-replicated"), "replicas=1; n=3", hdrs)
        status, body, hdrs = lone.json("GET", "/t/key/a")
        self.assertEqual(status, 200, show(status, body, hdrs))
        self.assertEqual(body["value"], {"hello": "alone"})
        self.assertEqual(hdrs.get("x-ringkv-under-replicated"), "replicas=1; n=3", hdrs)
        info = cluster_info(lone)
        self.assertEqual((info["n"], info["r"], info["w"]), (3, 2, 2), info)
        self.assertEqual(info["replicas_per_key"], 1, info)
        self.assertIs(info["under_replicated"], True, info)
        self.assertIn("fewer than n=3", lone.log_text())

        # A second member: two replicas per key, both needed for W=2.
        second = Node(name="second", n=3, r=2, w=2, join=[lone.rpc_addr])
        self.addCleanup(second.cleanup)
        second.start()
        wait_for(lambda: cluster_info(lone)["replicas_per_key"] == 2, 30,
                 what="the lone node to see a second member")
        wait_for(lambda: all(m["status"] == "member" for m in cluster_info(lone)["members"]), 60,
                 what="the second node to become a member")
        status, body, hdrs = lone.json("PUT", "/t/key/b", {"value": 2})
        self.assertEqual(status, 201, show(status, body, hdrs))
        self.assertEqual(hdrs.get("x-ringkv-under-replicated"), "replicas=2; n=3", hdrs)
        self.assertEqual(len(hdrs.get("x-ringkv-replicas", "").split(",")), 2, hdrs)

        second.kill()
        status, body, hdrs = lone.json("PUT", "/t/key/c", {"value": 3})
        self.assertEqual(status, 503, show(status, body, hdrs))
        self.assertEqual((body["acks"], body["needed"]), (1, 2), body)
        second.start()

        # A third member: the ring has N members, full quorums apply again.
        third = Node(name="third", n=3, r=2, w=2, join=[lone.rpc_addr])
        self.addCleanup(third.cleanup)
        third.start()
        wait_for(lambda: cluster_info(lone)["replicas_per_key"] == 3, 30,
                 what="the lone node to see a third member")
        wait_for(lambda: all(m["status"] == "member" and m["liveness"] == "alive"
                             for m in cluster_info(lone)["members"]), 60,
                 what="three alive members")
        info = cluster_info(lone)
        self.assertIs(info["under_replicated"], False, info)
        status, body, hdrs = lone.json("GET", "/t/key/a?r=3")
        self.assertEqual(status, 200, show(status, body, hdrs))
        self.assertEqual(body["value"], {"hello": "alone"})
        self.assertNotIn("x-ringkv-under-replicated", hdrs)
        status, body, hdrs = lone.json("PUT", "/t/key/d", {"value": 4})
        self.assertEqual(status, 201, show(status, body, hdrs))
        self.assertNotIn("x-ringkv-under-replicated", hdrs)


if __name__ == "__main__":
    print(f"ringkvd: {harness.RINGKVD}", file=sys.stderr)
    unittest.main()
