"""What the quorum lab measures on a running cluster: latencies, t-visibility,
k-staleness and availability, each with plain HTTP requests a client would
make, and what /pbs predicts for the same configuration."""

import http.client
import itertools
import json
import random
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

_local = threading.local()
_counter = itertools.count(1)


def _conn(node):
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    c = conns.get(node.http_port)
    if c is None:
        c = conns[node.http_port] = http.client.HTTPConnection("127.0.0.1", node.http_port,
                                                               timeout=10)
    return c


def request(node, method, path, body=None, retry=True):
    """One request on this thread's keep-alive connection to node ->
    (status, parsed body or None, elapsed ms); status 0 on a transport error.
    A connection the node closed while idle (its keep-alive timeout) is
    reopened and the request sent once more."""
    c = _conn(node)
    start = time.monotonic()
    try:
        c.request(method, path, body=body,
                  headers={"Content-Type": "application/json"} if body else {})
        resp = c.getresponse()
        data = resp.read()
        status = resp.status
    except (OSError, http.client.HTTPException) as e:
        c.close()
        _local.conns.pop(node.http_port, None)
        stale = isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError,
                               ConnectionResetError))
        if retry and stale:
            return request(node, method, path, body, retry=False)
        return 0, None, (time.monotonic() - start) * 1000
    elapsed = (time.monotonic() - start) * 1000
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = None
    return status, parsed, elapsed


def unique_key(prefix):
    return f"{prefix}-{next(_counter)}-{random.getrandbits(32):08x}"


def put(node, key, value, w, timeout_ms=1000, sloppy=True):
    q = f"?w={w}&timeout_ms={timeout_ms}" + ("" if sloppy else "&sloppy=false")
    return request(node, "PUT", f"/lab/key/{urllib.parse.quote(key, safe='')}{q}",
                   json.dumps({"value": value}).encode())


def get(node, key, r, timeout_ms=1000, sloppy=True):
    q = f"?r={r}&timeout_ms={timeout_ms}" + ("" if sloppy else "&sloppy=false")
    return request(node, "GET", f"/lab/key/{urllib.parse.quote(key, safe='')}{q}")


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


def run_all(pool, fn, items):
    return list(pool.map(fn, items))


# ---- latency ----------------------------------------------------------------

def latency(pool, nodes, r, w, count):
    """count writes (w=W) then count reads (r=R) of those keys, through random
    nodes -> {"write": [ms...], "read": [ms...], "errors": n}."""
    keys = [unique_key("lat") for _ in range(count)]
    errors = 0

    def one_put(key):
        status, _, ms = put(random.choice(nodes), key, 1, w)
        return ms if status in (200, 201) else None

    def one_get(key):
        status, _, ms = get(random.choice(nodes), key, r)
        return ms if status in (200, 404) else None

    writes = run_all(pool, one_put, keys)
    reads = run_all(pool, one_get, keys)
    errors = sum(1 for v in writes + reads if v is None)
    return {"write": [v for v in writes if v is not None],
            "read": [v for v in reads if v is not None], "errors": errors}


# ---- t-visibility -------------------------------------------------------------

def two_nodes(nodes, same_node):
    """The node a trial writes through and the one it reads through: the
    same, or (a client that reads through another node) two different."""
    writer = random.choice(nodes)
    if same_node or len(nodes) == 1:
        return writer, writer
    return writer, random.choice([n for n in nodes if n is not writer])


def visibility(pool, nodes, r, w, t_grid, trials, same_node=False):
    """For each t: trials of (write a fresh key with w=W through a node, wait
    t ms after the acknowledgement, read it with r=R through another node,
    or the same one with same_node)
    -> ({t: [consistent, total]}, errors (a write not acknowledged or a read
    not answered in time: not counted), the median client gap in ms)."""
    tasks = [t for t in t_grid for _ in range(trials)]
    random.shuffle(tasks)

    def one(t):
        node, reader = two_nodes(nodes, same_node)
        key = unique_key("vis")
        value = random.getrandbits(48)
        status, _, _ = put(node, key, value, w)
        if status not in (200, 201):
            return t, None, request(node, "GET", "/health")[2]
        acked = time.monotonic()
        delay = acked + t / 1000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        status, body, _ = get(reader, key, r)
        if status not in (200, 404):  # no quorum in time: unavailable, not stale
            return t, None, request(reader, "GET", "/health")[2]
        ok = status == 200 and isinstance(body, dict) and body.get("value") == value
        # The client gap: a read "t ms after the ack" reaches its
        # coordinator t + one HTTP round trip after the coordinator
        # acknowledged the write. A request that does nothing, on the same
        # connection under the same load, measures that round trip.
        return t, ok, request(reader, "GET", "/health")[2]

    out = {t: [0, 0] for t in t_grid}
    errors = 0
    gaps = []
    for t, ok, gap in run_all(pool, one, tasks):
        gaps.append(gap)
        if ok is None:
            errors += 1
            continue
        out[t][0] += 1 if ok else 0
        out[t][1] += 1
    return out, errors, percentile(gaps, 50)


def staleness(pool, nodes, r, w, trials, versions=3, same_node=False):
    """Writes versions 1..3 of a fresh key (each acknowledged before the
    next), then reads it at once, through another node (or the same) ->
    {k: [within k versions, total]}."""
    def one(_):
        node, reader = two_nodes(nodes, same_node)
        key = unique_key("stale")
        for v in range(1, versions + 1):
            status, _, _ = put(node, key, v, w)
            if status not in (200, 201):
                return None
        status, body, _ = get(reader, key, r)
        if status not in (200, 404):
            return None
        seen = body.get("value") if status == 200 and isinstance(body, dict) else 0
        return seen if isinstance(seen, int) else 0

    out = {k: [0, 0] for k in range(1, versions + 1)}
    for seen in run_all(pool, one, range(trials)):
        if seen is None:
            continue
        for k in out:
            out[k][0] += 1 if seen >= versions - k + 1 else 0
            out[k][1] += 1
    return out


# ---- prediction -----------------------------------------------------------------

def predict(nodes, r, w, t_grid, trials=10000, gap_ms=0.0, same_node=False):
    """/pbs of every node for (r, w) at t + gap_ms for each t of t_grid,
    averaged over the nodes (the measurements went through all of them
    alike) -> dict keyed by t, or one with the reason in "error"."""
    ts = "&".join(f"t={t + gap_ms:.3f}" for t in t_grid)
    answers, errors = [], []
    for node in nodes:
        reader = "this" if same_node else "other"
        status, body, _ = request(node, "GET",
                                  f"/pbs?r={r}&w={w}&{ts}&trials={trials}&reader={reader}")
        if status == 200 and isinstance(body, dict):
            answers.append(body)
        else:
            errors.append(f"{node.name}: {status} {body}")
    if not answers:
        return {"error": "; ".join(errors)}
    vis = {}
    for t in t_grid:
        ps = [next((e["p_consistent"] for e in a["t_visibility"]
                    if abs(e["t_ms"] - (t + gap_ms)) < 1e-3), None) for a in answers]
        ps = [p for p in ps if p is not None]
        vis[t] = sum(ps) / len(ps) if ps else None
    kst = {}
    for a in answers:
        for e in a.get("k_staleness", []):
            kst.setdefault(e["k"], []).append(e["p"])
    lat = {}
    for kind in ("read_latency_ms", "write_latency_ms"):
        for p in ("p50", "p99"):
            vals = [a[kind][p] for a in answers if kind in a and p in a[kind]]
            lat[f"{kind[:-11]}_{p}"] = sum(vals) / len(vals) if vals else None
    samples = sum(min(a["samples"].get(x, 0) for x in ("w", "a", "r", "s"))
                  for a in answers if isinstance(a.get("samples"), dict))
    clock = ",".join(sorted({str(a.get("samples", {}).get("clock")) for a in answers}))
    return {"visibility": vis, "k": {k: sum(v) / len(v) for k, v in kst.items()},
            "latency": lat, "samples": samples, "clock": clock, "nodes": len(answers),
            "errors": errors, "elapsed_ms": [a.get("elapsed_ms", 0) for a in answers]}


# ---- availability ---------------------------------------------------------------

def availability(pool, nodes, r, w, attempts, keys, timeout_ms=500, sloppy=True):
    """attempts writes (w=W) and reads (r=R) of keys written before the fault,
    through the nodes that still run -> {"write": {ok, unavailable},
    "read": {ok, not_found, unavailable}}."""
    def one_write(i):
        status, _, _ = put(random.choice(nodes), random.choice(keys), i, w, timeout_ms, sloppy)
        return "ok" if status in (200, 201) else "unavailable"

    def one_read(_):
        status, _, _ = get(random.choice(nodes), random.choice(keys), r, timeout_ms, sloppy)
        if status == 200:
            return "ok"
        return "not_found" if status == 404 else "unavailable"

    out = {"write": {"ok": 0, "unavailable": 0},
           "read": {"ok": 0, "not_found": 0, "unavailable": 0}}
    for res in run_all(pool, one_write, range(attempts)):
        out["write"][res] += 1
    for res in run_all(pool, one_read, range(attempts)):
        out["read"][res] += 1
    return out


def make_pool(threads):
    return ThreadPoolExecutor(max_workers=threads)
