// Every request of the console goes through request(): same origin, URLs
// relative to the page (served at <root>/ui/, so the API is at "../"), a
// deadline, the body parsed, and the quorum headers and the latency kept.

const ROOT = new URL("../", document.baseURI);

/** Percent-encodes one path segment. "." and ".." would be dropped by URL
 * normalisation before they reached the node, so they are sent as %2E. */
export function seg(text) {
  const e = encodeURIComponent(text);
  return e === "." || e === ".." ? e.replaceAll(".", "%2E") : e;
}

export const paths = {
  cluster: () => "cluster",
  ring: () => "ring",
  tables: () => "tables",
  metrics: () => "metrics",
  nodeMetrics: (node) => `cluster/metrics/${seg(node)}`,
  key: (table, key) => `${seg(table)}/key/${seg(key)}`,
  keys: (table) => `${seg(table)}/keys`,
  placement: (table, key) => `${seg(table)}/placement/${seg(key)}`,
  subscribeKey: (table, key) => `${seg(table)}/subscribe/${seg(key)}`,
  subscribeTable: (table) => `${seg(table)}/subscribe`,
};

/** The absolute URL of an API path (e.g. "cluster") with query params
 * (undefined or "" values are left out). */
export function url(path, params) {
  const u = new URL(path, ROOT);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, String(v));
  }
  return u;
}

/** "node4=node2,node5=node1" -> [{fallback: "node4", for: "node2"}, ...] */
function parseFallbacks(text) {
  if (!text) return [];
  return text.split(",").map((p) => p.trim()).filter(Boolean).map((p) => {
    const [fallback, stoodFor] = p.split("=");
    return { fallback, for: stoodFor || "" };
  });
}

function splitList(text) {
  return text ? text.split(",").map((x) => x.trim()).filter(Boolean) : [];
}

/**
 * One request. Never throws: a network failure or a timeout comes back as
 * status 0 with `error` set, so every caller can show what went wrong.
 * Returns {method, path, url, params, status, ok, body, text, headers,
 * replicas, fallbacks, underReplicated, ms, at, error, code}.
 */
export async function request(method, path, opts = {}) {
  const { params, body, headers = {}, timeoutMs = 15000, signal } = opts;
  const u = url(path, params);
  const init = { method, headers: { ...headers }, cache: "no-store" };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const timeout = AbortSignal.timeout(timeoutMs);
  init.signal = signal ? AbortSignal.any([signal, timeout]) : timeout;
  const at = Date.now();
  const t0 = performance.now();
  const out = {
    method, path, url: u, params: params || {}, status: 0, ok: false, body: null, text: "",
    headers: null, replicas: [], fallbacks: [], underReplicated: null, ms: 0, at,
    error: null, code: null,
  };
  try {
    const res = await fetch(u, init);
    out.text = await res.text();
    out.ms = performance.now() - t0;
    out.status = res.status;
    out.ok = res.ok;
    out.headers = res.headers;
    if ((res.headers.get("content-type") || "").includes("json") && out.text) {
      try { out.body = JSON.parse(out.text); } catch { out.body = null; }
    }
    out.replicas = splitList(res.headers.get("x-ringkv-replicas"));
    out.fallbacks = parseFallbacks(res.headers.get("x-ringkv-fallbacks"));
    out.underReplicated = res.headers.get("x-ringkv-under-replicated");
    if (!res.ok && res.status !== 300) {
      out.code = out.body && out.body.code ? out.body.code : null;
      out.error = out.body && out.body.error ? out.body.error : out.text.trim() || res.statusText;
    }
  } catch (e) {
    out.ms = performance.now() - t0;
    if (signal && signal.aborted) out.aborted = true;
    out.error = e.name === "TimeoutError"
      ? `no answer within ${timeoutMs / 1000} s`
      : `the node cannot be reached (${e.message})`;
    out.code = e.name === "TimeoutError" ? "timeout" : "network";
  }
  return out;
}

/** The path and query of a request as it went out, for display. */
export function shown(res) {
  return res.url.pathname + res.url.search;
}

/** One line for a failed request: "GET /tables -> 404 no_route: no such route". */
export function describe(res) {
  const what = `${res.method} ${decodeURI(shown(res))}`;
  if (res.status === 0) return `${what}: ${res.error}`;
  const code = res.code ? ` ${res.code}` : "";
  let text = `${what} → ${res.status}${code}: ${res.error}`;
  if (res.status === 404 && res.code === "no_route") {
    text += " (this node's ringkvd does not serve this endpoint: an older version?)";
  }
  return text;
}

/** True when the answer says the endpoint itself is missing (older node). */
export function missingRoute(res) {
  return res.status === 404 && res.code === "no_route";
}
