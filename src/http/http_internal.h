/* http_internal.h - what the gateway's files share: routes, write bodies,
 * replies, metrics. Nothing here is for other modules. */
#ifndef RINGKV_HTTP_INTERNAL_H
#define RINGKV_HTTP_INTERNAL_H

#include <civetweb.h>

#include "ringkv/http.h"

/* ---- routes (route.c; pure, unit-tested) ------------------------------- */

typedef enum http_route {
    ROUTE_NONE = 0,
    ROUTE_KEY,         /* /{table}/key/{key}, /key/{key} */
    ROUTE_KEYS,        /* /{table}/keys */
    ROUTE_STORE,       /* /{table}/store */
    ROUTE_SUBSCRIBE,   /* /{table}/subscribe/{key} */
    ROUTE_HEALTH,
    ROUTE_METRICS,
    ROUTE_MEMBERSHIP,
    ROUTE_CLUSTER,
    ROUTE_CLUSTER_LEAVE,   /* POST /cluster/leave */
    ROUTE_CLUSTER_REMOVE,  /* POST /cluster/remove */
    ROUTE_CLUSTER_REPAIR,  /* POST /cluster/repair */
    ROUTE_HINTS_DROP,      /* POST /cluster/hints/drop */
    ROUTE_AUTH,        /* /auth/{user} */
    ROUTE_UI,          /* /ui, /ui/... and / */
} http_route;

typedef struct route_match {
    http_route route;
    char table[KV_TABLE_MAX + 1];
    size_t table_len;
    char key[KV_KEY_MAX + 1];   /* decoded; also the user of /auth */
    size_t key_len;
    const char *rest;           /* ROUTE_UI: path after /ui (raw) */
} route_match;

/* Matches a raw (percent-encoded) path without its query string. Returns
 * RK_OK with m filled (m->route may be ROUTE_NONE), or RK_EINVAL with
 * *code set ("invalid_table", "invalid_key") for a route whose table or key
 * is not acceptable. */
rk_err route_match_path(const char *path, size_t len, route_match *m, const char **code);

/* Percent-decodes src into dst (capacity cap, NUL added). RK_EINVAL on a
 * bad escape, RK_ETOOBIG if it does not fit. '+' is kept as is. */
rk_err percent_decode(const char *src, size_t len, char *dst, size_t cap, size_t *out_len);

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
rk_err json_scan_write_body(const char *body, size_t len, write_body *out, const char **code);

/* ---- replies (respond.c) ------------------------------------------------ */

/* Sends status + headers + body with one write. extra_headers are complete
 * "Name: value\r\n" lines or NULL. Returns status (civetweb's "handled"). */
int reply_send(struct mg_connection *conn, int status, const char *content_type,
               const char *extra_headers, const char *body, size_t body_len);
int reply_json(struct mg_connection *conn, int status, const char *extra_headers,
               const rk_buf *body);
/* {"error": message, "code": code} */
int reply_error(struct mg_connection *conn, int status, const char *code, const char *message);
/* The status an rk_err maps to, in one table. */
int http_status_of(rk_err err);

/* ---- metrics (metrics.c) ------------------------------------------------ */

typedef enum metric_route {
    MR_KEY_GET, MR_KEY_PUT, MR_KEY_DELETE, MR_KEYS_LIST, MR_KEYS_BATCH, MR_STORE,
    MR_SUBSCRIBE, MR_HEALTH, MR_METRICS, MR_MEMBERSHIP, MR_CLUSTER, MR_CLUSTER_LEAVE,
    MR_CLUSTER_REMOVE, MR_CLUSTER_REPAIR, MR_HINTS_DROP, MR_AUTH, MR_UI, MR_UNMATCHED, MR_COUNT
} metric_route;

typedef struct http_metrics http_metrics;
rk_err http_metrics_alloc(http_metrics **out);   /* free with http_metrics_free */
void http_metrics_free(http_metrics *m);
void http_metrics_record(http_metrics *m, metric_route route, int status, uint64_t elapsed_ns);
/* Appends the Prometheus text of the HTTP counters. */
rk_err http_metrics_render(const http_metrics *m, rk_buf *out);

/* ---- what the sync service reports (sync_report.c; pure, unit-tested) ---- */

/* Appends /cluster's "sync" object: struct sync_stats field for field, in
 * its order, numbers and one bool. */
rk_err http_sync_append_json(const sync_stats *st, rk_buf *out);
/* Appends the Prometheus text of the sync counters (ringkv_sync_*,
 * ringkv_handoff_*, ringkv_anti_entropy_*, ringkv_tombstones_purged_total,
 * ringkv_hint_bytes_sent_total). hints_delivered is not among them: it is
 * ringkv_hints_total{event="delivered"}, printed with kv's metrics. */
rk_err http_sync_render_metrics(const sync_stats *st, rk_buf *out);

/* ---- membership changes (cluster_admin.c) --------------------------------- */

/* The node a POST /cluster/remove body {"node": "NAME or 16-hex id"} names,
 * copied to dst (capacity cap, NUL added). RK_EINVAL with *code "bad_json"
 * when the body is not a JSON object, "missing_node" when it has no
 * non-empty "node" string (or one longer than cap - 1). Pure. */
rk_err admin_parse_node_body(const char *body, size_t len, char *dst, size_t cap,
                             const char **code);
/* Finds the member text names in view: by name first, then, if text is 16
 * hex digits, by id. RK_OK with *out pointing into view; RK_ENOTFOUND;
 * RK_EEXIST when several members carry that name (the caller asks for the
 * id instead). Pure. */
rk_err admin_find_member(const cluster_view *view, const char *text,
                         const cluster_view_member **out);

/* ---- the server (server.c) and handlers (handlers.c) --------------------- */

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
    uint64_t started_ms;
};

/* civetweb request handler for every path. */
int http_dispatch(struct mg_connection *conn, void *cbdata);

/* ---- one request, as the handlers see it (handlers.c) -------------------- */

typedef struct request {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    http_server *srv;
    route_match m;
    const char *method;
    metric_route mr;          /* what the metrics count it as */
} request;

/* Query parameter name into dst (decoded, NUL-terminated). Returns its
 * length, -1 when absent, -2 when longer than cap - 1. */
int request_param(const request *rq, const char *name, char *dst, size_t cap);
/* ?name= as an integer in [lo, hi]; absent leaves *out unchanged. RK_EINVAL
 * (after replying 400 bad_param) otherwise. */
rk_err request_uint_param(const request *rq, const char *name, uint64_t lo, uint64_t hi,
                          uint64_t *out);
/* True when ?name=1|true. */
bool request_flag(const request *rq, const char *name);
/* ?name= as true|1 or false|0; absent leaves *out unchanged. RK_EINVAL
 * (after replying 400 bad_param) otherwise. */
rk_err request_bool_param(const request *rq, const char *name, bool *out);
/* Reads the whole body (up to max bytes) into out. RK_ETOOBIG when larger
 * (413 already sent), RK_EIO when the client went away. */
rk_err request_body(const request *rq, size_t max, rk_buf *out);
/* Who is writing: "" while auth is off. The hook for token auth. */
rk_err request_owner(const request *rq, const char **owner);

/* Replies for a failed kv call: 503 with acks/needed for a quorum failure,
 * otherwise the mapped status with a JSON error. */
int reply_kv_error(const request *rq, rk_err err, const kv_result *res);

/* Appends {"key"?, "value", "context", "timestamp", "owner", "siblings"} for
 * sibling s of obj. key may be NULL. */
rk_err append_record(rk_buf *b, const rk_object *obj, const sibling *s, const char *key,
                     size_t key_len);

int handle_key(request *rq);      /* key.c */
int handle_keys(request *rq);     /* list.c */
int handle_store(request *rq);    /* list.c */
int handle_health(request *rq);   /* admin.c */
int handle_metrics(request *rq);
int handle_membership(request *rq);
int handle_cluster(request *rq);
int handle_cluster_leave(request *rq);   /* cluster_admin.c */
int handle_cluster_remove(request *rq);
int handle_cluster_repair(request *rq);
int handle_hints_drop(request *rq);
int handle_ui(request *rq);
int handle_auth(request *rq);
int handle_subscribe(request *rq);
int reply_method_not_allowed(request *rq, const char *allow);

#endif
