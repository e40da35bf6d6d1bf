/* store_internal.h - what store.c shares with the other files of the store
 * module (hints.c); nothing outside src/store includes it.
 *
 * struct store stays private to store.c: the other files reach its parts
 * through these accessors, so they see only what they use. Every pointer
 * returned is owned by the store and valid until store_close. */
#ifndef RINGKV_STORE_INTERNAL_H
#define RINGKV_STORE_INTERNAL_H

#include <pthread.h>

#include <rocksdb/c.h>

#include "ringkv/failpoint.h"
#include "ringkv/store.h"

rocksdb_t *store_db(store *st);
rocksdb_column_family_handle_t *store_hints_cf(store *st);
/* Deletes key from cf only if its bytes equal expected; the caller holds
 * the key's stripe, so no apply can change it between the compare and the
 * delete. RK_OK deleted, RK_EPRECOND changed, RK_ENOTFOUND gone. */
rk_err store_remove_if_cf(store *st, rocksdb_column_family_handle_t *cf, const char *key,
                          size_t key_len, const char *expected, size_t expected_len);
const rocksdb_readoptions_t *store_read_options(store *st);
/* Synced only if store_options.sync: for data and hints, not for meta. */
const rocksdb_writeoptions_t *store_write_options(store *st);

/* The lock stripe that serialises read-merge-writes of key[0..len). Hints
 * pass their data key, so a hint shares its data record's stripe. */
pthread_mutex_t *store_stripe_of(store *st, const char *key, size_t len);

/* What the store.write or store.read failpoint says for this call
 * (docs/failpoints.md): a delay sleeps here, in the caller's thread, as a
 * slow disk would hold it, before any lock is taken; RK_EIO when the rule
 * says fail. Call only when failpoint_armed(p): the entry points check
 * the flag first, so that it costs one branch when no rule is set. */
rk_err store_failpoint(failpoint_point p);

/* Logs a RocksDB error with what we were doing, frees it, returns RK_EIO. */
rk_err store_rocks_err(char *errptr, const char *what);

/* Appends the value of key in cf to out; RK_ENOTFOUND if absent. */
rk_err store_get_cf(store *st, rocksdb_column_family_handle_t *cf, const char *key, size_t key_len,
                    rk_buf *out, const char *what);

/* store_apply on any column family: read-merge-write of the full key in cf
 * with stripe held (the caller chooses it with store_stripe_of). */
rk_err store_apply_cf(store *st, rocksdb_column_family_handle_t *cf, const char *key,
                      size_t key_len, pthread_mutex_t *stripe, store_update_cb update_cb,
                      void *arg);

/* store_scan on any column family: visits the keys of cf in [start, end)
 * (start NULL = from the first, end NULL = to the last). */
rk_err store_scan_cf(store *st, rocksdb_column_family_handle_t *cf, const char *start,
                     size_t start_len, const char *end, size_t end_len, store_visit_cb visit_cb,
                     void *arg);

#endif
