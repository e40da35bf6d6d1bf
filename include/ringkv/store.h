/* store.h - one RocksDB per node: objects, hints and node metadata.
 *
 * Column families: `data` (objects, keyed by ring position so that a ring
 * range is one contiguous scan), `hints` (writes held for a down replica)
 * and `meta` (node id, members, counters). Keys in `data` are
 *     8-byte big-endian ring position | table | 0x00 | key
 * A table name never holds a NUL byte, so the encoding is unambiguous. */
#ifndef RINGKV_STORE_H
#define RINGKV_STORE_H

#include "ringkv/common.h"

typedef struct store store;

typedef struct store_options {
    bool sync;               /* fsync the WAL on every write (power loss) */
    bool create_if_missing;  /* default true via store_options_default */
    size_t cache_bytes;      /* block cache; 0 = RocksDB default */
} store_options;

void store_options_default(store_options *opts);

/* Opens (creating if allowed) the database under dir. Free with
 * store_close. RK_EIO with the RocksDB message logged on failure. */
rk_err store_open(const char *dir, const store_options *opts, store **out);
/* Flushes nothing extra (the WAL is durable), closes, frees. NULL is ok. */
void store_close(store *st);

/* Builds the `data` key for (position, table, key); appends to out. */
rk_err store_data_key(uint64_t position, const char *table, size_t table_len,
                      const char *key, size_t key_len, rk_buf *out);
/* Splits a `data` key. Pointers point into dbkey. RK_ECORRUPT if malformed. */
rk_err store_data_key_parse(const char *dbkey, size_t len, uint64_t *position,
                            const char **table, size_t *table_len,
                            const char **key, size_t *key_len);

/* Reads the object bytes for dbkey into out (appended). RK_ENOTFOUND if
 * absent. */
rk_err store_get(store *st, const char *dbkey, size_t dbkey_len, rk_buf *out);

/* Read-merge-write of one key under its lock stripe. update_cb gets the
 * current bytes (old == NULL, old_len == 0 when absent) and appends the new
 * bytes to out. If it returns RK_OK the new bytes are written (one WAL'd
 * put); any other value aborts the write and is returned as is. The
 * callback must not call back into the store. */
typedef rk_err (*store_update_cb)(void *arg, const char *old, size_t old_len,
                                  rk_buf *out);
rk_err store_apply(store *st, const char *dbkey, size_t dbkey_len,
                   store_update_cb update_cb, void *arg);

/* Iterates `data` keys in [start, end) in key order (end NULL = to the end),
 * calling visit_cb for each; visit_cb returns true to go on. The pointers
 * are valid only during the call. */
typedef bool (*store_visit_cb)(void *arg, const char *dbkey, size_t dbkey_len,
                               const char *val, size_t val_len);
rk_err store_scan(store *st, const char *start, size_t start_len,
                  const char *end, size_t end_len,
                  store_visit_cb visit_cb, void *arg);

/* `meta` column family: small named values. meta_get appends to out,
 * RK_ENOTFOUND if absent. meta_put is synced to disk. */
rk_err store_meta_get(store *st, const char *name, rk_buf *out);
rk_err store_meta_put(store *st, const char *name, const void *val, size_t len);

/* This node's 64-bit id: read from `meta`, or made (random) and saved on the
 * first open. */
rk_err store_node_id(store *st, uint64_t *out);

/* Storage statistics for /metrics. */
typedef struct store_stats {
    uint64_t keys_estimate;
    uint64_t sst_bytes;
    uint64_t memtable_bytes;
    uint64_t live_data_bytes;
} store_stats;
rk_err store_get_stats(store *st, store_stats *out);

#endif
