/* records.c - local records as the sync parts read them: one range scan
 * into one buffer, each record with its digest. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ringkv/clock.h"
#include "sync_internal.h"

void sync_records_reset(sync_records *rs)
{
    rk_buf_reset(&rs->bytes);
    rs->count = 0;
}

void sync_records_free(sync_records *rs)
{
    rk_buf_free(&rs->bytes);
    free(rs->items);
    *rs = (sync_records){0};
}

const char *sync_record_key(const sync_records *rs, size_t i)
{
    return rs->bytes.data + rs->items[i].key_off;
}

const char *sync_record_value(const sync_records *rs, size_t i)
{
    return rs->bytes.data + rs->items[i].val_off;
}

uint64_t sync_key_position(const void *dbkey)
{
    return rk_load_be64(dbkey);
}

void sync_digest(const void *val, size_t len, uint8_t out[SYNC_DIGEST_BYTES])
{
    crypto_generichash(out, SYNC_DIGEST_BYTES, val, len, NULL, 0);
}

rk_err sync_records_add(sync_records *rs, const void *key, size_t key_len, const void *val,
                        size_t val_len)
{
    if (rk_array_grow((void **)&rs->items, &rs->cap, rs->count + 1, sizeof *rs->items) != RK_OK)
        return RK_ENOMEM;
    sync_record *it = &rs->items[rs->count];
    it->key_off = rs->bytes.len;
    it->key_len = key_len;
    it->val_off = rs->bytes.len + key_len;
    it->val_len = val_len;
    if (rk_buf_append(&rs->bytes, key, key_len) != RK_OK ||
        rk_buf_append(&rs->bytes, val, val_len) != RK_OK)
        return RK_ENOMEM;
    sync_digest(val, val_len, it->digest);
    rs->count++;
    return RK_OK;
}

typedef struct scan_ctx {
    const sync_rings *r;
    sync_range_filter filter_cb;
    void *arg;
    sync_records *out;
    rk_err err;
} scan_ctx;

static bool scan_cb(void *arg, const char *dbkey, size_t dbkey_len, const char *val, size_t val_len)
{
    scan_ctx *c = arg;
    if (dbkey_len < 8 || (c->filter_cb != NULL &&
                          !c->filter_cb(c->arg, sync_range_of(c->r, sync_key_position(dbkey)))))
        return true;
    c->err = sync_records_add(c->out, dbkey, dbkey_len, val, val_len);
    return c->err == RK_OK;
}

static void pos_key(uint64_t pos, char out[8])
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (char)(pos & 0xff);
        pos >>= 8;
    }
}

rk_err sync_records_scan(sync_service *s, const sync_rings *r, uint64_t start, uint64_t end,
                         sync_range_filter filter_cb, void *arg, sync_records *out)
{
    char from[8], to[8];
    pos_key(start, from);
    pos_key(end, to);
    scan_ctx c = {r, filter_cb, arg, out, RK_OK};
    rk_err err =
        store_scan(s->st, from, sizeof from, end == 0 ? NULL : to, end == 0 ? 0 : 8, scan_cb, &c);
    return err != RK_OK ? err : c.err;
}

bool sync_expired_tombstone(const void *val, size_t len, uint64_t cutoff_ms)
{
    /* A tombstone-only object is a clock and a few empty siblings: skip
     * the decode for anything big enough to hold a value. */
    if (len > 256)
        return false;
    rk_object obj = {0};
    if (object_decode(val, len, &obj) != RK_OK)
        return false;
    bool expired = obj.len > 0 && object_live_count(&obj) == 0;
    for (size_t i = 0; expired && i < obj.len; i++)
        expired = obj.siblings[i].timestamp_ms < cutoff_ms;
    object_free(&obj);
    return expired;
}

static int key_cmp(const void *a, size_t a_len, const void *b, size_t b_len)
{
    int c = memcmp(a, b, a_len < b_len ? a_len : b_len);
    if (c != 0)
        return c;
    return (a_len > b_len) - (a_len < b_len);
}

rk_err sync_compare(const sync_records *rs, const Ringkv__SyncDigestsReply *remote,
                    sync_compare_cb cb, void *arg)
{
    size_t i = 0, j = 0;
    while (i < rs->count || j < remote->n_digests) {
        const Ringkv__SyncDigest *d = j < remote->n_digests ? remote->digests[j] : NULL;
        int c = d == NULL        ? -1
                : i == rs->count ? 1
                                 : key_cmp(sync_record_key(rs, i), rs->items[i].key_len,
                                           d->dbkey.data, d->dbkey.len);
        rk_err err;
        if (c < 0)
            err = cb(arg, i++, NULL);
        else if (c > 0)
            err = cb(arg, SIZE_MAX, remote->digests[j++]);
        else {
            bool same = d->digest.len == SYNC_DIGEST_BYTES &&
                        memcmp(d->digest.data, rs->items[i].digest, SYNC_DIGEST_BYTES) == 0;
            err = same ? RK_OK : cb(arg, i, d);
            i++, j++;
        }
        if (err != RK_OK)
            return err;
    }
    return RK_OK;
}
