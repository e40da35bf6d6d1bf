/* test_replica.c - this node's copy of the records over a real store in a
 * temporary directory: addresses, conditional writes, merges, hints, table
 * scans and counters. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringkv/replica.h"
#include "ringkv/ring.h"
#include "ringkv/store.h"

#include "support.h"

enum { NODE = 0x1111, OTHER = 0x2222, PEER = 0x3333 };

#define MAX_SIBLINGS 3
#define MAX_VALUE 64

/* ---- fixture: a temp dir, a store and a replica over it --------------------- */

typedef struct fixture {
    char dir[64];
    store *st;
    replica *rp;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    strcpy(f->dir, "/tmp/ringkv-test-replica-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    store_options o;
    store_options_default(&o);
    o.cache_bytes = 8 << 20;
    replica_config cfg;
    replica_config_default(&cfg);
    cfg.max_siblings = MAX_SIBLINGS;
    cfg.max_value_bytes = MAX_VALUE;
    if (store_open(f->dir, &o, &f->st) != RK_OK ||
        replica_open(f->st, NODE, &cfg, &f->rp) != RK_OK) {
        store_close(f->st);
        rm_tree(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    replica_close(f->rp);
    store_close(f->st);
    rm_tree(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

static replica_key make_key(const char *table, const char *key)
{
    replica_key k;
    assert_int_equal(replica_key_init(&k, table, strlen(table), key, strlen(key)), RK_OK);
    return k;
}

static replica_update value_update(const char *value)
{
    return (replica_update){.value = value, .value_len = strlen(value), .owner = ""};
}

/* replica_write that must succeed; returns what was written. */
static replica_written write_ok(fixture *f, const replica_key *k, const replica_update *u)
{
    replica_written w = {0};
    assert_int_equal(replica_write(f->rp, k, u, &w, NULL), RK_OK);
    return w;
}

static bool has_live(const rk_object *obj, const char *value)
{
    for (size_t i = 0; i < obj->len; i++)
        if (!obj->siblings[i].tombstone && strcmp(obj->siblings[i].value, value) == 0)
            return true;
    return false;
}

/* The stored bytes of key (own copy, or the hint for intended). */
static rk_err stored(fixture *f, const replica_key *k, uint64_t intended, rk_buf *out)
{
    rk_buf_reset(out);
    return replica_read(f->rp, k->dbkey, k->dbkey_len, intended, out);
}

static bool same_bytes(const rk_buf *a, const rk_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Another replica's object for a key: a write by OTHER. */
static void other_object(rk_object *obj, const vclock *ctx, const char *value)
{
    object_write w = {.value = value, .value_len = strlen(value), .owner = "", .timestamp_ms = 5};
    assert_int_equal(object_update(obj, ctx, OTHER, &w, 0, NULL, NULL), RK_OK);
}

/* ---- addresses ---------------------------------------------------------------- */

static void test_key_init(void **state)
{
    (void)state;
    replica_key k;
    assert_int_equal(replica_key_init(&k, "users", 5, "alice", 5), RK_OK);
    assert_true(k.position == ring_position("users", 5, "alice", 5));
    assert_true(k.table_len == 5 && memcmp(k.table, "users", 5) == 0);
    assert_true(k.key_len == 5 && memcmp(k.key, "alice", 5) == 0);
    rk_buf want = {0};
    assert_int_equal(store_data_key(k.position, "users", 5, "alice", 5, &want), RK_OK);
    assert_int_equal(k.dbkey_len, want.len);
    assert_memory_equal(k.dbkey, want.data, want.len);
    /* and it parses back to its names */
    uint64_t pos = 0;
    const char *t, *key;
    size_t tl, kl;
    assert_int_equal(store_data_key_parse(k.dbkey, k.dbkey_len, &pos, &t, &tl, &key, &kl), RK_OK);
    assert_true(pos == k.position && tl == 5 && kl == 5 && memcmp(key, "alice", 5) == 0);
    rk_buf_free(&want);

    /* The longest names fit. */
    char table[REPLICA_TABLE_MAX + 2], key_text[REPLICA_KEY_MAX + 2];
    memset(table, 'T', sizeof table);
    memset(key_text, 'k', sizeof key_text);
    assert_int_equal(replica_key_init(&k, table, REPLICA_TABLE_MAX, key_text, REPLICA_KEY_MAX),
                     RK_OK);
    assert_int_equal(k.dbkey_len, 8 + REPLICA_TABLE_MAX + 1 + REPLICA_KEY_MAX);
    rk_buf big = {0};
    assert_int_equal(
        store_data_key(k.position, table, REPLICA_TABLE_MAX, key_text, REPLICA_KEY_MAX, &big),
        RK_OK);
    assert_memory_equal(k.dbkey, big.data, big.len);
    rk_buf_free(&big);
    /* Multi-byte UTF-8 and the allowed punctuation. */
    assert_int_equal(replica_key_init(&k, "a_b.c-D9", 8, "caf\xc3\xa9 / ?", 9), RK_OK);
    assert_int_equal(replica_key_init(&k, "_system", 7, "k", 1), RK_OK);
    assert_true(replica_table_reserved("_system", 7));
    assert_false(replica_table_reserved("system", 6));

    /* Invalid names. */
    const struct {
        const char *table;
        size_t table_len;
        const char *key;
        size_t key_len;
    } bad[] = {
        {"", 0, "k", 1},                         /* empty table */
        {NULL, 0, "k", 1},                       /* no table */
        {table, REPLICA_TABLE_MAX + 1, "k", 1},  /* table too long */
        {"a/b", 3, "k", 1},                      /* a slash */
        {"a b", 3, "k", 1},                      /* a space */
        {"a\0b", 3, "k", 1},                     /* a NUL */
        {"t\xc3\xa9", 3, "k", 1},                /* not ASCII */
        {"t", 1, "", 0},                         /* empty key */
        {"t", 1, NULL, 0},                       /* no key */
        {"t", 1, key_text, REPLICA_KEY_MAX + 1}, /* key too long */
        {"t", 1, "a\0b", 3},                     /* a NUL in the key */
        {"t", 1, "\xff", 1},                     /* not UTF-8 */
        {"t", 1, "caf\xc3", 4},                  /* truncated UTF-8 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(
            replica_key_init(&k, bad[i].table, bad[i].table_len, bad[i].key, bad[i].key_len),
            RK_EINVAL);
}

/* ---- a client's write ------------------------------------------------------------ */

static void test_write_create_update(void **state)
{
    fixture *f = *state;
    replica_key k = make_key("t", "k");
    rk_object got = {0};
    assert_int_equal(replica_get(f->rp, &k, &got), RK_ENOTFOUND);

    /* Create. */
    replica_update u = value_update("1");
    rk_buf enc = {0};
    replica_written w = {0};
    assert_int_equal(replica_write(f->rp, &k, &u, &w, &enc), RK_OK);
    assert_false(w.existed);
    assert_true(w.dot.actor == NODE && w.dot.counter == 1);
    assert_int_equal(w.obj.len, 1);
    assert_true(has_live(&w.obj, "1"));
    /* encoded holds exactly the stored bytes */
    rk_buf bytes = {0};
    assert_int_equal(stored(f, &k, 0, &bytes), RK_OK);
    assert_true(same_bytes(&enc, &bytes));
    assert_int_equal(replica_get(f->rp, &k, &got), RK_OK);
    assert_int_equal(got.len, 1);
    assert_true(has_live(&got, "1"));
    object_free(&got);

    /* Update with the context read: replaces the value. */
    replica_update u2 = value_update("2");
    u2.context = &w.obj.clock;
    replica_written w2 = write_ok(f, &k, &u2);
    assert_true(w2.existed);
    assert_true(w2.dot.actor == NODE && w2.dot.counter == 2);
    assert_int_equal(w2.obj.len, 1);
    assert_true(has_live(&w2.obj, "2"));
    assert_int_equal(replica_get(f->rp, &k, &got), RK_OK);
    assert_int_equal(got.len, 1);
    assert_true(has_live(&got, "2"));
    assert_int_equal(vclock_compare(&got.clock, &w2.obj.clock), VCLOCK_EQUAL);
    object_free(&got);

    /* The owner is kept. */
    replica_update u3 = value_update("3");
    u3.context = &w2.obj.clock;
    u3.owner = "alice";
    replica_written w3 = write_ok(f, &k, &u3);
    assert_string_equal(w3.obj.siblings[0].owner, "alice");

    /* An empty value is refused and writes nothing. */
    replica_update empty = {.value = "", .value_len = 0};
    replica_written untouched = {.existed = true};
    assert_int_equal(replica_write(f->rp, &k, &empty, &untouched, NULL), RK_EINVAL);
    assert_true(untouched.existed);
    rk_buf after = {0};
    assert_int_equal(stored(f, &k, 0, &bytes), RK_OK);
    rk_buf_append(&after, bytes.data, bytes.len);
    assert_int_equal(replica_write(f->rp, &k, &empty, &untouched, NULL), RK_EINVAL);
    assert_int_equal(stored(f, &k, 0, &bytes), RK_OK);
    assert_true(same_bytes(&after, &bytes));

    rk_buf_free(&after);
    rk_buf_free(&bytes);
    rk_buf_free(&enc);
    object_free(&w.obj);
    object_free(&w2.obj);
    object_free(&w3.obj);
}

static void test_write_concurrent_siblings(void **state)
{
    fixture *f = *state;
    replica_key k = make_key("t", "k");
    replica_update u1 = value_update("1");
    replica_written w1 = write_ok(f, &k, &u1);

    /* Two writers both read version 1: their writes become siblings. */
    replica_update u2 = value_update("2");
    u2.context = &w1.obj.clock;
    replica_written w2 = write_ok(f, &k, &u2);
    replica_update u3 = value_update("3");
    u3.context = &w1.obj.clock;
    replica_written w3 = write_ok(f, &k, &u3);
    assert_true(w3.existed);
    assert_int_equal(w3.obj.len, 2);
    assert_true(has_live(&w3.obj, "2") && has_live(&w3.obj, "3"));
    assert_false(has_live(&w3.obj, "1"));

    /* A write with an empty context (read nothing) is concurrent too. */
    vclock none = {0};
    replica_update u4 = value_update("4");
    u4.context = &none;
    replica_written w4 = write_ok(f, &k, &u4);
    assert_int_equal(w4.obj.len, 3);

    /* A write that read them all resolves them. */
    replica_update u5 = value_update("5");
    u5.context = &w4.obj.clock;
    replica_written w5 = write_ok(f, &k, &u5);
    assert_int_equal(w5.obj.len, 1);
    assert_true(has_live(&w5.obj, "5"));
    rk_object got = {0};
    assert_int_equal(replica_get(f->rp, &k, &got), RK_OK);
    assert_int_equal(got.len, 1);
    object_free(&got);

    object_free(&w1.obj);
    object_free(&w2.obj);
    object_free(&w3.obj);
    object_free(&w4.obj);
    object_free(&w5.obj);
}

static void test_write_if_none_match(void **state)
{
    fixture *f = *state;
    replica_key k = make_key("t", "k");
    replica_update create = value_update("1");
    create.if_none_match = true;
    replica_written w = write_ok(f, &k, &create);
    rk_buf before = {0}, bytes = {0};
    assert_int_equal(stored(f, &k, 0, &before), RK_OK);

    /* Exists: refused, nothing written, out untouched. */
    replica_update again = value_update("2");
    again.if_none_match = true;
    replica_written untouched = {.existed = false, .dot = {7, 7}};
    rk_buf enc = {0};
    assert_int_equal(replica_write(f->rp, &k, &again, &untouched, &enc), RK_EPRECOND);
    assert_true(untouched.dot.actor == 7 && untouched.obj.len == 0);
    assert_int_equal(enc.len, 0);
    assert_int_equal(stored(f, &k, 0, &bytes), RK_OK);
    assert_true(same_bytes(&before, &bytes));

    /* Deleted (tombstones only): it may be created again. */
    replica_update del = {.tombstone = true, .context = &w.obj.clock};
    replica_written wd = write_ok(f, &k, &del);
    replica_written w2 = write_ok(f, &k, &again);
    assert_false(w2.existed);
    assert_true(has_live(&w2.obj, "2"));

    rk_buf_free(&before);
    rk_buf_free(&bytes);
    rk_buf_free(&enc);
    object_free(&w.obj);
    object_free(&wd.obj);
    object_free(&w2.obj);
}

static void test_write_if_match(void **state)
{
    fixture *f = *state;
    replica_key k = make_key("t", "k");
    replica_update u1 = value_update("1");
    replica_written w1 = write_ok(f, &k, &u1);

    /* The current clock: applied. */
    replica_update u2 = value_update("2");
    u2.context = &w1.obj.clock;
    u2.if_match = &w1.obj.clock;
    replica_written w2 = write_ok(f, &k, &u2);
    assert_true(has_live(&w2.obj, "2"));

    /* A stale clock: RK_EPRECOND, nothing written. */
    rk_buf before = {0}, bytes = {0};
    assert_int_equal(stored(f, &k, 0, &before), RK_OK);
    replica_update u3 = value_update("3");
    u3.if_match = &w1.obj.clock;
    replica_written untouched = {0};
    assert_int_equal(replica_write(f->rp, &k, &u3, &untouched, NULL), RK_EPRECOND);
    assert_int_equal(stored(f, &k, 0, &bytes), RK_OK);
    assert_true(same_bytes(&before, &bytes));
    /* A delete with a stale clock too. */
    replica_update del = {.tombstone = true, .if_match = &w1.obj.clock};
    assert_int_equal(replica_write(f->rp, &k, &del, &untouched, NULL), RK_EPRECOND);
    assert_int_equal(stored(f, &k, 0, &bytes), RK_OK);
    assert_true(same_bytes(&before, &bytes));

    /* A clock that is ahead (concurrent) is no match either. */
    rk_object ahead = {0};
    assert_int_equal(object_copy(&ahead, &w2.obj), RK_OK);
    other_object(&ahead, NULL, "9");
    assert_int_equal(
        replica_write(f->rp, &k,
                      &(replica_update){.value = "3", .value_len = 1, .if_match = &ahead.clock},
                      &untouched, NULL),
        RK_EPRECOND);

    rk_buf_free(&before);
    rk_buf_free(&bytes);
    object_free(&ahead);
    object_free(&w1.obj);
    object_free(&w2.obj);
}

static void test_write_tombstone(void **state)
{
    fixture *f = *state;
    replica_key k = make_key("t", "gone");
    rk_buf bytes = {0};

    /* A tombstone for a key that was never written: RK_ENOTFOUND and
     * nothing stored. */
    replica_update del = {.tombstone = true};
    replica_written untouched = {0};
    assert_int_equal(replica_write(f->rp, &k, &del, &untouched, NULL), RK_ENOTFOUND);
    assert_int_equal(stored(f, &k, 0, &bytes), RK_ENOTFOUND);

    /* Delete a live key: a tombstone is stored, the key reads as a
     * tombstone-only object. */
    replica_update u = value_update("1");
    replica_written w = write_ok(f, &k, &u);
    del.context = &w.obj.clock;
    replica_written wd = write_ok(f, &k, &del);
    assert_true(wd.existed);
    assert_int_equal(object_live_count(&wd.obj), 0);
    rk_object got = {0};
    assert_int_equal(replica_get(f->rp, &k, &got), RK_OK);
    assert_int_equal(object_live_count(&got), 0);
    object_free(&got);

    /* Deleting it again: RK_ENOTFOUND, the stored tombstone unchanged. */
    rk_buf before = {0};
    assert_int_equal(stored(f, &k, 0, &before), RK_OK);
    del.context = &wd.obj.clock;
    assert_int_equal(replica_write(f->rp, &k, &del, &untouched, NULL), RK_ENOTFOUND);
    assert_int_equal(stored(f, &k, 0, &bytes), RK_OK);
    assert_true(same_bytes(&before, &bytes));

    rk_buf_free(&before);
    rk_buf_free(&bytes);
    object_free(&w.obj);
    object_free(&wd.obj);
}

static void test_write_too_big(void **state)
{
    fixture *f = *state;
    replica_key k = make_key("t", "big");
    char value[MAX_VALUE + 2];
    value[0] = '"';
    memset(value + 1, 'x', sizeof value - 1);
    value[MAX_VALUE] = '"'; /* MAX_VALUE + 1 bytes: one too many */
    replica_update u = {.value = value, .value_len = MAX_VALUE + 1};
    replica_written untouched = {0};
    assert_int_equal(replica_write(f->rp, &k, &u, &untouched, NULL), RK_ETOOBIG);
    rk_buf bytes = {0};
    assert_int_equal(stored(f, &k, 0, &bytes), RK_ENOTFOUND);
    /* Exactly the limit is fine. */
    value[MAX_VALUE - 1] = '"';
    u.value_len = MAX_VALUE;
    replica_written w = write_ok(f, &k, &u);
    assert_int_equal(w.obj.siblings[0].value_len, MAX_VALUE);
    rk_buf_free(&bytes);
    object_free(&w.obj);
}

static void test_write_sibling_cap(void **state)
{
    fixture *f = *state;
    replica_key k = make_key("t", "many");
    vclock none = {0};
    const char *values[] = {"1", "2", "3", "4", "5"};
    replica_written w = {0};
    for (size_t i = 0; i < 5; i++) {
        object_free(&w.obj);
        replica_update u = value_update(values[i]);
        u.context = &none; /* each blind of the others: concurrent */
        w = write_ok(f, &k, &u);
        assert_int_equal(w.obj.len, i + 1 < MAX_SIBLINGS ? i + 1 : MAX_SIBLINGS);
    }
    /* The oldest two went; the newest three stay, the last write among them. */
    assert_false(has_live(&w.obj, "1"));
    assert_false(has_live(&w.obj, "2"));
    assert_true(has_live(&w.obj, "3") && has_live(&w.obj, "4") && has_live(&w.obj, "5"));
    assert_int_equal(w.obj.siblings_dropped, 2);
    rk_object got = {0};
    assert_int_equal(replica_get(f->rp, &k, &got), RK_OK);
    assert_int_equal(got.len, MAX_SIBLINGS);
    object_free(&got);
    replica_stats s;
    replica_get_stats(f->rp, &s);
    assert_int_equal(s.siblings_dropped, 2);
    assert_int_equal(s.max_siblings_seen, MAX_SIBLINGS);
    object_free(&w.obj);
}

/* ---- merges -------------------------------------------------------------------------- */

static void test_merge_idempotent(void **state)
{
    fixture *f = *state;
    replica_key k = make_key("t", "m");
    rk_object theirs = {0};
    other_object(&theirs, NULL, "1");

    bool changed = false;
    assert_int_equal(replica_merge(f->rp, k.dbkey, k.dbkey_len, 0, &theirs, &changed), RK_OK);
    assert_true(changed);
    rk_buf first = {0}, bytes = {0};
    assert_int_equal(stored(f, &k, 0, &first), RK_OK);
    /* Again: nothing changes, the bytes stay the same. */
    changed = true;
    assert_int_equal(replica_merge(f->rp, k.dbkey, k.dbkey_len, 0, &theirs, &changed), RK_OK);
    assert_false(changed);
    assert_int_equal(stored(f, &k, 0, &bytes), RK_OK);
    assert_true(same_bytes(&first, &bytes));
    /* intended = this node is this node's own copy too. */
    assert_int_equal(replica_merge(f->rp, k.dbkey, k.dbkey_len, NODE, &theirs, &changed), RK_OK);
    assert_false(changed);

    /* A local write concurrent with theirs, then their newer version: the
     * merge keeps both lines. */
    replica_update u = value_update("2");
    u.context = &(vclock){0};
    replica_written w = write_ok(f, &k, &u);
    assert_int_equal(w.obj.len, 2);
    rk_object newer = {0};
    assert_int_equal(object_copy(&newer, &theirs), RK_OK);
    other_object(&newer, &theirs.clock, "3");
    assert_int_equal(replica_merge(f->rp, k.dbkey, k.dbkey_len, 0, &newer, &changed), RK_OK);
    assert_true(changed);
    rk_object got = {0};
    assert_int_equal(replica_get(f->rp, &k, &got), RK_OK);
    assert_int_equal(got.len, 2);
    assert_true(has_live(&got, "2") && has_live(&got, "3"));
    object_free(&got);
    /* The older version of theirs changes nothing now. */
    assert_int_equal(replica_merge(f->rp, k.dbkey, k.dbkey_len, 0, &theirs, &changed), RK_OK);
    assert_false(changed);

    /* Encoded: the same, and bytes that do not decode are RK_ECORRUPT. */
    rk_buf enc = {0};
    assert_int_equal(object_encode(&newer, &enc), RK_OK);
    assert_int_equal(
        replica_merge_encoded(f->rp, k.dbkey, k.dbkey_len, 0, enc.data, enc.len, &changed), RK_OK);
    assert_false(changed);
    assert_int_equal(replica_merge_encoded(f->rp, k.dbkey, k.dbkey_len, 0, "\xff\xfe", 2, &changed),
                     RK_ECORRUPT);

    rk_buf_free(&enc);
    rk_buf_free(&first);
    rk_buf_free(&bytes);
    object_free(&w.obj);
    object_free(&newer);
    object_free(&theirs);
}

/* ---- hints --------------------------------------------------------------------------- */

static void test_merge_hint(void **state)
{
    fixture *f = *state;
    replica_key k = make_key("t", "h");
    rk_object theirs = {0};
    other_object(&theirs, NULL, "1");
    uint64_t ids[4];
    assert_int_equal(replica_hint_targets(f->rp, ids, 4), 0);

    /* Merged for PEER: a hint, not this node's copy. */
    bool changed = false;
    assert_int_equal(replica_merge(f->rp, k.dbkey, k.dbkey_len, PEER, &theirs, &changed), RK_OK);
    assert_true(changed);
    rk_buf hint = {0}, bytes = {0};
    assert_int_equal(stored(f, &k, PEER, &hint), RK_OK);
    assert_int_equal(stored(f, &k, 0, &bytes), RK_ENOTFOUND);
    assert_int_equal(stored(f, &k, NODE, &bytes), RK_ENOTFOUND);
    assert_int_equal(stored(f, &k, OTHER, &bytes), RK_ENOTFOUND);
    rk_object got = {0};
    assert_int_equal(replica_get(f->rp, &k, &got), RK_ENOTFOUND);
    assert_int_equal(replica_hint_targets(f->rp, ids, 4), 1);
    assert_true(ids[0] == PEER);

    /* A second write merged into the hint after the first was sent: the
     * sent bytes are stale and the hint stays. */
    rk_object newer = {0};
    assert_int_equal(object_copy(&newer, &theirs), RK_OK);
    other_object(&newer, &theirs.clock, "2");
    assert_int_equal(replica_merge(f->rp, k.dbkey, k.dbkey_len, PEER, &newer, &changed), RK_OK);
    assert_true(changed);
    assert_int_equal(replica_hint_remove_if(f->rp, PEER, k.dbkey, k.dbkey_len, hint.data, hint.len),
                     RK_EPRECOND);
    assert_int_equal(stored(f, &k, PEER, &bytes), RK_OK);
    assert_false(same_bytes(&hint, &bytes));

    /* With the current bytes: deleted. */
    assert_int_equal(
        replica_hint_remove_if(f->rp, PEER, k.dbkey, k.dbkey_len, bytes.data, bytes.len), RK_OK);
    rk_buf gone = {0};
    assert_int_equal(stored(f, &k, PEER, &gone), RK_ENOTFOUND);
    assert_int_equal(replica_hint_targets(f->rp, ids, 4), 0);
    assert_int_equal(
        replica_hint_remove_if(f->rp, PEER, k.dbkey, k.dbkey_len, bytes.data, bytes.len),
        RK_ENOTFOUND);

    /* Hints for two nodes, listed in increasing order; drop one node's. */
    replica_key k2 = make_key("t", "h2");
    assert_int_equal(replica_merge(f->rp, k.dbkey, k.dbkey_len, PEER, &theirs, NULL), RK_OK);
    assert_int_equal(replica_merge(f->rp, k2.dbkey, k2.dbkey_len, PEER, &theirs, NULL), RK_OK);
    assert_int_equal(replica_merge(f->rp, k.dbkey, k.dbkey_len, OTHER, &theirs, NULL), RK_OK);
    assert_int_equal(replica_hint_targets(f->rp, ids, 4), 2);
    assert_true(ids[0] == OTHER && ids[1] == PEER);
    assert_int_equal(replica_hint_targets(f->rp, ids, 1), 2); /* how many, over cap */
    uint64_t dropped = 0;
    assert_int_equal(replica_hint_drop(f->rp, PEER, &dropped), RK_OK);
    assert_int_equal(dropped, 2);
    assert_int_equal(replica_hint_targets(f->rp, ids, 4), 1);
    assert_true(ids[0] == OTHER);
    /* The own copy was never touched. */
    assert_int_equal(stored(f, &k, 0, &bytes), RK_ENOTFOUND);

    rk_buf_free(&hint);
    rk_buf_free(&bytes);
    rk_buf_free(&gone);
    object_free(&newer);
    object_free(&theirs);
}

/* ---- scans --------------------------------------------------------------------------- */

typedef struct seen {
    char keys[16][16];
    size_t count;
    size_t stop_after; /* 0 = never stop */
    bool all_live;
} seen;

static bool collect_cb(void *arg, const char *key, size_t key_len, const rk_object *obj)
{
    seen *s = arg;
    assert_true(key_len < sizeof s->keys[0] && s->count < 16);
    memcpy(s->keys[s->count], key, key_len);
    s->keys[s->count][key_len] = '\0';
    s->count++;
    if (object_live_count(obj) == 0)
        s->all_live = false;
    return s->stop_after == 0 || s->count < s->stop_after;
}

static bool seen_has(const seen *s, const char *key)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->keys[i], key) == 0)
            return true;
    return false;
}

static void test_scan_table(void **state)
{
    fixture *f = *state;
    const char *t1_keys[] = {"a", "b", "c", "d", "e", "f"};
    for (size_t i = 0; i < 6; i++) {
        replica_key k = make_key("t1", t1_keys[i]);
        replica_update u = value_update("1");
        replica_written w = write_ok(f, &k, &u);
        object_free(&w.obj);
    }
    /* Another table, a table whose name extends t1's, and a deleted key. */
    const char *other_tables[] = {"t2", "t10", "t"};
    for (size_t i = 0; i < 3; i++) {
        replica_key k = make_key(other_tables[i], "a");
        replica_update u = value_update("2");
        replica_written w = write_ok(f, &k, &u);
        object_free(&w.obj);
    }
    replica_key dead = make_key("t1", "dead");
    replica_update u = value_update("1");
    replica_written w = write_ok(f, &dead, &u);
    replica_update del = {.tombstone = true, .context = &w.obj.clock};
    replica_written wd = write_ok(f, &dead, &del);
    object_free(&w.obj);
    object_free(&wd.obj);
    /* A hint for a t1 key is not this node's record. */
    replica_key hinted = make_key("t1", "hinted");
    rk_object theirs = {0};
    other_object(&theirs, NULL, "3");
    assert_int_equal(replica_merge(f->rp, hinted.dbkey, hinted.dbkey_len, PEER, &theirs, NULL),
                     RK_OK);
    object_free(&theirs);

    seen all = {.all_live = true};
    assert_int_equal(replica_scan_table(f->rp, "t1", 2, NULL, 0, collect_cb, &all), RK_OK);
    assert_int_equal(all.count, 6);
    for (size_t i = 0; i < 6; i++)
        assert_true(seen_has(&all, t1_keys[i]));
    assert_false(seen_has(&all, "dead"));
    assert_false(seen_has(&all, "hinted"));
    assert_true(all.all_live);
    /* in ring order */
    for (size_t i = 1; i < all.count; i++)
        assert_true(ring_position("t1", 2, all.keys[i - 1], strlen(all.keys[i - 1])) <
                    ring_position("t1", 2, all.keys[i], strlen(all.keys[i])));

    /* Page by page, resuming after the last key seen: every key once. */
    seen paged = {.all_live = true};
    const char *cursor = NULL;
    char cursor_buf[16];
    for (int page = 0; page < 10; page++) {
        seen one = {.stop_after = 2, .all_live = true};
        assert_int_equal(replica_scan_table(f->rp, "t1", 2, cursor, cursor ? strlen(cursor) : 0,
                                            collect_cb, &one),
                         RK_OK);
        if (one.count == 0)
            break;
        for (size_t i = 0; i < one.count; i++) {
            assert_false(seen_has(&paged, one.keys[i]));
            strcpy(paged.keys[paged.count++], one.keys[i]);
        }
        strcpy(cursor_buf, one.keys[one.count - 1]);
        cursor = cursor_buf;
    }
    assert_int_equal(paged.count, 6);
    assert_memory_equal(paged.keys, all.keys, sizeof all.keys[0] * 6);

    /* Resuming after the last key: nothing. */
    seen none = {.all_live = true};
    assert_int_equal(
        replica_scan_table(f->rp, "t1", 2, all.keys[5], strlen(all.keys[5]), collect_cb, &none),
        RK_OK);
    assert_int_equal(none.count, 0);

    /* The other tables, each alone. */
    seen t2 = {.all_live = true};
    assert_int_equal(replica_scan_table(f->rp, "t2", 2, NULL, 0, collect_cb, &t2), RK_OK);
    assert_int_equal(t2.count, 1);
    assert_true(seen_has(&t2, "a"));
    seen empty = {.all_live = true};
    assert_int_equal(replica_scan_table(f->rp, "nothing", 7, NULL, 0, collect_cb, &empty), RK_OK);
    assert_int_equal(empty.count, 0);

    /* A bad table or cursor. */
    assert_int_equal(replica_scan_table(f->rp, "a/b", 3, NULL, 0, collect_cb, &empty), RK_EINVAL);
    assert_int_equal(replica_scan_table(f->rp, "t1", 2, "", 0, collect_cb, &empty), RK_EINVAL);
    assert_int_equal(replica_scan_table(f->rp, "t1", 2, "\xff", 1, collect_cb, &empty), RK_EINVAL);
    assert_int_equal(empty.count, 0);
}

/* ---- counters ------------------------------------------------------------------------ */

static void test_stats(void **state)
{
    fixture *f = *state;
    replica_stats s;
    replica_get_stats(f->rp, &s);
    assert_int_equal(s.writes, 0);
    assert_int_equal(s.deletes, 0);
    assert_int_equal(s.precondition_failures, 0);
    assert_int_equal(s.max_siblings_seen, 0);

    replica_key k = make_key("t", "s");
    replica_update u1 = value_update("1");
    replica_written w1 = write_ok(f, &k, &u1);
    replica_update u2 = value_update("2");
    u2.context = &(vclock){0};
    replica_written w2 = write_ok(f, &k, &u2); /* a sibling */
    replica_update cond = value_update("3");
    cond.if_none_match = true;
    replica_written untouched = {0};
    assert_int_equal(replica_write(f->rp, &k, &cond, &untouched, NULL), RK_EPRECOND);
    cond = value_update("3");
    cond.if_match = &w1.obj.clock;
    assert_int_equal(replica_write(f->rp, &k, &cond, &untouched, NULL), RK_EPRECOND);
    replica_update del = {.tombstone = true, .context = &w2.obj.clock};
    replica_written wd = write_ok(f, &k, &del);
    /* Refusals other than preconditions count as nothing. */
    replica_update missing = {.tombstone = true};
    replica_key k2 = make_key("t", "never");
    assert_int_equal(replica_write(f->rp, &k2, &missing, &untouched, NULL), RK_ENOTFOUND);
    char big[MAX_VALUE + 1];
    memset(big, '1', sizeof big);
    replica_update too_big = {.value = big, .value_len = sizeof big};
    assert_int_equal(replica_write(f->rp, &k2, &too_big, &untouched, NULL), RK_ETOOBIG);

    replica_get_stats(f->rp, &s);
    assert_int_equal(s.writes, 2);
    assert_int_equal(s.deletes, 1);
    assert_int_equal(s.precondition_failures, 2);
    assert_int_equal(s.max_siblings_seen, 2);
    assert_int_equal(s.siblings_dropped, 0);
    assert_int_equal(s.max_clock_entries, 1);

    /* A merge bringing more siblings raises the maximum; a merged write is
     * not a client write. */
    rk_object theirs = {0};
    other_object(&theirs, NULL, "a");
    other_object(&theirs, &(vclock){0}, "b");
    other_object(&theirs, &(vclock){0}, "c");
    assert_int_equal(replica_merge(f->rp, k2.dbkey, k2.dbkey_len, 0, &theirs, NULL), RK_OK);
    replica_get_stats(f->rp, &s);
    assert_int_equal(s.max_siblings_seen, 3);
    assert_int_equal(s.writes, 2);
    /* The store behind it answers too. */
    store_stats ss;
    assert_int_equal(replica_get_store_stats(f->rp, &ss), RK_OK);

    object_free(&theirs);
    object_free(&w1.obj);
    object_free(&w2.obj);
    object_free(&wd.obj);
}

/* ---- the table catalog ---------------------------------------------------------- */

static void expect_tables(replica *rp, const char *const *want, size_t count)
{
    replica_table_name *names = NULL;
    size_t n = 0;
    assert_int_equal(replica_tables_list(rp, &names, &n), RK_OK);
    assert_int_equal(n, count);
    for (size_t i = 0; i < count; i++)
        assert_string_equal(names[i], want[i]);
    free(names);
}

/* Reopens the replica on the same store (a restart). */
static void reopen(fixture *f)
{
    replica_config cfg;
    replica_config_default(&cfg);
    cfg.max_siblings = MAX_SIBLINGS;
    cfg.max_value_bytes = MAX_VALUE;
    replica_close(f->rp);
    f->rp = NULL;
    assert_int_equal(replica_open(f->st, NODE, &cfg, &f->rp), RK_OK);
}

static void test_tables_catalog(void **state)
{
    fixture *f = *state;
    expect_tables(f->rp, NULL, 0);
    /* a client write, twice to one table */
    const char *written[] = {"users", "users", "orders"};
    for (size_t i = 0; i < 3; i++) {
        replica_key k = make_key(written[i], i ? "b" : "a");
        replica_update u = value_update("1");
        replica_written w = write_ok(f, &k, &u);
        object_free(&w.obj);
    }
    /* a merge (handoff, repair) and a hint held for another node */
    rk_object obj = {0};
    other_object(&obj, NULL, "\"x\"");
    replica_key merged = make_key("merged", "m");
    assert_int_equal(replica_merge(f->rp, merged.dbkey, merged.dbkey_len, 0, &obj, NULL), RK_OK);
    replica_key hinted = make_key("hinted", "h");
    assert_int_equal(replica_merge(f->rp, hinted.dbkey, hinted.dbkey_len, OTHER, &obj, NULL),
                     RK_OK);
    object_free(&obj);
    const char *want[] = {"hinted", "merged", "orders", "users"};
    expect_tables(f->rp, want, 4);
    reopen(f);
    expect_tables(f->rp, want, 4);
}

/* A store written before the catalog existed: rebuilt from the records. */
static rk_err raw_update_cb(void *arg, const char *old, size_t old_len, rk_buf *out)
{
    (void)arg, (void)old, (void)old_len;
    return rk_buf_append(out, "x", 1);
}

static void test_tables_catalog_rebuilt(void **state)
{
    fixture *f = *state;
    /* written past the replica, as by a version without the catalog */
    replica_key k = make_key("old", "a");
    assert_int_equal(store_apply(f->st, k.dbkey, k.dbkey_len, raw_update_cb, NULL), RK_OK);
    reopen(f);
    const char *want[] = {"old"};
    expect_tables(f->rp, want, 1);
}

static void test_open_invalid(void **state)
{
    fixture *f = *state;
    replica_config cfg;
    replica_config_default(&cfg);
    assert_int_equal(cfg.max_siblings, 16);
    assert_int_equal(cfg.max_value_bytes, 1u << 20);
    assert_true(cfg.accept_hints);
    replica *rp = NULL;
    assert_int_equal(replica_open(f->st, 0, &cfg, &rp), RK_EINVAL);
    assert_int_equal(replica_open(NULL, NODE, &cfg, &rp), RK_EINVAL);
    cfg.max_siblings = 0;
    assert_int_equal(replica_open(f->st, NODE, &cfg, &rp), RK_EINVAL);
    replica_config_default(&cfg);
    cfg.max_value_bytes = 0;
    assert_int_equal(replica_open(f->st, NODE, &cfg, &rp), RK_EINVAL);
    assert_null(rp);
    assert_int_equal(replica_node_id(f->rp), NODE);
    assert_int_equal(replica_get_config(f->rp)->max_siblings, MAX_SIBLINGS);
}

int main(void)
{
    rk_log_set_level(RK_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_init),
        cmocka_unit_test_setup_teardown(test_write_create_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_concurrent_siblings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_if_none_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_if_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_tombstone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_sibling_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_hint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tables_catalog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tables_catalog_rebuilt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_invalid, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
