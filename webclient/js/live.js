// Server-Sent Events from GET /{table}/subscribe[/{key}] through EventSource,
// which reconnects by itself (with Last-Event-ID, so nothing is missed while
// the node's change log covers the gap). When the node refuses the stream
// (EventSource then gives up without saying why) the same URL is asked once
// with fetch to show the node's error.

import { url } from "./api.js";

export class Subscription {
  /**
   * path: an API path (paths.subscribeKey / subscribeTable).
   * onEvent(type, data, id): "updated" | "deleted" | "reset".
   * onStatus(state, detail): "connecting" | "live" | "reconnecting" | "closed".
   */
  constructor(path, { onEvent, onStatus }) {
    this.url = url(path);
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.es = null;
  }

  start() {
    this.stop();
    const es = new EventSource(this.url);
    this.es = es;
    this.onStatus("connecting");
    es.onopen = () => this.onStatus("live");
    for (const type of ["updated", "deleted", "reset"]) {
      es.addEventListener(type, (ev) => {
        let data = null;
        try { data = JSON.parse(ev.data); } catch { data = { raw: ev.data }; }
        this.onEvent(type, data, ev.lastEventId);
      });
    }
    es.onerror = () => {
      if (this.es !== es) return;
      if (es.readyState === EventSource.CLOSED) this.diagnose(es);
      else this.onStatus("reconnecting", "the stream broke; the browser reconnects by itself");
    };
  }

  async diagnose(es) {
    const ctl = new AbortController();
    let detail;
    try {
      const res = await fetch(this.url, { signal: AbortSignal.any([ctl.signal, AbortSignal.timeout(5000)]) });
      if (res.ok) {
        detail = "the stream closed; it answers again now: press Start to reconnect";
      } else {
        let body = null;
        try { body = await res.json(); } catch { /* not JSON */ }
        detail = `GET ${this.url.pathname} → ${res.status}` +
          (body && body.code ? ` ${body.code}` : "") + (body && body.error ? `: ${body.error}` : "");
      }
    } catch (e) {
      detail = `the node cannot be reached (${e.message})`;
    } finally {
      ctl.abort();
    }
    if (this.es === es) this.onStatus("closed", detail);
  }

  stop() {
    if (this.es) {
      this.es.close();
      this.es = null;
    }
  }

  get running() {
    return this.es !== null;
  }
}
