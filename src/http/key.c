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
static void add_etag(reply_buf *headers, const rk_object *obj)
{
    http_reply_add_str(headers, "ETag: \"");
    http_reply_add_context(headers, &obj->clock);
    http_reply_add_str(headers, "\"\r\n");
}

/* Appends node id's name in view (its id in hex when unknown), after sep. */
static void add_node_name(reply_buf *b, const cluster_view *view, uint64_t id, const char *sep)
{
    const cluster_view_member *m = cluster_view_find(view, id);
    if (m != NULL)
        http_reply_addf(b, "%s%s", sep, m->name);
    else
        http_reply_addf(b, "%s%016llx", sep, (unsigned long long)id);
}

/* X-Ringkv-Replicas (the nodes that answered or acked, by name) and, when
 * fallbacks stood in, X-Ringkv-Fallbacks (fallback=replica pairs). One view
 * serves every name. */
static void add_quorum_headers(reply_buf *headers, const request *rq, const kv_result *res)
{
    if (res == NULL || res->answered_count == 0)
        return;
    cluster_view *view = cluster_node_view(rq->srv->cluster);
    http_reply_add_str(headers, "X-Ringkv-Replicas: ");
    for (size_t i = 0; i < res->answered_count; i++)
        add_node_name(headers, view, res->answered[i], i ? "," : "");
    http_reply_add_str(headers, "\r\n");
    if (res->fallback_count > 0) {
        http_reply_add_str(headers, "X-Ringkv-Fallbacks: ");
        for (size_t i = 0; i < res->fallback_count; i++) {
            add_node_name(headers, view, res->fallback[i], i ? "," : "");
            add_node_name(headers, view, res->fallback_for[i], "=");
        }
        http_reply_add_str(headers, "\r\n");
    }
    cluster_view_unref(view);
    /* fewer ring members than N: the answer was acknowledged by all the
     * replicas the key has, which are fewer than N (DESIGN.md) */
    if (res->under_replicated > 0)
        http_reply_addf(headers, "X-Ringkv-Under-Replicated: replicas=%u; n=%u\r\n",
                        res->under_replicated, kv_get_config(rq->srv->k)->n);
}

/* Sends body with the ETag of obj (when given) and the quorum headers. */
static void reply_with_headers(request *rq, int status, const rk_object *obj, const kv_result *res,
                               reply_buf *body)
{
    reply_buf headers = {0};
    if (obj != NULL)
        add_etag(&headers, obj);
    add_quorum_headers(&headers, rq, res);
    http_reply_json(rq, status, &headers, body);
    http_reply_buf_free(&headers);
    http_reply_buf_free(body);
}

static void reply_object(request *rq, int status, const rk_object *obj, const sibling *s,
                         const kv_result *res)
{
    reply_buf body = {0};
    http_reply_add_record(&body, obj, s, NULL, 0);
    reply_with_headers(rq, status, obj, res, &body);
}

/* 300 Multiple Choices: every live sibling and the one context that
 * resolves them all. */
static void reply_siblings(request *rq, const rk_object *obj, const kv_result *res)
{
    reply_buf body = {0};
    http_reply_add_str(&body, "{\"siblings\":[");
    bool first = true;
    for (size_t i = 0; i < obj->len; i++) {
        const sibling *s = &obj->siblings[i];
        if (s->tombstone)
            continue;
        http_reply_add_str(&body, first ? "{\"value\":" : ",{\"value\":");
        first = false;
        http_reply_add(&body, s->value, s->value_len);
        http_reply_addf(&body,
                        ",\"timestamp\":%llu,\"owner\":", (unsigned long long)s->timestamp_ms);
        http_reply_add_json_cstr(&body, s->owner);
        http_reply_add_str(&body, "}");
    }
    http_reply_add_str(&body, "],\"context\":\"");
    http_reply_add_context(&body, &obj->clock);
    http_reply_add_str(&body, "\"}");
    reply_with_headers(rq, 300, obj, res, &body);
}

/* 404 that still carries the tombstone's context, so a client can write
 * over a delete without resurrecting anything it has not seen. */
static void reply_not_found(request *rq, const rk_object *obj, const kv_result *res)
{
    reply_buf body = {0};
    http_reply_add_str(&body, "{\"error\":\"not found\",\"code\":\"not_found\"");
    if (obj != NULL && obj->clock.len > 0) {
        http_reply_add_str(&body, ",\"context\":\"");
        http_reply_add_context(&body, &obj->clock);
        http_reply_add_str(&body, "\"");
    }
    http_reply_add_str(&body, "}");
    reply_with_headers(rq, 404, NULL, res, &body);
}

void http_handle_key_get(request *rq)
{
    kv_read_opts opts = {.local = http_request_flag(rq, "local")};
    uint64_t r = 0, timeout = 0;
    bool sloppy = true;
    unsigned n = kv_get_config(rq->srv->k)->n;
    if (http_request_uint_param(rq, "r", 1, n, &r) != RK_OK ||
        http_request_uint_param(rq, "timeout_ms", 1, 3600000, &timeout) != RK_OK ||
        http_request_bool_param(rq, "sloppy", &sloppy) != RK_OK)
        return;
    opts.r = (unsigned)r;
    opts.strict = !sloppy;
    opts.timeout_ms = (uint32_t)timeout;
    char mode[8];
    bool all =
        http_request_param(rq, "siblings", mode, sizeof mode) > 0 && strcmp(mode, "all") == 0;

    kv_key key = request_key(rq);
    kv_result res;
    rk_err err = kv_get(rq->srv->k, &key, &opts, &res);
    if (err == RK_ENOTFOUND)
        reply_not_found(rq, NULL, &res);
    else if (err != RK_OK)
        http_reply_kv_error(rq, err, &res);
    else if (object_live_count(&res.obj) == 0)
        reply_not_found(rq, &res.obj, &res);
    else if (all && object_live_count(&res.obj) > 1)
        reply_siblings(rq, &res.obj, &res);
    else
        reply_object(rq, 200, &res.obj, object_live_winner(&res.obj), &res);
    kv_result_free(&res);
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

/* Fills wp; RK_EINVAL (or RK_EPERM for a reserved table) after replying
 * when the request asks for something it cannot have. */
static rk_err parse_write_params(request *rq, const write_body *wb, write_params *wp)
{
    unsigned n = kv_get_config(rq->srv->k)->n;
    wp->sloppy = true;
    if (http_request_uint_param(rq, "w", 1, n, &wp->w) != RK_OK ||
        http_request_uint_param(rq, "timeout_ms", 1, 3600000, &wp->timeout_ms) != RK_OK ||
        http_request_bool_param(rq, "sloppy", &wp->sloppy) != RK_OK)
        return RK_EINVAL;
    if (wb->context != NULL) {
        if (wb->context_len > CONTEXT_MAX_TEXT ||
            context_decode(wb->context, wb->context_len, &wp->context) != RK_OK) {
            http_reply_error(rq, 400, "bad_context", "context is not one this cluster handed out");
            return RK_EINVAL;
        }
        wp->has_context = true;
    }
    if (if_match_context(rq, &wp->if_match, &wp->has_if_match) != RK_OK) {
        http_reply_error(rq, 400, "bad_context", "If-Match is not a valid context");
        return RK_EINVAL;
    }
    const char *inm = mg_get_header(rq->conn, "If-None-Match");
    if (inm != NULL && strcmp(inm, "*") != 0) {
        http_reply_error(rq, 400, "bad_param", "If-None-Match supports only *");
        return RK_EINVAL;
    }
    wp->if_none_match = inm != NULL;
    if (replica_table_reserved(rq->m.table, rq->m.table_len)) {
        http_reply_error(rq, 403, "reserved_table",
                         "tables starting with _ are reserved for the system");
        return RK_EPERM;
    }
    return RK_OK;
}

/* {"deleted": true, "context": ...}: the tombstone's context, to write
 * over the delete later. */
static void reply_deleted(request *rq, const kv_result *res)
{
    reply_buf body = {0};
    http_reply_add_str(&body, "{\"deleted\":true,\"context\":\"");
    http_reply_add_context(&body, &res->obj.clock);
    http_reply_add_str(&body, "\"}");
    reply_with_headers(rq, 200, NULL, res, &body);
}

/* The version this write made, among the object's siblings. */
static const sibling *written_sibling(const kv_result *res)
{
    const sibling *mine = NULL;
    for (size_t i = 0; i < res->obj.len; i++)
        if (res->obj.siblings[i].dot.actor == res->dot.actor &&
            res->obj.siblings[i].dot.counter == res->dot.counter)
            mine = &res->obj.siblings[i];
    return mine;
}

static void do_write(request *rq, const write_body *wb, bool tombstone)
{
    write_params wp = {0};
    if (parse_write_params(rq, wb, &wp) != RK_OK) {
        write_params_free(&wp);
        return;
    }
    const char *owner;
    http_request_owner(rq, &owner);
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
    const sibling *mine = err == RK_OK && !tombstone ? written_sibling(&res) : NULL;
    if (err == RK_ENOTFOUND)
        reply_not_found(rq, NULL, &res);
    else if (err == RK_EPRECOND)
        http_reply_error(rq, 412, "precondition_failed",
                         "the key changed since that context, or exists");
    else if (err != RK_OK)
        http_reply_kv_error(rq, err, &res);
    else if (tombstone)
        reply_deleted(rq, &res);
    else if (mine != NULL)
        reply_object(rq, res.existed ? 200 : 201, &res.obj, mine, &res);
    else
        http_reply_error(rq, 500, "internal", "written version not found");
    kv_result_free(&res);
    write_params_free(&wp);
}

void http_handle_key_put(request *rq)
{
    size_t max_value = rq->srv->opts.max_value_bytes;
    rk_buf body = {0};
    if (http_request_body(rq, max_value + BODY_OVERHEAD, &body) != RK_OK) {
        rk_buf_free(&body);
        return;
    }
    write_body wb;
    const char *code;
    if (http_json_scan_write_body(body.data ? body.data : "", body.len, &wb, &code) != RK_OK)
        http_reply_error(rq, 400, code,
                         strcmp(code, "bad_context") == 0 ? "context must be a string"
                                                          : "body must be a JSON object");
    else if (wb.value_len == 0)
        http_reply_error(rq, 400, "missing_value", "body needs a \"value\" member");
    else if (wb.value_len > max_value)
        http_reply_error(rq, 413, "too_large", "value is over the size limit");
    else
        do_write(rq, &wb, false);
    rk_buf_free(&body);
}

void http_handle_key_delete(request *rq)
{
    rk_buf body = {0};
    if (http_request_body(rq, BODY_OVERHEAD, &body) != RK_OK) {
        rk_buf_free(&body);
        return;
    }
    write_body wb = {0};
    const char *code;
    if (body.len > 0 && http_json_scan_write_body(body.data, body.len, &wb, &code) != RK_OK)
        http_reply_error(rq, 400, code, "body must be a JSON object");
    else
        do_write(rq, &wb, true);
    rk_buf_free(&body);
}
