/* encode.c - base64url, percent-encoding, UTF-8 validation and strict number parsing. */
#include <sodium.h>

#include "ringkv/common.h"

rk_err rk_b64url_encode(const uint8_t *bin, size_t len, rk_buf *out)
{
    const int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
    size_t maxlen = sodium_base64_ENCODED_LEN(len, variant); /* includes NUL */
    rk_err err = rk_buf_reserve(out, maxlen);
    if (err != RK_OK)
        return err;
    sodium_bin2base64(out->data + out->len, maxlen, bin, len, variant);
    out->len += maxlen - 1;
    return RK_OK;
}

rk_err rk_b64url_decode(const char *text, size_t len, rk_buf *out)
{
    /* libsodium 1.0.18's URL-safe decoder reads every byte >= 0x80 as '_',
     * so "\xc3\xa9" would decode. Check the alphabet ourselves. */
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok)
            return RK_EINVAL;
    }
    size_t maxbin = len / 4 * 3 + 3;
    rk_err err = rk_buf_reserve(out, maxbin);
    if (err != RK_OK)
        return err;
    size_t binlen = 0;
    const char *end = NULL;
    if (sodium_base642bin((unsigned char *)out->data + out->len, maxbin, text, len, NULL, &binlen,
                          &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != text + len)
        return RK_EINVAL;
    out->len += binlen;
    out->data[out->len] = '\0';
    return RK_OK;
}

bool rk_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        size_t n;
        uint32_t cp;
        if (c == 0)
            return false;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        /* Reject overlong forms, surrogates and values past U+10FFFF. */
        static const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

rk_err rk_parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return RK_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return RK_EINVAL;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return RK_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return RK_OK;
}

rk_err rk_url_encode(rk_buf *out, const char *s, size_t len)
{
    rk_err err = rk_buf_reserve(out, len * 3);
    if (err != RK_OK)
        return err;
    char *o = out->data + out->len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            rk_hex_encode(&c, 1, true, o); /* RFC 3986 prefers upper case */
            o += 2;
        }
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
    return RK_OK;
}
