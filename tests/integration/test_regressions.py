"""Bugs found after the fact, each with the test that failed before its fix."""
import unittest

from harness import Cluster, Node


class Regressions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = Node(name="regress")
        cls.node.start()

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        cls.node.cleanup()

    def test_deeply_nested_batch_body_is_rejected_not_a_crash(self):
        # Found by test_bad_input's fuzzer: cJSON recursed through 5000 '['
        # and overflowed the worker's stack (SIGSEGV).
        body = ("[" * 5000 + "]" * 5000).encode()
        status, _, data = self.node.request("POST", "/t/keys", body)
        self.assertEqual(status, 400, data)
        status, _, _ = self.node.request("GET", "/health")
        self.assertEqual(status, 200)

    def test_oversized_context_is_rejected(self):
        # A forged context with thousands of actors would grow the key's
        # clock for good; contexts over 4 KiB of text are refused.
        status, _, _ = self.node.json("PUT", "/t/key/big-ctx", {"value": 1})
        self.assertEqual(status, 201)
        status, body, _ = self.node.json("PUT", "/t/key/big-ctx",
                                         {"value": 2, "context": "A" * 5000})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["code"], "bad_context")
        status, body, _ = self.node.json("GET", "/t/key/big-ctx")
        self.assertEqual(body["value"], 1)


    def test_batch_item_reports_its_own_error(self):
        # A failed item was reported as {"code": "ok"}: the kv error was
        # overwritten before the message was written. With R=3 and one of
        # three nodes paused, no read can meet its quorum, so every item
        # must say "quorum".
        with Cluster(3, r=3, w=1, prefix="regress-r3") as c:
            status, _, _ = c[0].json("PUT", "/t/key/a", {"value": 1})
            self.assertEqual(status, 201)
            c.pause(2)
            try:
                status, body, _ = c[0].json("POST", "/t/keys", ["a"])
            finally:
                c.resume(2)
            self.assertEqual(status, 200, body)
            self.assertEqual(body["results"][0]["code"], "quorum", body)


if __name__ == "__main__":
    unittest.main()
