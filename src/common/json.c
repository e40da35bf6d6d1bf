/* json.c - strict JSON validation that finds spans instead of building
 * trees.
 *
 * Why not cJSON where values are concerned: cJSON turns every number into a
 * double, so 12345678901234567890 would become 1.2345678901234567e+19. A
 * database must give back what it was given; the gateway validates a value
 * and stores its exact text, and the CLI prints that text as it came. The
 * scanner is also allocation-free, which matters on the PUT path, and
 * iterative, which matters on civetweb's small worker stacks. */
#include <string.h>

#include "ringkv/common.h"

#define JSON_MAX_DEPTH 128

typedef struct scanner {
    const char *s;
    size_t len;
    size_t pos;
} scanner;

static void skip_ws(scanner *sc)
{
    while (sc->pos < sc->len) {
        char c = sc->s[sc->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        sc->pos++;
    }
}

static bool peek_is(const scanner *sc, char c)
{
    return sc->pos < sc->len && sc->s[sc->pos] == c;
}

/* A string, quotes included. Raw bytes must be UTF-8 and not control
 * characters; escapes must be the eight of RFC 8259 or \uXXXX. */
static bool scan_string(scanner *sc)
{
    if (!peek_is(sc, '"'))
        return false;
    size_t run_start = ++sc->pos;
    while (sc->pos < sc->len) {
        unsigned char c = (unsigned char)sc->s[sc->pos];
        if (c == '"') {
            if (!rk_utf8_valid(sc->s + run_start, sc->pos - run_start))
                return false;
            sc->pos++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (!rk_utf8_valid(sc->s + run_start, sc->pos - run_start))
                return false;
            if (sc->pos + 1 >= sc->len)
                return false;
            char e = sc->s[sc->pos + 1];
            if (e == 'u') {
                if (sc->pos + 6 > sc->len)
                    return false;
                for (int i = 2; i < 6; i++)
                    if (rk_hex_value(sc->s[sc->pos + (size_t)i]) < 0)
                        return false;
                sc->pos += 6;
            } else if (strchr("\"\\/bfnrt", e) != NULL && e != '\0') {
                sc->pos += 2;
            } else {
                return false;
            }
            run_start = sc->pos;
            continue;
        }
        sc->pos++;
    }
    return false;
}

static size_t digits(scanner *sc)
{
    size_t n = 0;
    while (sc->pos < sc->len && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9')
        sc->pos++, n++;
    return n;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool scan_number(scanner *sc)
{
    if (peek_is(sc, '-'))
        sc->pos++;
    if (peek_is(sc, '0'))
        sc->pos++;
    else if (digits(sc) == 0)
        return false;
    if (peek_is(sc, '.')) {
        sc->pos++;
        if (digits(sc) == 0)
            return false;
    }
    if (peek_is(sc, 'e') || peek_is(sc, 'E')) {
        sc->pos++;
        if (peek_is(sc, '+') || peek_is(sc, '-'))
            sc->pos++;
        if (digits(sc) == 0)
            return false;
    }
    return true;
}

static bool scan_literal(scanner *sc, const char *word)
{
    size_t n = strlen(word);
    if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, word, n) != 0)
        return false;
    sc->pos += n;
    return true;
}

/* After '{' or ',' in an object: "name" : . *name is the offset of the
 * name's opening quote; its closing quote is just before *name_end. */
static bool scan_member_name(scanner *sc, size_t *name, size_t *name_end)
{
    skip_ws(sc);
    *name = sc->pos;
    if (!scan_string(sc))
        return false;
    *name_end = sc->pos;
    skip_ws(sc);
    if (!peek_is(sc, ':'))
        return false;
    sc->pos++;
    return true;
}

static bool scan_scalar(scanner *sc)
{
    switch (sc->s[sc->pos]) {
    case '"': return scan_string(sc);
    case 't': return scan_literal(sc, "true");
    case 'f': return scan_literal(sc, "false");
    case 'n': return scan_literal(sc, "null");
    default: return scan_number(sc);
    }
}

/* One value, iteratively: containers are tracked in a small array, not on
 * the C stack. civetweb's workers have fixed 100 KiB stacks, and under
 * AddressSanitizer even 128 levels of recursion overflowed them. At most
 * JSON_MAX_DEPTH containers may be open at once, counting the `used` ones
 * the caller is already inside. */
static bool scan_value(scanner *sc, int used)
{
    char closers[JSON_MAX_DEPTH];
    int depth = 0;
    size_t name, name_end; /* not needed here */
    for (;;) {
        skip_ws(sc);
        if (sc->pos >= sc->len)
            return false;
        char c = sc->s[sc->pos];
        if (c == '{' || c == '[') {
            if (used + depth >= JSON_MAX_DEPTH)
                return false;
            closers[depth++] = c == '{' ? '}' : ']';
            sc->pos++;
            skip_ws(sc);
            if (peek_is(sc, closers[depth - 1])) {
                sc->pos++;
                depth--;
            } else {
                if (c == '{' && !scan_member_name(sc, &name, &name_end))
                    return false;
                continue; /* the container's first value */
            }
        } else if (!scan_scalar(sc)) {
            return false;
        }
        /* A value ended: close containers, or go on after a comma. */
        for (;;) {
            if (depth == 0)
                return true;
            skip_ws(sc);
            if (peek_is(sc, ',')) {
                sc->pos++;
                if (closers[depth - 1] == '}' && !scan_member_name(sc, &name, &name_end))
                    return false;
                break;
            }
            if (!peek_is(sc, closers[depth - 1]))
                return false;
            sc->pos++;
            depth--;
        }
    }
}

bool rk_json_valid(const char *s, size_t len, size_t *start, size_t *end)
{
    scanner sc = {s, len, 0};
    skip_ws(&sc);
    size_t b = sc.pos;
    if (!scan_value(&sc, 0))
        return false;
    size_t e = sc.pos;
    skip_ws(&sc);
    if (sc.pos != len)
        return false;
    *start = b;
    *end = e;
    return true;
}

/* The container closes at sc->pos: only white space may follow it. */
static rk_err container_end(scanner *sc)
{
    sc->pos++;
    skip_ws(sc);
    return sc->pos == sc->len ? RK_ENOTFOUND : RK_EINVAL;
}

/* One step through the container that s[0..len) holds: open is '{' or '['.
 * *pos is 0 before the first step, then just past the last item. Items are
 * scanned as one level down, so the depth rule is rk_json_valid's. On
 * RK_OK, *pos moves past the item, and *item..*item_end (and for objects
 * *name_at..*name_end, the name with its quotes) are offsets into s;
 * nothing is written otherwise. */
static rk_err container_next(const char *s, size_t len, char open, size_t *pos, size_t *name_at,
                             size_t *name_end, size_t *item, size_t *item_end)
{
    char close = open == '{' ? '}' : ']';
    if (*pos > len)
        return RK_EINVAL;
    scanner sc = {s, len, *pos};
    skip_ws(&sc);
    if (*pos == 0) {
        if (!peek_is(&sc, open))
            return RK_EINVAL;
        sc.pos++;
        skip_ws(&sc);
        if (peek_is(&sc, close))
            return container_end(&sc);
    } else if (peek_is(&sc, close)) {
        return container_end(&sc);
    } else if (peek_is(&sc, ',')) {
        sc.pos++;
    } else {
        return RK_EINVAL;
    }
    if (open == '{' && !scan_member_name(&sc, name_at, name_end))
        return RK_EINVAL;
    skip_ws(&sc);
    size_t b = sc.pos;
    if (!scan_value(&sc, 1))
        return RK_EINVAL;
    *item = b;
    *item_end = sc.pos;
    *pos = sc.pos;
    return RK_OK;
}

rk_err rk_json_object_next(const char *obj, size_t len, size_t *pos, const char **name,
                           size_t *name_len, const char **value, size_t *value_len)
{
    size_t nb, ne, vb, ve;
    rk_err err = container_next(obj, len, '{', pos, &nb, &ne, &vb, &ve);
    if (err != RK_OK)
        return err;
    *name = obj + nb + 1;
    *name_len = ne - nb - 2;
    *value = obj + vb;
    *value_len = ve - vb;
    return RK_OK;
}

rk_err rk_json_member(const char *obj, size_t len, const char *name, const char **value,
                      size_t *value_len)
{
    size_t n = strlen(name), pos = 0, nl, vl, found_len = 0;
    const char *nm, *v, *found = NULL;
    rk_err err;
    while ((err = rk_json_object_next(obj, len, &pos, &nm, &nl, &v, &vl)) == RK_OK)
        if (nl == n && memcmp(nm, name, n) == 0)
            found = v, found_len = vl; /* the last one wins */
    if (err != RK_ENOTFOUND)
        return err;
    if (found == NULL)
        return RK_ENOTFOUND;
    *value = found;
    *value_len = found_len;
    return RK_OK;
}

rk_err rk_json_array_next(const char *arr, size_t len, size_t *pos, const char **item,
                          size_t *item_len)
{
    size_t unused, b, e;
    rk_err err = container_next(arr, len, '[', pos, &unused, &unused, &b, &e);
    if (err != RK_OK)
        return err;
    *item = arr + b;
    *item_len = e - b;
    return RK_OK;
}
