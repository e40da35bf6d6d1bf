/* watch_line.c - the line `ringkv watch` prints for one event (pure: the
 * machinery that reads the stream is in watch.c). */
#include "cli_internal.h"
#include "sse.h"

#include <cjson/cJSON.h>
#include <string.h>

/* Appends s with control bytes written as \n, \r, \t or \xNN: a key may
 * hold a line break, and one event must stay one line (and must not send
 * escape sequences to a terminal). */
static rk_err append_printable(rk_buf *out, const char *s)
{
    rk_err err = RK_OK;
    for (; err == RK_OK && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n')
            err = rk_buf_appends(out, "\\n");
        else if (c == '\r')
            err = rk_buf_appends(out, "\\r");
        else if (c == '\t')
            err = rk_buf_appends(out, "\\t");
        else if (c < 0x20 || c == 0x7f)
            err = rk_buf_appendf(out, "\\x%02x", c);
        else
            err = rk_buf_append(out, s, 1);
    }
    return err;
}

/* Appends JSON text with its line breaks made spaces. In valid JSON a line
 * break can only be white space between tokens, never inside a string, so
 * the value stays the same (as `ringkv get --siblings` prints it). */
static rk_err append_one_line(rk_buf *out, const char *s, size_t len)
{
    size_t start = out->len;
    rk_err err = rk_buf_append(out, s, len);
    for (size_t i = start; err == RK_OK && i < out->len; i++)
        if (out->data[i] == '\n' || out->data[i] == '\r')
            out->data[i] = ' ';
    return err;
}

static rk_err json_line(const cli_sse_event *ev, rk_buf *out)
{
    rk_err err = rk_buf_appends(out, "{\"event\":");
    if (err == RK_OK)
        err = rk_buf_append_json_string(out, ev->type, strlen(ev->type));
    if (err == RK_OK)
        err = rk_buf_appends(out, ",\"id\":");
    if (err == RK_OK)
        err = ev->id[0] ? rk_buf_append_json_string(out, ev->id, strlen(ev->id))
                        : rk_buf_appends(out, "null");
    if (err == RK_OK)
        err = rk_buf_appends(out, ",\"data\":");
    size_t start, end;
    if (err == RK_OK && rk_json_valid(ev->data, ev->data_len, &start, &end))
        err = append_one_line(out, ev->data + start, end - start);
    else if (err == RK_OK)
        err = rk_buf_append_json_string(out, ev->data, ev->data_len);
    return err == RK_OK ? rk_buf_appends(out, "}\n") : err;
}

static const char *string_member(const cJSON *j, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* "TABLE/KEY" or "TABLE" when there is no key. */
static rk_err append_where(rk_buf *out, const char *table, const char *key)
{
    rk_err err = append_printable(out, table);
    if (err == RK_OK && key != NULL)
        err = rk_buf_appends(out, "/");
    if (err == RK_OK && key != NULL)
        err = append_printable(out, key);
    return err;
}

/* The human form of updated, deleted and reset. RK_ENOTFOUND when the
 * event is of another type or lacks a field: it is then printed as is. */
static rk_err human_line(const cli_sse_event *ev, const cJSON *j, rk_buf *out)
{
    const char *table = string_member(j, "table"), *key = string_member(j, "key");
    const char *ctx = string_member(j, "context");
    bool updated = strcmp(ev->type, "updated") == 0, deleted = strcmp(ev->type, "deleted") == 0;
    rk_err err;
    if (table == NULL)
        return RK_ENOTFOUND;
    if (updated || deleted) {
        /* The value's text as stored, digits and white space kept, like
         * `ringkv get` prints it; cJSON would re-format it. */
        const char *v = NULL;
        size_t v_len = 0;
        if (key == NULL || ctx == NULL ||
            (updated && rk_json_member(ev->data, ev->data_len, "value", &v, &v_len) != RK_OK))
            return RK_ENOTFOUND;
        err = rk_buf_appends(out, ev->type);
        if (err == RK_OK)
            err = rk_buf_appends(out, " ");
        if (err == RK_OK)
            err = append_where(out, table, key);
        if (err == RK_OK && updated)
            err = rk_buf_appends(out, " ");
        if (err == RK_OK && updated)
            err = append_one_line(out, v, v_len);
        if (err == RK_OK)
            err = rk_buf_appends(out, " context=");
        if (err == RK_OK)
            err = append_printable(out, ctx);
        const cJSON *sib = cJSON_GetObjectItemCaseSensitive(j, "siblings");
        if (err == RK_OK && updated && cJSON_IsNumber(sib) && sib->valuedouble > 1)
            err = rk_buf_appendf(out, " siblings=%.0f", sib->valuedouble);
        return err == RK_OK ? rk_buf_appends(out, "\n") : err;
    }
    if (strcmp(ev->type, "reset") != 0)
        return RK_ENOTFOUND;
    const char *reason = string_member(j, "reason");
    err = rk_buf_appends(out, "reset ");
    if (err == RK_OK)
        err = append_where(out, table, key);
    if (err == RK_OK)
        err = rk_buf_appends(out, ": ");
    if (err == RK_OK)
        err = append_printable(out, reason ? reason : "(no reason given)");
    return err == RK_OK ? rk_buf_appends(out, "\n") : err;
}

rk_err cli_watch_line(const cli_sse_event *ev, bool json, rk_buf *out)
{
    if (json)
        return json_line(ev, out);
    cJSON *j = cJSON_ParseWithLength(ev->data, ev->data_len);
    size_t start = out->len;
    rk_err err = cJSON_IsObject(j) ? human_line(ev, j, out) : RK_ENOTFOUND;
    cJSON_Delete(j);
    if (err != RK_ENOTFOUND)
        return err;
    /* Not one this client knows how to show: "TYPE DATA", data on one line. */
    out->len = start;
    err = append_printable(out, ev->type);
    if (err == RK_OK)
        err = rk_buf_appends(out, " ");
    size_t vs, ve;
    if (err == RK_OK && rk_json_valid(ev->data, ev->data_len, &vs, &ve))
        err = append_one_line(out, ev->data + vs, ve - vs);
    else if (err == RK_OK)
        err = append_printable(out, ev->data);
    return err == RK_OK ? rk_buf_appends(out, "\n") : err;
}
