#!/usr/bin/env python3
"""Helper of tools/bench-sync.sh (stdlib only; every request to 127.0.0.1).

    bench-sync-helper.py stats URL...            one JSON line: each node's /cluster summary
    bench-sync-helper.py watch-join --out TSV --max S URL...
                         polls every node's /cluster once a second until all of
                         them see every member "member" and have sync.ranges_pending
                         0 (exit 0) or S seconds pass (exit 1); one TSV row a tick
    bench-sync-helper.py quiet --max S --hold H URL...
                         waits until no node's ae_exchanges / handoff / received
                         counters move for H s and ranges_pending is 0 everywhere
    bench-sync-helper.py pick --node NAME --count C --prefix P URL
                         C new keys (GET ?r=3 answers 404) whose replicas include NAME
    bench-sync-helper.py put --w W --value-size B URL KEY...
    bench-sync-helper.py count-local URL TABLE   keys in a node's copy (/keys pages)
    bench-sync-helper.py wait-local --max S URL TABLE KEY...
                         polls ?local=1 until every key is there; prints seconds
    bench-sync-helper.py hist --out JSON GROUP...
                         GROUP = comma-separated wrk histogram files of one window
                         (runs made together); windows follow each other. Prints
                         and writes rps, p50/p95/p99/max, errors over all windows
    bench-sync-helper.py report --results JSON --into MD
                         (re)writes the bench:sync part of docs/benchmarks.md
"""
import argparse
import http.client
import json
import sys
import time
import urllib.parse

SYNC_FIELDS = ["ranges_pending", "handoff_keys_sent", "handoff_bytes_sent", "handoff_keys_dropped",
               "keys_received", "bytes_received", "ae_exchanges", "ae_keys_compared",
               "ae_keys_repaired", "ae_bytes_sent", "tombstones_purged"]


def hostport(url):
    u = urllib.parse.urlsplit(url)
    assert u.hostname in ("127.0.0.1", "localhost"), f"refusing non-loopback {url}"
    return u.hostname, u.port or 80


def request(url, method="GET", path="/", body=None, timeout=5):
    h, p = hostport(url)
    c = http.client.HTTPConnection(h, p, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
    finally:
        c.close()


def node_stats(url):
    """/cluster of one node -> {name, members: {name: status}, alive, sync: {...}} or None."""
    try:
        st, _, data = request(url, path="/cluster", timeout=3)
        if st != 200:
            return None
        j = json.loads(data)
    except (OSError, ValueError, http.client.HTTPException):
        return None
    return {"name": j.get("node"),
            "members": {m["name"]: m["status"] for m in j.get("members", [])},
            "alive": sum(1 for m in j.get("members", []) if m.get("liveness") == "alive"),
            "sync": {k: j.get("sync", {}).get(k) for k in SYNC_FIELDS + ["leaving"]}}


def cmd_stats(a):
    print(json.dumps({u: node_stats(u) for u in a.urls}))


def joined(stats, want):
    if any(s is None for s in stats):
        return False
    for s in stats:
        if len(s["members"]) < want or any(v != "member" for v in s["members"].values()):
            return False
        if s["sync"]["ranges_pending"] != 0:
            return False
    return True


def cmd_watch_join(a):
    t0 = time.time()
    cols = ["t_s"] + [f"n{i + 1}_{f}" for i in range(len(a.urls))
                      for f in ("members", "pending", "handoff_keys", "handoff_bytes",
                                "recv_keys", "recv_bytes", "ae_exchanges", "ae_bytes")]
    with open(a.out, "w") as out:
        out.write("\t".join(cols) + "\n")
        while True:
            t = time.time() - t0
            stats = [node_stats(u) for u in a.urls]
            row = [f"{t:.1f}"]
            for s in stats:
                if s is None:
                    row += ["-"] * 8
                    continue
                y = s["sync"]
                row += [",".join(f"{k}:{v}" for k, v in sorted(s["members"].items())),
                        y["ranges_pending"], y["handoff_keys_sent"], y["handoff_bytes_sent"],
                        y["keys_received"], y["bytes_received"], y["ae_exchanges"], y["ae_bytes_sent"]]
            out.write("\t".join(str(x) for x in row) + "\n")
            out.flush()
            if joined(stats, len(a.urls)):
                print(f"{t:.1f}")
                return 0
            if t > a.max:
                return 1
            time.sleep(max(0.0, 1.0 - (time.time() - t0 - t)))


def moving_sig(stats):
    return tuple((s["sync"]["ae_exchanges"], s["sync"]["handoff_keys_sent"], s["sync"]["keys_received"],
                  s["sync"]["ae_bytes_sent"], s["sync"]["ranges_pending"]) if s else None for s in stats)


def cmd_quiet(a):
    t0 = time.time()
    last, since = None, time.time()
    while time.time() - t0 < a.max:
        stats = [node_stats(u) for u in a.urls]
        sig = moving_sig(stats)
        if sig != last or any(s is None or s["sync"]["ranges_pending"] for s in stats):
            last, since = sig, time.time()
        elif time.time() - since >= a.hold:
            print(f"{time.time() - t0:.1f}")
            return 0
        time.sleep(1)
    print(f"{time.time() - t0:.1f}")
    return 1


def cmd_pick(a):
    keys, i = [], 0
    while len(keys) < a.count and i < a.count * 20:
        k = f"{a.prefix}{i:08d}"
        i += 1
        st, h, _ = request(a.url, path=f"/{a.table}/key/{k}?r=3")
        if st != 404:
            raise SystemExit(f"pick: {k} answered {st}, expected 404")
        if a.node in h.get("x-ringkv-replicas", "").split(","):
            keys.append(k)
    if len(keys) < a.count:
        raise SystemExit(f"pick: only {len(keys)} keys with {a.node} as a replica")
    print(" ".join(keys))


def value_of(key, size):
    return (key + "-" + "v" * size)[:size]


def cmd_put(a):
    h, p = hostport(a.url)
    c = http.client.HTTPConnection(h, p, timeout=10)
    bad = 0
    for k in a.keys:
        body = json.dumps({"value": value_of(k, a.value_size)})
        c.request("PUT", f"/{a.table}/key/{k}?w={a.w}", body=body,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status // 100 != 2:
            bad += 1
            print(f"PUT {k}: {r.status}", file=sys.stderr)
    c.close()
    print(f"{len(a.keys) - bad} {bad}")
    return 1 if bad else 0


def cmd_count_local(a):
    h, p = hostport(a.url)
    c = http.client.HTTPConnection(h, p, timeout=30)
    n, after = 0, None
    while True:
        q = "limit=10000" + (f"&after={urllib.parse.quote(after, safe='')}" if after else "")
        c.request("GET", f"/{a.table}/keys?{q}")
        r = c.getresponse()
        j = json.loads(r.read())
        if r.status != 200:
            raise SystemExit(f"count-local: {r.status} {j}")
        keys = j.get("keys", [])
        n += len(keys)
        after = j.get("next")
        if not after or not keys:
            break
    c.close()
    print(n)


def cmd_wait_local(a):
    t0 = time.time()
    missing = list(a.keys)
    while missing and time.time() - t0 < a.max:
        still = []
        for k in missing:
            try:
                st, _, _ = request(a.url, path=f"/{a.table}/key/{k}?local=1", timeout=3)
            except OSError:
                st = 0
            if st != 200:
                still.append(k)
        missing = still
        if missing:
            time.sleep(0.2)
    print(f"{time.time() - t0:.2f} {len(a.keys) - len(missing)}")
    return 1 if missing else 0


def _merge_hist_module():
    """tools/bench-merge-hist.py (a dashed name: loaded by path), whose
    histogram parser and percentile the windows here share."""
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-merge-hist.py")
    spec = importlib.util.spec_from_file_location("bench_merge_hist", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_hist = _merge_hist_module()
parse_hist = _hist.parse
percentile = _hist.percentile


def cmd_hist(a):
    merged, requests, wall, errs, windows = {}, 0, 0.0, {}, []
    for group in a.groups:
        runs = [parse_hist(p) for p in group.split(",") if p]
        wreq = sum(int(r["requests"]) for r, _ in runs)
        wdur = max(float(r["duration_s"]) for r, _ in runs)
        windows.append(round(wreq / wdur, 1))
        requests += wreq
        wall += wdur
        for r, h in runs:
            for k, v in r.items():
                if k.startswith("err_"):
                    errs[k] = errs.get(k, 0) + int(v)
            for v, c in h:
                merged[v] = merged.get(v, 0) + c
    hist = sorted(merged.items())
    total = sum(c for _, c in hist)
    out = {"rps": round(requests / wall, 1) if wall else 0, "requests": requests,
           "seconds": round(wall, 1), "windows_rps": windows,
           "p50_ms": percentile(hist, total, 50) / 1000, "p95_ms": percentile(hist, total, 95) / 1000,
           "p99_ms": percentile(hist, total, 99) / 1000, "max_ms": (hist[-1][0] if hist else 0) / 1000}
    out.update(errs)
    with open(a.out, "w") as f:
        json.dump(out, f)
    print(" ".join(f"{k}={v}" for k, v in out.items() if k != "windows_rps"))


def fmt(n, d=0):
    return f"{n:,.{d}f}"


def cmd_report(a):
    with open(a.results) as f:
        R = json.load(f)
    j, ae, b, d, af = R["join"], R["ae"], R["before"], R["during"], R.get("after")
    mib = 1 << 20
    L = ["<!-- bench:sync -->",
         f"### Join of a 4th node under load, then anti-entropy after a missed write, {fmt(R['keys'])} keys",
         "",
         f"Measured {R['date']} with `{R['command']}`.",
         f"3 nodes N=3 R=2 W=2, {fmt(R['keys'])} keys of {R['value_size']}-byte values loaded "
         f"in {j['load_s']:.0f} s ({fmt(j['load_rps'])} PUT/s, wrk, {R['conns']} connections spread over the 3 nodes, "
         f"{j['load_errors']} errors). `--sync-rate-mb {R['rate_mb']}`, "
         f"`--anti-entropy-interval-ms {R['ae_interval_ms']}`. Client load during the whole join: one wrk per "
         f"node 1-3 ({R['conns']} connections, ?r=2 / ?w=2, {100 - R['put_pct']}/{R['put_pct']} GET/PUT over the loaded "
         f"keys, random uniform), in back-to-back {R['window_s']} s windows; the joiner takes no client load.",
         "",
         "**Join** (node4 started with `--join` while the load runs; done = every node sees 4 members `member` "
         "and `ranges_pending` 0 everywhere):",
         "",
         "| join duration | node4 `member` after | keys moved (handoff_keys_sent, all nodes) | bytes moved (handoff_bytes_sent) | keys/s | MiB/s | keys received by node4 | node4's copy after | AE exchanges during join |",
         "|---|---|---|---|---|---|---|---|---|",
         f"| {j['status']} {j['duration_s']:.0f} s | {j['member_s'] if j['member_s'] is not None else '-'} s | {fmt(j['keys_sent'])} | {fmt(j['bytes_sent'])} ({j['bytes_sent'] / mib:.1f} MiB) "
         f"| {fmt(j['keys_sent'] / max(j['duration_s'], 0.1))} | {j['bytes_sent'] / mib / max(j['duration_s'], 0.1):.2f} "
         f"| {fmt(j['node4_keys_received'])} | {fmt(j['node4_keys'])} keys | {j['ae_exchanges']} |",
         "",
         "**Client load** before vs during the join (histograms of the 3 wrk merged; during = every window "
         "from node4's start to the window in which the join was seen done):",
         "",
         "| window | seconds | req/s | p50 ms | p95 ms | p99 ms | max ms | non-2xx | socket errors | req/s per window |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for name, w in (("before", b), ("during join", d), ("after join", af)):
        if not w:
            continue
        sock = sum(w.get(k, 0) for k in ("err_connect", "err_read", "err_write", "err_timeout"))
        L.append(f"| {name} | {w['seconds']} | {fmt(w['rps'])} | {w['p50_ms']:.3f} | {w['p95_ms']:.3f} | "
                 f"{w['p99_ms']:.3f} | {w['max_ms']:.3f} | {w.get('err_status', 0)} | {sock} | "
                 f"{' / '.join(fmt(x) for x in w['windows_rps'])} |")
    ratio = d["rps"] / b["rps"] if b["rps"] else 0
    L += ["",
          f"During / before: req/s {ratio:.2f} (goal ≥ 0.70: **{'met' if ratio >= 0.7 else 'not met'}**), "
          f"p99 {d['p99_ms'] / b['p99_ms']:.2f}x." if b["p99_ms"] else "",
          "",
          f"**Anti-entropy**: {ae['node']} stopped (SIGTERM), {ae['keys']} new keys written with w=2 "
          f"(all with {ae['node']} among their replicas), hints dropped on the others ({ae['hints_dropped']}), "
          f"{ae['node']} restarted, `POST /cluster/repair` on it; done = all {ae['keys']} keys readable with "
          f"`?local=1` on it.",
          "",
          "| all keys local, from restart | from repair call | AE exchanges (restarted node / peers) | keys repaired | "
          "AE bytes sent by restarted node | bytes received by it | AE bytes sent by peers | total (sent + received) | its copy | total / copy |",
          "|---|---|---|---|---|---|---|---|---|---|",
          f"| {ae['from_restart_s']:.1f} s | {ae['from_repair_s']:.1f} s | {ae['exchanges_node']} / {ae['exchanges_peers']} "
          f"| {ae['keys_repaired']} | {fmt(ae['bytes_sent_node'])} | {fmt(ae['bytes_received_node'])} "
          f"| {fmt(ae['bytes_sent_peers'])} | {fmt(ae['bytes_total'])} ({ae['bytes_total'] / mib:.2f} MiB) "
          f"| {fmt(ae['copy_keys'])} keys, {ae['copy_logical_bytes'] / mib:.1f} MiB logical, "
          f"{ae['copy_disk_bytes'] / mib:.1f} MiB on disk | {100 * ae['bytes_total'] / ae['copy_logical_bytes']:.2f}% "
          f"(goal < 1%: **{'met' if ae['bytes_total'] < 0.01 * ae['copy_logical_bytes'] else 'not met'}**) |",
          "",
          "Logical size = keys in its copy (`/keys`) x (key + value bytes); on disk = `du` of its data directory "
          "(RocksDB, WAL included). Total = AE bytes sent by the restarted node + bytes it received (which are what "
          "its peers sent it), from its restart until the counters stopped moving. keys/s and MiB/s of the join are "
          "over the whole join duration.",
          "",
          "```"]
    L += R["meta"]
    L += ["```", "", "<!-- /bench:sync -->"]
    text = "\n".join(L) + "\n"
    with open(a.into) as f:
        doc = f.read()
    start, end = "<!-- bench:sync -->", "<!-- /bench:sync -->\n"
    if start in doc and end in doc:
        doc = doc[:doc.index(start)] + text + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + "\n\n## Ring changes and anti-entropy\n\n" + text
    with open(a.into, "w") as f:
        f.write(doc)


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("stats"); p.add_argument("urls", nargs="+")
    p = sp.add_parser("watch-join"); p.add_argument("--out", required=True)
    p.add_argument("--max", type=float, required=True); p.add_argument("urls", nargs="+")
    p = sp.add_parser("quiet"); p.add_argument("--max", type=float, required=True)
    p.add_argument("--hold", type=float, default=5); p.add_argument("urls", nargs="+")
    p = sp.add_parser("pick"); p.add_argument("--node", required=True)
    p.add_argument("--count", type=int, required=True); p.add_argument("--prefix", required=True)
    p.add_argument("--table", default="bench"); p.add_argument("url")
    p = sp.add_parser("put"); p.add_argument("--w", type=int, default=2)
    p.add_argument("--value-size", type=int, default=100); p.add_argument("--table", default="bench")
    p.add_argument("url"); p.add_argument("keys", nargs="+")
    p = sp.add_parser("count-local"); p.add_argument("url"); p.add_argument("table")
    p = sp.add_parser("wait-local"); p.add_argument("--max", type=float, required=True)
    p.add_argument("url"); p.add_argument("table"); p.add_argument("keys", nargs="+")
    p = sp.add_parser("hist"); p.add_argument("--out", required=True); p.add_argument("groups", nargs="+")
    p = sp.add_parser("report"); p.add_argument("--results", required=True); p.add_argument("--into", required=True)
    a = ap.parse_args()
    fn = {"stats": cmd_stats, "watch-join": cmd_watch_join, "quiet": cmd_quiet, "pick": cmd_pick,
          "put": cmd_put, "count-local": cmd_count_local, "wait-local": cmd_wait_local,
          "hist": cmd_hist, "report": cmd_report}[a.cmd]
    sys.exit(fn(a) or 0)


if __name__ == "__main__":
    main()
