"""Cluster acceptance: several real ringkvd processes forming one ring.

- placement: a key written through one node reads back through another and
  lives on exactly N nodes (3 of 3, and 3 of 4 with N=3);
- a SIGKILLed replica: W=2 writes keep succeeding, a strict W=3 gets 503
  (acks 2, needed 3), and the restarted node gets every write it missed by
  hinted handoff, without any read;
- read repair: a replica that missed writes (and refuses hints) is fixed by
  an R=N read;
- concurrent writes with the same context keep both values as siblings
  (300 with ?siblings=all) until a write with the merged context resolves
  them, also while a replica is paused with SIGSTOP;
- r/w/timeout_ms out of range are 400 and write nothing;
- a 5-node cluster converges within 5 s of the last join, a killed node is
  down everywhere within 10 s, and a sloppy quorum covers it with fallbacks
  that hand the writes over when it returns;
- a node with the wrong cluster secret cannot join, and random bytes sent to
  the RPC port neither crash nor stall a node.

Every test ends by reading every acknowledged key with R=N.
"""

import os
import random
import re
import socket
import struct
import sys
import time
import unittest

import harness
from harness import DELETED, Cluster, Node, json_equal, key_path, show, wait_for, with_query

N = 3


def value_for(rng, i, tag=""):
    return {"i": i, "tag": tag, "s": "".join(rng.choice("ab\u00e9\u4e2d/ %") for _ in range(rng.randint(0, 12))),
            "n": rng.randint(-10 ** 6, 10 ** 6), "f": rng.random() < 0.5}


def key_for(rng, prefix, i):
    return f"{prefix}-{i:04d}" + rng.choice(["", "/x", " y", "\u00e9", "%2F"])


def names_header(hdrs, name):
    """X-Ringkv-Replicas as a list of node names (empty when absent)."""
    raw = hdrs.get(name, "")
    return [p.strip() for p in raw.split(",") if p.strip()]


def fallbacks_header(hdrs):
    """X-Ringkv-Fallbacks as {fallback: intended} (empty when absent or empty)."""
    out = {}
    for pair in names_header(hdrs, "x-ringkv-fallbacks"):
        fb, _, intended = pair.partition("=")
        out[fb.strip()] = intended.strip()
    return out


def local_get(client, table, key):
    """GET ?local=1 -> (status, body)."""
    st, body, _ = client.json("GET", with_query(key_path(table, key), local=1), retry=True)
    return st, body


def local_matches(st, body, value):
    """Does a ?local=1 answer show `value` (DELETED: a 404)?"""
    if value is DELETED:
        return st == 404
    return st == 200 and isinstance(body, dict) and json_equal(body.get("value"), value)


class ClusterTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.seed = int(os.environ.get("RINGKV_TEST_SEED") or random.SystemRandom().randrange(2 ** 32))
        self.rng = random.Random(self.seed)
        print(f"\n{self.id()}: seed {self.seed} (replay with RINGKV_TEST_SEED={self.seed})", file=sys.stderr)

    # -- helpers

    def put_all(self, node, table, items, expect=(200, 201), **params):
        """PUT every (key, value) through node -> {key: (body, headers)}; asserts the status."""
        out = {}
        with node.client() as c:
            for key, value in items:
                st, body, hd = c.json("PUT", with_query(key_path(table, key), **params), {"value": value})
                self.assertIn(st, expect, f"PUT {key!r} via {node.name} {params}: {show(st, body, hd)}")
                out[key] = (body, hd)
        return out

    def wait_local(self, node, table, expected, timeout, what):
        """Poll ?local=1 on node until every key shows its expected value."""
        pending = dict(expected)
        last = {}
        with node.client() as c:
            def done():
                for key in list(pending):
                    st, body = local_get(c, table, key)
                    if local_matches(st, body, pending[key]):
                        del pending[key]
                    else:
                        last[key] = show(st, body)
                return not pending
            try:
                wait_for(done, timeout, interval=0.1, what=what)
            except AssertionError as e:
                sample = [f"{k!r}: want {pending[k] if pending[k] is not DELETED else '404'}, "
                          f"got {last.get(k)}" for k in list(pending)[:5]]
                raise AssertionError(f"{e}: {len(pending)} of {len(expected)} keys still wrong on "
                                     f"{node.name}, e.g.\n" + "\n".join(sample)) from None

    # -- a. placement

    def check_placement(self, size):
        table = "place"
        with Cluster(size, prefix=f"a{size}-") as c:
            keys = [key_for(self.rng, "p", i) for i in range(100)]
            acked = {k: value_for(self.rng, i) for i, k in enumerate(keys)}
            for key, (body, _) in self.put_all(c[0], table, acked.items(), expect=(201,)).items():
                self.assertTrue(json_equal(body.get("value"), acked[key]), show(201, body))

            # Read through another node (node 3).
            with c[2].client() as cl:
                for key in keys:
                    st, body, hd = cl.json("GET", key_path(table, key))
                    self.assertEqual(st, 200, f"GET {key!r} via {c[2].name}: {show(st, body, hd)}")
                    self.assertTrue(json_equal(body["value"], acked[key]),
                                    f"GET {key!r} via {c[2].name}: {body['value']!r} != {acked[key]!r}")

            # Every key ends up on exactly N nodes (W=2 acked, the third copy
            # may still be on its way: poll until each has N, never more).
            clients = [node.client() for node in c.nodes]
            try:
                def holders(key):
                    out = []
                    for node, cl in zip(c.nodes, clients):
                        st, body = local_get(cl, table, key)
                        self.assertIn(st, (200, 404), f"GET {key!r}?local=1 on {node.name}: {show(st, body)}")
                        if st == 200:
                            self.assertTrue(json_equal(body["value"], acked[key]),
                                            f"{key!r}?local=1 on {node.name}: {show(st, body)}")
                            out.append(node.name)
                    self.assertLessEqual(len(out), N, f"{key!r} is on {len(out)} nodes {out}, N={N}")
                    return out

                pending = set(keys)

                def all_replicated():
                    for key in list(pending):
                        if len(holders(key)) == N:
                            pending.discard(key)
                    return not pending

                try:
                    wait_for(all_replicated, 10, interval=0.1, what=f"every key on {N} nodes")
                except AssertionError as e:
                    k = next(iter(pending))
                    raise AssertionError(f"{e}: {len(pending)} keys on fewer nodes, e.g. {k!r} on "
                                         f"{holders(k)}") from None

                # Final pass: exactly N holders, and they are the replicas an
                # R=N read reports (no fallbacks in a healthy cluster).
                per_node = {node.name: 0 for node in c.nodes}
                with c[2].client() as cl:
                    for key in keys:
                        have = holders(key)
                        self.assertEqual(len(have), N, f"{key!r} held by {have}")
                        for name in have:
                            per_node[name] += 1
                        st, body, hd = cl.json("GET", with_query(key_path(table, key), r=N))
                        self.assertEqual(st, 200, f"GET {key!r}?r={N}: {show(st, body, hd)}")
                        self.assertEqual(sorted(names_header(hd, "x-ringkv-replicas")), sorted(have),
                                         f"{key!r}: X-Ringkv-Replicas of an r={N} read vs the nodes "
                                         f"holding it locally: {hd}")
                        self.assertEqual(fallbacks_header(hd), {}, f"{key!r}: fallbacks in a healthy "
                                                                   f"cluster: {hd}")
                if size > N:
                    for name, count in per_node.items():
                        self.assertGreater(count, 0, f"{name} holds none of {len(keys)} keys: {per_node}")
                        self.assertLess(count, len(keys), f"{name} holds every key: {per_node}")
            finally:
                for cl in clients:
                    cl.close()
            c.check_acked(self, acked, table, via=size - 1)

    def test_a_write_one_node_read_another_3_nodes(self):
        self.check_placement(3)

    def test_a_each_key_on_exactly_3_of_4_nodes(self):
        self.check_placement(4)

    # -- b. a killed replica

    def test_b_killed_replica_writes_continue_and_are_handed_off(self):
        table = "down"
        with Cluster(3, prefix="b") as c:
            victim = c[2]
            pre = {key_for(self.rng, "pre", i): value_for(self.rng, i, "pre") for i in range(40)}
            self.put_all(c[0], table, pre.items())
            # The victim holds the old versions, so updates and deletes it
            # misses are visible as differences on it.
            self.wait_local(victim, table, pre, 10, f"{victim.name} to hold the first writes")
            acked = dict(pre)

            self.assertEqual(c.kill(2), -9)
            missed = {}
            new = [(key_for(self.rng, "new", i), value_for(self.rng, i, "new")) for i in range(80)]
            for j, (key, value) in enumerate(new):
                via = c[j % 2]
                for k, (body, hd) in self.put_all(via, table, [(key, value)], expect=(201,), w=2).items():
                    reps = names_header(hd, "x-ringkv-replicas")
                    self.assertNotIn(victim.name, reps, f"PUT {k!r}: killed node listed as acking: {hd}")
                    self.assertGreaterEqual(len(set(reps)), 2, f"PUT {k!r} w=2: X-Ringkv-Replicas {hd}")
                missed[key] = value
            pre_keys = list(pre)
            for i, key in enumerate(pre_keys[:15]):  # blind updates of keys the victim holds
                value = value_for(self.rng, i, "updated")
                self.put_all(c[i % 2], table, [(key, value)], expect=(200,), w=2)
                missed[key] = value
            with c[1].client() as cl:
                for key in pre_keys[15:25]:  # deletes of keys the victim holds
                    st, body, hd = cl.json("DELETE", with_query(key_path(table, key), w=2))
                    self.assertEqual(st, 200, f"DELETE {key!r} w=2 with a replica down: {show(st, body, hd)}")
                    missed[key] = DELETED
            acked.update(missed)

            # A strict quorum of 3 cannot be met: 503 with acks 2, needed 3.
            # (These keys are not acknowledged, so they are not checked later.)
            with c[0].client() as cl:
                for i in range(3):
                    key = key_for(self.rng, "strict", i)
                    st, body, hd = cl.json("PUT", with_query(key_path(table, key), sloppy="false", w=3),
                                           {"value": i})
                    self.assertEqual(st, 503, f"PUT {key!r}?sloppy=false&w=3 with a node down: "
                                              f"{show(st, body, hd)}")
                    self.assertIsInstance(body, dict, show(st, body, hd))
                    self.assertEqual(body.get("code"), "quorum", show(st, body, hd))
                    self.assertIsInstance(body.get("error"), str, show(st, body, hd))
                    self.assertEqual((body.get("acks"), body.get("needed")), (2, 3), show(st, body, hd))

            # Once the others see it down, no replica write sent to it before
            # the kill can still be waiting for it (their deadlines are far
            # shorter than the detector's): what it missed, it missed.
            c.wait_seen_down(2, 10)
            # Restart: hinted handoff brings every missed write, with no read
            # through the cluster at all (only ?local=1 on the victim).
            c.restart(2, converge=False)
            self.wait_local(victim, table, missed, 15,
                            f"{victim.name} to receive the {len(missed)} writes it missed by handoff")
            c.wait_converged()
            c.check_acked(self, acked, table, via=2)

    # -- c. read repair

    def test_c_read_repair_fixes_a_stale_replica(self):
        table = "repair"
        # Anti-entropy off everywhere: a restarted node and its peers compare
        # trees at once, which could bring the new values before any read
        # (and with fast RPC often did); this test is about read repair.
        with Cluster(3, prefix="c", extra_args=("--anti-entropy", "off")) as c:
            stale_node = c[2]
            old = {key_for(self.rng, "rr", i): value_for(self.rng, i, "old") for i in range(50)}
            self.put_all(c[0], table, old.items())
            self.wait_local(stale_node, table, old, 10, f"{stale_node.name} to hold the first writes")

            self.assertEqual(stale_node.stop(), 0)
            # Write only once every node sees it down: a replica write still
            # queued for it when it restarts would reach it without any read.
            c.wait_seen_down(2, 10)
            acked = {k: value_for(self.rng, i, "new") for i, k in enumerate(old)}
            acked.update({key_for(self.rng, "rrnew", i): value_for(self.rng, i, "fresh") for i in range(20)})
            self.put_all(c[0], table, acked.items(), w=2)

            # Back without handoff: only a read can bring it up to date.
            c.restart(2, extra_args=["--handoff", "off"])
            with stale_node.client() as cl:
                fresh = [k for k, v in acked.items() if local_matches(*local_get(cl, table, k), v)]
            self.assertEqual(fresh, [], f"{stale_node.name} started with --handoff off and "
                                        f"--anti-entropy off already has new values before any "
                                        f"read")

            with c[0].client() as cl:
                for key, value in acked.items():
                    st, body, hd = cl.json("GET", with_query(key_path(table, key), r=N))
                    self.assertEqual(st, 200, f"GET {key!r}?r={N}: {show(st, body, hd)}")
                    self.assertTrue(json_equal(body["value"], value),
                                    f"GET {key!r}?r={N} returned {body['value']!r}, newest is {value!r}")
                    self.assertIn(stale_node.name, names_header(hd, "x-ringkv-replicas"),
                                  f"GET {key!r}?r={N}: the stale replica did not answer: {hd}")
            self.wait_local(stale_node, table, acked, 10,
                            f"read repair to bring {stale_node.name} the newest values")
            c.check_acked(self, acked, table, via=1)

    # -- d. siblings

    def concurrent_writes(self, c, table, keys, paused=None):
        """Two clients read each key (through nodes 1 and 2) then write with the
        context they read, through nodes 1 and 2; returns {key: resolved value}."""
        resolved = {}
        reads = {}
        for key in keys:
            st, body, hd = c[0].json("PUT", key_path(table, key), {"value": {"v": 0, "key": key}})
            self.assertEqual(st, 201, show(st, body, hd))
        if paused is not None:
            self.wait_local(c[paused], table, {k: {"v": 0, "key": k} for k in keys}, 10,
                            f"{c[paused].name} to hold the first version")
        for key in keys:
            st_a, a, _ = c[0].json("GET", key_path(table, key))
            st_b, b, _ = c[1].json("GET", key_path(table, key))
            self.assertEqual((st_a, st_b), (200, 200), f"{key!r}: {show(st_a, a)} / {show(st_b, b)}")
            reads[key] = (a["context"], b["context"])

        if paused is not None:
            c.pause(paused)
        try:
            values = {}
            for key in keys:
                ctx_a, ctx_b = reads[key]
                va, vb = {"by": "A", "key": key}, {"by": "B", "key": key}
                for node, value, ctx in ((c[0], va, ctx_a), (c[1], vb, ctx_b)):
                    st, body, hd = node.json("PUT", with_query(key_path(table, key), w=2),
                                             {"value": value, "context": ctx})
                    self.assertEqual(st, 200, f"PUT {key!r} via {node.name} with the context it read: "
                                              f"{show(st, body, hd)}")
                    if paused is not None:
                        self.assertNotIn(c[paused].name, names_header(hd, "x-ringkv-replicas"),
                                         f"the paused node acked: {hd}")
                values[key] = (va, vb)

            contexts = {}
            for key in keys:
                st, body, hd = c[0].json("GET", with_query(key_path(table, key), siblings="all"))
                self.assertEqual(st, 300, f"GET {key!r}?siblings=all after two concurrent writes: "
                                          f"{show(st, body, hd)}")
                self.assertIsInstance(body.get("siblings"), list, show(st, body))
                got = sorted((s.get("value") for s in body["siblings"]), key=harness.dumps)
                want = sorted(values[key], key=harness.dumps)
                self.assertTrue(json_equal(got, want), f"{key!r}: siblings {got!r}, expected {want!r}")
                self.assertIsInstance(body.get("context"), str, show(st, body))
                contexts[key] = body["context"]
        finally:
            if paused is not None:
                c.resume(paused)

        for i, key in enumerate(keys):
            merged = {"merged": sorted(v["by"] for v in values[key]), "key": key}
            st, body, hd = c[i % 2].json("PUT", with_query(key_path(table, key), w=2),
                                         {"value": merged, "context": contexts[key]})
            self.assertEqual(st, 200, f"PUT {key!r} with the siblings' context: {show(st, body, hd)}")
            self.assertEqual(body.get("siblings"), 1, f"PUT {key!r} with the siblings' context did not "
                                                      f"resolve them: {show(st, body, hd)}")
            resolved[key] = merged
        for i, key in enumerate(keys):
            via = c[(i + 1) % 2]
            st, body, hd = via.json("GET", key_path(table, key))
            self.assertEqual(st, 200, f"GET {key!r} after resolving: {show(st, body, hd)}")
            self.assertTrue(json_equal(body["value"], resolved[key]), show(st, body))
            self.assertEqual(body.get("siblings"), 1, show(st, body))
            st, body, hd = via.json("GET", with_query(key_path(table, key), siblings="all"))
            self.assertEqual(st, 200, f"GET {key!r}?siblings=all after resolving: {show(st, body, hd)}")
        return resolved

    def test_d_concurrent_writes_make_siblings_and_a_context_resolves_them(self):
        table = "sib"
        with Cluster(3, prefix="d") as c:
            acked = self.concurrent_writes(c, table, [key_for(self.rng, "s", i) for i in range(5)])
            # Same again with node 3 paused (SIGSTOP) during the two writes.
            keys = [key_for(self.rng, "sp", i) for i in range(5)]
            resolved = self.concurrent_writes(c, table, keys, paused=2)
            # The paused node catches up to the resolved state alone.
            with c[2].client() as cl:
                pending = dict(resolved)

                def caught_up():
                    for key in list(pending):
                        st, body, _ = cl.json("GET", with_query(key_path(table, key), local=1,
                                                                 siblings="all"), retry=True)
                        if st == 200 and json_equal(body.get("value"), pending[key]) \
                                and body.get("siblings") == 1:
                            del pending[key]
                    return not pending
                wait_for(caught_up, 15, interval=0.1,
                         what=f"the paused node {c[2].name} to hold only the resolved values locally")
            acked.update(resolved)
            c.check_acked(self, acked, table, via=2)

    # -- d2. a paused replica and targeted reads

    def test_d2_paused_replica_does_not_hold_up_r2_reads(self):
        """A read asks R replicas; when one of them is paused (SIGSTOP: alive
        to the failure detector for seconds, answering nothing), the read
        asks the other replica after the speculative delay instead of
        waiting for the quorum timeout. The reads carry a 60 s quorum
        timeout and the client gives up after 20 s, so a read that waited
        for the paused replica fails here."""
        table = "paused"
        with Cluster(3, prefix="p", extra_args=("--read-repair-percent", "0")) as c:
            keys = [key_for(self.rng, "p", i) for i in range(40)]
            acked = {}
            with c[0].client() as cl:
                for i, key in enumerate(keys):
                    value = value_for(self.rng, i, "paused")
                    st, body, hd = cl.json("PUT", with_query(key_path(table, key), w=3), {"value": value})
                    self.assertIn(st, (200, 201), f"PUT {key!r}: {show(st, body, hd)}")
                    acked[key] = value
            c.pause(1)
            try:
                for via in (0, 2):
                    with c[via].client(timeout=20) as cl:
                        for key in keys:
                            st, body, hd = cl.json("GET", with_query(key_path(table, key), r=2,
                                                                     timeout_ms=60000))
                            self.assertEqual(st, 200, f"GET {key!r} via {c[via].name} with "
                                                      f"{c[1].name} paused: {show(st, body, hd)}")
                            self.assertTrue(json_equal(body["value"], acked[key]),
                                            f"GET {key!r}: {body['value']!r} != {acked[key]!r}")
                            self.assertNotIn(c[1].name, names_header(hd, "x-ringkv-replicas"),
                                             f"GET {key!r}: the paused node answered? {hd}")
            finally:
                c.resume(1)
            c.check_acked(self, acked, table, via=1)

    # -- e. bad parameters

    def test_e_bad_quorum_parameters_are_400_and_write_nothing(self):
        table = "params"
        with Cluster(3, prefix="e") as c:
            st, body, _ = c[0].json("PUT", key_path(table, "exists"), {"value": "original"})
            self.assertEqual(st, 201, show(st, body))
            acked = {"exists": "original"}

            def expect_400(node, method, path, obj=harness._NOBODY):
                st, body, hd = node.json(method, path, obj)
                self.assertEqual(st, 400, f"{method} {path} via {node.name}: {show(st, body, hd)}")
                self.assertIsInstance(body, dict, f"{method} {path}: not JSON: {show(st, body)}")
                self.assertIsInstance(body.get("error"), str, show(st, body))
                self.assertEqual(body.get("code"), "bad_param", f"{method} {path}: {show(st, body)}")

            for node in (c[0], c[1]):
                for q in ({"r": 0}, {"r": 4}, {"r": "abc"}, {"timeout_ms": "abc"}):
                    expect_400(node, "GET", with_query(key_path(table, "exists"), **q))
                for q in ({"w": 0}, {"w": 4}, {"w": "x"}, {"timeout_ms": "abc"}):
                    expect_400(node, "PUT", with_query(key_path(table, "never"), **q), {"value": "no"})
                    expect_400(node, "PUT", with_query(key_path(table, "exists"), **q), {"value": "changed"})
                    expect_400(node, "DELETE", with_query(key_path(table, "exists"), **q))

            # Nothing of that was written.
            st, body, hd = c[2].json("GET", with_query(key_path(table, "never"), r=N))
            self.assertEqual(st, 404, f"a rejected PUT wrote: {show(st, body, hd)}")

            # The bounds themselves are fine.
            for r in (1, N):
                st, body, hd = c[1].json("GET", with_query(key_path(table, "exists"), r=r, timeout_ms=5000))
                self.assertEqual(st, 200, f"GET r={r}: {show(st, body, hd)}")
                self.assertEqual(body["value"], "original", show(st, body))
            for w in (1, N):
                key = f"w{w}"
                st, body, hd = c[1].json("PUT", with_query(key_path(table, key), w=w, timeout_ms=5000),
                                         {"value": w})
                self.assertEqual(st, 201, f"PUT w={w}: {show(st, body, hd)}")
                acked[key] = w
            c.check_acked(self, acked, table, via=2)

    # -- f. five nodes: convergence, failure detection, sloppy quorum

    def test_f_five_nodes_converge_detect_a_kill_and_cover_it(self):
        table = "five"
        with Cluster(5, prefix="f") as c:
            self.assertLessEqual(c.converged_after, 5.0,
                                 f"5-node cluster took {c.converged_after:.2f}s after the last join "
                                 f"to converge")
            acked = {key_for(self.rng, "f", i): value_for(self.rng, i) for i in range(50)}
            self.put_all(c[0], table, acked.items())

            victim = c[2]
            self.assertEqual(c.kill(2), -9)
            c.wait_seen_down(2, 10)
            for name, view in c.views().items():
                self.assertIsInstance(view, dict, f"GET /cluster on {name}: {view}")
                m = Cluster.member(view, victim.name)
                self.assertIsNotNone(m, f"{name} no longer lists the down node {victim.name}: {view}")
                self.assertEqual(m.get("status"), "member",
                                 f"{name} changed the ring status of a down node: {m}")

            # A sloppy quorum: W=3 still succeeds, with fallbacks standing in.
            hinted = {}
            alive = {node.name for node in c.nodes if node is not victim}
            later = {key_for(self.rng, "g", i): value_for(self.rng, i, "down") for i in range(50)}
            for j, (key, value) in enumerate(later.items()):
                via = c[[0, 1, 3, 4][j % 4]]
                res = self.put_all(via, table, [(key, value)], expect=(201,), w=3)
                _, hd = res[key]
                reps = names_header(hd, "x-ringkv-replicas")
                self.assertNotIn(victim.name, reps, f"PUT {key!r}: a down node acked: {hd}")
                self.assertGreaterEqual(len(set(reps)), 3, f"PUT {key!r} w=3: {hd}")
                fbs = fallbacks_header(hd)
                for fb, intended in fbs.items():
                    self.assertEqual(intended, victim.name, f"PUT {key!r}: fallback for a live node: {hd}")
                    self.assertIn(fb, alive, f"PUT {key!r}: unknown fallback {fb!r}: {hd}")
                if fbs:
                    hinted[key] = value
            acked.update(later)
            self.assertTrue(hinted, f"none of {len(later)} sloppy w=3 writes used a fallback for "
                                    f"{victim.name}")

            c.restart(2)
            self.wait_local(victim, table, hinted, 15,
                            f"fallbacks to hand {len(hinted)} writes over to {victim.name}")
            c.check_acked(self, acked, table, via=4)

    # -- g. wrong secret, garbage on the RPC port

    def test_g_wrong_secret_cannot_join_and_rpc_garbage_is_harmless(self):
        table = "guard"
        with Cluster(3, prefix="g") as c:
            acked = {key_for(self.rng, "g", i): value_for(self.rng, i) for i in range(30)}
            self.put_all(c[0], table, acked.items())

            intruder = Node(name="g-intruder", n=3, r=2, w=2, join=[c[0].rpc_addr],
                            env={"CLUSTER_SECRET": "not-the-cluster-secret-" + "x" * 16})
            try:
                def listed_by():
                    who = []
                    for node in c.nodes:
                        view = c.cluster_view(node)
                        for m in view["members"]:
                            if m.get("name") == intruder.name or m.get("http") == intruder.http_addr \
                                    or m.get("rpc") == intruder.rpc_addr:
                                who.append(f"{node.name} lists {m}")
                        st, members, _ = node.json("GET", "/membership")
                        self.assertEqual(st, 200, show(st, members))
                        self.assertIsInstance(members, list, show(st, members))
                        if intruder.http_addr in members:
                            who.append(f"{node.name} /membership {members}")
                    return who

                intruder.launch()
                deadline = time.monotonic() + 30
                while intruder.running() and time.monotonic() < deadline:
                    self.assertEqual(listed_by(), [], "a node with the wrong secret got listed")
                    intruder.wait_exit(0.2)
                rc = intruder.wait_exit(0)
                if rc is not None:
                    self.assertNotEqual(rc, 0, f"the intruder exited 0:\n{intruder.log_tail()}")
                self.assertEqual(listed_by(), [], "a node with the wrong secret got listed")
                log = "\n".join(line for line in intruder.log_text().splitlines()
                                if not line.startswith("=== harness"))
                self.assertRegex(log, re.compile(
                    r"(could not|cannot|can't|failed to|unable to|did not) join|join\w* (failed|refused|"
                    r"rejected|timed out)|(wrong|bad|mismatch\w*) (cluster )?secret|no (answer|reply|response)"
                    r"|timed? ?out|refused|rejected|unreachable|decrypt|authenticat", re.I),
                    f"the intruder's log does not say why it is not in the cluster:\n{log[-3000:]}")
            finally:
                intruder.cleanup()

            # 10,000 bytes of garbage at node 2's RPC port, over several
            # connections; two stay open (half a handshake, half a message)
            # while the cluster is used.
            target = c[1]
            rng = self.rng

            def rnd(n):
                return bytes(rng.getrandbits(8) for _ in range(n))

            sp_req = b"\x00SP\x00\x00\x30\x00\x00"      # NNG SP header, protocol REQ0 (48)
            sp_other = b"\x00SP\x00\x00\x70\x00\x00"    # a valid header, protocol PUB0
            msg = lambda payload: struct.pack(">Q", len(payload)) + payload  # noqa: E731
            reqid = lambda n: struct.pack(">I", 0x80000000 | n)  # noqa: E731
            payloads = [
                rnd(1500),
                sp_req + rnd(1200),
                sp_req + msg(reqid(1) + b"RK\x01\x01" + rnd(8) + rnd(24) + rnd(600))
                       + msg(reqid(2) + b"RK\x01\x00" + rnd(8) + struct.pack(">I", 10 ** 6) + rnd(300))
                       + msg(reqid(3) + b"RK\x01\x00" + rnd(8) + struct.pack(">I", 40) + rnd(200)),
                sp_req + struct.pack(">Q", 2 ** 63 - 1) + rnd(800),
                sp_other + rnd(700),
                sp_req + msg(rnd(2000)),
            ]
            held_payloads = [sp_req[:5], sp_req + struct.pack(">Q", 100000) + rnd(100)]
            used = sum(map(len, payloads)) + sum(map(len, held_payloads))
            payloads.append(rnd(10000 - used))
            self.assertEqual(sum(map(len, payloads)) + sum(map(len, held_payloads)), 10000)

            held = []
            try:
                for p in held_payloads:
                    s = socket.create_connection(("127.0.0.1", target.rpc_port), timeout=5)
                    s.sendall(p)
                    held.append(s)
                for p in payloads:
                    s = socket.create_connection(("127.0.0.1", target.rpc_port), timeout=5)
                    try:
                        s.sendall(p)
                    except OSError:
                        pass  # the node may hang up on garbage
                    finally:
                        s.close()

                self.assertTrue(target.running(), f"{target.name} died from RPC garbage:\n{target.log_tail()}")
                self.assertEqual(target.health()["node"], target.name)
                # Writes needing every replica, coordinated by the target and by
                # another node, then reads needing every replica.
                more = {key_for(rng, "after", i): value_for(rng, i, "after") for i in range(30)}
                items = list(more.items())
                self.put_all(target, table, items[:15], expect=(201,), w=N)
                self.put_all(c[2], table, items[15:], expect=(201,), w=N)
                acked.update(more)
                with c[0].client() as cl:
                    for key, value in more.items():
                        st, body, hd = cl.json("GET", with_query(key_path(table, key), r=N))
                        self.assertEqual(st, 200, f"GET {key!r}?r={N} after the garbage: {show(st, body, hd)}")
                        self.assertTrue(json_equal(body["value"], value), show(st, body))
                c.wait_converged(5)
            finally:
                for s in held:
                    s.close()
            self.assertTrue(target.running(), f"{target.name} died:\n{target.log_tail()}")
            c.check_acked(self, acked, table, via=1)


if __name__ == "__main__":
    print(f"ringkvd: {harness.RINGKVD}", file=sys.stderr)
    unittest.main()
