/* handlers.c - dispatch of every request to its route, and the helpers the
 * route handlers share. */
#include <stdio.h>
#include <string.h>

#include "http_internal.h"

int request_param(const request *rq, const char *name, char *dst, size_t cap)
{
    const char *qs = rq->ri->query_string;
    if (qs == NULL)
        return -1;
    int n = mg_get_var(qs, strlen(qs), name, dst, cap);
    return n;
}

rk_err request_uint_param(const request *rq, const char *name, uint64_t lo, uint64_t hi,
                          uint64_t *out)
{
    char text[32];
    int n = request_param(rq, name, text, sizeof text);
    if (n == -1)
        return RK_OK;
    uint64_t v;
    if (n < 0 || rk_parse_u64(text, (size_t)n, &v) != RK_OK || v < lo || v > hi) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s must be a whole number from %llu to %llu", name,
                 (unsigned long long)lo, (unsigned long long)hi);
        reply_error(rq->conn, 400, "bad_param", msg);
        return RK_EINVAL;
    }
    *out = v;
    return RK_OK;
}

bool request_flag(const request *rq, const char *name)
{
    char text[8];
    int n = request_param(rq, name, text, sizeof text);
    return n > 0 && (strcmp(text, "1") == 0 || strcmp(text, "true") == 0);
}

rk_err request_bool_param(const request *rq, const char *name, bool *out)
{
    char text[8];
    int n = request_param(rq, name, text, sizeof text);
    if (n == -1)
        return RK_OK;
    if (n >= 0 && (strcmp(text, "1") == 0 || strcmp(text, "true") == 0))
        *out = true;
    else if (n >= 0 && (strcmp(text, "0") == 0 || strcmp(text, "false") == 0))
        *out = false;
    else {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be true or false", name);
        reply_error(rq->conn, 400, "bad_param", msg);
        return RK_EINVAL;
    }
    return RK_OK;
}

rk_err request_body(const request *rq, size_t max, rk_buf *out)
{
    long long declared = rq->ri->content_length;
    if (declared > 0 && (unsigned long long)declared > max) {
        reply_error(rq->conn, 413, "too_large", "request body is over the size limit");
        return RK_ETOOBIG;
    }
    if (declared > 0 && rk_buf_reserve(out, (size_t)declared) != RK_OK) {
        reply_error(rq->conn, 500, "no_memory", "out of memory");
        return RK_ENOMEM;
    }
    char chunk[16384];
    for (;;) {
        int n = mg_read(rq->conn, chunk, sizeof chunk);
        if (n == 0)
            return RK_OK;
        if (n < 0)
            return RK_EIO;
        if (out->len + (size_t)n > max) {
            reply_error(rq->conn, 413, "too_large", "request body is over the size limit");
            return RK_ETOOBIG;
        }
        if (rk_buf_append(out, chunk, (size_t)n) != RK_OK) {
            reply_error(rq->conn, 500, "no_memory", "out of memory");
            return RK_ENOMEM;
        }
    }
}

rk_err request_owner(const request *rq, const char **owner)
{
    (void)rq;
    /* Token auth arrives with its own issue; until then every write is
     * anonymous and the owner stays empty. */
    *owner = "";
    return RK_OK;
}

int reply_kv_error(const request *rq, rk_err err, const kv_result *res)
{
    if (err == RK_EQUORUM) {
        char body[192];
        int n = snprintf(body, sizeof body,
                         "{\"error\":\"quorum not reached: %u of %u replicas answered\","
                         "\"code\":\"quorum\",\"acks\":%u,\"needed\":%u}",
                         res->acks, res->needed, res->acks, res->needed);
        return reply_send(rq->conn, 503, "application/json", NULL, body, (size_t)n);
    }
    int status = http_status_of(err);
    if (status >= 500)
        RK_ERROR("http", "%s %s failed: %s", rq->method, rq->ri->local_uri, rk_strerror(err));
    return reply_error(rq->conn, status, rk_errcode(err), rk_strerror(err));
}

rk_err append_record(rk_buf *b, const rk_object *obj, const sibling *s, const char *key,
                     size_t key_len)
{
    rk_err err = rk_buf_appends(b, "{");
    if (err == RK_OK && key != NULL) {
        err = rk_buf_appends(b, "\"key\":");
        if (err == RK_OK)
            err = rk_buf_append_json_string(b, key, key_len);
        if (err == RK_OK)
            err = rk_buf_appends(b, ",");
    }
    if (err == RK_OK)
        err = rk_buf_appends(b, "\"value\":");
    if (err == RK_OK)
        err = s->tombstone ? rk_buf_appends(b, "null") : rk_buf_append(b, s->value, s->value_len);
    if (err == RK_OK)
        err = rk_buf_appends(b, ",\"context\":\"");
    if (err == RK_OK)
        err = context_encode(&obj->clock, b);
    if (err == RK_OK)
        err = rk_buf_appendf(b, "\",\"timestamp\":%llu,\"owner\":",
                             (unsigned long long)s->timestamp_ms);
    if (err == RK_OK)
        err = rk_buf_append_json_string(b, s->owner ? s->owner : "", s->owner ? strlen(s->owner) : 0);
    if (err == RK_OK)
        err = rk_buf_appendf(b, ",\"siblings\":%zu}", object_live_count(obj));
    return err;
}

int reply_method_not_allowed(request *rq, const char *allow)
{
    char headers[128];
    snprintf(headers, sizeof headers, "Allow: %s\r\n", allow);
    const char *body = "{\"error\":\"method not allowed on this route\",\"code\":\"method_not_allowed\"}";
    return reply_send(rq->conn, 405, "application/json", headers, body, strlen(body));
}

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

static metric_route key_metric(const char *method)
{
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        return MR_KEY_GET;
    if (strcmp(method, "DELETE") == 0)
        return MR_KEY_DELETE;
    return MR_KEY_PUT;
}

static int route_request(request *rq)
{
    size_t len;
    const char *path = raw_path(rq->ri, &len);
    const char *code = NULL;
    if (route_match_path(path, len, &rq->m, &code) != RK_OK) {
        rq->mr = MR_UNMATCHED;
        return reply_error(rq->conn, 400, code,
                           strcmp(code, "invalid_table") == 0
                               ? "table names are 1 to 64 of [A-Za-z0-9_.-]"
                               : "keys are 1 to 1024 bytes of UTF-8 without NUL");
    }
    switch (rq->m.route) {
    case ROUTE_KEY:
        rq->mr = key_metric(rq->method);
        return handle_key(rq);
    case ROUTE_KEYS:
        rq->mr = strcmp(rq->method, "POST") == 0 ? MR_KEYS_BATCH : MR_KEYS_LIST;
        return handle_keys(rq);
    case ROUTE_STORE: rq->mr = MR_STORE; return handle_store(rq);
    case ROUTE_SUBSCRIBE: rq->mr = MR_SUBSCRIBE; return handle_subscribe(rq);
    case ROUTE_HEALTH: rq->mr = MR_HEALTH; return handle_health(rq);
    case ROUTE_METRICS: rq->mr = MR_METRICS; return handle_metrics(rq);
    case ROUTE_MEMBERSHIP: rq->mr = MR_MEMBERSHIP; return handle_membership(rq);
    case ROUTE_CLUSTER: rq->mr = MR_CLUSTER; return handle_cluster(rq);
    case ROUTE_CLUSTER_LEAVE: rq->mr = MR_CLUSTER_LEAVE; return handle_cluster_leave(rq);
    case ROUTE_CLUSTER_REMOVE: rq->mr = MR_CLUSTER_REMOVE; return handle_cluster_remove(rq);
    case ROUTE_CLUSTER_REPAIR: rq->mr = MR_CLUSTER_REPAIR; return handle_cluster_repair(rq);
    case ROUTE_HINTS_DROP: rq->mr = MR_HINTS_DROP; return handle_hints_drop(rq);
    case ROUTE_AUTH: rq->mr = MR_AUTH; return handle_auth(rq);
    case ROUTE_UI: rq->mr = MR_UI; return handle_ui(rq);
    case ROUTE_NONE: break;
    }
    rq->mr = MR_UNMATCHED;
    return reply_error(rq->conn, 404, "no_route", "no such route; see docs/api.md");
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
    int status = route_request(&rq);
    http_metrics_record(rq.srv->metrics, rq.mr, status, rk_mono_ns() - t0);
    RK_DEBUG("http", "%s %s -> %d", rq.method, rq.ri->request_uri, status);
    return status;
}
