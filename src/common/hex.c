/* hex.c - hexadecimal digits: one byte's value, bytes to text and back, and
 * a 64-bit number. Below every other file of common (it uses none). */
#include "ringkv/common.h"

int rk_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void rk_hex_encode(const void *bin, size_t len, bool upper, char *out)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    const unsigned char *b = bin;
    for (size_t i = 0; i < len; i++) {
        *out++ = digits[b[i] >> 4];
        *out++ = digits[b[i] & 15];
    }
}

rk_err rk_hex_decode(const char *text, size_t len, void *out)
{
    if (len % 2 != 0)
        return RK_EINVAL;
    unsigned char *o = out;
    for (size_t i = 0; i < len; i += 2) {
        int hi = rk_hex_value(text[i]), lo = rk_hex_value(text[i + 1]);
        if (hi < 0 || lo < 0)
            return RK_EINVAL;
        *o++ = (unsigned char)(hi << 4 | lo);
    }
    return RK_OK;
}

rk_err rk_hex_parse_u64(const char *text, size_t len, uint64_t *out)
{
    if (len == 0 || len > 16)
        return RK_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        int d = rk_hex_value(text[i]);
        if (d < 0)
            return RK_EINVAL;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return RK_OK;
}
