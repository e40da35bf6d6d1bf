/* route.c - from a raw request path to a row of the route table, a table
 * and a key; the methods a route takes. Pure: the table is passed in. */
#include <stdio.h>
#include <string.h>

#include "http_internal.h"

rk_err http_percent_decode(const char *src, size_t len, char *dst, size_t cap, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len)
                return RK_EINVAL;
            int hi = rk_hex_value(src[i + 1]), lo = rk_hex_value(src[i + 2]);
            if (hi < 0 || lo < 0)
                return RK_EINVAL;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o + 1 >= cap)
            return RK_ETOOBIG;
        dst[o++] = c;
    }
    dst[o] = '\0';
    *out_len = o;
    return RK_OK;
}

static bool segment_is(const char *s, size_t len, const char *word)
{
    size_t wl = strlen(word);
    return len == wl && memcmp(s, word, wl) == 0;
}

/* Fills m->table from a raw segment; tables never need escapes but may
 * arrive escaped, so decode before checking. */
static rk_err take_table(const char *raw, size_t len, route_match *m, const char **code)
{
    size_t n;
    if (http_percent_decode(raw, len, m->table, sizeof m->table, &n) != RK_OK ||
        !replica_table_valid(m->table, n)) {
        *code = "invalid_table";
        return RK_EINVAL;
    }
    m->table_len = n;
    return RK_OK;
}

/* The key is everything after ".../key/", so it may hold '/' too. */
static rk_err take_key(const char *raw, size_t len, route_match *m, const char **code)
{
    size_t n;
    if (http_percent_decode(raw, len, m->key, sizeof m->key, &n) != RK_OK ||
        !replica_key_valid(m->key, n)) {
        *code = "invalid_key";
        return RK_EINVAL;
    }
    m->key_len = n;
    return RK_OK;
}

unsigned http_method_bit(const char *method)
{
    static const struct {
        const char *name;
        unsigned bit;
    } methods[] = {
        {"GET", HTTP_M_GET},   {"HEAD", HTTP_M_HEAD},     {"PUT", HTTP_M_PUT},
        {"POST", HTTP_M_POST}, {"DELETE", HTTP_M_DELETE},
    };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(method, methods[i].name) == 0)
            return methods[i].bit;
    return HTTP_M_OTHER;
}

/* The spans a pattern's captures took from the path; decoded only once the
 * whole shape matched, so "/bad$/other" is no route rather than a bad table. */
typedef struct captures {
    const char *table, *key, *user;
    size_t table_len, key_len, user_len;
    const char *path; /* {path*}: the rest, from its '/' */
} captures;

/* Does path[0..len) have pattern's shape? Fills c with the captured spans. */
static bool shape_matches(const char *pattern, const char *path, size_t len, captures *c)
{
    memset(c, 0, sizeof *c);
    const char *p = pattern;
    size_t at = 0; /* in path */
    while (*p == '/') {
        if (at >= len || path[at] != '/')
            return false;
        at++;
        const char *pe = strchr(p + 1, '/');
        size_t plen = pe ? (size_t)(pe - p - 1) : strlen(p + 1);
        const char *seg = path + at;
        const char *se = memchr(seg, '/', len - at);
        size_t slen = se ? (size_t)(se - seg) : len - at;
        if (segment_is(p + 1, plen, "{key*}")) {
            c->key = seg, c->key_len = len - at;
            return pe == NULL;
        }
        if (segment_is(p + 1, plen, "{user*}")) {
            c->user = seg, c->user_len = len - at;
            return pe == NULL;
        }
        if (segment_is(p + 1, plen, "{path*}")) {
            c->path = seg - 1;
            return pe == NULL;
        }
        if (segment_is(p + 1, plen, "{table}")) {
            c->table = seg, c->table_len = slen;
        } else if (slen != plen || memcmp(seg, p + 1, plen) != 0) {
            return false;
        }
        at += slen;
        p += 1 + plen;
    }
    return *p == '\0' && at == len;
}

/* Decodes and checks the captures into m: the table first, then the key. */
static rk_err take_captures(const captures *c, route_match *m, const char **code)
{
    rk_err err = RK_OK;
    if (c->table != NULL)
        err = take_table(c->table, c->table_len, m, code);
    if (err == RK_OK && c->key != NULL) {
        err = take_key(c->key, c->key_len, m, code);
        if (c->table == NULL) {
            /* /key/{key}: the default table */
            memcpy(m->table, "default", 8);
            m->table_len = 7;
        }
    }
    if (err == RK_OK && c->user != NULL)
        err = take_key(c->user, c->user_len, m, code);
    m->rest = c->path;
    return err;
}

rk_err http_route_find(const http_route *routes, size_t n, const char *path, size_t len,
                       route_match *m, const char **code)
{
    memset(m, 0, sizeof *m);
    /* Pass 0: patterns that start with a literal; pass 1: with "{table}". */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++) {
            const char *pattern = routes[i].pattern;
            bool table_first = strncmp(pattern, "/{table}", 8) == 0;
            if (table_first != (pass == 1))
                continue;
            if (i > 0 && strcmp(pattern, routes[i - 1].pattern) == 0)
                continue; /* the pattern's first row stands for it */
            captures c;
            if (!shape_matches(pattern, path, len, &c))
                continue;
            rk_err err = take_captures(&c, m, code);
            if (err == RK_OK)
                m->route = &routes[i];
            return err;
        }
    return RK_OK;
}

const http_route *http_route_for_method(const http_route *first, const http_route *end,
                                        unsigned method)
{
    for (const http_route *r = first; r < end && strcmp(r->pattern, first->pattern) == 0; r++)
        if (r->methods & method)
            return r;
    return NULL;
}

void http_route_allow(const http_route *first, const http_route *end, char *dst, size_t cap)
{
    static const struct {
        unsigned bit;
        const char *name;
    } listed[] = {
        {HTTP_M_GET, "GET"},
        {HTTP_M_PUT, "PUT"},
        {HTTP_M_POST, "POST"},
        {HTTP_M_DELETE, "DELETE"},
    };
    unsigned served = 0;
    for (const http_route *r = first; r < end && strcmp(r->pattern, first->pattern) == 0; r++)
        if (r->handler != NULL)
            served |= r->methods;
    size_t at = 0;
    dst[0] = '\0';
    for (size_t i = 0; i < sizeof listed / sizeof listed[0]; i++) {
        if (!(served & listed[i].bit))
            continue;
        int k = snprintf(dst + at, cap - at, "%s%s", at ? ", " : "", listed[i].name);
        if (k < 0 || (size_t)k >= cap - at)
            break;
        at += (size_t)k;
    }
}
