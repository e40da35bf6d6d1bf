"""A replica that restarts is served again as soon as the cluster sees it.

Regression: the RPC client re-dialled a restarted peer with a back-off of up
to 2 s, so for a second or two after every node listed the peer alive again,
quorum calls to it sat queued and R=N reads timed out with 503. Each round
here kills a replica, waits until every node sees it down (so the back-off
has grown), restarts it, waits until every node lists it alive, and then
reads with r=N through each of the other nodes, once, with no retry.
"""

import unittest

from harness import Cluster, key_path, show, with_query

N = 3
ROUNDS = 3


class RestartedReplicaTest(unittest.TestCase):
    def test_full_quorum_read_right_after_a_restart(self):
        with Cluster(3, n=N) as c:
            path = key_path("restart", "k")
            st, body, hd = c[0].json("PUT", path, {"value": "v"})
            self.assertIn(st, (200, 201), show(st, body, hd))
            for round_ in range(ROUNDS):
                victim = 2
                c.kill(victim)
                c.wait_seen_down(victim, 15)
                c.restart(victim)  # returns once every node lists it alive
                for via in (0, 1):
                    st, body, hd = c[via].json("GET", with_query(path, r=N))
                    self.assertEqual(st, 200, f"round {round_}: r={N} read through "
                                              f"{c[via].name} right after the restart: "
                                              f"{show(st, body, hd)}")
                    self.assertEqual(body.get("value"), "v", show(st, body, hd))
            c.check_acked(self, {"k": "v"}, "restart")


if __name__ == "__main__":
    unittest.main()
