/* test_common.c - unit tests of errors, byte buffers, base64url, UTF-8
 * validation, strict integer parsing, percent-encoding and JSON scanning.
 *
 * JSON inputs are copied into heap buffers of their exact length (no NUL
 * after them), so a read past the end shows up under the address
 * sanitizer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringkv/common.h"
#include "inputs.h"

/* ---- errors -------------------------------------------------------------- */

static void test_err_names_cover_every_value(void **state)
{
    (void)state;
    for (int e = 0; e < RK_ERR_COUNT; e++) {
        const char *msg = rk_strerror((rk_err)e);
        const char *code = rk_errcode((rk_err)e);
        assert_non_null(msg);
        assert_non_null(code);
        assert_true(strlen(msg) > 0);
        assert_true(strlen(code) > 0);
        /* Codes are machine-readable: lower case, digits and '_'. */
        for (const char *p = code; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || *p == '_');
    }
    assert_string_equal(rk_errcode(RK_OK), "ok");
    assert_string_equal(rk_errcode(RK_ENOTFOUND), "not_found");
    assert_string_equal(rk_errcode(RK_EPRECOND), "precondition_failed");

    /* Codes are distinct: the gateway sends them to clients. */
    for (int a = 0; a < RK_ERR_COUNT; a++)
        for (int b = a + 1; b < RK_ERR_COUNT; b++)
            assert_string_not_equal(rk_errcode((rk_err)a), rk_errcode((rk_err)b));

    /* Out of range, both directions. */
    rk_err bad[] = {RK_ERR_COUNT, (rk_err)(RK_ERR_COUNT + 7), (rk_err)-1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_non_null(rk_strerror(bad[i]));
        assert_non_null(rk_errcode(bad[i]));
    }
}

/* ---- rk_buf --------------------------------------------------------------- */

static void test_buf_append_keeps_nul(void **state)
{
    (void)state;
    rk_buf b = {0};
    assert_int_equal(rk_buf_append(&b, "abc", 3), RK_OK);
    assert_int_equal(b.len, 3);
    assert_true(b.cap > b.len);
    assert_string_equal(b.data, "abc");

    assert_int_equal(rk_buf_appends(&b, "def"), RK_OK);
    assert_int_equal(b.len, 6);
    assert_string_equal(b.data, "abcdef");

    /* Binary data with a NUL inside: len counts it, the terminator follows. */
    assert_int_equal(rk_buf_append(&b, "x\0y", 3), RK_OK);
    assert_int_equal(b.len, 9);
    assert_memory_equal(b.data, "abcdefx\0y", 9);
    assert_int_equal(b.data[9], '\0');

    /* Appending nothing to an empty buffer still yields a C string. */
    rk_buf e = {0};
    assert_int_equal(rk_buf_append(&e, "", 0), RK_OK);
    assert_non_null(e.data);
    assert_int_equal(e.len, 0);
    assert_string_equal(e.data, "");
    rk_buf_free(&e);

    rk_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    rk_buf_free(&b); /* twice is harmless */
}

static void test_buf_grows_across_many_appends(void **state)
{
    (void)state;
    rk_buf b = {0};
    char expect[10000];
    for (size_t i = 0; i < sizeof expect; i++) {
        char c = (char)('a' + i % 26);
        expect[i] = c;
        assert_int_equal(rk_buf_append(&b, &c, 1), RK_OK);
        assert_int_equal(b.len, i + 1);
        assert_int_equal(b.data[b.len], '\0');
        assert_true(b.cap > b.len);
    }
    assert_memory_equal(b.data, expect, sizeof expect);
    rk_buf_free(&b);
}

static void test_buf_appendf(void **state)
{
    (void)state;
    rk_buf b = {0};
    assert_int_equal(rk_buf_appendf(&b, "%s=%d", "n", 42), RK_OK);
    assert_string_equal(b.data, "n=42");
    assert_int_equal(b.len, 4);
    assert_int_equal(rk_buf_appendf(&b, ",%llu", 18446744073709551615ull), RK_OK);
    assert_string_equal(b.data, "n=42,18446744073709551615");
    assert_int_equal(b.len, strlen("n=42,18446744073709551615"));

    /* Past the 256-byte stack buffer, onto a buffer that already holds text,
     * and at every length around the boundary. */
    for (int n = 250; n <= 700; n++) {
        rk_buf t = {0};
        assert_int_equal(rk_buf_appends(&t, "head:"), RK_OK);
        assert_int_equal(rk_buf_appendf(&t, "%0*d|%s", n, 7, "tail"), RK_OK);
        size_t want = 5 + (size_t)n + 5;
        assert_int_equal(t.len, want);
        assert_int_equal(strlen(t.data), want);
        assert_memory_equal(t.data, "head:", 5);
        for (int i = 0; i < n - 1; i++)
            assert_int_equal(t.data[5 + i], '0');
        assert_int_equal(t.data[5 + n - 1], '7');
        assert_string_equal(t.data + 5 + n, "|tail");
        /* And the buffer goes on working after a long format. */
        assert_int_equal(rk_buf_appends(&t, "!"), RK_OK);
        assert_int_equal(t.len, want + 1);
        assert_int_equal(t.data[want], '!');
        assert_int_equal(t.data[want + 1], '\0');
        rk_buf_free(&t);
    }

    char big[5000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(rk_buf_appendf(&b, "[%s]", big), RK_OK);
    assert_int_equal(b.len, strlen("n=42,18446744073709551615") + 2 + sizeof big - 1);
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(b.data[b.len], '\0');
    rk_buf_free(&b);
}

static void test_buf_reset_keeps_memory(void **state)
{
    (void)state;
    rk_buf b = {0};
    rk_buf_reset(&b); /* on a zeroed buffer: nothing to do, nothing to crash */
    assert_int_equal(b.len, 0);

    assert_int_equal(rk_buf_appends(&b, "some text that is here"), RK_OK);
    char *data = b.data;
    size_t cap = b.cap;
    rk_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "");
    assert_int_equal(rk_buf_appends(&b, "new"), RK_OK);
    assert_string_equal(b.data, "new");
    assert_int_equal(b.len, 3);
    rk_buf_free(&b);
}

/* Appends s as a JSON string into a fresh buffer and compares. */
static void check_json_string(const char *s, size_t len, const char *want)
{
    rk_buf b = {0};
    assert_int_equal(rk_buf_append_json_string(&b, s, len), RK_OK);
    assert_string_equal(b.data, want);
    assert_int_equal(b.len, strlen(want));
    rk_buf_free(&b);
}

static void test_buf_json_string(void **state)
{
    (void)state;
    check_json_string("", 0, "\"\"");
    check_json_string("plain", 5, "\"plain\"");
    check_json_string("a\"b", 3, "\"a\\\"b\"");
    check_json_string("a\\b", 3, "\"a\\\\b\"");
    check_json_string("\n\r\t", 3, "\"\\n\\r\\t\"");
    check_json_string("\x01", 1, "\"\\u0001\"");
    check_json_string("\x1f", 1, "\"\\u001f\"");
    check_json_string("a\0b", 3, "\"a\\u0000b\"");
    check_json_string("\b\f", 2, "\"\\u0008\\u000c\"");
    /* '/' needs no escape; UTF-8 goes through byte for byte. */
    check_json_string("a/b", 3, "\"a/b\"");
    check_json_string("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 12,
                      "\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");

    /* Appends after what is there, and the worst case (every byte escaped)
     * fits. */
    rk_buf b = {0};
    assert_int_equal(rk_buf_appends(&b, "{\"k\":"), RK_OK);
    char ctl[300];
    for (size_t i = 0; i < sizeof ctl; i++)
        ctl[i] = (char)(i % 31 + 1);
    assert_int_equal(rk_buf_append_json_string(&b, ctl, sizeof ctl), RK_OK);
    assert_int_equal(rk_buf_appends(&b, "}"), RK_OK);
    assert_int_equal(b.len, strlen(b.data));
    assert_memory_equal(b.data, "{\"k\":\"", 6);
    assert_int_equal(b.data[b.len - 2], '"');
    assert_int_equal(b.data[b.len - 1], '}');
    /* No raw control byte made it through. */
    for (size_t i = 0; i < b.len; i++)
        assert_true((unsigned char)b.data[i] >= 0x20);
    rk_buf_free(&b);
}

/* ---- base64url ------------------------------------------------------------ */

static void test_b64url_known_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *bin;
        const char *text;
    } v[] = {
        {"", ""},
        {"f", "Zg"},
        {"fo", "Zm8"},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg"},
        {"fooba", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy"},
        {"\xfb\xff", "-_8"}, /* the two URL-safe letters */
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        rk_buf t = {0}, d = {0};
        assert_int_equal(rk_b64url_encode((const uint8_t *)v[i].bin, strlen(v[i].bin), &t), RK_OK);
        assert_string_equal(t.data ? t.data : "", v[i].text);
        assert_int_equal(t.len, strlen(v[i].text));
        assert_int_equal(rk_b64url_decode(v[i].text, strlen(v[i].text), &d), RK_OK);
        assert_int_equal(d.len, strlen(v[i].bin));
        if (d.len)
            assert_memory_equal(d.data, v[i].bin, d.len);
        rk_buf_free(&t);
        rk_buf_free(&d);
    }
}

static void test_b64url_round_trip_random(void **state)
{
    (void)state;
    rng_seed_from_env("b64url_round_trip_random");
    for (int round = 0; round < 50; round++) {
        for (size_t len = 0; len <= 40; len++) {
            uint8_t bin[40];
            for (size_t i = 0; i < len; i++)
                bin[i] = (uint8_t)rng_next();
            rk_buf text = {0}, back = {0};
            /* Encoding appends: start from a prefix that must stay. */
            assert_int_equal(rk_buf_appends(&text, "P"), RK_OK);
            assert_int_equal(rk_b64url_encode(bin, len, &text), RK_OK);
            assert_int_equal(text.len, 1 + (len * 4 + 2) / 3); /* no padding */
            assert_int_equal(text.data[0], 'P');
            assert_int_equal(strlen(text.data), text.len);
            for (size_t i = 1; i < text.len; i++) {
                char c = text.data[i];
                assert_true((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '_');
            }
            assert_int_equal(rk_buf_appends(&back, "Q"), RK_OK);
            assert_int_equal(rk_b64url_decode(text.data + 1, text.len - 1, &back), RK_OK);
            assert_int_equal(back.len, 1 + len);
            assert_int_equal(back.data[0], 'Q');
            if (len)
                assert_memory_equal(back.data + 1, bin, len);
            assert_int_equal(back.data[back.len], '\0');
            rk_buf_free(&text);
            rk_buf_free(&back);
        }
    }
}

static void check_b64_rejected(const char *text)
{
    rk_buf out = {0};
    rk_err err = rk_b64url_decode(text, strlen(text), &out);
    rk_buf_free(&out); /* before asserting: a failure must not leak */
    assert_int_equal(err, RK_EINVAL);
}

static void test_b64url_decode_rejects(void **state)
{
    (void)state;
    check_b64_rejected("+A"); /* standard alphabet */
    check_b64_rejected("Zm+v");
    check_b64_rejected("Zm/v");
    check_b64_rejected("Zg=="); /* padding */
    check_b64_rejected("Zm8=");
    check_b64_rejected("=");
    check_b64_rejected("Zm9v!");
    check_b64_rejected("Zm 9v");
    check_b64_rejected("Zm9v\n");
    check_b64_rejected("a"); /* a length no encoding produces */
    check_b64_rejected("Zm9vY");
    /* A NUL inside the given length is garbage too, not an end. */
    rk_buf out = {0};
    assert_int_equal(rk_b64url_decode("Zm9v\0Zm9v", 9, &out), RK_EINVAL);
    rk_buf_free(&out);
}

/* Bytes >= 0x80 are not in the alphabet either. "\xc3\xa9\xc3\xa9" is "éé"
 * in UTF-8, which a client could well send as a context. */
static void test_b64url_decode_rejects_non_ascii(void **state)
{
    (void)state;
    check_b64_rejected("\xc3\xa9\xc3\xa9");
    check_b64_rejected("AAA\xff");
    for (int c = 0x80; c <= 0xff; c++) {
        char text[4] = {'A', 'A', 'A', (char)c};
        rk_buf out = {0};
        rk_err err = rk_b64url_decode(text, sizeof text, &out);
        if (err != RK_EINVAL)
            print_error("byte 0x%02x decoded as base64url (%zu bytes out)\n", c, out.len);
        rk_buf_free(&out);
        assert_int_equal(err, RK_EINVAL);
    }
}

/* ---- UTF-8 ------------------------------------------------------------------ */

static bool utf8(const char *s)
{
    return rk_utf8_valid(s, strlen(s));
}

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(rk_utf8_valid("", 0));
    assert_true(utf8("plain ASCII ~\x7f"));
    assert_true(utf8("\xc2\x80"));         /* U+0080, smallest 2-byte */
    assert_true(utf8("caf\xc3\xa9"));      /* 2-byte */
    assert_true(utf8("\xdf\xbf"));         /* U+07FF */
    assert_true(utf8("\xe0\xa0\x80"));     /* U+0800, smallest 3-byte */
    assert_true(utf8("\xe2\x82\xac"));     /* euro sign */
    assert_true(utf8("\xed\x9f\xbf"));     /* U+D7FF, just below surrogates */
    assert_true(utf8("\xee\x80\x80"));     /* U+E000, just above */
    assert_true(utf8("\xef\xbf\xbf"));     /* U+FFFF */
    assert_true(utf8("\xf0\x90\x80\x80")); /* U+10000, smallest 4-byte */
    assert_true(utf8("\xf0\x9f\x98\x80")); /* emoji */
    assert_true(utf8("\xf4\x8f\xbf\xbf")); /* U+10FFFF, the last */
    assert_true(utf8("a\xc3\xa9z\xe2\x82\xac\xf0\x9f\x98\x80!"));
}

static void test_utf8_invalid(void **state)
{
    (void)state;
    assert_false(rk_utf8_valid("a\0b", 3)); /* NUL */
    assert_false(rk_utf8_valid("\0", 1));
    assert_false(utf8("\xc0\xaf"));         /* overlong '/' */
    assert_false(utf8("\xc1\xbf"));         /* overlong */
    assert_false(utf8("\xe0\x80\xaf"));     /* overlong 3-byte */
    assert_false(utf8("\xe0\x9f\xbf"));     /* overlong U+07FF */
    assert_false(utf8("\xf0\x80\x80\xaf")); /* overlong 4-byte */
    assert_false(utf8("\xf0\x8f\xbf\xbf")); /* overlong U+FFFF */
    assert_false(utf8("\xed\xa0\x80"));     /* U+D800 */
    assert_false(utf8("\xed\xbf\xbf"));     /* U+DFFF */
    assert_false(utf8("\xf4\x90\x80\x80")); /* U+110000 */
    assert_false(utf8("\xf5\x80\x80\x80"));
    assert_false(utf8("\xf8\x88\x80\x80\x80")); /* 5-byte form */
    assert_false(utf8("\xff"));
    assert_false(utf8("\xfe"));
    assert_false(utf8("\x80")); /* lone continuation */
    assert_false(utf8("a\xbf"));
    assert_false(utf8("\xc3")); /* truncated */
    assert_false(utf8("\xe2\x82"));
    assert_false(utf8("\xf0\x9f\x98"));
    assert_false(utf8("ab\xf0"));
    assert_false(utf8("\xc3(a")); /* bad continuation */
    assert_false(utf8("\xe2(\xac"));
    assert_false(utf8("\xf0\x9f(\x80"));
    /* The length is what counts: a valid sequence cut by len is truncated. */
    assert_false(rk_utf8_valid("\xe2\x82\xac", 2));
    assert_true(rk_utf8_valid("a\xe2\x82\xac", 1));
}

/* ---- rk_parse_u64 ------------------------------------------------------------ */

static void test_parse_u64(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"0", 0},
        {"7", 7},
        {"0042", 42},
        {"4294967296", 4294967296u},
        {"18446744073709551615", UINT64_MAX},
        {"18446744073709551610", UINT64_MAX - 5},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 12345;
        assert_int_equal(rk_parse_u64(ok[i].s, strlen(ok[i].s), &v), RK_OK);
        assert_true(v == ok[i].v);
    }

    static const char *bad[] = {
        "",
        "-1",
        "+1",
        "1a",
        "a1",
        " 1",
        "1 ",
        "1.0",
        "0x10",
        "1e3",
        "18446744073709551616",
        "18446744073709551620",
        "99999999999999999999",
        "184467440737095516150",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 12345;
        assert_int_equal(rk_parse_u64(bad[i], strlen(bad[i]), &v), RK_EINVAL);
        assert_true(v == 12345); /* untouched on error */
    }

    /* The whole given length is parsed, not up to a NUL or the string end. */
    uint64_t v = 0;
    assert_int_equal(rk_parse_u64("123", 2, &v), RK_OK);
    assert_true(v == 12);
    assert_int_equal(rk_parse_u64("1\0", 2, &v), RK_EINVAL);
}

/* ---- rk_url_encode ----------------------------------------------------------- */

static void test_url_encode(void **state)
{
    (void)state;
    rk_buf out = {0};
    assert_int_equal(rk_buf_appends(&out, "/t/key/"), RK_OK);
    /* Unreserved bytes stay; '/', '?', '%', space, NUL and UTF-8 do not. */
    static const char key[] = "aZ09-._~/?&=% #\0\xc3\xa9";
    assert_int_equal(rk_url_encode(&out, key, sizeof key - 1), RK_OK);
    assert_string_equal(out.data, "/t/key/aZ09-._~%2F%3F%26%3D%25%20%23%00%C3%A9");
    assert_int_equal(out.len, strlen(out.data)); /* appended, NUL-terminated */
    rk_buf_reset(&out);
    assert_int_equal(rk_url_encode(&out, "", 0), RK_OK);
    assert_int_equal(out.len, 0);
    rk_buf_free(&out);
}

/* ---- rk_json_valid: fixed cases ---------------------------------------------- */

static bool scan_n(const char *s, size_t len, size_t *b, size_t *e)
{
    char *copy = exact_copy(s, len);
    bool ok = rk_json_valid(copy, len, b, e);
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
        "0",
        "-0",
        "7",
        "-1",
        "10",
        "1.5",
        "-0.25",
        "0.0",
        "12345678901234567890123456789012345678901234567890",
        "-98765432109876543210.01234567890123456789",
        "1e10",
        "1E10",
        "1e+10",
        "1e-10",
        "-1.5E-300",
        "0e0",
        "2.5e+0008",
        "true",
        "false",
        "null",
        "\"\"",
        "\"abc\"",
        "\"a b\\tc\"",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
        "\"\\u0000\\u00e9\\u00E9\\uFFFF\\ud83d\\ude00\"",
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
        "\"\x7f\"",
        "\"'single'\"",
        "\"}]{[,:\"",
        "[]",
        "{}",
        "[ ]",
        "{ }",
        "[1]",
        "[1,2,3]",
        "[[],[[]],{}]",
        "{\"a\":1}",
        "{\"\":0}",
        "{\"a\":1,\"a\":2}",
        "{\"a\":{\"b\":[true,false,null,\"s\",-1.5e3,{}]},\"c\":\"d\"}",
        "[\"\\u005b\", \"]\", \"\\\"\"]",
        " 1",
        "1 ",
        "\t\r\n 1 \n\r\t",
        " [ 1 , { \"k\" : \"v\" } , [ ] ] ",
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
        "",
        " ",
        "\n\t",
        /* trailing garbage */
        "1 2",
        "[1]x",
        "{}{}",
        "[] []",
        "nullx",
        "truefalse",
        "\"a\"\"b\"",
        "1,",
        /* numbers */
        "01",
        "-01",
        "00",
        "1.",
        "-1.",
        ".5",
        "-.5",
        "-",
        "+1",
        "1e",
        "1e+",
        "1E-",
        "1.e5",
        "--1",
        "0x10",
        "1_000",
        "NaN",
        "Infinity",
        "-Infinity",
        "1.5.5",
        "1ee5",
        "\xef\xbc\x91",
        /* literals */
        "tru",
        "t",
        "nul",
        "fals",
        "True",
        "NULL",
        "nulll",
        /* arrays and objects */
        "[",
        "]",
        "{",
        "}",
        "[1,]",
        "[,1]",
        "[1,,2]",
        "[1 2]",
        "[1:2]",
        "{\"a\":}",
        "{\"a\"}",
        "{\"a\" 1}",
        "{\"a\":1,}",
        "{,}",
        "{1:2}",
        "{a:1}",
        "{'a':1}",
        "{\"a\":1 \"b\":2}",
        "{\"a\":1;\"b\":2}",
        "[}",
        "{]",
        "[[]",
        "[]]",
        /* strings */
        "\"abc",
        "\"",
        "\"\\\"",
        "'a'",
        "\"a\"b\"",
        "\"\\x41\"",
        "\"\\a\"",
        "\"\\U0041\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"\\u\"",
        "\"\\",
        "\"\\u004",
        "\"\\'\"",
        "\"\t\"",
        "\"a\nb\"",
        "\"\x01\"",
        "\"\x1f\"",
        "\"\xff\"",
        "\"\x80\"",
        "\"\xc3\"",
        "\"\xc0\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xe2\x82\"",
        "\"a\\n\xc3\"",
        /* not JSON at all */
        "\xc3\xa9",
        "undefined",
        "/* */ 1",
        "// 1",
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
    bool ok = rk_json_valid(s, len, &b, &e);
    free(s);
    return ok;
}

/* Depth is limited to 128 (common.h): 128 nested containers are
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
    assert_false(rk_json_valid(open_only, len / 2, &b, &e));
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

/* ---- rk_json_valid: randomized ------------------------------------------------ */

/* Whatever rk_json_valid accepts, its span must be in the input and be a
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
                print_error("accepted a prefix (%zu of %zu bytes) of %s\n", cut, doc.len, doc.data);
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
 * past the end (see the sanitizer build), and what it accepts must hold up.
 * (test_http.c feeds the same mutants to the write-body scanner.) */
static void test_json_random_mutations(void **state)
{
    (void)state;
    rng_seed_from_env("json_random_mutations");
    rk_buf doc = {0}, mut = {0};
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        gen_document(&doc);
        gen_mutation(&doc, &mut);
        accepted += scan_checked(mut.data, mut.len);
    }
    printf("# json_random_mutations: %d of 20000 mutants still valid\n", accepted);
    rk_buf_free(&doc);
    rk_buf_free(&mut);
}

/* ---- rk_json_member ------------------------------------------------------------ */

/* rk_json_member on an exact-length copy of obj; on RK_OK the value is
 * copied into out (NUL-terminated). Checks that the span lies inside the
 * input and that nothing is written on an error. */
static rk_err member(const char *obj, const char *name, char *out, size_t cap)
{
    size_t len = strlen(obj);
    char *copy = exact_copy(obj, len);
    const char *v = NULL;
    size_t vl = 12345;
    rk_err err = rk_json_member(copy, len, name, &v, &vl);
    if (err == RK_OK) {
        assert_true(v >= copy && v + vl <= copy + len);
        assert_true(vl < cap);
        memcpy(out, v, vl);
        out[vl] = '\0';
    } else {
        assert_null(v);
        assert_int_equal(vl, 12345);
    }
    free(copy);
    return err;
}

static void check_member(const char *obj, const char *name, const char *want)
{
    char got[512];
    rk_err err = member(obj, name, got, sizeof got);
    if (err != RK_OK)
        print_error("member \"%s\" of %s: %s\n", name, obj, rk_errcode(err));
    assert_int_equal(err, RK_OK);
    assert_string_equal(got, want);
}

static void check_member_error(const char *obj, const char *name, rk_err want)
{
    char got[512];
    rk_err err = member(obj, name, got, sizeof got);
    if (err != want)
        print_error("member \"%s\" of %s: %s, want %s\n", name, obj, rk_errcode(err),
                    rk_errcode(want));
    assert_int_equal(err, want);
}

static void test_json_member_present(void **state)
{
    (void)state;
    const char *big = "{\"big\": 12345678901234567890, \"f\": 1.50}";
    check_member(big, "big", "12345678901234567890");
    check_member(big, "f", "1.50");
    check_member("{\"a\":1}", "a", "1");
    check_member("{\"n\":null,\"t\":true}", "n", "null");
    check_member("{\"n\":null,\"t\":true}", "t", "true");
    check_member("{\"s\":\"x \\\"y\\\" \\u00e9 \xc3\xa9\"}", "s",
                 "\"x \\\"y\\\" \\u00e9 \xc3\xa9\"");
    check_member("{\"o\":{\"a\": [1, {}]},\"l\":[]}", "o", "{\"a\": [1, {}]}");
    check_member("{\"o\":{\"a\": [1, {}]},\"l\":[]}", "l", "[]");
    check_member("{\"\":0}", "", "0");
    check_member("{\"caf\xc3\xa9\":\"ok\"}", "caf\xc3\xa9", "\"ok\"");
    /* Names are compared on their raw text. */
    check_member("{\"\\u0061\":1}", "\\u0061", "1");
    check_member_error("{\"\\u0061\":1}", "a", RK_ENOTFOUND);
}

static void test_json_member_whitespace(void **state)
{
    (void)state;
    /* White space around the object, the name, the colon and the value is
     * not part of the span; white space inside the value is. */
    check_member(" \t\n{ \"a\" \r: \n [ 1 , 2 ] \t, \"b\" :2 } \n", "a", "[ 1 , 2 ]");
    check_member(" \t\n{ \"a\" \r: \n [ 1 , 2 ] \t, \"b\" :2 } \n", "b", "2");
    check_member("{\"a\":\" padded \" }", "a", "\" padded \"");
    check_member("{\n  \"a\": {\n    \"b\": 1\n  }\n}\n", "a", "{\n    \"b\": 1\n  }");
}

static void test_json_member_absent(void **state)
{
    (void)state;
    check_member_error("{}", "a", RK_ENOTFOUND);
    check_member_error(" { } ", "a", RK_ENOTFOUND);
    check_member_error("{\"b\":1}", "a", RK_ENOTFOUND);
    check_member_error("{\"ab\":1,\"A\":2,\"a \":3,\" a\":4}", "a", RK_ENOTFOUND);
    check_member_error("{\"a\":1}", "ab", RK_ENOTFOUND);
    check_member_error("{\"a\":1}", "", RK_ENOTFOUND);
    /* A value that reads like the name is not a name. */
    check_member_error("{\"x\":\"a\",\"y\":[\"a\"]}", "a", RK_ENOTFOUND);
    check_member_error("{\"s\":\"\\\"a\\\":2\"}", "a", RK_ENOTFOUND);
}

/* Only top-level members count. */
static void test_json_member_nested_not_matched(void **state)
{
    (void)state;
    check_member_error("{\"o\":{\"a\":1}}", "a", RK_ENOTFOUND);
    check_member_error("{\"l\":[{\"a\":1}],\"o\":{\"p\":{\"a\":2}}}", "a", RK_ENOTFOUND);
    check_member("{\"o\":{\"a\":1},\"a\":2}", "a", "2");
    check_member("{\"a\":2,\"o\":{\"a\":1}}", "a", "2");
    check_member("{\"a\":{\"a\":{\"a\":3}}}", "a", "{\"a\":{\"a\":3}}");
}

static void test_json_member_duplicates(void **state)
{
    (void)state;
    check_member("{\"a\":1,\"a\":2}", "a", "2");
    check_member("{\"a\":1,\"b\":0,\"a\":{\"c\":3}}", "a", "{\"c\":3}");
    check_member("{\"a\":[1],\"a\":null}", "a", "null");
    check_member("{\"a\":1,\"b\":0,\"a\":{\"c\":3}}", "b", "0");
}

static void test_json_member_invalid_object(void **state)
{
    (void)state;
    static const char *bad[] = {
        /* not an object */
        "",
        " ",
        "[]",
        "[{\"a\":1}]",
        "1",
        "\"a\"",
        "null",
        "true",
        "\"{\\\"a\\\":1}\"",
        /* broken objects, some broken after the member was found */
        "{",
        "}",
        "{\"a\"",
        "{\"a\":",
        "{\"a\":1",
        "{\"a\":1,",
        "{\"a\":1,}",
        "{,\"a\":1}",
        "{\"a\":1}x",
        "{\"a\":1}{}",
        "{\"a\":1} 2",
        "{\"a\"}",
        "{\"a\" 1}",
        "{a:1}",
        "{'a':1}",
        "{\"a\":01}",
        "{\"a\":1 \"b\":2}",
        "{\"a\":1,\"b\":[}",
        "{\"b\":tru,\"a\":1}",
        "{\"a\":1,\"b\":\"\xff\"}",
        "{\"a\":\"\x01\"}",
        "{1:2}",
        "{\"a\":1]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        check_member_error(bad[i], "a", RK_EINVAL);
    /* A NUL byte after a valid object. */
    const char *v = NULL;
    size_t vl = 0;
    assert_int_equal(rk_json_member("{\"a\":1}\0", 8, "a", &v, &vl), RK_EINVAL);
}

/* The object is one level of the 128: a member's value may open 127 more. */
static void test_json_member_depth(void **state)
{
    (void)state;
    for (int levels = 126; levels <= 128; levels++) {
        size_t len;
        char *inner = nested(levels, "", &len);
        rk_buf obj = {0};
        rk_buf_appends(&obj, "{\"a\":");
        rk_buf_append(&obj, inner, len);
        rk_buf_appends(&obj, "}");
        char *copy = exact_copy(obj.data, obj.len);
        const char *v = NULL;
        size_t vl = 0;
        rk_err err = rk_json_member(copy, obj.len, "a", &v, &vl);
        assert_int_equal(err, levels <= 127 ? RK_OK : RK_EINVAL);
        if (err == RK_OK)
            assert_int_equal(vl, len);
        free(copy);
        free(inner);
        rk_buf_free(&obj);
    }
}

/* ---- rk_json_array_next and rk_json_object_next ---------------------------------- */

#define MAX_ITEMS 16

typedef struct items {
    size_t n;
    char text[MAX_ITEMS][512];
    rk_err end; /* what ended the iteration */
} items;

/* Iterates an exact-length copy of arr to its end. Every item must lie
 * inside the input and end where *pos now stands; the call that ends the
 * iteration must leave *pos alone and end it again when repeated. */
static items array_items_n(const char *arr, size_t len)
{
    items r = {0};
    char *copy = exact_copy(arr, len);
    size_t pos = 0;
    for (;;) {
        const char *item = NULL;
        size_t item_len = 0;
        rk_err err = rk_json_array_next(copy, len, &pos, &item, &item_len);
        if (err != RK_OK) {
            size_t was = pos;
            assert_null(item);
            assert_int_equal(rk_json_array_next(copy, len, &pos, &item, &item_len), err);
            assert_int_equal(pos, was);
            r.end = err;
            break;
        }
        assert_true(item >= copy && item_len > 0 && item + item_len == copy + pos);
        assert_true(pos <= len);
        assert_true(r.n < MAX_ITEMS && item_len < sizeof r.text[0]);
        memcpy(r.text[r.n], item, item_len);
        r.text[r.n++][item_len] = '\0';
    }
    free(copy);
    return r;
}

static items array_items(const char *arr)
{
    return array_items_n(arr, strlen(arr));
}

/* The items of arr must be want[0..n), then the iteration must end with
 * `end`. */
static void check_items(const char *arr, rk_err end, size_t n, const char *const *want)
{
    items r = array_items(arr);
    if (r.n != n || r.end != end)
        print_error("%s: %zu items then %s, want %zu then %s\n", arr, r.n, rk_errcode(r.end), n,
                    rk_errcode(end));
    assert_int_equal(r.n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(r.text[i], want[i]);
    assert_int_equal(r.end, end);
}

#define CHECK_ITEMS(arr, end, ...)                                                                 \
    do {                                                                                           \
        static const char *const want_[] = {__VA_ARGS__};                                          \
        check_items(arr, end, sizeof want_ / sizeof want_[0], want_);                              \
    } while (0)

static void test_json_array_empty(void **state)
{
    (void)state;
    static const char *empty[] = {"[]", " [ ] ", "\n[\t\r\n]\n"};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++)
        check_items(empty[i], RK_ENOTFOUND, 0, NULL);
}

static void test_json_array_items_of_every_type(void **state)
{
    (void)state;
    CHECK_ITEMS("[1, -2.5e3, 12345678901234567890, 1.50, \"s\", \"a,b]\\\"\", \"\", true, false, "
                "null, {\"k\": [1, 2]}, {}, [], \"caf\xc3\xa9\"]",
                RK_ENOTFOUND, "1", "-2.5e3", "12345678901234567890", "1.50", "\"s\"",
                "\"a,b]\\\"\"", "\"\"", "true", "false", "null", "{\"k\": [1, 2]}", "{}", "[]",
                "\"caf\xc3\xa9\"");
    CHECK_ITEMS("\t[ 1 ,\n\"x\"\r]\n", RK_ENOTFOUND, "1", "\"x\"");
    CHECK_ITEMS("[{ \"a\" : 1 } , { }]", RK_ENOTFOUND, "{ \"a\" : 1 }", "{ }");
    CHECK_ITEMS("[0]", RK_ENOTFOUND, "0");
}

static void test_json_array_nested_arrays_are_items(void **state)
{
    (void)state;
    CHECK_ITEMS("[[1,2],[[3]],[],[ [ ] ]]", RK_ENOTFOUND, "[1,2]", "[[3]]", "[]", "[ [ ] ]");
    CHECK_ITEMS("[[\"]\", \"[\"], {\"]\": [\"[\"]}]", RK_ENOTFOUND, "[\"]\", \"[\"]",
                "{\"]\": [\"[\"]}");
    /* 128 arrays deep: the one item holds 127 of them. */
    size_t len;
    char *s = nested(128, "", &len);
    items r = array_items_n(s, len);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.end, RK_ENOTFOUND);
    free(s);
    s = nested(129, "", &len);
    r = array_items_n(s, len);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.end, RK_EINVAL);
    free(s);
}

static void test_json_array_not_an_array(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",  " ",    "{}",  "{\"a\":[1]}", "1",   "\"[1]\"", "null", "]",
        "[", "[,1]", "[]]", "[] x",        "x[]", "[}",      "{]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        check_items(bad[i], RK_EINVAL, 0, NULL);
    /* Broken further on: the items before the break come first. */
    CHECK_ITEMS("[1,2,x]", RK_EINVAL, "1", "2");
    CHECK_ITEMS("[1,]", RK_EINVAL, "1");
    CHECK_ITEMS("[1 2]", RK_EINVAL, "1");
    CHECK_ITEMS("[1", RK_EINVAL, "1");
    CHECK_ITEMS("[1,", RK_EINVAL, "1");
    CHECK_ITEMS("[1]]", RK_EINVAL, "1");
    CHECK_ITEMS("[1] 2", RK_EINVAL, "1");
    CHECK_ITEMS("[1}", RK_EINVAL, "1");
    CHECK_ITEMS("[\"a\",\"\xff\"]", RK_EINVAL, "\"a\"");
    /* A cursor past the end is refused. */
    size_t pos = 5;
    const char *item;
    size_t item_len;
    assert_int_equal(rk_json_array_next("[1]", 3, &pos, &item, &item_len), RK_EINVAL);
    assert_int_equal(pos, 5);
}

static void test_json_object_next_in_order(void **state)
{
    (void)state;
    const char *obj = " {\"b\":1, \"a\" : [2] ,\"b\":\"x\", \"e\\u0073c\":{}} ";
    static const char *const names[] = {"b", "a", "b", "e\\u0073c"};
    static const char *const values[] = {"1", "[2]", "\"x\"", "{}"};
    size_t len = strlen(obj), pos = 0, n = 0, name_len, value_len;
    char *copy = exact_copy(obj, len);
    const char *name, *value;
    rk_err err;
    while ((err = rk_json_object_next(copy, len, &pos, &name, &name_len, &value, &value_len)) ==
           RK_OK) {
        assert_true(n < 4);
        assert_int_equal(name_len, strlen(names[n]));
        assert_memory_equal(name, names[n], name_len);
        assert_int_equal(value_len, strlen(values[n]));
        assert_memory_equal(value, values[n], value_len);
        n++;
    }
    assert_int_equal(err, RK_ENOTFOUND);
    assert_int_equal(n, 4);
    free(copy);

    pos = 0;
    assert_int_equal(rk_json_object_next("{ }", 3, &pos, &name, &name_len, &value, &value_len),
                     RK_ENOTFOUND);
    assert_int_equal(rk_json_object_next("[1]", 3, &pos, &name, &name_len, &value, &value_len),
                     RK_EINVAL);
    assert_int_equal(pos, 0);
}

/* Random arrays and objects of random values: the items come back as the
 * exact text they were built from, and rk_json_member finds the last of
 * each name. */
static void test_json_iterate_random(void **state)
{
    (void)state;
    rng_seed_from_env("json_iterate_random");
    rk_buf doc = {0}, want[8] = {{0}};
    for (int i = 0; i < 2000; i++) {
        unsigned n = rng_below(8);
        bool object = rng_below(2);
        rk_buf_reset(&doc);
        gen_ws(&doc);
        rk_buf_appends(&doc, object ? "{" : "[");
        gen_ws(&doc);
        for (unsigned k = 0; k < n; k++) {
            if (k) {
                rk_buf_appends(&doc, ",");
                gen_ws(&doc);
            }
            if (object) {
                rk_buf_appendf(&doc, "\"m%u\"", k % 3); /* names repeat */
                gen_ws(&doc);
                rk_buf_appends(&doc, ":");
                gen_ws(&doc);
            }
            rk_buf_reset(&want[k]);
            gen_value(&want[k], 1);
            rk_buf_append(&doc, want[k].data, want[k].len);
            gen_ws(&doc);
        }
        rk_buf_appends(&doc, object ? "}" : "]");
        gen_ws(&doc);

        char *copy = exact_copy(doc.data, doc.len);
        size_t pos = 0, got = 0, item_len;
        const char *item;
        if (object) {
            for (unsigned m = 0; m < 4; m++) {
                char name[8];
                snprintf(name, sizeof name, "m%u", m);
                int last = -1;
                for (unsigned k = 0; k < n; k++)
                    if (k % 3 == m)
                        last = (int)k;
                rk_err err = rk_json_member(copy, doc.len, name, &item, &item_len);
                if (last < 0) {
                    assert_int_equal(err, RK_ENOTFOUND);
                    continue;
                }
                if (err != RK_OK)
                    print_error("document %d: %s not found in %s\n", i, name, doc.data);
                assert_int_equal(err, RK_OK);
                assert_int_equal(item_len, want[last].len);
                assert_memory_equal(item, want[last].data, item_len);
            }
        } else {
            rk_err err;
            while ((err = rk_json_array_next(copy, doc.len, &pos, &item, &item_len)) == RK_OK) {
                assert_true(got < n);
                assert_int_equal(item_len, want[got].len);
                assert_memory_equal(item, want[got].data, item_len);
                got++;
            }
            if (err != RK_ENOTFOUND || got != n)
                print_error("document %d: %zu of %u items, then %s: %s\n", i, got, n,
                            rk_errcode(err), doc.data);
            assert_int_equal(err, RK_ENOTFOUND);
            assert_int_equal(got, n);
        }
        free(copy);
    }
    rk_buf_free(&doc);
    for (size_t k = 0; k < 8; k++)
        rk_buf_free(&want[k]);
}

/* ---- shared primitives: byte order, hex, arrays, clock ------------------- */

static void test_be64_be32_known_bytes(void **state)
{
    (void)state;
    unsigned char b[9] = {0};
    /* Unaligned on purpose: the helpers must not assume alignment. */
    rk_store_be64(b + 1, 0x0102030405060708u);
    const unsigned char want64[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(b + 1, want64, 8);
    assert_true(rk_load_be64(b + 1) == 0x0102030405060708u);
    rk_store_be64(b, UINT64_MAX);
    assert_true(rk_load_be64(b) == UINT64_MAX);

    unsigned char c[5] = {0};
    rk_store_be32(c + 1, 0xa1b2c3d4u);
    const unsigned char want32[4] = {0xa1, 0xb2, 0xc3, 0xd4};
    assert_memory_equal(c + 1, want32, 4);
    assert_true(rk_load_be32(c + 1) == 0xa1b2c3d4u);
}

static void test_be64_round_trip_sorts_as_numbers(void **state)
{
    (void)state;
    rng_seed_from_env("be64_round_trip_sorts_as_numbers");
    for (int i = 0; i < 1000; i++) {
        uint64_t x = rng_next(), y = rng_next() >> (rng_next() % 64);
        unsigned char a[8], b[8];
        rk_store_be64(a, x);
        rk_store_be64(b, y);
        assert_true(rk_load_be64(a) == x);
        assert_true(rk_load_be64(b) == y);
        int bytes = memcmp(a, b, 8), nums = (x > y) - (x < y);
        assert_int_equal(bytes < 0 ? -1 : bytes > 0, nums);
        uint32_t w = (uint32_t)x;
        rk_store_be32(a, w);
        assert_true(rk_load_be32(a) == w);
    }
}

static void test_hex_value(void **state)
{
    (void)state;
    const char *digits = "0123456789abcdef", *upper = "ABCDEF";
    for (int i = 0; i < 16; i++)
        assert_int_equal(rk_hex_value(digits[i]), i);
    for (int i = 0; i < 6; i++)
        assert_int_equal(rk_hex_value(upper[i]), 10 + i);
    const char *not_hex = "gG/:@`xz ";
    for (size_t i = 0; i < strlen(not_hex); i++)
        assert_int_equal(rk_hex_value(not_hex[i]), -1);
    assert_int_equal(rk_hex_value('\0'), -1);
    assert_int_equal(rk_hex_value((char)0xc3), -1);
}

static void test_hex_encode_decode(void **state)
{
    (void)state;
    const unsigned char bin[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char text[13] = {0};
    rk_hex_encode(bin, sizeof bin, false, text);
    assert_string_equal(text, "00017f80abff");
    rk_hex_encode(bin, sizeof bin, true, text);
    assert_string_equal(text, "00017F80ABFF");
    unsigned char back[6];
    assert_int_equal(rk_hex_decode("00017f80ABff", 12, back), RK_OK);
    assert_memory_equal(back, bin, sizeof bin);
    assert_int_equal(rk_hex_decode("", 0, back), RK_OK);
    assert_int_equal(rk_hex_decode("abc", 3, back), RK_EINVAL);
    assert_int_equal(rk_hex_decode("0g", 2, back), RK_EINVAL);
    assert_int_equal(rk_hex_decode("-1", 2, back), RK_EINVAL);

    rng_seed_from_env("hex_encode_decode");
    for (int round = 0; round < 200; round++) {
        unsigned char in[32], out[32];
        char t[64];
        size_t len = rng_below(33);
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)rng_next();
        rk_hex_encode(in, len, rng_below(2) == 1, t);
        assert_int_equal(rk_hex_decode(t, 2 * len, out), RK_OK);
        if (len)
            assert_memory_equal(out, in, len);
    }
}

static void test_hex_parse_u64(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_int_equal(rk_hex_parse_u64("0", 1, &v), RK_OK);
    assert_true(v == 0);
    assert_int_equal(rk_hex_parse_u64("ffffffffffffffff", 16, &v), RK_OK);
    assert_true(v == UINT64_MAX);
    assert_int_equal(rk_hex_parse_u64("00000000DeadBeef", 16, &v), RK_OK);
    assert_true(v == 0xdeadbeefu);
    v = 7;
    assert_int_equal(rk_hex_parse_u64("", 0, &v), RK_EINVAL);
    assert_int_equal(rk_hex_parse_u64("10000000000000000", 17, &v), RK_EINVAL);
    assert_int_equal(rk_hex_parse_u64("12 4", 4, &v), RK_EINVAL);
    assert_int_equal(rk_hex_parse_u64("0x12", 4, &v), RK_EINVAL);
    assert_true(v == 7); /* set on success only */
}

static void test_array_grow(void **state)
{
    (void)state;
    uint64_t *items = NULL;
    size_t cap = 0;
    assert_int_equal(rk_array_grow((void **)&items, &cap, 0, sizeof *items), RK_OK);
    assert_null(items);
    assert_int_equal(cap, 0);
    /* Appending one at a time: values survive every move, and the capacity
     * doubles, so 10000 appends take a handful of reallocs. */
    int grows = 0;
    for (size_t n = 0; n < 10000; n++) {
        size_t before = cap;
        assert_int_equal(rk_array_grow((void **)&items, &cap, n + 1, sizeof *items), RK_OK);
        assert_true(cap >= n + 1);
        if (cap != before) {
            grows++;
            assert_true(before == 0 ? cap == 8 : cap == 2 * before);
        }
        items[n] = n * 3;
    }
    assert_true(grows <= 12);
    for (size_t n = 0; n < 10000; n++)
        assert_true(items[n] == n * 3);
    /* A large jump goes straight to a power-of-two multiple past it. */
    size_t old = cap;
    assert_int_equal(rk_array_grow((void **)&items, &cap, old * 5, sizeof *items), RK_OK);
    assert_true(cap >= old * 5 && cap <= old * 8);
    /* Overflow fails and leaves the array as it was. */
    uint64_t *keep = items;
    size_t keep_cap = cap;
    assert_int_equal(rk_array_grow((void **)&items, &cap, SIZE_MAX / 4, sizeof *items), RK_ENOMEM);
    assert_ptr_equal(items, keep);
    assert_int_equal(cap, keep_cap);
    free(items);
}

static void test_monotonic_clock_and_deadlines(void **state)
{
    (void)state;
    uint64_t a = rk_monotonic_ms();
    uint64_t d = rk_deadline_after_ms(250);
    assert_true(d >= a + 250);
    rk_sleep_ms(20);
    uint64_t b = rk_monotonic_ms();
    assert_true(b >= a + 19); /* nanosleep may round, never run short by a ms */
    assert_true(b < d);
    /* A condition variable on the same clock times out at the deadline. */
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond;
    assert_int_equal(rk_cond_init_monotonic(&cond), 0);
    pthread_mutex_lock(&mu);
    uint64_t until = rk_deadline_after_ms(30);
    int rc = 0;
    while (rc == 0)
        rc = rk_cond_wait_until(&cond, &mu, until);
    pthread_mutex_unlock(&mu);
    assert_int_equal(rc, ETIMEDOUT);
    assert_true(rk_monotonic_ms() >= until);
    pthread_cond_destroy(&cond);
}

/* The hash map against a plain array: random puts, gets and removes over a
 * small key space (so probe runs collide and wrap), then a visit that
 * removes every other entry. Keys are bytes, NULs included. */
static void test_map_against_an_array(void **state)
{
    (void)state;
    rng_state_set(rng_seed_from_env("map_against_an_array"));
    enum { KEYS = 300 };
    void *ref[KEYS] = {0};
    rk_map m = {0};
    for (int round = 0; round < 20000; round++) {
        unsigned k = rng_below(KEYS);
        char key[8] = {'k', 0, (char)(k >> 8), (char)k};
        size_t len = 4;
        unsigned op = rng_below(3);
        if (op == 0) {
            void *v = (void *)(uintptr_t)(round + 1);
            assert_int_equal(rk_map_put(&m, key, len, v), RK_OK);
            ref[k] = v;
        } else if (op == 1) {
            assert_ptr_equal(rk_map_remove(&m, key, len), ref[k]);
            ref[k] = NULL;
        }
        assert_ptr_equal(rk_map_get(&m, key, len), ref[k]);
    }
    size_t live = 0;
    for (unsigned k = 0; k < KEYS; k++) {
        char key[8] = {'k', 0, (char)(k >> 8), (char)k};
        assert_ptr_equal(rk_map_get(&m, key, 4), ref[k]);
        live += ref[k] != NULL;
    }
    assert_int_equal(m.len, live);
    assert_null(rk_map_get(&m, "k", 1)); /* a prefix is another key */
    rk_map_free(&m);
}

static bool remove_odd_cb(void *arg, const char *key, size_t key_len, void *value)
{
    (void)key, (void)key_len;
    size_t *seen = arg;
    (*seen)++;
    return ((uintptr_t)value & 1) != 0;
}

static void test_map_visit_removes(void **state)
{
    (void)state;
    rk_map m = {0};
    for (uintptr_t i = 1; i <= 1000; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "key%lu", (unsigned long)i);
        assert_int_equal(rk_map_put(&m, key, (size_t)n, (void *)i), RK_OK);
    }
    size_t seen = 0;
    rk_map_visit(&m, remove_odd_cb, &seen);
    assert_true(seen >= 1000);
    assert_int_equal(m.len, 500);
    for (uintptr_t i = 1; i <= 1000; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "key%lu", (unsigned long)i);
        assert_ptr_equal(rk_map_get(&m, key, (size_t)n), i % 2 ? NULL : (void *)i);
    }
    rk_map_free(&m);
}

static void test_reachable_http_addr(void **state)
{
    (void)state;
    char dst[64];
    rk_reachable_http_addr("10.0.0.5:8001", "10.0.0.5:9001", dst, sizeof dst);
    assert_string_equal(dst, "10.0.0.5:8001");
    /* a container listening on every address: reached by its RPC host */
    rk_reachable_http_addr("0.0.0.0:8001", "ringkv2:9001", dst, sizeof dst);
    assert_string_equal(dst, "ringkv2:8001");
    rk_reachable_http_addr("[::]:8001", "[fd00::2]:9001", dst, sizeof dst);
    assert_string_equal(dst, "[fd00::2]:8001");
    rk_reachable_http_addr(":8001", "node3:9001", dst, sizeof dst);
    assert_string_equal(dst, "node3:8001");
    /* 0.0.0.0 is only a wildcard as the whole host */
    rk_reachable_http_addr("10.0.0.0:8001", "a:9001", dst, sizeof dst);
    assert_string_equal(dst, "10.0.0.0:8001");
}

/* ---- the seeded random source (rng.c) ----------------------------------------- */

static void test_rng_is_repeatable_and_bounded(void **state)
{
    (void)state;
    rk_rng a, b;
    rk_rng_seed(&a, 42);
    rk_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++)
        assert_true(rk_rng_next(&a) == rk_rng_next(&b));
    unsigned hits[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t v = rk_rng_below(&a, 7);
        assert_true(v < 7);
        hits[v]++;
    }
    for (int i = 0; i < 7; i++) /* 10000 expected, sd ~93 */
        assert_true(hits[i] > 9500 && hits[i] < 10500);
    assert_true(rk_rng_below(&a, 1) == 0);
    assert_true(rk_rng_below(&a, 0) == 0);
    double sum = 0;
    for (int i = 0; i < 10000; i++) {
        double u = rk_rng_unit(&a);
        assert_true(u >= 0 && u < 1);
        sum += u;
    }
    assert_true(sum > 4800 && sum < 5200); /* mean 0.5, sd of the sum ~29 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_is_repeatable_and_bounded),
        cmocka_unit_test(test_reachable_http_addr),
        cmocka_unit_test(test_err_names_cover_every_value),
        cmocka_unit_test(test_buf_append_keeps_nul),
        cmocka_unit_test(test_buf_grows_across_many_appends),
        cmocka_unit_test(test_buf_appendf),
        cmocka_unit_test(test_buf_reset_keeps_memory),
        cmocka_unit_test(test_buf_json_string),
        cmocka_unit_test(test_b64url_known_vectors),
        cmocka_unit_test(test_b64url_round_trip_random),
        cmocka_unit_test(test_b64url_decode_rejects),
        cmocka_unit_test(test_b64url_decode_rejects_non_ascii),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_invalid),
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_url_encode),
        cmocka_unit_test(test_json_accepts),
        cmocka_unit_test(test_json_rejects),
        cmocka_unit_test(test_json_depth_limit_allows_128),
        cmocka_unit_test(test_json_depth_limit_rejects_129),
        cmocka_unit_test(test_json_random_valid_documents),
        cmocka_unit_test(test_json_random_mutations),
        cmocka_unit_test(test_json_member_present),
        cmocka_unit_test(test_json_member_whitespace),
        cmocka_unit_test(test_json_member_absent),
        cmocka_unit_test(test_json_member_nested_not_matched),
        cmocka_unit_test(test_json_member_duplicates),
        cmocka_unit_test(test_json_member_invalid_object),
        cmocka_unit_test(test_json_member_depth),
        cmocka_unit_test(test_json_array_empty),
        cmocka_unit_test(test_json_array_items_of_every_type),
        cmocka_unit_test(test_json_array_nested_arrays_are_items),
        cmocka_unit_test(test_json_array_not_an_array),
        cmocka_unit_test(test_json_object_next_in_order),
        cmocka_unit_test(test_json_iterate_random),
        cmocka_unit_test(test_be64_be32_known_bytes),
        cmocka_unit_test(test_be64_round_trip_sorts_as_numbers),
        cmocka_unit_test(test_hex_value),
        cmocka_unit_test(test_hex_encode_decode),
        cmocka_unit_test(test_hex_parse_u64),
        cmocka_unit_test(test_array_grow),
        cmocka_unit_test(test_monotonic_clock_and_deadlines),
        cmocka_unit_test(test_map_against_an_array),
        cmocka_unit_test(test_map_visit_removes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
