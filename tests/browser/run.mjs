// The bundled web client in a real browser against a real cluster.
//
// Starts three build/ringkvd nodes (N=3 R=2 W=2) on free 127.0.0.1 ports with
// temp data dirs and a temp cluster secret, opens node1's /ui/ in headless
// Chromium from Debian (playwright-core, executablePath /usr/bin/chromium),
// and checks what a user would: the members, a put read back through another
// node, key paging, siblings resolved in the page, conditional create, the
// live feed and a record following another writer, the quorum view's
// prediction beside a published lab run, a killed node turning down, a 503
// explained, a phone-sized window, and that the page asked
// nothing of anyone but its node. Screenshots go to build/browser-screenshots/
// (BROWSER_SCREENSHOTS overrides). Ends with "browser: N passed, N failed".
//
// Environment: RINGKVD (default <repo>/build/ringkvd), CHROMIUM (default
// /usr/bin/chromium), RINGKV_KEEP_TMP=1 keeps the nodes' dirs and logs.

import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const RINGKVD = process.env.RINGKVD || path.join(ROOT, "build", "ringkvd");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const OUT = process.env.BROWSER_SCREENSHOTS || path.join(ROOT, "build", "browser-screenshots");
const KEEP = !!process.env.RINGKV_KEEP_TMP;

// ---------------------------------------------------------------- cluster

/** count distinct free ports (all held open until every one is picked). */
async function freePorts(count) {
  const servers = [];
  const ports = [];
  for (let i = 0; i < count; i++) {
    const srv = net.createServer();
    await new Promise((ok, fail) => { srv.once("error", fail); srv.listen(0, "127.0.0.1", ok); });
    servers.push(srv);
    ports.push(srv.address().port);
  }
  await Promise.all(servers.map((s) => new Promise((ok) => s.close(ok))));
  return ports;
}

const live = new Set(); // running child processes: killed on any exit

function killAll() {
  for (const p of live) { try { p.kill("SIGKILL"); } catch { /* gone */ } }
  live.clear();
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => { killAll(); process.exit(130); });
}

class Node {
  constructor(name, dir, http, rpc, secretFile) {
    Object.assign(this, { name, dir, http, rpc, secretFile });
    this.url = `http://127.0.0.1:${http}`;
    this.log = path.join(dir, `${name}.log`);
    this.proc = null;
  }

  start(join) {
    const data = path.join(this.dir, this.name);
    fs.mkdirSync(data, { recursive: true });
    const args = [
      "--data", data, "--http", `127.0.0.1:${this.http}`, "--rpc", `127.0.0.1:${this.rpc}`,
      "--secret-file", this.secretFile, "--name", this.name, "--n", "3", "--r", "2", "--w", "2",
      "--webclient", path.join(ROOT, "webclient"),
      "--http-threads", "64", "--max-subscribers", "64",
      ...(join ? ["--join", join] : []),
    ];
    const fd = fs.openSync(this.log, "a");
    // setpriv --pdeathsig: the node dies with this script even on SIGKILL.
    const [cmd, argv] = fs.existsSync("/usr/bin/setpriv")
      ? ["/usr/bin/setpriv", ["--pdeathsig", "KILL", "--", RINGKVD, ...args]]
      : [RINGKVD, args];
    this.proc = spawn(cmd, argv, { stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
    live.add(this.proc);
    this.proc.on("exit", () => live.delete(this.proc));
  }

  kill() {
    if (this.proc && this.proc.exitCode === null) this.proc.kill("SIGKILL");
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode) return;
    const exited = new Promise((ok) => this.proc.once("exit", ok));
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10000);
    await exited;
    clearTimeout(timer);
  }

  tail(lines = 15) {
    try { return fs.readFileSync(this.log, "utf8").trimEnd().split("\n").slice(-lines).join("\n"); } catch { return ""; }
  }
}

async function http(node, method, p, body, headers = {}) {
  const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(5000) };
  if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  const res = await fetch(node.url + p, init);
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: json, text, headers: res.headers };
}

/** Polls fn until it returns something truthy; throws with `what` after timeoutMs. */
async function poll(what, fn, timeoutMs = 15000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ` (last error: ${last.message})` : ""}`);
    await new Promise((ok) => setTimeout(ok, everyMs));
  }
}

async function startCluster() {
  if (!fs.existsSync(RINGKVD)) throw new Error(`ringkvd not found at ${RINGKVD}: run make build (or set RINGKVD)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ringkv-browser-"));
  const secretFile = path.join(dir, "secret");
  fs.writeFileSync(secretFile, crypto.randomBytes(32).toString("base64") + "\n", { mode: 0o600 });
  const ports = await freePorts(6);
  const nodes = [0, 1, 2].map((i) => new Node(`node${i + 1}`, dir, ports[2 * i], ports[2 * i + 1], secretFile));
  nodes[0].start();
  await poll("node1 to answer /health", async () => (await http(nodes[0], "GET", "/health")).status === 200);
  for (const n of nodes.slice(1)) n.start(`127.0.0.1:${nodes[0].rpc}`);
  for (const n of nodes) {
    await poll(`${n.name} to see three alive members`, async () => {
      const r = await http(n, "GET", "/cluster");
      return r.status === 200 && r.body.members.length === 3 &&
        r.body.members.every((m) => m.status === "member" && m.liveness === "alive");
    }, 30000);
  }
  return { dir, nodes };
}

// ---------------------------------------------------------------- runner

const results = [];
async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push({ name, ok: false, error: e });
    console.log(`FAIL ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n     ${String(e && e.stack || e).split("\n").join("\n     ")}`);
    if (ctx.page) {
      const file = path.join(OUT, `failed-${name.replace(/[^a-z0-9]+/gi, "-")}.png`);
      await ctx.page.screenshot({ path: file, fullPage: true }).catch(() => {});
      console.log(`     screenshot: ${file}`);
    }
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function eq(a, b, msg) {
  const ja = JSON.stringify(a), jb = JSON.stringify(b);
  if (ja !== jb) throw new Error(`${msg}: got ${ja}, want ${jb}`);
}

const ctx = { page: null };

async function shot(name) {
  const file = path.join(OUT, name);
  // from the top: the sticky header would otherwise land mid-picture
  await ctx.page.evaluate(() => window.scrollTo(0, 0));
  await ctx.page.mouse.move(0, 0); // no hover highlight in the picture
  await ctx.page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Light client traffic through every node so the charts have something to draw. */
function backgroundLoad(nodes) {
  let stop = false;
  const done = (async () => {
    for (let i = 0; !stop; i++) {
      const n = nodes[i % nodes.length];
      try {
        await http(n, "PUT", `/bg/key/k${i % 40}`, { value: { i, at: Date.now() } });
        await http(nodes[(i + 1) % nodes.length], "GET", `/bg/key/k${(i * 7) % 40}`);
      } catch { /* a node being killed: the load does not matter */ }
      // a pace that swings, so the charts show a shape, not a flat line
      await new Promise((ok) => setTimeout(ok, 15 + 40 * (0.5 + 0.5 * Math.sin(Date.now() / 1500))));
    }
  })();
  return async () => { stop = true; await done; };
}

// ---------------------------------------------------------------- tests

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  for (const f of fs.readdirSync(OUT)) if (f.endsWith(".png")) fs.rmSync(path.join(OUT, f)); // no stale pictures
  let cluster, browser, stopLoad = null;
  try {
    cluster = await startCluster();
    const [n1, n2, n3] = cluster.nodes;
    const ui = `${n1.url}/ui/`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    ctx.page = page;
    const requested = [];
    const scriptErrors = [];
    page.on("request", (r) => requested.push(r.url()));
    page.on("pageerror", (e) => scriptErrors.push(e.message));
    stopLoad = backgroundLoad(cluster.nodes);
    const row = (name, attrs = "") => page.locator(`#members-table tr[data-node="${name}"]${attrs}`);

    await test("the page shows all three members", async () => {
      await page.goto(`${ui}#/cluster`);
      for (const n of cluster.nodes) {
        await row(n.name, '[data-status="member"][data-liveness="alive"]').waitFor({ timeout: 15000 });
      }
      eq(await page.locator("#members-table tbody tr").count(), 3, "member rows");
      assert(await page.locator(".ring-band path").count() > 3, "the ring is drawn in slices");
      // every node's rate and p99 through /cluster/metrics/{node}, once a few samples are in
      for (const n of cluster.nodes) {
        await page.locator(`.node-card[data-node="${n.name}"] [data-metric="rate"]`)
          .filter({ hasText: /\d+(\.\d)?\/s/ }).waitFor({ timeout: 15000 });
        await page.locator(`.node-card[data-node="${n.name}"] [data-metric="p99"]`)
          .filter({ hasText: /\d (ms|s)$/ }).waitFor({ timeout: 15000 });
      }
      // a few samples into every chart before the picture
      await page.waitForFunction(() => [...document.querySelectorAll(".spark polyline")]
        .filter((l) => l.points.length >= 5).length >= 6, null, { timeout: 20000 });
      await shot("cluster.png");
    });

    await test("a put through the page reads back through another node", async () => {
      const key = `hello-${Date.now()}`;
      await page.goto(`${ui}#/data/web/${key}`);
      await page.locator("#record-missing").waitFor();
      await page.locator("#value-editor").fill('{"greeting": "from the browser", "n": 1}');
      assert(await page.locator("#if-none-match").isChecked(), "create is conditional by default");
      await page.locator("#create-btn").click();
      await page.locator(".outcome-ok", { hasText: "PUT 201" }).waitFor();
      await page.locator("#record-value", { hasText: "from the browser" }).waitFor();
      const r = await http(n2, "GET", `/web/key/${key}`);
      eq(r.status, 200, "GET through node2");
      eq(r.body.value, { greeting: "from the browser", n: 1 }, "the value read through node2");
      // the request log names the replicas that acknowledged it
      const replicas = await page.locator("#request-log tbody tr").first().locator(".chip").count();
      assert(replicas >= 2, `the log lists the acknowledging replicas (saw ${replicas})`);
    });

    await test("conditional create answers 412 when someone created the key first", async () => {
      const key = `race-${Date.now()}`;
      await page.goto(`${ui}#/data/web/${key}`);
      await page.locator("#record-missing").waitFor();
      await page.locator(".live-state", { hasText: "live" }).waitFor();
      await page.locator("#value-editor").fill('"second"');
      eq((await http(n3, "PUT", `/web/key/${key}`, { value: "first" })).status, 201, "the other client's create");
      // the page keeps what was typed, and says someone else wrote the key
      await page.locator("#edit-notice", { hasText: "Someone else updated this record" }).waitFor();
      await page.locator("#create-btn").click();
      await page.locator('.explain[data-status="412"]', { hasText: "already has a live value" }).waitFor();
      eq((await http(n2, "GET", `/web/key/${key}`)).body.value, "first", "the first create stands");
    });

    await test("the key browser pages on the server", async () => {
      const keys = Array.from({ length: 130 }, (_, i) => `item-${String(i).padStart(3, "0")}`);
      for (let i = 0; i < keys.length; i += 26) {
        await Promise.all(keys.slice(i, i + 26).map((k) => http(n1, "PUT", `/paging/key/${k}`, { value: k })));
      }
      const api1 = (await http(n1, "GET", "/paging/keys?limit=50")).body;
      const api2 = (await http(n1, "GET", `/paging/keys?limit=50&after=${encodeURIComponent(api1.next)}`)).body;
      await page.goto(`${ui}#/data/paging`);
      await page.locator("#page-info", { hasText: "page 1" }).waitFor();
      eq(await page.locator("#keys li").allTextContents(), api1.keys, "page 1 is the node's first page");
      const asked = page.waitForRequest((r) => r.url().includes("/paging/keys?"));
      await page.locator("#next-page").click();
      const u = new URL((await asked).url());
      eq(u.searchParams.get("after"), api1.next, "Next asks for the page after the cursor");
      eq(u.searchParams.get("limit"), "50", "one page, not the whole list");
      await page.locator("#page-info", { hasText: "page 2 · keys 51–100" }).waitFor();
      eq(await page.locator("#keys li").allTextContents(), api2.keys, "page 2");
      await page.locator("#next-page").click();
      await page.locator("#page-info", { hasText: "page 3 · keys 101–130 (last)" }).waitFor();
      assert(await page.locator("#next-page").isDisabled(), "no page after the last");
      await page.locator("#prev-page").click();
      await page.locator("#page-info", { hasText: "page 2" }).waitFor();
    });

    await test("siblings from two conflicting writes are resolved in the page", async () => {
      // a table that looks like one: 60 users, the view's key list full
      const users = Array.from({ length: 60 }, (_, i) => `user-${String(i + 1).padStart(3, "0")}`);
      for (let i = 0; i < users.length; i += 20) {
        await Promise.all(users.slice(i, i + 20).map((u, j) => http(n1, "PUT", `/users/key/${u}`,
          { value: { name: `User ${i + j + 1}`, email: `${u}@example.com`, plan: "free" } })));
      }
      const conflict = async (key, a, b) => {
        const c0 = (await http(n1, "GET", `/users/key/${key}`)).body.context;
        eq((await http(n2, "PUT", `/users/key/${key}`, { value: a, context: c0 })).status, 200, "write A through node2");
        eq((await http(n3, "PUT", `/users/key/${key}`, { value: b, context: c0 })).status, 200, "write B through node3");
        await poll(`two siblings of ${key}`, async () => (await http(n1, "GET", `/users/key/${key}?siblings=all`)).status === 300);
      };

      // keep one of the two
      await conflict("user-007", { name: "User 7", plan: "left" }, { name: "User 7", plan: "right" });
      await page.goto(`${ui}#/data/users/user-007`);
      await page.locator("#siblings > li").nth(1).waitFor();
      await page.locator("#siblings > li", { hasText: "right" }).locator("button").click();
      await page.locator("#record-value", { hasText: "right" }).waitFor();
      const kept = await http(n3, "GET", "/users/key/user-007?siblings=all");
      eq([kept.status, kept.body.value], [200, { name: "User 7", plan: "right" }], "the kept version, read through node3");

      // or write a merge
      const ada = { name: "Ada Lovelace", email: "ada@example.com", plan: "free" };
      await http(n1, "PUT", "/users/key/user-042", { value: ada });
      await conflict("user-042", { ...ada, plan: "pro" }, { ...ada, email: "ada@analytical.engine" });
      await page.goto(`${ui}#/data/users/user-042`);
      await page.locator("#siblings > li").nth(1).waitFor();
      eq(await page.locator("#siblings > li").count(), 2, "both versions side by side");
      await page.locator("#siblings", { hasText: '"pro"' }).waitFor();
      await page.locator("#siblings", { hasText: "analytical.engine" }).waitFor();
      await page.locator("#merge-hint", { hasText: "email, plan" }).waitFor();
      await shot("siblings.png");
      const merged = { name: "Ada Lovelace", email: "ada@analytical.engine", plan: "pro" };
      await page.locator("#merge-editor").fill(JSON.stringify(merged, null, 2));
      await page.locator("#merge-btn").click();
      await page.locator("#record-value", { hasText: "analytical.engine" }).waitFor();
      const r = await http(n2, "GET", "/users/key/user-042?siblings=all");
      eq(r.status, 200, "one version left, read through node2");
      eq(r.body.value, merged, "the merge");
      eq(r.body.siblings, 1, "sibling count");
      await page.locator("#reload-btn").click();
      await page.locator("#request-log tbody tr").nth(2).waitFor();
      await page.locator("#replica-list li").nth(2).waitFor();
      await shot("data.png");
    });

    await test("a write by another client appears in the live feed", async () => {
      await page.goto(`${ui}#/live/feed`);
      await page.locator("#live-status", { hasText: "Watching table feed" }).waitFor();
      const key = `news-${Date.now()}`;
      eq((await http(n3, "PUT", `/feed/key/${key}`, { value: { headline: "written through node3" } })).status, 201, "the other client's write");
      const item = page.locator("#feed li", { hasText: key });
      await item.waitFor();
      assert((await item.textContent()).includes("written through node3"), "the feed shows the value");
      await http(n2, "DELETE", `/feed/key/${key}`);
      await page.locator("#feed li.feed-deleted", { hasText: key }).waitFor();
    });

    await test("the record in view follows another writer", async () => {
      const key = `follow-${Date.now()}`;
      await http(n1, "PUT", `/web/key/${key}`, { value: { version: 1 } });
      await page.goto(`${ui}#/data/web/${key}`);
      await page.locator("#record-value", { hasText: '"version": 1' }).waitFor();
      await page.locator(".live-state", { hasText: "live" }).waitFor();
      await http(n2, "PUT", `/web/key/${key}`, { value: { version: 2 } });
      await page.locator("#record-value", { hasText: '"version": 2' }).waitFor();
      await page.locator(".live-state", { hasText: "by another client" }).waitFor();
    });

    await test("the quorum view predicts staleness beside the lab's measured figures", async () => {
      // traffic through node1 (the page's node), so its coordinator has
      // replica delays to predict from
      for (let i = 0; i < 60; i += 6) {
        await Promise.all(Array.from({ length: 6 }, async (_, j) => {
          const put = await http(n1, "PUT", `/qtraffic/key/k${i + j}`, { value: i + j });
          assert(put.status === 200 || put.status === 201, `a traffic write: ${put.status} ${put.text}`);
          await http(n1, "GET", `/qtraffic/key/k${i + j}`);
        }));
      }
      await poll("node1 to predict from its samples", async () => (await http(n1, "GET", "/pbs?r=1&w=1")).status === 200);

      // a node that has seen too little says so, and sends warm-up traffic
      // only when asked: /pbs answers no_samples until the button is pressed
      let fakeNoSamples = true;
      const pbsRoute = (u) => u.pathname === "/pbs";
      await page.route(pbsRoute, (route) => fakeNoSamples
        ? route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({
          error: "not enough replica delays observed yet", code: "no_samples", needed: 20,
          samples: { w: 3, a: 3, r: 0, s: 0, peers: 1, clock: "shared", rounds: 3, split_rounds: 0 } }) })
        : route.continue());
      await page.goto(`${ui}#/quorum`);
      await page.locator("#q-nosamples", { hasText: "20 of each kind are needed" }).waitFor();
      await page.locator("#q-nosamples .q-short", { hasText: "0 of 20" }).first().waitFor();
      eq(requested.filter((u) => u.includes("quorumlab-warmup")), [], "warm-up requests before the button");
      fakeNoSamples = false;
      await page.locator("#q-warmup").click();
      await page.locator("#q-warmup-status", { hasText: "Sent 300 requests" }).waitFor({ timeout: 30000 });
      assert((await page.locator("#q-warmup-status").textContent()).includes("all answered"), "every warm-up request answered");
      eq((await http(n2, "GET", "/quorumlab-warmup/key/w149")).status, 200, "a warm-up record read through node2");
      await page.locator('#q-result[data-state="live"]').waitFor();
      assert(await page.locator("#q-nosamples").isHidden(), "the no-samples card is gone");
      await page.unroute(pbsRoute);

      // the node's defaults (R=2 W=2 on this cluster), then R=1 W=1
      eq([await page.locator("#q-r").inputValue(), await page.locator("#q-w").inputValue()], ["2", "2"], "the node's R and W");
      await page.locator("#q-r").selectOption("1");
      await page.locator("#q-w").selectOption("1");
      await page.locator('#q-result[data-r="1"][data-w="1"][data-state="live"]').waitFor();
      assert(page.url().endsWith("#/quorum/1/1"), `the choice is in the address: ${page.url()}`);
      const p0 = await page.locator('#q-table tr[data-t="0"] td[data-col="live"]').textContent();
      assert(/^(\d{1,3}(\.\d+)?|> 99\.999)%$/.test(p0), `a predicted P(consistent) at t=0: ${p0}`);
      eq(await page.locator('#q-table td[data-col="live"]', { hasText: "–" }).count(), 0, "a prediction for every t");
      const rounds = Number(await page.locator("#q-samples").getAttribute("data-rounds"));
      assert(rounds > 0, `the samples behind it: ${rounds}`);
      await page.locator("#q-clock", { hasText: "Shared clock" }).waitFor();
      await page.locator("#q-rule", { hasText: "partial quorum" }).waitFor();
      for (const col of ["p50", "p999"]) {
        const v = await page.locator(`#q-lat-table td[data-col="${col}"]`).first().textContent();
        assert(/\d (µs|ms|s)$/.test(v), `a predicted read latency ${col}: ${v}`);
      }
      await page.locator('#q-k-table tr[data-k="3"] td[data-col="live"]').filter({ hasText: "%" }).waitFor();
      assert(await page.locator('#q-chart g[data-series="live"] polyline').count() === 1, "the prediction is drawn");

      // R + W > N: always consistent
      await page.locator("#q-r").selectOption("2");
      await page.locator("#q-w").selectOption("2");
      await page.locator('#q-result[data-r="2"][data-w="2"][data-state="live"]').waitFor();
      eq(await page.locator('#q-table tr[data-t="0"] td[data-col="live"]').textContent(), "100%", "R=2 W=2 at t=0");
      await page.locator("#q-rule", { hasText: "strict quorum" }).waitFor();
      await page.locator("#q-rule", { hasText: "sloppy" }).waitFor();

      // no lab run yet: the page says how to publish one to this node
      await page.locator("#q-lab-none").waitFor();
      await page.locator("#q-lab", { hasText: `tools/quorum-lab --publish 127.0.0.1:${n1.http}` }).waitFor();

      // a lab summary published into the cluster (a fixture, and labelled so)
      const ssd = "SSD-like replicas: links exp(0.5 ms), each apply exp(2 ms)";
      const vis = (pairs) => pairs.map(([t, m, p]) => ({ t_ms: t, measured: m, trials: 400, predicted: p }));
      const summary = {
        run: "browser-test", command: "tests/browser/run.mjs (a fixture for the page, not a measurement)",
        seed: 1, commit: "fixture", node_args: [], profiles: { ssd },
        configs: [
          { profile: "ssd", n: 3, r: 1, w: 1,
            t_visibility: vis([[0, 0.84, 0.86], [1, 0.9, 0.915], [2, 0.94, 0.952], [5, 0.985, 0.99], [10, 0.9975, 0.999], [20, 1, 1]]),
            k_staleness: [{ k: 1, measured: 0.84, predicted: 0.86 }, { k: 2, measured: 0.97, predicted: 0.98 }, { k: 3, measured: 0.995, predicted: 0.997 }],
            latency_ms: { write: { p50: 3.1, p99: 9.8, predicted_p50: 2.2, predicted_p99: 8.5 },
              read: { p50: 1.2, p99: 3.4, predicted_p50: 0.6, predicted_p99: 2.1 } } },
          { profile: "ssd", n: 3, r: 2, w: 2,
            t_visibility: vis([[0, 1, 1], [1, 1, 1], [2, 1, 1], [5, 1, 1], [10, 1, 1], [20, 1, 1]]),
            k_staleness: [], latency_ms: {} },
        ],
      };
      eq((await http(n2, "PUT", "/quorumlab/key/latest", { value: summary })).status, 201, "the lab summary published through node2");
      await page.locator("#q-refresh").click();
      await page.locator('#q-lab-profiles li[data-profile="ssd"]', { hasText: ssd }).waitFor();
      await page.locator("#q-lab-note", { hasText: "not on this one" }).waitFor();
      await page.locator("#q-r").selectOption("1");
      await page.locator("#q-w").selectOption("1");
      await page.locator('#q-result[data-r="1"][data-w="1"][data-state="live"]').waitFor();
      eq(await page.locator('#q-table tr[data-t="0"] td[data-col="measured-ssd"]').textContent(), "84.0%", "the lab's measured figure at t=0");
      eq(await page.locator('#q-table tr[data-t="5"] td[data-col="predicted-ssd"]').textContent(), "99.0%", "the lab's prediction at t=5");
      await page.locator("#q-table thead", { hasText: "lab ssd, measured" }).waitFor();
      await page.locator("#q-legend", { hasText: "lab · ssd · measured" }).waitFor();
      eq(await page.locator('#q-chart g[data-series="lab-ssd-measured"] circle').count(), 6, "the lab's measured points on the chart");
      eq(await page.locator('#q-k-table tr[data-k="2"] td[data-col="measured-ssd"]').textContent(), "97.0%", "the lab's k=2");
      await page.locator("#q-lab-lat-table", { hasText: "ssd write" }).waitFor();
      // the live line for R=1 W=1 is still there, with its own numbers
      assert(/%$/.test(await page.locator('#q-table tr[data-t="0"] td[data-col="live"]').textContent()), "the live column beside the lab's");
      await shot("quorum.png");

      await page.setViewportSize({ width: 390, height: 844 });
      await page.locator("#q-chart svg[width]").waitFor();
      await poll("the chart to fit the phone", () => page.evaluate(() => Number(document.querySelector("#q-chart svg").getAttribute("width")) <= 390), 5000);
      const wide = await page.evaluate(() => document.documentElement.scrollWidth);
      assert(wide <= 390, `the quorum view is ${wide}px wide in a 390px window`);
      await shot("phone-quorum.png");
      await page.setViewportSize({ width: 1280, height: 800 });
    });

    await stopLoad();
    stopLoad = null;

    await test("a killed node turns down in the member list", async () => {
      await page.goto(`${ui}#/cluster`);
      await row("node3", '[data-liveness="alive"]').waitFor();
      n3.kill();
      await row("node3", '[data-liveness="down"]').waitFor({ timeout: 20000 });
      await row("node1", '[data-liveness="alive"]').waitFor();
      assert(await row("node3").locator('button[data-op="remove"]').isEnabled(), "a down node can be removed");
      await page.locator('.node-card[data-node="node3"] .inline-error', { hasText: "unreachable" }).waitFor({ timeout: 10000 });
    });

    await test("a strict write quorum with a node down is a 503, explained", async () => {
      const key = `quorum-${Date.now()}`;
      eq((await http(n1, "PUT", `/web/key/${key}`, { value: "before" })).status, 201, "create with two nodes up");
      await page.goto(`${ui}#/data/web/${key}`);
      await page.locator("#record-value").waitFor();
      await page.locator("#knob-w").selectOption("3");
      await page.locator("#knob-sloppy").uncheck();
      await page.locator("#edit-btn").click();
      await page.locator("#value-editor").fill('"after"');
      await page.locator("#save-btn").click();
      const why = page.locator('.explain[data-status="503"]');
      await why.waitFor();
      const text = await why.textContent();
      for (const must of ["quorum not reached", "2 of the 3", "w=3", "node3 down", "sloppy=false", "not undone"]) {
        assert(text.includes(must), `the explanation says "${must}": ${text}`);
      }
      await page.locator("#request-log tbody tr").first().locator(".status", { hasText: "503" }).waitFor();
      await page.locator("#stand-ins", { hasText: "Nobody for node3" }).waitFor();
      // the knobs back to the defaults: a sloppy quorum gets through
      await page.locator("#knob-w").selectOption("");
      await page.locator("#knob-sloppy").check();
    });

    await test("a phone-sized window shows the views without sideways scrolling", async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(`${ui}#/cluster`);
      await row("node1").waitFor();
      await page.locator('nav a[data-view="data"]').waitFor({ state: "visible" });
      const wide = await page.evaluate(() => document.documentElement.scrollWidth);
      assert(wide <= 390, `the cluster view is ${wide}px wide in a 390px window`);
      const [table, room] = await page.evaluate(() => {
        const t = document.querySelector("#members-table");
        return [t.scrollWidth, t.parentElement.clientWidth];
      });
      assert(table <= room, `the member list (${table}px) fits its card (${room}px), actions included`);
      await shot("phone-cluster.png");
      await page.locator('nav a[data-view="data"]').click();
      await page.locator("#tables li").first().waitFor();
      await page.goto(`${ui}#/data/paging/item-007`);
      await page.locator("#record-value").waitFor();
      const wide2 = await page.evaluate(() => document.documentElement.scrollWidth);
      assert(wide2 <= 390, `the data view is ${wide2}px wide in a 390px window`);
      await shot("phone-data.png");
      await page.setViewportSize({ width: 1280, height: 800 });
    });

    await test("the page asked nothing of anyone but its node, and hit no script error", async () => {
      const origin = new URL(ui).origin;
      const foreign = requested.filter((u) => new URL(u).origin !== origin);
      eq(foreign, [], "requests to other origins");
      eq(scriptErrors, [], "uncaught script errors");
    });
  } catch (e) {
    results.push({ name: "set-up", ok: false, error: e });
    console.log(`FAIL set-up: ${e && e.stack || e}`);
  } finally {
    if (stopLoad) await stopLoad();
    if (browser) await browser.close().catch(() => {});
    if (cluster) {
      const failed = results.some((r) => !r.ok);
      if (failed) for (const n of cluster.nodes) console.log(`--- ${n.name} log tail (${n.log})\n${n.tail()}`);
      await Promise.all(cluster.nodes.map((n) => n.stop()));
      if (KEEP) console.log(`kept ${cluster.dir}`);
      else fs.rmSync(cluster.dir, { recursive: true, force: true });
    }
  }
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  console.log(`screenshots: ${OUT}`);
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exitCode = failed || !results.length ? 1 : 0;
}

await main();
