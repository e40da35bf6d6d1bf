/* test_http.c - unit tests of the gateway's pure parts: percent-decoding,
 * routes, write bodies, the error-to-status table, metrics text, the sync
 * report and the body and member lookup of POST /cluster/remove; then the
 * gateway of a real one-member cluster (node_fixture.h) on a loopback port,
 * which is what a node started alone is. The JSON scanner under write
 * bodies is tested in test_common.c.
 *
 * Inputs are copied into heap buffers of their exact length (no NUL after
 * them), so a read past the end shows up under the address sanitizer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cJSON.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "http/http_internal.h"
#include "inputs.h"
#include "node_fixture.h"
#include "support.h"

/* ---- http_percent_decode --------------------------------------------------------- */

static rk_err decode(const char *src, size_t cap, char *dst, size_t *n)
{
    size_t len = strlen(src);
    char *copy = exact_copy(src, len);
    rk_err err = http_percent_decode(copy, len, dst, cap, n);
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
    check_decodes("a+b", "a+b", 3); /* '+' is not a space in paths */
    check_decodes("%c3%A9", "\xc3\xa9", 2);
    check_decodes("%00", "\0", 1); /* decodes; the key check rejects it */
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

/* ---- http_route_find --------------------------------------------------------- */

typedef struct matched {
    rk_err err;
    route_match m;
    const char *code;
    char rest[64]; /* m.rest copied out, since it points into the path */
} matched;

/* A route by the metric of its pattern's first row: "key_get" for both key
 * patterns, "keys_list" for /{table}/keys; "none" when nothing matched. */
static const char *route_name(const matched *r)
{
    return r->m.route ? r->m.route->metric : "none";
}

/* rest is a C string into the request's URI (http_handle_ui reads it up to the
 * NUL), so the path handed over is NUL-terminated; a second run on an
 * exact-length copy checks that nothing else reads past len. */
static matched match(const char *path)
{
    matched r = {.code = NULL};
    size_t len = strlen(path);
    char *copy = exact_copy(path, len);
    route_match exact;
    const char *exact_code = NULL;
    rk_err exact_err =
        http_route_find(http_routes, http_route_count, copy, len, &exact, &exact_code);
    free(copy);

    r.err = http_route_find(http_routes, http_route_count, path, len, &r.m, &r.code);
    assert_int_equal(exact_err, r.err);
    assert_int_equal(exact.route, r.m.route);
    assert_true(exact_code == r.code || strcmp(exact_code, r.code) == 0);
    if (r.m.rest != NULL) {
        assert_string_equal(route_name(&r), "ui");
        assert_true(strlen(r.m.rest) < sizeof r.rest);
        strcpy(r.rest, r.m.rest);
        r.m.rest = r.rest;
    }
    return r;
}

static void check_route(const char *path, const char *route, const char *table, const char *key)
{
    matched r = match(path);
    if (r.err != RK_OK || strcmp(route_name(&r), route) != 0)
        print_error("path \"%s\": err %d route %s, want route %s\n", path, r.err, route_name(&r),
                    route);
    assert_int_equal(r.err, RK_OK);
    assert_string_equal(route_name(&r), route);
    assert_int_equal(r.m.table_len, strlen(table));
    assert_string_equal(r.m.table, table);
    assert_int_equal(r.m.key_len, strlen(key));
    assert_string_equal(r.m.key, key);
}

static void check_route_error(const char *path, const char *code)
{
    matched r = match(path);
    if (r.err != RK_EINVAL)
        print_error("path \"%.80s\": err %d route %s, want RK_EINVAL %s\n", path, r.err,
                    route_name(&r), code);
    assert_int_equal(r.err, RK_EINVAL);
    assert_non_null(r.code);
    assert_string_equal(r.code, code);
}

static void test_route_system(void **state)
{
    (void)state;
    check_route("/health", "health", "", "");
    check_route("/metrics", "metrics", "", "");
    check_route("/membership", "membership", "", "");
    check_route("/cluster", "cluster", "", "");
    check_route("/cluster/leave", "cluster_leave", "", "");
    check_route("/cluster/remove", "cluster_remove", "", "");
    check_route("/cluster/repair", "cluster_repair", "", "");
    check_route("/cluster/hints/drop", "hints_drop", "", "");
    /* They shadow nothing: a table named "cluster" keeps its routes. */
    check_route("/cluster/keys", "keys_list", "cluster", "");
    check_route("/cluster/key/leave", "key_get", "cluster", "leave");
    check_route("/auth/bob", "auth", "", "bob");
    check_route("/auth/b%C3%B6b", "auth", "",
                "b\xc3\xb6"
                "b");

    /* "/ui" and "/" have no rest: the handler redirects them to /ui/. */
    matched r = match("/ui");
    assert_int_equal(r.err, RK_OK);
    assert_string_equal(route_name(&r), "ui");
    assert_null(r.m.rest);
    r = match("/ui/x.js");
    assert_string_equal(route_name(&r), "ui");
    assert_string_equal(r.m.rest, "/x.js");
    r = match("/ui/");
    assert_string_equal(route_name(&r), "ui");
    assert_string_equal(r.m.rest, "/");
    r = match("/");
    assert_int_equal(r.err, RK_OK);
    assert_string_equal(route_name(&r), "ui");
    assert_null(r.m.rest);
}

static void test_route_records(void **state)
{
    (void)state;
    check_route("/key/abc", "key_get", "default", "abc");
    check_route("/key/a/b", "key_get", "default", "a/b");
    check_route("/t/key/abc", "key_get", "t", "abc");
    check_route("/t/key/a%2Fb", "key_get", "t", "a/b");
    check_route("/t/key/a/b", "key_get", "t", "a/b");
    check_route("/t/key/a+b", "key_get", "t", "a+b");
    check_route("/t/key/%20", "key_get", "t", " ");
    check_route("/t/key/key", "key_get", "t", "key");
    check_route("/key/key/key", "key_get", "default", "key/key");
    check_route("/t/key/caf%C3%A9", "key_get", "t", "caf\xc3\xa9");
    check_route("/t/key/caf\xc3\xa9", "key_get", "t", "caf\xc3\xa9");
    check_route("/A-z_0.9/key/k", "key_get", "A-z_0.9", "k");
    check_route("/_sys/key/k", "key_get", "_sys", "k"); /* reserved is the caller's call */
    check_route("/%74/key/k", "key_get", "t", "k");     /* an escaped table is decoded */
    check_route("/t/keys", "keys_list", "t", "");
    check_route("/t/store", "store", "t", "");
    check_route("/t/subscribe/k", "subscribe", "t", "k");
    check_route("/t/subscribe/a%2Fb", "subscribe", "t", "a/b");
    check_route("/t/subscribe", "subscribe", "t", ""); /* the whole table, or ?key= */
    /* Route words are table names too. */
    check_route("/keys/keys", "keys_list", "keys", "");
    check_route("/health/key/x", "key_get", "health", "x");
}

static void test_route_unknown(void **state)
{
    (void)state;
    const char *paths[] = {
        "",
        "health",
        "/healthz",
        "/health/",
        "/HEALTH",
        "/metric",
        "/uix",
        "/t",
        "/t/",
        "/t/other",
        "/t/keys/",
        "/t/keys/x",
        "/t/store/x",
        "/t/key",
        "/key",
        "/auth",
        "//",
        "/t//key/x",
        "/cluster/",
        "/cluster/leave/",
        "/cluster/Leave",
        "/cluster/hints",
        "/cluster/hints/",
        "/cluster/hints/drop/",
        "/cluster/hints/dropx",
        "/cluster/removex",
        "/clusterx/leave",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        matched r = match(paths[i]);
        if (r.err != RK_OK || r.m.route != NULL)
            print_error("path \"%s\": err %d route %s, want none\n", paths[i], r.err,
                        route_name(&r));
        assert_int_equal(r.err, RK_OK);
        assert_null(r.m.route);
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
    check_route(path, "key_get", table64, "k");
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
    check_route(path, "key_get", "t", key); /* 1024 bytes */
    snprintf(path, sizeof path, "/key/%s", key);
    check_route(path, "key_get", "default", key);

    /* 1024 bytes written as 3072 escaped ones: the decoded length counts. */
    strcpy(path, "/t/key/");
    for (int i = 0; i < 1024; i++)
        strcat(path, "%6B");
    check_route(path, "key_get", "t", key);

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
    check_route(path, "key_get", "t", key);
    strcpy(key + 1022, "\xe2\x82\xac");
    snprintf(path, sizeof path, "/t/key/%s", key);
    check_route_error(path, "invalid_key");
}

/* ---- http_json_scan_write_body ------------------------------------------------------------ */

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
    r.err = http_json_scan_write_body(copy, len, &wb, &r.code);
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
    check_body("{\"context\":\"Zm9v-_\",\"value\":12345678901234567890}", "12345678901234567890",
               "Zm9v-_");
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
        "",
        " ",
        "[1]",
        "\"value\"",
        "1",
        "null",
        "[{\"value\":1}]",
        "{",
        "{\"value\"",
        "{\"value\":",
        "{\"value\":1",
        "{\"value\":1,",
        "{\"value\":1,}",
        "{\"value\":1}}",
        "{\"value\":1}x",
        "{\"value\":1}{}",
        "{\"value\":01}",
        "{\"value\":1.}",
        "{\"value\" 1}",
        "{\"value\":1 \"context\":\"a\"}",
        "{value:1}",
        "{'value':1}",
        "{\"value\":tru}",
        "{\"value\":\"\x01\"}",
        "{\"value\":\"\xff\"}",
        "{\"value\":[1,]}",
        "{,\"value\":1}",
        "{\"value\":1,,\"context\":\"a\"}",
        "{\"value\":}",
        "{\"value\":1,\"x\":}",
        "{\"context\":\"abc\"",
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
        rk_err err = http_json_scan_write_body(copy, body.len, &wb, &code);
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

/* Random damage to valid documents, as a write body's value: no crash, no
 * read past the end (see the sanitizer build), and when the body is
 * accepted the value span lies inside it. */
static void test_write_body_random_mutations(void **state)
{
    (void)state;
    rng_seed_from_env("write_body_random_mutations");
    rk_buf doc = {0}, mut = {0}, body = {0};
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        gen_document(&doc);
        gen_mutation(&doc, &mut);
        rk_buf_reset(&body);
        rk_buf_appends(&body, "{\"value\":");
        rk_buf_append(&body, mut.data, mut.len);
        rk_buf_appends(&body, "}");
        char *copy = exact_copy(body.data, body.len);
        write_body wb;
        const char *code = NULL;
        if (http_json_scan_write_body(copy, body.len, &wb, &code) == RK_OK) {
            assert_true(wb.value == NULL ||
                        (wb.value >= copy && wb.value + wb.value_len <= copy + body.len));
            accepted++;
        } else {
            assert_non_null(code);
        }
        free(copy);
    }
    printf("# write_body_random_mutations: %d of 20000 bodies still valid\n", accepted);
    rk_buf_free(&doc);
    rk_buf_free(&mut);
    rk_buf_free(&body);
}

/* Members are taken in order: a bad context fails the body even when a
 * good one or broken JSON follows, and "context": null skips, not resets. */
static void test_write_body_member_order(void **state)
{
    (void)state;
    check_body("{\"context\":\"abc\",\"context\":null,\"value\":1}", "1", "abc");
    check_body("{\"context\":null,\"context\":\"abc\",\"value\":1}", "1", "abc");
    check_body("{\"context\":\"abc\",\"context\":\"def\",\"value\":1}", "1", "def");
    check_body("{\"value\":1,\"value\":[2]}", "[2]", NULL);
    check_body_error("{\"context\":5,\"context\":\"abc\",\"value\":1}", "bad_context");
    check_body_error("{\"context\":\"abc\",\"context\":5}", "bad_context");
    check_body_error("{\"context\":5,\"value\":", "bad_context");
    check_body_error("{\"value\":,\"context\":5}", "bad_json");
}

/* {"value":[[...1...]]} with `levels` arrays around the 1. */
static void body_of_depth(rk_buf *b, int levels)
{
    rk_buf_reset(b);
    rk_buf_appends(b, "{\"value\":");
    for (int i = 0; i < levels; i++)
        rk_buf_appends(b, "[");
    rk_buf_appends(b, "1");
    for (int i = 0; i < levels; i++)
        rk_buf_appends(b, "]");
    rk_buf_appends(b, "}");
}

/* The body is one level of the 128: its value may open 127 more. */
static void test_write_body_depth(void **state)
{
    (void)state;
    rk_buf b = {0};
    body_of_depth(&b, 127);
    body_scan r = scan_body(b.data);
    assert_int_equal(r.err, RK_OK);
    assert_int_equal(r.value_len, 2 * 127 + 1);
    body_of_depth(&b, 128);
    check_body_error(b.data, "bad_json");
    body_of_depth(&b, 100000);
    check_body_error(b.data, "bad_json");
    rk_buf_free(&b);
}

/* ---- http_status_of -------------------------------------------------------------------- */

static void test_status_of(void **state)
{
    (void)state;
    static const struct {
        rk_err err;
        int status;
    } table[] = {
        {RK_OK, 200},      {RK_ENOTFOUND, 404},    {RK_EINVAL, 400},  {RK_ENOMEM, 500},
        {RK_EIO, 500},     {RK_ETIMEDOUT, 503},    {RK_EQUORUM, 503}, {RK_EPRECOND, 412},
        {RK_ETOOBIG, 413}, {RK_ECORRUPT, 500},     {RK_ECLOSED, 503}, {RK_EEXIST, 409},
        {RK_EPERM, 403},   {RK_EUNSUPPORTED, 501}, {RK_EBUSY, 409},
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
    assert_int_equal(http_metrics_alloc(http_routes, http_route_count, &m), RK_OK);
    http_metrics_record(m, "key_get", 200, 10 * 1000);             /* 10 us */
    http_metrics_record(m, "key_get", 200, 300 * 1000);            /* 300 us */
    http_metrics_record(m, "key_get", 404, 2 * 1000 * 1000);       /* 2 ms */
    http_metrics_record(m, "key_get", 503, 2000ull * 1000 * 1000); /* 2 s */
    http_metrics_record(m, "key_put", 201, 40 * 1000);
    http_metrics_record(m, "key_put", 412, 40 * 1000);
    http_metrics_record(m, "key_put", 200, 40 * 1000);

    reply_buf out = {0};
    http_reply_add_str(&out, "# before\n");
    http_metrics_render(m, &out);
    assert_int_equal(out.err, RK_OK);
    const char *t = out.buf.data;
    assert_memory_equal(t, "# before\n", 9); /* appends */
    assert_int_equal(strlen(t), out.buf.len);
    assert_int_equal(t[out.buf.len - 1], '\n');

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
    assert_true(bucket(t, "key_get", "5e-05") == 1); /* 10 us */
    assert_true(bucket(t, "key_get", "0.00025") == 1);
    assert_true(bucket(t, "key_get", "0.0005") == 2); /* 300 us */
    assert_true(bucket(t, "key_get", "0.001") == 2);
    assert_true(bucket(t, "key_get", "0.0025") == 3); /* 2 ms */
    assert_true(bucket(t, "key_get", "1") == 3);
    assert_true(bucket(t, "key_get", "+Inf") == 4); /* 2 s */
    assert_true(bucket(t, "key_put", "5e-05") == 3);
    double sum = sample(t, "ringkv_http_request_duration_seconds_sum{route=\"key_get\"}");
    assert_true(sum > 2.00230 && sum < 2.00232);

    /* Counts go on from where they were. */
    http_metrics_record(m, "key_get", 200, 1000);
    rk_buf_reset(&out.buf);
    http_metrics_render(m, &out);
    assert_int_equal(out.err, RK_OK);
    assert_true(
        sample(out.buf.data, "ringkv_http_requests_total{route=\"key_get\",status=\"2xx\"}") == 3);
    check_histogram(out.buf.data, "key_get", 5);

    http_reply_buf_free(&out);
    http_metrics_free(m);
}

/* Odd inputs land somewhere sensible instead of out of bounds. */
static void test_metrics_odd_inputs(void **state)
{
    (void)state;
    http_metrics *m = NULL;
    assert_int_equal(http_metrics_alloc(http_routes, http_route_count, &m), RK_OK);
    http_metrics_record(m, "nonsense", 200, 1); /* unknown route */
    http_metrics_record(m, NULL, 200, 1);
    http_metrics_record(m, "health", 0, 1); /* no status */
    http_metrics_record(m, "health", 999, UINT64_MAX / 4);
    http_metrics_record(m, "health", 101, 0);
    reply_buf out = {0};
    http_metrics_render(m, &out);
    assert_int_equal(out.err, RK_OK);
    const char *t = out.buf.data;
    assert_true(sample(t, "ringkv_http_requests_total{route=\"unmatched\",status=\"2xx\"}") == 2);
    assert_true(sample(t, "ringkv_http_requests_total{route=\"health\",status=\"1xx\"}") == 1);
    check_histogram(out.buf.data, "unmatched", 2);
    check_histogram(out.buf.data, "health", 3);
    http_reply_buf_free(&out);
    http_metrics_free(m);
}

/* Prometheus buckets hold observations <= le. 50.5 us is more than 50 us,
 * so it belongs to the 100 us bucket, not to the 50 us one; 50 us exactly
 * belongs to the 50 us one. */
static void test_metrics_bucket_bounds_are_exact(void **state)
{
    (void)state;
    http_metrics *m = NULL;
    assert_int_equal(http_metrics_alloc(http_routes, http_route_count, &m), RK_OK);
    http_metrics_record(m, "key_get", 200, 50000);      /* 50 us: le 5e-05 */
    http_metrics_record(m, "key_get", 200, 50500);      /* 50.5 us: le 0.0001 */
    http_metrics_record(m, "key_get", 200, 1000000999); /* 1.000001 s: +Inf */
    reply_buf out = {0};
    http_metrics_render(m, &out);
    assert_int_equal(out.err, RK_OK);
    double b50 = bucket(out.buf.data, "key_get", "5e-05");
    double b100 = bucket(out.buf.data, "key_get", "0.0001");
    double b1s = bucket(out.buf.data, "key_get", "1");
    http_reply_buf_free(&out);
    http_metrics_free(m);
    if (b50 != 1 || b1s != 2)
        print_error("le=5e-05 holds %.0f (want 1), le=1 holds %.0f (want 2)\n", b50, b1s);
    assert_true(b100 == 2);
    assert_true(b50 == 1);
    assert_true(b1s == 2);
}

/* ---- the sync service's report ------------------------------------------------------------- */

/* The counters of struct sync_stats, in its order, as /cluster names them. */
static const char *const sync_fields[] = {
    "ranges_pending",   "handoff_keys_sent", "handoff_bytes_sent", "handoff_keys_dropped",
    "keys_received",    "bytes_received",    "ae_exchanges",       "ae_keys_compared",
    "ae_keys_repaired", "ae_bytes_sent",     "tombstones_purged",  "hints_delivered",
    "hint_bytes_sent",
};
#define N_SYNC_FIELDS (sizeof sync_fields / sizeof sync_fields[0])

/* Counter i holds (i + 1) * 1000003, so a value printed for the wrong
 * field, or cut to 32 bits, shows. */
static sync_stats numbered_stats(void)
{
    sync_stats st = {.leaving = true};
    uint64_t *field = &st.ranges_pending;
    for (size_t i = 0; i < N_SYNC_FIELDS; i++)
        field[i] = (uint64_t)(i + 1) * 1000003u + ((uint64_t)1 << 40);
    return st;
}

static void test_sync_stats_layout(void **state)
{
    (void)state;
    /* If this fails, struct sync_stats changed: sync_report.c's table (and
     * sync_fields above, and docs/api.md) must follow. */
    assert_int_equal(offsetof(sync_stats, leaving), N_SYNC_FIELDS * sizeof(uint64_t));
    assert_int_equal(offsetof(sync_stats, hint_bytes_sent), (N_SYNC_FIELDS - 1) * sizeof(uint64_t));
}

static void test_sync_json(void **state)
{
    (void)state;
    sync_stats st = numbered_stats();
    reply_buf b = {0};
    http_reply_add_str(&b, "x");
    http_sync_append_json(&st, &b);
    assert_int_equal(b.err, RK_OK);
    assert_int_equal(b.buf.data[0], 'x'); /* appends */
    cJSON *j = cJSON_ParseWithLength(b.buf.data + 1, b.buf.len - 1);
    assert_true(cJSON_IsObject(j));
    assert_int_equal(cJSON_GetArraySize(j), N_SYNC_FIELDS + 1);
    const cJSON *item = j->child;
    const uint64_t *field = &st.ranges_pending;
    for (size_t i = 0; i < N_SYNC_FIELDS; i++, item = item->next) {
        assert_string_equal(item->string, sync_fields[i]); /* in the struct's order */
        assert_true(cJSON_IsNumber(item));
        assert_true(item->valuedouble == (double)field[i]);
    }
    assert_string_equal(item->string, "leaving");
    assert_true(cJSON_IsTrue(item));
    cJSON_Delete(j);

    /* All zero and not leaving. */
    rk_buf_reset(&b.buf);
    sync_stats zero = {0};
    http_sync_append_json(&zero, &b);
    assert_int_equal(b.err, RK_OK);
    assert_non_null(strstr(b.buf.data, "\"ranges_pending\":0,"));
    assert_non_null(strstr(b.buf.data, "\"leaving\":false}"));
    http_reply_buf_free(&b);
}

static void test_sync_metrics(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *type;
        size_t field; /* index in sync_fields */
    } want[] = {
        {"ringkv_sync_ranges_pending", "gauge", 0},
        {"ringkv_handoff_keys_sent_total", "counter", 1},
        {"ringkv_handoff_bytes_sent_total", "counter", 2},
        {"ringkv_handoff_keys_dropped_total", "counter", 3},
        {"ringkv_sync_keys_received_total", "counter", 4},
        {"ringkv_sync_bytes_received_total", "counter", 5},
        {"ringkv_anti_entropy_exchanges_total", "counter", 6},
        {"ringkv_anti_entropy_keys_compared_total", "counter", 7},
        {"ringkv_anti_entropy_keys_repaired_total", "counter", 8},
        {"ringkv_anti_entropy_bytes_sent_total", "counter", 9},
        {"ringkv_tombstones_purged_total", "counter", 10},
        /* 11, hints_delivered, is ringkv_hints_total{event="delivered"} */
        {"ringkv_hint_bytes_sent_total", "counter", 12},
    };
    sync_stats st = numbered_stats();
    const uint64_t *field = &st.ranges_pending;
    reply_buf b = {0};
    http_sync_render_metrics(&st, &b);
    assert_int_equal(b.err, RK_OK);
    const char *t = b.buf.data;
    assert_int_equal(strlen(t), b.buf.len);
    assert_int_equal(t[b.buf.len - 1], '\n');
    size_t samples = 0;
    for (const char *p = t; *p; p = strchr(p, '\n') + 1)
        samples += *p != '#';
    assert_int_equal(samples, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char line[160];
        snprintf(line, sizeof line, "# TYPE %s %s\n", want[i].name, want[i].type);
        assert_non_null(strstr(t, line));
        snprintf(line, sizeof line, "# HELP %s ", want[i].name);
        assert_non_null(strstr(t, line));
        if (sample(t, want[i].name) != (double)field[want[i].field])
            print_error("%s is %f, want %llu\n", want[i].name, sample(t, want[i].name),
                        (unsigned long long)field[want[i].field]);
        assert_true(sample(t, want[i].name) == (double)field[want[i].field]);
    }
    http_reply_buf_free(&b);
}

/* ---- POST /cluster/remove: its body and the member it names ------------------------------ */

static rk_err parse_node(const char *body, char *dst, size_t cap, const char **code)
{
    size_t len = strlen(body);
    char *copy = len ? exact_copy(body, len) : NULL;
    rk_err err = http_admin_parse_node_body(copy, len, dst, cap, code);
    free(copy);
    return err;
}

static void check_node_body(const char *body, const char *want)
{
    char dst[CLUSTER_NAME_MAX + 1];
    const char *code = NULL;
    assert_int_equal(parse_node(body, dst, sizeof dst, &code), RK_OK);
    assert_string_equal(dst, want);
    assert_null(code);
}

static void check_node_body_rejects(const char *body, rk_err err, const char *code)
{
    char dst[CLUSTER_NAME_MAX + 1] = "untouched";
    const char *got = NULL;
    if (parse_node(body, dst, sizeof dst, &got) != err)
        print_error("body \"%.60s\": want %s\n", body, rk_errcode(err));
    assert_int_equal(parse_node(body, dst, sizeof dst, &got), err);
    assert_string_equal(dst, "untouched");
    if (code != NULL)
        assert_string_equal(got, code);
}

static void test_remove_body(void **state)
{
    (void)state;
    check_node_body("{\"node\":\"n1\"}", "n1");
    check_node_body(" { \"node\" : \"0123456789abcdef\" } ", "0123456789abcdef");
    check_node_body("{\"x\":[1,{}],\"node\":\"n\\u00e9\"}", "n\xc3\xa9");

    check_node_body_rejects("", RK_EINVAL, "bad_json");
    check_node_body_rejects("node=n1", RK_EINVAL, "bad_json");
    check_node_body_rejects("\"n1\"", RK_EINVAL, "bad_json");
    check_node_body_rejects("[\"n1\"]", RK_EINVAL, "bad_json");
    check_node_body_rejects("{\"node\":\"n1\"", RK_EINVAL, "bad_json");
    check_node_body_rejects("{\"node\":\"n1\"} {}", RK_EINVAL, "bad_json");
    check_node_body_rejects("{}", RK_EINVAL, "missing_node");
    check_node_body_rejects("{\"node\":\"\"}", RK_EINVAL, "missing_node");
    check_node_body_rejects("{\"node\":7}", RK_EINVAL, "missing_node");
    check_node_body_rejects("{\"node\":null}", RK_EINVAL, "missing_node");
    check_node_body_rejects("{\"Node\":\"n1\"}", RK_EINVAL, "missing_node");

    /* 64 bytes is the longest name; one more can name nobody. */
    char body[128], name[CLUSTER_NAME_MAX + 2];
    memset(name, 'n', CLUSTER_NAME_MAX);
    name[CLUSTER_NAME_MAX] = '\0';
    snprintf(body, sizeof body, "{\"node\":\"%s\"}", name);
    check_node_body(body, name);
    strcat(name, "n");
    snprintf(body, sizeof body, "{\"node\":\"%s\"}", name);
    check_node_body_rejects(body, RK_ENOTFOUND, NULL);

    /* Deep nesting is refused before cJSON would recurse into it. */
    char *deep = malloc(4001);
    assert_non_null(deep);
    memset(deep, '[', 4000);
    deep[4000] = '\0';
    check_node_body_rejects(deep, RK_EINVAL, "bad_json");
    free(deep);
}

#define ID_NAMED_LIKE_ONE 0x0123456789abcdefull

static const cluster_view_member view_members[] = {
    {.id = 0x1, .name = "a", .status = CLUSTER_MEMBER, .liveness = CLUSTER_ALIVE},
    {.id = 0x2, .name = "b", .status = CLUSTER_MEMBER, .liveness = CLUSTER_DOWN},
    {.id = 0x3, .name = "dup", .status = CLUSTER_MEMBER},
    {.id = 0x4, .name = "dup", .status = CLUSTER_JOINING},
    {.id = 0x5, .name = "old", .status = CLUSTER_REMOVED}, /* replaced by 0x6 */
    {.id = 0x6, .name = "old", .status = CLUSTER_MEMBER},
    {.id = 0x7, .name = "gone", .status = CLUSTER_REMOVED},
    {.id = 0x8, .name = "gone", .status = CLUSTER_REMOVED},
    {.id = 0x9, .name = "left", .status = CLUSTER_REMOVED},
    {.id = ID_NAMED_LIKE_ONE, .name = "0000000000000001", .status = CLUSTER_MEMBER},
};

static rk_err find(const char *text, uint64_t *id)
{
    cluster_view v = {
        .self_id = 1,
        .count = sizeof view_members / sizeof view_members[0],
        .members = view_members,
    };
    const cluster_view_member *m = NULL;
    rk_err err = http_admin_find_member(&v, text, &m);
    assert_true((err == RK_OK) == (m != NULL)); /* set on success only */
    if (m != NULL)
        *id = m->id;
    return err;
}

static void check_finds(const char *text, uint64_t want)
{
    uint64_t id = 0;
    if (find(text, &id) != RK_OK || id != want)
        print_error("\"%s\": found %llx, want %llx\n", text, (unsigned long long)id,
                    (unsigned long long)want);
    assert_int_equal(find(text, &id), RK_OK);
    assert_int_equal(id, want);
}

static void test_remove_find_member(void **state)
{
    (void)state;
    uint64_t id = 0;
    check_finds("a", 0x1);
    check_finds("b", 0x2);
    check_finds("0000000000000002", 0x2);               /* by id */
    check_finds("0123456789ABCDEF", ID_NAMED_LIKE_ONE); /* hex in either case */
    check_finds("0000000000000001", ID_NAMED_LIKE_ONE); /* a name wins over an id */
    check_finds("0000000000000003", 0x3);               /* an id is never ambiguous */
    check_finds("old", 0x6);                            /* the one still in the cluster */
    check_finds("left", 0x9);                           /* removed again: a no-op */

    assert_int_equal(find("dup", &id), RK_EEXIST);
    assert_int_equal(find("gone", &id), RK_EEXIST);
    assert_int_equal(find("A", &id), RK_ENOTFOUND); /* names are exact */
    assert_int_equal(find("zzz", &id), RK_ENOTFOUND);
    assert_int_equal(find("000000000000000f", &id), RK_ENOTFOUND);
    assert_int_equal(find("1", &id), RK_ENOTFOUND); /* 16 digits or none */
    assert_int_equal(find("00000000000000001", &id), RK_ENOTFOUND);
    assert_int_equal(find("0x00000000000001", &id), RK_ENOTFOUND);
    assert_int_equal(find("000000000000000g", &id), RK_ENOTFOUND);
    assert_int_equal(id, 0);

    cluster_view empty = {.self_id = 1};
    const cluster_view_member *m = NULL;
    assert_int_equal(http_admin_find_member(&empty, "a", &m), RK_ENOTFOUND);
    assert_null(m);
}

/* ---- the route table --------------------------------------------------------------------- */

/* The row that serves method on path, or NULL for a 405; *allow gets the
 * Allow header's value. */
static const http_route *route_of(const char *path, unsigned method, char *allow, size_t cap)
{
    matched r = match(path);
    assert_int_equal(r.err, RK_OK);
    assert_non_null(r.m.route);
    const http_route *end = http_routes + http_route_count;
    http_route_allow(r.m.route, end, allow, cap);
    const http_route *row = http_route_for_method(r.m.route, end, method);
    return row != NULL && row->handler != NULL ? row : NULL;
}

static void check_method(const char *path, unsigned method, http_handler *handler,
                         const char *metric, const char *allow)
{
    char got_allow[64];
    const http_route *row = route_of(path, method, got_allow, sizeof got_allow);
    if ((row ? row->handler : NULL) != handler || strcmp(got_allow, allow) != 0)
        print_error("%s (method bit %u): row %s, Allow \"%s\"; want %s, \"%s\"\n", path, method,
                    row ? row->metric : "405", got_allow, metric ? metric : "405", allow);
    assert_true((row ? row->handler : NULL) == handler);
    if (row != NULL)
        assert_string_equal(row->metric, metric);
    assert_string_equal(got_allow, allow);
}

static void test_route_table_methods(void **state)
{
    (void)state;
    const char *key_allow = "GET, PUT, POST, DELETE";
    const char *key_paths[] = {"/t/key/k", "/key/k"};
    for (size_t i = 0; i < 2; i++) {
        check_method(key_paths[i], HTTP_M_GET, http_handle_key_get, "key_get", key_allow);
        check_method(key_paths[i], HTTP_M_PUT, http_handle_key_put, "key_put", key_allow);
        check_method(key_paths[i], HTTP_M_POST, http_handle_key_put, "key_put", key_allow);
        check_method(key_paths[i], HTTP_M_DELETE, http_handle_key_delete, "key_delete", key_allow);
        check_method(key_paths[i], HTTP_M_HEAD, NULL, NULL, key_allow);
        check_method(key_paths[i], HTTP_M_OTHER, NULL, NULL, key_allow);
    }
    check_method("/t/keys", HTTP_M_GET, http_handle_keys_list, "keys_list", "GET, POST");
    check_method("/t/keys", HTTP_M_POST, http_handle_keys_batch, "keys_batch", "GET, POST");
    check_method("/t/keys", HTTP_M_DELETE, NULL, NULL, "GET, POST");
    check_method("/t/store", HTTP_M_GET, http_handle_store, "store", "GET");
    check_method("/t/store", HTTP_M_POST, NULL, NULL, "GET");
    /* HEAD is served with GET where GET is, and never listed in Allow. */
    check_method("/health", HTTP_M_HEAD, http_handle_health, "health", "GET");
    check_method("/metrics", HTTP_M_GET, http_handle_metrics, "metrics", "GET");
    check_method("/membership", HTTP_M_PUT, NULL, NULL, "GET");
    check_method("/cluster", HTTP_M_GET, http_handle_cluster, "cluster", "GET");
    check_method("/cluster/leave", HTTP_M_POST, http_handle_cluster_leave, "cluster_leave", "POST");
    check_method("/cluster/remove", HTTP_M_GET, NULL, NULL, "POST");
    check_method("/cluster/hints/drop", HTTP_M_POST, http_handle_hints_drop, "hints_drop", "POST");
    check_method("/ui/app.js", HTTP_M_GET, http_handle_ui, "ui", "GET");
    check_method("/", HTTP_M_DELETE, NULL, NULL, "GET");
    /* Streams are read with GET alone (a browser's EventSource). */
    check_method("/t/subscribe/k", HTTP_M_GET, http_handle_subscribe, "subscribe", "GET");
    check_method("/t/subscribe", HTTP_M_POST, NULL, NULL, "GET");
    check_method("/auth/bob", HTTP_M_PUT, http_handle_auth, "auth", "GET, PUT, POST, DELETE");

    assert_int_equal(http_method_bit("GET"), HTTP_M_GET);
    assert_int_equal(http_method_bit("DELETE"), HTTP_M_DELETE);
    assert_int_equal(http_method_bit("get"), HTTP_M_OTHER); /* methods are case-sensitive */
    assert_int_equal(http_method_bit("PATCH"), HTTP_M_OTHER);
    assert_int_equal(http_method_bit(""), HTTP_M_OTHER);
}

/* What http_route_find relies on: a pattern's rows are adjacent, every pattern
 * serves some method, every row names its metric. */
static void test_route_table_shape(void **state)
{
    (void)state;
    for (size_t i = 0; i < http_route_count; i++) {
        const http_route *r = &http_routes[i];
        assert_non_null(r->metric);
        assert_true(r->methods != 0);
        assert_true(r->pattern[0] == '/');
        bool first = i == 0 || strcmp(http_routes[i - 1].pattern, r->pattern) != 0;
        if (!first)
            continue;
        for (size_t j = 0; j + 1 < i; j++)
            if (strcmp(http_routes[j].pattern, r->pattern) == 0)
                fail_msg("rows of %s are not adjacent (%zu and %zu)", r->pattern, j, i);
        bool serves = false;
        for (size_t j = i; j < http_route_count && strcmp(http_routes[j].pattern, r->pattern) == 0;
             j++)
            serves |= http_routes[j].handler != NULL;
        assert_true(serves);
    }
}

/* Literal patterns win over "{table}" ones whatever their order, and a
 * path is no route until its whole shape matches. */
static void test_route_find_order(void **state)
{
    (void)state;
    static const http_route table[] = {
        {"/{table}/key/{key*}", HTTP_M_ANY, "table_key", NULL},
        {"/{table}/x", HTTP_M_ANY, "table_x", NULL},
        {"/key/{key*}", HTTP_M_ANY, "default_key", NULL},
        {"/ui/{path*}", HTTP_M_ANY, "ui", NULL},
    };
    route_match m;
    const char *code = NULL;
    const char *path = "/key/key/a";
    assert_int_equal(http_route_find(table, 4, path, strlen(path), &m, &code), RK_OK);
    assert_string_equal(m.route->metric, "default_key");
    assert_string_equal(m.table, "default");
    assert_string_equal(m.key, "key/a");
    path = "/ui/key/a";
    assert_int_equal(http_route_find(table, 4, path, strlen(path), &m, &code), RK_OK);
    assert_string_equal(m.route->metric, "ui");
    assert_string_equal(m.rest, "/key/a");
    path = "/t/key/a%2Fb";
    assert_int_equal(http_route_find(table, 4, path, strlen(path), &m, &code), RK_OK);
    assert_string_equal(m.route->metric, "table_key");
    assert_string_equal(m.key, "a/b");
    /* A bad table only counts once the shape matched. */
    path = "/b$d/y";
    assert_int_equal(http_route_find(table, 4, path, strlen(path), &m, &code), RK_OK);
    assert_null(m.route);
    path = "/b$d/x";
    assert_int_equal(http_route_find(table, 4, path, strlen(path), &m, &code), RK_EINVAL);
    assert_string_equal(code, "invalid_table");
    assert_null(m.route);
}

/* ---- the reply buffer ------------------------------------------------------------------------ */

static void test_reply_buf_appends(void **state)
{
    (void)state;
    reply_buf r = {0};
    http_reply_add_str(&r, "{\"n\":");
    http_reply_add_u64(&r, UINT64_MAX);
    http_reply_add_str(&r, ",\"s\":");
    http_reply_add_json_string(&r, "a\"b\n", 4);
    http_reply_add_str(&r, ",\"none\":");
    http_reply_add_json_cstr(&r, NULL);
    http_reply_addf(&r, ",\"f\":%d}", -7);
    assert_int_equal(r.err, RK_OK);
    assert_string_equal(r.buf.data,
                        "{\"n\":18446744073709551615,\"s\":\"a\\\"b\\n\",\"none\":\"\",\"f\":-7}");
    assert_int_equal(r.buf.len, strlen(r.buf.data));

    /* http_reply_addf past its stack buffer prints straight into the buffer. */
    rk_buf_reset(&r.buf);
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    http_reply_addf(&r, "<%s>", big);
    assert_int_equal(r.err, RK_OK);
    assert_int_equal(r.buf.len, sizeof big + 1);
    assert_int_equal(r.buf.data[0], '<');
    assert_int_equal(r.buf.data[r.buf.len - 1], '>');
    http_reply_buf_free(&r);
    assert_null(r.buf.data);
    assert_int_equal(r.err, RK_OK);
}

/* After the first failure nothing is appended and the error stays, so a
 * caller checks once, at the end. */
static void test_reply_buf_error_sticks(void **state)
{
    (void)state;
    reply_buf r = {0};
    http_reply_add_str(&r, "ab");
    /* More than memory can hold: rk_buf_reserve refuses before copying. */
    http_reply_add(&r, "x", SIZE_MAX - 1);
    assert_int_equal(r.err, RK_ENOMEM);
    http_reply_add_str(&r, "c");
    http_reply_add(&r, "d", 1);
    http_reply_add_u64(&r, 5);
    http_reply_addf(&r, "%s", "e");
    http_reply_add_json_string(&r, "f", 1);
    http_reply_add_json_cstr(&r, "g");
    assert_int_equal(r.err, RK_ENOMEM);
    assert_int_equal(r.buf.len, 2);
    assert_string_equal(r.buf.data, "ab");

    /* Any error sticks the same way, whoever set it. */
    reply_buf q = {0};
    q.err = RK_EINVAL;
    http_reply_add_str(&q, "nothing");
    assert_int_equal(q.err, RK_EINVAL);
    assert_int_equal(q.buf.len, 0);
    http_reply_buf_free(&q);
    http_reply_buf_free(&r);
}

/* ---- counter tables ------------------------------------------------------------------------ */

typedef struct demo_stats {
    uint32_t pad; /* the offsets are not all 0 */
    uint64_t hits, misses, size;
} demo_stats;

static void test_counters_write(void **state)
{
    (void)state;
    static const http_counter table[] = {
        {.name = "demo_lookups_total",
         .labels = "result=\"hit\"",
         .type = "counter",
         .help = "Lookups, by result.",
         .offset = offsetof(demo_stats, hits)},
        {.name = "demo_lookups_total",
         .labels = "result=\"miss\"",
         .offset = offsetof(demo_stats, misses)},
        {.name = "demo_size",
         .type = "gauge",
         .help = "Entries held.",
         .offset = offsetof(demo_stats, size)},
    };
    demo_stats st = {.pad = 9, .hits = 3, .misses = UINT64_MAX, .size = 0};
    reply_buf out = {0};
    http_reply_add_str(&out, "# before\n");
    http_counters_write(&out, table, 3, &st);
    assert_int_equal(out.err, RK_OK);
    assert_string_equal(out.buf.data, "# before\n"
                                      "# HELP demo_lookups_total Lookups, by result.\n"
                                      "# TYPE demo_lookups_total counter\n"
                                      "demo_lookups_total{result=\"hit\"} 3\n"
                                      "demo_lookups_total{result=\"miss\"} 18446744073709551615\n"
                                      "# HELP demo_size Entries held.\n"
                                      "# TYPE demo_size gauge\n"
                                      "demo_size 0\n");
    assert_true(http_counter_value(&table[0], &st) == 3);
    http_reply_buf_free(&out);
}

/* The node's counters as /metrics has always printed them, with a
 * distinct value in every field so that no two rows can trade places. */
static void test_counters_node(void **state)
{
    (void)state;
    kv_stats kv = {.reads = 1,
                   .writes = 2,
                   .deletes = 3,
                   .siblings_dropped = 4,
                   .max_clock_entries = 5,
                   .max_siblings_seen = 6,
                   .precondition_failures = 7,
                   .quorum_failures = 8,
                   .read_repairs = 9,
                   .hints_stored = 10,
                   .hints_received = 12,
                   .forwarded_writes = 13,
                   .speculative_reads = 14,
                   .full_reads = 15};
    store_stats ss = {.keys_estimate = 21,
                      .sst_bytes = 22,
                      .memtable_bytes = 23,
                      .live_data_bytes = 24,
                      .hints_estimate = 25};
    rpc_server_stats rs = {.requests = 31,
                           .handler_errors = 32,
                           .unknown_method = 33,
                           .bad_input = 34,
                           .expired = 35,
                           .bad_frames = 36,
                           .malformed = 37,
                           .stale = 38,
                           .replayed = 39,
                           .send_errors = 40,
                           .batches = 47};
    rpc_client_stats rc = {.calls = 41,
                           .ok = 42,
                           .errors = 43,
                           .timeouts = 44,
                           .failures = 45,
                           .bad_replies = 46,
                           .batches = 48,
                           .batched_calls = 49};
    reply_buf out = {0};
    http_counters_write_node(&out, &kv, &ss, 11, &rs, &rc);
    assert_int_equal(out.err, RK_OK);
    assert_string_equal(
        out.buf.data,
        "# HELP ringkv_kv_operations_total Record operations applied by this node.\n"
        "# TYPE ringkv_kv_operations_total counter\n"
        "ringkv_kv_operations_total{op=\"read\"} 1\n"
        "ringkv_kv_operations_total{op=\"write\"} 2\n"
        "ringkv_kv_operations_total{op=\"delete\"} 3\n"
        "# HELP ringkv_kv_precondition_failures_total Conditional writes refused (412).\n"
        "# TYPE ringkv_kv_precondition_failures_total counter\n"
        "ringkv_kv_precondition_failures_total 7\n"
        "# HELP ringkv_siblings_dropped_total Siblings dropped by the per-key cap.\n"
        "# TYPE ringkv_siblings_dropped_total counter\n"
        "ringkv_siblings_dropped_total 4\n"
        "# HELP ringkv_siblings_max Most siblings one object held after a write.\n"
        "# TYPE ringkv_siblings_max gauge\n"
        "ringkv_siblings_max 6\n"
        "# HELP ringkv_clock_entries_max Most entries one object's version vector held after a "
        "write.\n"
        "# TYPE ringkv_clock_entries_max gauge\n"
        "ringkv_clock_entries_max 5\n"
        "# HELP ringkv_keys_estimate Records in this node's store (RocksDB estimate).\n"
        "# TYPE ringkv_keys_estimate gauge\n"
        "ringkv_keys_estimate 21\n"
        "# HELP ringkv_store_bytes Size of this node's RocksDB, by part.\n"
        "# TYPE ringkv_store_bytes gauge\n"
        "ringkv_store_bytes{part=\"sst\"} 22\n"
        "ringkv_store_bytes{part=\"memtable\"} 23\n"
        "ringkv_store_bytes{part=\"live_data\"} 24\n"
        "# HELP ringkv_quorum_failures_total Reads and writes answered 503: too few replicas in "
        "time.\n"
        "# TYPE ringkv_quorum_failures_total counter\n"
        "ringkv_quorum_failures_total 8\n"
        "# HELP ringkv_read_repairs_total Stale or missing replicas sent the merged object by a "
        "read.\n"
        "# TYPE ringkv_read_repairs_total counter\n"
        "ringkv_read_repairs_total 9\n"
        "# HELP ringkv_hints_total Writes held for replicas that missed them, by what became of "
        "them.\n"
        "# TYPE ringkv_hints_total counter\n"
        "ringkv_hints_total{event=\"stored\"} 10\n"
        "ringkv_hints_total{event=\"delivered\"} 11\n"
        "ringkv_hints_total{event=\"received\"} 12\n"
        "# HELP ringkv_hints_held Hints this node holds (RocksDB estimate).\n"
        "# TYPE ringkv_hints_held gauge\n"
        "ringkv_hints_held 25\n"
        "# HELP ringkv_forwarded_writes_total Client writes applied by another replica "
        "(Kv.Apply).\n"
        "# TYPE ringkv_forwarded_writes_total counter\n"
        "ringkv_forwarded_writes_total 13\n"
        "# HELP ringkv_reads_widened_total Targeted reads that asked more replicas, by reason: a "
        "replica silent past the speculative delay, or the read-repair chance asking all.\n"
        "# TYPE ringkv_reads_widened_total counter\n"
        "ringkv_reads_widened_total{reason=\"speculative\"} 14\n"
        "ringkv_reads_widened_total{reason=\"read_repair\"} 15\n"
        "# HELP ringkv_rpc_server_total RPC requests served, and frames dropped, by outcome.\n"
        "# TYPE ringkv_rpc_server_total counter\n"
        "ringkv_rpc_server_total{outcome=\"served\"} 31\n"
        "ringkv_rpc_server_total{outcome=\"handler_error\"} 32\n"
        "ringkv_rpc_server_total{outcome=\"unknown_method\"} 33\n"
        "ringkv_rpc_server_total{outcome=\"bad_input\"} 34\n"
        "ringkv_rpc_server_total{outcome=\"expired\"} 35\n"
        "ringkv_rpc_server_total{outcome=\"bad_frame\"} 36\n"
        "ringkv_rpc_server_total{outcome=\"malformed\"} 37\n"
        "ringkv_rpc_server_total{outcome=\"stale\"} 38\n"
        "ringkv_rpc_server_total{outcome=\"replayed\"} 39\n"
        "ringkv_rpc_server_total{outcome=\"send_error\"} 40\n"
        "# HELP ringkv_rpc_server_batches_total Batch messages received: calls a peer coalesced "
        "into one message (their calls count above too).\n"
        "# TYPE ringkv_rpc_server_batches_total counter\n"
        "ringkv_rpc_server_batches_total 47\n"
        "# HELP ringkv_rpc_client_total RPC calls this node made, by outcome.\n"
        "# TYPE ringkv_rpc_client_total counter\n"
        "ringkv_rpc_client_total{outcome=\"started\"} 41\n"
        "ringkv_rpc_client_total{outcome=\"ok\"} 42\n"
        "ringkv_rpc_client_total{outcome=\"error\"} 43\n"
        "ringkv_rpc_client_total{outcome=\"timeout\"} 44\n"
        "ringkv_rpc_client_total{outcome=\"failure\"} 45\n"
        "ringkv_rpc_client_total{outcome=\"bad_reply\"} 46\n"
        "# HELP ringkv_rpc_client_batches_total Batch messages sent: calls to one peer coalesced "
        "into one message.\n"
        "# TYPE ringkv_rpc_client_batches_total counter\n"
        "ringkv_rpc_client_batches_total 48\n"
        "# HELP ringkv_rpc_client_batched_calls_total Calls this node sent inside batch messages.\n"
        "# TYPE ringkv_rpc_client_batched_calls_total counter\n"
        "ringkv_rpc_client_batched_calls_total 49\n");
    http_reply_buf_free(&out);
}

/* ---- the gateway of a one-member cluster, over a real node ----------------------------- */

/* A node alone, as `ringkvd --data d` starts it: store, RPC, membership,
 * kv (n = 3, so the ring is smaller than N) and the sync service, each
 * given to the gateway as ringkvd gives them. */
typedef struct gateway {
    test_node node;
    char cluster_id[17];
    http_node_info info;
    http_server *srv;
    int port;
} gateway;

static int gateway_setup(void **state)
{
    gateway *g = calloc(1, sizeof *g);
    if (g == NULL)
        return -1;
    kv_config kc;
    kv_config_default(&kc);
    sync_config sc;
    sync_config_default(&sc);
    test_node_up(&g->node, 0, &kc, &sc, NULL);
    test_node *tn = &g->node;
    snprintf(g->cluster_id, sizeof g->cluster_id, "%016llx",
             (unsigned long long)cluster_node_cluster_id(tn->cn));
    g->info = (http_node_info){.name = tn->name,
                               .id = tn->id,
                               .http_addr = tn->http_addr,
                               .rpc_addr = tn->rpc_addr,
                               .cluster_id = g->cluster_id,
                               .partitions = 256, /* node_fixture.c's */
                               .cluster = tn->cn,
                               .rpc = tn->srv,
                               .rpc_client = tn->client,
                               .sync = tn->sync,
                               .watch = tn->watch};
    http_options ho = {.listen = "127.0.0.1:0", .threads = 4, .max_value_bytes = 1 << 20};
    struct mg_server_port ports[2];
    if (http_start(&ho, &g->info, tn->k, &g->srv) != RK_OK ||
        mg_get_server_ports(g->srv->ctx, 2, ports) < 1 || ports[0].port <= 0) {
        http_stop(g->srv);
        test_node_destroy(tn);
        free(g);
        return -1;
    }
    g->port = ports[0].port; /* the kernel's pick for port 0 */
    *state = g;
    return 0;
}

static int gateway_teardown(void **state)
{
    gateway *g = *state;
    http_stop(g->srv); /* before the node: its handlers use every part */
    test_node_destroy(&g->node);
    free(g);
    return 0;
}

typedef struct reply {
    int status;
    char head[1024];
    char body[32768]; /* /metrics of a fresh node fits */
} reply;

/* One request on a fresh connection; the whole answer, or status -1. */
static reply call(const gateway *g, const char *method, const char *path, const char *body)
{
    reply r = {.status = -1};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, body ? strlen(body) : 0, body ? body : "");
    assert_true(n > 0 && (size_t)n < sizeof req);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    char all[40000];
    size_t len = 0;
    ssize_t got;
    while (len < sizeof all - 1 && (got = recv(fd, all + len, sizeof all - 1 - len, 0)) > 0)
        len += (size_t)got;
    all[len] = '\0';
    close(fd);
    const char *end = strstr(all, "\r\n\r\n");
    if (end == NULL || sscanf(all, "HTTP/1.1 %d", &r.status) != 1)
        return r;
    snprintf(r.head, sizeof r.head, "%.*s", (int)(end - all), all);
    snprintf(r.body, sizeof r.body, "%s", end + 4);
    return r;
}

static void check_call(const gateway *g, const char *method, const char *path, const char *body,
                       int status, const char *body_part)
{
    reply r = call(g, method, path, body);
    if (r.status != status || strstr(r.body, body_part) == NULL)
        print_error("%s %s: %d %s, want %d with %s\n", method, path, r.status, r.body, status,
                    body_part);
    assert_int_equal(r.status, status);
    assert_non_null(strstr(r.body, body_part));
}

/* True when head has the line "name: value", exactly. */
static bool has_header(const char *head, const char *name, const char *value)
{
    char line[128];
    snprintf(line, sizeof line, "\r\n%s: %s", name, value);
    const char *p = strstr(head, line);
    return p != NULL && (p[strlen(line)] == '\r' || p[strlen(line)] == '\0');
}

/* Every part is required: with any one missing http_start refuses and
 * starts nothing (no route has a branch for a missing part). */
static void test_gateway_needs_every_part(void **state)
{
    const gateway *g = *state;
    http_options ho = {.listen = "127.0.0.1:0", .threads = 1, .max_value_bytes = 1024};
    for (int i = 0; i < 5; i++) {
        http_node_info info = g->info;
        if (i == 0)
            info.cluster = NULL;
        else if (i == 1)
            info.rpc = NULL;
        else if (i == 2)
            info.rpc_client = NULL;
        else if (i == 3)
            info.sync = NULL;
        else
            info.watch = NULL;
        static char sentinel;
        http_server *srv = (http_server *)&sentinel; /* untouched on failure */
        assert_int_equal(http_start(&ho, &info, g->node.k, &srv), RK_EINVAL);
        assert_ptr_equal(srv, (http_server *)&sentinel);
    }
}

static const char *json_str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

/* GET /cluster and /membership of a node alone: one member, itself, which
 * holds every key's only replica, fewer than N. */
static void test_gateway_one_member_view(void **state)
{
    const gateway *g = *state;
    reply r = call(g, "GET", "/cluster", NULL);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    assert_non_null(j);
    char id[17];
    snprintf(id, sizeof id, "%016llx", (unsigned long long)g->node.id);
    assert_string_equal(json_str(j, "node"), g->node.name);
    assert_string_equal(json_str(j, "id"), id);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "n")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "replicas_per_key")->valueint, 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "under_replicated")));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "partitions")->valueint, 256);
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(j, "members");
    assert_int_equal(cJSON_GetArraySize(members), 1);
    const cJSON *me = cJSON_GetArrayItem(members, 0);
    assert_string_equal(json_str(me, "id"), id);
    assert_string_equal(json_str(me, "name"), g->node.name);
    assert_string_equal(json_str(me, "http"), g->node.http_addr);
    assert_string_equal(json_str(me, "rpc"), g->node.rpc_addr);
    assert_string_equal(json_str(me, "status"), "member");
    assert_string_equal(json_str(me, "liveness"), "alive");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(me, "self")));
    /* It holds a replica of every range, once in a ring of one. */
    assert_true(cJSON_GetObjectItemCaseSensitive(me, "ownership")->valuedouble == 1.0);
    const cJSON *sync = cJSON_GetObjectItemCaseSensitive(j, "sync");
    assert_true(cJSON_IsObject(sync));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(sync, "ranges_pending")->valueint, 0);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(sync, "leaving")));
    cJSON_Delete(j);

    r = call(g, "GET", "/membership", NULL);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    assert_int_equal(cJSON_GetArraySize(j), 1);
    assert_string_equal(cJSON_GetArrayItem(j, 0)->valuestring, g->node.http_addr);
    cJSON_Delete(j);
}

/* A write to a node alone: acknowledged by its one replica, named, and
 * marked under-replicated (one replica where N is 3). */
static void test_gateway_quorum_headers(void **state)
{
    const gateway *g = *state;
    reply r = call(g, "PUT", "/t/key/k", "{\"value\": 1}");
    assert_true(r.status == 200 || r.status == 201);
    assert_true(has_header(r.head, "X-Ringkv-Replicas", g->node.name));
    assert_true(has_header(r.head, "X-Ringkv-Under-Replicated", "replicas=1; n=3"));
    r = call(g, "GET", "/t/key/k", NULL);
    assert_int_equal(r.status, 200);
    assert_true(has_header(r.head, "X-Ringkv-Replicas", g->node.name));
}

/* What the membership routes answer in a one-member cluster: there is
 * nobody to leave to, and no other node to remove. */
static void test_gateway_membership_of_one(void **state)
{
    gateway *g = *state;
    check_call(g, "POST", "/cluster/leave", NULL, 409, "last member of the ring");
    check_call(g, "POST", "/cluster/remove", "{\"node\":\"a\"}", 404, "\"code\":\"not_found\"");
    check_call(g, "POST", "/cluster/remove", "{\"node\":\"00000000000000aa\"}", 404,
               "\"code\":\"not_found\"");
    check_call(g, "POST", "/cluster/remove", "not json", 400, "\"code\":\"bad_json\"");
    check_call(g, "POST", "/cluster/remove", "{}", 400, "\"code\":\"missing_node\"");
    char body[64];
    snprintf(body, sizeof body, "{\"node\":\"%s\"}", g->node.name);
    check_call(g, "POST", "/cluster/remove", body, 409, "is this node");
    snprintf(body, sizeof body, "{\"node\":\"%016llx\"}", (unsigned long long)g->node.id);
    check_call(g, "POST", "/cluster/remove", body, 409, "is this node");
    check_call(g, "POST", "/cluster/repair", NULL, 202, "{\"repair\":\"started\"}");
    /* Still a member, not leaving: the refusal changed nothing. */
    check_call(g, "GET", "/cluster", NULL, 200, "\"status\":\"member\"");
    check_call(g, "GET", "/cluster", NULL, 200, "\"leaving\":false");

    /* Wrong methods: 405 naming POST, whatever the node's state. */
    const char *paths[] = {"/cluster/leave", "/cluster/remove", "/cluster/repair",
                           "/cluster/hints/drop"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        reply r = call(g, "GET", paths[i], NULL);
        assert_int_equal(r.status, 405);
        assert_non_null(strstr(r.head, "Allow: POST"));
        assert_int_equal(call(g, "DELETE", paths[i], NULL).status, 405);
    }

    /* Counted under their own routes; with the RPC and sync families. */
    reply m = call(g, "GET", "/metrics", NULL);
    assert_int_equal(m.status, 200);
    assert_non_null(strstr(m.body, "route=\"cluster_leave\",status=\"4xx\"} 3"));
    assert_non_null(strstr(m.body, "route=\"cluster_remove\",status=\"4xx\"} 8"));
    assert_non_null(strstr(m.body, "route=\"cluster_repair\",status=\"2xx\"} 1"));
    assert_non_null(strstr(m.body, "route=\"hints_drop\",status=\"4xx\"} 2"));
    assert_non_null(strstr(m.body, "# TYPE ringkv_rpc_server_total counter\n"));
    assert_non_null(strstr(m.body, "ringkv_rpc_client_total{outcome=\"started\"} "));
    assert_non_null(strstr(m.body, "ringkv_sync_ranges_pending 0\n"));
    assert_non_null(strstr(m.body, "ringkv_hints_total{event=\"delivered\"} 0\n"));
}

/* The 405s come from the route table: Allow lists what the route's rows
 * serve, and the refusal is counted as the route's metric says. */
static void test_gateway_method_not_allowed(void **state)
{
    gateway *g = *state;
    reply r = call(g, "PATCH", "/t/key/k", NULL);
    assert_int_equal(r.status, 405);
    assert_true(has_header(r.head, "Allow", "GET, PUT, POST, DELETE"));
    assert_string_equal(r.body, "{\"error\":\"method not allowed on this route\","
                                "\"code\":\"method_not_allowed\"}\n");
    r = call(g, "HEAD", "/key/k", NULL);
    assert_int_equal(r.status, 405);
    r = call(g, "DELETE", "/t/keys", NULL);
    assert_int_equal(r.status, 405);
    assert_true(has_header(r.head, "Allow", "GET, POST"));
    r = call(g, "PUT", "/health", NULL);
    assert_int_equal(r.status, 405);
    assert_true(has_header(r.head, "Allow", "GET"));
    check_call(g, "GET", "/nowhere", NULL, 404, "\"code\":\"no_route\"");
    check_call(g, "GET", "/t/key/%zz", NULL, 400, "\"code\":\"invalid_key\"");

    reply m = call(g, "GET", "/metrics", NULL);
    assert_int_equal(m.status, 200);
    /* PATCH on a key is counted as a write, HEAD as a read, as ever. */
    assert_non_null(strstr(m.body, "route=\"key_put\",status=\"4xx\"} 1\n"));
    assert_non_null(strstr(m.body, "route=\"key_get\",status=\"4xx\"} 1\n"));
    assert_non_null(strstr(m.body, "route=\"keys_list\",status=\"4xx\"} 1\n"));
    assert_non_null(strstr(m.body, "route=\"health\",status=\"4xx\"} 1\n"));
    assert_non_null(strstr(m.body, "route=\"unmatched\",status=\"4xx\"} 2\n"));
}

static rk_err set_cb(void *arg, const char *old, size_t old_len, rk_buf *out)
{
    (void)old;
    (void)old_len;
    return rk_buf_appends(out, arg);
}

static void put_hint(gateway *g, uint64_t intended, const char *key)
{
    rk_buf k = {0};
    assert_int_equal(store_data_key(42, "t", 1, key, strlen(key), &k), RK_OK);
    assert_int_equal(store_hint_apply(g->node.st, intended, k.data, k.len, set_cb, "v"), RK_OK);
    rk_buf_free(&k);
}

static void test_gateway_hints_drop(void **state)
{
    gateway *g = *state;
    check_call(g, "POST", "/cluster/hints/drop", NULL, 200, "{\"dropped\":0}");
    put_hint(g, 0x10, "a");
    put_hint(g, 0x10, "b");
    put_hint(g, 0x20, "a");
    uint64_t ids[4];
    assert_int_equal(store_hint_targets(g->node.st, ids, 4), 2);
    check_call(g, "POST", "/cluster/hints/drop", NULL, 200, "{\"dropped\":3}");
    assert_int_equal(store_hint_targets(g->node.st, ids, 4), 0);
    check_call(g, "POST", "/cluster/hints/drop", "", 200, "{\"dropped\":0}");
}

/* ---- asking a peer's gateway ----------------------------------------------------- */

static void test_fetch_parse(void **state)
{
    (void)state;
    int status = 0;
    size_t at = 0;
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody";
    assert_int_equal(http_fetch_parse(ok, strlen(ok), &status, &at), RK_OK);
    assert_int_equal(status, 200);
    assert_string_equal(ok + at, "body");
    const char *empty = "HTTP/1.0 502 Bad Gateway\r\n\r\n";
    assert_int_equal(http_fetch_parse(empty, strlen(empty), &status, &at), RK_OK);
    assert_int_equal(status, 502);
    assert_int_equal(at, strlen(empty));
    const char *bad[] = {"", "HTTP/1.1 2x0 OK\r\n\r\n", "SSH-2.0-OpenSSH\r\n\r\n",
                         "HTTP/1.1 200 OK\r\nno end of head"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(http_fetch_parse(bad[i], strlen(bad[i]), &status, &at), RK_EINVAL);
}

static void test_fetch_refused(void **state)
{
    (void)state;
    /* a port nobody listens on: a bound socket that never listens */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char addr[32], err[256] = "";
    snprintf(addr, sizeof addr, "127.0.0.1:%u", ntohs(a.sin_port));
    rk_buf body = {0};
    int status = 0;
    assert_int_equal(http_fetch_get(addr, "/metrics", 1000, 1024, &status, &body, err, sizeof err),
                     RK_EIO);
    assert_non_null(strstr(err, "cannot connect"));
    assert_int_equal(http_fetch_get("no-port", "/", 1000, 1024, &status, &body, err, sizeof err),
                     RK_EINVAL);
    close(fd);
    rk_buf_free(&body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_fetch_parse),
        cmocka_unit_test(test_fetch_refused),
        cmocka_unit_test(test_percent_decode_capacity),
        cmocka_unit_test(test_route_system),
        cmocka_unit_test(test_route_records),
        cmocka_unit_test(test_route_unknown),
        cmocka_unit_test(test_route_bad_names),
        cmocka_unit_test(test_route_key_length),
        cmocka_unit_test(test_route_table_methods),
        cmocka_unit_test(test_route_table_shape),
        cmocka_unit_test(test_route_find_order),
        cmocka_unit_test(test_reply_buf_appends),
        cmocka_unit_test(test_reply_buf_error_sticks),
        cmocka_unit_test(test_counters_write),
        cmocka_unit_test(test_counters_node),
        cmocka_unit_test(test_write_body_spans),
        cmocka_unit_test(test_write_body_errors),
        cmocka_unit_test(test_write_body_random_values),
        cmocka_unit_test(test_write_body_random_mutations),
        cmocka_unit_test(test_write_body_member_order),
        cmocka_unit_test(test_write_body_depth),
        cmocka_unit_test(test_status_of),
        cmocka_unit_test(test_metrics_render),
        cmocka_unit_test(test_metrics_odd_inputs),
        cmocka_unit_test(test_metrics_bucket_bounds_are_exact),
        cmocka_unit_test(test_sync_stats_layout),
        cmocka_unit_test(test_sync_json),
        cmocka_unit_test(test_sync_metrics),
        cmocka_unit_test(test_remove_body),
        cmocka_unit_test(test_remove_find_member),
    };
    /* One gateway for these: civetweb takes a second or two to stop. */
    const struct CMUnitTest gateway_tests[] = {
        cmocka_unit_test(test_gateway_needs_every_part),
        cmocka_unit_test(test_gateway_one_member_view),
        cmocka_unit_test(test_gateway_quorum_headers),
        cmocka_unit_test(test_gateway_membership_of_one),
        cmocka_unit_test(test_gateway_hints_drop),
        cmocka_unit_test(test_gateway_method_not_allowed),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed + cmocka_run_group_tests(gateway_tests, gateway_setup, gateway_teardown);
}
