#!/usr/bin/env python3
"""Turns a compare.sh results.tsv into a markdown section of medians.

One row per (target, op, conns): the median req/s, p50 and p99 over the
rounds, each round's req/s, and the ratio of the target's median to the
baseline's median GET at the same connection count (the HTTP ceiling).
The section replaces the one of the same name in --into, between
<!-- bench:NAME --> markers, so reruns update the page in place.
"""
import argparse
import csv
import datetime
import re
import statistics
import sys


def load(path):
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def summarize(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["label"], r["op"], r["conns"]), []).append(r)
    out = []
    for (label, op, conns), rs in groups.items():
        rps = [num(r["rps"]) for r in rs if num(r["rps"]) is not None]
        out.append({
            "label": label, "op": op, "conns": int(conns),
            "rps": statistics.median(rps) if rps else 0.0,
            "rounds": rps,
            "p50": statistics.median([num(r["p50_ms"]) for r in rs]),
            "p99": statistics.median([num(r["p99_ms"]) for r in rs]),
            "other": max(num(r.get("cpu_other_cores")) or 0 for r in rs),
            "errors": sum(int(num(r.get(k)) or 0) for r in rs
                          for k in ("err_status", "err_connect", "err_read", "err_write", "err_timeout")),
        })
    return out


def render(args, stats, meta):
    base = {s["conns"]: s["rps"] for s in stats if s["label"] == args.baseline and s["op"] == "get"}
    lines = [f"### {args.title}", "",
             f"Measured {datetime.date.today().isoformat()} with `{args.command}`.",
             "Medians over the rounds; ratio = median req/s over the median of "
             f"{args.baseline} serving a static 100-byte file at the same connection count.", "",
             "| target | op | conns | req/s (median) | ratio to " + args.baseline +
             " | p50 ms | p99 ms | req/s per round | errors | max other CPU |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in sorted(stats, key=lambda s: (s["label"] != args.target, s["op"], s["conns"])):
        ratio = s["rps"] / base[s["conns"]] if base.get(s["conns"]) else None
        lines.append("| {} | {} | {} | {:,.0f} | {} | {:.3f} | {:.3f} | {} | {} | {:.2f} |".format(
            s["label"], s["op"], s["conns"], s["rps"], f"{ratio:.2f}" if ratio else "-",
            s["p50"], s["p99"], " / ".join(f"{x:,.0f}" for x in s["rounds"]), s["errors"], s["other"]))
    lines += ["", "```", meta.strip(), "```", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tsv")
    ap.add_argument("--title", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--baseline", default="nginx")
    ap.add_argument("--target", default="ringkv")
    ap.add_argument("--meta", default=None)
    ap.add_argument("--into", required=True)
    ap.add_argument("--section", required=True)
    args = ap.parse_args()
    meta = open(args.meta).read() if args.meta else ""
    body = render(args, summarize(load(args.tsv)), meta)
    write_section(args.into, args.section, body)
    print(body)


def write_section(into, section, body):
    """Replaces the <!-- bench:SECTION --> block of the page INTO with body
    (appends it when the page has none). Also used by bench-cluster-report.py."""
    begin, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
    block = f"{begin}\n{body}\n{end}"
    try:
        page = open(into).read()
    except FileNotFoundError:
        page = "# Benchmarks\n\n"
    if begin in page:
        page = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: block, page, flags=re.S)
    else:
        page = page.rstrip("\n") + "\n\n" + block + "\n"
    with open(into, "w") as f:
        f.write(page)


if __name__ == "__main__":
    sys.exit(main())
