/* dispatch.c - the route table, and the dispatch of every request through
 * it: match, method check (405 with Allow), handler, metrics. */
#include <stdio.h>
#include <string.h>

#include "http_internal.h"

#define GET_HEAD (HTTP_M_GET | HTTP_M_HEAD)

/* Every route, in one place. Rows are in the order /metrics lists the
 * routes; http_route_find tries literal patterns before "{table}" ones, so
 * the order does not decide a match. Key routes: HEAD is refused (and
 * counted as a read, the pattern's first row), and any other unknown
 * method is counted as a write, as before this table existed. */
const http_route http_routes[] = {
    {"/{table}/key/{key*}", HTTP_M_GET, "key_get", http_handle_key_get},
    {"/{table}/key/{key*}", HTTP_M_PUT | HTTP_M_POST, "key_put", http_handle_key_put},
    {"/{table}/key/{key*}", HTTP_M_DELETE, "key_delete", http_handle_key_delete},
    {"/{table}/key/{key*}", HTTP_M_OTHER, "key_put", NULL},
    {"/key/{key*}", HTTP_M_GET, "key_get", http_handle_key_get},
    {"/key/{key*}", HTTP_M_PUT | HTTP_M_POST, "key_put", http_handle_key_put},
    {"/key/{key*}", HTTP_M_DELETE, "key_delete", http_handle_key_delete},
    {"/key/{key*}", HTTP_M_OTHER, "key_put", NULL},
    {"/{table}/keys", HTTP_M_GET, "keys_list", http_handle_keys_list},
    {"/{table}/keys", HTTP_M_POST, "keys_batch", http_handle_keys_batch},
    {"/{table}/store", HTTP_M_GET, "store", http_handle_store},
    {"/{table}/placement/{key*}", GET_HEAD, "placement", http_handle_placement},
    {"/{table}/subscribe/{key*}", HTTP_M_GET, "subscribe", http_handle_subscribe},
    {"/{table}/subscribe", HTTP_M_GET, "subscribe", http_handle_subscribe},
    {"/health", GET_HEAD, "health", http_handle_health},
    {"/metrics", GET_HEAD, "metrics", http_handle_metrics},
    {"/membership", GET_HEAD, "membership", http_handle_membership},
    {"/cluster", GET_HEAD, "cluster", http_handle_cluster},
    {"/cluster/metrics/{path*}", GET_HEAD, "peer_metrics", http_handle_peer_metrics},
    {"/tables", GET_HEAD, "tables", http_handle_tables},
    {"/ring", GET_HEAD, "ring", http_handle_ring},
    {"/pbs", GET_HEAD, "pbs", http_handle_pbs},
    /* Membership changes. None of them has the shape of a /{table}/...
     * route, so they shadow nothing: a table named "cluster" still has
     * /cluster/keys and /cluster/key/k. */
    {"/cluster/leave", HTTP_M_POST, "cluster_leave", http_handle_cluster_leave},
    {"/cluster/remove", HTTP_M_POST, "cluster_remove", http_handle_cluster_remove},
    {"/cluster/repair", HTTP_M_POST, "cluster_repair", http_handle_cluster_repair},
    {"/cluster/hints/drop", HTTP_M_POST, "hints_drop", http_handle_hints_drop},
    /* Fault injection (docs/failpoints.md): 404 unless --failpoints. */
    {"/debug/failpoints", GET_HEAD, "failpoints", http_handle_failpoints_get},
    {"/debug/failpoints", HTTP_M_PUT, "failpoints", http_handle_failpoints_put},
    {"/debug/failpoints", HTTP_M_DELETE, "failpoints", http_handle_failpoints_delete},
    {"/auth/{user*}", HTTP_M_ANY, "auth", http_handle_auth},
    {"/", GET_HEAD, "ui", http_handle_ui},
    {"/ui", GET_HEAD, "ui", http_handle_ui},
    {"/ui/{path*}", GET_HEAD, "ui", http_handle_ui},
};

const size_t http_route_count = sizeof http_routes / sizeof http_routes[0];

/* The path of the request as the client sent it, still percent-encoded:
 * the key is decoded by the router, so "a%2Fb" stays one key "a/b". */
static const char *raw_path(const struct mg_request_info *ri, size_t *len)
{
    const char *uri = ri->request_uri ? ri->request_uri : "";
    if (strncmp(uri, "http://", 7) == 0 || strncmp(uri, "https://", 8) == 0) {
        const char *p = strchr(strstr(uri, "//") + 2, '/');
        uri = p ? p : "/";
    }
    const char *q = strchr(uri, '?');
    *len = q ? (size_t)(q - uri) : strlen(uri);
    return uri;
}

/* Replies to rq and returns the metric it counts under (NULL: unmatched). */
static const char *route_request(request *rq)
{
    size_t len;
    const char *path = raw_path(rq->ri, &len);
    const char *code = NULL;
    if (http_route_find(http_routes, http_route_count, path, len, &rq->m, &code) != RK_OK) {
        http_reply_error(rq, 400, code,
                         strcmp(code, "invalid_table") == 0
                             ? "table names are 1 to 64 of [A-Za-z0-9_.-]"
                             : "keys are 1 to 1024 bytes of UTF-8 without NUL");
        return NULL;
    }
    if (rq->m.route == NULL) {
        http_reply_error(rq, 404, "no_route", "no such route; see docs/api.md");
        return NULL;
    }
    const http_route *end = http_routes + http_route_count;
    const http_route *row = http_route_for_method(rq->m.route, end, http_method_bit(rq->method));
    if (row == NULL || row->handler == NULL) {
        char allow[64];
        http_route_allow(rq->m.route, end, allow, sizeof allow);
        http_reply_method_not_allowed(rq, allow);
        return row ? row->metric : rq->m.route->metric;
    }
    row->handler(rq);
    if (rq->status == 0) {
        RK_ERROR("http", "%s %s: the handler sent no reply", rq->method, rq->ri->local_uri);
        http_reply_error(rq, 500, "internal", "no reply");
    }
    return row->metric;
}

int http_dispatch(struct mg_connection *conn, void *cbdata)
{
    uint64_t t0 = rk_mono_ns();
    request rq = {
        .conn = conn,
        .ri = mg_get_request_info(conn),
        .srv = cbdata,
    };
    rq.method = rq.ri->request_method ? rq.ri->request_method : "";
    const char *metric = route_request(&rq);
    http_metrics_record(rq.srv->metrics, metric, rq.status, rk_mono_ns() - t0);
    RK_DEBUG("http", "%s %s -> %d", rq.method, rq.ri->request_uri, rq.status);
    return rq.status;
}
