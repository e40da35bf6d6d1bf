"""Durability: what a node acknowledged survives kill -9 and a clean restart.

- 2,000 acknowledged writes (plus updates with a context and deletes) read
  back after SIGKILL + restart with the exact value and context the PUT
  returned;
- writes in flight when SIGKILL lands: every acknowledged one survives;
- SIGTERM exits 0 and the restarted node keeps its data and its node id.
"""

import concurrent.futures
import os
import random
import sys
import threading
import unittest

import harness
from harness import Node, json_equal, key_path, show

WRITERS = 8


def value_for(rng, i):
    return {
        "i": i,
        "s": "".join(rng.choice("abc\u00e9\u4e2d/ %") for _ in range(rng.randint(0, 30))),
        "list": [rng.randint(-1000, 1000) for _ in range(rng.randint(0, 5))],
        "flag": rng.random() < 0.5,
        "none": None,
    }


def run_parallel(node, items, fn):
    """fn(client, item) for every item, split over WRITERS keep-alive connections."""
    chunks = [items[w::WRITERS] for w in range(WRITERS)]

    def work(chunk):
        out = []
        with node.client() as c:
            for item in chunk:
                out.append(fn(c, item))
        return out

    with concurrent.futures.ThreadPoolExecutor(max_workers=WRITERS) as pool:
        results = []
        for part in pool.map(work, chunks):
            results.extend(part)
    return results


class DurabilityTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.seed = int(os.environ.get("RINGKV_TEST_SEED") or random.SystemRandom().randrange(2 ** 32))
        print(f"\n{self.id()}: seed {self.seed} (replay with RINGKV_TEST_SEED={self.seed})", file=sys.stderr)

    def read_all(self, node, table, keys):
        def read(c, key):
            st, body, _ = c.json("GET", key_path(table, key), retry=True)
            return key, st, body
        return {k: (st, body) for k, st, body in run_parallel(node, keys, read)}

    def test_kill9_keeps_every_acknowledged_write(self):
        rng = random.Random(self.seed)
        table = "durable"
        keys = [f"key-{i:05d}" + rng.choice(["", "/x", " y", "\u00e9"]) for i in range(2000)]
        values = {k: value_for(rng, i) for i, k in enumerate(keys)}
        with Node(name="dur") as node:
            node_id = node.health()["id"]

            def put(c, key):
                st, body, hd = c.json("PUT", key_path(table, key), {"value": values[key]})
                return key, st, body, hd

            expected = {}  # key -> (value, context) or (None, None) for deleted
            for key, st, body, hd in run_parallel(node, keys, put):
                self.assertEqual(st, 201, f"PUT {key!r}: {show(st, body, hd)}")
                self.assertTrue(json_equal(body["value"], values[key]), show(st, body))
                expected[key] = (values[key], body["context"])

            # Updates with a context (the first 200) and deletes (the next 100).
            updates = keys[:200]
            deletes = keys[200:300]

            def update(c, key):
                new = {"updated": key, "n": len(key)}
                st, body, _ = c.json("PUT", key_path(table, key), {"value": new, "context": expected[key][1]})
                return key, new, st, body

            for key, new, st, body in run_parallel(node, updates, update):
                self.assertEqual(st, 200, f"update {key!r}: {show(st, body)}")
                self.assertEqual(body["siblings"], 1, f"update {key!r}: {show(st, body)}")
                expected[key] = (new, body["context"])

            def delete(c, key):
                st, body, _ = c.json("DELETE", key_path(table, key))
                return key, st, body

            for key, st, body in run_parallel(node, deletes, delete):
                self.assertEqual(st, 200, f"DELETE {key!r}: {show(st, body)}")
                expected[key] = (None, None)

            self.assertEqual(node.kill(), -9, "SIGKILL")
            node.restart()
            self.assertEqual(node.health()["id"], node_id, "node id changed across kill -9")

            got = self.read_all(node, table, keys)
            bad = []
            for key in keys:
                value, ctx = expected[key]
                st, body = got[key]
                if value is None:
                    if st != 404 or not isinstance(body, dict) or body.get("code") != "not_found":
                        bad.append(f"deleted {key!r} came back: {show(st, body)}")
                    elif not body.get("context"):
                        bad.append(f"deleted {key!r}: 404 without the tombstone's context: {show(st, body)}")
                    continue
                if st != 200:
                    bad.append(f"{key!r}: expected 200 {value!r}, got {show(st, body)}")
                elif not json_equal(body.get("value"), value):
                    bad.append(f"{key!r}: value {body.get('value')!r} != acknowledged {value!r}")
                elif body.get("context") != ctx:
                    bad.append(f"{key!r}: context {body.get('context')!r} != acknowledged {ctx!r}")
                elif body.get("siblings") != 1:
                    bad.append(f"{key!r}: siblings {body.get('siblings')} != 1")
            self.assertEqual(bad, [], f"{len(bad)} of {len(keys)} keys wrong after kill -9 + restart "
                                      f"(first 10):\n" + "\n".join(bad[:10]))

            # The listing agrees: every live key, no deleted one.
            listed, after = [], None
            while True:
                path = f"/{table}/keys?limit=1000"
                if after is not None:
                    path += "&after=" + harness.quote_key(after)
                st, body, _ = node.json("GET", path)
                self.assertEqual(st, 200, show(st, body))
                listed += body["keys"]
                if body["next"] is None:
                    break
                after = body["next"]
            live = {k for k, (v, _) in expected.items() if v is not None}
            self.assertEqual(len(listed), len(set(listed)), "duplicate keys in the listing")
            # Every live key is listed; whether tombstoned keys are is not specified.
            self.assertEqual(live - set(listed), set(), "live keys missing from the listing after restart")
            self.assertLessEqual(set(listed), set(keys), "unknown keys in the listing")

    def test_kill9_during_writes_loses_nothing_acknowledged(self):
        rng = random.Random(self.seed)
        table = "inflight"
        acked = {}
        lock = threading.Lock()
        stop = threading.Event()
        with Node(name="inflight") as node:
            def writer(w):
                n = 0
                with node.client(timeout=5) as c:
                    while not stop.is_set():
                        key = f"w{w}-{n}"
                        value = {"w": w, "n": n, "pad": "p" * (n % 50)}
                        n += 1
                        try:
                            st, body, _ = c.json("PUT", key_path(table, key), {"value": value})
                        except OSError:
                            return  # the node is gone
                        except Exception:  # noqa: BLE001 - http.client errors on a dying peer
                            return
                        if st in (200, 201):
                            with lock:
                                acked[key] = (value, body["context"])

            threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(WRITERS)]
            for t in threads:
                t.start()
            # Kill once a good number of writes has been acknowledged.
            target = 1500 + rng.randrange(500)
            harness.wait_for(lambda: len(acked) >= target, 60, what=f"{target} acknowledged writes")
            node.kill()
            stop.set()
            for t in threads:
                t.join(10)
            node.restart()
            keys = sorted(acked)
            got = self.read_all(node, table, keys)
            bad = []
            for key in keys:
                value, ctx = acked[key]
                st, body = got[key]
                if st != 200 or not json_equal(body.get("value"), value) or body.get("context") != ctx:
                    bad.append(f"{key!r}: acknowledged {value!r} ctx {ctx}, read {show(st, body)}")
            self.assertEqual(bad, [], f"{len(bad)} of {len(keys)} acknowledged writes lost or changed "
                                      f"by kill -9 mid-write (first 10):\n" + "\n".join(bad[:10]))

    def test_sigterm_exits_0_and_restart_keeps_data_and_id(self):
        table = "clean"
        with Node(name="clean") as node:
            h1 = node.health()
            written = {}
            with node.client() as c:
                for i in range(100):
                    st, body, _ = c.json("PUT", key_path(table, f"k{i}"), {"value": [i, str(i)]})
                    self.assertEqual(st, 201, show(st, body))
                    written[f"k{i}"] = ([i, str(i)], body["context"])
            self.assertEqual(node.stop(), 0, "SIGTERM must exit 0")
            node.restart()
            h2 = node.health()
            self.assertEqual(h2["id"], h1["id"], "node id changed across a clean restart")
            self.assertEqual(h2["node"], h1["node"])
            st, cluster, _ = node.json("GET", "/cluster")
            self.assertEqual(st, 200, show(st, cluster))
            self.assertEqual([m["id"] for m in cluster["members"]], [h1["id"]], show(st, cluster))
            with node.client() as c:
                for key, (value, ctx) in written.items():
                    st, body, _ = c.json("GET", key_path(table, key))
                    self.assertEqual(st, 200, f"{key} after restart: {show(st, body)}")
                    self.assertEqual(body["value"], value)
                    self.assertEqual(body["context"], ctx, f"{key}: context changed across restart")
            # Writes continue from where the clock left off: an update with the
            # old context replaces (no sibling), a new context differs.
            st, body, _ = node.json("PUT", key_path(table, "k0"), {"value": "after", "context": written["k0"][1]})
            self.assertEqual(st, 200, show(st, body))
            self.assertEqual(body["siblings"], 1, show(st, body))
            self.assertNotEqual(body["context"], written["k0"][1])
            # And a second clean stop/start cycle still exits 0.
            self.assertEqual(node.stop(), 0)
            node.restart()
            self.assertEqual(node.health()["id"], h1["id"])

    def test_same_data_dir_is_required_for_identity(self):
        # Sanity check of the harness and of identity: a fresh data dir is a new node.
        with Node(name="a") as a, Node(name="b") as b:
            self.assertNotEqual(a.health()["id"], b.health()["id"], "two fresh nodes share an id")


if __name__ == "__main__":
    print(f"ringkvd: {harness.RINGKVD}", file=sys.stderr)
    unittest.main()
