/* test_store.c - unit tests of the RocksDB store, each in its own temp dir. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "ringkv/store.h"

/* ---- fixture: a temp dir and a store open in it --------------------------- */

typedef struct fixture {
    char dir[64];
    store *st;
} fixture;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    /* Depth first so a directory is empty when its turn comes. */
    if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "warning: could not remove %s\n", dir);
}

static void open_store(fixture *f)
{
    store_options o;
    store_options_default(&o);
    o.cache_bytes = 8 << 20;
    assert_int_equal(store_open(f->dir, &o, &f->st), RK_OK);
    assert_non_null(f->st);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    strcpy(f->dir, "/tmp/ringkv-test-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    open_store(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f->st);
    rm_tree(f->dir);
    free(f);
    return 0;
}

static void reopen(fixture *f)
{
    store_close(f->st);
    f->st = NULL;
    open_store(f);
}

/* ---- helpers -------------------------------------------------------------- */

static void dkey(uint64_t pos, const char *table, const char *key, rk_buf *out)
{
    rk_buf_reset(out);
    assert_int_equal(store_data_key(pos, table, strlen(table), key, strlen(key), out),
                     RK_OK);
}

/* An update callback that replaces the value with arg (a C string). */
static rk_err set_cb(void *arg, const char *old, size_t old_len, rk_buf *out)
{
    (void)old;
    (void)old_len;
    return rk_buf_appends(out, arg);
}

static void put(store *st, const rk_buf *k, const char *val)
{
    assert_int_equal(store_apply(st, k->data, k->len, set_cb, (void *)val), RK_OK);
}

static void assert_value(store *st, const rk_buf *k, const char *want)
{
    rk_buf got = {0};
    assert_int_equal(store_get(st, k->data, k->len, &got), RK_OK);
    assert_int_equal(got.len, strlen(want));
    assert_memory_equal(got.data, want, got.len);
    rk_buf_free(&got);
}

/* ---- open / close ---------------------------------------------------------- */

static void test_reopen_keeps_data_and_node_id(void **state)
{
    fixture *f = *state;
    uint64_t id1 = 0, id2 = 0;
    assert_int_equal(store_node_id(f->st, &id1), RK_OK);
    assert_true(id1 != 0);

    rk_buf k = {0};
    dkey(42, "t", "hello", &k);
    put(f->st, &k, "world");
    assert_int_equal(store_meta_put(f->st, "members", "abc", 3), RK_OK);

    reopen(f);
    assert_int_equal(store_node_id(f->st, &id2), RK_OK);
    assert_true(id1 == id2);
    assert_value(f->st, &k, "world");
    rk_buf m = {0};
    assert_int_equal(store_meta_get(f->st, "members", &m), RK_OK);
    assert_int_equal(m.len, 3);
    assert_memory_equal(m.data, "abc", 3);
    rk_buf_free(&m);
    rk_buf_free(&k);
}

static void test_two_dirs_get_different_ids(void **state)
{
    fixture *f = *state;
    fixture g = {.dir = "/tmp/ringkv-test-store-XXXXXX"};
    assert_non_null(mkdtemp(g.dir));
    open_store(&g);
    uint64_t a = 0, b = 0;
    assert_int_equal(store_node_id(f->st, &a), RK_OK);
    assert_int_equal(store_node_id(g.st, &b), RK_OK);
    assert_true(a != b);
    store_close(g.st);
    rm_tree(g.dir);
}

/* A DB made by someone else with only "default" and a column family we do
 * not know: store_open must add ours and keep the unknown one. */
static void test_open_adds_missing_column_families(void **state)
{
    fixture *f = *state;
    store_close(f->st);
    f->st = NULL;
    rm_tree(f->dir);

    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    char *err = NULL;
    rocksdb_t *db = rocksdb_open(o, f->dir, &err);
    assert_null(err);
    rocksdb_column_family_handle_t *h = rocksdb_create_column_family(db, o, "future", &err);
    assert_null(err);
    rocksdb_column_family_handle_destroy(h);
    rocksdb_close(db);
    rocksdb_options_destroy(o);

    open_store(f);
    rk_buf k = {0};
    dkey(7, "t", "k", &k);
    put(f->st, &k, "v");
    reopen(f);
    assert_value(f->st, &k, "v");
    rk_buf_free(&k);
}

static void test_open_without_create_fails(void **state)
{
    fixture *f = *state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/absent", f->dir);
    store_options o;
    store_options_default(&o);
    o.create_if_missing = false;
    store *st = (store *)0x1;
    assert_int_equal(store_open(dir, &o, &st), RK_EIO);
    assert_ptr_equal(st, (store *)0x1); /* out set on success only */
}

static void test_malformed_node_id_is_corrupt(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_meta_put(f->st, "node_id", "abc", 3), RK_OK);
    store_close(f->st);
    f->st = NULL;
    store_options o;
    store_options_default(&o);
    assert_int_equal(store_open(f->dir, &o, &f->st), RK_ECORRUPT);
    assert_null(f->st);
}

/* ---- data keys (no DB needed) --------------------------------------------- */

static void roundtrip(uint64_t pos, const char *table, size_t tlen, const char *key,
                      size_t klen)
{
    rk_buf b = {0};
    assert_int_equal(rk_buf_appends(&b, "prefix"), RK_OK);
    assert_int_equal(store_data_key(pos, table, tlen, key, klen, &b), RK_OK);
    assert_memory_equal(b.data, "prefix", 6); /* appended, not overwritten */
    const char *dk = b.data + 6;
    size_t dlen = b.len - 6;
    assert_int_equal(dlen, 8 + tlen + 1 + klen);
    assert_int_equal((uint8_t)dk[0], (uint8_t)(pos >> 56)); /* big-endian */
    assert_int_equal((uint8_t)dk[7], (uint8_t)pos);

    uint64_t p2 = 0;
    const char *t2 = NULL, *k2 = NULL;
    size_t tl2 = 0, kl2 = 0;
    assert_int_equal(store_data_key_parse(dk, dlen, &p2, &t2, &tl2, &k2, &kl2), RK_OK);
    assert_true(p2 == pos);
    assert_int_equal(tl2, tlen);
    assert_memory_equal(t2, table, tlen);
    assert_int_equal(kl2, klen);
    if (klen)
        assert_memory_equal(k2, key, klen);
    rk_buf_free(&b);
}

static void test_data_key_roundtrip(void **state)
{
    (void)state;
    roundtrip(0, "t", 1, "k", 1);
    roundtrip(UINT64_MAX, "users", 5, "alice", 5);
    roundtrip(0x0102030405060708ULL, "a.b-c_d", 7, "x", 1);
    /* Keys are bytes: NULs and high bytes inside a key survive. */
    roundtrip(99, "t", 1, "a\0b\xff", 4);
    roundtrip(5, "t", 1, "", 0); /* empty key: a scan bound */
}

static void test_data_key_orders_by_position(void **state)
{
    (void)state;
    rk_buf a = {0}, b = {0};
    dkey(0x00000000000001ffULL, "zzz", "zzz", &a);
    dkey(0x0000000000000200ULL, "a", "a", &b);
    assert_true(memcmp(a.data, b.data, 8) < 0);
    assert_true(memcmp(a.data, b.data, a.len < b.len ? a.len : b.len) < 0);
    rk_buf_free(&a);
    rk_buf_free(&b);
}

static void test_data_key_rejects_malformed(void **state)
{
    (void)state;
    rk_buf b = {0};
    assert_int_equal(store_data_key(1, "", 0, "k", 1, &b), RK_EINVAL);
    assert_int_equal(store_data_key(1, "a\0b", 3, "k", 1, &b), RK_EINVAL);
    assert_int_equal(store_data_key(1, NULL, 1, "k", 1, &b), RK_EINVAL);
    assert_int_equal(b.len, 0);

    uint64_t p;
    const char *t, *k;
    size_t tl, kl;
    const char pos_only[8] = {0};
    assert_int_equal(store_data_key_parse(pos_only, 8, &p, &t, &tl, &k, &kl), RK_ECORRUPT);
    assert_int_equal(store_data_key_parse("\0\0\0\0\0\0\0\0t", 9, &p, &t, &tl, &k, &kl),
                     RK_ECORRUPT); /* too short */
    assert_int_equal(store_data_key_parse("\0\0\0\0\0\0\0\0tab", 11, &p, &t, &tl, &k, &kl),
                     RK_ECORRUPT); /* no NUL after the table */
    assert_int_equal(store_data_key_parse("\0\0\0\0\0\0\0\0\0key", 12, &p, &t, &tl, &k, &kl),
                     RK_ECORRUPT); /* empty table */
    assert_int_equal(store_data_key_parse(NULL, 20, &p, &t, &tl, &k, &kl), RK_ECORRUPT);
    /* The shortest valid key. */
    assert_int_equal(store_data_key_parse("\0\0\0\0\0\0\0\1t", 10, &p, &t, &tl, &k, &kl), RK_OK);
    assert_true(p == 1);
    assert_int_equal(tl, 1);
    assert_int_equal(kl, 0);
}

/* ---- get / apply -------------------------------------------------------------- */

static void test_get_missing_is_not_found(void **state)
{
    fixture *f = *state;
    rk_buf k = {0}, out = {0};
    dkey(1, "t", "nope", &k);
    assert_int_equal(store_get(f->st, k.data, k.len, &out), RK_ENOTFOUND);
    assert_int_equal(out.len, 0);
    rk_buf_free(&k);
}

typedef struct seen {
    int calls;
    bool had_old;
    char old[64];
    const char *next;
    rk_err result;
} seen;

static rk_err record_cb(void *arg, const char *old, size_t old_len, rk_buf *out)
{
    seen *s = arg;
    s->calls++;
    s->had_old = old != NULL;
    assert_true(old_len < sizeof s->old);
    if (old != NULL)
        memcpy(s->old, old, old_len);
    s->old[old != NULL ? old_len : 0] = '\0';
    if (s->next != NULL) {
        rk_err e = rk_buf_appends(out, s->next);
        if (e != RK_OK)
            return e;
    }
    return s->result;
}

static void test_apply_creates_and_updates(void **state)
{
    fixture *f = *state;
    rk_buf k = {0};
    dkey(10, "t", "k", &k);

    seen s = {.next = "v1", .result = RK_OK};
    assert_int_equal(store_apply(f->st, k.data, k.len, record_cb, &s), RK_OK);
    assert_int_equal(s.calls, 1);
    assert_false(s.had_old);
    assert_value(f->st, &k, "v1");

    s = (seen){.next = "v2", .result = RK_OK};
    assert_int_equal(store_apply(f->st, k.data, k.len, record_cb, &s), RK_OK);
    assert_true(s.had_old);
    assert_string_equal(s.old, "v1");
    assert_value(f->st, &k, "v2");

    /* An empty new value is a value, not a delete. */
    s = (seen){.next = NULL, .result = RK_OK};
    assert_int_equal(store_apply(f->st, k.data, k.len, record_cb, &s), RK_OK);
    assert_value(f->st, &k, "");
    rk_buf_free(&k);
}

static void test_apply_abort_writes_nothing(void **state)
{
    fixture *f = *state;
    rk_buf k = {0}, fresh = {0}, out = {0};
    dkey(11, "t", "k", &k);
    put(f->st, &k, "keep");

    seen s = {.next = "garbage", .result = RK_EPRECOND};
    assert_int_equal(store_apply(f->st, k.data, k.len, record_cb, &s), RK_EPRECOND);
    assert_string_equal(s.old, "keep");
    assert_value(f->st, &k, "keep");

    dkey(12, "t", "new", &fresh);
    s = (seen){.next = "garbage", .result = RK_ETOOBIG};
    assert_int_equal(store_apply(f->st, fresh.data, fresh.len, record_cb, &s), RK_ETOOBIG);
    assert_int_equal(store_get(f->st, fresh.data, fresh.len, &out), RK_ENOTFOUND);
    rk_buf_free(&k);
    rk_buf_free(&fresh);
}

#define THREADS 8
#define INCREMENTS 1000

static rk_err increment_cb(void *arg, const char *old, size_t old_len, rk_buf *out)
{
    (void)arg;
    uint64_t n = 0;
    if (old != NULL) {
        rk_err e = rk_parse_u64(old, old_len, &n);
        if (e != RK_OK)
            return e;
    }
    return rk_buf_appendf(out, "%llu", (unsigned long long)(n + 1));
}

typedef struct counter_job {
    store *st;
    const rk_buf *key;
    int failures;
} counter_job;

static void *increment_thread(void *arg)
{
    counter_job *j = arg;
    for (int i = 0; i < INCREMENTS; i++)
        if (store_apply(j->st, j->key->data, j->key->len, increment_cb, NULL) != RK_OK)
            j->failures++;
    return NULL;
}

/* Without the stripe lock two threads read the same n and one increment is
 * lost; with it the counter is exact. */
static void test_concurrent_apply_is_serialised(void **state)
{
    fixture *f = *state;
    rk_buf k = {0};
    dkey(13, "t", "counter", &k);
    pthread_t th[THREADS];
    counter_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (counter_job){.st = f->st, .key = &k};
        assert_int_equal(pthread_create(&th[i], NULL, increment_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(jobs[i].failures, 0);
    }
    char want[32];
    snprintf(want, sizeof want, "%d", THREADS * INCREMENTS);
    assert_value(f->st, &k, want);
    rk_buf_free(&k);
}

/* ---- scan ------------------------------------------------------------------- */

typedef struct collected {
    uint64_t positions[32];
    int n;
    int stop_after; /* 0 = never stop */
} collected;

static bool collect_cb(void *arg, const char *dbkey, size_t dbkey_len, const char *val,
                       size_t val_len)
{
    collected *c = arg;
    uint64_t pos;
    const char *t, *k;
    size_t tl, kl;
    assert_int_equal(store_data_key_parse(dbkey, dbkey_len, &pos, &t, &tl, &k, &kl), RK_OK);
    assert_int_equal(val_len, 1);
    assert_int_equal(val[0], 'v');
    assert_true(c->n < 32);
    c->positions[c->n++] = pos;
    return c->stop_after == 0 || c->n < c->stop_after;
}

static void scan_bound(uint64_t pos, rk_buf *out)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(pos >> (56 - 8 * i));
    rk_buf_reset(out);
    assert_int_equal(rk_buf_append(out, b, 8), RK_OK);
}

static void test_scan_range_in_order(void **state)
{
    fixture *f = *state;
    rk_buf k = {0}, lo = {0}, hi = {0};
    /* Written out of order, with high positions to check unsigned order. */
    const uint64_t pos[] = {5, 1, 9, 3, 7, 0x8000000000000000ULL, 2, 8, 4, 6};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
        dkey(pos[i], "t", "k", &k);
        put(f->st, &k, "v");
    }

    collected c = {0};
    scan_bound(3, &lo);
    scan_bound(7, &hi);
    assert_int_equal(store_scan(f->st, lo.data, lo.len, hi.data, hi.len, collect_cb, &c), RK_OK);
    assert_int_equal(c.n, 4);
    for (int i = 0; i < 4; i++)
        assert_true(c.positions[i] == (uint64_t)(3 + i));

    c = (collected){0};
    assert_int_equal(store_scan(f->st, lo.data, lo.len, NULL, 0, collect_cb, &c), RK_OK);
    assert_int_equal(c.n, 8); /* 3..9 and the high one, last */
    assert_true(c.positions[7] == 0x8000000000000000ULL);

    c = (collected){0};
    assert_int_equal(store_scan(f->st, NULL, 0, NULL, 0, collect_cb, &c), RK_OK);
    assert_int_equal(c.n, 10);
    for (int i = 1; i < c.n; i++)
        assert_true(c.positions[i - 1] < c.positions[i]);

    c = (collected){.stop_after = 2};
    assert_int_equal(store_scan(f->st, lo.data, lo.len, hi.data, hi.len, collect_cb, &c), RK_OK);
    assert_int_equal(c.n, 2);

    c = (collected){0}; /* empty range */
    assert_int_equal(store_scan(f->st, hi.data, hi.len, lo.data, lo.len, collect_cb, &c), RK_OK);
    assert_int_equal(c.n, 0);

    rk_buf_free(&k);
    rk_buf_free(&lo);
    rk_buf_free(&hi);
}

/* ---- meta and stats ------------------------------------------------------------ */

static void test_meta_get_put(void **state)
{
    fixture *f = *state;
    rk_buf out = {0};
    assert_int_equal(store_meta_get(f->st, "absent", &out), RK_ENOTFOUND);
    assert_int_equal(store_meta_put(f->st, "n", "3", 1), RK_OK);
    assert_int_equal(store_meta_put(f->st, "n", "5", 1), RK_OK);
    assert_int_equal(store_meta_get(f->st, "n", &out), RK_OK);
    assert_int_equal(out.len, 1);
    assert_int_equal(out.data[0], '5');
    assert_int_equal(store_meta_put(f->st, "empty", NULL, 0), RK_OK);
    rk_buf_reset(&out);
    assert_int_equal(store_meta_get(f->st, "empty", &out), RK_OK);
    assert_int_equal(out.len, 0);
    /* meta and data are separate column families. */
    assert_int_equal(store_get(f->st, "n", 1, &out), RK_ENOTFOUND);
    rk_buf_free(&out);
}

static void test_stats(void **state)
{
    fixture *f = *state;
    rk_buf k = {0};
    char key[16];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k%d", i);
        dkey((uint64_t)i * 7919, "t", key, &k);
        put(f->st, &k, "some value bytes");
    }
    store_stats s = {0};
    assert_int_equal(store_get_stats(f->st, &s), RK_OK);
    assert_true(s.sst_bytes + s.memtable_bytes > 0);

    /* Reopening replays the WAL into a flushed SST file. */
    reopen(f);
    assert_int_equal(store_get_stats(f->st, &s), RK_OK);
    assert_true(s.sst_bytes + s.memtable_bytes > 0);
    print_message("stats after reopen: keys~%llu sst=%llu mem=%llu live=%llu\n",
                  (unsigned long long)s.keys_estimate, (unsigned long long)s.sst_bytes,
                  (unsigned long long)s.memtable_bytes,
                  (unsigned long long)s.live_data_bytes);
    rk_buf_free(&k);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_reopen_keeps_data_and_node_id),
        T(test_two_dirs_get_different_ids),
        T(test_open_adds_missing_column_families),
        T(test_open_without_create_fails),
        T(test_malformed_node_id_is_corrupt),
        cmocka_unit_test(test_data_key_roundtrip),
        cmocka_unit_test(test_data_key_orders_by_position),
        cmocka_unit_test(test_data_key_rejects_malformed),
        T(test_get_missing_is_not_found),
        T(test_apply_creates_and_updates),
        T(test_apply_abort_writes_nothing),
        T(test_concurrent_apply_is_serialised),
        T(test_scan_range_in_order),
        T(test_meta_get_put),
        T(test_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
