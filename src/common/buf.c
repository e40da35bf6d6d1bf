/* buf.c - growable, NUL-terminated byte buffers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringkv/common.h"

rk_err rk_buf_reserve(rk_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1; /* +1 keeps room for the NUL */
    if (need < b->len)
        return RK_ENOMEM;
    return rk_array_grow((void **)&b->data, &b->cap, need, 1);
}

rk_err rk_buf_append(rk_buf *b, const void *data, size_t len)
{
    rk_err err = rk_buf_reserve(b, len);
    if (err != RK_OK)
        return err;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return RK_OK;
}

rk_err rk_buf_appends(rk_buf *b, const char *s)
{
    return rk_buf_append(b, s, strlen(s));
}

rk_err rk_buf_appendf(rk_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return RK_EINVAL;
    if ((size_t)n < sizeof small)
        return rk_buf_append(b, small, (size_t)n);
    rk_err err = rk_buf_reserve(b, (size_t)n);
    if (err != RK_OK)
        return err;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return RK_OK;
}

rk_err rk_buf_append_json_string(rk_buf *b, const char *s, size_t len)
{
    /* Worst case every byte becomes \u00XX: reserve once. */
    rk_err err = rk_buf_reserve(b, len * 6 + 2);
    if (err != RK_OK)
        return err;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            *o++ = '\\';
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            *o++ = '\\';
            break;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            break;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            break;
        default:
            if (c < 0x20) {
                memcpy(o, "\\u00", 4);
                o += 4;
                rk_hex_encode(&c, 1, false, o);
                o += 2;
            } else {
                *o++ = (char)c;
            }
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return RK_OK;
}

void rk_buf_reset(rk_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void rk_buf_free(rk_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
