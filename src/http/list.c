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
    reply_buf *body;
    bool with_values;
    uint64_t limit;
    uint64_t count;
    bool more;
    rk_buf last_key;
    rk_err err; /* of last_key; body keeps its own */
} page;

static bool page_visit_cb(void *arg, const char *key, size_t key_len, const rk_object *obj)
{
    page *p = arg;
    if (p->count == p->limit) {
        p->more = true;
        return false;
    }
    if (p->count > 0)
        http_reply_add_str(p->body, ",");
    if (p->with_values)
        http_reply_add_record(p->body, obj, object_live_winner(obj), key, key_len);
    else
        http_reply_add_json_string(p->body, key, key_len);
    rk_buf_reset(&p->last_key);
    p->err = rk_buf_append(&p->last_key, key, key_len);
    p->count++;
    return p->err == RK_OK && p->body->err == RK_OK;
}

/* Shared by /keys and /store: ?limit=&after= and the "next" cursor. */
static void walk_table(request *rq, const char *array_name, bool with_values)
{
    uint64_t limit = LIST_DEFAULT_LIMIT;
    if (http_request_uint_param(rq, "limit", 1, LIST_MAX_LIMIT, &limit) != RK_OK)
        return;
    char after[KV_KEY_MAX * 3 + 1];
    int after_len = http_request_param(rq, "after", after, sizeof after);
    if (after_len == -2 || (after_len >= 0 && !replica_key_valid(after, (size_t)after_len))) {
        http_reply_error(rq, 400, "invalid_key", "after must be a valid key");
        return;
    }
    reply_buf body = {0};
    page p = {.body = &body, .with_values = with_values, .limit = limit};
    http_reply_addf(&body, "{\"%s\":[", array_name);
    rk_err err = kv_scan(rq->srv->k, rq->m.table, rq->m.table_len, after_len >= 0 ? after : NULL,
                         after_len >= 0 ? (size_t)after_len : 0, page_visit_cb, &p);
    if (err == RK_OK)
        err = p.err;
    http_reply_add_str(&body, "],\"next\":");
    if (p.more)
        http_reply_add_json_string(&body, p.last_key.data, p.last_key.len);
    else
        http_reply_add_str(&body, "null");
    http_reply_add_str(&body, "}");
    kv_result none = {0};
    if (err != RK_OK)
        http_reply_kv_error(rq, err, &none);
    else
        http_reply_json(rq, 200, NULL, &body);
    http_reply_buf_free(&body);
    rk_buf_free(&p.last_key);
}

void http_handle_keys_list(request *rq)
{
    walk_table(rq, "keys", false);
}

void http_handle_store(request *rq)
{
    walk_table(rq, "items", true);
}

/* {"key": key, "error": message, "code": code}: one key a batch could not
 * read. */
static void add_batch_error(reply_buf *out, const char *key, size_t key_len, const char *message,
                            const char *code)
{
    http_reply_add_str(out, "{\"key\":");
    http_reply_add_json_string(out, key, key_len);
    http_reply_addf(out, ",\"error\":\"%s\",\"code\":\"%s\"}", message, code);
}

static void add_batch_item(request *rq, reply_buf *out, const char *key, size_t key_len)
{
    if (!replica_key_valid(key, key_len)) {
        add_batch_error(out, key, key_len, "invalid key", "invalid_key");
        return;
    }
    kv_key k = {rq->m.table, rq->m.table_len, key, key_len};
    kv_read_opts opts = {0};
    kv_result res;
    rk_err err = kv_get(rq->srv->k, &k, &opts, &res);
    if (err == RK_OK && object_live_count(&res.obj) > 0)
        http_reply_add_record(out, &res.obj, object_live_winner(&res.obj), key, key_len);
    else if (err == RK_OK || err == RK_ENOTFOUND)
        add_batch_error(out, key, key_len, "not found", "not_found");
    else
        add_batch_error(out, key, key_len, rk_strerror(err), rk_errcode(err));
    kv_result_free(&res);
}

/* The body of a batch get as a cJSON array (the caller frees it), or NULL
 * after replying. */
static cJSON *batch_keys(request *rq)
{
    rk_buf body = {0};
    if (http_request_body(rq, (size_t)BATCH_MAX_KEYS * (KV_KEY_MAX * 6 + 8), &body) != RK_OK) {
        rk_buf_free(&body);
        return NULL;
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
        http_reply_error(rq, 400, "bad_json", "body must be a JSON array of keys");
        return NULL;
    }
    if (cJSON_GetArraySize(keys) > BATCH_MAX_KEYS) {
        cJSON_Delete(keys);
        http_reply_error(rq, 413, "too_large", "at most 1000 keys per batch");
        return NULL;
    }
    return keys;
}

void http_handle_keys_batch(request *rq)
{
    cJSON *keys = batch_keys(rq);
    if (keys == NULL)
        return;
    reply_buf out = {0};
    http_reply_add_str(&out, "{\"results\":[");
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, keys)
    {
        if (out.err != RK_OK)
            break;
        if (!cJSON_IsString(item)) {
            cJSON_Delete(keys);
            http_reply_buf_free(&out);
            http_reply_error(rq, 400, "bad_json", "every key must be a string");
            return;
        }
        if (i++ > 0)
            http_reply_add_str(&out, ",");
        add_batch_item(rq, &out, item->valuestring, strlen(item->valuestring));
    }
    cJSON_Delete(keys);
    http_reply_add_str(&out, "]}");
    if (out.err != RK_OK) {
        kv_result none = {0};
        http_reply_kv_error(rq, out.err, &none);
    } else {
        http_reply_json(rq, 200, NULL, &out);
    }
    http_reply_buf_free(&out);
}
