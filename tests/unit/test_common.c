/* test_common.c - unit tests of errors, byte buffers, base64url, UTF-8
 * validation and strict integer parsing. */
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

#include "ringkv/common.h"

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

static void rng_seed_from_env(const char *test)
{
    const char *env = getenv("RINGKV_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    rng_state = seed;
    printf("# %s: seed %" PRIu64 " (replay with RINGKV_TEST_SEED=%" PRIu64 ")\n", test, seed,
           seed);
}

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
        {"", ""},         {"f", "Zg"},          {"fo", "Zm8"},      {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
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
    check_b64_rejected("+A");      /* standard alphabet */
    check_b64_rejected("Zm+v");
    check_b64_rejected("Zm/v");
    check_b64_rejected("Zg==");    /* padding */
    check_b64_rejected("Zm8=");
    check_b64_rejected("=");
    check_b64_rejected("Zm9v!");
    check_b64_rejected("Zm 9v");
    check_b64_rejected("Zm9v\n");
    check_b64_rejected("a");       /* a length no encoding produces */
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
    assert_true(utf8("\xc2\x80"));                 /* U+0080, smallest 2-byte */
    assert_true(utf8("caf\xc3\xa9"));              /* 2-byte */
    assert_true(utf8("\xdf\xbf"));                 /* U+07FF */
    assert_true(utf8("\xe0\xa0\x80"));             /* U+0800, smallest 3-byte */
    assert_true(utf8("\xe2\x82\xac"));             /* euro sign */
    assert_true(utf8("\xed\x9f\xbf"));             /* U+D7FF, just below surrogates */
    assert_true(utf8("\xee\x80\x80"));             /* U+E000, just above */
    assert_true(utf8("\xef\xbf\xbf"));             /* U+FFFF */
    assert_true(utf8("\xf0\x90\x80\x80"));         /* U+10000, smallest 4-byte */
    assert_true(utf8("\xf0\x9f\x98\x80"));         /* emoji */
    assert_true(utf8("\xf4\x8f\xbf\xbf"));         /* U+10FFFF, the last */
    assert_true(utf8("a\xc3\xa9z\xe2\x82\xac\xf0\x9f\x98\x80!"));
}

static void test_utf8_invalid(void **state)
{
    (void)state;
    assert_false(rk_utf8_valid("a\0b", 3));        /* NUL */
    assert_false(rk_utf8_valid("\0", 1));
    assert_false(utf8("\xc0\xaf"));                /* overlong '/' */
    assert_false(utf8("\xc1\xbf"));                /* overlong */
    assert_false(utf8("\xe0\x80\xaf"));            /* overlong 3-byte */
    assert_false(utf8("\xe0\x9f\xbf"));            /* overlong U+07FF */
    assert_false(utf8("\xf0\x80\x80\xaf"));        /* overlong 4-byte */
    assert_false(utf8("\xf0\x8f\xbf\xbf"));        /* overlong U+FFFF */
    assert_false(utf8("\xed\xa0\x80"));            /* U+D800 */
    assert_false(utf8("\xed\xbf\xbf"));            /* U+DFFF */
    assert_false(utf8("\xf4\x90\x80\x80"));        /* U+110000 */
    assert_false(utf8("\xf5\x80\x80\x80"));
    assert_false(utf8("\xf8\x88\x80\x80\x80"));    /* 5-byte form */
    assert_false(utf8("\xff"));
    assert_false(utf8("\xfe"));
    assert_false(utf8("\x80"));                    /* lone continuation */
    assert_false(utf8("a\xbf"));
    assert_false(utf8("\xc3"));                    /* truncated */
    assert_false(utf8("\xe2\x82"));
    assert_false(utf8("\xf0\x9f\x98"));
    assert_false(utf8("ab\xf0"));
    assert_false(utf8("\xc3(a"));                  /* bad continuation */
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
        "", "-1", "+1", "1a", "a1", " 1", "1 ", "1.0", "0x10", "1e3",
        "18446744073709551616", "18446744073709551620", "99999999999999999999",
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

int main(void)
{
    const struct CMUnitTest tests[] = {
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
