/* sse.c - an incremental Server-Sent Events parser (the HTML standard's
 * "event stream interpretation"), fed one network piece at a time. */
#include "sse.h"

#include <string.h>

void cli_sse_parser_init(cli_sse_parser *p, size_t max_len)
{
    memset(p, 0, sizeof *p);
    p->first_line = true;
    p->max_len = max_len ? max_len : CLI_SSE_DEFAULT_MAX;
}

void cli_sse_parser_fini(cli_sse_parser *p)
{
    rk_buf_free(&p->line);
    rk_buf_free(&p->data);
    rk_buf_free(&p->type);
    rk_buf_free(&p->id);
    rk_buf_free(&p->last_id);
    memset(p, 0, sizeof *p);
}

/* Copies src into dst, replacing it. */
static rk_err set_buf(rk_buf *dst, const char *src, size_t len)
{
    rk_buf_reset(dst);
    return rk_buf_append(dst, src, len);
}

void cli_sse_parser_restart(cli_sse_parser *p)
{
    rk_buf_reset(&p->line);
    rk_buf_reset(&p->data);
    rk_buf_reset(&p->type);
    /* An id read in an event that never ended was never the client's: the
     * buffer goes back to the last one that was. Shrinking or equal
     * copies cannot fail for want of memory once last_id fits in id's
     * room; if it does fail, the id is dropped, which only costs a reset. */
    if (set_buf(&p->id, p->last_id.data ? p->last_id.data : "", p->last_id.len) != RK_OK)
        rk_buf_reset(&p->id);
    p->skip_lf = false;
    p->first_line = true;
}

const char *cli_sse_parser_last_id(const cli_sse_parser *p)
{
    return p->last_id.data ? p->last_id.data : "";
}

/* A blank line: the event read so far, if it has data, goes to cb. */
static rk_err dispatch(cli_sse_parser *p, cli_sse_event_cb cb, void *arg)
{
    /* The standard sets the last event id at every blank line, event or not. */
    rk_err err = set_buf(&p->last_id, p->id.data ? p->id.data : "", p->id.len);
    if (err != RK_OK)
        return err;
    if (p->data.len == 0) {
        rk_buf_reset(&p->type);
        return RK_OK;
    }
    p->data.data[--p->data.len] = '\0'; /* the '\n' after the last data line */
    cli_sse_event ev = {
        .type = p->type.len ? p->type.data : "message",
        .data = p->data.data,
        .data_len = p->data.len,
        .id = cli_sse_parser_last_id(p),
    };
    err = cb(&ev, arg);
    rk_buf_reset(&p->data);
    rk_buf_reset(&p->type);
    return err;
}

static bool field_is(const char *field, size_t len, const char *name)
{
    return strlen(name) == len && memcmp(field, name, len) == 0;
}

/* One complete line, in p->line. */
static rk_err process_line(cli_sse_parser *p, cli_sse_event_cb cb, void *arg)
{
    const char *s = p->line.data ? p->line.data : "";
    size_t n = p->line.len;
    if (p->first_line && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
        s += 3; /* a UTF-8 byte-order mark before the first field */
        n -= 3;
    }
    p->first_line = false;
    if (p->line.len == 0)
        return dispatch(p, cb, arg);
    if (n == 0 || s[0] == ':')
        return RK_OK; /* a comment (": subscribed", ": ping"), or only a BOM */
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    size_t vlen = n - (size_t)(v - s);
    if (vlen > 0 && v[0] == ' ') {
        v++; /* one space after the colon is not part of the value */
        vlen--;
    }
    if (field_is(s, flen, "data")) {
        if (p->data.len + vlen + 1 > p->max_len)
            return RK_ETOOBIG;
        rk_err err = rk_buf_append(&p->data, v, vlen);
        return err != RK_OK ? err : rk_buf_append(&p->data, "\n", 1);
    }
    if (field_is(s, flen, "event"))
        return set_buf(&p->type, v, vlen);
    if (field_is(s, flen, "id") && memchr(v, '\0', vlen) == NULL)
        return set_buf(&p->id, v, vlen);
    return RK_OK; /* "retry" and fields this client does not know */
}

rk_err cli_sse_parser_feed(cli_sse_parser *p, const char *data, size_t len, cli_sse_event_cb cb,
                           void *arg)
{
    size_t i = 0;
    while (i < len) {
        if (p->skip_lf) {
            p->skip_lf = false;
            if (data[i] == '\n') { /* the LF of a CRLF split across pieces */
                i++;
                continue;
            }
        }
        size_t end = i;
        while (end < len && data[end] != '\n' && data[end] != '\r')
            end++;
        if (end > i) {
            if (end - i > p->max_len - p->line.len)
                return RK_ETOOBIG;
            rk_err err = rk_buf_append(&p->line, data + i, end - i);
            if (err != RK_OK)
                return err;
        }
        if (end == len)
            break; /* the line goes on in the next piece */
        p->skip_lf = data[end] == '\r';
        i = end + 1;
        rk_err err = process_line(p, cb, arg);
        rk_buf_reset(&p->line);
        if (err != RK_OK)
            return err;
    }
    return RK_OK;
}
