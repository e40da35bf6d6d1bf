"""Membership changes (issue 4) on loopback: the ring grows and shrinks under
load, replicas converge by anti-entropy alone, and deletes stay deleted.

- a: a 3-node cluster holding 50,000 keys gets a 4th node (--join) while a
  client keeps writing new keys and reading (and updating) old ones: no read
  returns 404 or an older value for an acknowledged key; afterwards every key
  is on exactly N nodes (each node's own listing) and each node holds its
  fair share (N/4 of the keys) within 20%;
- b: `ringkv cluster leave` on one node of four, same load and checks; the
  node exits 0 by itself once it has handed everything off;
- c: a node is stopped, 10,000 keys are written, the hints for it are
  dropped (POST /cluster/hints/drop), it is restarted: anti-entropy alone
  gives it every key within the interval + 30 s, moving less than 5x the
  size of what it missed;
- d: keys deleted while a replica was down stay deleted after it returns,
  before and after the tombstones' grace period, also when it stays down
  longer than the grace period;
- e: kill -9 of a node sending its ranges to a joining node, then restart:
  the handoff resumes and completes; nothing is lost, and nothing is
  duplicated as a sibling.

Every deadline is generous and polled; nothing asserts how fast a change is
(c's interval + 30 s is the acceptance itself). Phase timings go to stderr.
RINGKV_MEMBERSHIP_KEYS overrides the 50,000 keys of a and b (for a quick
local run; the acceptance figure is the default).
"""

import http.client
import os
import random
import re
import sys
import time
import unittest

import harness
from harness import (DELETED, Cluster, Load, json_equal, key_path, local_keys, local_store,
                     put_many, run_cli, show, wait_for, with_query)

N = 3
BIG = int(os.environ.get("RINGKV_MEMBERSHIP_KEYS") or 50000)
SETTLE_TIMEOUT = 120  # a join or leave of 50,000 keys, all its handoff included
TRANSIENT = (AssertionError, OSError, http.client.HTTPException)


def metric(node, name):
    """The value of one Prometheus sample (name with its labels, exactly as
    printed) in a node's GET /metrics; AssertionError when absent."""
    status, _, body = node.request("GET", "/metrics")
    text = body.decode("utf-8", "replace")
    if status != 200:
        raise AssertionError(f"GET /metrics on {node.name}: {show(status, body)}")
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    if m is None:
        raise AssertionError(f"GET /metrics on {node.name} has no sample {name}")
    return float(m.group(1))


class MembershipTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.seed = int(os.environ.get("RINGKV_TEST_SEED") or random.SystemRandom().randrange(2 ** 32))
        self.rng = random.Random(self.seed)
        self.t0 = time.monotonic()
        print(f"\n{self.id()}: seed {self.seed} (replay with RINGKV_TEST_SEED={self.seed})", file=sys.stderr)

    def log(self, msg):
        print(f"  [{time.monotonic() - self.t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    # -- data

    def key_for(self, prefix, i):
        # Some keys need percent-encoding, so handoff and listings carry
        # more than plain ASCII.
        return f"{prefix}-{i:06d}" + ("", "", "", "/x", " y", "\u00e9")[i % 6]

    def value_for(self, i, tag, pad=20):
        """A JSON object of about pad + 60 bytes."""
        return {"i": i, "tag": tag, "s": "".join(self.rng.choice("ab\u00e9/ %") for _ in range(6)),
                "f": self.rng.random() < 0.5, "pad": self.rng.randbytes((pad + 1) // 2).hex()[:pad]}

    def preload(self, c, table, count, prefix, nodes=None, pad=20, **params):
        """PUT count new keys through the nodes (pipelined) -> {key: value}."""
        acked = {self.key_for(prefix, i): self.value_for(i, prefix, pad) for i in range(count)}
        started = time.monotonic()
        put_many(nodes or c.nodes, table, acked.items(), **params)
        secs = time.monotonic() - started
        self.log(f"loaded {count} keys into {table!r} {params or ''} in {secs:.1f}s "
                 f"({count / max(secs, 1e-9):.0f}/s)")
        return acked

    def log_load(self, load):
        self.log(f"load: {load.summary()}")
        if load.counts["update 201 ok"]:
            self.log(f"note: {load.counts['update 201 ok']} updates with the context just read were "
                     f"answered 201 Created (\"no live value before\") instead of 200")

    # -- membership

    def settle_state(self, c, members, removed=()):
        """None once every node in members lists exactly members as alive
        members (and each of removed as removed) and reports no range left
        to hand off; else what is not there yet."""
        want = {n.name for n in members}
        gone = {n.name for n in removed}
        for node in members:
            if not node.running():
                return f"{node.name} is not running (exit code {node.proc.poll()})"
            try:
                view = c.cluster_view(node)
            except TRANSIENT as e:
                return f"GET /cluster on {node.name}: {e}"
            sync = view.get("sync")
            if not isinstance(sync, dict):
                raise AssertionError(f"GET /cluster on {node.name} has no \"sync\" object (is the "
                                     f"sync service in this build?): {show(200, view)}")
            seen = {m.get("name"): (m.get("status"), m.get("liveness")) for m in view["members"]}
            for name in sorted(want):
                if seen.get(name) != ("member", "alive"):
                    return f"{node.name} sees {name} as {seen.get(name)}"
            for name in sorted(gone):
                if name not in seen or seen[name][0] != "removed":
                    return f"{node.name} sees {name} as {seen.get(name)}, not removed"
            extra = sorted(n for n, (st, _) in seen.items() if st != "removed" and n not in want)
            if extra:
                return f"{node.name} still lists {extra}: {seen}"
            if sync.get("ranges_pending") != 0:
                return f"{node.name}: sync.ranges_pending = {sync.get('ranges_pending')}"
        return None

    def sync_report(self, c, nodes):
        out = []
        for node in nodes:
            if not node.running():
                out.append(f"  {node.name}: not running")
                continue
            try:
                out.append(f"  {node.name} sync: {c.sync_stats(node)}")
            except TRANSIENT as e:
                out.append(f"  {node.name}: {e}")
        return "\n".join(out)

    def wait_settled(self, c, members, removed=(), timeout=SETTLE_TIMEOUT, also=None, what=""):
        """Poll settle_state (and also(), a string while not done) until both are done."""
        last = ["not polled"]

        def done():
            state = self.settle_state(c, members, removed)
            if state is None and also is not None:
                state = also()
            last[0] = state
            return state is None

        started = time.monotonic()
        try:
            wait_for(done, timeout, interval=0.2, what=what or "the membership change to complete")
        except AssertionError as e:
            if "timed out" not in str(e):
                raise
            raise AssertionError(f"{e}; last: {last[0]}\n{c.summary(c.views())}\n"
                                 f"{self.sync_report(c, members)}") from None
        self.log(f"settled in {time.monotonic() - started:.1f}s: "
                 f"{', '.join(n.name for n in members)} members, no range pending")

    # -- placement

    def resolve_uncertain(self, c, nodes, table, uncertain):
        """Writes that got no acknowledgement may or may not have been applied:
        read each with r=N (which also repairs the replicas) -> {key: value}
        of those that exist. A value nobody wrote is a failure."""
        if not uncertain:
            return {}
        keys = list(uncertain)
        results = harness.get_many(nodes[:1], table, keys, conns=2, r=N)
        out, bad = {}, []
        for key, (st, body) in zip(keys, results):
            possible = uncertain[key]
            if st == 200 and isinstance(body, dict) and any(
                    p is not DELETED and json_equal(body.get("value"), p) for p in possible):
                out[key] = body["value"]
            elif st == 404 and DELETED in possible:
                continue
            else:
                bad.append(f"{key!r}: r={N} read gave {show(st, body)}, possible {possible!r}")
        self.assertEqual(bad, [], f"{len(bad)} of {len(uncertain)} keys whose write was not "
                                  f"acknowledged read wrong (first 10):\n" + "\n".join(bad[:10]))
        self.log(f"{len(uncertain)} unacknowledged writes: {len(out)} applied, "
                 f"{len(uncertain) - len(out)} not")
        return out

    def check_placement(self, c, nodes, table, expected, timeout=60, sample=2000, store_limit=2000):
        """Every key of expected ({key: value}) on exactly N of nodes (their own
        listings), with its value and one sibling on each; no other key in
        table anywhere; each node holding N/len(nodes) of the keys within 20%;
        and a sample read back with r=N."""
        state = {}

        def placed():
            lists = {node.name: local_keys(node, table) for node in nodes}
            holders = {}
            for name, keys in lists.items():
                for key in keys:
                    holders.setdefault(key, []).append(name)
            wrong = {k: sorted(holders.get(k, [])) for k in expected if len(holders.get(k, [])) != N}
            unknown = {k: sorted(h) for k, h in holders.items() if k not in expected}
            state.update(lists=lists, wrong=wrong, unknown=unknown)
            return not wrong and not unknown

        started = time.monotonic()
        try:
            wait_for(placed, timeout, interval=0.5, what=f"every key on exactly {N} nodes")
        except AssertionError as e:
            if "timed out" not in str(e):
                raise
            wrong, unknown = state["wrong"], state["unknown"]
            by_count = {}
            for holders in wrong.values():
                by_count[len(holders)] = by_count.get(len(holders), 0) + 1
            raise AssertionError(
                f"{e}: {len(wrong)} of {len(expected)} keys are not on exactly {N} nodes "
                f"(keys by number of holders: {by_count}), e.g. "
                f"{[(k, h) for k, h in list(wrong.items())[:5]]}; {len(unknown)} keys nobody "
                f"wrote or all deleted, e.g. {list(unknown.items())[:5]}") from None
        self.log(f"every one of {len(expected)} keys on exactly {N} nodes "
                 f"(after {time.monotonic() - started:.1f}s)")

        # Each holder has the acknowledged value, as one sibling.
        bad = []
        for node in nodes:
            for key, item in local_store(node, table, limit=store_limit).items():
                want = expected.get(key)
                if not json_equal(item.get("value"), want) or item.get("siblings") != 1:
                    bad.append(f"{key!r} on {node.name}: {show(200, item)}, acknowledged {want!r}")
        self.assertEqual(bad, [], f"{len(bad)} replicas hold another value or several siblings "
                                  f"(first 10):\n" + "\n".join(bad[:10]))

        # Balance: N copies of each key over len(nodes) nodes.
        fair = N * len(expected) / len(nodes)
        counts = {name: len(keys) for name, keys in state["lists"].items()}
        self.log(f"keys per node {counts}, fair share {fair:.0f}")
        for name, count in counts.items():
            self.assertLessEqual(abs(count - fair), 0.2 * fair,
                                 f"{name} holds {count} keys, fair share {fair:.0f} +-20%: {counts}")

        keys = list(expected)
        if sample and len(keys) > sample:
            keys = self.rng.sample(keys, sample)
        via = len(c.nodes) - 1 if c.nodes[-1] in nodes else c.nodes.index(nodes[0])
        c.check_acked_bulk(self, {k: expected[k] for k in keys}, table, via=via)

    # -- a. join under load

    def test_a_join_under_load(self):
        table = "grow"
        with Cluster(3, prefix="a") as c:
            acked = self.preload(c, table, BIG, "a")
            load = Load(c.nodes, table, initial=acked, seed=self.seed, prefix="a-load")
            load.start()
            try:
                wait_for(lambda: load.counts["write ok"] >= 50, 30, what="the load to get going")
                joiner = c.add_node("a4", via=0)
                self.log(f"{joiner.name} started, joining through {c[0].name}")
                load.add_node(joiner)
                self.wait_settled(c, c.nodes, what=f"{joiner.name} to join")
                # Keep reading and writing on the new ring for a while: the
                # copies handed off have been dropped by now.
                ops = sum(load.counts.values())
                wait_for(lambda: sum(load.counts.values()) >= ops + 500, 60,
                         what="500 more operations on the grown ring")
            finally:
                load.stop()
            self.log_load(load)
            load.assert_ok(self)
            expected = load.acked
            expected.update(self.resolve_uncertain(c, c.nodes, table, load.uncertain))
            self.check_placement(c, c.nodes, table, expected)

    # -- b. leave under load

    def test_b_leave_under_load(self):
        table = "shrink"
        with Cluster(4, prefix="b") as c:
            acked = self.preload(c, table, BIG, "b")
            leaver = c[2]
            stay = [n for n in c.nodes if n is not leaver]
            load = Load(stay, table, initial=acked, seed=self.seed, prefix="b-load")
            load.start()
            try:
                wait_for(lambda: load.counts["write ok"] >= 50, 30, what="the load to get going")
                p = run_cli("cluster", "leave", nodes=leaver)
                self.log(f"ringkv cluster leave on {leaver.name} -> exit {p.returncode}, "
                         f"stdout {p.stdout.strip()!r}, stderr {p.stderr.strip()!r}")
                self.assertEqual(p.returncode, 0, f"ringkv --nodes {leaver.http_addr} cluster leave "
                                                  f"-> exit {p.returncode}\nstdout: {p.stdout!r}\n"
                                                  f"stderr: {p.stderr!r}")

                def exited():
                    rc = leaver.proc.poll()
                    return None if rc is not None else f"{leaver.name} is still running"

                self.wait_settled(c, stay, removed=[leaver], also=exited,
                                  what=f"{leaver.name} to leave and exit")
                rc = leaver.wait_exit(5)
                self.assertEqual(rc, 0, f"{leaver.name} exited with {rc} after leaving\n"
                                        f"--- log tail ---\n{leaver.log_tail()}")
                ops = sum(load.counts.values())
                wait_for(lambda: sum(load.counts.values()) >= ops + 500, 60,
                         what="500 more operations on the shrunk ring")
            finally:
                load.stop()
            self.log_load(load)
            load.assert_ok(self)
            expected = load.acked
            expected.update(self.resolve_uncertain(c, stay, table, load.uncertain))
            self.check_placement(c, stay, table, expected)

    # -- c. anti-entropy alone

    def test_c_anti_entropy_alone_restores_a_node_without_hints(self):
        table = "ae"
        interval_ms = 5000
        with Cluster(3, prefix="c", extra_args=["--anti-entropy-interval-ms", str(interval_ms)]) as c:
            victim = c[2]
            others = [c[0], c[1]]
            # Keys every replica holds already: anti-entropy must find the
            # few that differ among them, not copy everything.
            acked = self.preload(c, table, 10000, "c-base", pad=60, w=N)
            self.assertEqual(victim.stop(), 0)
            # Once the others see it down, no write for it is still queued in
            # an RPC client (it would reach it on return without any repair).
            c.wait_seen_down(2, 15)
            missed = self.preload(c, table, 10000, "c-missed", nodes=others, pad=60, w=2)
            acked.update(missed)
            # Size of the missing data: table + key + value as compact JSON,
            # plus 40 bytes per record for its clock, timestamp and framing.
            missing_bytes = sum(len(table.encode()) + len(k.encode()) + len(harness.dumps(v)) + 40
                                for k, v in missed.items())

            dropped = {}
            for node in others:
                st, body, hd = node.json("POST", "/cluster/hints/drop")
                self.assertEqual(st, 200, f"POST /cluster/hints/drop on {node.name}: {show(st, body, hd)}")
                self.assertIsInstance(body, dict, show(st, body))
                self.assertIsInstance(body.get("dropped"), int, show(st, body))
                dropped[node.name] = body["dropped"]
            self.log(f"hints dropped: {dropped}")
            self.assertGreater(sum(dropped.values()), 0,
                               f"no hint to drop after {len(missed)} writes that missed {victim.name}")
            delivered = {n.name: metric(n, 'ringkv_hints_total{event="delivered"}') for n in others}
            before = {n.name: c.sync_stats(n) for n in others}

            victim.start()
            restarted = time.monotonic()
            deadline = interval_ms / 1000 + 30
            all_keys = set(acked)
            have = [0]

            def complete():
                keys = set(local_keys(victim, table))
                have[0] = len(keys & all_keys)
                return all_keys <= keys

            try:
                # ?local listings only: no read that could repair anything.
                wait_for(complete, deadline, interval=0.5,
                         what=f"{victim.name} to hold every key again by anti-entropy")
            except AssertionError as e:
                raise AssertionError(f"{e}: it holds {have[0]} of {len(all_keys)}\n"
                                     f"{self.sync_report(c, c.nodes)}") from None
            took = time.monotonic() - restarted
            self.log(f"{victim.name} holds all {len(all_keys)} keys {took:.1f}s after its restart "
                     f"(deadline {deadline:.0f}s)")

            mine = c.sync_stats(victim)
            peers = {n.name: c.sync_stats(n) for n in others}
            moved = mine["ae_bytes_sent"] + mine["handoff_bytes_sent"] + mine["bytes_received"]
            sent_by_all = moved - mine["bytes_received"] + sum(
                peers[name][k] - before[name][k]
                for name in peers for k in ("ae_bytes_sent", "handoff_bytes_sent"))
            self.log(f"missing data {missing_bytes} bytes; {victim.name} sent "
                     f"{mine['ae_bytes_sent'] + mine['handoff_bytes_sent']} and received "
                     f"{mine['bytes_received']} bytes; the whole cluster sent {sent_by_all} bytes "
                     f"for sync meanwhile\n  {victim.name} sync: {mine}\n  peers: {peers}")
            self.assertGreater(mine["ae_exchanges"] + sum(p["ae_exchanges"] - before[n]["ae_exchanges"]
                                                          for n, p in peers.items()), 0,
                               f"no anti-entropy exchange was counted: {mine} {peers}")
            self.assertLess(moved, 5 * missing_bytes,
                            f"{victim.name} moved {moved} bytes (sent + received) to recover "
                            f"{missing_bytes} bytes of missing data: not under 5x")
            self.assertLess(sent_by_all, 5 * missing_bytes,
                            f"the cluster sent {sent_by_all} bytes of sync traffic while "
                            f"{victim.name} recovered {missing_bytes} bytes: not under 5x")
            for n in others:
                now = metric(n, 'ringkv_hints_total{event="delivered"}')
                self.assertEqual(now, delivered[n.name], f"{n.name} delivered hints after they were "
                                                         f"dropped: the repair was not anti-entropy alone")

            bad = []
            for key, item in local_store(victim, table).items():
                if not json_equal(item.get("value"), acked.get(key)) or item.get("siblings") != 1:
                    bad.append(f"{key!r}: {show(200, item)}, acknowledged {acked.get(key)!r}")
            self.assertEqual(bad, [], f"{len(bad)} keys wrong on {victim.name} (first 10):\n"
                                      + "\n".join(bad[:10]))
            c.check_acked_bulk(self, acked, table, via=2)

    # -- d. deletes stay deleted

    def deleted_stay_deleted(self, prefix, down_past_grace):
        table = "tomb"
        grace_ms, interval_ms = 3000, 2000
        args = ["--tombstone-grace-ms", str(grace_ms), "--anti-entropy-interval-ms", str(interval_ms)]
        with Cluster(3, prefix=prefix, extra_args=args) as c:
            victim = c[2]
            # read: quorum-read right after the return (read repair may fix
            # the replica); quiet: left to anti-entropy alone; live: stay.
            groups = {g: {self.key_for(f"{prefix}-{g}", i): self.value_for(i, g) for i in range(30)}
                      for g in ("read", "quiet", "live")}
            for values in groups.values():
                self.put_all(c[0], table, values.items(), expect=(201,), w=N)
            deleted = list(groups["read"]) + list(groups["quiet"])
            live = groups["live"]

            self.assertEqual(victim.stop(), 0)
            c.wait_seen_down(2, 15)
            with c[0].client() as cl0, c[1].client() as cl1:
                for i, key in enumerate(deleted):
                    st, body, hd = (cl0, cl1)[i % 2].json("DELETE", with_query(key_path(table, key), w=2))
                    self.assertEqual(st, 200, f"DELETE {key!r} w=2 with {victim.name} down: "
                                              f"{show(st, body, hd)}")
            deleted_at = time.monotonic()
            dropped = {}
            for node in (c[0], c[1]):
                st, body, hd = node.json("POST", "/cluster/hints/drop")
                self.assertEqual(st, 200, f"POST /cluster/hints/drop on {node.name}: {show(st, body, hd)}")
                self.assertIsInstance(body, dict, show(st, body))
                dropped[node.name] = body.get("dropped")
            self.log(f"hints dropped: {dropped}")
            self.assertGreater(sum(v for v in dropped.values() if isinstance(v, int)), 0,
                               f"no hint to drop after {len(deleted)} deletes that missed "
                               f"{victim.name}: {dropped}")

            if down_past_grace:
                # The two others hold the tombstones past the grace period and
                # then run an anti-entropy round (when purges are looked for)
                # while the third replica, still holding the values, is away.
                wait_for(lambda: time.monotonic() - deleted_at > 1.5 * grace_ms / 1000, 10,
                         what="the grace period to pass")
                base = self.ae_rounds_base(c, (c[0], c[1]))
                wait_for(lambda: self.ae_rounds_since(c, base) >= 1, 60, interval=0.2,
                         what="an anti-entropy round between the running nodes past the grace period")
                self.log(f"{victim.name} stayed down {time.monotonic() - deleted_at:.1f}s after the "
                         f"deletes (grace {grace_ms} ms)")

            c.restart(2)
            self.log(f"{victim.name} is back")
            # Right after the return: a quorum read through the returning node
            # and through another one says 404.
            with victim.client() as cv, c[0].client() as c0:
                for key in groups["read"]:
                    for cl, params in ((cv, {}), (c0, {"r": N})):
                        st, body, hd = cl.json("GET", with_query(key_path(table, key), **params))
                        self.assertEqual(st, 404, f"GET {key!r} {params} via {cl.node.name} right after "
                                                  f"{victim.name} returned: {show(st, body, hd)}")

            clients = [n.client() for n in c.nodes]
            try:
                def local_state(key):
                    out = []
                    for node, cl in zip(c.nodes, clients):
                        st, body, _ = cl.json("GET", with_query(key_path(table, key), local=1), retry=True)
                        out.append((node.name, st, isinstance(body, dict) and "context" in body,
                                    body.get("value") if isinstance(body, dict) else None))
                    return out

                def every(pred, keys):
                    state = {}

                    def cond():
                        for key in keys:
                            s = local_state(key)
                            if not all(pred(x) for x in s):
                                state["last"] = (key, s)
                                return False
                        return True
                    return cond, state

                # (a) Anti-entropy (or the repairs of the reads above) leaves no
                # live copy anywhere.
                cond, state = every(lambda x: x[1] == 404, deleted)
                try:
                    wait_for(cond, interval_ms / 1000 + 30, interval=0.2,
                             what="no replica to hold a live copy of a deleted key")
                except AssertionError as e:
                    raise AssertionError(f"{e}: last {state.get('last')}\n"
                                         f"{self.sync_report(c, c.nodes)}") from None
                self.log("no replica holds a deleted key")

                # (b) Past the grace period the tombstones are purged
                # everywhere (a ?local 404 without a context: no record).
                cond, state = every(lambda x: x[1] == 404 and not x[2], deleted)
                try:
                    wait_for(cond, grace_ms / 1000 + interval_ms / 1000 + 60, interval=0.2,
                             what="the tombstones to be purged on every replica")
                except AssertionError as e:
                    raise AssertionError(f"{e}: last {state.get('last')}\n"
                                         f"{self.sync_report(c, c.nodes)}") from None
                purged = {n.name: c.sync_stats(n)["tombstones_purged"] for n in c.nodes}
                self.log(f"tombstones purged: {purged}")
                for name, count in purged.items():
                    self.assertGreater(count, 0, f"{name} purged tombstones but counted none: {purged}")

                # Two more exchanges on every node after the purge: nothing
                # brings the values back.
                base = self.ae_rounds_base(c, c.nodes)
                wait_for(lambda: self.ae_rounds_since(c, base) >= 2, 4 * interval_ms / 1000 + 30,
                         interval=0.2, what="two more anti-entropy rounds")
                cond, state = every(lambda x: x[1] == 404, deleted)
                self.assertTrue(cond(), f"a deleted key is back on a replica: {state.get('last')}")
                for key, value in live.items():
                    for name, st, _, got in local_state(key):
                        self.assertEqual(st, 200, f"live key {key!r} ?local=1 on {name}: {st}")
                        self.assertTrue(json_equal(got, value), f"live key {key!r} on {name}: {got!r}")
            finally:
                for cl in clients:
                    cl.close()

            for node in c.nodes:
                keys = set(local_keys(node, table))
                self.assertEqual(keys & set(deleted), set(), f"deleted keys listed by {node.name}")
                self.assertEqual(keys, set(live), f"{node.name}'s listing of {table!r}")
            acked = dict(live)
            acked.update({k: DELETED for k in deleted})
            for via in range(3):
                c.check_acked(self, acked, table, via=via)
                c.check_acked(self, acked, table, via=via, r=2)

    @staticmethod
    def ae_rounds_base(c, nodes):
        return {n: c.sync_stats(n)["ae_exchanges"] for n in nodes}

    @staticmethod
    def ae_rounds_since(c, base):
        """Anti-entropy rounds the nodes of base made since: exchanges counted
        by all of them over the number of pairs (one side of a pair may be
        the only one to count an exchange)."""
        pairs = len(base) * (len(base) - 1) // 2
        done = sum(c.sync_stats(n)["ae_exchanges"] - before for n, before in base.items())
        return done / pairs

    def put_all(self, node, table, items, expect=(200, 201), **params):
        with node.client() as c:
            for key, value in items:
                st, body, hd = c.json("PUT", with_query(key_path(table, key), **params), {"value": value})
                self.assertIn(st, expect, f"PUT {key!r} via {node.name} {params}: {show(st, body, hd)}")

    def test_d1_deleted_keys_stay_deleted_after_a_replica_returns(self):
        self.deleted_stay_deleted("d1", down_past_grace=False)

    def test_d2_deleted_keys_stay_deleted_when_the_replica_was_down_past_the_grace(self):
        self.deleted_stay_deleted("d2", down_past_grace=True)

    # -- e. kill -9 in the middle of a handoff

    def test_e_kill_9_mid_handoff_then_restart(self):
        table = "kill"
        # 10,000 values of ~2 KiB (20 MiB) and handoff capped at 1 MiB/s per
        # node: each of the three old nodes has ~5 s of sending to do.
        with Cluster(3, prefix="e", extra_args=["--sync-rate-mb", "1"]) as c:
            acked = self.preload(c, table, 10000, "e", pad=2000, w=N)
            joiner = c.add_node("e4", via=0)
            self.log(f"{joiner.name} started, joining through {c[0].name}")

            def sending():
                for i in range(3):
                    try:
                        st = c.sync_stats(i)
                    except AssertionError as e:
                        if 'has no "sync"' in str(e):
                            raise
                        continue
                    except TRANSIENT:
                        continue
                    # Well into it: some keys sent and some local copies
                    # already dropped (or 1,000 sent), ranges still pending.
                    sent, dropped = st.get("handoff_keys_sent", 0), st.get("handoff_keys_dropped", 0)
                    if st.get("ranges_pending", 0) > 0 and sent >= 200 and (dropped > 0 or sent >= 1000):
                        return i, st
                return None

            try:
                victim, stats = wait_for(sending, 60, interval=0.05,
                                         what="an old node to be in the middle of handing off "
                                              "its ranges")
            except AssertionError as e:
                if "timed out" not in str(e):
                    raise
                raise AssertionError(f"{e}\n{c.summary(c.views())}\n{self.sync_report(c, c.nodes)}") from None
            self.assertEqual(c.kill(victim), -9)
            self.log(f"killed {c[victim].name} (-9) while sending: {stats}")

            c[victim].restart()
            self.log(f"{c[victim].name} restarted")
            self.wait_settled(c, c.nodes, timeout=180, what=f"{joiner.name}'s join to complete")
            after = c.sync_stats(victim)
            self.assertGreater(after.get("handoff_keys_sent", 0), 0,
                               f"{c[victim].name} sent nothing after its restart, though it was killed "
                               f"with {stats['ranges_pending']} ranges pending: {after}")
            self.check_placement(c, c.nodes, table, acked, sample=0, store_limit=500)
            c.check_acked_bulk(self, acked, table, via=3)


if __name__ == "__main__":
    print(f"ringkvd: {harness.RINGKVD}", file=sys.stderr)
    unittest.main()
