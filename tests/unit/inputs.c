/* inputs.c - inputs for the unit tests (see inputs.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inputs.h"

char *exact_copy(const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);
    assert_non_null(p);
    if (len)
        memcpy(p, s, len);
    return p;
}

/* ---- a replayable random source ------------------------------------------ */

static uint64_t rng_state;

uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

unsigned rng_below(unsigned n)
{
    return (unsigned)(rng_next() % n);
}

uint64_t rng_seed_from_env(const char *test)
{
    const char *env = getenv("RINGKV_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    rng_state = seed;
    printf("# %s: seed %" PRIu64 " (replay with RINGKV_TEST_SEED=%" PRIu64 ")\n", test, seed, seed);
    return seed;
}

uint64_t rng_state_get(void)
{
    return rng_state;
}

void rng_state_set(uint64_t state)
{
    rng_state = state;
}

/* ---- random JSON ----------------------------------------------------------- */

void gen_ws(rk_buf *b)
{
    static const char ws[] = " \t\n\r";
    unsigned n = rng_below(8) == 0 ? rng_below(3) + 1 : 0;
    for (unsigned i = 0; i < n; i++)
        rk_buf_append(b, &ws[rng_below(4)], 1);
}

static void gen_digits(rk_buf *b, unsigned min, unsigned max)
{
    unsigned n = min + rng_below(max - min + 1);
    for (unsigned i = 0; i < n; i++) {
        char d = (char)('0' + rng_below(10));
        rk_buf_append(b, &d, 1);
    }
}

static void gen_number(rk_buf *b)
{
    if (rng_below(2))
        rk_buf_appends(b, "-");
    if (rng_below(4) == 0) {
        rk_buf_appends(b, "0");
    } else {
        char d = (char)('1' + rng_below(9));
        rk_buf_append(b, &d, 1);
        gen_digits(b, 0, rng_below(4) == 0 ? 30 : 4); /* big integers too */
    }
    if (rng_below(3) == 0) {
        rk_buf_appends(b, ".");
        gen_digits(b, 1, 6);
    }
    if (rng_below(3) == 0) {
        rk_buf_appends(b, rng_below(2) ? "e" : "E");
        unsigned sign = rng_below(3);
        if (sign)
            rk_buf_appends(b, sign == 1 ? "+" : "-");
        gen_digits(b, 1, 4);
    }
}

/* Appends the UTF-8 form of a code point (not a surrogate). */
static void put_utf8(rk_buf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    }
    rk_buf_append(b, u, n);
}

static void gen_string(rk_buf *b)
{
    rk_buf_appends(b, "\"");
    unsigned n = rng_below(10);
    for (unsigned i = 0; i < n; i++) {
        switch (rng_below(6)) {
        case 0: { /* a simple escape */
            static const char *esc[] = {"\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"};
            rk_buf_appends(b, esc[rng_below(8)]);
            break;
        }
        case 1: /* \uXXXX, mixed case */
            rk_buf_appendf(b, rng_below(2) ? "\\u%04x" : "\\u%04X", (unsigned)rng_below(0x10000));
            break;
        case 2: { /* a multi-byte character */
            uint32_t cp;
            switch (rng_below(3)) {
            case 0: cp = 0x80 + rng_below(0x800 - 0x80); break;
            case 1:
                cp = 0x800 + rng_below(0x10000 - 0x800);
                if (cp >= 0xd800 && cp <= 0xdfff)
                    cp = 0xe000;
                break;
            default: cp = 0x10000 + rng_below(0x110000 - 0x10000); break;
            }
            put_utf8(b, cp);
            break;
        }
        default: { /* printable ASCII but the two that need escapes */
            char c = (char)(0x20 + rng_below(0x7f - 0x20 + 1)); /* 0x7f (DEL) is allowed raw */
            if (c == '"' || c == '\\')
                c = '_';
            rk_buf_append(b, &c, 1);
        }
        }
    }
    rk_buf_appends(b, "\"");
}

void gen_value(rk_buf *b, int depth)
{
    unsigned kind = rng_below(depth < 3 ? 10 : depth < 6 ? 8 : 5);
    switch (kind) {
    case 0: rk_buf_appends(b, "null"); break;
    case 1: rk_buf_appends(b, rng_below(2) ? "true" : "false"); break;
    case 2: gen_number(b); break;
    case 3:
    case 4: gen_string(b); break;
    default: { /* an array (5, 6) or an object */
        bool object = kind > 6;
        rk_buf_appends(b, object ? "{" : "[");
        gen_ws(b);
        unsigned n = rng_below(5);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                rk_buf_appends(b, ",");
            gen_ws(b);
            if (object) {
                gen_string(b);
                gen_ws(b);
                rk_buf_appends(b, ":");
                gen_ws(b);
            }
            gen_value(b, depth + 1);
            gen_ws(b);
        }
        rk_buf_appends(b, object ? "}" : "]");
    }
    }
}

void gen_document(rk_buf *b)
{
    rk_buf_reset(b);
    rk_buf_appends(b, "[");
    gen_ws(b);
    gen_value(b, 1);
    gen_ws(b);
    rk_buf_appends(b, "]");
}

void gen_mutation(const rk_buf *doc, rk_buf *mut)
{
    static const char interesting[] = "[]{}\",:\\u0123456789eE+-.tfn \t\r\n\x01\x7f\x80\xc3\xff";
    rk_buf_reset(mut);
    rk_buf_append(mut, doc->data, doc->len);
    unsigned edits = 1 + rng_below(4);
    for (unsigned k = 0; k < edits; k++) {
        size_t at = mut->len ? rng_below((unsigned)mut->len) : 0;
        char c =
            rng_below(2) ? interesting[rng_below(sizeof interesting - 1)] : (char)rng_below(256);
        switch (rng_below(5)) {
        case 0: /* replace */
            if (mut->len)
                mut->data[at] = c;
            break;
        case 1: /* insert */
            rk_buf_append(mut, "", 1);
            memmove(mut->data + at + 1, mut->data + at, mut->len - 1 - at);
            mut->data[at] = c;
            break;
        case 2: /* delete */
            if (mut->len) {
                memmove(mut->data + at, mut->data + at + 1, mut->len - at - 1);
                mut->len--;
            }
            break;
        case 3: /* truncate */ mut->len = at; break;
        default: { /* duplicate a slice */
            size_t n = rng_below(8);
            if (at + n > mut->len)
                n = mut->len - at;
            rk_buf slice = {0};
            rk_buf_append(&slice, mut->data + at, n);
            rk_buf_append(mut, slice.data ? slice.data : "", n);
            memmove(mut->data + at + 2 * n, mut->data + at + n, mut->len - at - 2 * n);
            memcpy(mut->data + at + n, slice.data ? slice.data : "", n);
            rk_buf_free(&slice);
        }
        }
    }
}
