/* test_store.c - unit tests of the RocksDB store, each in its own temp dir. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rocksdb/c.h>

#include "ringkv/store.h"

#include "support.h"
#include "store/store_internal.h" /* the stripe lock, to show a hint shares it */

/* ---- fixture: a temp dir and a store open in it --------------------------- */

typedef struct fixture {
    char dir[64];
    store *st;
} fixture;

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
    assert_int_equal(store_data_key(pos, table, strlen(table), key, strlen(key), out), RK_OK);
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

static void roundtrip(uint64_t pos, const char *table, size_t tlen, const char *key, size_t klen)
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
    rk_store_be64(b, pos);
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
                  (unsigned long long)s.memtable_bytes, (unsigned long long)s.live_data_bytes);
    rk_buf_free(&k);
}

/* ---- hints -------------------------------------------------------------------- */

/* Ids that differ only in the last byte, and the ids either side of a carry
 * into the top byte, so that a wrong upper bound shows up as a neighbour's
 * hint (or as none of one's own). */
#define ID_A 0x1234567890abcd01ULL
#define ID_B 0x1234567890abcd02ULL
#define ID_CARRY_LO 0x00ffffffffffffffULL
#define ID_CARRY_HI 0x0100000000000000ULL

/* An update callback that appends arg (a C string) to the old bytes. */
static rk_err append_cb(void *arg, const char *old, size_t old_len, rk_buf *out)
{
    rk_err e = rk_buf_append(out, old, old_len);
    return e != RK_OK ? e : rk_buf_appends(out, arg);
}

static void hint_put(store *st, uint64_t id, const rk_buf *k, const char *val)
{
    assert_int_equal(store_hint_apply(st, id, k->data, k->len, set_cb, (void *)val), RK_OK);
}

/* Writes a hint for id at data key (pos, "t", "k") whose value is val. */
static void hint_put_at(store *st, uint64_t id, uint64_t pos, const char *val)
{
    rk_buf k = {0};
    dkey(pos, "t", "k", &k);
    hint_put(st, id, &k, val);
    rk_buf_free(&k);
}

static void assert_hint(store *st, uint64_t id, const rk_buf *k, const char *want)
{
    rk_buf got = {0};
    assert_int_equal(store_hint_get(st, id, k->data, k->len, &got), RK_OK);
    assert_int_equal(got.len, strlen(want));
    assert_memory_equal(got.data, want, got.len);
    rk_buf_free(&got);
}

static void assert_no_hint(store *st, uint64_t id, const rk_buf *k)
{
    rk_buf got = {0};
    assert_int_equal(store_hint_get(st, id, k->data, k->len, &got), RK_ENOTFOUND);
    assert_int_equal(got.len, 0);
}

#define MAX_HINTS 64

typedef struct hints_seen {
    int n;
    int stop_after; /* 0 = never stop */
    uint64_t pos[MAX_HINTS];
    char val[MAX_HINTS][16];
} hints_seen;

/* Records the position of each data key (which must parse: the id prefix
 * is stripped) and its value. */
static bool hint_collect_cb(void *arg, const char *dbkey, size_t dbkey_len, const char *val,
                            size_t val_len)
{
    hints_seen *h = arg;
    uint64_t pos;
    const char *t, *k;
    size_t tl, kl;
    assert_int_equal(store_data_key_parse(dbkey, dbkey_len, &pos, &t, &tl, &k, &kl), RK_OK);
    assert_true(h->n < MAX_HINTS);
    assert_true(val_len < sizeof h->val[0]);
    h->pos[h->n] = pos;
    memcpy(h->val[h->n], val, val_len);
    h->val[h->n][val_len] = '\0';
    h->n++;
    return h->stop_after == 0 || h->n < h->stop_after;
}

/* Scans id's hints after the data key (after_pos, "t", "k") (none if
 * after_pos is NO_AFTER) into h. */
#define NO_AFTER UINT64_MAX
static void scan_hints(store *st, uint64_t id, uint64_t after_pos, hints_seen *h)
{
    rk_buf after = {0};
    if (after_pos != NO_AFTER)
        dkey(after_pos, "t", "k", &after);
    assert_int_equal(store_hint_scan(st, id, after_pos != NO_AFTER ? after.data : NULL, after.len,
                                     hint_collect_cb, h),
                     RK_OK);
    rk_buf_free(&after);
}

static void assert_positions(const hints_seen *h, const uint64_t *want, int n)
{
    assert_int_equal(h->n, n);
    for (int i = 0; i < n; i++)
        assert_true(h->pos[i] == want[i]);
}

static void test_hint_apply_creates_and_merges(void **state)
{
    fixture *f = *state;
    rk_buf k = {0}, out = {0};
    dkey(20, "t", "k", &k);
    assert_no_hint(f->st, ID_A, &k);

    seen s = {.next = "a", .result = RK_OK};
    assert_int_equal(store_hint_apply(f->st, ID_A, k.data, k.len, record_cb, &s), RK_OK);
    assert_int_equal(s.calls, 1);
    assert_false(s.had_old);
    assert_hint(f->st, ID_A, &k, "a");
    assert_int_equal(store_hint_apply(f->st, ID_A, k.data, k.len, append_cb, "b"), RK_OK);
    assert_int_equal(store_hint_apply(f->st, ID_A, k.data, k.len, append_cb, "c"), RK_OK);
    assert_hint(f->st, ID_A, &k, "abc");

    /* An aborted merge writes nothing. */
    s = (seen){.next = "garbage", .result = RK_EPRECOND};
    assert_int_equal(store_hint_apply(f->st, ID_A, k.data, k.len, record_cb, &s), RK_EPRECOND);
    assert_string_equal(s.old, "abc");
    assert_hint(f->st, ID_A, &k, "abc");

    /* It is neither the data record nor a hint for any other node. */
    assert_int_equal(store_get(f->st, k.data, k.len, &out), RK_ENOTFOUND);
    assert_no_hint(f->st, ID_B, &k);
    rk_buf_free(&k);
}

static void test_hint_rejects_bad_arguments(void **state)
{
    fixture *f = *state;
    rk_buf k = {0}, out = {0};
    hints_seen h = {0};
    dkey(21, "t", "k", &k);
    /* Id 0 is "no node": no hint can be held for it. */
    assert_int_equal(store_hint_apply(f->st, 0, k.data, k.len, append_cb, "x"), RK_EINVAL);
    assert_int_equal(store_hint_get(f->st, 0, k.data, k.len, &out), RK_EINVAL);
    assert_int_equal(store_hint_scan(f->st, 0, NULL, 0, hint_collect_cb, &h), RK_EINVAL);
    assert_int_equal(store_hint_remove_if(f->st, 0, k.data, k.len, "x", 1), RK_EINVAL);
    assert_int_equal(store_hint_apply(f->st, ID_A, NULL, 3, append_cb, "x"), RK_EINVAL);
    assert_int_equal(store_hint_apply(f->st, ID_A, k.data, k.len, NULL, NULL), RK_EINVAL);
    assert_int_equal(store_hint_apply(NULL, ID_A, k.data, k.len, append_cb, "x"), RK_EINVAL);
    assert_int_equal(store_hint_scan(f->st, ID_A, NULL, 3, hint_collect_cb, &h), RK_EINVAL);
    assert_int_equal(store_hint_remove_if(f->st, ID_A, k.data, k.len, NULL, 1), RK_EINVAL);
    assert_int_equal(store_hint_drop(NULL, 0, NULL), RK_EINVAL);
    assert_int_equal(store_hint_targets(NULL, NULL, 0), 0);
    /* Nothing was written by any of them. */
    assert_int_equal(store_hint_targets(f->st, NULL, 0), 0);
    assert_int_equal(h.n, 0);
    rk_buf_free(&k);
}

static void test_hint_get_and_scan_in_key_order(void **state)
{
    fixture *f = *state;
    /* Written out of order; B has hints at some of the same keys. */
    const uint64_t a_pos[] = {30, 10, 50, 20, 40};
    char val[16];
    for (size_t i = 0; i < sizeof a_pos / sizeof a_pos[0]; i++) {
        snprintf(val, sizeof val, "a%llu", (unsigned long long)a_pos[i]);
        hint_put_at(f->st, ID_A, a_pos[i], val);
    }
    hint_put_at(f->st, ID_B, 10, "b10");
    hint_put_at(f->st, ID_B, 25, "b25");

    rk_buf k = {0};
    dkey(25, "t", "k", &k);
    assert_no_hint(f->st, ID_A, &k);
    assert_hint(f->st, ID_B, &k, "b25");
    dkey(10, "t", "k", &k);
    assert_hint(f->st, ID_A, &k, "a10");
    assert_hint(f->st, ID_B, &k, "b10");

    hints_seen h = {0};
    scan_hints(f->st, ID_A, NO_AFTER, &h);
    assert_positions(&h, (const uint64_t[]){10, 20, 30, 40, 50}, 5);
    for (int i = 0; i < h.n; i++) {
        snprintf(val, sizeof val, "a%llu", (unsigned long long)h.pos[i]);
        assert_string_equal(h.val[i], val);
    }

    /* `after` is exclusive, and need not be a key that has a hint. */
    h = (hints_seen){0};
    scan_hints(f->st, ID_A, 20, &h);
    assert_positions(&h, (const uint64_t[]){30, 40, 50}, 3);
    h = (hints_seen){0};
    scan_hints(f->st, ID_A, 25, &h);
    assert_positions(&h, (const uint64_t[]){30, 40, 50}, 3);
    h = (hints_seen){0};
    scan_hints(f->st, ID_A, 5, &h);
    assert_positions(&h, (const uint64_t[]){10, 20, 30, 40, 50}, 5);
    h = (hints_seen){0};
    scan_hints(f->st, ID_A, 50, &h);
    assert_int_equal(h.n, 0);

    /* The visitor can stop early. */
    h = (hints_seen){.stop_after = 2};
    scan_hints(f->st, ID_A, NO_AFTER, &h);
    assert_positions(&h, (const uint64_t[]){10, 20}, 2);

    h = (hints_seen){0};
    scan_hints(f->st, ID_B, NO_AFTER, &h);
    assert_positions(&h, (const uint64_t[]){10, 25}, 2);
    assert_string_equal(h.val[0], "b10");
    assert_string_equal(h.val[1], "b25");
    rk_buf_free(&k);
}

/* Each id gets hints at the lowest and highest data keys, so its keys sit
 * right against its neighbours' in the column family. */
static void test_hint_scan_never_shows_other_nodes(void **state)
{
    fixture *f = *state;
    const uint64_t ids[] = {1, ID_A, ID_B, ID_CARRY_LO, ID_CARRY_HI, UINT64_MAX - 1, UINT64_MAX};
    const size_t n_ids = sizeof ids / sizeof ids[0];
    const uint64_t pos[] = {0, 1, UINT64_MAX};
    char val[16];
    for (size_t i = 0; i < n_ids; i++) {
        snprintf(val, sizeof val, "id%zu", i);
        for (size_t p = 0; p < 3; p++)
            hint_put_at(f->st, ids[i], pos[p], val);
    }
    for (size_t i = 0; i < n_ids; i++) {
        hints_seen h = {0};
        scan_hints(f->st, ids[i], NO_AFTER, &h);
        assert_positions(&h, pos, 3);
        snprintf(val, sizeof val, "id%zu", i);
        for (int j = 0; j < h.n; j++)
            assert_string_equal(h.val[j], val);
        /* After the highest key there is nothing of this id's left. */
        h = (hints_seen){0};
        scan_hints(f->st, ids[i], UINT64_MAX - 1, &h);
        assert_positions(&h, (const uint64_t[]){UINT64_MAX}, 1);
    }
    /* Ids with no hints between ones that have them. */
    const uint64_t empty[] = {ID_A + 2, ID_A - 1, ID_CARRY_LO - 1, ID_CARRY_HI + 1, 2};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        hints_seen h = {0};
        scan_hints(f->st, empty[i], NO_AFTER, &h);
        assert_int_equal(h.n, 0);
    }
}

static void test_hint_remove_if_compares_bytes(void **state)
{
    fixture *f = *state;
    rk_buf k = {0};
    dkey(60, "t", "k", &k);
    hint_put(f->st, ID_A, &k, "v1");
    hint_put(f->st, ID_B, &k, "v1");
    put(f->st, &k, "v1");

    /* Different bytes, a longer and a shorter value with the same prefix. */
    assert_int_equal(store_hint_remove_if(f->st, ID_A, k.data, k.len, "v0", 2), RK_EPRECOND);
    assert_int_equal(store_hint_remove_if(f->st, ID_A, k.data, k.len, "v1x", 3), RK_EPRECOND);
    assert_int_equal(store_hint_remove_if(f->st, ID_A, k.data, k.len, "v", 1), RK_EPRECOND);
    assert_int_equal(store_hint_remove_if(f->st, ID_A, k.data, k.len, NULL, 0), RK_EPRECOND);
    assert_hint(f->st, ID_A, &k, "v1");

    assert_int_equal(store_hint_remove_if(f->st, ID_A, k.data, k.len, "v1", 2), RK_OK);
    assert_no_hint(f->st, ID_A, &k);
    assert_int_equal(store_hint_remove_if(f->st, ID_A, k.data, k.len, "v1", 2), RK_ENOTFOUND);
    /* Only that node's hint went; the data record is not a hint. */
    assert_hint(f->st, ID_B, &k, "v1");
    assert_value(f->st, &k, "v1");

    /* An empty value is a value: it matches only empty expected bytes. */
    hint_put(f->st, ID_A, &k, "");
    assert_int_equal(store_hint_remove_if(f->st, ID_A, k.data, k.len, "x", 1), RK_EPRECOND);
    assert_int_equal(store_hint_remove_if(f->st, ID_A, k.data, k.len, NULL, 0), RK_OK);
    assert_no_hint(f->st, ID_A, &k);
    rk_buf_free(&k);
}

typedef struct hint_job {
    store *st;
    const rk_buf *key;
    int failures;
    atomic_bool done;
} hint_job;

static void *hint_increment_thread(void *arg)
{
    hint_job *j = arg;
    for (int i = 0; i < INCREMENTS; i++)
        if (store_hint_apply(j->st, ID_A, j->key->data, j->key->len, increment_cb, NULL) != RK_OK)
            j->failures++;
    atomic_store(&j->done, true);
    return NULL;
}

/* Delivers the hint as hint delivery does (read, then remove_if what was
 * read) while other threads merge increments into it. The counts delivered
 * plus what is left must be every increment: a merge that landed between
 * the compare and the delete would be lost. */
static void test_hint_remove_if_never_loses_a_merge(void **state)
{
    fixture *f = *state;
    rk_buf k = {0}, got = {0};
    dkey(61, "t", "k", &k);
    pthread_t th[THREADS];
    hint_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (hint_job){.st = f->st, .key = &k};
        assert_int_equal(pthread_create(&th[i], NULL, hint_increment_thread, &jobs[i]), 0);
    }
    uint64_t delivered = 0;
    int removed = 0, running = THREADS;
    while (running > 0) {
        rk_buf_reset(&got);
        rk_err rc = store_hint_get(f->st, ID_A, k.data, k.len, &got);
        if (rc == RK_OK) {
            uint64_t n = 0;
            assert_int_equal(rk_parse_u64(got.data, got.len, &n), RK_OK);
            rc = store_hint_remove_if(f->st, ID_A, k.data, k.len, got.data, got.len);
            assert_true(rc == RK_OK || rc == RK_EPRECOND);
            if (rc == RK_OK) {
                delivered += n;
                removed++;
            }
        } else {
            assert_int_equal(rc, RK_ENOTFOUND);
        }
        running = 0;
        for (int i = 0; i < THREADS; i++)
            running += !atomic_load(&jobs[i].done);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(jobs[i].failures, 0);
    }
    uint64_t left = 0;
    rk_buf_reset(&got);
    if (store_hint_get(f->st, ID_A, k.data, k.len, &got) == RK_OK)
        assert_int_equal(rk_parse_u64(got.data, got.len, &left), RK_OK);
    print_message("%d removals delivered %llu, %llu left\n", removed, (unsigned long long)delivered,
                  (unsigned long long)left);
    assert_int_equal(delivered + left, THREADS * INCREMENTS);
    rk_buf_free(&got);
    rk_buf_free(&k);
}

typedef struct stripe_job {
    store *st;
    const rk_buf *key;
    bool remove; /* remove_if instead of apply */
    rk_err rc;
    atomic_bool done;
} stripe_job;

static void *stripe_thread(void *arg)
{
    stripe_job *j = arg;
    if (j->remove)
        j->rc = store_hint_remove_if(j->st, ID_A, j->key->data, j->key->len, "x", 1);
    else
        j->rc = store_hint_apply(j->st, ID_A, j->key->data, j->key->len, set_cb, "x");
    atomic_store(&j->done, true);
    return NULL;
}

/* While the data key's stripe is held, neither a hint apply nor a hint
 * remove_if for that key can finish: they take the same lock. */
static void test_hint_shares_stripe_with_data(void **state)
{
    fixture *f = *state;
    rk_buf k = {0};
    dkey(62, "t", "k", &k);
    pthread_mutex_t *m = store_stripe_of(f->st, k.data, k.len);
    for (int remove = 0; remove <= 1; remove++) {
        stripe_job j = {.st = f->st, .key = &k, .remove = remove, .rc = RK_EIO};
        pthread_t th;
        pthread_mutex_lock(m);
        assert_int_equal(pthread_create(&th, NULL, stripe_thread, &j), 0);
        nanosleep(&(struct timespec){.tv_nsec = 200 * 1000 * 1000}, NULL);
        bool finished_under_lock = atomic_load(&j.done);
        pthread_mutex_unlock(m);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_false(finished_under_lock);
        assert_int_equal(j.rc, RK_OK);
    }
    assert_no_hint(f->st, ID_A, &k); /* applied, then removed */
    rk_buf_free(&k);
}

static void test_hint_targets_one_per_id(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_hint_targets(f->st, NULL, 0), 0);

    /* Written out of order; 5 holds many hints, each id must appear once. */
    for (uint64_t p = 0; p < 20; p++)
        hint_put_at(f->st, 5, p * 1000, "v");
    hint_put_at(f->st, UINT64_MAX, 1, "v");
    hint_put_at(f->st, UINT64_MAX, 2, "v");
    hint_put_at(f->st, 1, 7, "v");
    hint_put_at(f->st, ID_CARRY_HI, 7, "v");
    hint_put_at(f->st, ID_CARRY_LO, UINT64_MAX, "v");
    hint_put_at(f->st, 6, 0, "v");
    const uint64_t want[] = {1, 5, 6, ID_CARRY_LO, ID_CARRY_HI, UINT64_MAX};
    const size_t n_want = sizeof want / sizeof want[0];

    uint64_t out[16];
    assert_int_equal(store_hint_targets(f->st, out, 16), n_want);
    for (size_t i = 0; i < n_want; i++)
        assert_true(out[i] == want[i]);

    /* A short buffer gets the lowest ids, untouched past cap, and the true
     * count. */
    for (size_t i = 0; i < 16; i++)
        out[i] = 0xabababababababab;
    assert_int_equal(store_hint_targets(f->st, out, 3), n_want);
    for (size_t i = 0; i < 3; i++)
        assert_true(out[i] == want[i]);
    assert_true(out[3] == 0xabababababababab);
    assert_int_equal(store_hint_targets(f->st, NULL, 0), n_want);

    /* An id whose last hint was delivered is no longer a target. */
    rk_buf k = {0};
    dkey(7, "t", "k", &k);
    assert_int_equal(store_hint_remove_if(f->st, 1, k.data, k.len, "v", 1), RK_OK);
    assert_int_equal(store_hint_targets(f->st, out, 16), n_want - 1);
    assert_true(out[0] == 5);
    rk_buf_free(&k);
}

static void test_hint_drop_one_and_all(void **state)
{
    fixture *f = *state;
    for (uint64_t p = 1; p <= 3; p++)
        hint_put_at(f->st, ID_A, p, "v");
    hint_put_at(f->st, ID_B, 0, "v"); /* right after A's keys */
    hint_put_at(f->st, ID_B, 1, "v");
    hint_put_at(f->st, UINT64_MAX, 0, "v");
    hint_put_at(f->st, UINT64_MAX, UINT64_MAX, "v");
    hint_put_at(f->st, ID_CARRY_LO, UINT64_MAX, "v");
    rk_buf k = {0};
    dkey(2, "t", "k", &k);
    put(f->st, &k, "data");

    uint64_t n = 99;
    assert_int_equal(store_hint_drop(f->st, ID_A, &n), RK_OK);
    assert_true(n == 3);
    hints_seen h = {0};
    scan_hints(f->st, ID_A, NO_AFTER, &h);
    assert_int_equal(h.n, 0);
    scan_hints(f->st, ID_B, NO_AFTER, &h);
    assert_int_equal(h.n, 2);
    assert_int_equal(store_hint_drop(f->st, ID_A, &n), RK_OK);
    assert_true(n == 0);

    /* The top id, whose range has no upper bound. */
    assert_int_equal(store_hint_drop(f->st, UINT64_MAX, &n), RK_OK);
    assert_true(n == 2);
    uint64_t out[8];
    assert_int_equal(store_hint_targets(f->st, out, 8), 2);
    assert_true(out[0] == ID_CARRY_LO);
    assert_true(out[1] == ID_B);

    /* A dropped id can take new hints. */
    hint_put_at(f->st, ID_A, 2, "new");
    assert_hint(f->st, ID_A, &k, "new");

    assert_int_equal(store_hint_drop(f->st, 0, &n), RK_OK);
    assert_true(n == 4);
    assert_int_equal(store_hint_targets(f->st, out, 8), 0);
    assert_no_hint(f->st, ID_A, &k);
    assert_int_equal(store_hint_drop(f->st, 0, NULL), RK_OK);
    assert_value(f->st, &k, "data"); /* data is not hints */
    rk_buf_free(&k);
}

static void test_hints_survive_reopen(void **state)
{
    fixture *f = *state;
    rk_buf k = {0};
    dkey(70, "t", "k", &k);
    assert_int_equal(store_hint_apply(f->st, ID_A, k.data, k.len, append_cb, "a"), RK_OK);
    assert_int_equal(store_hint_apply(f->st, ID_A, k.data, k.len, append_cb, "b"), RK_OK);
    hint_put(f->st, ID_B, &k, "gone");
    hint_put_at(f->st, UINT64_MAX, 71, "v");
    assert_int_equal(store_hint_drop(f->st, ID_B, NULL), RK_OK);

    reopen(f);
    assert_hint(f->st, ID_A, &k, "ab");
    assert_no_hint(f->st, ID_B, &k);
    uint64_t out[4];
    assert_int_equal(store_hint_targets(f->st, out, 4), 2);
    assert_true(out[0] == ID_A);
    assert_true(out[1] == UINT64_MAX);
    hints_seen h = {0};
    scan_hints(f->st, UINT64_MAX, NO_AFTER, &h);
    assert_positions(&h, (const uint64_t[]){71}, 1);
    /* They still merge after the reopen. */
    assert_int_equal(store_hint_apply(f->st, ID_A, k.data, k.len, append_cb, "c"), RK_OK);
    assert_hint(f->st, ID_A, &k, "abc");
    rk_buf_free(&k);
}

static bool count_cb(void *arg, const char *k, size_t k_len, const char *v, size_t v_len)
{
    (void)k;
    (void)k_len;
    (void)v;
    (void)v_len;
    (*(int *)arg)++;
    return true;
}

static void test_hints_not_in_data_scan(void **state)
{
    fixture *f = *state;
    rk_buf k = {0}, hk = {0}, out = {0};
    dkey(1, "t", "k", &k);
    put(f->st, &k, "v");
    hint_put(f->st, ID_A, &k, "h");
    dkey(2, "t", "k", &k);
    put(f->st, &k, "v");
    hint_put_at(f->st, ID_A, 3, "h");
    hint_put_at(f->st, UINT64_MAX, 4, "h");

    int n = 0;
    assert_int_equal(store_scan(f->st, NULL, 0, NULL, 0, count_cb, &n), RK_OK);
    assert_int_equal(n, 2);
    collected c = {0};
    assert_int_equal(store_scan(f->st, NULL, 0, NULL, 0, collect_cb, &c), RK_OK);
    assert_int_equal(c.n, 2); /* both 'v', at positions 1 and 2 */
    assert_true(c.positions[0] == 1 && c.positions[1] == 2);

    /* Nor is a hint's whole key a data key. */
    const uint8_t id[8] = {0x12, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0x01};
    assert_int_equal(rk_buf_append(&hk, id, 8), RK_OK);
    dkey(1, "t", "k", &k);
    assert_int_equal(rk_buf_append(&hk, k.data, k.len), RK_OK);
    assert_int_equal(store_get(f->st, hk.data, hk.len, &out), RK_ENOTFOUND);

    /* And the data records are not hints. */
    hints_seen h = {0};
    scan_hints(f->st, ID_A, NO_AFTER, &h);
    assert_positions(&h, (const uint64_t[]){1, 3}, 2);
    assert_string_equal(h.val[0], "h");
    rk_buf_free(&k);
    rk_buf_free(&hk);
}

static void test_hint_stats(void **state)
{
    fixture *f = *state;
    store_stats s = {0};
    assert_int_equal(store_get_stats(f->st, &s), RK_OK);
    assert_true(s.hints_estimate == 0);
    for (uint64_t p = 0; p < 5; p++)
        hint_put_at(f->st, ID_A, p, "v");
    /* Only hints were written: the data estimate stays 0, the hints one
     * counts them (from the memtable here, from SST files after reopen). */
    assert_int_equal(store_get_stats(f->st, &s), RK_OK);
    assert_true(s.keys_estimate == 0);
    assert_true(s.hints_estimate == 5);
    reopen(f);
    assert_int_equal(store_get_stats(f->st, &s), RK_OK);
    print_message("hints after reopen: ~%llu\n", (unsigned long long)s.hints_estimate);
    assert_true(s.keys_estimate == 0);
    assert_true(s.hints_estimate >= 1 && s.hints_estimate <= 10);
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
        T(test_hint_apply_creates_and_merges),
        T(test_hint_rejects_bad_arguments),
        T(test_hint_get_and_scan_in_key_order),
        T(test_hint_scan_never_shows_other_nodes),
        T(test_hint_remove_if_compares_bytes),
        T(test_hint_remove_if_never_loses_a_merge),
        T(test_hint_shares_stripe_with_data),
        T(test_hint_targets_one_per_id),
        T(test_hint_drop_one_and_all),
        T(test_hints_survive_reopen),
        T(test_hints_not_in_data_scan),
        T(test_hint_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
