/* json_scan.c - strict JSON validation that finds spans instead of building
 * trees.
 *
 * Why not cJSON for write bodies: cJSON turns every number into a double,
 * so 12345678901234567890 would be stored as 1.2345678901234567e+19. A
 * database must give back what it was given; we validate the value and
 * store its exact text. It is also allocation-free, which matters on the
 * PUT path. */
#include <string.h>

#include "http_internal.h"

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

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
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
                    if (!is_hex(sc->s[sc->pos + (size_t)i]))
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

/* After '{' or ',' in an object: "name" : */
static bool scan_member_name(scanner *sc)
{
    skip_ws(sc);
    if (!scan_string(sc))
        return false;
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
                if (c == '{' && !scan_member_name(sc))
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
                if (closers[depth - 1] == '}' && !scan_member_name(sc))
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

bool json_scan_value(const char *s, size_t len, size_t *start, size_t *end)
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

/* Is the string token at [b, e) (quotes included) exactly "name"? Escaped
 * member names never match: no client needs to escape "value". */
static bool name_is(const char *s, size_t b, size_t e, const char *name)
{
    size_t n = strlen(name);
    return e - b == n + 2 && memcmp(s + b + 1, name, n) == 0;
}

/* A context is base64url: a plain string with no escapes. */
static bool plain_string(const char *s, size_t b, size_t e)
{
    return memchr(s + b + 1, '\\', e - b - 2) == NULL;
}

rk_err json_scan_write_body(const char *body, size_t len, write_body *out, const char **code)
{
    memset(out, 0, sizeof *out);
    scanner sc = {body, len, 0};
    skip_ws(&sc);
    *code = "bad_json";
    if (!peek_is(&sc, '{'))
        return RK_EINVAL;
    sc.pos++;
    skip_ws(&sc);
    bool first = true;
    while (!peek_is(&sc, '}')) {
        if (!first) {
            if (!peek_is(&sc, ','))
                return RK_EINVAL;
            sc.pos++;
            skip_ws(&sc);
        }
        first = false;
        size_t nb = sc.pos;
        if (!scan_string(&sc))
            return RK_EINVAL;
        size_t ne = sc.pos;
        skip_ws(&sc);
        if (!peek_is(&sc, ':'))
            return RK_EINVAL;
        sc.pos++;
        skip_ws(&sc);
        size_t vb = sc.pos;
        if (!scan_value(&sc, 1))
            return RK_EINVAL;
        size_t ve = sc.pos;
        if (name_is(body, nb, ne, "value")) {
            out->value = body + vb;
            out->value_len = ve - vb;
        } else if (name_is(body, nb, ne, "context") && !(body[vb] == 'n' && ve - vb == 4)) {
            if (body[vb] != '"' || !plain_string(body, vb, ve)) {
                *code = "bad_context";
                return RK_EINVAL;
            }
            out->context = body + vb + 1;
            out->context_len = ve - vb - 2;
        }
        skip_ws(&sc);
    }
    sc.pos++;
    skip_ws(&sc);
    if (sc.pos != len)
        return RK_EINVAL;
    return RK_OK;
}
