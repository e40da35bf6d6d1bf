/* test_http.c - unit tests of the gateway's pure parts: percent-decoding,
 * routes, JSON scanning, the error-to-status table and metrics text.
 *
 * Inputs are copied into heap buffers of their exact length (no NUL after
 * them), so a read past the end shows up under the address sanitizer. */
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

#include "http/http_internal.h"

/* ---- a replayable random source ------------------------------------------ */

static uint64_t rng_state;

/* splitmix64: the same stream on every libc, so a printed seed replays. */
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static unsigned rng_below(unsigned n)
{
    return (unsigned)(rng_next() % n);
}

static void rng_seed_from_env(const char *test)
{
    const char *env = getenv("RINGKV_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    rng_state = seed;
    printf("# %s: seed %" PRIu64 " (replay with RINGKV_TEST_SEED=%" PRIu64 ")\n", test, seed,
           seed);
}

/* An exact-length heap copy; free with free(). */
static char *exact_copy(const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);
    assert_non_null(p);
    if (len)
        memcpy(p, s, len);
    return p;
}

/* ---- percent_decode --------------------------------------------------------- */

static rk_err decode(const char *src, size_t cap, char *dst, size_t *n)
{
    size_t len = strlen(src);
    char *copy = exact_copy(src, len);
    rk_err err = percent_decode(copy, len, dst, cap, n);
    free(copy);
    return err;
}

static void check_decodes(const char *src, const char *want, size_t want_len)
{
    char dst[64];
    size_t n = 999;
    assert_int_equal(decode(src, sizeof dst, dst, &n), RK_OK);
    assert_int_equal(n, want_len);
    assert_memory_equal(dst, want, want_len);
    assert_int_equal(dst[n], '\0');
}

static void check_decode_rejects(const char *src)
{
    char dst[64];
    size_t n = 999;
    assert_int_equal(decode(src, sizeof dst, dst, &n), RK_EINVAL);
    assert_int_equal(n, 999); /* untouched */
}

static void test_percent_decode(void **state)
{
    (void)state;
    check_decodes("", "", 0);
    check_decodes("plain", "plain", 5);
    check_decodes("a%2Fb", "a/b", 3);
    check_decodes("a%2fb", "a/b", 3);
    check_decodes("%25", "%", 1);
    check_decodes("%2525", "%25", 3); /* decoded once, not twice */
    check_decodes("%41%42%43", "ABC", 3);
    check_decodes("a+b", "a+b", 3);   /* '+' is not a space in paths */
    check_decodes("%c3%A9", "\xc3\xa9", 2);
    check_decodes("%00", "\0", 1);    /* decodes; the key check rejects it */
    check_decodes("end%41", "endA", 4);

    check_decode_rejects("%");
    check_decode_rejects("%4");
    check_decode_rejects("%zz");
    check_decode_rejects("%g1");
    check_decode_rejects("%1g");
    check_decode_rejects("a%");
    check_decode_rejects("a%4");
    check_decode_rejects("%%41");
    check_decode_rejects("% 41");
}

static void test_percent_decode_capacity(void **state)
{
    (void)state;
    char dst[8];
    size_t n = 999;
    /* cap counts the NUL: "abcd" needs 5. */
    assert_int_equal(decode("abcd", 4, dst, &n), RK_ETOOBIG);
    assert_int_equal(decode("abcd", 5, dst, &n), RK_OK);
    assert_int_equal(n, 4);
    assert_string_equal(dst, "abcd");
    /* The decoded length is what counts, not the encoded one. */
    assert_int_equal(decode("%41%42%43", 4, dst, &n), RK_OK);
    assert_string_equal(dst, "ABC");
    assert_int_equal(decode("%41%42%43", 3, dst, &n), RK_ETOOBIG);
    assert_int_equal(decode("abcdefghijkl", sizeof dst, dst, &n), RK_ETOOBIG);
}

/* ---- route_match_path --------------------------------------------------------- */

typedef struct matched {
    rk_err err;
    route_match m;
    const char *code;
    char rest[64];   /* m.rest copied out, since it points into the path */
} matched;

/* rest is a C string into the request's URI (handle_ui reads it up to the
 * NUL), so the path handed over is NUL-terminated; a second run on an
 * exact-length copy checks that nothing else reads past len. */
static matched match(const char *path)
{
    matched r = {.code = NULL};
    size_t len = strlen(path);
    char *copy = exact_copy(path, len);
    route_match exact;
    const char *exact_code = NULL;
    rk_err exact_err = route_match_path(copy, len, &exact, &exact_code);
    free(copy);

    r.err = route_match_path(path, len, &r.m, &r.code);
    assert_int_equal(exact_err, r.err);
    assert_int_equal(exact.route, r.m.route);
    assert_true(exact_code == r.code || strcmp(exact_code, r.code) == 0);
    if (r.m.rest != NULL) {
        assert_true(r.m.route == ROUTE_UI);
        assert_true(strlen(r.m.rest) < sizeof r.rest);
        strcpy(r.rest, r.m.rest);
        r.m.rest = r.rest;
    }
    return r;
}

static void check_route(const char *path, http_route route, const char *table, const char *key)
{
    matched r = match(path);
    if (r.err != RK_OK || r.m.route != route)
        print_error("path \"%s\": err %d route %d, want route %d\n", path, r.err, r.m.route,
                    route);
    assert_int_equal(r.err, RK_OK);
    assert_int_equal(r.m.route, route);
    assert_int_equal(r.m.table_len, strlen(table));
    assert_string_equal(r.m.table, table);
    assert_int_equal(r.m.key_len, strlen(key));
    assert_string_equal(r.m.key, key);
}

static void check_route_error(const char *path, const char *code)
{
    matched r = match(path);
    if (r.err != RK_EINVAL)
        print_error("path \"%.80s\": err %d route %d, want RK_EINVAL %s\n", path, r.err,
                    r.m.route, code);
    assert_int_equal(r.err, RK_EINVAL);
    assert_non_null(r.code);
    assert_string_equal(r.code, code);
}

static void test_route_system(void **state)
{
    (void)state;
    check_route("/health", ROUTE_HEALTH, "", "");
    check_route("/metrics", ROUTE_METRICS, "", "");
    check_route("/membership", ROUTE_MEMBERSHIP, "", "");
    check_route("/cluster", ROUTE_CLUSTER, "", "");
    check_route("/auth/bob", ROUTE_AUTH, "", "bob");
    check_route("/auth/b%C3%B6b", ROUTE_AUTH, "", "b\xc3\xb6" "b");

    matched r = match("/ui");
    assert_int_equal(r.err, RK_OK);
    assert_int_equal(r.m.route, ROUTE_UI);
    assert_string_equal(r.m.rest, "");
    r = match("/ui/x.js");
    assert_int_equal(r.m.route, ROUTE_UI);
    assert_string_equal(r.m.rest, "/x.js");
    r = match("/ui/");
    assert_int_equal(r.m.route, ROUTE_UI);
    assert_string_equal(r.m.rest, "/");
    r = match("/");
    assert_int_equal(r.err, RK_OK);
    assert_int_equal(r.m.route, ROUTE_UI);
    assert_non_null(r.m.rest);
    assert_string_equal(r.m.rest, "");
}

static void test_route_records(void **state)
{
    (void)state;
    check_route("/key/abc", ROUTE_KEY, "default", "abc");
    check_route("/key/a/b", ROUTE_KEY, "default", "a/b");
    check_route("/t/key/abc", ROUTE_KEY, "t", "abc");
    check_route("/t/key/a%2Fb", ROUTE_KEY, "t", "a/b");
    check_route("/t/key/a/b", ROUTE_KEY, "t", "a/b");
    check_route("/t/key/a+b", ROUTE_KEY, "t", "a+b");
    check_route("/t/key/%20", ROUTE_KEY, "t", " ");
    check_route("/t/key/key", ROUTE_KEY, "t", "key");
    check_route("/key/key/key", ROUTE_KEY, "default", "key/key");
    check_route("/t/key/caf%C3%A9", ROUTE_KEY, "t", "caf\xc3\xa9");
    check_route("/t/key/caf\xc3\xa9", ROUTE_KEY, "t", "caf\xc3\xa9");
    check_route("/A-z_0.9/key/k", ROUTE_KEY, "A-z_0.9", "k");
    check_route("/_sys/key/k", ROUTE_KEY, "_sys", "k"); /* reserved is the caller's call */
    check_route("/%74/key/k", ROUTE_KEY, "t", "k");     /* an escaped table is decoded */
    check_route("/t/keys", ROUTE_KEYS, "t", "");
    check_route("/t/store", ROUTE_STORE, "t", "");
    check_route("/t/subscribe/k", ROUTE_SUBSCRIBE, "t", "k");
    check_route("/t/subscribe/a%2Fb", ROUTE_SUBSCRIBE, "t", "a/b");
    /* Route words are table names too. */
    check_route("/keys/keys", ROUTE_KEYS, "keys", "");
    check_route("/health/key/x", ROUTE_KEY, "health", "x");
}

static void test_route_unknown(void **state)
{
    (void)state;
    const char *paths[] = {
        "", "health", "/healthz", "/health/", "/HEALTH", "/metric", "/uix", "/t", "/t/",
        "/t/other", "/t/keys/", "/t/keys/x", "/t/store/x", "/t/key", "/t/subscribe",
        "/key", "/auth", "//", "/t//key/x",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        matched r = match(paths[i]);
        if (r.err != RK_OK || r.m.route != ROUTE_NONE)
            print_error("path \"%s\": err %d route %d, want ROUTE_NONE\n", paths[i], r.err,
                        r.m.route);
        assert_int_equal(r.err, RK_OK);
        assert_int_equal(r.m.route, ROUTE_NONE);
    }
}

static void test_route_bad_names(void **state)
{
    (void)state;
    check_route_error("/bad!/key/x", "invalid_table");
    check_route_error("/t%21/keys", "invalid_table");
    check_route_error("/a%2Fb/keys", "invalid_table");
    check_route_error("/a%zz/store", "invalid_table");
    check_route_error("/t%00/key/x", "invalid_table");
    check_route_error("/t/key/", "invalid_key");
    check_route_error("/key/", "invalid_key");
    check_route_error("/auth/", "invalid_key");
    check_route_error("/t/subscribe/", "invalid_key");
    check_route_error("/t/key/%ff", "invalid_key");
    check_route_error("/t/key/%C0%AF", "invalid_key");
    check_route_error("/t/key/%ED%A0%80", "invalid_key");
    check_route_error("/t/key/a%00b", "invalid_key");
    check_route_error("/t/key/%zz", "invalid_key");
    check_route_error("/t/key/%", "invalid_key");
    check_route_error("/t/key/a%4", "invalid_key");
    check_route_error("/t/key/\xff", "invalid_key");

    /* Table: 64 bytes are fine, 65 are not. */
    char path[8 + 3 * 1100];
    memset(path, 0, sizeof path);
    path[0] = '/';
    memset(path + 1, 't', 64);
    strcpy(path + 65, "/key/k");
    char table64[65];
    memset(table64, 't', 64);
    table64[64] = '\0';
    check_route(path, ROUTE_KEY, table64, "k");
    path[0] = '/';
    memset(path + 1, 't', 65);
    strcpy(path + 66, "/key/k");
    check_route_error(path, "invalid_table");
}

static void test_route_key_length(void **state)
{
    (void)state;
    static char path[16 + 3 * 1030], key[1030];
    memset(key, 'k', 1024);
    key[1024] = '\0';

    snprintf(path, sizeof path, "/t/key/%s", key);
    check_route(path, ROUTE_KEY, "t", key); /* 1024 bytes */
    snprintf(path, sizeof path, "/key/%s", key);
    check_route(path, ROUTE_KEY, "default", key);

    /* 1024 bytes written as 3072 escaped ones: the decoded length counts. */
    strcpy(path, "/t/key/");
    for (int i = 0; i < 1024; i++)
        strcat(path, "%6B");
    check_route(path, ROUTE_KEY, "t", key);

    key[1024] = 'k';
    key[1025] = '\0';
    snprintf(path, sizeof path, "/t/key/%s", key);
    check_route_error(path, "invalid_key"); /* 1025 bytes */
    snprintf(path, sizeof path, "/auth/%s", key);
    check_route_error(path, "invalid_key");

    /* 1022 ASCII bytes and a 2-byte character: 1024, fine; a 3-byte one:
     * 1025, too long. */
    memset(key, 'k', 1022);
    strcpy(key + 1022, "\xc3\xa9");
    snprintf(path, sizeof path, "/t/key/%s", key);
    check_route(path, ROUTE_KEY, "t", key);
    strcpy(key + 1022, "\xe2\x82\xac");
    snprintf(path, sizeof path, "/t/key/%s", key);
    check_route_error(path, "invalid_key");
}

/* ---- json_scan_value: fixed cases ------------------------------------------------ */

static bool scan_n(const char *s, size_t len, size_t *b, size_t *e)
{
    char *copy = exact_copy(s, len);
    bool ok = json_scan_value(copy, len, b, e);
    free(copy);
    return ok;
}

static bool scan(const char *s)
{
    size_t b, e;
    return scan_n(s, strlen(s), &b, &e);
}

static void test_json_accepts(void **state)
{
    (void)state;
    static const char *ok[] = {
        "0", "-0", "7", "-1", "10", "1.5", "-0.25", "0.0",
        "12345678901234567890123456789012345678901234567890",
        "-98765432109876543210.01234567890123456789",
        "1e10", "1E10", "1e+10", "1e-10", "-1.5E-300", "0e0", "2.5e+0008",
        "true", "false", "null",
        "\"\"", "\"abc\"", "\"a b\\tc\"",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
        "\"\\u0000\\u00e9\\u00E9\\uFFFF\\ud83d\\ude00\"",
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
        "\"\x7f\"", "\"'single'\"", "\"}]{[,:\"",
        "[]", "{}", "[ ]", "{ }", "[1]", "[1,2,3]", "[[],[[]],{}]",
        "{\"a\":1}", "{\"\":0}", "{\"a\":1,\"a\":2}",
        "{\"a\":{\"b\":[true,false,null,\"s\",-1.5e3,{}]},\"c\":\"d\"}",
        "[\"\\u005b\", \"]\", \"\\\"\"]",
        " 1", "1 ", "\t\r\n 1 \n\r\t", " [ 1 , { \"k\" : \"v\" } , [ ] ] ",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (!scan(ok[i]))
            print_error("rejected valid JSON: %s\n", ok[i]);
        assert_true(scan(ok[i]));
    }

    /* The span is the value without the white space around it. */
    size_t b = 99, e = 99;
    const char *s = " \t[1, 2] \n";
    assert_true(scan_n(s, strlen(s), &b, &e));
    assert_int_equal(b, 2);
    assert_int_equal(e, 8);
    assert_true(scan_n("\"x\"", 3, &b, &e));
    assert_int_equal(b, 0);
    assert_int_equal(e, 3);
    assert_true(scan_n("12345", 5, &b, &e));
    assert_int_equal(e, 5);
}

static void test_json_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "", " ", "\n\t",
        /* trailing garbage */
        "1 2", "[1]x", "{}{}", "[] []", "nullx", "truefalse", "\"a\"\"b\"", "1,",
        /* numbers */
        "01", "-01", "00", "1.", "-1.", ".5", "-.5", "-", "+1", "1e", "1e+", "1E-", "1.e5",
        "--1", "0x10", "1_000", "NaN", "Infinity", "-Infinity", "1.5.5", "1ee5", "\xef\xbc\x91",
        /* literals */
        "tru", "t", "nul", "fals", "True", "NULL", "nulll",
        /* arrays and objects */
        "[", "]", "{", "}", "[1,]", "[,1]", "[1,,2]", "[1 2]", "[1:2]", "{\"a\":}", "{\"a\"}",
        "{\"a\" 1}", "{\"a\":1,}", "{,}", "{1:2}", "{a:1}", "{'a':1}", "{\"a\":1 \"b\":2}",
        "{\"a\":1;\"b\":2}", "[}", "{]", "[[]", "[]]",
        /* strings */
        "\"abc", "\"", "\"\\\"", "'a'", "\"a\"b\"",
        "\"\\x41\"", "\"\\a\"", "\"\\U0041\"", "\"\\u12\"", "\"\\u12g4\"", "\"\\u\"",
        "\"\\", "\"\\u004", "\"\\'\"",
        "\"\t\"", "\"a\nb\"", "\"\x01\"", "\"\x1f\"",
        "\"\xff\"", "\"\x80\"", "\"\xc3\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", "\"a\\n\xc3\"",
        /* not JSON at all */
        "\xc3\xa9", "undefined", "/* */ 1", "// 1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (scan(bad[i]))
            print_error("accepted invalid JSON: \"%s\"\n", bad[i]);
        assert_false(scan(bad[i]));
    }

    /* NUL bytes: raw in a string, between tokens, after the value. */
    size_t b, e;
    assert_false(scan_n("\"a\0b\"", 5, &b, &e));
    assert_false(scan_n("[1,\0 2]", 7, &b, &e));
    assert_false(scan_n("1\0", 2, &b, &e));
    /* The length is the end: a valid value cut short is invalid. */
    assert_false(scan_n("[1,2]", 4, &b, &e));
    assert_false(scan_n("true", 3, &b, &e));
    assert_false(scan_n("\"\\u0041\"", 6, &b, &e));
}

/* "[[...[x]...]]" with depth arrays. */
static char *nested(int depth, const char *inner, size_t *len)
{
    size_t il = strlen(inner);
    *len = 2 * (size_t)depth + il;
    char *s = malloc(*len);
    assert_non_null(s);
    memset(s, '[', (size_t)depth);
    memcpy(s + depth, inner, il);
    memset(s + depth + il, ']', (size_t)depth);
    return s;
}

static bool scan_nested(int depth, const char *inner)
{
    size_t len, b, e;
    char *s = nested(depth, inner, &len);
    bool ok = json_scan_value(s, len, &b, &e);
    free(s);
    return ok;
}

/* Depth is limited to 128 (http_internal.h): 128 nested containers are
 * fine, whatever is innermost. */
static void test_json_depth_limit_allows_128(void **state)
{
    (void)state;
    assert_true(scan_nested(1, ""));
    assert_true(scan_nested(128, ""));
    assert_true(scan_nested(128, "1"));
    assert_true(scan_nested(127, "{\"a\":1}"));
    assert_true(scan_nested(127, "{}"));
    /* Deep input far past the limit fails cleanly, without using the
     * stack for every level. */
    assert_false(scan_nested(100000, ""));
    assert_false(scan_nested(100000, "1"));
    size_t len, b, e;
    char *open_only = nested(50000, "", &len);
    assert_false(json_scan_value(open_only, len / 2, &b, &e));
    free(open_only);
}

/* 129 nested containers are one level past the limit, whatever is
 * innermost: "[[...[]...]]" must fail like "[[...[1]...]]" does. */
static void test_json_depth_limit_rejects_129(void **state)
{
    (void)state;
    assert_false(scan_nested(129, "1"));
    assert_false(scan_nested(128, "{\"a\":1}"));
    assert_false(scan_nested(129, ""));
    assert_false(scan_nested(128, "{}"));
}

/* ---- json_scan_value: randomized ---------------------------------------------------- */

static void gen_ws(rk_buf *b)
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

static void gen_value(rk_buf *b, int depth)
{
    unsigned kind = rng_below(depth < 3 ? 10 : depth < 6 ? 8 : 5);
    switch (kind) {
    case 0: rk_buf_appends(b, "null"); break;
    case 1: rk_buf_appends(b, rng_below(2) ? "true" : "false"); break;
    case 2: gen_number(b); break;
    case 3:
    case 4: gen_string(b); break;
    case 5:
    case 6: { /* array */
        rk_buf_appends(b, "[");
        gen_ws(b);
        unsigned n = rng_below(5);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                rk_buf_appends(b, ",");
            gen_ws(b);
            gen_value(b, depth + 1);
            gen_ws(b);
        }
        rk_buf_appends(b, "]");
        break;
    }
    default: { /* object */
        rk_buf_appends(b, "{");
        gen_ws(b);
        unsigned n = rng_below(5);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                rk_buf_appends(b, ",");
            gen_ws(b);
            gen_string(b);
            gen_ws(b);
            rk_buf_appends(b, ":");
            gen_ws(b);
            gen_value(b, depth + 1);
            gen_ws(b);
        }
        rk_buf_appends(b, "}");
    }
    }
}

/* A random valid document inside an array: "[" ws value ws "]", so that no
 * proper prefix of it is valid. */
static void gen_document(rk_buf *b)
{
    rk_buf_reset(b);
    rk_buf_appends(b, "[");
    gen_ws(b);
    gen_value(b, 1);
    gen_ws(b);
    rk_buf_appends(b, "]");
}

/* Whatever json_scan_value accepts, its span must be in the input and be a
 * valid value by itself. */
static bool scan_checked(const char *s, size_t len)
{
    size_t b = SIZE_MAX, e = SIZE_MAX;
    if (!scan_n(s, len, &b, &e))
        return false;
    assert_true(b <= e && e <= len);
    assert_true(b < e);
    size_t b2, e2;
    assert_true(scan_n(s + b, e - b, &b2, &e2));
    assert_int_equal(b2, 0);
    assert_int_equal(e2, e - b);
    return true;
}

static void test_json_random_valid_documents(void **state)
{
    (void)state;
    rng_seed_from_env("json_random_valid_documents");
    rk_buf doc = {0};
    size_t total = 0, longest = 0;
    for (int i = 0; i < 3000; i++) {
        gen_document(&doc);
        total += doc.len;
        longest = doc.len > longest ? doc.len : longest;
        if (!scan_checked(doc.data, doc.len))
            print_error("rejected valid document %d: %s\n", i, doc.data);
        assert_true(scan_checked(doc.data, doc.len));

        /* Every proper prefix leaves the outer array open. */
        for (size_t cut = 0; cut < doc.len; cut++) {
            if (scan_n(doc.data, cut, &(size_t){0}, &(size_t){0}))
                print_error("accepted a prefix (%zu of %zu bytes) of %s\n", cut, doc.len,
                            doc.data);
            assert_false(scan_n(doc.data, cut, &(size_t){0}, &(size_t){0}));
        }

        /* A raw control byte or a byte that is never UTF-8 is invalid
         * wherever it goes: inside a string or between tokens. One more
         * continuation byte is never valid either. */
        static const char poison[] = {'\x01', '\x1f', '\xff', '\xc0', '\x80'};
        size_t at = rng_below((unsigned)doc.len + 1);
        char p = poison[rng_below(sizeof poison)];
        rk_buf bad = {0};
        rk_buf_append(&bad, doc.data, at);
        rk_buf_append(&bad, &p, 1);
        rk_buf_append(&bad, doc.data + at, doc.len - at);
        if (scan_checked(bad.data, bad.len))
            print_error("accepted 0x%02x inserted at %zu: %s\n", (unsigned char)p, at, bad.data);
        assert_false(scan_checked(bad.data, bad.len));
        rk_buf_free(&bad);
    }
    printf("# json_random_valid_documents: 3000 documents, %zu bytes on average, longest %zu\n",
           total / 3000, longest);
    rk_buf_free(&doc);
}

/* Random damage to valid documents: the scanner must neither crash nor read
 * past the end (see the sanitizer build), and what it accepts must hold up. */
static void test_json_random_mutations(void **state)
{
    (void)state;
    rng_seed_from_env("json_random_mutations");
    static const char interesting[] = "[]{}\",:\\u0123456789eE+-.tfn \t\r\n\x01\x7f\x80\xc3\xff";
    rk_buf doc = {0}, mut = {0};
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        gen_document(&doc);
        rk_buf_reset(&mut);
        rk_buf_append(&mut, doc.data, doc.len);
        unsigned edits = 1 + rng_below(4);
        for (unsigned k = 0; k < edits; k++) {
            size_t at = mut.len ? rng_below((unsigned)mut.len) : 0;
            char c = rng_below(2) ? interesting[rng_below(sizeof interesting - 1)]
                                  : (char)rng_below(256);
            switch (rng_below(5)) {
            case 0: /* replace */
                if (mut.len)
                    mut.data[at] = c;
                break;
            case 1: /* insert */
                rk_buf_append(&mut, "", 1);
                memmove(mut.data + at + 1, mut.data + at, mut.len - 1 - at);
                mut.data[at] = c;
                break;
            case 2: /* delete */
                if (mut.len) {
                    memmove(mut.data + at, mut.data + at + 1, mut.len - at - 1);
                    mut.len--;
                }
                break;
            case 3: /* truncate */
                mut.len = at;
                break;
            default: { /* duplicate a slice */
                size_t n = rng_below(8);
                if (at + n > mut.len)
                    n = mut.len - at;
                rk_buf slice = {0};
                rk_buf_append(&slice, mut.data + at, n);
                rk_buf_append(&mut, slice.data ? slice.data : "", n);
                memmove(mut.data + at + 2 * n, mut.data + at + n, mut.len - at - 2 * n);
                memcpy(mut.data + at + n, slice.data ? slice.data : "", n);
                rk_buf_free(&slice);
            }
            }
        }
        accepted += scan_checked(mut.data, mut.len);

        /* The same bytes as a write body's value: no crash, and when the
         * body is accepted the value span lies inside it. */
        rk_buf body = {0};
        rk_buf_appends(&body, "{\"value\":");
        rk_buf_append(&body, mut.data, mut.len);
        rk_buf_appends(&body, "}");
        char *copy = exact_copy(body.data, body.len);
        write_body wb;
        const char *code = NULL;
        if (json_scan_write_body(copy, body.len, &wb, &code) == RK_OK) {
            assert_true(wb.value == NULL ||
                        (wb.value >= copy && wb.value + wb.value_len <= copy + body.len));
        } else {
            assert_non_null(code);
        }
        free(copy);
        rk_buf_free(&body);
    }
    printf("# json_random_mutations: %d of 20000 mutants still valid\n", accepted);
    rk_buf_free(&doc);
    rk_buf_free(&mut);
}

/* ---- json_scan_write_body ------------------------------------------------------------ */

typedef struct body_scan {
    rk_err err;
    const char *code;
    char value[256];
    size_t value_len;
    bool has_value;
    char context[256];
    size_t context_len;
    bool has_context;
} body_scan;

static body_scan scan_body(const char *body)
{
    body_scan r = {0};
    size_t len = strlen(body);
    char *copy = exact_copy(body, len);
    write_body wb;
    r.err = json_scan_write_body(copy, len, &wb, &r.code);
    if (r.err == RK_OK) {
        r.has_value = wb.value != NULL;
        r.value_len = wb.value_len;
        if (wb.value) {
            assert_true(wb.value >= copy && wb.value + wb.value_len <= copy + len);
            assert_true(wb.value_len < sizeof r.value);
            memcpy(r.value, wb.value, wb.value_len);
        }
        r.has_context = wb.context != NULL;
        r.context_len = wb.context_len;
        if (wb.context) {
            assert_true(wb.context >= copy && wb.context + wb.context_len <= copy + len);
            assert_true(wb.context_len < sizeof r.context);
            memcpy(r.context, wb.context, wb.context_len);
        }
    }
    free(copy);
    return r;
}

static void check_body(const char *body, const char *value, const char *context)
{
    body_scan r = scan_body(body);
    if (r.err != RK_OK)
        print_error("body %s: err %d code %s\n", body, r.err, r.code ? r.code : "(null)");
    assert_int_equal(r.err, RK_OK);
    if (value == NULL) {
        assert_int_equal(r.value_len, 0);
    } else {
        assert_true(r.has_value);
        assert_int_equal(r.value_len, strlen(value));
        assert_string_equal(r.value, value);
    }
    if (context == NULL) {
        assert_false(r.has_context);
    } else {
        assert_true(r.has_context);
        assert_int_equal(r.context_len, strlen(context));
        assert_string_equal(r.context, context);
    }
}

static void check_body_error(const char *body, const char *code)
{
    body_scan r = scan_body(body);
    if (r.err != RK_EINVAL)
        print_error("body %s: err %d, want %s\n", body, r.err, code);
    assert_int_equal(r.err, RK_EINVAL);
    assert_non_null(r.code);
    assert_string_equal(r.code, code);
}

static void test_write_body_spans(void **state)
{
    (void)state;
    check_body("{\"value\":1}", "1", NULL);
    check_body("{\"value\": {\"a\": [1, 2 ,3]} , \"context\":\"abc\"}", "{\"a\": [1, 2 ,3]}",
               "abc");
    check_body("{\"context\":\"Zm9v-_\",\"value\":12345678901234567890}",
               "12345678901234567890", "Zm9v-_");
    check_body(" \n{ \"value\" :\t\"x y\" }\r\n ", "\"x y\"", NULL);
    check_body("{\"value\":\"a \\\"q\\\" \\u00e9 \xc3\xa9\"}", "\"a \\\"q\\\" \\u00e9 \xc3\xa9\"",
               NULL);
    check_body("{\"value\":[ 1 ,\n 2 ]}", "[ 1 ,\n 2 ]", NULL);
    check_body("{\"value\":-1.5e-7}", "-1.5e-7", NULL);
    check_body("{\"value\":null}", "null", NULL);
    check_body("{\"value\":false,\"context\":null}", "false", NULL);
    check_body("{\"value\":\"\"}", "\"\"", NULL);
    check_body("{\"value\":{\"context\":\"inner\"}}", "{\"context\":\"inner\"}", NULL);
    check_body("{\"other\":[1,{\"value\":2}],\"value\":3,\"more\":\"x\"}", "3", NULL);
    check_body("{\"context\":\"\",\"value\":true}", "true", "");

    /* No value member: value_len 0 (the handler answers missing_value). */
    check_body("{}", NULL, NULL);
    check_body("{\"other\":1}", NULL, NULL);
    check_body("{\"context\":\"abc\"}", NULL, "abc");
    check_body("{\"values\":1,\"Value\":2,\"valu\":3}", NULL, NULL);
}

static void test_write_body_errors(void **state)
{
    (void)state;
    check_body_error("{\"value\":1,\"context\":5}", "bad_context");
    check_body_error("{\"context\":true}", "bad_context");
    check_body_error("{\"context\":[\"abc\"]}", "bad_context");
    check_body_error("{\"context\":{\"a\":\"b\"}}", "bad_context");
    check_body_error("{\"context\":\"a\\nb\"}", "bad_context");
    check_body_error("{\"context\":\"\\u0041\"}", "bad_context");

    static const char *bad_json[] = {
        "", " ", "[1]", "\"value\"", "1", "null", "[{\"value\":1}]",
        "{", "{\"value\"", "{\"value\":", "{\"value\":1", "{\"value\":1,", "{\"value\":1,}",
        "{\"value\":1}}", "{\"value\":1}x", "{\"value\":1}{}", "{\"value\":01}", "{\"value\":1.}",
        "{\"value\" 1}", "{\"value\":1 \"context\":\"a\"}", "{value:1}", "{'value':1}",
        "{\"value\":tru}", "{\"value\":\"\x01\"}", "{\"value\":\"\xff\"}", "{\"value\":[1,]}",
        "{,\"value\":1}", "{\"value\":1,,\"context\":\"a\"}", "{\"value\":}",
        "{\"value\":1,\"x\":}", "{\"context\":\"abc\"",
    };
    for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++)
        check_body_error(bad_json[i], "bad_json");
}

/* Random valid values come back byte for byte from a body built around
 * them, white space inside included. */
static void test_write_body_random_values(void **state)
{
    (void)state;
    rng_seed_from_env("write_body_random_values");
    rk_buf v = {0}, body = {0};
    for (int i = 0; i < 2000; i++) {
        rk_buf_reset(&v);
        gen_value(&v, 1);
        rk_buf_reset(&body);
        rk_buf_appends(&body, "{");
        gen_ws(&body);
        if (rng_below(2))
            rk_buf_appends(&body, "\"context\":\"Zm9v\",");
        if (rng_below(2)) {
            rk_buf_appends(&body, "\"x\":");
            gen_value(&body, 1);
            rk_buf_appends(&body, ",");
        }
        rk_buf_appends(&body, "\"value\"");
        gen_ws(&body);
        rk_buf_appends(&body, ":");
        gen_ws(&body);
        size_t at = body.len;
        rk_buf_append(&body, v.data, v.len);
        gen_ws(&body);
        rk_buf_appends(&body, "}");

        char *copy = exact_copy(body.data, body.len);
        write_body wb;
        const char *code = NULL;
        rk_err err = json_scan_write_body(copy, body.len, &wb, &code);
        if (err != RK_OK)
            print_error("body %d rejected (%s): %s\n", i, code, body.data);
        assert_int_equal(err, RK_OK);
        assert_ptr_equal(wb.value, copy + at);
        assert_int_equal(wb.value_len, v.len);
        assert_memory_equal(wb.value, v.data, v.len);
        free(copy);
    }
    rk_buf_free(&v);
    rk_buf_free(&body);
}

/* ---- http_status_of -------------------------------------------------------------------- */

static void test_status_of(void **state)
{
    (void)state;
    static const struct {
        rk_err err;
        int status;
    } table[] = {
        {RK_OK, 200},         {RK_ENOTFOUND, 404}, {RK_EINVAL, 400},      {RK_ENOMEM, 500},
        {RK_EIO, 500},        {RK_ETIMEDOUT, 503}, {RK_EQUORUM, 503},     {RK_EPRECOND, 412},
        {RK_ETOOBIG, 413},    {RK_ECORRUPT, 500},  {RK_ECLOSED, 503},     {RK_EEXIST, 409},
        {RK_EPERM, 403},      {RK_EUNSUPPORTED, 501},
    };
    assert_int_equal(sizeof table / sizeof table[0], RK_ERR_COUNT); /* every value listed */
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (http_status_of(table[i].err) != table[i].status)
            print_error("%s -> %d, want %d\n", rk_errcode(table[i].err),
                        http_status_of(table[i].err), table[i].status);
        assert_int_equal(http_status_of(table[i].err), table[i].status);
    }
    assert_int_equal(http_status_of(RK_ERR_COUNT), 500);
    assert_int_equal(http_status_of((rk_err)1000), 500);
}

/* ---- metrics ------------------------------------------------------------------------------ */

/* The value of the sample line that starts with `series ` (name and
 * labels), or -1 when there is none. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

/* Checks the histogram of route: le bounds increase, counts are
 * cumulative, +Inf is last and equals _count and want_count. Returns the
 * number of buckets. */
static int check_histogram(const char *text, const char *route, uint64_t want_count)
{
    char prefix[128];
    int n = snprintf(prefix, sizeof prefix,
                     "ringkv_http_request_duration_seconds_bucket{route=\"%s\",le=\"", route);
    double last_le = -1, last_count = -1;
    bool saw_inf = false;
    int buckets = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, prefix, (size_t)n) != 0)
            continue;
        assert_false(saw_inf); /* +Inf is the last bucket */
        const char *le = p + n;
        const char *q = strchr(le, '"');
        assert_non_null(q);
        assert_memory_equal(q, "\"} ", 3);
        double count = strtod(q + 3, NULL);
        if (strncmp(le, "+Inf\"", 5) == 0) {
            saw_inf = true;
        } else {
            double bound = strtod(le, NULL);
            assert_true(bound > last_le);
            last_le = bound;
        }
        assert_true(count >= last_count);
        last_count = count;
        buckets++;
    }
    assert_true(saw_inf);
    assert_true(last_count == (double)want_count);
    snprintf(prefix, sizeof prefix, "ringkv_http_request_duration_seconds_count{route=\"%s\"}",
             route);
    assert_true(sample(text, prefix) == (double)want_count);
    return buckets;
}

/* The cumulative count of the bucket of route with bound le. */
static double bucket(const char *text, const char *route, const char *le)
{
    char series[160];
    snprintf(series, sizeof series,
             "ringkv_http_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"}", route, le);
    return sample(text, series);
}

static void test_metrics_render(void **state)
{
    (void)state;
    http_metrics *m = NULL;
    assert_int_equal(http_metrics_alloc(&m), RK_OK);
    http_metrics_record(m, MR_KEY_GET, 200, 10 * 1000);           /* 10 us */
    http_metrics_record(m, MR_KEY_GET, 200, 300 * 1000);          /* 300 us */
    http_metrics_record(m, MR_KEY_GET, 404, 2 * 1000 * 1000);     /* 2 ms */
    http_metrics_record(m, MR_KEY_GET, 503, 2000ull * 1000 * 1000); /* 2 s */
    http_metrics_record(m, MR_KEY_PUT, 201, 40 * 1000);
    http_metrics_record(m, MR_KEY_PUT, 412, 40 * 1000);
    http_metrics_record(m, MR_KEY_PUT, 200, 40 * 1000);

    rk_buf out = {0};
    assert_int_equal(rk_buf_appends(&out, "# before\n"), RK_OK);
    assert_int_equal(http_metrics_render(m, &out), RK_OK);
    const char *t = out.data;
    assert_memory_equal(t, "# before\n", 9); /* appends */
    assert_int_equal(strlen(t), out.len);
    assert_int_equal(t[out.len - 1], '\n');

    assert_non_null(strstr(t, "# TYPE ringkv_http_requests_total counter\n"));
    assert_non_null(strstr(t, "# TYPE ringkv_http_request_duration_seconds histogram\n"));
    assert_true(sample(t, "ringkv_http_requests_total{route=\"key_get\",status=\"2xx\"}") == 2);
    assert_true(sample(t, "ringkv_http_requests_total{route=\"key_get\",status=\"4xx\"}") == 1);
    assert_true(sample(t, "ringkv_http_requests_total{route=\"key_get\",status=\"5xx\"}") == 1);
    assert_true(sample(t, "ringkv_http_requests_total{route=\"key_put\",status=\"2xx\"}") == 2);
    assert_true(sample(t, "ringkv_http_requests_total{route=\"key_put\",status=\"4xx\"}") == 1);
    assert_true(sample(t, "ringkv_http_errors_total{route=\"key_get\"}") == 2);
    assert_true(sample(t, "ringkv_http_errors_total{route=\"key_put\"}") == 1);
    /* Routes and classes with nothing recorded are left out. */
    assert_true(sample(t, "ringkv_http_requests_total{route=\"key_put\",status=\"5xx\"}") == -1);
    assert_null(strstr(t, "route=\"health\""));

    int nb = check_histogram(t, "key_get", 4);
    assert_int_equal(check_histogram(t, "key_put", 3), nb);
    /* Each observation is in the first bucket whose bound is >= it. */
    assert_true(bucket(t, "key_get", "5e-05") == 1);     /* 10 us */
    assert_true(bucket(t, "key_get", "0.00025") == 1);
    assert_true(bucket(t, "key_get", "0.0005") == 2);    /* 300 us */
    assert_true(bucket(t, "key_get", "0.001") == 2);
    assert_true(bucket(t, "key_get", "0.0025") == 3);    /* 2 ms */
    assert_true(bucket(t, "key_get", "1") == 3);
    assert_true(bucket(t, "key_get", "+Inf") == 4);      /* 2 s */
    assert_true(bucket(t, "key_put", "5e-05") == 3);
    double sum = sample(t, "ringkv_http_request_duration_seconds_sum{route=\"key_get\"}");
    assert_true(sum > 2.00230 && sum < 2.00232);

    /* Counts go on from where they were. */
    http_metrics_record(m, MR_KEY_GET, 200, 1000);
    rk_buf_reset(&out);
    assert_int_equal(http_metrics_render(m, &out), RK_OK);
    assert_true(
        sample(out.data, "ringkv_http_requests_total{route=\"key_get\",status=\"2xx\"}") == 3);
    check_histogram(out.data, "key_get", 5);

    rk_buf_free(&out);
    http_metrics_free(m);
}

/* Odd inputs land somewhere sensible instead of out of bounds. */
static void test_metrics_odd_inputs(void **state)
{
    (void)state;
    http_metrics *m = NULL;
    assert_int_equal(http_metrics_alloc(&m), RK_OK);
    http_metrics_record(m, MR_COUNT, 200, 1);            /* unknown route */
    http_metrics_record(m, (metric_route)-1, 200, 1);
    http_metrics_record(m, MR_HEALTH, 0, 1);            /* no status */
    http_metrics_record(m, MR_HEALTH, 999, UINT64_MAX / 4);
    http_metrics_record(m, MR_HEALTH, 101, 0);
    rk_buf out = {0};
    assert_int_equal(http_metrics_render(m, &out), RK_OK);
    assert_true(
        sample(out.data, "ringkv_http_requests_total{route=\"unmatched\",status=\"2xx\"}") == 2);
    assert_true(sample(out.data, "ringkv_http_requests_total{route=\"health\",status=\"1xx\"}") ==
                1);
    check_histogram(out.data, "unmatched", 2);
    check_histogram(out.data, "health", 3);
    rk_buf_free(&out);
    http_metrics_free(m);
}

/* Prometheus buckets hold observations <= le. 50.5 us is more than 50 us,
 * so it belongs to the 100 us bucket, not to the 50 us one; 50 us exactly
 * belongs to the 50 us one. */
static void test_metrics_bucket_bounds_are_exact(void **state)
{
    (void)state;
    http_metrics *m = NULL;
    assert_int_equal(http_metrics_alloc(&m), RK_OK);
    http_metrics_record(m, MR_KEY_GET, 200, 50000);   /* 50 us: le 5e-05 */
    http_metrics_record(m, MR_KEY_GET, 200, 50500);   /* 50.5 us: le 0.0001 */
    http_metrics_record(m, MR_KEY_GET, 200, 1000000999); /* 1.000001 s: +Inf */
    rk_buf out = {0};
    assert_int_equal(http_metrics_render(m, &out), RK_OK);
    double b50 = bucket(out.data, "key_get", "5e-05");
    double b100 = bucket(out.data, "key_get", "0.0001");
    double b1s = bucket(out.data, "key_get", "1");
    rk_buf_free(&out);
    http_metrics_free(m);
    if (b50 != 1 || b1s != 2)
        print_error("le=5e-05 holds %.0f (want 1), le=1 holds %.0f (want 2)\n", b50, b1s);
    assert_true(b100 == 2);
    assert_true(b50 == 1);
    assert_true(b1s == 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_percent_decode_capacity),
        cmocka_unit_test(test_route_system),
        cmocka_unit_test(test_route_records),
        cmocka_unit_test(test_route_unknown),
        cmocka_unit_test(test_route_bad_names),
        cmocka_unit_test(test_route_key_length),
        cmocka_unit_test(test_json_accepts),
        cmocka_unit_test(test_json_rejects),
        cmocka_unit_test(test_json_depth_limit_allows_128),
        cmocka_unit_test(test_json_depth_limit_rejects_129),
        cmocka_unit_test(test_json_random_valid_documents),
        cmocka_unit_test(test_json_random_mutations),
        cmocka_unit_test(test_write_body_spans),
        cmocka_unit_test(test_write_body_errors),
        cmocka_unit_test(test_write_body_random_values),
        cmocka_unit_test(test_status_of),
        cmocka_unit_test(test_metrics_render),
        cmocka_unit_test(test_metrics_odd_inputs),
        cmocka_unit_test(test_metrics_bucket_bounds_are_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
