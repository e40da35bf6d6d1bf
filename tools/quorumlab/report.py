"""The quorum lab's output: CSV files of every figure, SVG plots and
report.md, from the rows the run collected."""

import csv
import math
import os

from . import svg

AGREE_PP = 5.0  # the bound, in percentage points


def wilson(k, n, z=1.96):
    """95% Wilson interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(rows)


def fmt(v, digits=2):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}"


def pct(v):
    return "-" if v is None else f"{100 * v:.1f}%"


def _num(text):
    """A CSV cell back to a number (None for "-" or empty)."""
    if text in ("", "-", "None"):
        return None
    v = float(text)
    return int(v) if v.is_integer() and "." not in text else v


class Results:
    """Every figure of one run, as rows."""

    def __init__(self):
        self.latency = []       # profile, n, r, w, op, p50, p99, count, pred_p50, pred_p99
        self.visibility = []    # profile, n, r, w, t, consistent, total, predicted, samples
        self.staleness = []     # profile, n, r, w, k, within, total, predicted
        self.availability = []  # n, r, w, fault, op, ok, not_found, unavailable, total
        self.notes = []

    # -- files

    @classmethod
    def load(cls, out):
        """The rows of a run folder's CSV files (to render its report again)."""
        res = cls()

        def rows(name):
            path = os.path.join(out, name)
            if not os.path.exists(path):
                return []
            with open(path, newline="") as f:
                return list(csv.reader(f))[1:]
        for row in rows("latency.csv"):
            res.latency.append([row[0], *map(_num, row[1:4]), row[4], *map(_num, row[5:])])
        for row in rows("visibility.csv"):
            prof, n, r, w, t, k, total, _, pred, samples = row
            res.visibility.append([prof, int(n), int(r), int(w), _num(t), int(k), int(total),
                                   _num(pred), _num(samples)])
        for row in rows("staleness.csv"):
            prof, n, r, w, k, within, total, _, pred = row
            res.staleness.append([prof, int(n), int(r), int(w), int(k), int(within), int(total),
                                  _num(pred)])
        for row in rows("availability.csv"):
            res.availability.append([int(row[0]), int(row[1]), int(row[2]), row[3], row[4],
                                     *map(int, row[5:])])
        return res

    def write(self, out):
        write_csv(os.path.join(out, "latency.csv"),
                  ["profile", "n", "r", "w", "op", "p50_ms", "p99_ms", "count",
                   "predicted_p50_ms", "predicted_p99_ms"], self.latency)
        write_csv(os.path.join(out, "visibility.csv"),
                  ["profile", "n", "r", "w", "t_ms", "consistent", "trials", "measured",
                   "predicted", "predicted_from_samples"],
                  [[*row[:7], fmt(row[5] / row[6] if row[6] else None, 4), fmt(row[7], 4),
                    row[8]] for row in self.visibility])
        write_csv(os.path.join(out, "staleness.csv"),
                  ["profile", "n", "r", "w", "k", "within_k", "trials", "measured", "predicted"],
                  [[*row[:7], fmt(row[5] / row[6] if row[6] else None, 4), fmt(row[7], 4)]
                   for row in self.staleness])
        write_csv(os.path.join(out, "availability.csv"),
                  ["n", "r", "w", "fault", "op", "ok", "not_found", "unavailable", "attempts"],
                  self.availability)

    def summary(self, meta):
        """Every figure as one JSON-able dict: what --publish writes into a
        cluster for its web client's quorum view."""
        out = dict(meta)
        configs = {}
        for prof, n, r, w, t, k, total, pred, _ in self.visibility:
            c = configs.setdefault((prof, n, r, w), {"profile": prof, "n": n, "r": r, "w": w,
                                                     "t_visibility": [], "k_staleness": [],
                                                     "latency_ms": {}})
            c["t_visibility"].append({"t_ms": t, "measured": k / total if total else None,
                                      "trials": total, "predicted": pred})
        for prof, n, r, w, k, within, total, pred in self.staleness:
            c = configs.get((prof, n, r, w))
            if c is not None:
                c["k_staleness"].append({"k": k, "measured": within / total if total else None,
                                         "predicted": pred})
        for prof, n, r, w, op, p50, p99, count, pp50, pp99 in self.latency:
            c = configs.get((prof, n, r, w))
            if c is not None:
                c["latency_ms"][op] = {"p50": p50, "p99": p99, "predicted_p50": pp50,
                                       "predicted_p99": pp99}
        out["configs"] = list(configs.values())
        return out

    # -- agreement

    def agreement(self):
        """For each (profile, n, r, w) with r + w <= n: the largest gap between
        predicted and measured t-visibility, and whether it is within 5 pp
        or within the measurement's own 95% interval."""
        groups = {}
        for prof, n, r, w, t, k, total, pred, _ in self.visibility:
            if r + w > n or pred is None or total == 0:
                continue
            lo, hi = wilson(k, total)
            gap = abs(pred - k / total)
            # how far the prediction lies outside the measurement's interval
            outside = max(0.0, lo - pred, pred - hi)
            g = groups.setdefault((prof, n, r, w), {"gap": 0.0, "t": None, "outside": 0.0})
            if gap > g["gap"]:
                g.update(gap=gap, t=t)
            g["outside"] = max(g["outside"], outside)
        return groups

    def strong_violations(self):
        """Stale reads measured where R + W > N (there must be none)."""
        return [row for row in self.visibility
                if row[2] + row[3] > row[1] and row[6] and row[5] < row[6]]

    # -- plots

    def plots(self, out):
        made = []
        profiles = sorted({row[0] for row in self.visibility})
        for prof in profiles:
            for n in sorted({row[1] for row in self.visibility if row[0] == prof}):
                rows = [row for row in self.visibility if row[0] == prof and row[1] == n]
                ts = sorted({row[4] for row in rows})
                chart = svg.Chart(f"t-visibility, {prof}, N={n} (solid measured, dashed predicted)",
                                  "ms after the write was acknowledged",
                                  "P(read sees the write)", (0, max(ts) or 1), (0, 1))
                configs = sorted({(row[2], row[3]) for row in rows if row[2] + row[3] <= n})
                if not configs:  # N = 1: only R = W = 1, which is consistent
                    configs = sorted({(row[2], row[3]) for row in rows})
                for i, (r, w) in enumerate(configs[:10]):
                    color = svg.PALETTE[i % len(svg.PALETTE)]
                    mine = sorted((row for row in rows if (row[2], row[3]) == (r, w)),
                                  key=lambda row: row[4])
                    chart.line([(row[4], row[5] / row[6]) for row in mine if row[6]], color,
                               f"R={r} W={w}")
                    pred = [(row[4], row[7]) for row in mine if row[7] is not None]
                    if pred:
                        chart.line(pred, color, None, dashed=True)
                name = f"visibility-{prof}-n{n}.svg"
                chart.save(os.path.join(out, name))
                made.append(name)
            # latency against consistency: one point per (n, r, w)
            lat = {(row[1], row[2], row[3], row[4]): row[6] for row in self.latency
                   if row[0] == prof}
            vis0 = {(row[1], row[2], row[3]): row[5] / row[6] for row in self.visibility
                    if row[0] == prof and row[4] == 0 and row[6]}
            pts = [(lat.get((n, r, w, "read"), 0) + lat.get((n, r, w, "write"), 0), p, n, r, w)
                   for (n, r, w), p in vis0.items()]
            if pts:
                xmax = max(p[0] for p in pts) * 1.1 or 1
                chart = svg.Chart(f"latency against consistency, {prof}",
                                  "read p99 + write p99 (ms)", "P(consistent) at t=0",
                                  (0, xmax), (0, 1.05))
                for x, y, n, r, w in pts:
                    color = svg.PALETTE[[1, 3, 5].index(n) if n in (1, 3, 5) else 0]
                    chart.point(x, y, color, None, f"{r}/{w}")
                for n in sorted({p[2] for p in pts}):
                    chart.legend.append((f"N={n} (labels R/W)",
                                         svg.PALETTE[[1, 3, 5].index(n) if n in (1, 3, 5) else 0],
                                         False))
                name = f"latency-consistency-{prof}.svg"
                chart.save(os.path.join(out, name))
                made.append(name)
        for n in sorted({row[0] for row in self.availability}):
            rows = [row for row in self.availability if row[0] == n]
            faults = sorted({row[3] for row in rows})
            configs = sorted({(row[1], row[2]) for row in rows})
            labels = [f"R{r}W{w}" for r, w in configs]
            chart = svg.Chart(f"availability, N={n} (share of requests answered)",
                              "R and W", "answered", (-0.5, len(configs) - 0.5), (0, 1))
            chart.xlabels(labels)
            width = 0.8 / (2 * len(faults))
            for fi, fault in enumerate(faults):
                for oi, op in enumerate(("write", "read")):
                    color = svg.PALETTE[(fi * 2 + oi) % len(svg.PALETTE)]
                    for ci, (r, w) in enumerate(configs):
                        row = next((x for x in rows if (x[1], x[2], x[3], x[4]) ==
                                    (r, w, fault, op)), None)
                        if row is None or not row[8]:
                            continue
                        share = row[5] / row[8]
                        x = ci - 0.4 + width * (fi * 2 + oi + 0.5)
                        chart.bar(x, width * 0.9, share, color, f"{op}, {fault}")
            name = f"availability-n{n}.svg"
            chart.save(os.path.join(out, name))
            made.append(name)
        return made

    # -- report.md

    def report(self, out, header, plots):
        lines = [f"# Quorum lab report", "", *header, ""]
        lines += ["## How to read this", "",
                  "- **t-visibility**: the share of reads, started t ms after a write was "
                  "acknowledged, that returned that write. *measured* is what the lab saw "
                  "(trials per cell in brackets); *predicted* is what `GET /pbs` answered "
                  "from the delays the nodes sampled during the same run (WARS Monte Carlo, "
                  "docs/pbs.md), averaged over the nodes the requests went through.",
                  "- **k-staleness**: the share of reads, right after the third of three "
                  "acknowledged writes of a key, that returned one of the last k versions.",
                  "- **Latency**: client-side ms per request through the HTTP API, "
                  "p50 / p99; *pred.* is /pbs's prediction of the quorum wait alone (no HTTP).",
                  "- **Availability**: the share of requests answered (not 503 or a "
                  "timeout) through the nodes still running; reads also say how many found "
                  "the value (a 404 from a fallback that holds nothing is an answer, not "
                  "the value).",
                  "- Where R + W > N every read must see the write: a stale read there is a "
                  "bug and fails the run.", ""]
        agree = self.agreement()
        bad = {k: v for k, v in agree.items() if v["gap"] * 100 > AGREE_PP}
        lines += ["## Prediction against measurement", ""]
        if agree:
            within = len(agree) - len(bad)
            lines.append(f"For the {len(agree)} configurations with R + W <= N, predicted and "
                         f"measured t-visibility agree within {AGREE_PP:g} percentage points at "
                         f"every t in {within}.")
            if bad:
                lines += ["", "Where they do not:", "",
                          "| profile | N | R | W | largest gap | at t (ms) | outside the "
                          "measurement's 95% interval by | why |", "|---|---|---|---|---|---|---|---|"]
                for (prof, n, r, w), g in sorted(bad.items()):
                    if g["outside"] * 100 <= AGREE_PP / 2:
                        why = "within sampling noise: too few trials to tell"
                    elif n < 5 and r == 1 and w == 1:
                        why = ("the cluster is fresher than the model: a read through the "
                               "node that wrote follows the write on the same links "
                               "(see Limits)")
                    else:
                        why = "the model and the cluster differ (see Limits)"
                    lines.append(f"| {prof} | {n} | {r} | {w} | {100 * g['gap']:.1f} pp | "
                                 f"{g['t']:g} | {100 * g['outside']:.1f} pp | {why} |")
        else:
            lines.append("No configuration with R + W <= N and a prediction in this run.")
        viol = self.strong_violations()
        lines += ["", f"Stale reads where R + W > N: **{len(viol)}**" +
                  (" (a bug: the run fails)." if viol else " (none, as it must be)."), ""]
        for prof in sorted({row[0] for row in self.visibility}):
            lines += [f"## Profile `{prof}`", ""]
            for n in sorted({row[1] for row in self.visibility if row[0] == prof}):
                rows = [row for row in self.visibility if row[0] == prof and row[1] == n]
                ts = sorted({row[4] for row in rows})
                lines += [f"### N = {n}", "",
                          "| R | W | write p50 / p99 ms (pred.) | read p50 / p99 ms (pred.) | " +
                          " | ".join(f"t={t:g} ms meas. / pred." for t in ts) + " |",
                          "|---|---|---|---|" + "---|" * len(ts)]
                for r, w in sorted({(row[2], row[3]) for row in rows}):
                    lat = {row[4]: row for row in self.latency
                           if row[0] == prof and (row[1], row[2], row[3]) == (n, r, w)}
                    cells = []
                    for op in ("write", "read"):
                        row = lat.get(op)
                        cells.append("-" if row is None else
                                     f"{fmt(row[5])} / {fmt(row[6])} ({fmt(row[8])} / {fmt(row[9])})")
                    for t in ts:
                        row = next((x for x in rows if (x[2], x[3], x[4]) == (r, w, t)), None)
                        if row is None or not row[6]:
                            cells.append("-")
                        else:
                            cells.append(f"{pct(row[5] / row[6])} [{row[6]}] / {pct(row[7])}")
                    lines.append(f"| {r} | {w} | " + " | ".join(cells) + " |")
                lines.append("")
                srows = [row for row in self.staleness if row[0] == prof and row[1] == n]
                if srows:
                    lines += ["k-staleness (measured / predicted):", "",
                              "| R | W | k=1 | k=2 | k=3 |", "|---|---|---|---|---|"]
                    for r, w in sorted({(row[2], row[3]) for row in srows}):
                        cells = []
                        for k in (1, 2, 3):
                            row = next((x for x in srows if (x[2], x[3], x[4]) == (r, w, k)), None)
                            cells.append("-" if row is None or not row[6] else
                                         f"{pct(row[5] / row[6])} / {pct(row[7])}")
                        lines.append(f"| {r} | {w} | " + " | ".join(cells) + " |")
                    lines.append("")
                name = f"visibility-{prof}-n{n}.svg"
                if name in plots:
                    lines += [f"![t-visibility {prof} N={n}]({name})", ""]
            name = f"latency-consistency-{prof}.svg"
            if name in plots:
                lines += [f"![latency against consistency, {prof}]({name})", ""]
        if self.availability:
            lines += ["## Availability under failures", "",
                      "| N | R | W | fault | writes answered | reads answered | reads that found "
                      "the value |", "|---|---|---|---|---|---|---|"]
            keyed = {}
            for row in self.availability:
                keyed.setdefault((row[0], row[1], row[2], row[3]), {})[row[4]] = row
            for (n, r, w, fault), ops in sorted(keyed.items()):
                wr, rd = ops.get("write"), ops.get("read")
                cell = lambda row, i: "-" if row is None else f"{pct(row[i] / row[8])}"  # noqa: E731
                answered = "-" if rd is None else pct((rd[5] + rd[6]) / rd[8])
                lines.append(f"| {n} | {r} | {w} | {fault} | {cell(wr, 5)} | {answered} | "
                             f"{cell(rd, 5)} |")
            lines.append("")
            for n in sorted({row[0] for row in self.availability}):
                name = f"availability-n{n}.svg"
                if name in plots:
                    lines += [f"![availability N={n}]({name})", ""]
        lines += ["## Limits", "",
                  "- **Links are independent in the model, ordered in the cluster.** A read "
                  "through the node that wrote travels the same connections as the write did, "
                  "after it, and on a FIFO connection cannot overtake it; the model draws each "
                  "message's delay apart (as the PBS paper does). This matters where a node "
                  "that holds no replica of a key coordinates both the write and the read: N=3 "
                  "of 5 nodes, R=W=1, where the read's first answer may come from a follower. "
                  "A diagnostic run (lan, N=3, R=W=1, reads at once) split the reads: 359 of "
                  "359 through a node holding a replica saw the write, and 237 of 241 through "
                  "a node holding none, where the model gives that case about 53%. At N=5 "
                  "every node holds every key and the two agree.",
                  "- **Delays on one busy machine move together.** One CPU-starved moment slows "
                  "every replica at once; the model draws them independently.",
                  "- **The client gap is estimated**, as the median HTTP round trip of a "
                  "GET /health after each trial, not timed per read.",
                  "- Sloppy quorum, hinted handoff, read repair between trials and the "
                  "speculative retry are not modelled (docs/pbs.md).", ""]
        if self.notes:
            lines += ["## Notes from this run", "", *[f"- {note}" for note in self.notes], ""]
        with open(os.path.join(out, "report.md"), "w") as f:
            f.write("\n".join(lines))
