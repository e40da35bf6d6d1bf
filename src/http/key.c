/* key.c - GET, PUT (and POST) and DELETE of /{table}/key/{key}. */
#include <stdio.h>
#include <string.h>

#include "http_internal.h"

/* Room a write body may take beyond its value: the context and the JSON
 * around them. */
#define BODY_OVERHEAD (64 * 1024)

/* A context names at most a few actors per replica that ever wrote the key;
 * 4 KiB of base64 is ~200 entries. A larger one can only be forged, and
 * would grow the key's clock for good. */
#define CONTEXT_MAX_TEXT 4096

static kv_key request_key(const request *rq)
{
    kv_key k = {rq->m.table, rq->m.table_len, rq->m.key, rq->m.key_len};
    return k;
}

/* ETag: "<context>" so that HTTP clients can use If-Match as usual. */
static rk_err etag_header(const rk_object *obj, rk_buf *headers)
{
    rk_err err = rk_buf_appends(headers, "ETag: \"");
    if (err == RK_OK)
        err = context_encode(&obj->clock, headers);
    if (err == RK_OK)
        err = rk_buf_appends(headers, "\"\r\n");
    return err;
}

/* Appends node id's name in view (its id in hex when unknown, or when the
 * node is not in a cluster), after sep. */
static rk_err append_node_name(rk_buf *b, const cluster_view *view, uint64_t id, const char *sep)
{
    const cluster_view_member *m = view != NULL ? cluster_view_find(view, id) : NULL;
    if (m != NULL)
        return rk_buf_appendf(b, "%s%s", sep, m->name);
    return rk_buf_appendf(b, "%s%016llx", sep, (unsigned long long)id);
}

/* X-Ringkv-Replicas (the nodes that answered or acked, by name) and, when
 * fallbacks stood in, X-Ringkv-Fallbacks (fallback=replica pairs). One view
 * serves every name. */
static rk_err quorum_headers(const request *rq, const kv_result *res, rk_buf *headers)
{
    if (res == NULL || res->answered_count == 0)
        return RK_OK;
    cluster_view *view = rq->srv->cluster ? cluster_node_view(rq->srv->cluster) : NULL;
    rk_err err = rk_buf_appends(headers, "X-Ringkv-Replicas: ");
    for (size_t i = 0; i < res->answered_count && err == RK_OK; i++)
        err = append_node_name(headers, view, res->answered[i], i ? "," : "");
    if (err == RK_OK)
        err = rk_buf_appends(headers, "\r\n");
    if (err == RK_OK && res->fallback_count > 0) {
        err = rk_buf_appends(headers, "X-Ringkv-Fallbacks: ");
        for (size_t i = 0; i < res->fallback_count && err == RK_OK; i++) {
            err = append_node_name(headers, view, res->fallback[i], i ? "," : "");
            if (err == RK_OK)
                err = append_node_name(headers, view, res->fallback_for[i], "=");
        }
        if (err == RK_OK)
            err = rk_buf_appends(headers, "\r\n");
    }
    cluster_view_unref(view);
    /* fewer ring members than N: the answer was acknowledged by all the
     * replicas the key has, which are fewer than N (DESIGN.md) */
    if (err == RK_OK && res->under_replicated > 0)
        err = rk_buf_appendf(headers, "X-Ringkv-Under-Replicated: replicas=%u; n=%u\r\n",
                             res->under_replicated, kv_get_config(rq->srv->k)->n);
    return err;
}

static int reply_object(request *rq, int status, const rk_object *obj, const sibling *s,
                        const kv_result *res)
{
    rk_buf body = {0}, headers = {0};
    rk_err err = append_record(&body, obj, s, NULL, 0);
    if (err == RK_OK)
        err = etag_header(obj, &headers);
    if (err == RK_OK)
        err = quorum_headers(rq, res, &headers);
    int rc = err == RK_OK ? reply_json(rq->conn, status, headers.data, &body)
                          : reply_error(rq->conn, 500, rk_errcode(err), rk_strerror(err));
    rk_buf_free(&body);
    rk_buf_free(&headers);
    return rc;
}

/* 300 Multiple Choices: every live sibling and the one context that
 * resolves them all. */
static int reply_siblings(request *rq, const rk_object *obj, const kv_result *res)
{
    rk_buf body = {0}, headers = {0};
    rk_err err = rk_buf_appends(&body, "{\"siblings\":[");
    bool first = true;
    for (size_t i = 0; i < obj->len && err == RK_OK; i++) {
        const sibling *s = &obj->siblings[i];
        if (s->tombstone)
            continue;
        err = rk_buf_appends(&body, first ? "{\"value\":" : ",{\"value\":");
        first = false;
        if (err == RK_OK)
            err = rk_buf_append(&body, s->value, s->value_len);
        if (err == RK_OK)
            err = rk_buf_appendf(&body, ",\"timestamp\":%llu,\"owner\":",
                                 (unsigned long long)s->timestamp_ms);
        if (err == RK_OK)
            err = rk_buf_append_json_string(&body, s->owner, strlen(s->owner));
        if (err == RK_OK)
            err = rk_buf_appends(&body, "}");
    }
    if (err == RK_OK)
        err = rk_buf_appends(&body, "],\"context\":\"");
    if (err == RK_OK)
        err = context_encode(&obj->clock, &body);
    if (err == RK_OK)
        err = rk_buf_appends(&body, "\"}");
    if (err == RK_OK)
        err = etag_header(obj, &headers);
    if (err == RK_OK)
        err = quorum_headers(rq, res, &headers);
    int rc = err == RK_OK ? reply_json(rq->conn, 300, headers.data, &body)
                          : reply_error(rq->conn, 500, rk_errcode(err), rk_strerror(err));
    rk_buf_free(&body);
    rk_buf_free(&headers);
    return rc;
}

/* 404 that still carries the tombstone's context, so a client can write
 * over a delete without resurrecting anything it has not seen. */
static int reply_not_found(request *rq, const rk_object *obj, const kv_result *res)
{
    rk_buf body = {0}, headers = {0};
    rk_err err = quorum_headers(rq, res, &headers);
    if (obj == NULL || obj->clock.len == 0) {
        err = err == RK_OK ? rk_buf_appends(&body, "{\"error\":\"not found\",\"code\":\"not_found\"}")
                           : err;
        int rc = err == RK_OK ? reply_json(rq->conn, 404, headers.data, &body)
                              : reply_error(rq->conn, 404, "not_found", "not found");
        rk_buf_free(&body);
        rk_buf_free(&headers);
        return rc;
    }
    if (err == RK_OK)
        err = rk_buf_appends(&body, "{\"error\":\"not found\",\"code\":\"not_found\",\"context\":\"");
    if (err == RK_OK)
        err = context_encode(&obj->clock, &body);
    if (err == RK_OK)
        err = rk_buf_appends(&body, "\"}");
    int rc = err == RK_OK ? reply_json(rq->conn, 404, headers.data, &body)
                          : reply_error(rq->conn, 404, "not_found", "not found");
    rk_buf_free(&body);
    rk_buf_free(&headers);
    return rc;
}

static int handle_get(request *rq)
{
    kv_read_opts opts = {.local = request_flag(rq, "local")};
    uint64_t r = 0, timeout = 0;
    bool sloppy = true;
    unsigned n = kv_get_config(rq->srv->k)->n;
    if (request_uint_param(rq, "r", 1, n, &r) != RK_OK ||
        request_uint_param(rq, "timeout_ms", 1, 3600000, &timeout) != RK_OK ||
        request_bool_param(rq, "sloppy", &sloppy) != RK_OK)
        return 400;
    opts.r = (unsigned)r;
    opts.strict = !sloppy;
    opts.timeout_ms = (uint32_t)timeout;
    char mode[8];
    bool all = request_param(rq, "siblings", mode, sizeof mode) > 0 && strcmp(mode, "all") == 0;

    kv_key key = request_key(rq);
    kv_result res;
    rk_err err = kv_get(rq->srv->k, &key, &opts, &res);
    int rc;
    if (err == RK_ENOTFOUND)
        rc = reply_not_found(rq, NULL, &res);
    else if (err != RK_OK)
        rc = reply_kv_error(rq, err, &res);
    else if (object_live_count(&res.obj) == 0)
        rc = reply_not_found(rq, &res.obj, &res);
    else if (all && object_live_count(&res.obj) > 1)
        rc = reply_siblings(rq, &res.obj, &res);
    else
        rc = reply_object(rq, 200, &res.obj, object_live_winner(&res.obj), &res);
    kv_result_free(&res);
    return rc;
}

/* An If-Match value: the context, possibly quoted and weak-prefixed. */
static rk_err if_match_context(const request *rq, vclock *out, bool *present)
{
    const char *h = mg_get_header(rq->conn, "If-Match");
    *present = h != NULL;
    if (h == NULL)
        return RK_OK;
    size_t len = strlen(h);
    if (len >= 2 && h[0] == 'W' && h[1] == '/')
        h += 2, len -= 2;
    if (len >= 2 && h[0] == '"' && h[len - 1] == '"')
        h++, len -= 2;
    if (len > CONTEXT_MAX_TEXT)
        return RK_EINVAL;
    return context_decode(h, len, out);
}

/* Everything a PUT or DELETE needs from the request besides the body. */
typedef struct write_params {
    vclock context;
    bool has_context;
    vclock if_match;
    bool has_if_match;
    bool if_none_match;
    uint64_t w;
    uint64_t timeout_ms;
    bool sloppy;
} write_params;

static void write_params_free(write_params *wp)
{
    vclock_free(&wp->context);
    vclock_free(&wp->if_match);
}

/* Fills wp; on failure the reply has been sent and its status returned. */
static int parse_write_params(request *rq, const write_body *wb, write_params *wp)
{
    unsigned n = kv_get_config(rq->srv->k)->n;
    wp->sloppy = true;
    if (request_uint_param(rq, "w", 1, n, &wp->w) != RK_OK ||
        request_uint_param(rq, "timeout_ms", 1, 3600000, &wp->timeout_ms) != RK_OK ||
        request_bool_param(rq, "sloppy", &wp->sloppy) != RK_OK)
        return 400;
    if (wb->context != NULL) {
        if (wb->context_len > CONTEXT_MAX_TEXT ||
            context_decode(wb->context, wb->context_len, &wp->context) != RK_OK)
            return reply_error(rq->conn, 400, "bad_context",
                               "context is not one this cluster handed out");
        wp->has_context = true;
    }
    if (if_match_context(rq, &wp->if_match, &wp->has_if_match) != RK_OK)
        return reply_error(rq->conn, 400, "bad_context", "If-Match is not a valid context");
    const char *inm = mg_get_header(rq->conn, "If-None-Match");
    if (inm != NULL) {
        if (strcmp(inm, "*") != 0)
            return reply_error(rq->conn, 400, "bad_param", "If-None-Match supports only *");
        wp->if_none_match = true;
    }
    if (replica_table_reserved(rq->m.table, rq->m.table_len))
        return reply_error(rq->conn, 403, "reserved_table",
                           "tables starting with _ are reserved for the system");
    return 0;
}

static int do_write(request *rq, const write_body *wb, bool tombstone)
{
    write_params wp = {0};
    int rc = parse_write_params(rq, wb, &wp);
    if (rc != 0) {
        write_params_free(&wp);
        return rc;
    }
    const char *owner;
    request_owner(rq, &owner);
    kv_write w = {
        .key = request_key(rq),
        .value = wb->value,
        .value_len = wb->value_len,
        .tombstone = tombstone,
        .context = wp.has_context ? &wp.context : NULL,
        .if_match = wp.has_if_match ? &wp.if_match : NULL,
        .if_none_match = wp.if_none_match,
        .owner = owner,
        .w = (unsigned)wp.w,
        .timeout_ms = (uint32_t)wp.timeout_ms,
        .strict = !wp.sloppy,
    };
    kv_result res;
    rk_err err = kv_put(rq->srv->k, &w, &res);
    if (err == RK_ENOTFOUND)
        rc = reply_not_found(rq, NULL, &res);
    else if (err == RK_EPRECOND)
        rc = reply_error(rq->conn, 412, "precondition_failed",
                         "the key changed since that context, or exists");
    else if (err != RK_OK)
        rc = reply_kv_error(rq, err, &res);
    else if (tombstone) {
        rk_buf body = {0}, headers = {0};
        rk_err e = rk_buf_appends(&body, "{\"deleted\":true,\"context\":\"");
        if (e == RK_OK)
            e = context_encode(&res.obj.clock, &body);
        if (e == RK_OK)
            e = rk_buf_appends(&body, "\"}");
        if (e == RK_OK)
            e = quorum_headers(rq, &res, &headers);
        rc = e == RK_OK ? reply_json(rq->conn, 200, headers.data, &body)
                        : reply_error(rq->conn, 500, rk_errcode(e), rk_strerror(e));
        rk_buf_free(&body);
        rk_buf_free(&headers);
    } else {
        const sibling *mine = NULL;
        for (size_t i = 0; i < res.obj.len; i++)
            if (res.obj.siblings[i].dot.actor == res.dot.actor &&
                res.obj.siblings[i].dot.counter == res.dot.counter)
                mine = &res.obj.siblings[i];
        rc = mine ? reply_object(rq, res.existed ? 200 : 201, &res.obj, mine, &res)
                  : reply_error(rq->conn, 500, "internal", "written version not found");
    }
    kv_result_free(&res);
    write_params_free(&wp);
    return rc;
}

static int handle_put(request *rq)
{
    size_t max_value = rq->srv->opts.max_value_bytes;
    rk_buf body = {0};
    rk_err err = request_body(rq, max_value + BODY_OVERHEAD, &body);
    if (err != RK_OK) {
        rk_buf_free(&body);
        return err == RK_ETOOBIG ? 413 : 400;
    }
    write_body wb;
    const char *code;
    int rc;
    if (json_scan_write_body(body.data ? body.data : "", body.len, &wb, &code) != RK_OK)
        rc = reply_error(rq->conn, 400, code,
                         strcmp(code, "bad_context") == 0 ? "context must be a string"
                                                          : "body must be a JSON object");
    else if (wb.value_len == 0)
        rc = reply_error(rq->conn, 400, "missing_value", "body needs a \"value\" member");
    else if (wb.value_len > max_value)
        rc = reply_error(rq->conn, 413, "too_large", "value is over the size limit");
    else
        rc = do_write(rq, &wb, false);
    rk_buf_free(&body);
    return rc;
}

static int handle_delete(request *rq)
{
    rk_buf body = {0};
    rk_err err = request_body(rq, BODY_OVERHEAD, &body);
    if (err != RK_OK) {
        rk_buf_free(&body);
        return err == RK_ETOOBIG ? 413 : 400;
    }
    write_body wb = {0};
    const char *code;
    int rc;
    if (body.len > 0 && json_scan_write_body(body.data, body.len, &wb, &code) != RK_OK)
        rc = reply_error(rq->conn, 400, code, "body must be a JSON object");
    else
        rc = do_write(rq, &wb, true);
    rk_buf_free(&body);
    return rc;
}

int handle_key(request *rq)
{
    const char *m = rq->method;
    if (strcmp(m, "GET") == 0)
        return handle_get(rq);
    if (strcmp(m, "PUT") == 0 || strcmp(m, "POST") == 0)
        return handle_put(rq);
    if (strcmp(m, "DELETE") == 0)
        return handle_delete(rq);
    return reply_method_not_allowed(rq, "GET, PUT, POST, DELETE");
}
