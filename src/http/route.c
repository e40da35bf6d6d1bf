/* route.c - from a raw request path to a route, a table and a key. */
#include <string.h>

#include "http_internal.h"

rk_err percent_decode(const char *src, size_t len, char *dst, size_t cap, size_t *out_len)
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
    if (percent_decode(raw, len, m->table, sizeof m->table, &n) != RK_OK ||
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
    if (percent_decode(raw, len, m->key, sizeof m->key, &n) != RK_OK ||
        !replica_key_valid(m->key, n)) {
        *code = "invalid_key";
        return RK_EINVAL;
    }
    m->key_len = n;
    return RK_OK;
}

/* System routes: fixed paths. */
static http_route system_route(const char *p, size_t len)
{
    static const struct {
        const char *path;
        http_route route;
    } fixed[] = {
        {"/health", ROUTE_HEALTH},
        {"/metrics", ROUTE_METRICS},
        {"/membership", ROUTE_MEMBERSHIP},
        {"/cluster", ROUTE_CLUSTER},
        /* Membership changes. None of them is a valid /{table}/... route
         * ("leave" etc. are not route words, and /t/hints/drop is not
         * /t/key/...), so they shadow nothing: a table named "cluster"
         * still has /cluster/keys and /cluster/key/k. */
        {"/cluster/leave", ROUTE_CLUSTER_LEAVE},
        {"/cluster/remove", ROUTE_CLUSTER_REMOVE},
        {"/cluster/repair", ROUTE_CLUSTER_REPAIR},
        {"/cluster/hints/drop", ROUTE_HINTS_DROP},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (segment_is(p, len, fixed[i].path))
            return fixed[i].route;
    return ROUTE_NONE;
}

rk_err route_match_path(const char *path, size_t len, route_match *m, const char **code)
{
    memset(m, 0, sizeof *m);
    if (len == 0 || path[0] != '/')
        return RK_OK;
    if ((m->route = system_route(path, len)) != ROUTE_NONE)
        return RK_OK;
    if (len == 1 || segment_is(path, len, "/ui") || (len >= 4 && memcmp(path, "/ui/", 4) == 0)) {
        m->route = ROUTE_UI;
        m->rest = len >= 3 ? path + 3 : "";
        return RK_OK;
    }
    /* /{first}/{second}[/{rest}] */
    const char *first = path + 1;
    const char *slash = memchr(first, '/', len - 1);
    if (slash == NULL)
        return RK_OK;
    size_t first_len = (size_t)(slash - first);
    const char *second = slash + 1;
    size_t remaining = len - (size_t)(second - path);
    const char *slash2 = memchr(second, '/', remaining);
    size_t second_len = slash2 ? (size_t)(slash2 - second) : remaining;
    const char *rest = slash2 ? slash2 + 1 : NULL;
    size_t rest_len = slash2 ? len - (size_t)(rest - path) : 0;

    if (segment_is(first, first_len, "key")) {
        /* /key/{key}: the default table; the key is all of the rest */
        memcpy(m->table, "default", 8);
        m->table_len = 7;
        m->route = ROUTE_KEY;
        return take_key(second, remaining, m, code);
    }
    if (segment_is(first, first_len, "auth")) {
        m->route = ROUTE_AUTH;
        return take_key(second, remaining, m, code);
    }
    if (rest == NULL && segment_is(second, second_len, "keys"))
        m->route = ROUTE_KEYS;
    else if (rest == NULL && segment_is(second, second_len, "store"))
        m->route = ROUTE_STORE;
    else if (rest != NULL && segment_is(second, second_len, "key"))
        m->route = ROUTE_KEY;
    else if (rest != NULL && segment_is(second, second_len, "subscribe"))
        m->route = ROUTE_SUBSCRIBE;
    else
        return RK_OK;
    rk_err err = take_table(first, first_len, m, code);
    if (err == RK_OK && rest != NULL)
        err = take_key(rest, rest_len, m, code);
    return err;
}
