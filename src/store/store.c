/* store.c - one RocksDB per node: open, get, striped apply, scan, meta. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rocksdb/c.h>
#include <sodium.h>

#include "store_internal.h"

#define MOD "store"

/* Lock stripes for store_apply. 1024 keeps two hot keys from sharing a
 * stripe with probability ~1/1000 at a cost of ~40 KiB per store. */
#define STRIPES 1024

#define DEFAULT_CACHE_BYTES ((size_t)64 << 20)
#define BLOOM_BITS_PER_KEY 10.0
#define NODE_ID_NAME "node_id"

/* The column families this module uses. "default" cannot be dropped and is
 * left empty; it is opened because RocksDB requires it. */
enum { CF_DEFAULT, CF_DATA, CF_HINTS, CF_META, CF_OURS };
static const char *const cf_names[CF_OURS] = {"default", "data", "hints", "meta"};

struct store {
    rocksdb_t *db;
    /* DB-wide options; also the column options of default, hints and meta. */
    rocksdb_options_t *db_opts;
    /* Column options of data: db_opts plus a bloom filter. */
    rocksdb_options_t *data_opts;
    /* Shared by both table factories. The factories hold their own
     * reference; this one is ours to release in store_close. */
    rocksdb_cache_t *cache;
    rocksdb_readoptions_t *read_opts;
    rocksdb_writeoptions_t *data_write_opts; /* synced only if opts->sync */
    rocksdb_writeoptions_t *meta_write_opts; /* always synced */

    /* Every column family opened, including ones a newer version may have
     * created, so that all handles are destroyed before the DB closes. */
    rocksdb_column_family_handle_t **handles;
    int n_handles;
    rocksdb_column_family_handle_t *cf[CF_OURS]; /* borrowed from handles */

    uint64_t node_id; /* loaded or made in store_open; immutable after */

    pthread_mutex_t stripes[STRIPES];
    int n_stripes_init;
};

/* ---- errors ------------------------------------------------------------ */

/* Translates a RocksDB error where it enters: logs its message with what we
 * were doing, frees it, and returns RK_EIO. */
rk_err store_rocks_err(char *errptr, const char *what)
{
    RK_ERROR(MOD, "%s: %s", what, errptr);
    rocksdb_free(errptr);
    return RK_EIO;
}

/* ---- options ----------------------------------------------------------- */

/* Installs a block-based table factory on opts that uses the shared cache
 * and, if bloom, a full bloom filter. The factory copies the table options
 * (and shares the cache and the filter policy by reference count), so the
 * table options are freed here. set_filter_policy hands the policy to the
 * table options: destroying it ourselves would be a double free. */
static void set_table_factory(rocksdb_options_t *opts, rocksdb_cache_t *cache, bool bloom)
{
    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(t, cache);
    if (bloom)
        rocksdb_block_based_options_set_filter_policy(
            t, rocksdb_filterpolicy_create_bloom_full(BLOOM_BITS_PER_KEY));
    rocksdb_options_set_block_based_table_factory(opts, t);
    rocksdb_block_based_options_destroy(t);
}

/* Builds every options object of st from the caller's store_options. */
static void make_options(store *st, const store_options *opts)
{
    size_t cache_bytes = opts->cache_bytes ? opts->cache_bytes : DEFAULT_CACHE_BYTES;
    st->cache = rocksdb_cache_create_lru(cache_bytes);

    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, opts->create_if_missing);
    rocksdb_options_set_create_missing_column_families(o, 1);
    /* Two cores: one flush and one compaction can run at once. */
    rocksdb_options_increase_parallelism(o, 2);
    /* Pipelined writes: the next write group's WAL append starts while the
     * previous one is still going into the memtable, so the writers of a
     * quorum write (HTTP workers and RPC threads, many at once on two
     * cores) wait for each other less. Durability is unchanged: a write is
     * in the WAL before it returns. Measured with tools/bench-cost.sh (3
     * nodes, PUT at 32 connections): 102-103 against 108-123 CPU us per
     * request, 16.5-16.9k against 14.1-15.6k req/s (docs/benchmarks.md). */
    rocksdb_options_set_enable_pipelined_write(o, 1);
    /* Compression works on whole 4 KiB blocks, not single values, so small
     * objects still compress as a group (their clocks repeat node ids, and
     * values are JSON text). LZ4 decompresses at GB/s, so point reads on a
     * small machine barely notice it, unlike zstd; it is the usual choice
     * for the hot levels. */
    rocksdb_options_set_compression(o, rocksdb_lz4_compression);
    /* Each open starts a new LOG; a node that restarts often keeps the
     * default 1000 of them otherwise. */
    rocksdb_options_set_keep_log_file_num(o, 10);
    /* Copy before the table factory: data gets its own, with a bloom filter,
     * because a put reads the key first and new keys are common, so most
     * such reads can skip the SST files. meta and hints are small or
     * scanned, where a filter does not pay. */
    st->data_opts = rocksdb_options_create_copy(o);
    set_table_factory(o, st->cache, false);
    set_table_factory(st->data_opts, st->cache, true);
    st->db_opts = o;

    st->read_opts = rocksdb_readoptions_create();
    /* The WAL stays on (the default): it is what makes an acknowledged write
     * survive kill -9. sync adds an fsync per write for power loss. */
    st->data_write_opts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(st->data_write_opts, opts->sync);
    /* The node id and the member list must survive power loss even when
     * data writes do not; they are rare, so the fsync costs nothing. */
    st->meta_write_opts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(st->meta_write_opts, 1);
}

/* ---- open / close -------------------------------------------------------- */

static int our_cf_index(const char *name)
{
    for (int i = 0; i < CF_OURS; i++)
        if (strcmp(name, cf_names[i]) == 0)
            return i;
    return -1;
}

/* Opens st->db with our column families plus any others the DB already has
 * (RocksDB refuses to open a DB without naming all of them). Ours that are
 * missing are created by create_missing_column_families. */
static rk_err open_db(store *st, const char *dir)
{
    char *err = NULL;
    size_t n_listed = 0;
    char **listed = rocksdb_list_column_families(st->db_opts, dir, &n_listed, &err);
    if (err != NULL) {
        /* Usually a fresh directory (no CURRENT file). Anything worse makes
         * the open below fail with the same message, which is logged there.
         * Even on error RocksDB returns a malloc(0) array that must be
         * freed, so listed is kept for the destroy at the end. */
        RK_DEBUG(MOD, "list column families of %s: %s", dir, err);
        rocksdb_free(err);
        err = NULL;
        n_listed = 0;
    }

    size_t cap = CF_OURS + n_listed;
    const char **names = calloc(cap, sizeof *names);
    const rocksdb_options_t **cf_opts = calloc(cap, sizeof *cf_opts);
    st->handles = calloc(cap, sizeof *st->handles);
    rk_err rc = RK_OK;
    if (names == NULL || cf_opts == NULL || st->handles == NULL) {
        rc = RK_ENOMEM;
        goto out;
    }
    int n = 0;
    for (int i = 0; i < CF_OURS; i++)
        names[n++] = cf_names[i];
    for (size_t i = 0; i < n_listed; i++) {
        if (our_cf_index(listed[i]) >= 0)
            continue;
        RK_WARN(MOD, "%s has column family '%s' that this version does not use", dir, listed[i]);
        names[n++] = listed[i];
    }
    for (int i = 0; i < n; i++)
        cf_opts[i] = i == CF_DATA ? st->data_opts : st->db_opts;

    st->db = rocksdb_open_column_families(st->db_opts, dir, n, names, cf_opts, st->handles, &err);
    if (err != NULL) {
        st->db = NULL;
        rc = store_rocks_err(err, "open");
        goto out;
    }
    st->n_handles = n;
    for (int i = 0; i < CF_OURS; i++)
        st->cf[i] = st->handles[i];
out:
    free(names);
    free(cf_opts);
    if (listed != NULL)
        rocksdb_list_column_families_destroy(listed, n_listed);
    return rc;
}

static rk_err init_stripes(store *st)
{
    for (int i = 0; i < STRIPES; i++) {
        if (pthread_mutex_init(&st->stripes[i], NULL) != 0)
            return RK_ENOMEM;
        st->n_stripes_init++;
    }
    return RK_OK;
}

static rk_err load_or_make_node_id(store *st);

void store_options_default(store_options *opts)
{
    *opts = (store_options){
        .sync = false,
        .create_if_missing = true,
        .cache_bytes = 0,
    };
}

/* Opens the DB under dir, creating what is missing if allowed, and loads
 * (or makes) the node id. *out is freed with store_close. */
rk_err store_open(const char *dir, const store_options *opts, store **out)
{
    if (dir == NULL || out == NULL)
        return RK_EINVAL;
    store_options defaults;
    if (opts == NULL) {
        store_options_default(&defaults);
        opts = &defaults;
    }
    /* randombytes_buf needs it; idempotent and thread-safe. */
    if (sodium_init() < 0) {
        RK_ERROR(MOD, "sodium_init failed");
        return RK_EIO;
    }
    store *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RK_ENOMEM;
    rk_err err = init_stripes(st);
    if (err == RK_OK) {
        make_options(st, opts);
        err = open_db(st, dir);
    }
    if (err == RK_OK)
        err = load_or_make_node_id(st);
    if (err != RK_OK) {
        store_close(st);
        return err;
    }
    *out = st;
    return RK_OK;
}

/* Column family handles must go before the DB closes (their destructor
 * reaches into the DB); options and the cache after. */
void store_close(store *st)
{
    if (st == NULL)
        return;
    for (int i = 0; i < st->n_handles; i++)
        rocksdb_column_family_handle_destroy(st->handles[i]);
    free(st->handles);
    if (st->db != NULL)
        rocksdb_close(st->db);
    if (st->read_opts != NULL)
        rocksdb_readoptions_destroy(st->read_opts);
    if (st->data_write_opts != NULL)
        rocksdb_writeoptions_destroy(st->data_write_opts);
    if (st->meta_write_opts != NULL)
        rocksdb_writeoptions_destroy(st->meta_write_opts);
    if (st->data_opts != NULL)
        rocksdb_options_destroy(st->data_opts);
    if (st->db_opts != NULL)
        rocksdb_options_destroy(st->db_opts);
    if (st->cache != NULL)
        rocksdb_cache_destroy(st->cache);
    for (int i = 0; i < st->n_stripes_init; i++)
        pthread_mutex_destroy(&st->stripes[i]);
    free(st);
}

/* ---- failpoints ------------------------------------------------------------ */

rk_err store_failpoint(failpoint_point p)
{
    failpoint_action a = failpoint_eval(p, NULL);
    if (a.kind == FAILPOINT_DELAY && a.delay_us > 0) {
        struct timespec ts = {.tv_sec = (time_t)(a.delay_us / 1000000u),
                              .tv_nsec = (long)(a.delay_us % 1000000u) * 1000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    if (a.kind == FAILPOINT_FAIL) {
        RK_DEBUG("store", "%s failpoint: failing the call with RK_EIO", failpoint_point_name(p));
        return RK_EIO;
    }
    return RK_OK;
}

/* ---- point reads and writes --------------------------------------------- */

/* Appends the value of k in cf to out. The pinned read hands us the bytes
 * in the block cache or memtable, so the only copy is the one into out. */
rk_err store_get_cf(store *st, rocksdb_column_family_handle_t *cf, const char *k, size_t k_len,
                    rk_buf *out, const char *what)
{
    char *err = NULL;
    rocksdb_pinnableslice_t *v = rocksdb_get_pinned_cf(st->db, st->read_opts, cf, k, k_len, &err);
    if (err != NULL)
        return store_rocks_err(err, what);
    if (v == NULL)
        return RK_ENOTFOUND;
    size_t len = 0;
    const char *p = rocksdb_pinnableslice_value(v, &len);
    rk_err rc = rk_buf_append(out, p, len);
    rocksdb_pinnableslice_destroy(v);
    return rc;
}

static rk_err put_cf(store *st, const rocksdb_writeoptions_t *wo,
                     rocksdb_column_family_handle_t *cf, const char *k, size_t k_len, const char *v,
                     size_t v_len, const char *what)
{
    char *err = NULL;
    rocksdb_put_cf(st->db, wo, cf, k, k_len, v != NULL ? v : "", v_len, &err);
    if (err != NULL)
        return store_rocks_err(err, what);
    return RK_OK;
}

/* Reads the object bytes for dbkey into out (appended). */
rk_err store_get(store *st, const char *dbkey, size_t dbkey_len, rk_buf *out)
{
    if (st == NULL || dbkey == NULL || out == NULL)
        return RK_EINVAL;
    if (failpoint_armed(FAILPOINT_STORE_READ) && store_failpoint(FAILPOINT_STORE_READ) != RK_OK)
        return RK_EIO;
    return store_get_cf(st, st->cf[CF_DATA], dbkey, dbkey_len, out, "get");
}

/* FNV-1a over the whole key: the position alone would do for data keys (it
 * is already a hash), but hashing all bytes keeps any key shape spread. */
pthread_mutex_t *store_stripe_of(store *st, const char *k, size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)k[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 32;
    return &st->stripes[h % STRIPES];
}

/* The body of store_apply_cf; runs with the key's stripe held. */
static rk_err apply_locked(store *st, rocksdb_column_family_handle_t *cf, const char *k,
                           size_t k_len, store_update_cb update_cb, void *arg, rk_buf *next)
{
    char *err = NULL;
    rocksdb_pinnableslice_t *cur = rocksdb_get_pinned_cf(st->db, st->read_opts, cf, k, k_len, &err);
    if (err != NULL)
        return store_rocks_err(err, "apply: get");
    const char *old = NULL;
    size_t old_len = 0;
    if (cur != NULL)
        old = rocksdb_pinnableslice_value(cur, &old_len);
    rk_err rc = update_cb(arg, old, old_len, next);
    if (cur != NULL)
        rocksdb_pinnableslice_destroy(cur);
    if (rc != RK_OK)
        return rc;
    return put_cf(st, st->data_write_opts, cf, k, k_len, next->data, next->len, "apply: put");
}

/* Read-merge-write of one key of cf. The stripe lock serialises appliers of
 * keys on the same stripe only; it covers one get, the callback and one put.
 * Plain reads do not take it: they see either the old or the new value. The
 * caller picks the stripe so that a hint can share its data key's. */
rk_err store_apply_cf(store *st, rocksdb_column_family_handle_t *cf, const char *k, size_t k_len,
                      pthread_mutex_t *stripe, store_update_cb update_cb, void *arg)
{
    rk_buf next = {0};
    pthread_mutex_lock(stripe);
    rk_err rc = apply_locked(st, cf, k, k_len, update_cb, arg, &next);
    pthread_mutex_unlock(stripe);
    rk_buf_free(&next);
    return rc;
}

/* Read-merge-write of one data key (see store_apply_cf). */
rk_err store_apply(store *st, const char *dbkey, size_t dbkey_len, store_update_cb update_cb,
                   void *arg)
{
    if (st == NULL || dbkey == NULL || update_cb == NULL)
        return RK_EINVAL;
    if (failpoint_armed(FAILPOINT_STORE_WRITE) && store_failpoint(FAILPOINT_STORE_WRITE) != RK_OK)
        return RK_EIO;
    return store_apply_cf(st, st->cf[CF_DATA], dbkey, dbkey_len,
                          store_stripe_of(st, dbkey, dbkey_len), update_cb, arg);
}

rk_err store_remove_if_cf(store *st, rocksdb_column_family_handle_t *cf, const char *key,
                          size_t key_len, const char *expected, size_t expected_len)
{
    char *err = NULL;
    rocksdb_pinnableslice_t *cur =
        rocksdb_get_pinned_cf(st->db, st->read_opts, cf, key, key_len, &err);
    if (err != NULL)
        return store_rocks_err(err, "remove: get");
    if (cur == NULL)
        return RK_ENOTFOUND;
    size_t len = 0;
    const char *v = rocksdb_pinnableslice_value(cur, &len);
    bool same = len == expected_len && (len == 0 || memcmp(v, expected, len) == 0);
    rocksdb_pinnableslice_destroy(cur);
    if (!same)
        return RK_EPRECOND;
    rocksdb_delete_cf(st->db, store_write_options(st), cf, key, key_len, &err);
    if (err != NULL)
        return store_rocks_err(err, "remove: delete");
    return RK_OK;
}

rk_err store_remove_if(store *st, const char *dbkey, size_t dbkey_len, const char *expected,
                       size_t expected_len)
{
    if (st == NULL || dbkey == NULL || dbkey_len == 0 || (expected == NULL && expected_len != 0))
        return RK_EINVAL;
    if (failpoint_armed(FAILPOINT_STORE_WRITE) && store_failpoint(FAILPOINT_STORE_WRITE) != RK_OK)
        return RK_EIO;
    pthread_mutex_t *m = store_stripe_of(st, dbkey, dbkey_len);
    pthread_mutex_lock(m);
    rk_err rc = store_remove_if_cf(st, st->cf[CF_DATA], dbkey, dbkey_len, expected, expected_len);
    pthread_mutex_unlock(m);
    return rc;
}

/* ---- for the module's other files (store_internal.h) ----------------------- */

rocksdb_t *store_db(store *st)
{
    return st->db;
}

rocksdb_column_family_handle_t *store_hints_cf(store *st)
{
    return st->cf[CF_HINTS];
}

const rocksdb_readoptions_t *store_read_options(store *st)
{
    return st->read_opts;
}

const rocksdb_writeoptions_t *store_write_options(store *st)
{
    return st->data_write_opts;
}

/* ---- scans ----------------------------------------------------------------- */

/* Iterates the keys of cf in [start, end). start NULL = from the first key.
 * The bounds point at the caller's memory, valid for the whole call. An
 * upper bound lets RocksDB stop at the range's end instead of reading the
 * next key (and skipping tombstones past it) to find out. */
rk_err store_scan_cf(store *st, rocksdb_column_family_handle_t *cf, const char *start,
                     size_t start_len, const char *end, size_t end_len, store_visit_cb visit_cb,
                     void *arg)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    if (start != NULL)
        rocksdb_readoptions_set_iterate_lower_bound(ro, start, start_len);
    if (end != NULL)
        rocksdb_readoptions_set_iterate_upper_bound(ro, end, end_len);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, ro, cf);
    if (start != NULL)
        rocksdb_iter_seek(it, start, start_len);
    else
        rocksdb_iter_seek_to_first(it);
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t k_len = 0, v_len = 0;
        const char *k = rocksdb_iter_key(it, &k_len);
        const char *v = rocksdb_iter_value(it, &v_len);
        if (!visit_cb(arg, k, k_len, v, v_len))
            break;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (err != NULL)
        return store_rocks_err(err, "scan");
    return RK_OK;
}

/* Iterates data keys in [start, end) (see store_scan_cf). */
rk_err store_scan(store *st, const char *start, size_t start_len, const char *end, size_t end_len,
                  store_visit_cb visit_cb, void *arg)
{
    if (st == NULL || visit_cb == NULL)
        return RK_EINVAL;
    if (failpoint_armed(FAILPOINT_STORE_READ) && store_failpoint(FAILPOINT_STORE_READ) != RK_OK)
        return RK_EIO;
    return store_scan_cf(st, st->cf[CF_DATA], start, start_len, end, end_len, visit_cb, arg);
}

/* ---- meta ----------------------------------------------------------------- */

/* Appends the meta value called name to out. */
rk_err store_meta_get(store *st, const char *name, rk_buf *out)
{
    if (st == NULL || name == NULL || out == NULL)
        return RK_EINVAL;
    return store_get_cf(st, st->cf[CF_META], name, strlen(name), out, "meta get");
}

/* Writes a meta value, fsynced before it returns. */
rk_err store_meta_put(store *st, const char *name, const void *val, size_t len)
{
    if (st == NULL || name == NULL || (val == NULL && len != 0))
        return RK_EINVAL;
    return put_cf(st, st->meta_write_opts, st->cf[CF_META], name, strlen(name), val, len,
                  "meta put");
}

/* Runs once, in store_open, so no two threads can race to make two ids.
 * Zero is never issued, so other modules may use it as "no node". */
static rk_err load_or_make_node_id(store *st)
{
    rk_buf b = {0};
    rk_err rc = store_meta_get(st, NODE_ID_NAME, &b);
    if (rc == RK_OK) {
        if (b.len == 8 && rk_load_be64(b.data) != 0) {
            st->node_id = rk_load_be64(b.data);
        } else {
            RK_ERROR(MOD, "stored node id is malformed (%zu bytes)", b.len);
            rc = RK_ECORRUPT;
        }
        rk_buf_free(&b);
        return rc;
    }
    rk_buf_free(&b);
    if (rc != RK_ENOTFOUND)
        return rc;

    uint8_t id[8];
    uint64_t v = 0;
    while (v == 0) {
        randombytes_buf(id, sizeof id);
        v = rk_load_be64(id);
    }
    rk_store_be64(id, v);
    rc = store_meta_put(st, NODE_ID_NAME, id, sizeof id);
    if (rc != RK_OK)
        return rc;
    st->node_id = v;
    RK_INFO(MOD, "new node id %016llx", (unsigned long long)v);
    return RK_OK;
}

/* This node's id, fixed at store_open. */
rk_err store_node_id(store *st, uint64_t *out)
{
    if (st == NULL || out == NULL)
        return RK_EINVAL;
    *out = st->node_id;
    return RK_OK;
}

/* ---- statistics ------------------------------------------------------------ */

/* Reads a numeric property of column family cf. RocksDB returns it as a
 * malloc'd decimal string. */
static rk_err cf_property(store *st, int cf, const char *name, uint64_t *out)
{
    char *s = rocksdb_property_value_cf(st->db, st->cf[cf], name);
    if (s == NULL) {
        RK_ERROR(MOD, "property %s: not available", name);
        return RK_EIO;
    }
    rk_err rc = rk_parse_u64(s, strlen(s), out);
    if (rc != RK_OK)
        RK_ERROR(MOD, "property %s: not a number: '%s'", name, s);
    rocksdb_free(s);
    return rc == RK_OK ? RK_OK : RK_EIO;
}

/* Fills out with estimates for /metrics; out is set only if all succeed. */
rk_err store_get_stats(store *st, store_stats *out)
{
    if (st == NULL || out == NULL)
        return RK_EINVAL;
    store_stats s;
    const struct {
        int cf;
        const char *name;
        uint64_t *into;
    } props[] = {
        {CF_DATA, "rocksdb.estimate-num-keys", &s.keys_estimate},
        {CF_DATA, "rocksdb.total-sst-files-size", &s.sst_bytes},
        {CF_DATA, "rocksdb.cur-size-all-mem-tables", &s.memtable_bytes},
        {CF_DATA, "rocksdb.estimate-live-data-size", &s.live_data_bytes},
        {CF_HINTS, "rocksdb.estimate-num-keys", &s.hints_estimate},
    };
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++) {
        rk_err rc = cf_property(st, props[i].cf, props[i].name, props[i].into);
        if (rc != RK_OK)
            return rc;
    }
    *out = s;
    return RK_OK;
}
