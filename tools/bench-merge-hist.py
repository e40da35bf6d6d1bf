#!/usr/bin/env python3
"""Merges the latency histograms of wrk runs made at the same time (one wrk per
cluster node, tools/wrk/cluster-kv.lua with KV_HIST) into one RESULT line.

    bench-merge-hist.py HIST... -> "rps=.. p50_ms=.. p95_ms=.. p99_ms=.. max_ms=.. requests=.. err_*=.."

req/s is the sum of each run's requests over its own duration; percentiles
are taken over the merged histogram, the way wrk does it (the smallest
latency at or below which p% of the requests fall).
"""
import sys


def parse(path):
    res, hist = {}, []
    with open(path) as f:
        for line in f:
            if line.startswith("RESULT "):
                res = dict(kv.split("=", 1) for kv in line.split()[1:])
            elif line.startswith("H "):
                _, v, c = line.split()
                hist.append((int(v), int(c)))
    if not res:
        raise SystemExit(f"{path}: no RESULT line (did wrk finish?)")
    return res, hist


def percentile(hist, total, p):
    want = p / 100.0 * total
    seen = 0
    for v, c in hist:
        seen += c
        if seen >= want:
            return v
    return hist[-1][0] if hist else 0


def main(paths):
    runs = [parse(p) for p in paths]
    hist = {}
    for _, h in runs:
        for v, c in h:
            hist[v] = hist.get(v, 0) + c
    merged = sorted(hist.items())
    total = sum(c for _, c in merged)
    rps = sum(float(r["requests"]) / float(r["duration_s"]) for r, _ in runs)
    out = {"rps": f"{rps:.1f}"}
    for p in (50, 95, 99):
        out[f"p{p}_ms"] = f"{percentile(merged, total, p) / 1000:.3f}"
    out["max_ms"] = f"{(merged[-1][0] if merged else 0) / 1000:.3f}"
    out["requests"] = str(sum(int(r["requests"]) for r, _ in runs))
    for e in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"):
        out[e] = str(sum(int(r[e]) for r, _ in runs))
    out["per_node_rps"] = "/".join(f"{float(r['rps']):.0f}" for r, _ in runs)
    print(" ".join(f"{k}={v}" for k, v in out.items()))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
