/* http_internal.h - what the gateway's files share: the route table, one
 * request, replies, request input, metrics. Nothing here is for other
 * modules.
 *
 * Files, from the top down; a file calls only files below it:
 *
 *   server.c        civetweb start/stop
 *   dispatch.c      the route table and http_dispatch
 *   key.c list.c admin.c cluster_admin.c pbs.c   the route handlers
 *   failpoints.c    /debug/failpoints (nodes started with --failpoints)
 *   request.c       query parameters and bodies (refuses bad input)
 *   respond.c       replies, the rk_err -> status table
 *   metrics.c counters.c sync_report.c        Prometheus and JSON reports
 *   reply_buf.c     the sticky-error buffer replies are built in
 *   route.c json_scan.c                       pure parsing: paths, bodies
 *
 * (dispatch.c names the handlers only in its table, and server.c passes
 * http_dispatch to civetweb as a pointer: no call, but the same order.)
 *
 * The one convention for replies: every handler returns void and replies
 * exactly once, through respond.c, which records the status in rq->status
 * (the dispatcher counts it in the metrics). A helper that can refuse its
 * input (request_*, remove_target_of, ...) returns an rk_err, and when that
 * is not RK_OK it has already replied: the caller only cleans up and
 * returns. A handler that returns without replying is a bug; the
 * dispatcher answers 500 for it and logs it. */
#ifndef RINGKV_HTTP_INTERNAL_H
#define RINGKV_HTTP_INTERNAL_H

#include <civetweb.h>
#include <stdatomic.h>

#include "ringkv/failpoint.h"
#include "ringkv/http.h"

/* ---- the route table (rows in dispatch.c; matching in route.c, pure) ----- */

/* Methods as bits, so a row can take several. HTTP_M_OTHER is any method
 * not named here (PATCH, OPTIONS...). */
enum {
    HTTP_M_GET = 1 << 0,
    HTTP_M_HEAD = 1 << 1,
    HTTP_M_PUT = 1 << 2,
    HTTP_M_POST = 1 << 3,
    HTTP_M_DELETE = 1 << 4,
    HTTP_M_OTHER = 1 << 5,
    HTTP_M_ANY = (1 << 6) - 1,
};

/* The bit of a request method ("GET" -> HTTP_M_GET; unknown -> OTHER). */
unsigned http_method_bit(const char *method);

typedef struct request request;
typedef void http_handler(request *rq);

/* One row: requests whose path matches pattern and whose method is in
 * methods go to handler and are counted under metric.
 *
 * A pattern is '/'-separated segments: a literal (compared raw, so
 * "/%6Bey" is not "/key"), "{table}" (one segment, decoded, a valid table
 * name), or, last, a capture of the rest of the path: "{key*}" (decoded, a
 * valid key; a pattern with a key and no table is the "default" table's),
 * "{user*}" (decoded like a key) or "{path*}" (raw, kept in route_match's
 * rest with the '/' before it). Rows of one pattern are adjacent; the first
 * row whose methods hold the request's method wins. A row with no handler
 * refuses its methods with 405 and counts them under its metric; a method
 * that no row of the pattern takes is refused too, counted under the
 * pattern's first row. */
typedef struct http_route {
    const char *pattern;
    unsigned methods; /* HTTP_M_* bits */
    const char *metric;
    http_handler *handler;
} http_route;

extern const http_route http_routes[];
extern const size_t http_route_count;

typedef struct route_match {
    const http_route *route; /* first row of the matched pattern; NULL: none */
    char table[KV_TABLE_MAX + 1];
    size_t table_len;
    char key[KV_KEY_MAX + 1]; /* decoded; also the user of /auth */
    size_t key_len;
    const char *rest; /* {path*}: the raw rest, with its leading '/' */
} route_match;

/* Finds the pattern of routes[0..n) that a raw (percent-encoded) path
 * without its query string matches. Patterns that start with a literal are
 * tried before those that start with "{table}", so "/ui/..." and
 * "/key/..." are never taken for tables; otherwise rows are tried in order.
 * Returns RK_OK with m filled (m->route NULL when nothing matches), or
 * RK_EINVAL with *code set ("invalid_table", "invalid_key") for a path
 * that has a route's shape but a table or key that is not acceptable. */
rk_err http_route_find(const http_route *routes, size_t n, const char *path, size_t len,
                       route_match *m, const char **code);

/* The row of first's pattern that takes method (an HTTP_M_* bit), or NULL
 * when none does. first is a row http_route_find returned; end is one past the
 * table. */
const http_route *http_route_for_method(const http_route *first, const http_route *end,
                                        unsigned method);

/* "GET, PUT, POST, DELETE": the methods the rows of first's pattern serve,
 * for the Allow header of a 405, into dst (cap bytes, NUL added). HEAD is
 * not listed: where it is served, it comes with GET. */
void http_route_allow(const http_route *first, const http_route *end, char *dst, size_t cap);

/* Percent-decodes src into dst (capacity cap, NUL added). RK_EINVAL on a
 * bad escape, RK_ETOOBIG if it does not fit. '+' is kept as is. */
rk_err http_percent_decode(const char *src, size_t len, char *dst, size_t cap, size_t *out_len);

/* ---- write bodies (json_scan.c; pure, unit-tested) ----------------------- */

/* A write body {"value": <json>, "context": "<ctx>"}: finds the spans
 * (pointers into body). Unknown members are ignored. Returns RK_EINVAL with
 * *code "bad_json" if the body is not one valid JSON object; value_len is 0
 * when there is no "value" member (the last one wins when it is repeated).
 * context is NULL when absent or null; a context that is not a plain
 * string gives *code "bad_context", even when the body breaks after it.
 * The body is checked as strictly as rk_json_valid checks, depth included. */
typedef struct write_body {
    const char *value;
    size_t value_len;
    const char *context;
    size_t context_len;
} write_body;
rk_err http_json_scan_write_body(const char *body, size_t len, write_body *out, const char **code);

/* ---- the reply buffer (reply_buf.c; pure, unit-tested) -------------------- */

/* An rk_buf whose error is sticky: after the first failed append, appends
 * do nothing and err keeps that failure, so a body is built with plain
 * calls and checked once, at the end (http_reply_json does). Zero-initialise;
 * free with http_reply_buf_free. */
typedef struct reply_buf {
    rk_buf buf;
    rk_err err;
} reply_buf;

void http_reply_add(reply_buf *r, const void *data, size_t len);
void http_reply_add_str(reply_buf *r, const char *s);
void http_reply_addf(reply_buf *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void http_reply_add_u64(reply_buf *r, uint64_t v);
/* s as a JSON string literal, quotes included; s NULL is "". */
void http_reply_add_json_string(reply_buf *r, const char *s, size_t len);
void http_reply_add_json_cstr(reply_buf *r, const char *s);
/* The base64url context of clock (no quotes). */
void http_reply_add_context(reply_buf *r, const vclock *clock);
/* {"key"?, "value", "context", "timestamp", "owner", "siblings"} for
 * sibling s of obj; key may be NULL. */
void http_reply_add_record(reply_buf *r, const rk_object *obj, const sibling *s, const char *key,
                           size_t key_len);
void http_reply_buf_free(reply_buf *r);

/* ---- the server (server.c) -------------------------------------------------- */

typedef struct http_metrics http_metrics;

struct http_server {
    struct mg_context *ctx;
    kv *k;
    http_metrics *metrics;
    http_options opts;
    char listen[128];
    char webclient_dir[1024];
    char name[128];
    char http_addr[128];
    char rpc_addr[128];
    char cluster_id[64];
    uint64_t node_id;
    unsigned partitions;
    cluster_node *cluster;
    rpc_server *rpc;
    rpc_client *rpc_client;
    sync_service *sync;
    watch *watch;
    uint64_t started_ms;
    _Atomic uint64_t events_sent; /* SSE events written to clients */
};

/* civetweb request handler for every path (dispatch.c). */
int http_dispatch(struct mg_connection *conn, void *cbdata);

/* ---- one request, as the handlers see it ----------------------------------- */

struct request {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    http_server *srv;
    route_match m;
    const char *method;
    int status; /* of the reply sent; 0 until then (respond.c sets it) */
};

/* ---- replies (respond.c) ------------------------------------------------------ */

/* Each sends one reply and records its status in rq->status; a second
 * reply to one request is a bug, logged and not sent. */

/* status + headers + body with one write. extra_headers are complete
 * "Name: value\r\n" lines or NULL. */
void http_reply_send(request *rq, int status, const char *content_type, const char *extra_headers,
                     const char *body, size_t body_len);
/* body as JSON, with headers' lines (headers may be NULL); if either buffer
 * failed, a 500 with its error instead. */
void http_reply_json(request *rq, int status, const reply_buf *headers, const reply_buf *body);
/* 200 with a built JSON body (a 500 if building it failed), then frees it. */
void http_reply_built(request *rq, reply_buf *body);
/* {"error": message, "code": code} */
void http_reply_error(request *rq, int status, const char *code, const char *message);
/* err through the status table, with its code and text; logged when 5xx. */
void http_reply_err(request *rq, rk_err err);
/* A failed kv call: 503 with acks/needed for a quorum failure, otherwise
 * as http_reply_err. */
void http_reply_kv_error(request *rq, rk_err err, const kv_result *res);
void http_reply_method_not_allowed(request *rq, const char *allow);
/* A static file (civetweb picks the MIME type); counted as 200. */
void http_reply_file(request *rq, const char *path);
/* The client went away while we read: nothing can be sent. Counted as 400,
 * the request never arrived whole. */
void http_reply_gone(request *rq);
/* A 200 whose body is a stream (no length; the connection closes at its
 * end), with first as the body's first bytes. False when the client is
 * gone. The handler then writes the stream with mg_write. */
bool http_reply_stream_start(request *rq, const char *content_type, const char *first);
/* The status an rk_err maps to, in one table. */
int http_status_of(rk_err err);

/* ---- request input (request.c) ------------------------------------------------- */

/* Query parameter name into dst (decoded, NUL-terminated). Returns its
 * length, -1 when absent, -2 when longer than cap - 1. Never replies. */
int http_request_param(const request *rq, const char *name, char *dst, size_t cap);
/* True when ?name=1|true. Never replies. */
bool http_request_flag(const request *rq, const char *name);
/* ?name= as an integer in [lo, hi]; absent leaves *out unchanged. RK_EINVAL
 * after replying 400 bad_param otherwise. */
rk_err http_request_uint_param(request *rq, const char *name, uint64_t lo, uint64_t hi,
                               uint64_t *out);
/* ?name= as true|1 or false|0; absent leaves *out unchanged. RK_EINVAL
 * after replying 400 bad_param otherwise. */
rk_err http_request_bool_param(request *rq, const char *name, bool *out);
/* Reads the whole body (up to max bytes) into out (the caller frees it).
 * On failure it has replied: RK_ETOOBIG (413), RK_ENOMEM (500), RK_EIO
 * (the client went away, http_reply_gone). */
rk_err http_request_body(request *rq, size_t max, rk_buf *out);
/* Who is writing: "" while auth is off. The hook for token auth. */
rk_err http_request_owner(const request *rq, const char **owner);

/* ---- the route handlers ----------------------------------------------------------- */

void http_handle_key_get(request *rq); /* key.c */
void http_handle_key_put(request *rq);
void http_handle_key_delete(request *rq);
void http_handle_keys_list(request *rq); /* list.c */
void http_handle_keys_batch(request *rq);
void http_handle_store(request *rq);
void http_handle_health(request *rq); /* admin.c */
void http_handle_metrics(request *rq);
void http_handle_membership(request *rq);
void http_handle_cluster(request *rq);
void http_handle_ui(request *rq);
void http_handle_auth(request *rq);
void http_handle_peer_metrics(request *rq);
void http_handle_tables(request *rq); /* ring_view.c */
void http_handle_ring(request *rq);
void http_handle_placement(request *rq);
void http_handle_subscribe(request *rq); /* subscribe.c */
/* An event's data line (watch_render_cb), set as the hub's renderer. */
rk_err http_render_event(void *arg, const watch_event_info *ev, rk_buf *out);
void http_handle_cluster_leave(request *rq); /* cluster_admin.c */
void http_handle_cluster_remove(request *rq);
void http_handle_cluster_repair(request *rq);
void http_handle_hints_drop(request *rq);
void http_handle_pbs(request *rq);            /* pbs.c */
void http_handle_failpoints_get(request *rq); /* failpoints.c */
void http_handle_failpoints_put(request *rq);
void http_handle_failpoints_delete(request *rq);

/* ---- request metrics (metrics.c; pure, unit-tested) ------------------------------ */

/* One slot per distinct metric name of routes[0..n), in the order they
 * first appear, then "unmatched". Free with http_metrics_free. */
rk_err http_metrics_alloc(const http_route *routes, size_t n, http_metrics **out);
void http_metrics_free(http_metrics *m);
/* Counts a request under metric (a name from the table; NULL or unknown
 * is "unmatched"). Lock-free. */
void http_metrics_record(http_metrics *m, const char *metric, int status, uint64_t elapsed_ns);
/* Appends the Prometheus text of the HTTP counters. */
void http_metrics_render(const http_metrics *m, reply_buf *out);

/* ---- counters of a stats struct (counters.c; pure, unit-tested) ---------------- */

/* One line of /metrics: a uint64_t at offset in some stats struct. help is
 * set on a family's first row only: that row writes "# HELP" and "# TYPE",
 * the rows after it add series (labels) to the family. */
typedef struct http_counter {
    const char *name;   /* Prometheus name */
    const char *labels; /* e.g. "op=\"read\"", or NULL */
    const char *type;   /* "counter" or "gauge" */
    const char *help;   /* NULL: one more series of the family above */
    size_t offset;      /* of the uint64_t in the stats struct */
    const char *json;   /* its member in a JSON report (sync_report.c), or NULL */
} http_counter;

/* The value of c in stats. */
uint64_t http_counter_value(const http_counter *c, const void *stats);
/* Appends the Prometheus text of table[0..n) read from stats. */
void http_counters_write(reply_buf *out, const http_counter *table, size_t n, const void *stats);
/* Appends the kv and store counters (with the hints the sync service
 * delivered, in the same family as the ones kv stored), the RPC server's
 * and client's. store_stats come from kv_get_storage_stats. A row whose
 * name is NULL is JSON-only and skipped. */
void http_counters_write_node(reply_buf *out, const kv_stats *kv, const store_stats *st,
                              uint64_t hints_delivered, const rpc_server_stats *rpc,
                              const rpc_client_stats *client);

/* Appends the live-update counters (ringkv_subscribers, ...). */
void http_counters_write_live(reply_buf *out, const watch_stats *st, uint64_t events_sent);

/* ---- what the sync service reports (sync_report.c; pure, unit-tested) ---- */

/* Appends /cluster's "sync" object: struct sync_stats field for field, in
 * its order, numbers and one bool. */
void http_sync_append_json(const sync_stats *st, reply_buf *out);
/* Appends the Prometheus text of the sync counters (ringkv_sync_*,
 * ringkv_handoff_*, ringkv_anti_entropy_*, ringkv_tombstones_purged_total). */
void http_sync_render_metrics(const sync_stats *st, reply_buf *out);

/* ---- asking a peer's gateway (fetch.c) ------------------------------------- */

/* GET path from the gateway at hostport ("host:port", "[v6]:port") over
 * HTTP/1.0, all within timeout_ms (name resolution aside); at most max
 * bytes. RK_OK with *status and the body appended to body; otherwise
 * RK_EIO, RK_ETIMEDOUT, RK_ETOOBIG or RK_EINVAL with err saying why. */
rk_err http_fetch_get(const char *hostport, const char *path, unsigned timeout_ms, size_t max,
                      int *status, rk_buf *body, char *err, size_t errcap);
/* Splits a raw HTTP answer: its status and where its body starts. Pure. */
rk_err http_fetch_parse(const char *text, size_t len, int *status, size_t *body_at);

/* ---- membership changes (cluster_admin.c; pure parts) ----------------------- */

/* The node a POST /cluster/remove body {"node": "NAME or 16-hex id"} names,
 * copied to dst (capacity cap, NUL added). RK_EINVAL with *code "bad_json"
 * when the body is not a JSON object, "missing_node" when it has no
 * non-empty "node" string (or one longer than cap - 1). Pure. */
rk_err http_admin_parse_node_body(const char *body, size_t len, char *dst, size_t cap,
                                  const char **code);
/* Finds the member text names in view: by name first, then, if text is 16
 * hex digits, by id. RK_OK with *out pointing into view; RK_ENOTFOUND;
 * RK_EEXIST when several members carry that name (the caller asks for the
 * id instead). Pure. */
rk_err http_admin_find_member(const cluster_view *view, const char *text,
                              const cluster_view_member **out);

/* ---- fault rules (failpoints.c; pure part) ------------------------------------ */

/* The body of PUT /debug/failpoints: rules one a line (failpoint.h's
 * grammar; '#' comments), or JSON: an array of rule strings or objects
 * ({"spec"} or {"point", "peer", "action", "p", "n"}), or {"rules": [...]}
 * as GET lists them. On RK_OK *rules (free()) and *n; RK_EINVAL with err
 * saying which line or element and why; RK_ENOMEM. Pure. */
rk_err http_failpoints_parse_body(const char *body, size_t len, failpoint_rule **rules, size_t *n,
                                  char *err, size_t cap);

#endif
