/* request.c - what the handlers read from a request: query parameters and
 * the body. A function here that refuses its input has replied (400, 413)
 * before it returns the error. */
#include <stdio.h>
#include <string.h>

#include "http_internal.h"

int http_request_param(const request *rq, const char *name, char *dst, size_t cap)
{
    const char *qs = rq->ri->query_string;
    if (qs == NULL)
        return -1;
    int n = mg_get_var(qs, strlen(qs), name, dst, cap);
    return n;
}

rk_err http_request_uint_param(request *rq, const char *name, uint64_t lo, uint64_t hi,
                               uint64_t *out)
{
    char text[32];
    int n = http_request_param(rq, name, text, sizeof text);
    if (n == -1)
        return RK_OK;
    uint64_t v;
    if (n < 0 || rk_parse_u64(text, (size_t)n, &v) != RK_OK || v < lo || v > hi) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s must be a whole number from %llu to %llu", name,
                 (unsigned long long)lo, (unsigned long long)hi);
        http_reply_error(rq, 400, "bad_param", msg);
        return RK_EINVAL;
    }
    *out = v;
    return RK_OK;
}

bool http_request_flag(const request *rq, const char *name)
{
    char text[8];
    int n = http_request_param(rq, name, text, sizeof text);
    return n > 0 && (strcmp(text, "1") == 0 || strcmp(text, "true") == 0);
}

rk_err http_request_bool_param(request *rq, const char *name, bool *out)
{
    char text[8];
    int n = http_request_param(rq, name, text, sizeof text);
    if (n == -1)
        return RK_OK;
    if (n >= 0 && (strcmp(text, "1") == 0 || strcmp(text, "true") == 0))
        *out = true;
    else if (n >= 0 && (strcmp(text, "0") == 0 || strcmp(text, "false") == 0))
        *out = false;
    else {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be true or false", name);
        http_reply_error(rq, 400, "bad_param", msg);
        return RK_EINVAL;
    }
    return RK_OK;
}

rk_err http_request_body(request *rq, size_t max, rk_buf *out)
{
    long long declared = rq->ri->content_length;
    if (declared > 0 && (unsigned long long)declared > max) {
        http_reply_error(rq, 413, "too_large", "request body is over the size limit");
        return RK_ETOOBIG;
    }
    if (declared > 0 && rk_buf_reserve(out, (size_t)declared) != RK_OK) {
        http_reply_error(rq, 500, "no_memory", "out of memory");
        return RK_ENOMEM;
    }
    char chunk[16384];
    for (;;) {
        int n = mg_read(rq->conn, chunk, sizeof chunk);
        if (n == 0)
            return RK_OK;
        if (n < 0) {
            http_reply_gone(rq);
            return RK_EIO;
        }
        if (out->len + (size_t)n > max) {
            http_reply_error(rq, 413, "too_large", "request body is over the size limit");
            return RK_ETOOBIG;
        }
        if (rk_buf_append(out, chunk, (size_t)n) != RK_OK) {
            http_reply_error(rq, 500, "no_memory", "out of memory");
            return RK_ENOMEM;
        }
    }
}

rk_err http_request_owner(const request *rq, const char **owner)
{
    (void)rq;
    /* Token auth arrives with its own issue; until then every write is
     * anonymous and the owner stays empty. */
    *owner = "";
    return RK_OK;
}
