#!/usr/bin/env python3
"""Writes the cluster benchmark (tools/bench-cluster.sh) into docs/benchmarks.md.

Two sections, each between <!-- bench:NAME --> markers so reruns replace them:
- cluster-spread: wrk spread over the 3 nodes (spread.tsv): per op the median
  req/s, p50, p95, p99 and max over the rounds;
- cluster-compare: compare.sh's results.tsv (etcd, nginx, the cluster through
  node 1, a single node), medians, and the issue's goals as ratios within
  this one run.
"""
import argparse
import datetime
import importlib.util
import os
import statistics
import sys

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("bench_report", os.path.join(here, "bench-report.py"))
br = importlib.util.module_from_spec(spec)
spec.loader.exec_module(br)
num, load = br.num, br.load

ERRS = ("err_status", "err_connect", "err_read", "err_write", "err_timeout")


def med(rs, col):
    xs = [num(r.get(col)) for r in rs if num(r.get(col)) is not None]
    return statistics.median(xs) if xs else None


def group(rows):
    g = {}
    for r in rows:
        g.setdefault((r["label"], r["op"], r["conns"]), []).append(r)
    return g


def errors(rs):
    return sum(int(num(r.get(k)) or 0) for r in rs for k in ERRS)


def split(conns):
    c = int(conns)
    return "/".join(str(c // 3 + (1 if k < c % 3 else 0)) for k in range(3))


def f3(x):
    return "-" if x is None else f"{x:.3f}"


def spread_section(args, rows, meta, today):
    g = group(rows)
    lines = ["### Cluster: 3 nodes, load spread over all three", "",
             f"Measured {today} with `{args.command}`.",
             f"One wrk per node (-t1, connections split {split(args.conns)}), started together; "
             "their latency histograms are merged, req/s summed. "
             "Medians over the rounds (max: the largest of the rounds). "
             f"GET sends `?r={args.r}`, PUT `?w={args.w}`; mix = {100 - args.mix_pct}% GET / {args.mix_pct}% PUT "
             "over the same keys, random uniform.", "",
             "| op | conns | req/s (median) | p50 ms | p95 ms | p99 ms | max ms | req/s per round | "
             "per node (median round) | errors | max other CPU |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    order = {"get": 0, "put": 1, "mix": 2}
    for (label, op, conns), rs in sorted(g.items(), key=lambda kv: order.get(kv[0][1], 9)):
        rps = [num(r["rps"]) for r in rs]
        m = statistics.median(rps)
        mid = min(rs, key=lambda r: abs(num(r["rps"]) - m))
        lines.append("| {} | {} | {:,.0f} | {} | {} | {} | {} | {} | {} | {} | {:.2f} |".format(
            op, conns, m, f3(med(rs, "p50_ms")), f3(med(rs, "p95_ms")), f3(med(rs, "p99_ms")),
            f3(max(num(r["max_ms"]) for r in rs)), " / ".join(f"{x:,.0f}" for x in rps),
            mid.get("per_node_rps", "-").replace("/", " / "), errors(rs),
            max(num(r.get("cpu_other_cores")) or 0 for r in rs)))
    lines += ["", "```", meta.strip(), "```", ""]
    return "\n".join(lines)


def compare_section(args, rows, spread_rows, meta, today):
    g = group(rows)
    lines = ["### Cluster next to etcd, nginx and a single node, in one run", "",
             f"Measured {today} with `{args.command}`, second part: "
             f"`{args.compare_command}`. "
             "`ringkv` = the 3-node cluster (N=3 R=2 W=2: quorum reads and writes), all "
             "load on node 1 as coordinator, CPU of all three nodes counted as measured; "
             "`single` = one node (N=1 R=1 W=1), same binary and flags; etcd = 3-node Raft "
             "cluster, load on its leader, linearizable GETs. Medians over the rounds.", "",
             "| target | op | conns | req/s (median) | p50 ms | p99 ms | req/s per round | errors | max other CPU |",
             "|---|---|---|---|---|---|---|---|---|"]
    tord = {"ringkv": 0, "single": 1, "etcd": 2, "nginx": 3}
    medrps = {}
    for (label, op, conns), rs in sorted(g.items(), key=lambda kv: (tord.get(kv[0][0], 9), kv[0][1])):
        rps = [num(r["rps"]) for r in rs]
        medrps[(label, op)] = statistics.median(rps)
        lines.append("| {} | {} | {} | {:,.0f} | {} | {} | {} | {} | {:.2f} |".format(
            label, op, conns, medrps[(label, op)], f3(med(rs, "p50_ms")), f3(med(rs, "p99_ms")),
            " / ".join(f"{x:,.0f}" for x in rps), errors(rs),
            max(num(r.get("cpu_other_cores")) or 0 for r in rs)))

    def ratio(a, b):
        return medrps[a] / medrps[b] if medrps.get(a) and medrps.get(b) else None

    def p99(rows_, label, op):
        rs = [r for r in rows_ if r["label"] == label and r["op"] == op]
        return med(rs, "p99_ms")

    def verdict(ok):
        return "met" if ok else "**not met**"

    goals = []
    for op, name in (("put", "quorum PUT"), ("get", "quorum GET")):
        x = ratio(("ringkv", op), ("etcd", op))
        if x is not None:
            goals.append((f"{name} req/s vs etcd's (3 nodes)", "≥ 3x", f"{x:.2f}x", verdict(x >= 3)))
    # p99 goals (issue 9): at most a quarter of etcd's p99 in the same run.
    for op in ("get", "put"):
        ours, theirs = p99(rows, "ringkv", op), p99(rows, "etcd", op)
        if ours is not None and theirs:
            x = ours / theirs
            goals.append((f"p99 of quorum {op.upper()} at {args.conns} connections vs etcd's",
                          "≤ 0.25", f"{x:.2f} ({ours:.2f} vs {theirs:.2f} ms)", verdict(x <= 0.25)))
    for op in ("get", "put", "mix"):
        v = p99(spread_rows, "ringkv-3", op)
        if v is not None:
            goals.append((f"p99 of {op.upper()} at {args.conns} connections (spread over 3 nodes; "
                          "no goal)", "-", f"{v:.2f} ms", "-"))
    x = ratio(("ringkv", "get"), ("single", "get"))
    if x is not None:
        goals.append(("quorum GET req/s vs single-node GET", "≥ 50%", f"{x * 100:.0f}%", verdict(x >= 0.5)))
    x = ratio(("ringkv", "put"), ("single", "put"))
    if x is not None:
        goals.append(("quorum PUT req/s vs single-node PUT (no goal)", "-", f"{x * 100:.0f}%", "-"))
    x = ratio(("ringkv", "get"), ("nginx", "get"))
    if x is not None:
        goals.append(("quorum GET req/s vs nginx static file (no goal)", "-", f"{x * 100:.0f}%", "-"))
    lines += ["", "Goals of the issue, as ratios of medians within this run:", "",
              "| goal | target | this run | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in goals]
    lines += ["", "```", meta.strip(), "```", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--command", required=True)
    ap.add_argument("--spread", required=True, help="spread.tsv of bench-cluster.sh")
    ap.add_argument("--meta", default=None)
    ap.add_argument("--compare", default=None, help="compare.sh output folder")
    ap.add_argument("--compare-command", default="../shared/bench/compare.sh")
    ap.add_argument("--conns", default="32")
    ap.add_argument("--r", default="2")
    ap.add_argument("--w", default="2")
    ap.add_argument("--mix-pct", type=int, default=10)
    ap.add_argument("--into", required=True)
    args = ap.parse_args()
    today = datetime.date.today().isoformat()
    spread = load(args.spread)
    meta = open(args.meta).read() if args.meta else ""
    body = spread_section(args, spread, meta, today)
    br.write_section(args.into, "cluster-spread", body)
    print(body)
    if args.compare:
        # compare.sh's meta ends with etcd's status table (taken before the
        # preload): keep the text lines only
        cmeta = "".join(l for l in open(os.path.join(args.compare, "logs", "meta.txt"))
                        if not l.startswith(("+", "|")))
        body = compare_section(args, load(os.path.join(args.compare, "results.tsv")), spread, cmeta, today)
        br.write_section(args.into, "cluster-compare", body)
        print(body)


if __name__ == "__main__":
    sys.exit(main())
