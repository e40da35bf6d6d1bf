/* context.c - the causal context clients carry: base64url(ringkv.Context). */
#include <stdlib.h>

#include "clock_internal.h"

/* Appends the context text for clock to out (NUL-terminated, as rk_buf
 * keeps it). The empty clock packs to zero bytes and so encodes to "":
 * context_decode accepts "" as the empty clock, and callers that must tell
 * "no context" from "the empty context" do so by whether the client sent
 * one at all, not by its text. On error out's contents are unchanged. */
rk_err context_encode(const vclock *clock, rk_buf *out)
{
    Ringkv__ClockEntry **entries = NULL;
    rk_err err = vclock_to_proto(clock, &entries);
    if (err != RK_OK)
        return err;
    Ringkv__Context msg = RINGKV__CONTEXT__INIT;
    msg.n_clock = clock->len;
    msg.clock = entries;
    size_t size = ringkv__context__get_packed_size(&msg);
    uint8_t *packed = malloc(size ? size : 1);
    if (packed == NULL) {
        free(entries);
        return RK_ENOMEM;
    }
    ringkv__context__pack(&msg, packed);
    free(entries);
    size_t before = out->len;
    err = rk_b64url_encode(packed, size, out);
    free(packed);
    if (err != RK_OK && out->data != NULL) {
        out->len = before;
        out->data[before] = '\0';
    }
    return err;
}

/* Fills clock (zeroed by the caller, set on success only, freed with
 * vclock_free) from context text. RK_EINVAL for anything that is not
 * base64url of a ringkv.Context whose entries are sorted by actor, unique
 * and non-zero; RK_ENOMEM when memory runs out, which is not the client's
 * fault. "" is the empty clock (see context_encode). */
rk_err context_decode(const char *text, size_t len, vclock *clock)
{
    if (len == 0) {
        *clock = (vclock){0};
        return RK_OK;
    }
    rk_buf bin = {0};
    rk_err err = rk_b64url_decode(text, len, &bin);
    if (err != RK_OK) {
        rk_buf_free(&bin);
        return err;
    }
    clock_pb_alloc alloc;
    clock_pb_alloc_init(&alloc);
    Ringkv__Context *msg = ringkv__context__unpack(&alloc.base, bin.len, (const uint8_t *)bin.data);
    rk_buf_free(&bin);
    if (msg == NULL)
        return alloc.failed ? RK_ENOMEM : RK_EINVAL;
    vclock c = {0};
    err = vclock_from_proto(msg->clock, msg->n_clock, &c);
    ringkv__context__free_unpacked(msg, &alloc.base);
    if (err != RK_OK)
        return err;
    *clock = c;
    return RK_OK;
}
