"""GET /pbs: the staleness a partial quorum is predicted to have, from the
replica delays a node's coordinator has observed (docs/pbs.md).

On a 3-node cluster (N=3) that has taken a few hundred writes and reads
through its first node:
- that node answers /pbs with samples of all four delays (W, A, R, S) from
  its three replicas, taken on one shared clock (one machine), a
  probability of a consistent read for each t that stays in [0, 1] and
  never goes down as t grows, k-staleness for k = 1, 2, 3, and latency
  percentiles in order;
- R + W > N (r=2&w=2, r=3&w=1) is always consistent;
- several t and a trials count are taken as asked;
- a node that coordinated nothing answers 503 no_samples, saying how many
  samples it needs;
- bad parameters are 400 bad_param with a JSON error.
"""

import sys
import unittest

from harness import Cluster, get_many, put_many, show

DEFAULT_T = [0, 1, 2, 5, 10, 20, 50, 100]


class PbsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(3)
        cls.addClassCleanup(cls.cluster.cleanup)
        cls.addClassCleanup(cls.cluster.stop)
        cls.coordinator = cls.cluster[0]
        cls.idle = cls.cluster[1]

    def pbs(self, node, query=""):
        return node.json("GET", "/pbs" + query)

    def check_prediction(self, body, n, r, w, times):
        self.assertEqual((body["n"], body["r"], body["w"]), (n, r, w), body)
        samples = body["samples"]
        for kind in ("w", "a", "r", "s"):
            self.assertGreater(samples[kind], 0, samples)
        self.assertEqual(samples["peers"], 3, samples)
        # every node of this test runs on this machine: one clock
        self.assertEqual(samples["clock"], "shared", samples)
        vis = body["t_visibility"]
        self.assertEqual([v["t_ms"] for v in vis], times, vis)
        ps = [v["p_consistent"] for v in vis]
        for p in ps:
            self.assertTrue(0.0 <= p <= 1.0, vis)
        self.assertEqual(ps, sorted(ps), f"p_consistent goes down as t grows: {vis}")
        ks = body["k_staleness"]
        self.assertEqual([k["k"] for k in ks], [1, 2, 3], ks)
        kp = [k["p"] for k in ks]
        for p in kp:
            self.assertTrue(0.0 <= p <= 1.0, ks)
        self.assertEqual(kp, sorted(kp), ks)
        if times[0] == 0:
            self.assertAlmostEqual(kp[0], ps[0], places=5, msg=body)
        for name in ("read_latency_ms", "write_latency_ms"):
            lat = body[name]
            order = [lat["p50"], lat["p90"], lat["p99"], lat["p999"]]
            self.assertGreaterEqual(order[0], 0.0, lat)
            self.assertEqual(order, sorted(order), lat)
        self.assertIsInstance(body["elapsed_ms"], (int, float), body)
        return ps

    def test_1_no_samples_before_any_traffic(self):
        status, body, _ = self.pbs(self.coordinator)
        self.assertEqual(status, 503, show(status, body))
        self.assertEqual(body["code"], "no_samples", body)
        self.assertIn("error", body)
        self.assertGreater(body["needed"], 0, body)

    def test_2_prediction_after_traffic(self):
        items = [(f"k{i}", {"i": i}) for i in range(300)]
        put_many([self.coordinator], "pbs", items)
        answers = get_many([self.coordinator], "pbs", [k for k, _ in items], r=2)
        bad = [show(st, body) for st, body in answers if st != 200]
        self.assertEqual(bad, [], bad[:3])

        status, body, _ = self.pbs(self.coordinator, "?r=1&w=1")
        self.assertEqual(status, 200, show(status, body))
        self.assertEqual(body["trials"], 10000, body)
        self.check_prediction(body, 3, 1, 1, DEFAULT_T)

        for query, r, w in (("?r=2&w=2", 2, 2), ("?r=3&w=1", 3, 1), ("?r=1&w=3", 1, 3)):
            status, body, _ = self.pbs(self.coordinator, query)
            self.assertEqual(status, 200, show(status, body))
            ps = self.check_prediction(body, 3, r, w, DEFAULT_T)
            self.assertEqual(ps, [1.0] * len(DEFAULT_T), f"R+W>N must always be consistent: {body}")

        status, body, _ = self.pbs(self.coordinator, "?r=1&w=1&t=0&t=0.5&t=1.85&trials=2000")
        self.assertEqual(status, 200, show(status, body))
        self.assertEqual(body["trials"], 2000, body)
        self.check_prediction(body, 3, 1, 1, [0, 0.5, 1.85])

        # a read through another node: still 1 where R + W > N
        status, body, _ = self.pbs(self.coordinator, "?r=2&w=2&reader=other")
        self.assertEqual(status, 200, show(status, body))
        self.assertEqual(body["reader"], "other", body)
        ps = self.check_prediction(body, 3, 2, 2, DEFAULT_T)
        self.assertEqual(ps, [1.0] * len(DEFAULT_T), body)
        # what the prediction drew from: every peer, this node's own copy marked
        delays = body["delays"]
        self.assertEqual(sum(1 for p in delays["peers"] if p["self"]), 1, delays)
        for p in delays["peers"]:
            for kind in ("w", "a", "r", "s"):
                if p[kind] is not None:
                    self.assertLessEqual(p[kind][0], p[kind][1], delays)

        # r and w default to the node's own (2 and 2 here)
        status, body, _ = self.pbs(self.coordinator)
        self.assertEqual(status, 200, show(status, body))
        self.assertEqual((body["r"], body["w"]), (2, 2), body)

        # the samples are the coordinator's: a node that coordinated
        # nothing has none, whatever it served as a replica
        status, body, _ = self.pbs(self.idle)
        self.assertEqual(status, 503, show(status, body))
        self.assertEqual(body["code"], "no_samples", body)
        self.assertEqual(body["samples"]["w"], 0, body)

    def test_3_bad_parameters(self):
        for query in ("?r=0", "?r=4", "?w=0", "?w=4", "?r=x", "?t=-1", "?t=abc", "?t=",
                      "?t=1&t=nan", "?t=inf", "?trials=0", "?trials=100001", "?trials=1.5",
                      "?reader=them", "?reader="):
            with self.subTest(query=query):
                status, body, _ = self.pbs(self.coordinator, query)
                self.assertEqual(status, 400, f"{query}: {show(status, body)}")
                self.assertEqual(body["code"], "bad_param", body)
                self.assertIsInstance(body["error"], str)
        too_many = "?" + "&".join(f"t={i}" for i in range(33))
        status, body, _ = self.pbs(self.coordinator, too_many)
        self.assertEqual(status, 400, show(status, body))
        self.assertEqual(body["code"], "bad_param", body)
        status, body, hdrs = self.coordinator.json("POST", "/pbs", {})
        self.assertEqual(status, 405, show(status, body, hdrs))


if __name__ == "__main__":
    unittest.main(verbosity=2, argv=[sys.argv[0]])
