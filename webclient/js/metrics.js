// Prometheus text -> numbers, and a short history per node from which the
// request rate and the p99 latency are derived (as rate() and
// histogram_quantile() would: deltas of counters between samples, so a node's
// whole uptime does not flatten the picture).

/** The routes a client's data requests count under. The console's own
 * polling (cluster, metrics, ui, health) and the long-lived subscribe
 * streams are left out, so the charts show the cluster's work, not ours. */
export const DATA_ROUTES = new Set(["key_get", "key_put", "key_delete", "keys_batch", "keys_list", "store"]);

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Prometheus text format -> [{name, labels: {}, value}] (comments skipped). */
export function parse(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[2]) for (const l of m[2].matchAll(LABEL)) labels[l[1]] = l[2].replace(/\\(.)/g, "$1");
    const value = m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : Number(m[3]);
    out.push({ name: m[1], labels, value });
  }
  return out;
}

function sum(samples, name, filter = () => true) {
  let total = 0, seen = false;
  for (const x of samples) {
    if (x.name === name && filter(x.labels)) { total += x.value; seen = true; }
  }
  return seen ? total : null;
}

/** What the console keeps of one scrape. */
export function summarise(samples, t) {
  const isData = (l) => DATA_ROUTES.has(l.route);
  const buckets = new Map(); // le -> count summed over data routes
  for (const x of samples) {
    if (x.name === "ringkv_http_request_duration_seconds_bucket" && isData(x.labels)) {
      const le = x.labels.le === "+Inf" ? Infinity : Number(x.labels.le);
      buckets.set(le, (buckets.get(le) || 0) + x.value);
    }
  }
  return {
    t,
    // A node that answered no data request yet has no such line: 0, not unknown.
    requests: sum(samples, "ringkv_http_requests_total", isData) ?? 0,
    allRequests: sum(samples, "ringkv_http_requests_total"),
    buckets: [...buckets.entries()].sort((a, b) => a[0] - b[0]),
    hintsHeld: sum(samples, "ringkv_hints_held"),
    rangesPending: sum(samples, "ringkv_sync_ranges_pending"),
    handoffKeysSent: sum(samples, "ringkv_handoff_keys_sent_total"),
    keysReceived: sum(samples, "ringkv_sync_keys_received_total"),
    quorumFailures: sum(samples, "ringkv_quorum_failures_total"),
    keysEstimate: sum(samples, "ringkv_keys_estimate"),
    subscribers: sum(samples, "ringkv_subscribers"),
  };
}

/** A counter's increase from a to b; a decrease means the node restarted,
 * and then the whole new value is the increase (as Prometheus counts it). */
function increase(a, b) {
  if (a === null || b === null) return null;
  return b >= a ? b - a : b;
}

/**
 * histogram_quantile over cumulative buckets [[le, count], ...] sorted by le:
 * linear inside the bucket that holds the rank. Seconds, or null when no
 * request fell in. Past the last finite bound it answers that bound.
 */
export function quantile(q, buckets) {
  if (!buckets.length) return null;
  const total = buckets[buckets.length - 1][1];
  if (!(total > 0)) return null;
  const rank = q * total;
  let prevLe = 0, prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      const inBucket = count - prevCount;
      return inBucket > 0 ? prevLe + (le - prevLe) * ((rank - prevCount) / inBucket) : le;
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

function bucketDelta(a, b) {
  const before = new Map(a.buckets);
  const restarted = b.buckets.some(([le, c]) => c < (before.get(le) || 0));
  return b.buckets.map(([le, c]) => [le, restarted ? c : c - (before.get(le) || 0)]);
}

/** The last `windowMs` of one node's scrapes. */
export class History {
  constructor(windowMs = 5 * 60 * 1000) {
    this.windowMs = windowMs;
    this.samples = [];
  }

  push(sample) {
    this.samples.push(sample);
    const from = sample.t - this.windowMs - 10000;
    while (this.samples.length > 2 && this.samples[0].t < from) this.samples.shift();
  }

  /** A gap (node unreachable): charts break the line there. */
  gap(t) {
    const last = this.samples[this.samples.length - 1];
    if (last && !last.gap) this.samples.push({ t, gap: true });
  }

  last() {
    for (let i = this.samples.length - 1; i >= 0; i--) if (!this.samples[i].gap) return this.samples[i];
    return null;
  }

  /** Data requests per second between consecutive scrapes: [{t, v}]. */
  rate() {
    const pts = [];
    for (let i = 1; i < this.samples.length; i++) {
      const a = this.samples[i - 1], b = this.samples[i];
      if (a.gap || b.gap) { pts.push({ t: b.t, v: null }); continue; }
      const d = increase(a.requests, b.requests);
      const dt = (b.t - a.t) / 1000;
      pts.push({ t: b.t, v: d === null || dt <= 0 ? null : d / dt });
    }
    return pts;
  }

  /** p99 in ms over a sliding window of spanMs ending at each scrape: [{t, v}]
   * (v null where no data request was answered in the window). */
  p99(spanMs = 10000) {
    const pts = [];
    for (let i = 1; i < this.samples.length; i++) {
      const b = this.samples[i];
      if (b.gap || this.samples[i - 1].gap) { pts.push({ t: b.t, v: null }); continue; }
      // The window starts at the oldest scrape within span with no gap
      // since, or at the previous scrape when scrapes are further apart.
      let a = this.samples[i - 1];
      for (let j = i - 2; j >= 0; j--) {
        const c = this.samples[j];
        if (c.gap || b.t - c.t > spanMs) break;
        a = c;
      }
      const sec = quantile(0.99, bucketDelta(a, b));
      pts.push({ t: b.t, v: sec === null ? null : sec * 1000 });
    }
    return pts;
  }

  /** The latest value of a series, or null. */
  static current(points) {
    const p = points[points.length - 1];
    return p ? p.v : null;
  }
}
