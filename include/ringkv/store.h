/* store.h - one RocksDB per node: objects, hints and node metadata.
 *
 * Column families: `data` (objects, keyed by ring position so that a ring
 * range is one contiguous scan), `hints` (writes held for a down replica)
 * and `meta` (node id, members, counters). Keys in `data` are
 *     8-byte big-endian ring position | table | 0x00 | key
 * A table name never holds a NUL byte, so the encoding is unambiguous.
 *
 * Reads and writes of `data` and `hints` pass the store.read and
 * store.write failpoints (docs/failpoints.md): on a node started with
 * --failpoints, a rule can make them sleep first or return RK_EIO. */
#ifndef RINGKV_STORE_H
#define RINGKV_STORE_H

#include "ringkv/common.h"

typedef struct store store;

typedef struct store_options {
    bool sync;              /* fsync the WAL on every write (power loss) */
    bool create_if_missing; /* default true via store_options_default */
    size_t cache_bytes;     /* block cache; 0 = RocksDB default */
} store_options;

void store_options_default(store_options *opts);

/* Opens (creating if allowed) the database under dir. Free with
 * store_close. RK_EIO with the RocksDB message logged on failure. */
rk_err store_open(const char *dir, const store_options *opts, store **out);
/* Flushes nothing extra (the WAL is durable), closes, frees. NULL is ok. */
void store_close(store *st);

/* Builds the `data` key for (position, table, key); appends to out. */
rk_err store_data_key(uint64_t position, const char *table, size_t table_len, const char *key,
                      size_t key_len, rk_buf *out);
/* The same key written into out[0..cap) (no allocation); *out_len its
 * length. RK_ETOOBIG when it does not fit, RK_EINVAL for an empty table or
 * one holding a NUL. */
rk_err store_data_key_write(uint64_t position, const char *table, size_t table_len, const char *key,
                            size_t key_len, char *out, size_t cap, size_t *out_len);
/* Splits a `data` key. Pointers point into dbkey. RK_ECORRUPT if malformed. */
rk_err store_data_key_parse(const char *dbkey, size_t len, uint64_t *position, const char **table,
                            size_t *table_len, const char **key, size_t *key_len);

/* Reads the object bytes for dbkey into out (appended). RK_ENOTFOUND if
 * absent. */
rk_err store_get(store *st, const char *dbkey, size_t dbkey_len, rk_buf *out);

/* Read-merge-write of one key under its lock stripe. update_cb gets the
 * current bytes (old == NULL, old_len == 0 when absent) and appends the new
 * bytes to out. If it returns RK_OK the new bytes are written (one WAL'd
 * put); any other value aborts the write and is returned as is. The
 * callback must not call back into the store. */
typedef rk_err (*store_update_cb)(void *arg, const char *old, size_t old_len, rk_buf *out);
rk_err store_apply(store *st, const char *dbkey, size_t dbkey_len, store_update_cb update_cb,
                   void *arg);

/* Deletes the `data` record only if its bytes still equal expected, under
 * its lock stripe: handoff drops a copy it has sent, and tombstone purge a
 * tombstone every replica holds, without losing a write merged in since.
 * RK_OK deleted, RK_EPRECOND changed since, RK_ENOTFOUND gone. */
rk_err store_remove_if(store *st, const char *dbkey, size_t dbkey_len, const char *expected,
                       size_t expected_len);

/* Iterates `data` keys in [start, end) in key order (end NULL = to the end),
 * calling visit_cb for each; visit_cb returns true to go on. The pointers
 * are valid only during the call. */
typedef bool (*store_visit_cb)(void *arg, const char *dbkey, size_t dbkey_len, const char *val,
                               size_t val_len);
rk_err store_scan(store *st, const char *start, size_t start_len, const char *end, size_t end_len,
                  store_visit_cb visit_cb, void *arg);

/* `meta` column family: small named values. meta_get appends to out,
 * RK_ENOTFOUND if absent. meta_put is synced to disk. */
rk_err store_meta_get(store *st, const char *name, rk_buf *out);
rk_err store_meta_put(store *st, const char *name, const void *val, size_t len);

/* This node's 64-bit id: read from `meta`, or made (random) and saved on the
 * first open. */
rk_err store_node_id(store *st, uint64_t *out);

/* ---- hints: writes held for a replica that did not take them ---------- */

/* A hint is an encoded Object held for node `intended` (a replica that was
 * down or did not answer) under the record's data key. Keys in `hints` are
 *     8-byte big-endian intended id | data key
 * so one node's hints are one contiguous scan, in ring order. Hints written
 * for the same (intended, key) merge (the update callback decides how). */

/* store_apply for the hint of (intended, dbkey), under the same lock
 * stripes as data keys. */
rk_err store_hint_apply(store *st, uint64_t intended, const char *dbkey, size_t dbkey_len,
                        store_update_cb update_cb, void *arg);
/* Appends the hint's bytes to out; RK_ENOTFOUND if none. */
rk_err store_hint_get(store *st, uint64_t intended, const char *dbkey, size_t dbkey_len,
                      rk_buf *out);
/* Visits intended's hints in data-key order, starting after `after` (NULL =
 * from the first); visit_cb gets the data key (without the id prefix) and
 * the value and returns true to go on. Pointers are valid during the call. */
rk_err store_hint_scan(store *st, uint64_t intended, const char *after, size_t after_len,
                       store_visit_cb visit_cb, void *arg);
/* Deletes the hint only if its bytes still equal expected, under its lock
 * stripe: a write merged into it after it was read and sent must not be
 * lost. RK_OK deleted, RK_EPRECOND changed since, RK_ENOTFOUND gone. */
rk_err store_hint_remove_if(store *st, uint64_t intended, const char *dbkey, size_t dbkey_len,
                            const char *expected, size_t expected_len);
/* The ids that have at least one hint, in increasing order: writes up to
 * cap to out and returns how many there are (may exceed cap). One seek per
 * id, so cheap however many hints each holds. */
size_t store_hint_targets(store *st, uint64_t *out, size_t cap);
/* Deletes every hint held for intended (0: for every node). Returns how
 * many were deleted through *out_count (may be NULL). */
rk_err store_hint_drop(store *st, uint64_t intended, uint64_t *out_count);

/* Storage statistics for /metrics. */
typedef struct store_stats {
    uint64_t keys_estimate;
    uint64_t sst_bytes;
    uint64_t memtable_bytes;
    uint64_t live_data_bytes;
    uint64_t hints_estimate; /* records in `hints` (RocksDB estimate) */
} store_stats;
rk_err store_get_stats(store *st, store_stats *out);

#endif
