/* json_scan.c - the spans of a write body's "value" and "context", found
 * with the common JSON scanner (ringkv/common.h): the value is stored as the
 * exact text the client sent, and no tree is built on the PUT path. */
#include <string.h>

#include "http_internal.h"

/* Is the raw member name name[0..len) exactly want? */
static bool name_is(const char *name, size_t len, const char *want)
{
    size_t n = strlen(want);
    return len == n && memcmp(name, want, n) == 0;
}

/* A context is base64url: a plain string with no escapes. */
static bool plain_string(const char *v, size_t len)
{
    return v[0] == '"' && memchr(v + 1, '\\', len - 2) == NULL;
}

/* Members are taken in order, so a bad context is reported as soon as it is
 * reached, and a later "context": null does not undo an earlier one. */
rk_err http_json_scan_write_body(const char *body, size_t len, write_body *out, const char **code)
{
    memset(out, 0, sizeof *out);
    *code = "bad_json";
    size_t pos = 0, name_len, value_len;
    const char *name, *value;
    rk_err err;
    while ((err = rk_json_object_next(body, len, &pos, &name, &name_len, &value, &value_len)) ==
           RK_OK) {
        if (name_is(name, name_len, "value")) {
            out->value = value;
            out->value_len = value_len;
        } else if (name_is(name, name_len, "context") && !(value[0] == 'n' && value_len == 4)) {
            if (!plain_string(value, value_len)) {
                *code = "bad_context";
                return RK_EINVAL;
            }
            out->context = value + 1;
            out->context_len = value_len - 2;
        }
    }
    return err == RK_ENOTFOUND ? RK_OK : RK_EINVAL;
}
