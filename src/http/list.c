/* list.c - GET /{table}/keys, POST /{table}/keys (batch get) and
 * GET /{table}/store: paginated walks of a table in ring order. */
#include <cJSON.h>
#include <string.h>

#include "http_internal.h"

#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT 10000
#define BATCH_MAX_KEYS 1000

/* One page of a walk: up to limit records, then one more to learn whether
 * there is a next page. */
typedef struct page {
    rk_buf *body;
    bool with_values;
    uint64_t limit;
    uint64_t count;
    bool more;
    rk_buf last_key;
    rk_err err;
} page;

static bool page_visit_cb(void *arg, const char *key, size_t key_len, const rk_object *obj)
{
    page *p = arg;
    if (p->count == p->limit) {
        p->more = true;
        return false;
    }
    if (p->count > 0)
        p->err = rk_buf_appends(p->body, ",");
    if (p->err == RK_OK)
        p->err = p->with_values
                     ? append_record(p->body, obj, object_live_winner(obj), key, key_len)
                     : rk_buf_append_json_string(p->body, key, key_len);
    if (p->err == RK_OK) {
        rk_buf_reset(&p->last_key);
        p->err = rk_buf_append(&p->last_key, key, key_len);
    }
    p->count++;
    return p->err == RK_OK;
}

/* Shared by /keys and /store: ?limit=&after= and the "next" cursor. */
static int walk_table(request *rq, const char *array_name, bool with_values)
{
    if (strcmp(rq->method, "GET") != 0)
        return reply_method_not_allowed(rq, with_values ? "GET" : "GET, POST");
    uint64_t limit = LIST_DEFAULT_LIMIT;
    if (request_uint_param(rq, "limit", 1, LIST_MAX_LIMIT, &limit) != RK_OK)
        return 400;
    char after[KV_KEY_MAX * 3 + 1];
    int after_len = request_param(rq, "after", after, sizeof after);
    if (after_len == -2 || (after_len >= 0 && !replica_key_valid(after, (size_t)after_len)))
        return reply_error(rq->conn, 400, "invalid_key", "after must be a valid key");

    rk_buf body = {0};
    page p = {.body = &body, .with_values = with_values, .limit = limit};
    rk_err err = rk_buf_appendf(&body, "{\"%s\":[", array_name);
    if (err == RK_OK)
        err = kv_scan(rq->srv->k, rq->m.table, rq->m.table_len, after_len >= 0 ? after : NULL,
                      after_len >= 0 ? (size_t)after_len : 0, page_visit_cb, &p);
    if (err == RK_OK)
        err = p.err;
    if (err == RK_OK)
        err = rk_buf_appends(&body, "],\"next\":");
    if (err == RK_OK)
        err = p.more ? rk_buf_append_json_string(&body, p.last_key.data, p.last_key.len)
                     : rk_buf_appends(&body, "null");
    if (err == RK_OK)
        err = rk_buf_appends(&body, "}");
    kv_result none = {0};
    int rc = err == RK_OK ? reply_json(rq->conn, 200, NULL, &body) : reply_kv_error(rq, err, &none);
    rk_buf_free(&body);
    rk_buf_free(&p.last_key);
    return rc;
}

static rk_err append_batch_item(request *rq, rk_buf *out, const char *key, size_t key_len)
{
    if (!replica_key_valid(key, key_len)) {
        rk_err err = rk_buf_appends(out, "{\"key\":");
        if (err == RK_OK)
            err = rk_buf_append_json_string(out, key, key_len);
        if (err == RK_OK)
            err = rk_buf_appends(out, ",\"error\":\"invalid key\",\"code\":\"invalid_key\"}");
        return err;
    }
    kv_key k = {rq->m.table, rq->m.table_len, key, key_len};
    kv_read_opts opts = {0};
    kv_result res;
    rk_err err = kv_get(rq->srv->k, &k, &opts, &res);
    if (err == RK_OK && object_live_count(&res.obj) > 0) {
        err = append_record(out, &res.obj, object_live_winner(&res.obj), key, key_len);
    } else if (err == RK_OK || err == RK_ENOTFOUND) {
        err = rk_buf_appends(out, "{\"key\":");
        if (err == RK_OK)
            err = rk_buf_append_json_string(out, key, key_len);
        if (err == RK_OK)
            err = rk_buf_appends(out, ",\"error\":\"not found\",\"code\":\"not_found\"}");
    } else {
        rk_err failed = err; /* report this one, not the appends' result */
        err = rk_buf_appends(out, "{\"key\":");
        if (err == RK_OK)
            err = rk_buf_append_json_string(out, key, key_len);
        if (err == RK_OK)
            err = rk_buf_appendf(out, ",\"error\":\"%s\",\"code\":\"%s\"}",
                                 rk_strerror(failed), rk_errcode(failed));
    }
    kv_result_free(&res);
    return err;
}

static int batch_get(request *rq)
{
    rk_buf body = {0};
    rk_err err = request_body(rq, (size_t)BATCH_MAX_KEYS * (KV_KEY_MAX * 6 + 8), &body);
    if (err != RK_OK) {
        rk_buf_free(&body);
        return err == RK_ETOOBIG ? 413 : 400;
    }
    /* Our scanner first: it bounds nesting at 128, while cJSON recurses
     * up to 1000 levels and overflows civetweb's 100 KiB worker stacks on
     * a body like "[[[[...". */
    size_t vb, ve;
    cJSON *keys = NULL;
    if (rk_json_valid(body.data ? body.data : "", body.len, &vb, &ve))
        keys = cJSON_ParseWithLength(body.data, body.len);
    rk_buf_free(&body);
    if (!cJSON_IsArray(keys)) {
        cJSON_Delete(keys);
        return reply_error(rq->conn, 400, "bad_json", "body must be a JSON array of keys");
    }
    if (cJSON_GetArraySize(keys) > BATCH_MAX_KEYS) {
        cJSON_Delete(keys);
        return reply_error(rq->conn, 413, "too_large", "at most 1000 keys per batch");
    }
    rk_buf out = {0};
    err = rk_buf_appends(&out, "{\"results\":[");
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, keys)
    {
        if (err != RK_OK)
            break;
        if (!cJSON_IsString(item)) {
            cJSON_Delete(keys);
            rk_buf_free(&out);
            return reply_error(rq->conn, 400, "bad_json", "every key must be a string");
        }
        if (i++ > 0)
            err = rk_buf_appends(&out, ",");
        if (err == RK_OK)
            err = append_batch_item(rq, &out, item->valuestring, strlen(item->valuestring));
    }
    cJSON_Delete(keys);
    if (err == RK_OK)
        err = rk_buf_appends(&out, "]}");
    kv_result none = {0};
    int rc = err == RK_OK ? reply_json(rq->conn, 200, NULL, &out) : reply_kv_error(rq, err, &none);
    rk_buf_free(&out);
    return rc;
}

int handle_keys(request *rq)
{
    if (strcmp(rq->method, "POST") == 0)
        return batch_get(rq);
    return walk_table(rq, "keys", false);
}

int handle_store(request *rq)
{
    return walk_table(rq, "items", true);
}
