/* reply_buf.c - the buffer replies are built in: its first error sticks,
 * so a handler appends with plain calls and checks once before sending.
 * Also the JSON pieces several routes write: a context, a record. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "http_internal.h"

void http_reply_add(reply_buf *r, const void *data, size_t len)
{
    if (r->err == RK_OK)
        r->err = rk_buf_append(&r->buf, data, len);
}

void http_reply_add_str(reply_buf *r, const char *s)
{
    http_reply_add(r, s, strlen(s));
}

void http_reply_addf(reply_buf *r, const char *fmt, ...)
{
    if (r->err != RK_OK)
        return;
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        r->err = RK_EINVAL;
        return;
    }
    if ((size_t)n < sizeof small) {
        http_reply_add(r, small, (size_t)n);
        return;
    }
    /* Longer than the stack buffer: print again straight into the buffer. */
    r->err = rk_buf_reserve(&r->buf, (size_t)n);
    if (r->err != RK_OK)
        return;
    va_start(ap, fmt);
    vsnprintf(r->buf.data + r->buf.len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    r->buf.len += (size_t)n;
}

void http_reply_add_u64(reply_buf *r, uint64_t v)
{
    http_reply_addf(r, "%llu", (unsigned long long)v);
}

void http_reply_add_json_string(reply_buf *r, const char *s, size_t len)
{
    if (r->err == RK_OK)
        r->err = rk_buf_append_json_string(&r->buf, s ? s : "", s ? len : 0);
}

void http_reply_add_json_cstr(reply_buf *r, const char *s)
{
    http_reply_add_json_string(r, s, s ? strlen(s) : 0);
}

void http_reply_add_context(reply_buf *r, const vclock *clock)
{
    if (r->err == RK_OK)
        r->err = context_encode(clock, &r->buf);
}

void http_reply_add_record(reply_buf *r, const rk_object *obj, const sibling *s, const char *key,
                           size_t key_len)
{
    http_reply_add_str(r, "{");
    if (key != NULL) {
        http_reply_add_str(r, "\"key\":");
        http_reply_add_json_string(r, key, key_len);
        http_reply_add_str(r, ",");
    }
    http_reply_add_str(r, "\"value\":");
    if (s->tombstone)
        http_reply_add_str(r, "null");
    else
        http_reply_add(r, s->value, s->value_len);
    http_reply_add_str(r, ",\"context\":\"");
    http_reply_add_context(r, &obj->clock);
    http_reply_addf(r, "\",\"timestamp\":%llu,\"owner\":", (unsigned long long)s->timestamp_ms);
    http_reply_add_json_cstr(r, s->owner);
    http_reply_addf(r, ",\"siblings\":%zu}", object_live_count(obj));
}

void http_reply_buf_free(reply_buf *r)
{
    rk_buf_free(&r->buf);
    r->err = RK_OK;
}
