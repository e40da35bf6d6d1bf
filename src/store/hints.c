/* hints.c - writes held for a replica that did not take them (store.h). */
#include <string.h>

#include <rocksdb/c.h>

#include "store_internal.h"

#define MOD "store"

/* A hint key is `8-byte big-endian intended id | data key`: big-endian so
 * that byte order is id order and one node's hints are one contiguous range
 * (the same trick as the data key's position). */
#define ID_BYTES 8

/* ---- keys ---------------------------------------------------------------- */

/* Appends `intended | dbkey` to out, reserving once so that a failure leaves
 * out untouched. */
static rk_err hint_key(uint64_t intended, const char *dbkey, size_t dbkey_len, rk_buf *out)
{
    if (dbkey_len > SIZE_MAX - ID_BYTES)
        return RK_EINVAL;
    char id[ID_BYTES];
    rk_store_be64(id, intended);
    rk_err rc = rk_buf_reserve(out, ID_BYTES + dbkey_len);
    if (rc == RK_OK)
        rc = rk_buf_append(out, id, ID_BYTES);
    if (rc == RK_OK)
        rc = rk_buf_append(out, dbkey, dbkey_len);
    return rc;
}

/* The range [lo, hi) that holds intended's hints: hi is the next id's
 * prefix. Returns hi's length, 0 for UINT64_MAX, which has no next id; none
 * is needed there, as every key from its prefix on is one of its hints. */
static size_t id_range(uint64_t intended, char lo[ID_BYTES], char hi[ID_BYTES])
{
    rk_store_be64(lo, intended);
    if (intended == UINT64_MAX)
        return 0;
    rk_store_be64(hi, intended + 1);
    return ID_BYTES;
}

/* Id 0 is "no node" (store_node_id never issues it) and store_hint_drop's
 * "every node", so no hint is ever held for it: asking for one is a bug. */
static bool hint_args_ok(store *st, uint64_t intended, const char *dbkey)
{
    return st != NULL && intended != 0 && dbkey != NULL;
}

/* ---- one hint -------------------------------------------------------------- */

/* Read-merge-write of the hint under the data key's stripe, so that a hint
 * and its data record are serialised by one lock (see store_apply_cf). */
rk_err store_hint_apply(store *st, uint64_t intended, const char *dbkey, size_t dbkey_len,
                        store_update_cb update_cb, void *arg)
{
    if (!hint_args_ok(st, intended, dbkey) || update_cb == NULL)
        return RK_EINVAL;
    if (failpoint_armed(FAILPOINT_STORE_WRITE) && store_failpoint(FAILPOINT_STORE_WRITE) != RK_OK)
        return RK_EIO;
    rk_buf k = {0};
    rk_err rc = hint_key(intended, dbkey, dbkey_len, &k);
    if (rc == RK_OK)
        rc = store_apply_cf(st, store_hints_cf(st), k.data, k.len,
                            store_stripe_of(st, dbkey, dbkey_len), update_cb, arg);
    rk_buf_free(&k);
    return rc;
}

/* Appends the hint's bytes to out; RK_ENOTFOUND if there is none. */
rk_err store_hint_get(store *st, uint64_t intended, const char *dbkey, size_t dbkey_len,
                      rk_buf *out)
{
    if (!hint_args_ok(st, intended, dbkey) || out == NULL)
        return RK_EINVAL;
    if (failpoint_armed(FAILPOINT_STORE_READ) && store_failpoint(FAILPOINT_STORE_READ) != RK_OK)
        return RK_EIO;
    rk_buf k = {0};
    rk_err rc = hint_key(intended, dbkey, dbkey_len, &k);
    if (rc == RK_OK)
        rc = store_get_cf(st, store_hints_cf(st), k.data, k.len, out, "hint get");
    rk_buf_free(&k);
    return rc;
}

/* Compare-and-delete: the hint goes only if it is still the bytes that were
 * delivered. RK_OK deleted, RK_EPRECOND changed since, RK_ENOTFOUND gone. */
rk_err store_hint_remove_if(store *st, uint64_t intended, const char *dbkey, size_t dbkey_len,
                            const char *expected, size_t expected_len)
{
    if (!hint_args_ok(st, intended, dbkey) || (expected == NULL && expected_len != 0))
        return RK_EINVAL;
    if (failpoint_armed(FAILPOINT_STORE_WRITE) && store_failpoint(FAILPOINT_STORE_WRITE) != RK_OK)
        return RK_EIO;
    rk_buf k = {0};
    rk_err rc = hint_key(intended, dbkey, dbkey_len, &k);
    if (rc != RK_OK)
        return rc;
    pthread_mutex_t *m = store_stripe_of(st, dbkey, dbkey_len);
    pthread_mutex_lock(m);
    rc = store_remove_if_cf(st, store_hints_cf(st), k.data, k.len, expected, expected_len);
    pthread_mutex_unlock(m);
    rk_buf_free(&k);
    return rc;
}

/* ---- one node's hints ------------------------------------------------------ */

typedef struct strip_ctx {
    store_visit_cb visit_cb;
    void *arg;
    rk_err rc;
} strip_ctx;

/* Hands the caller the data key, without the id prefix. */
static bool strip_id_cb(void *arg, const char *k, size_t k_len, const char *v, size_t v_len)
{
    strip_ctx *c = arg;
    if (k_len < ID_BYTES) {
        /* Only hint_key writes here, so this is damage, not a hint. */
        RK_ERROR(MOD, "hint key of %zu bytes", k_len);
        c->rc = RK_ECORRUPT;
        return false;
    }
    return c->visit_cb(c->arg, k + ID_BYTES, k_len - ID_BYTES, v, v_len);
}

/* Visits intended's hints after `after`. The smallest key above
 * `intended | after` is that key followed by a 0x00 byte, so one seek there
 * skips `after` itself without comparing keys in the loop. */
rk_err store_hint_scan(store *st, uint64_t intended, const char *after, size_t after_len,
                       store_visit_cb visit_cb, void *arg)
{
    if (st == NULL || intended == 0 || visit_cb == NULL || (after == NULL && after_len != 0))
        return RK_EINVAL;
    if (failpoint_armed(FAILPOINT_STORE_READ) && store_failpoint(FAILPOINT_STORE_READ) != RK_OK)
        return RK_EIO;
    char lo[ID_BYTES], hi[ID_BYTES];
    size_t hi_len = id_range(intended, lo, hi);
    rk_buf start = {0};
    rk_err rc;
    if (after != NULL) {
        rc = hint_key(intended, after, after_len, &start);
        if (rc == RK_OK)
            rc = rk_buf_append(&start, "", 1);
    } else {
        rc = rk_buf_append(&start, lo, ID_BYTES);
    }
    strip_ctx c = {.visit_cb = visit_cb, .arg = arg, .rc = RK_OK};
    if (rc == RK_OK)
        rc = store_scan_cf(st, store_hints_cf(st), start.data, start.len, hi_len != 0 ? hi : NULL,
                           hi_len, strip_id_cb, &c);
    rk_buf_free(&start);
    return rc != RK_OK ? rc : c.rc;
}

/* ---- every node's hints ---------------------------------------------------- */

/* Seeks from one id's first hint straight to the next id's prefix, so the
 * cost is one seek per id, not one step per hint. The iterator reads one
 * implicit snapshot, so the list is consistent even while hints are written.
 * The declaration has no error result: an iterator error is logged and the
 * ids found before it are returned, which only delays delivery to the rest
 * until the next call. */
size_t store_hint_targets(store *st, uint64_t *out, size_t cap)
{
    if (st == NULL || (out == NULL && cap != 0))
        return 0;
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(store_db(st), store_read_options(st), store_hints_cf(st));
    size_t n = 0;
    rocksdb_iter_seek_to_first(it);
    while (rocksdb_iter_valid(it)) {
        size_t k_len = 0;
        const char *k = rocksdb_iter_key(it, &k_len);
        if (k_len < ID_BYTES) {
            RK_ERROR(MOD, "hint key of %zu bytes; skipped", k_len);
            rocksdb_iter_next(it);
            continue;
        }
        uint64_t id = rk_load_be64(k);
        if (n < cap)
            out[n] = id;
        n++;
        if (id == UINT64_MAX)
            break;
        char next[ID_BYTES];
        rk_store_be64(next, id + 1);
        rocksdb_iter_seek(it, next, ID_BYTES);
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    if (err != NULL)
        store_rocks_err(err, "hint targets"); /* logged; see above */
    return n;
}

typedef struct last_key {
    uint64_t count;
    rk_buf key;
    rk_err rc;
} last_key;

static bool count_and_keep_last_cb(void *arg, const char *k, size_t k_len, const char *v,
                                   size_t v_len)
{
    (void)v;
    (void)v_len;
    last_key *l = arg;
    rk_buf_reset(&l->key);
    l->rc = rk_buf_append(&l->key, k, k_len);
    l->count++;
    return l->rc == RK_OK;
}

/* Deletes [lo, hi) of the hints column family: one range tombstone. */
static rk_err delete_range(store *st, const char *lo, size_t lo_len, const char *hi, size_t hi_len)
{
    char *err = NULL;
    rocksdb_delete_range_cf(store_db(st), store_write_options(st), store_hints_cf(st), lo, lo_len,
                            hi, hi_len, &err);
    if (err != NULL)
        return store_rocks_err(err, "hint drop");
    return RK_OK;
}

/* Drops intended's hints (0: all of them) with one range tombstone rather
 * than one tombstone per hint: a dead node may hold millions, and point
 * tombstones would make every later targets seek and scan step over them
 * until compaction. The scan before it counts them and finds the last key;
 * its successor (the key plus 0x00) is the end of the range, which exists
 * even where the id range has none (UINT64_MAX, and "all"). A hint written
 * for intended while this runs may be deleted without being counted; hints
 * are dropped for a node that left, for which nothing should be writing. */
rk_err store_hint_drop(store *st, uint64_t intended, uint64_t *out_count)
{
    if (st == NULL)
        return RK_EINVAL;
    if (failpoint_armed(FAILPOINT_STORE_WRITE) && store_failpoint(FAILPOINT_STORE_WRITE) != RK_OK)
        return RK_EIO;
    char lo[ID_BYTES] = {0}, hi[ID_BYTES];
    size_t lo_len = 0, hi_len = 0; /* lo_len 0: from the empty key, the first */
    if (intended != 0) {
        hi_len = id_range(intended, lo, hi);
        lo_len = ID_BYTES;
    }
    last_key last = {.count = 0, .key = {0}, .rc = RK_OK};
    rk_err rc = store_scan_cf(st, store_hints_cf(st), lo_len != 0 ? lo : NULL, lo_len,
                              hi_len != 0 ? hi : NULL, hi_len, count_and_keep_last_cb, &last);
    if (rc == RK_OK)
        rc = last.rc;
    if (rc == RK_OK && last.count > 0)
        rc = rk_buf_append(&last.key, "", 1);
    if (rc == RK_OK && last.count > 0)
        rc = delete_range(st, lo, lo_len, last.key.data, last.key.len);
    rk_buf_free(&last.key);
    if (rc == RK_OK && out_count != NULL)
        *out_count = last.count;
    return rc;
}
