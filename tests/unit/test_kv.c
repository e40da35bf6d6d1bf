/* test_kv.c - unit tests of the kv service on a one-member cluster (what
 * `ringkvd --data d` alone is): a real store, replica, RPC and membership
 * per test, each in its own temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringkv/kv.h"
#include "ringkv/ring.h"

#include "node_fixture.h"
#include "support.h"

/* ---- fixture: one node, a one-member cluster --------------------------------- */

typedef struct fixture {
    test_node node;
    kv *k;
} fixture;

static int open_fixture(void **state, const kv_config *cfg)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    test_node_up(&f->node, 0, cfg, NULL, NULL);
    f->k = f->node.k;
    *state = f;
    return 0;
}

/* n = r = w = 1: what one member can satisfy. */
static int setup_single(void **state)
{
    kv_config cfg;
    kv_config_default(&cfg);
    cfg.n = cfg.r = cfg.w = 1;
    return open_fixture(state, &cfg);
}

/* The defaults (n=3, r=w=2) on a one-member cluster. */
static int setup_n3(void **state)
{
    kv_config cfg;
    kv_config_default(&cfg);
    return open_fixture(state, &cfg);
}

static int setup_small(void **state)
{
    kv_config cfg;
    kv_config_default(&cfg);
    cfg.n = cfg.r = cfg.w = 1;
    cfg.max_siblings = 3;
    cfg.max_value_bytes = 16;
    return open_fixture(state, &cfg);
}

static int teardown(void **state)
{
    fixture *f = *state;
    test_node_destroy(&f->node);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static kv_key key_of(const char *table, const char *key)
{
    return (kv_key){table, strlen(table), key, strlen(key)};
}

static rk_err put(kv *k, const char *table, const char *key, const char *value, const vclock *ctx,
                  kv_result *res)
{
    kv_write w = {
        .key = key_of(table, key),
        .value = value,
        .value_len = value ? strlen(value) : 0,
        .context = ctx,
        .owner = "",
    };
    return kv_put(k, &w, res);
}

/* Writes and frees the result; asserts success. */
static void put_ok(kv *k, const char *table, const char *key, const char *value, const vclock *ctx)
{
    kv_result res;
    assert_int_equal(put(k, table, key, value, ctx, &res), RK_OK);
    kv_result_free(&res);
}

static rk_err del(kv *k, const char *table, const char *key, const vclock *ctx, kv_result *res)
{
    kv_write w = {.key = key_of(table, key), .tombstone = true, .context = ctx, .owner = ""};
    return kv_put(k, &w, res);
}

static rk_err get(kv *k, const char *table, const char *key, kv_result *res)
{
    kv_key kk = key_of(table, key);
    kv_read_opts opts = {0};
    return kv_get(k, &kk, &opts, res);
}

/* The value text of the live winner. */
static const char *winner_value(const kv_result *res)
{
    const sibling *s = object_live_winner(&res->obj);
    assert_non_null(s);
    return s->value;
}

/* Sorted live values, joined by '|', into buf. */
static const char *live_values(const rk_object *obj, char *buf, size_t cap)
{
    const char *vals[64];
    size_t n = 0;
    for (size_t i = 0; i < obj->len && n < 64; i++)
        if (!obj->siblings[i].tombstone)
            vals[n++] = obj->siblings[i].value;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(vals[j - 1], vals[j]) > 0; j--) {
            const char *t = vals[j];
            vals[j] = vals[j - 1];
            vals[j - 1] = t;
        }
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strncat(buf, "|", cap - strlen(buf) - 1);
        strncat(buf, vals[i], cap - strlen(buf) - 1);
    }
    return buf;
}

/* ---- open ----------------------------------------------------------------- */

static void test_open_validates_config(void **state)
{
    fixture *f = *state;
    test_node *tn = &f->node;
    kv_config cfg;
    kv *k = NULL;
    kv_config_default(&cfg);
    cfg.w = 4; /* w > n */
    assert_int_equal(kv_open(tn->rp, tn->cn, tn->client, &cfg, &k), RK_EINVAL);
    kv_config_default(&cfg);
    cfg.r = 0;
    assert_int_equal(kv_open(tn->rp, tn->cn, tn->client, &cfg, &k), RK_EINVAL);
    kv_config_default(&cfg);
    cfg.read_repair_percent = 101;
    assert_int_equal(kv_open(tn->rp, tn->cn, tn->client, &cfg, &k), RK_EINVAL);
    kv_config_default(&cfg);
    assert_int_equal(kv_open(NULL, tn->cn, tn->client, &cfg, &k), RK_EINVAL); /* no replica */
    assert_null(k);

    assert_int_equal(kv_open(tn->rp, tn->cn, tn->client, &cfg, &k), RK_OK);
    assert_int_equal(kv_node_id(k), tn->id);
    assert_int_equal(kv_get_config(k)->n, 3);
    kv_close(k);
}

/* ---- put and get ----------------------------------------------------------- */

static void test_put_creates_then_updates(void **state)
{
    fixture *f = *state;
    kv_result res;
    assert_int_equal(get(f->k, "t", "k", &res), RK_ENOTFOUND);
    kv_result_free(&res);

    assert_int_equal(put(f->k, "t", "k", "1", NULL, &res), RK_OK);
    assert_false(res.existed);
    assert_int_equal(res.dot.actor, f->node.id);
    assert_int_equal(res.dot.counter, 1);
    assert_int_equal(res.acks, 1);
    assert_int_equal(res.needed, 1);
    assert_int_equal(object_live_count(&res.obj), 1);
    assert_string_equal(winner_value(&res), "1");
    kv_result_free(&res);

    assert_int_equal(put(f->k, "t", "k", "{\"a\":[1,2]}", NULL, &res), RK_OK);
    assert_true(res.existed);
    assert_int_equal(res.dot.counter, 2);
    kv_result_free(&res);

    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_int_equal(object_live_count(&res.obj), 1);
    assert_string_equal(winner_value(&res), "{\"a\":[1,2]}");
    assert_int_equal(vclock_get(&res.obj.clock, f->node.id), 2);
    kv_result_free(&res);

    /* Other tables and keys are untouched. */
    assert_int_equal(get(f->k, "t2", "k", &res), RK_ENOTFOUND);
    kv_result_free(&res);
    assert_int_equal(get(f->k, "t", "k2", &res), RK_ENOTFOUND);
    kv_result_free(&res);
}

/* A write without context replaces whatever the node holds, siblings
 * included. */
static void test_blind_write_replaces(void **state)
{
    fixture *f = *state;
    kv_result res;
    vclock empty = {0};
    put_ok(f->k, "t", "k", "\"a\"", NULL);
    put_ok(f->k, "t", "k", "\"b\"", &empty); /* concurrent: a sibling */
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_int_equal(object_live_count(&res.obj), 2);
    kv_result_free(&res);

    assert_int_equal(put(f->k, "t", "k", "\"c\"", NULL, &res), RK_OK);
    assert_int_equal(object_live_count(&res.obj), 1);
    kv_result_free(&res);
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_int_equal(object_live_count(&res.obj), 1);
    assert_int_equal(res.obj.len, 1);
    assert_string_equal(winner_value(&res), "\"c\"");
    kv_result_free(&res);
}

/* Two clients read the same version and both write with its context: both
 * writes survive as siblings; a write with a context that has seen both
 * resolves them. */
static void test_concurrent_writes_become_siblings(void **state)
{
    fixture *f = *state;
    kv_result res;
    char buf[256];
    put_ok(f->k, "t", "k", "\"base\"", NULL);

    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    vclock ctx = {0};
    assert_int_equal(vclock_copy(&ctx, &res.obj.clock), RK_OK);
    kv_result_free(&res);

    put_ok(f->k, "t", "k", "\"x\"", &ctx);
    assert_int_equal(put(f->k, "t", "k", "\"y\"", &ctx, &res), RK_OK);
    assert_true(res.existed);
    assert_int_equal(object_live_count(&res.obj), 2);
    kv_result_free(&res);

    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_int_equal(object_live_count(&res.obj), 2);
    assert_string_equal(live_values(&res.obj, buf, sizeof buf), "\"x\"|\"y\"");
    /* The default read's winner is the newest: y, written last. */
    assert_string_equal(winner_value(&res), "\"y\"");
    vclock both = {0};
    assert_int_equal(vclock_copy(&both, &res.obj.clock), RK_OK);
    kv_result_free(&res);

    /* The stale context again: a third sibling, nothing resolved. */
    put_ok(f->k, "t", "k", "\"z\"", &ctx);
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_int_equal(object_live_count(&res.obj), 3);
    kv_result_free(&res);

    /* The context that saw x and y (not z): z stays, x and y go. */
    put_ok(f->k, "t", "k", "\"merged\"", &both);
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_string_equal(live_values(&res.obj, buf, sizeof buf), "\"merged\"|\"z\"");
    vclock all = {0};
    assert_int_equal(vclock_copy(&all, &res.obj.clock), RK_OK);
    kv_result_free(&res);

    put_ok(f->k, "t", "k", "\"final\"", &all);
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_int_equal(object_live_count(&res.obj), 1);
    assert_int_equal(res.obj.len, 1);
    assert_string_equal(winner_value(&res), "\"final\"");
    kv_result_free(&res);

    vclock_free(&ctx);
    vclock_free(&both);
    vclock_free(&all);
}

/* ---- conditions ------------------------------------------------------------ */

static void test_if_none_match(void **state)
{
    fixture *f = *state;
    kv_result res;
    kv_write w = {.key = key_of("t", "k"), .value = "1", .value_len = 1, .if_none_match = true};
    assert_int_equal(kv_put(f->k, &w, &res), RK_OK); /* absent: created */
    assert_false(res.existed);
    kv_result_free(&res);

    w.value = "2";
    assert_int_equal(kv_put(f->k, &w, &res), RK_EPRECOND);
    kv_result_free(&res);
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_string_equal(winner_value(&res), "1"); /* not written */
    kv_result_free(&res);

    /* A deleted key has no live value: create-only succeeds again. */
    assert_int_equal(del(f->k, "t", "k", NULL, &res), RK_OK);
    kv_result_free(&res);
    w.value = "3";
    assert_int_equal(kv_put(f->k, &w, &res), RK_OK);
    assert_false(res.existed);
    kv_result_free(&res);
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_string_equal(winner_value(&res), "3");
    kv_result_free(&res);

    kv_stats st;
    kv_get_stats(f->k, &st);
    assert_int_equal(st.precondition_failures, 1);
}

static void test_if_match(void **state)
{
    fixture *f = *state;
    kv_result res;
    put_ok(f->k, "t", "k", "1", NULL);
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    vclock stale = {0};
    assert_int_equal(vclock_copy(&stale, &res.obj.clock), RK_OK);
    kv_result_free(&res);

    put_ok(f->k, "t", "k", "2", NULL); /* someone else writes */

    kv_write w = {.key = key_of("t", "k"), .value = "3", .value_len = 1, .if_match = &stale};
    assert_int_equal(kv_put(f->k, &w, &res), RK_EPRECOND);
    kv_result_free(&res);
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_string_equal(winner_value(&res), "2");
    vclock current = {0};
    assert_int_equal(vclock_copy(&current, &res.obj.clock), RK_OK);
    kv_result_free(&res);

    w.if_match = &current;
    w.context = &current;
    assert_int_equal(kv_put(f->k, &w, &res), RK_OK);
    kv_result_free(&res);
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_string_equal(winner_value(&res), "3");
    kv_result_free(&res);

    /* The clock moved on with that write: the same If-Match now fails. */
    w.value = "4";
    assert_int_equal(kv_put(f->k, &w, &res), RK_EPRECOND);
    kv_result_free(&res);

    /* A delete honours If-Match too. */
    kv_write d = {.key = key_of("t", "k"), .tombstone = true, .if_match = &stale};
    assert_int_equal(kv_put(f->k, &d, &res), RK_EPRECOND);
    kv_result_free(&res);
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_int_equal(object_live_count(&res.obj), 1);
    kv_result_free(&res);

    kv_stats st;
    kv_get_stats(f->k, &st);
    assert_int_equal(st.precondition_failures, 3);
    vclock_free(&stale);
    vclock_free(&current);
}

/* ---- delete ---------------------------------------------------------------- */

static void test_delete_missing_writes_nothing(void **state)
{
    fixture *f = *state;
    kv_result res;
    assert_int_equal(del(f->k, "t", "nope", NULL, &res), RK_ENOTFOUND);
    kv_result_free(&res);
    /* No tombstone was left behind: still plain not found. */
    assert_int_equal(get(f->k, "t", "nope", &res), RK_ENOTFOUND);
    kv_result_free(&res);

    kv_stats st;
    kv_get_stats(f->k, &st);
    assert_int_equal(st.deletes, 0);
    assert_int_equal(st.writes, 0);
}

static void test_delete_leaves_tombstone(void **state)
{
    fixture *f = *state;
    kv_result res;
    put_ok(f->k, "t", "k", "\"v\"", NULL);
    assert_int_equal(del(f->k, "t", "k", NULL, &res), RK_OK);
    assert_true(res.existed);
    assert_int_equal(object_live_count(&res.obj), 0);
    kv_result_free(&res);

    /* RK_OK with no live sibling: the caller can hand out the context. */
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_int_equal(object_live_count(&res.obj), 0);
    assert_null(object_live_winner(&res.obj));
    assert_true(res.obj.len >= 1);
    assert_true(vclock_get(&res.obj.clock, f->node.id) >= 2);
    kv_result_free(&res);

    /* Deleting again: no live value, nothing written. */
    assert_int_equal(del(f->k, "t", "k", NULL, &res), RK_ENOTFOUND);
    kv_result_free(&res);

    /* Writing again after the delete brings it back. */
    assert_int_equal(put(f->k, "t", "k", "\"again\"", NULL, &res), RK_OK);
    assert_false(res.existed);
    kv_result_free(&res);
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_int_equal(object_live_count(&res.obj), 1);
    assert_string_equal(winner_value(&res), "\"again\"");
    kv_result_free(&res);
}

/* A delete concurrent with a live value: the tombstone is the newest
 * sibling, but a read answers with the newest live one. */
static void test_get_returns_live_winner(void **state)
{
    fixture *f = *state;
    kv_result res;
    vclock empty = {0};
    put_ok(f->k, "t", "k", "\"old\"", NULL);
    put_ok(f->k, "t", "k", "\"live\"", NULL);
    assert_int_equal(del(f->k, "t", "k", &empty, &res), RK_OK); /* concurrent delete */
    kv_result_free(&res);

    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_int_equal(res.obj.len, 2);
    assert_int_equal(object_live_count(&res.obj), 1);
    assert_true(object_winner(&res.obj)->tombstone);
    assert_string_equal(winner_value(&res), "\"live\"");
    kv_result_free(&res);
}

/* ---- input checks ----------------------------------------------------------- */

static void test_value_over_limit(void **state)
{
    fixture *f = *state; /* max_value_bytes = 16 */
    kv_result res;
    assert_int_equal(put(f->k, "t", "k", "\"0123456789abcd\"", NULL, &res), RK_OK); /* 16 */
    kv_result_free(&res);
    assert_int_equal(put(f->k, "t", "k", "\"0123456789abcde\"", NULL, &res), RK_ETOOBIG);
    kv_result_free(&res);
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_string_equal(winner_value(&res), "\"0123456789abcd\"");
    kv_result_free(&res);
}

static void test_invalid_names(void **state)
{
    fixture *f = *state;
    kv_result res;
    char long_table[66], long_key[1026];
    memset(long_table, 't', 65);
    long_table[65] = '\0';
    memset(long_key, 'k', 1025);
    long_key[1025] = '\0';

    const char *bad_tables[] = {"", "a/b", "a b", "t!", "caf\xc3\xa9", long_table};
    for (size_t i = 0; i < sizeof bad_tables / sizeof bad_tables[0]; i++) {
        assert_int_equal(put(f->k, bad_tables[i], "k", "1", NULL, &res), RK_EINVAL);
        kv_result_free(&res);
        assert_int_equal(get(f->k, bad_tables[i], "k", &res), RK_EINVAL);
        kv_result_free(&res);
    }
    const char *bad_keys[] = {"", "\xff", "\xc0\xaf", "\xed\xa0\x80", long_key};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        assert_int_equal(put(f->k, "t", bad_keys[i], "1", NULL, &res), RK_EINVAL);
        kv_result_free(&res);
        assert_int_equal(get(f->k, "t", bad_keys[i], &res), RK_EINVAL);
        kv_result_free(&res);
    }
    /* A NUL inside the key. */
    kv_key nul = {"t", 1, "a\0b", 3};
    kv_read_opts ro = {0};
    assert_int_equal(kv_get(f->k, &nul, &ro, &res), RK_EINVAL);
    kv_result_free(&res);

    /* The edges that are valid. */
    long_table[64] = '\0';
    long_key[1024] = '\0';
    assert_int_equal(put(f->k, long_table, long_key, "1", NULL, &res), RK_OK);
    kv_result_free(&res);
    assert_int_equal(put(f->k, "A-z_0.9", "caf\xc3\xa9 / \xf0\x9f\x98\x80", "1", NULL, &res),
                     RK_OK);
    kv_result_free(&res);
    assert_int_equal(get(f->k, "A-z_0.9", "caf\xc3\xa9 / \xf0\x9f\x98\x80", &res), RK_OK);
    kv_result_free(&res);

    /* A write needs a value; a scan needs a valid table. */
    assert_int_equal(put(f->k, "t", "k", NULL, NULL, &res), RK_EINVAL);
    kv_result_free(&res);
    assert_int_equal(put(f->k, "t", "k", "", NULL, &res), RK_EINVAL);
    kv_result_free(&res);

    kv_stats st;
    kv_get_stats(f->k, &st);
    assert_int_equal(st.writes, 2); /* only the two valid ones */
}

/* ---- quorum ------------------------------------------------------------------ */

/* A ring with fewer members than N: the key has one replica, and R and W
 * (whatever was asked, up to N) are met by it; the answer says so. */
static void test_quorum_on_one_member(void **state)
{
    fixture *f = *state; /* n=3, r=w=2, one member */
    kv_result res;
    assert_int_equal(put(f->k, "t", "k", "1", NULL, &res), RK_OK);
    assert_int_equal(res.acks, 1);
    assert_int_equal(res.needed, 1);
    assert_int_equal(res.under_replicated, 1);
    kv_result_free(&res);

    kv_write w = {.key = key_of("t", "k"), .value = "2", .value_len = 1, .w = 3};
    assert_int_equal(kv_put(f->k, &w, &res), RK_OK);
    assert_int_equal(res.acks, 1);
    assert_int_equal(res.needed, 1);
    kv_result_free(&res);

    w.w = 4; /* more than n: a bad request, not a quorum failure */
    assert_int_equal(kv_put(f->k, &w, &res), RK_EINVAL);
    kv_result_free(&res);

    kv_key kk = key_of("t", "k");
    kv_read_opts ro = {0};
    assert_int_equal(kv_get(f->k, &kk, &ro, &res), RK_OK);
    assert_int_equal(res.acks, 1);
    assert_int_equal(res.needed, 1);
    assert_int_equal(res.under_replicated, 1);
    assert_string_equal(winner_value(&res), "2");
    kv_result_free(&res);
    ro.r = 3;
    assert_int_equal(kv_get(f->k, &kk, &ro, &res), RK_OK);
    kv_result_free(&res);
    ro.r = 4;
    assert_int_equal(kv_get(f->k, &kk, &ro, &res), RK_EINVAL);
    kv_result_free(&res);
    ro = (kv_read_opts){.local = true};
    assert_int_equal(kv_get(f->k, &kk, &ro, &res), RK_OK);
    kv_result_free(&res);
}

/* n = 1 on one member: the ring is as large as N, so nothing is
 * under-replicated. */
static void test_full_ring_is_not_under_replicated(void **state)
{
    fixture *f = *state; /* n=1 */
    kv_result res;
    assert_int_equal(put(f->k, "t", "k", "1", NULL, &res), RK_OK);
    assert_int_equal(res.under_replicated, 0);
    kv_result_free(&res);
}

static void test_w_over_n_rejected(void **state)
{
    fixture *f = *state; /* n=1 */
    kv_result res;
    kv_write w = {.key = key_of("t", "k"), .value = "1", .value_len = 1, .w = 2};
    assert_int_equal(kv_put(f->k, &w, &res), RK_EINVAL);
    kv_result_free(&res);
    assert_int_equal(get(f->k, "t", "k", &res), RK_ENOTFOUND);
    kv_result_free(&res);
}

/* ---- scan ---------------------------------------------------------------------- */

#define SCAN_KEYS 60

typedef struct seen {
    char keys[SCAN_KEYS * 2][32];
    size_t n;
    size_t stop_after; /* 0 = never stop */
} seen;

static bool collect_cb(void *arg, const char *key, size_t key_len, const rk_object *obj)
{
    seen *s = arg;
    assert_true(object_live_count(obj) > 0);
    assert_true(key_len < sizeof s->keys[0]);
    assert_true(s->n < SCAN_KEYS * 2);
    memcpy(s->keys[s->n], key, key_len);
    s->keys[s->n][key_len] = '\0';
    s->n++;
    return s->stop_after == 0 || s->n < s->stop_after;
}

static void test_scan_visits_live_keys_once(void **state)
{
    fixture *f = *state;
    kv_result res;
    char key[32];
    for (int i = 0; i < SCAN_KEYS; i++) {
        snprintf(key, sizeof key, "k%d", i);
        put_ok(f->k, "t1", key, "1", NULL);
        put_ok(f->k, "t2", key, "2", NULL);
        put_ok(f->k, "t1x", key, "3", NULL); /* a table whose name starts like t1 */
    }
    put_ok(f->k, "t2", "only-in-t2", "2", NULL);
    /* Every fifth key of t1 deleted: a tombstone, not listed. */
    for (int i = 0; i < SCAN_KEYS; i += 5) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(del(f->k, "t1", key, NULL, &res), RK_OK);
        kv_result_free(&res);
    }

    seen s = {0};
    assert_int_equal(kv_scan(f->k, "t1", 2, NULL, 0, collect_cb, &s), RK_OK);
    assert_int_equal(s.n, SCAN_KEYS - SCAN_KEYS / 5);
    int hits[SCAN_KEYS] = {0};
    for (size_t i = 0; i < s.n; i++) {
        int idx = -1;
        assert_int_equal(sscanf(s.keys[i], "k%d", &idx), 1);
        assert_in_range(idx, 0, SCAN_KEYS - 1);
        assert_true(idx % 5 != 0);
        hits[idx]++;
    }
    for (int i = 0; i < SCAN_KEYS; i++)
        assert_int_equal(hits[i], i % 5 == 0 ? 0 : 1);

    /* From a cursor: exactly the keys after it, in the same order. */
    for (size_t cut = 0; cut < s.n; cut += 7) {
        seen rest = {0};
        assert_int_equal(
            kv_scan(f->k, "t1", 2, s.keys[cut], strlen(s.keys[cut]), collect_cb, &rest), RK_OK);
        assert_int_equal(rest.n, s.n - cut - 1);
        for (size_t i = 0; i < rest.n; i++)
            assert_string_equal(rest.keys[i], s.keys[cut + 1 + i]);
    }

    /* A cursor at a deleted key (a page ended there before the delete)
     * still resumes in place. */
    seen from_deleted = {0};
    assert_int_equal(kv_scan(f->k, "t1", 2, "k0", 2, collect_cb, &from_deleted), RK_OK);
    uint64_t cursor = ring_position("t1", 2, "k0", 2);
    size_t first_after = 0;
    while (first_after < s.n &&
           ring_position("t1", 2, s.keys[first_after], strlen(s.keys[first_after])) < cursor)
        first_after++;
    assert_int_equal(from_deleted.n, s.n - first_after);
    for (size_t i = 0; i < from_deleted.n; i++)
        assert_string_equal(from_deleted.keys[i], s.keys[first_after + i]);

    /* The visitor can stop early. */
    seen three = {.stop_after = 3};
    assert_int_equal(kv_scan(f->k, "t1", 2, NULL, 0, collect_cb, &three), RK_OK);
    assert_int_equal(three.n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(three.keys[i], s.keys[i]);

    seen t2 = {0};
    assert_int_equal(kv_scan(f->k, "t2", 2, NULL, 0, collect_cb, &t2), RK_OK);
    assert_int_equal(t2.n, SCAN_KEYS + 1);

    seen none = {0};
    assert_int_equal(kv_scan(f->k, "empty", 5, NULL, 0, collect_cb, &none), RK_OK);
    assert_int_equal(none.n, 0);

    assert_int_equal(kv_scan(f->k, "bad!", 4, NULL, 0, collect_cb, &none), RK_EINVAL);
    assert_int_equal(kv_scan(f->k, "t1", 2, "", 0, collect_cb, &none), RK_EINVAL);
}

/* ---- sibling cap ------------------------------------------------------------------ */

static void test_sibling_cap(void **state)
{
    fixture *f = *state; /* max_siblings = 3 */
    kv_result res;
    char buf[256];
    vclock empty = {0};
    const char *vals[] = {"1", "2", "3", "4", "5"};
    for (int i = 0; i < 5; i++)
        put_ok(f->k, "t", "k", vals[i], &empty); /* each concurrent with the rest */

    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_int_equal(res.obj.len, 3);
    assert_int_equal(object_live_count(&res.obj), 3);
    /* The oldest go: timestamps tie within a millisecond and then the dot
     * decides, and this node's counter grows with every write. */
    assert_string_equal(live_values(&res.obj, buf, sizeof buf), "3|4|5");
    assert_int_equal(vclock_get(&res.obj.clock, f->node.id), 5);
    kv_result_free(&res);

    kv_stats st;
    kv_get_stats(f->k, &st);
    assert_int_equal(st.siblings_dropped, 2);
    assert_int_equal(st.max_siblings_seen, 3);
    assert_int_equal(st.writes, 5);
}

/* ---- stats -------------------------------------------------------------------------- */

static void test_stats_count_operations(void **state)
{
    fixture *f = *state;
    kv_result res;
    kv_stats st;
    kv_get_stats(f->k, &st);
    assert_int_equal(st.reads, 0);
    assert_int_equal(st.writes, 0);
    assert_int_equal(st.deletes, 0);

    put_ok(f->k, "t", "a", "1", NULL);
    put_ok(f->k, "t", "b", "1", NULL);
    put_ok(f->k, "t", "a", "2", NULL);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(get(f->k, "t", "a", &res), RK_OK);
        kv_result_free(&res);
    }
    assert_int_equal(del(f->k, "t", "b", NULL, &res), RK_OK);
    kv_result_free(&res);

    kv_get_stats(f->k, &st);
    assert_int_equal(st.reads, 4);
    assert_int_equal(st.writes, 3);
    assert_int_equal(st.deletes, 1);
    assert_int_equal(st.siblings_dropped, 0);
    assert_int_equal(st.precondition_failures, 0);
    assert_int_equal(st.max_siblings_seen, 1);
    assert_int_equal(st.max_clock_entries, 1);
}

/* ---- persistence ------------------------------------------------------------------ */

/* What was acknowledged is in the store: a new kv over a reopened store
 * reads it back. */
static void test_survives_reopen(void **state)
{
    fixture *f = *state;
    kv_result res;
    vclock empty = {0};
    put_ok(f->k, "t", "k", "[1,2,3]", NULL);
    put_ok(f->k, "t", "k", "\"sib\"", &empty);
    put_ok(f->k, "t", "gone", "1", NULL);
    assert_int_equal(del(f->k, "t", "gone", NULL, &res), RK_OK);
    kv_result_free(&res);

    kv_config cfg = *kv_get_config(f->k);
    test_node_down(&f->node);
    f->k = NULL;
    test_node_up(&f->node, 0, &cfg, NULL, NULL);
    f->k = f->node.k;

    char buf[256];
    assert_int_equal(get(f->k, "t", "k", &res), RK_OK);
    assert_string_equal(live_values(&res.obj, buf, sizeof buf), "\"sib\"|[1,2,3]");
    kv_result_free(&res);
    assert_int_equal(get(f->k, "t", "gone", &res), RK_OK);
    assert_int_equal(object_live_count(&res.obj), 0);
    kv_result_free(&res);
}

int main(void)
{
    rk_log_set_level(RK_LOG_WARN); /* no "new node id" line per test */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_validates_config, setup_single, teardown),
        cmocka_unit_test_setup_teardown(test_put_creates_then_updates, setup_single, teardown),
        cmocka_unit_test_setup_teardown(test_blind_write_replaces, setup_single, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writes_become_siblings, setup_single,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_if_none_match, setup_single, teardown),
        cmocka_unit_test_setup_teardown(test_if_match, setup_single, teardown),
        cmocka_unit_test_setup_teardown(test_delete_missing_writes_nothing, setup_single, teardown),
        cmocka_unit_test_setup_teardown(test_delete_leaves_tombstone, setup_single, teardown),
        cmocka_unit_test_setup_teardown(test_get_returns_live_winner, setup_single, teardown),
        cmocka_unit_test_setup_teardown(test_value_over_limit, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_names, setup_single, teardown),
        cmocka_unit_test_setup_teardown(test_quorum_on_one_member, setup_n3, teardown),
        cmocka_unit_test_setup_teardown(test_full_ring_is_not_under_replicated, setup_single,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_w_over_n_rejected, setup_single, teardown),
        cmocka_unit_test_setup_teardown(test_scan_visits_live_keys_once, setup_single, teardown),
        cmocka_unit_test_setup_teardown(test_sibling_cap, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_stats_count_operations, setup_single, teardown),
        cmocka_unit_test_setup_teardown(test_survives_reopen, setup_single, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
