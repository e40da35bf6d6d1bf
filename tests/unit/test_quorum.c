/* test_quorum.c - the coordinator's pure quorum decisions: get and put
 * verdicts, merge and read repair, sloppy and join target selection,
 * planning, read and applier order, targeted reads, the speculative delay,
 * and order independence on random replies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inputs.h"
#include "kv/latency_internal.h"
#include "kv/quorum_internal.h"

/* Node ids: small and readable. */
enum { A = 101, B = 102, C = 103, D = 104, E = 105, F = 106, X = 999 };

/* ---- objects ------------------------------------------------------------- */

/* Applies a write of value (a JSON number) by actor to obj, blind (after
 * obj's own clock) or with ctx. */
static void write_value(rk_object *obj, const vclock *ctx, rk_actor actor, int value, uint64_t ts)
{
    char text[32];
    int len = snprintf(text, sizeof text, "%d", value);
    object_write w = {.value = text, .value_len = (size_t)len, .owner = "", .timestamp_ms = ts};
    assert_int_equal(object_update(obj, ctx, actor, &w, 0, NULL, NULL), RK_OK);
}

static void write_tombstone(rk_object *obj, rk_actor actor, uint64_t ts)
{
    object_write w = {.tombstone = true, .owner = "", .timestamp_ms = ts};
    assert_int_equal(object_update(obj, NULL, actor, &w, 0, NULL, NULL), RK_OK);
}

static void copy_object(rk_object *dst, const rk_object *src)
{
    *dst = (rk_object){0};
    assert_int_equal(object_copy(dst, src), RK_OK);
}

static bool same_object(const rk_object *a, const rk_object *b)
{
    if (vclock_compare(&a->clock, &b->clock) != VCLOCK_EQUAL || a->len != b->len)
        return false;
    for (size_t i = 0; i < a->len; i++) {
        const sibling *s = &a->siblings[i];
        bool found = false;
        for (size_t j = 0; j < b->len && !found; j++) {
            const sibling *t = &b->siblings[j];
            found = s->dot.actor == t->dot.actor && s->dot.counter == t->dot.counter &&
                    s->tombstone == t->tombstone && s->value_len == t->value_len &&
                    (s->value_len == 0 || memcmp(s->value, t->value, s->value_len) == 0);
        }
        if (!found)
            return false;
    }
    return true;
}

static bool has_value(const rk_object *obj, const char *value)
{
    for (size_t i = 0; i < obj->len; i++)
        if (!obj->siblings[i].tombstone && strcmp(obj->siblings[i].value, value) == 0)
            return true;
    return false;
}

/* ---- get: verdicts --------------------------------------------------------- */

static const uint64_t abc[] = {A, B, C};

static void test_get_reached_at_rth_reply(void **state)
{
    (void)state;
    rk_object obj = {0};
    write_value(&obj, NULL, A, 1, 10);
    for (unsigned r = 1; r <= 3; r++) {
        get_core gc = {0};
        assert_int_equal(kv_get_core_init(&gc, abc, 3, r, 1000), RK_OK);
        for (unsigned i = 0; i < 3; i++) {
            assert_int_equal(kv_get_core_verdict(&gc), QUORUM_PENDING);
            assert_int_equal(kv_get_core_result(&gc, NULL, NULL), RK_EINVAL);
            bool counted = false;
            assert_int_equal(kv_get_core_reply(&gc, abc[i], QUORUM_REPLY_OK, &obj, &counted),
                             RK_OK);
            assert_true(counted);
            if (i + 1 >= r)
                break;
        }
        assert_int_equal(kv_get_core_verdict(&gc), QUORUM_REACHED);
        unsigned acks = 0, needed = 0;
        assert_int_equal(kv_get_core_result(&gc, &acks, &needed), RK_OK);
        assert_int_equal(acks, r);
        assert_int_equal(needed, r);
        assert_true(same_object(kv_get_core_object(&gc), &obj));
        assert_int_equal(kv_get_core_done(&gc), r == 3);
        kv_get_core_fini(&gc);
    }
    object_free(&obj);
}

static void test_get_notfound_counts(void **state)
{
    (void)state;
    rk_object obj = {0};
    write_value(&obj, NULL, A, 1, 10);

    /* One object and one not found make r = 2; the read finds the object. */
    get_core gc = {0};
    assert_int_equal(kv_get_core_init(&gc, abc, 3, 2, 1000), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, B, QUORUM_REPLY_NOTFOUND, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_PENDING);
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, &obj, NULL), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_REACHED);
    assert_int_equal(kv_get_core_result(&gc, NULL, NULL), RK_OK);
    uint64_t answered[3];
    assert_int_equal(kv_get_core_answered(&gc, answered), 2);
    assert_true(answered[0] == A && answered[1] == B);
    kv_get_core_fini(&gc);

    /* Not found from every replica of the quorum: a reached not-found. */
    assert_int_equal(kv_get_core_init(&gc, abc, 3, 2, 1000), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, C, QUORUM_REPLY_NOTFOUND, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_NOTFOUND, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_REACHED);
    unsigned acks = 0, needed = 0;
    assert_int_equal(kv_get_core_result(&gc, &acks, &needed), RK_ENOTFOUND);
    assert_int_equal(acks, 2);
    assert_int_equal(needed, 2);
    assert_null(kv_get_core_object(&gc));
    assert_int_equal(kv_get_core_reply(&gc, B, QUORUM_REPLY_NOTFOUND, NULL, NULL), RK_OK);
    assert_true(kv_get_core_done(&gc));
    uint64_t repairs[3];
    size_t nrep = 99;
    assert_int_equal(kv_get_core_repairs(&gc, repairs, &nrep), RK_OK);
    assert_int_equal(nrep, 0);
    kv_get_core_fini(&gc);
    object_free(&obj);
}

/* Errors fail the read exactly when fewer than r targets are left that
 * could still answer: after n - r + 1 errors. */
static void test_get_errors_fail_when_impossible(void **state)
{
    (void)state;
    for (unsigned r = 1; r <= 3; r++) {
        get_core gc = {0};
        assert_int_equal(kv_get_core_init(&gc, abc, 3, r, 1000), RK_OK);
        for (unsigned e = 1; e <= 3; e++) {
            assert_int_equal(kv_get_core_reply(&gc, abc[e - 1], QUORUM_REPLY_ERROR, NULL, NULL),
                             RK_OK);
            if (e <= 3 - r) {
                assert_int_equal(kv_get_core_verdict(&gc), QUORUM_PENDING);
            } else {
                assert_int_equal(kv_get_core_verdict(&gc), QUORUM_FAILED);
                break;
            }
        }
        unsigned acks = 9, needed = 0;
        assert_int_equal(kv_get_core_result(&gc, &acks, &needed), RK_EQUORUM);
        assert_int_equal(acks, 0);
        assert_int_equal(needed, r);
        kv_get_core_fini(&gc);
    }

    /* Mixed: r = 2 of 3, one ok then two errors. */
    rk_object obj = {0};
    write_value(&obj, NULL, A, 1, 10);
    get_core gc = {0};
    assert_int_equal(kv_get_core_init(&gc, abc, 3, 2, 1000), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, &obj, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, B, QUORUM_REPLY_ERROR, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_PENDING);
    assert_int_equal(kv_get_core_reply(&gc, C, QUORUM_REPLY_ERROR, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_FAILED);
    unsigned acks = 0, needed = 0;
    assert_int_equal(kv_get_core_result(&gc, &acks, &needed), RK_EQUORUM);
    assert_int_equal(acks, 1);
    assert_int_equal(needed, 2);
    kv_get_core_fini(&gc);

    /* A verdict is final: errors after the quorum do not undo it. */
    assert_int_equal(kv_get_core_init(&gc, abc, 3, 1, 1000), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, &obj, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, B, QUORUM_REPLY_ERROR, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, C, QUORUM_REPLY_ERROR, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_REACHED);
    kv_get_core_fini(&gc);
    object_free(&obj);
}

static void test_get_init(void **state)
{
    (void)state;
    get_core gc = {0};
    const uint64_t dup[] = {A, B, A};
    assert_int_equal(kv_get_core_init(&gc, abc, 3, 0, 1000), RK_EINVAL);
    assert_int_equal(kv_get_core_init(&gc, dup, 3, 2, 1000), RK_EINVAL);
    uint64_t many[QUORUM_MAX_TARGETS + 1];
    for (size_t i = 0; i < QUORUM_MAX_TARGETS + 1; i++)
        many[i] = i + 1;
    assert_int_equal(kv_get_core_init(&gc, many, QUORUM_MAX_TARGETS + 1, 1, 1000), RK_EINVAL);

    /* More needed than targets (every replica down, no fallback): failed
     * from the start, done at once, with nothing to repair. */
    assert_int_equal(kv_get_core_init(&gc, abc, 1, 2, 1000), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_FAILED);
    unsigned acks = 9, needed = 0;
    assert_int_equal(kv_get_core_result(&gc, &acks, &needed), RK_EQUORUM);
    assert_int_equal(acks, 0);
    assert_int_equal(needed, 2);
    kv_get_core_fini(&gc);
    assert_int_equal(kv_get_core_init(&gc, NULL, 0, 1, 1000), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_FAILED);
    assert_true(kv_get_core_done(&gc));
    kv_get_core_fini(&gc);

    rk_object obj = {0};
    assert_int_equal(kv_get_core_init(&gc, abc, 3, 1, 1000), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, NULL, NULL), RK_EINVAL);
    assert_int_equal(kv_get_core_reply(&gc, A, (quorum_reply)7, &obj, NULL), RK_EINVAL);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_PENDING);
    kv_get_core_fini(&gc);
}

static void test_get_ignores_duplicate_unknown_late(void **state)
{
    (void)state;
    rk_object old = {0}, cur = {0};
    write_value(&old, NULL, A, 1, 10);
    copy_object(&cur, &old);
    write_value(&cur, NULL, A, 2, 20);

    get_core gc = {0};
    assert_int_equal(kv_get_core_init(&gc, abc, 3, 2, 1000), RK_OK);
    bool counted = true;
    assert_int_equal(kv_get_core_reply(&gc, X, QUORUM_REPLY_OK, &cur, &counted), RK_OK);
    assert_false(counted);
    assert_null(kv_get_core_object(&gc)); /* a stranger's object is not merged */
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, &old, &counted), RK_OK);
    assert_true(counted);
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, &cur, &counted), RK_OK);
    assert_false(counted); /* the second answer from A changes nothing */
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_ERROR, NULL, &counted), RK_OK);
    assert_false(counted);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_PENDING);
    assert_true(same_object(kv_get_core_object(&gc), &old));

    /* Not done yet: repair must wait. */
    uint64_t repairs[3];
    size_t nrep = 0;
    assert_int_equal(kv_get_core_repairs(&gc, repairs, &nrep), RK_EINVAL);

    /* The deadline passes with one answer of two: failed, done; B's late
     * answer is ignored; A needs no repair (nothing newer was seen). */
    kv_get_core_tick(&gc, 999);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_PENDING);
    kv_get_core_tick(&gc, 1000);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_FAILED);
    assert_true(kv_get_core_done(&gc));
    assert_int_equal(kv_get_core_reply(&gc, B, QUORUM_REPLY_OK, &cur, &counted), RK_OK);
    assert_false(counted);
    unsigned acks = 0, needed = 0;
    assert_int_equal(kv_get_core_result(&gc, &acks, &needed), RK_EQUORUM);
    assert_int_equal(acks, 1);
    assert_int_equal(needed, 2);
    assert_int_equal(kv_get_core_repairs(&gc, repairs, &nrep), RK_OK);
    assert_int_equal(nrep, 0);
    kv_get_core_fini(&gc);

    /* Reached, then the deadline: the verdict stays; repairs cover the
     * replicas that answered. */
    assert_int_equal(kv_get_core_init(&gc, abc, 3, 2, 1000), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, &old, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, C, QUORUM_REPLY_OK, &cur, NULL), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_REACHED);
    assert_false(kv_get_core_done(&gc));
    kv_get_core_tick(&gc, 5000);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_REACHED);
    assert_int_equal(kv_get_core_repairs(&gc, repairs, &nrep), RK_OK);
    assert_int_equal(nrep, 1);
    assert_true(repairs[0] == A);
    kv_get_core_fini(&gc);
    object_free(&old);
    object_free(&cur);
}

/* ---- get: merge and read repair ------------------------------------------- */

static void test_get_merge_and_repair(void **state)
{
    (void)state;
    /* History: A writes 1; it reaches B. A writes 2 (not replicated). D
     * never got anything. C is unreachable. E holds A's latest, too. */
    rk_object v1 = {0}, v2 = {0};
    write_value(&v1, NULL, A, 1, 10);
    copy_object(&v2, &v1);
    write_value(&v2, NULL, A, 2, 20);

    const uint64_t nodes[] = {A, B, C, D, E};
    get_core gc = {0};
    assert_int_equal(kv_get_core_init(&gc, nodes, 5, 2, 1000), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, B, QUORUM_REPLY_OK, &v1, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, D, QUORUM_REPLY_NOTFOUND, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_REACHED);
    /* What the client got at quorum: v1. */
    assert_true(same_object(kv_get_core_object(&gc), &v1));
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, &v2, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, C, QUORUM_REPLY_ERROR, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, E, QUORUM_REPLY_OK, &v2, NULL), RK_OK);
    assert_true(kv_get_core_done(&gc));

    rk_object expect = {0};
    copy_object(&expect, &v1);
    assert_int_equal(object_merge(&expect, &v2, 0, NULL), RK_OK);
    assert_true(same_object(kv_get_core_object(&gc), &expect));
    assert_true(same_object(kv_get_core_object(&gc), &v2));

    uint64_t repairs[5];
    size_t nrep = 0;
    assert_int_equal(kv_get_core_repairs(&gc, repairs, &nrep), RK_OK);
    assert_int_equal(nrep, 2); /* B is behind, D has nothing; C erred */
    assert_true(repairs[0] == B && repairs[1] == D);
    kv_get_core_fini(&gc);
    object_free(&expect);
    object_free(&v1);
    object_free(&v2);
}

/* Two replicas coordinated concurrent writes from the same base: the merge
 * keeps both values as siblings and each replica lacks the other's. */
static void test_get_concurrent_siblings(void **state)
{
    (void)state;
    rk_object base = {0}, at_a = {0}, at_b = {0};
    write_value(&base, NULL, A, 1, 10);
    copy_object(&at_a, &base);
    copy_object(&at_b, &base);
    write_value(&at_a, &base.clock, A, 2, 20);
    write_value(&at_b, &base.clock, B, 3, 21);
    assert_int_equal(vclock_compare(&at_a.clock, &at_b.clock), VCLOCK_CONCURRENT);

    get_core gc = {0};
    assert_int_equal(kv_get_core_init(&gc, abc, 3, 3, 1000), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, &at_a, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, B, QUORUM_REPLY_OK, &at_b, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, C, QUORUM_REPLY_OK, &base, NULL), RK_OK);
    assert_int_equal(kv_get_core_result(&gc, NULL, NULL), RK_OK);
    const rk_object *m = kv_get_core_object(&gc);
    assert_int_equal(m->len, 2);
    assert_int_equal(object_live_count(m), 2);
    assert_true(has_value(m, "2") && has_value(m, "3"));
    assert_false(has_value(m, "1"));

    uint64_t repairs[3];
    size_t nrep = 0;
    assert_int_equal(kv_get_core_repairs(&gc, repairs, &nrep), RK_OK);
    assert_int_equal(nrep, 3);
    kv_get_core_fini(&gc);

    /* No cap on the merge: 20 concurrent siblings, more than the default
     * cap of 16, all survive. */
    const uint64_t many[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    assert_int_equal(kv_get_core_init(&gc, many, 20, 20, 1000), RK_OK);
    for (int i = 0; i < 20; i++) {
        rk_object o = {0};
        copy_object(&o, &base);
        write_value(&o, &base.clock, many[i], 100 + i, 30);
        assert_int_equal(kv_get_core_reply(&gc, many[i], QUORUM_REPLY_OK, &o, NULL), RK_OK);
        object_free(&o);
    }
    assert_int_equal(kv_get_core_object(&gc)->len, 20);
    kv_get_core_fini(&gc);
    object_free(&base);
    object_free(&at_a);
    object_free(&at_b);
}

/* A delete the quorum saw reads as not found, still carries its object
 * (for the context) and still repairs the replica that missed it. */
static void test_get_tombstone(void **state)
{
    (void)state;
    rk_object live = {0}, dead = {0};
    write_value(&live, NULL, A, 1, 10);
    copy_object(&dead, &live);
    write_tombstone(&dead, A, 20);

    get_core gc = {0};
    assert_int_equal(kv_get_core_init(&gc, abc, 3, 2, 1000), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, &dead, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, B, QUORUM_REPLY_OK, &live, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, C, QUORUM_REPLY_NOTFOUND, NULL, NULL), RK_OK);
    unsigned acks = 0;
    assert_int_equal(kv_get_core_result(&gc, &acks, NULL), RK_ENOTFOUND);
    assert_int_equal(acks, 3);
    assert_non_null(kv_get_core_object(&gc));
    assert_true(same_object(kv_get_core_object(&gc), &dead));
    uint64_t repairs[3];
    size_t nrep = 0;
    assert_int_equal(kv_get_core_repairs(&gc, repairs, &nrep), RK_OK);
    assert_int_equal(nrep, 2);
    assert_true(repairs[0] == B && repairs[1] == C);
    kv_get_core_fini(&gc);
    object_free(&live);
    object_free(&dead);
}

/* Equal clocks but different siblings (one side's cap dropped a sibling
 * the other kept): the merge keeps what both kept, and the side that still
 * has the dropped one is behind. */
static void test_get_equal_clock_different_siblings(void **state)
{
    (void)state;
    /* Three concurrent blind writes by A, B, C (empty contexts). full
     * keeps all three; capped applied C's write with a cap of 2, which
     * dropped A's, the oldest. Same clock, different siblings. */
    const vclock none = {0};
    rk_object full = {0}, capped = {0};
    write_value(&full, &none, A, 1, 10);
    write_value(&full, &none, B, 2, 20);
    copy_object(&capped, &full);
    write_value(&full, &none, C, 3, 30);
    object_write w = {.value = "3", .value_len = 1, .owner = "", .timestamp_ms = 30};
    assert_int_equal(object_update(&capped, &none, C, &w, 2, NULL, NULL), RK_OK);
    assert_int_equal(full.len, 3);
    assert_int_equal(capped.len, 2);
    assert_int_equal(vclock_compare(&full.clock, &capped.clock), VCLOCK_EQUAL);

    get_core gc = {0};
    assert_int_equal(kv_get_core_init(&gc, abc, 2, 2, 1000), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, &full, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, B, QUORUM_REPLY_OK, &capped, NULL), RK_OK);
    assert_true(same_object(kv_get_core_object(&gc), &capped));
    uint64_t repairs[2];
    size_t nrep = 0;
    assert_int_equal(kv_get_core_repairs(&gc, repairs, &nrep), RK_OK);
    assert_int_equal(nrep, 1);
    assert_true(repairs[0] == A);
    kv_get_core_fini(&gc);
    object_free(&full);
    object_free(&capped);
}

/* ---- put ----------------------------------------------------------------- */

static const quorum_target abc_targets[] = {{A, A}, {B, B}, {C, C}};

static void test_put_reached(void **state)
{
    (void)state;
    put_core pc;
    /* w = 1: the coordinator's own apply is the quorum. */
    assert_int_equal(kv_put_core_init(&pc, abc_targets, 3, B, 1, 1000), RK_OK);
    assert_int_equal(kv_put_core_verdict(&pc), QUORUM_REACHED);
    unsigned acks = 0, needed = 0;
    assert_int_equal(kv_put_core_result(&pc, &acks, &needed), RK_OK);
    assert_int_equal(acks, 1);
    assert_int_equal(needed, 1);
    assert_false(kv_put_core_done(&pc));

    for (unsigned w = 2; w <= 3; w++) {
        assert_int_equal(kv_put_core_init(&pc, abc_targets, 3, A, w, 1000), RK_OK);
        assert_int_equal(kv_put_core_verdict(&pc), QUORUM_PENDING);
        assert_int_equal(kv_put_core_result(&pc, NULL, NULL), RK_EINVAL);
        bool counted = true;
        kv_put_core_reply(&pc, A, true, &counted); /* the coordinator again */
        assert_false(counted);
        kv_put_core_reply(&pc, X, true, &counted);
        assert_false(counted);
        kv_put_core_reply(&pc, B, true, &counted);
        assert_true(counted);
        kv_put_core_reply(&pc, B, true, &counted);
        assert_false(counted);
        assert_int_equal(kv_put_core_verdict(&pc), w == 2 ? QUORUM_REACHED : QUORUM_PENDING);
        kv_put_core_reply(&pc, C, true, NULL);
        assert_int_equal(kv_put_core_verdict(&pc), QUORUM_REACHED);
        assert_true(kv_put_core_done(&pc));
        assert_int_equal(kv_put_core_result(&pc, &acks, &needed), RK_OK);
        assert_int_equal(acks, 3);
        assert_int_equal(needed, w);
        quorum_target acked[3];
        assert_int_equal(kv_put_core_acked(&pc, acked), 3);
        assert_int_equal(kv_put_core_fallbacks(&pc, acked), 0);
    }
}

static void test_put_fails_when_impossible(void **state)
{
    (void)state;
    put_core pc;
    unsigned acks = 0, needed = 0;
    /* w = 3: the first error decides. */
    assert_int_equal(kv_put_core_init(&pc, abc_targets, 3, A, 3, 1000), RK_OK);
    kv_put_core_reply(&pc, C, false, NULL);
    assert_int_equal(kv_put_core_verdict(&pc), QUORUM_FAILED);
    assert_int_equal(kv_put_core_result(&pc, &acks, &needed), RK_EQUORUM);
    assert_int_equal(acks, 1);
    assert_int_equal(needed, 3);
    /* A late ack neither revives the write nor is hidden from the count. */
    kv_put_core_reply(&pc, B, true, NULL);
    assert_int_equal(kv_put_core_verdict(&pc), QUORUM_FAILED);
    assert_int_equal(kv_put_core_result(&pc, &acks, NULL), RK_EQUORUM);
    assert_int_equal(acks, 2);

    /* w = 2: one error leaves it possible, two do not. */
    assert_int_equal(kv_put_core_init(&pc, abc_targets, 3, A, 2, 1000), RK_OK);
    kv_put_core_reply(&pc, B, false, NULL);
    assert_int_equal(kv_put_core_verdict(&pc), QUORUM_PENDING);
    kv_put_core_reply(&pc, C, false, NULL);
    assert_int_equal(kv_put_core_verdict(&pc), QUORUM_FAILED);
    assert_int_equal(kv_put_core_result(&pc, &acks, &needed), RK_EQUORUM);
    assert_int_equal(acks, 1);
    assert_int_equal(needed, 2);

    /* The deadline: pending becomes failed; later replies are ignored. */
    assert_int_equal(kv_put_core_init(&pc, abc_targets, 3, A, 2, 1000), RK_OK);
    kv_put_core_tick(&pc, 10);
    assert_int_equal(kv_put_core_verdict(&pc), QUORUM_PENDING);
    kv_put_core_tick(&pc, 1000);
    assert_int_equal(kv_put_core_verdict(&pc), QUORUM_FAILED);
    assert_true(kv_put_core_done(&pc));
    bool counted = true;
    kv_put_core_reply(&pc, B, true, &counted);
    assert_false(counted);

    /* Too few targets for w (replicas down, no fallbacks). */
    assert_int_equal(kv_put_core_init(&pc, abc_targets, 2, A, 3, 1000), RK_OK);
    assert_int_equal(kv_put_core_verdict(&pc), QUORUM_FAILED);

    /* Bad arguments. */
    assert_int_equal(kv_put_core_init(&pc, abc_targets, 3, X, 2, 1000), RK_EINVAL);
    assert_int_equal(kv_put_core_init(&pc, abc_targets, 3, A, 0, 1000), RK_EINVAL);
    const quorum_target dup[] = {{A, A}, {B, B}, {B, C}};
    assert_int_equal(kv_put_core_init(&pc, dup, 3, A, 2, 1000), RK_EINVAL);
}

static void test_put_fallbacks(void **state)
{
    (void)state;
    /* B is down; D stands in for it. */
    const quorum_target targets[] = {{A, A}, {D, B}, {C, C}};
    put_core pc;
    assert_int_equal(kv_put_core_init(&pc, targets, 3, A, 2, 1000), RK_OK);
    quorum_target out[3];
    assert_int_equal(kv_put_core_fallbacks(&pc, out), 0);
    kv_put_core_reply(&pc, B, true, NULL); /* B was not asked */
    assert_int_equal(kv_put_core_verdict(&pc), QUORUM_PENDING);
    kv_put_core_reply(&pc, D, true, NULL);
    assert_int_equal(kv_put_core_verdict(&pc), QUORUM_REACHED);
    assert_int_equal(kv_put_core_fallbacks(&pc, out), 1);
    assert_true(out[0].node == D && out[0].intended == B);
    kv_put_core_reply(&pc, C, false, NULL);
    assert_int_equal(kv_put_core_acked(&pc, out), 2);
    assert_true(out[0].node == A && out[1].node == D);
    assert_true(kv_put_core_done(&pc));
}

/* ---- sloppy target selection ---------------------------------------------- */

static void test_select_cases(void **state)
{
    (void)state;
    const uint64_t pref[] = {A, B, C, D, E, F};
    quorum_target out[6];
    size_t len = 0;

    const bool all[] = {true, true, true, true, true, true};
    assert_int_equal(kv_quorum_select(pref, all, 6, 3, true, out, &len), RK_OK);
    assert_int_equal(len, 3);
    for (size_t i = 0; i < 3; i++)
        assert_true(out[i].node == pref[i] && out[i].intended == pref[i]);

    /* B down: D covers it. */
    const bool b_down[] = {true, false, true, true, true, true};
    assert_int_equal(kv_quorum_select(pref, b_down, 6, 3, true, out, &len), RK_OK);
    assert_int_equal(len, 3);
    assert_true(out[0].node == A && out[1].node == D && out[1].intended == B && out[2].node == C);
    assert_true(quorum_target_is_fallback(&out[1]) && !quorum_target_is_fallback(&out[0]));
    /* Strict quorum: no cover. */
    assert_int_equal(kv_quorum_select(pref, b_down, 6, 3, false, out, &len), RK_OK);
    assert_int_equal(len, 2);
    assert_true(out[0].node == A && out[1].node == C);

    /* A and C down, D down too: E and F cover, in order. */
    const bool acd_down[] = {false, true, false, false, true, true};
    assert_int_equal(kv_quorum_select(pref, acd_down, 6, 3, true, out, &len), RK_OK);
    assert_int_equal(len, 3);
    assert_true(out[0].node == E && out[0].intended == A);
    assert_true(out[1].node == B && out[1].intended == B);
    assert_true(out[2].node == F && out[2].intended == C);

    /* Every replica down and one fallback alive: one target. */
    const bool one_left[] = {false, false, false, false, true, false};
    assert_int_equal(kv_quorum_select(pref, one_left, 6, 3, true, out, &len), RK_OK);
    assert_int_equal(len, 1);
    assert_true(out[0].node == E && out[0].intended == A);
    assert_int_equal(kv_quorum_select(pref, one_left, 6, 3, false, out, &len), RK_OK);
    assert_int_equal(len, 0);

    /* No fallbacks at all (a three-node cluster). */
    assert_int_equal(kv_quorum_select(pref, b_down, 3, 3, true, out, &len), RK_OK);
    assert_int_equal(len, 2);

    /* Bad arguments. */
    assert_int_equal(kv_quorum_select(pref, all, 6, 0, true, out, &len), RK_EINVAL);
    assert_int_equal(kv_quorum_select(pref, all, 2, 3, true, out, &len), RK_EINVAL);
    const uint64_t dup[] = {A, B, A, D};
    assert_int_equal(kv_quorum_select(dup, all, 4, 3, true, out, &len), RK_EINVAL);
}

/* Every alive/down pattern of 3 replicas and 0..3 fallbacks: alive
 * replicas serve themselves, the k-th down replica gets the k-th alive
 * fallback while there is one, nothing is used twice. */
static void test_select_exhaustive(void **state)
{
    (void)state;
    const uint64_t pref[] = {A, B, C, D, E, F};
    const size_t n = 3;
    for (size_t count = n; count <= 6; count++) {
        for (unsigned mask = 0; mask < (1u << count); mask++) {
            bool alive[6];
            for (size_t i = 0; i < count; i++)
                alive[i] = mask & (1u << i);
            for (int sloppy = 0; sloppy <= 1; sloppy++) {
                quorum_target out[6];
                size_t len = 99;
                assert_int_equal(kv_quorum_select(pref, alive, count, n, sloppy, out, &len), RK_OK);
                uint64_t fallbacks[6];
                size_t nfb = 0, down = 0;
                for (size_t i = n; i < count; i++)
                    if (alive[i])
                        fallbacks[nfb++] = pref[i];
                size_t k = 0, used = 0;
                for (size_t i = 0; i < n; i++) {
                    if (alive[i]) {
                        assert_true(k < len);
                        assert_true(out[k].node == pref[i] && out[k].intended == pref[i]);
                        k++;
                    } else if (sloppy && down < nfb) {
                        assert_true(k < len);
                        assert_true(out[k].node == fallbacks[down] && out[k].intended == pref[i]);
                        k++;
                        down++;
                        used++;
                    } else if (sloppy) {
                        down++;
                    }
                }
                assert_int_equal(len, k);
                for (size_t i = 0; i < len; i++)
                    for (size_t j = i + 1; j < len; j++)
                        assert_true(out[i].node != out[j].node);
                (void)used;
            }
        }
    }
}

/* ---- join ------------------------------------------------------------------ */

static void test_join_union(void **state)
{
    (void)state;
    uint64_t out[6];
    size_t len = 0, pending = 0;

    /* D joins and takes C's replica slot. */
    const uint64_t old_ids[] = {A, B, C};
    const uint64_t new_ids[] = {A, D, B};
    assert_int_equal(kv_quorum_join_union(old_ids, 3, new_ids, 3, out, &len, &pending), RK_OK);
    assert_int_equal(len, 4);
    assert_int_equal(pending, 1);
    assert_true(out[0] == A && out[1] == B && out[2] == C && out[3] == D);
    assert_int_equal(quorum_join_needed(2, pending), 3);

    /* Nothing moves: the old list. */
    assert_int_equal(kv_quorum_join_union(old_ids, 3, old_ids, 3, out, &len, &pending), RK_OK);
    assert_int_equal(len, 3);
    assert_int_equal(pending, 0);

    /* A one-node cluster grows to two with n = 2. */
    const uint64_t one[] = {A}, two[] = {B, A};
    assert_int_equal(kv_quorum_join_union(one, 1, two, 2, out, &len, &pending), RK_OK);
    assert_int_equal(len, 2);
    assert_int_equal(pending, 1);

    assert_int_equal(kv_quorum_join_union(old_ids, 0, new_ids, 3, out, &len, &pending), RK_EINVAL);
    const uint64_t dup[] = {A, A, B};
    assert_int_equal(kv_quorum_join_union(old_ids, 3, dup, 3, out, &len, &pending), RK_EINVAL);
}

static unsigned popcount(unsigned x)
{
    unsigned c = 0;
    for (; x; x &= x - 1)
        c++;
    return c;
}

/* The guarantee itself, exhaustively for N = 3 and every R + W > N: any
 * write acknowledged by W + p nodes of the union and any read answered by
 * R + p nodes of it share an old replica (which holds the range). */
static void test_join_quorums_intersect(void **state)
{
    (void)state;
    const uint64_t old_ids[] = {A, B, C};
    const uint64_t new_sets[][3] = {{A, B, D}, {D, A, B}, {D, E, A}, {D, E, F}};
    for (size_t s = 0; s < 4; s++) {
        uint64_t u[6];
        size_t len = 0, p = 0;
        assert_int_equal(kv_quorum_join_union(old_ids, 3, new_sets[s], 3, u, &len, &p), RK_OK);
        assert_int_equal(len, 3 + p);
        unsigned old_mask = 0x7; /* the old replicas come first */
        for (unsigned r = 1; r <= 3; r++) {
            for (unsigned w = 1; w <= 3; w++) {
                if (r + w <= 3)
                    continue;
                unsigned rq = quorum_join_needed(r, p), wq = quorum_join_needed(w, p);
                for (unsigned wm = 0; wm < (1u << len); wm++) {
                    if (popcount(wm) != wq)
                        continue;
                    for (unsigned rm = 0; rm < (1u << len); rm++)
                        if (popcount(rm) == rq)
                            assert_true((wm & rm & old_mask) != 0);
                }
            }
        }
    }
}

/* ---- the coordinator's other decisions ------------------------------------ */

static void test_quorum_needed(void **state)
{
    (void)state;
    /* Enough replicas: q itself. */
    assert_int_equal(kv_quorum_needed(2, 3, 0), 2);
    assert_int_equal(kv_quorum_needed(3, 3, 0), 3);
    assert_int_equal(kv_quorum_needed(1, 5, 0), 1);
    /* Fewer members than N: every replica there is, never more. */
    assert_int_equal(kv_quorum_needed(2, 1, 0), 1);
    assert_int_equal(kv_quorum_needed(3, 1, 0), 1);
    assert_int_equal(kv_quorum_needed(3, 2, 0), 2);
    /* During a join, one more per pending replica, after the cap. */
    assert_int_equal(kv_quorum_needed(2, 3, 1), 3);
    assert_int_equal(kv_quorum_needed(2, 3, 2), 4);
    assert_int_equal(kv_quorum_needed(3, 2, 1), 3);
    assert_int_equal(kv_quorum_needed(1, 1, 1), 2);
}

/* The alive callback: a small table of down ids. */
typedef struct down_set {
    const uint64_t *ids;
    size_t count;
    unsigned calls;
} down_set;

static bool alive_cb(void *arg, uint64_t node)
{
    down_set *d = arg;
    d->calls++;
    for (size_t i = 0; i < d->count; i++)
        if (d->ids[i] == node)
            return false;
    return true;
}

static bool same_target(const quorum_target *t, uint64_t node, uint64_t intended)
{
    return t->node == node && t->intended == intended;
}

static void test_plan_one_ring(void **state)
{
    (void)state;
    const uint64_t pref[] = {A, B, C, D, E};
    quorum_prefs p = {.pref = pref, .count = 5, .replicas = 3};
    quorum_plan_result out;

    /* Everyone alive: the replicas, each its own target. */
    down_set none = {0};
    assert_int_equal(kv_quorum_plan(&p, alive_cb, &none, true, &out), RK_OK);
    assert_int_equal(out.target_count, 3);
    assert_true(same_target(&out.targets[0], A, A));
    assert_true(same_target(&out.targets[1], B, B));
    assert_true(same_target(&out.targets[2], C, C));
    assert_int_equal(out.replica_count, 3);
    assert_true(out.replicas[0] == A && out.replicas[1] == B && out.replicas[2] == C);
    assert_int_equal(out.old_count, 3);
    assert_int_equal(out.pending, 0);
    assert_true(none.calls > 0);

    /* B down, sloppy: D, the first fallback, stands in for it; B is still
     * an intended replica (a hint is kept for it). */
    const uint64_t b_ids[] = {B};
    down_set b_down = {b_ids, 1, 0};
    assert_int_equal(kv_quorum_plan(&p, alive_cb, &b_down, true, &out), RK_OK);
    assert_int_equal(out.target_count, 3);
    assert_true(same_target(&out.targets[0], A, A));
    assert_true(same_target(&out.targets[1], D, B));
    assert_true(same_target(&out.targets[2], C, C));
    assert_int_equal(out.replica_count, 3);
    assert_true(out.replicas[0] == A && out.replicas[1] == B && out.replicas[2] == C);
    assert_int_equal(out.old_count, 3);
    assert_int_equal(out.pending, 0);

    /* B down, strict: no one stands in. */
    assert_int_equal(kv_quorum_plan(&p, alive_cb, &b_down, false, &out), RK_OK);
    assert_int_equal(out.target_count, 2);
    assert_true(same_target(&out.targets[0], A, A));
    assert_true(same_target(&out.targets[1], C, C));
    assert_int_equal(out.replica_count, 3);

    /* B and the first fallback D down: the next alive fallback, E. */
    const uint64_t bd_ids[] = {B, D};
    down_set bd_down = {bd_ids, 2, 0};
    assert_int_equal(kv_quorum_plan(&p, alive_cb, &bd_down, true, &out), RK_OK);
    assert_int_equal(out.target_count, 3);
    assert_true(same_target(&out.targets[1], E, B));

    /* A and C down, one fallback left alive (D down): A gets E, C none. */
    const uint64_t acd_ids[] = {A, C, D};
    down_set acd_down = {acd_ids, 3, 0};
    assert_int_equal(kv_quorum_plan(&p, alive_cb, &acd_down, true, &out), RK_OK);
    assert_int_equal(out.target_count, 2);
    assert_true(same_target(&out.targets[0], E, A));
    assert_true(same_target(&out.targets[1], B, B));

    /* One member (a lone node): itself. */
    const uint64_t lone[] = {A};
    quorum_prefs p1 = {.pref = lone, .count = 1, .replicas = 1};
    assert_int_equal(kv_quorum_plan(&p1, alive_cb, &none, true, &out), RK_OK);
    assert_int_equal(out.target_count, 1);
    assert_true(same_target(&out.targets[0], A, A));
    assert_int_equal(out.replica_count, 1);
}

static void test_plan_two_rings(void **state)
{
    (void)state;
    /* E joins: the next ring's replicas are A, C, E (E takes B's place),
     * its fallbacks F and B. The read ring's fallback D must not be used:
     * fallbacks come from the ring the range is going to. */
    const uint64_t pref[] = {A, B, C, D};
    const uint64_t next[] = {A, C, E, F, B};
    quorum_prefs p = {
        .pref = pref, .count = 4, .replicas = 3, .next = next, .next_count = 5, .next_replicas = 3};
    quorum_plan_result out;

    down_set none = {0};
    assert_int_equal(kv_quorum_plan(&p, alive_cb, &none, true, &out), RK_OK);
    assert_int_equal(out.replica_count, 4);
    assert_true(out.replicas[0] == A && out.replicas[1] == B && out.replicas[2] == C &&
                out.replicas[3] == E);
    assert_int_equal(out.old_count, 3);
    assert_int_equal(out.pending, 1);
    assert_int_equal(out.target_count, 4);
    assert_true(same_target(&out.targets[0], A, A));
    assert_true(same_target(&out.targets[1], B, B));
    assert_true(same_target(&out.targets[2], C, C));
    assert_true(same_target(&out.targets[3], E, E));
    assert_int_equal(kv_quorum_needed(2, out.old_count, out.pending), 3);

    /* B down, sloppy: F (the next ring's first fallback), not D. */
    const uint64_t b_ids[] = {B};
    down_set b_down = {b_ids, 1, 0};
    assert_int_equal(kv_quorum_plan(&p, alive_cb, &b_down, true, &out), RK_OK);
    assert_int_equal(out.target_count, 4);
    assert_true(same_target(&out.targets[0], A, A));
    assert_true(same_target(&out.targets[1], F, B));
    assert_true(same_target(&out.targets[2], C, C));
    assert_true(same_target(&out.targets[3], E, E));
    for (size_t i = 0; i < out.target_count; i++)
        assert_true(out.targets[i].node != D);

    /* B down, strict: the three others. */
    assert_int_equal(kv_quorum_plan(&p, alive_cb, &b_down, false, &out), RK_OK);
    assert_int_equal(out.target_count, 3);
    assert_int_equal(out.replica_count, 4);

    /* B and E down: F stands in for B; the next ring's other fallback is B
     * itself (already a replica, and down), so E gets no one. */
    const uint64_t be_ids[] = {B, E};
    down_set be_down = {be_ids, 2, 0};
    assert_int_equal(kv_quorum_plan(&p, alive_cb, &be_down, true, &out), RK_OK);
    assert_int_equal(out.target_count, 3);
    assert_true(same_target(&out.targets[1], F, B));
    assert_true(same_target(&out.targets[2], C, C));

    /* Two new replicas (D and E replace B and C): two pending. */
    const uint64_t next2[] = {D, A, E, F};
    quorum_prefs p2 = {.pref = pref,
                       .count = 3,
                       .replicas = 3,
                       .next = next2,
                       .next_count = 4,
                       .next_replicas = 3};
    assert_int_equal(kv_quorum_plan(&p2, alive_cb, &none, true, &out), RK_OK);
    assert_int_equal(out.replica_count, 5);
    assert_true(out.replicas[0] == A && out.replicas[1] == B && out.replicas[2] == C &&
                out.replicas[3] == D && out.replicas[4] == E);
    assert_int_equal(out.old_count, 3);
    assert_int_equal(out.pending, 2);
    assert_int_equal(out.target_count, 5);
}

static void test_plan_invalid(void **state)
{
    (void)state;
    const uint64_t ids[] = {A, B, C, D, E, F, 107, 108, 109, 110};
    const uint64_t dup[] = {A, B, A, D};
    uint64_t many[RING_MAX_N + 1];
    for (size_t i = 0; i < RING_MAX_N + 1; i++)
        many[i] = 1000 + i;
    down_set none = {0};
    quorum_plan_result out;
    const quorum_prefs bad[] = {
        {.pref = ids, .count = 3, .replicas = 0}, /* no replica */
        {.pref = ids, .count = 2, .replicas = 3}, /* count < replicas */
        {.pref = ids,
         .count = 3 + QUORUM_MAX_FALLBACKS + 1,
         .replicas = 3}, /* too many fallbacks */
        {.pref = many, .count = RING_MAX_N + 1, .replicas = RING_MAX_N + 1}, /* over N */
        {.pref = dup, .count = 4, .replicas = 3}, /* a repeated replica */
        {.pref = ids, .count = 3, .replicas = 3, .next = ids, .next_count = 3, .next_replicas = 0},
        {.pref = ids, .count = 3, .replicas = 3, .next = ids, .next_count = 2, .next_replicas = 3},
        {.pref = ids, .count = 3, .replicas = 3, .next = ids, .next_count = 8, .next_replicas = 3},
        {.pref = ids,
         .count = 3,
         .replicas = 3,
         .next = many,
         .next_count = RING_MAX_N + 1,
         .next_replicas = RING_MAX_N + 1},
        {.pref = ids, .count = 3, .replicas = 3, .next = dup, .next_count = 4, .next_replicas = 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        out.target_count = 77;
        assert_int_equal(kv_quorum_plan(&bad[i], alive_cb, &none, true, &out), RK_EINVAL);
    }
    /* The limits themselves are accepted. */
    const quorum_prefs good[] = {
        {.pref = ids, .count = 3 + QUORUM_MAX_FALLBACKS, .replicas = 3},
        {.pref = many, .count = RING_MAX_N, .replicas = RING_MAX_N},
        {.pref = ids,
         .count = 3,
         .replicas = 3,
         .next = ids + 3,
         .next_count = 7,
         .next_replicas = 3},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(kv_quorum_plan(&good[i], alive_cb, &none, true, &out), RK_OK);
}

static void test_read_order(void **state)
{
    (void)state;
    /* This node's replica copy moves to the front, the others keep order. */
    quorum_target t[] = {{A, A}, {B, B}, {C, C}, {E, D}};
    kv_quorum_read_order(t, 4, C);
    assert_true(same_target(&t[0], C, C));
    assert_true(same_target(&t[1], A, A));
    assert_true(same_target(&t[2], B, B));
    assert_true(same_target(&t[3], E, D));

    /* Already first: unchanged. */
    quorum_target u[] = {{A, A}, {B, B}, {C, C}};
    kv_quorum_read_order(u, 3, A);
    assert_true(same_target(&u[0], A, A) && same_target(&u[1], B, B) && same_target(&u[2], C, C));

    /* A fallback on this node holds a hint, not the replica: not moved. */
    quorum_target v[] = {{A, A}, {B, B}, {D, C}};
    kv_quorum_read_order(v, 3, D);
    assert_true(same_target(&v[0], A, A) && same_target(&v[1], B, B) && same_target(&v[2], D, C));

    /* Not a target at all: a no-op. */
    quorum_target w[] = {{A, A}, {B, B}, {C, C}};
    kv_quorum_read_order(w, 3, X);
    assert_true(same_target(&w[0], A, A) && same_target(&w[1], B, B) && same_target(&w[2], C, C));

    /* Empty and single lists. */
    kv_quorum_read_order(w, 0, A);
    kv_quorum_read_order(w, 1, A);
    assert_true(same_target(&w[0], A, A));
}

static void test_applier_order(void **state)
{
    (void)state;
    const quorum_target t[] = {{A, A}, {D, B}, {C, C}, {E, E}};
    size_t out[4];

    /* Self a replica target: first, then the other replicas in order. */
    assert_int_equal(kv_quorum_applier_order(t, 4, C, out), 3);
    assert_true(out[0] == 2 && out[1] == 0 && out[2] == 3);
    assert_int_equal(kv_quorum_applier_order(t, 4, A, out), 3);
    assert_true(out[0] == 0 && out[1] == 2 && out[2] == 3);
    assert_int_equal(kv_quorum_applier_order(t, 4, E, out), 3);
    assert_true(out[0] == 3 && out[1] == 0 && out[2] == 2);

    /* Self a fallback (a hint holder may not be an actor): not at all. */
    assert_int_equal(kv_quorum_applier_order(t, 4, D, out), 3);
    assert_true(out[0] == 0 && out[1] == 2 && out[2] == 3);

    /* Self not a target. */
    assert_int_equal(kv_quorum_applier_order(t, 4, X, out), 3);
    assert_true(out[0] == 0 && out[1] == 2 && out[2] == 3);

    /* Only fallbacks: no applier. */
    const quorum_target fb[] = {{D, A}, {E, B}};
    assert_int_equal(kv_quorum_applier_order(fb, 2, D, out), 0);
}

static void test_attempt_deadline(void **state)
{
    (void)state;
    /* Remote, another replica left: half of what is left. */
    assert_int_equal(kv_quorum_attempt_deadline(100, 1100, true, true), 600);
    assert_int_equal(kv_quorum_attempt_deadline(0, 5000, true, true), 2500);
    /* Local, or the last replica: the whole deadline. */
    assert_int_equal(kv_quorum_attempt_deadline(100, 1100, false, true), 1100);
    assert_int_equal(kv_quorum_attempt_deadline(100, 1100, true, false), 1100);
    assert_int_equal(kv_quorum_attempt_deadline(100, 1100, false, false), 1100);
    /* At or past the deadline: unchanged (no wrap-around). */
    assert_int_equal(kv_quorum_attempt_deadline(1100, 1100, true, true), 1100);
    assert_int_equal(kv_quorum_attempt_deadline(5000, 1100, true, true), 1100);
    /* Never beyond the request's deadline, never before now. */
    for (uint64_t now = 0; now < 50; now++) {
        uint64_t d = kv_quorum_attempt_deadline(now, 40, true, true);
        assert_true(d <= 40);
        assert_true(now >= 40 || d >= now);
    }
}

static void test_put_missed(void **state)
{
    (void)state;
    /* B is down; D stands in for it. */
    const quorum_target targets[] = {{A, A}, {D, B}, {C, C}};
    const uint64_t replicas[] = {A, B, C};
    uint64_t out[3];
    put_core pc;
    assert_int_equal(kv_put_core_init(&pc, targets, 3, A, 2, 1000), RK_OK);
    /* Only the coordinator has acked. */
    assert_int_equal(kv_put_core_missed(&pc, replicas, 3, out), 2);
    assert_true(out[0] == B && out[1] == C);
    /* D's ack covers B, the replica it stands in for. */
    kv_put_core_reply(&pc, D, true, NULL);
    assert_int_equal(kv_put_core_missed(&pc, replicas, 3, out), 1);
    assert_true(out[0] == C);
    /* An error does not cover. */
    kv_put_core_reply(&pc, C, false, NULL);
    assert_int_equal(kv_put_core_missed(&pc, replicas, 3, out), 1);
    assert_true(out[0] == C);

    /* A fallback that failed leaves its replica missed. */
    assert_int_equal(kv_put_core_init(&pc, targets, 3, A, 2, 1000), RK_OK);
    kv_put_core_reply(&pc, D, false, NULL);
    kv_put_core_reply(&pc, C, true, NULL);
    assert_int_equal(kv_put_core_missed(&pc, replicas, 3, out), 1);
    assert_true(out[0] == B);
    /* B itself answering does not count: it was not a target. */
    kv_put_core_reply(&pc, B, true, NULL);
    assert_int_equal(kv_put_core_missed(&pc, replicas, 3, out), 1);

    /* Strict quorum, B down: no target at all for B, so it is missed even
     * when every target acked. */
    const quorum_target strict[] = {{A, A}, {C, C}};
    assert_int_equal(kv_put_core_init(&pc, strict, 2, A, 2, 1000), RK_OK);
    kv_put_core_reply(&pc, C, true, NULL);
    assert_int_equal(kv_put_core_verdict(&pc), QUORUM_REACHED);
    assert_int_equal(kv_put_core_missed(&pc, replicas, 3, out), 1);
    assert_true(out[0] == B);

    /* All acked: nothing missed. */
    assert_int_equal(kv_put_core_init(&pc, targets, 3, C, 3, 1000), RK_OK);
    kv_put_core_reply(&pc, A, true, NULL);
    kv_put_core_reply(&pc, D, true, NULL);
    assert_int_equal(kv_put_core_missed(&pc, replicas, 3, out), 0);

    /* A join: the pending replica E is missed until it acks. */
    const quorum_target join[] = {{A, A}, {B, B}, {C, C}, {E, E}};
    const uint64_t union_ids[] = {A, B, C, E};
    uint64_t out4[4];
    assert_int_equal(kv_put_core_init(&pc, join, 4, B, 3, 1000), RK_OK);
    kv_put_core_reply(&pc, A, true, NULL);
    kv_put_core_reply(&pc, C, true, NULL);
    assert_int_equal(kv_put_core_missed(&pc, union_ids, 4, out4), 1);
    assert_true(out4[0] == E);
}

/* ---- targeted reads ----------------------------------------------------------- */

static void test_get_targeted_ok(void **state)
{
    (void)state;
    rk_object obj = {0};
    write_value(&obj, NULL, A, 1, 10);
    const uint64_t nodes[] = {A, B, C, D, E};
    get_core gc = {0};
    size_t from = 99;

    /* r = 2 of 5, asking 2 first: nothing more while replies are ok. */
    assert_int_equal(kv_get_core_init(&gc, nodes, 5, 2, 1000), RK_OK);
    kv_get_core_target(&gc, 2);
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 0);
    assert_int_equal(from, 2);
    assert_true(kv_get_core_waiting_on_asked(&gc));
    assert_false(kv_get_core_done(&gc));
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, &obj, NULL), RK_OK);
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 0);
    assert_true(kv_get_core_waiting_on_asked(&gc));
    assert_false(kv_get_core_done(&gc));
    assert_int_equal(kv_get_core_reply(&gc, B, QUORUM_REPLY_NOTFOUND, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_REACHED);
    assert_int_equal(kv_get_core_result(&gc, NULL, NULL), RK_OK);
    /* The verdict is in: nothing more to ask, even after the delay. */
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 0);
    kv_get_core_speculate(&gc);
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 0);
    assert_false(kv_get_core_waiting_on_asked(&gc));
    /* Both asked answered: done, though C, D and E were never asked. */
    assert_true(kv_get_core_done(&gc));
    /* Read repair names B (not found while A has the object), never the
     * unasked targets. */
    uint64_t rep[5];
    size_t nrep = 99;
    assert_int_equal(kv_get_core_repairs(&gc, rep, &nrep), RK_OK);
    assert_int_equal(nrep, 1);
    assert_true(rep[0] == B);
    uint64_t answered[5];
    assert_int_equal(kv_get_core_answered(&gc, answered), 2);
    assert_true(answered[0] == A && answered[1] == B);
    kv_get_core_fini(&gc);
    object_free(&obj);
}

static void test_get_targeted_errors(void **state)
{
    (void)state;
    rk_object obj = {0};
    write_value(&obj, NULL, A, 1, 10);
    const uint64_t nodes[] = {A, B, C, D};
    get_core gc = {0};
    size_t from = 99;

    assert_int_equal(kv_get_core_init(&gc, nodes, 4, 2, 1000), RK_OK);
    kv_get_core_target(&gc, 2);
    /* One more per error. */
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_ERROR, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 1);
    assert_int_equal(from, 2);
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 0); /* counted as asked */
    assert_int_equal(from, 3);
    assert_true(kv_get_core_waiting_on_asked(&gc));
    assert_int_equal(kv_get_core_reply(&gc, B, QUORUM_REPLY_OK, &obj, NULL), RK_OK);
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 0);
    assert_false(kv_get_core_done(&gc)); /* C was asked and has not answered */
    assert_int_equal(kv_get_core_reply(&gc, C, QUORUM_REPLY_ERROR, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_PENDING);
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 1);
    assert_int_equal(from, 3);
    assert_false(kv_get_core_waiting_on_asked(&gc)); /* every target is asked now */
    assert_false(kv_get_core_done(&gc));
    assert_int_equal(kv_get_core_reply(&gc, D, QUORUM_REPLY_OK, &obj, NULL), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_REACHED);
    assert_true(kv_get_core_done(&gc));
    kv_get_core_fini(&gc);

    /* Too many errors: failed, and nothing more is asked. */
    assert_int_equal(kv_get_core_init(&gc, nodes, 3, 2, 1000), RK_OK);
    kv_get_core_target(&gc, 2);
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_ERROR, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, B, QUORUM_REPLY_ERROR, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_FAILED);
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 0);
    assert_true(kv_get_core_done(&gc));
    assert_int_equal(kv_get_core_result(&gc, NULL, NULL), RK_EQUORUM);
    kv_get_core_fini(&gc);
    object_free(&obj);
}

static void test_get_targeted_speculate(void **state)
{
    (void)state;
    rk_object obj = {0};
    write_value(&obj, NULL, A, 1, 10);
    const uint64_t nodes[] = {A, B, C, D, E};
    get_core gc = {0};
    size_t from = 99;

    /* first under r: r are asked anyway. */
    assert_int_equal(kv_get_core_init(&gc, nodes, 5, 3, 1000), RK_OK);
    kv_get_core_target(&gc, 1);
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 0);
    assert_int_equal(from, 3);
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, &obj, NULL), RK_OK);
    /* The delay passed without a verdict: all the rest. */
    kv_get_core_speculate(&gc);
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 2);
    assert_int_equal(from, 3);
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 0);
    assert_false(kv_get_core_waiting_on_asked(&gc));
    /* An error after that asks no one more: everyone is asked. */
    assert_int_equal(kv_get_core_reply(&gc, B, QUORUM_REPLY_ERROR, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 0);
    assert_int_equal(kv_get_core_reply(&gc, E, QUORUM_REPLY_OK, &obj, NULL), RK_OK);
    assert_int_equal(kv_get_core_reply(&gc, D, QUORUM_REPLY_NOTFOUND, NULL, NULL), RK_OK);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_REACHED);
    assert_false(kv_get_core_done(&gc)); /* C was asked */
    assert_int_equal(kv_get_core_reply(&gc, C, QUORUM_REPLY_OK, &obj, NULL), RK_OK);
    assert_true(kv_get_core_done(&gc));
    kv_get_core_fini(&gc);

    /* first over count: everyone, and the timer has nothing to do. */
    assert_int_equal(kv_get_core_init(&gc, nodes, 3, 2, 1000), RK_OK);
    kv_get_core_target(&gc, 9);
    assert_false(kv_get_core_waiting_on_asked(&gc));
    kv_get_core_speculate(&gc);
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 0);
    assert_int_equal(from, 3);
    kv_get_core_fini(&gc);

    /* Past the deadline: nothing more, and done. */
    assert_int_equal(kv_get_core_init(&gc, nodes, 5, 2, 1000), RK_OK);
    kv_get_core_target(&gc, 2);
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, &obj, NULL), RK_OK);
    kv_get_core_tick(&gc, 1000);
    assert_int_equal(kv_get_core_verdict(&gc), QUORUM_FAILED);
    kv_get_core_speculate(&gc);
    assert_int_equal(kv_get_core_to_ask(&gc, &from), 0);
    assert_false(kv_get_core_waiting_on_asked(&gc));
    assert_true(kv_get_core_done(&gc));
    kv_get_core_fini(&gc);
    object_free(&obj);
}

/* Read repair after a targeted read only names targets that answered: a
 * stale replica that was never asked is left to anti-entropy. */
static void test_get_targeted_repairs(void **state)
{
    (void)state;
    rk_object old = {0}, cur = {0};
    write_value(&old, NULL, A, 1, 10);
    copy_object(&cur, &old);
    write_value(&cur, NULL, A, 2, 20);
    const uint64_t nodes[] = {A, B, C};
    get_core gc = {0};
    assert_int_equal(kv_get_core_init(&gc, nodes, 3, 2, 1000), RK_OK);
    kv_get_core_target(&gc, 2);
    assert_int_equal(kv_get_core_reply(&gc, A, QUORUM_REPLY_OK, &cur, NULL), RK_OK);
    uint64_t rep[3];
    size_t nrep = 0;
    assert_int_equal(kv_get_core_repairs(&gc, rep, &nrep), RK_EINVAL); /* not done */
    assert_int_equal(kv_get_core_reply(&gc, B, QUORUM_REPLY_OK, &old, NULL), RK_OK);
    assert_true(kv_get_core_done(&gc));
    assert_int_equal(kv_get_core_repairs(&gc, rep, &nrep), RK_OK);
    assert_int_equal(nrep, 1);
    assert_true(rep[0] == B);
    assert_true(same_object(kv_get_core_object(&gc), &cur));
    kv_get_core_fini(&gc);
    object_free(&old);
    object_free(&cur);
}

/* ---- randomized: the verdict does not depend on reply order ---------------- */

static uint64_t test_seed;

#define RANDOM_ROUNDS 2000
#define MAX_N 6

typedef struct scenario {
    size_t n;
    unsigned r;
    uint64_t nodes[MAX_N];
    quorum_reply kind[MAX_N];
    rk_object obj[MAX_N];
} scenario;

/* Random replica states from one random history: writes coordinated by
 * random replicas (blind or with a context read from another replica, so
 * siblings arise), random replication between replicas, some deletes. */
static void scenario_make(scenario *sc)
{
    sc->n = 1 + rng_below(MAX_N);
    sc->r = 1 + rng_below((unsigned)sc->n);
    for (size_t i = 0; i < sc->n; i++) {
        sc->nodes[i] = 1000 + i;
        sc->obj[i] = (rk_object){0};
    }
    unsigned steps = rng_below(12);
    for (unsigned s = 0; s < steps; s++) {
        size_t i = rng_below((unsigned)sc->n), j = rng_below((unsigned)sc->n);
        switch (rng_below(4)) {
        case 0: write_value(&sc->obj[i], NULL, sc->nodes[i], (int)s, 100 + rng_below(50)); break;
        case 1:
            write_value(&sc->obj[i], &sc->obj[j].clock, sc->nodes[i], (int)s, 100 + rng_below(50));
            break;
        case 2:
            if (i != j)
                assert_int_equal(object_merge(&sc->obj[i], &sc->obj[j], 0, NULL), RK_OK);
            break;
        default:
            if (rng_below(3) == 0)
                write_tombstone(&sc->obj[i], sc->nodes[i], 100 + rng_below(50));
            break;
        }
    }
    for (size_t i = 0; i < sc->n; i++) {
        unsigned k = rng_below(5);
        if (sc->obj[i].len == 0 && sc->obj[i].clock.len == 0)
            sc->kind[i] = k == 0 ? QUORUM_REPLY_ERROR : QUORUM_REPLY_NOTFOUND;
        else
            sc->kind[i] = k == 0 ? QUORUM_REPLY_ERROR : QUORUM_REPLY_OK;
    }
}

static void scenario_free(scenario *sc)
{
    for (size_t i = 0; i < sc->n; i++)
        object_free(&sc->obj[i]);
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg("%s:%d: %s failed (RINGKV_TEST_SEED=%" PRIu64 ", round %u)", __FILE__,        \
                     __LINE__, #cond, test_seed, round);                                           \
    } while (0)

/* One run in a random order, with duplicates and strangers mixed in; at
 * every step the verdict must be what the counts so far say. Leaves the
 * finished core in gc. */
static void run_order(const scenario *sc, get_core *gc, unsigned round)
{
    size_t order[MAX_N];
    for (size_t i = 0; i < sc->n; i++)
        order[i] = i;
    for (size_t i = sc->n; i > 1; i--) {
        size_t j = rng_below((unsigned)i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    CHECK(kv_get_core_init(gc, sc->nodes, sc->n, sc->r, 1000) == RK_OK);
    unsigned acks = 0, errors = 0;
    for (size_t s = 0; s < sc->n; s++) {
        size_t i = order[s];
        bool counted = false;
        CHECK(kv_get_core_reply(gc, sc->nodes[i], sc->kind[i], &sc->obj[i], &counted) == RK_OK);
        CHECK(counted);
        if (sc->kind[i] == QUORUM_REPLY_ERROR)
            errors++;
        else
            acks++;
        if (rng_below(3) == 0) { /* a duplicate of an earlier reply, maybe different */
            size_t k = order[rng_below((unsigned)s + 1)];
            quorum_reply other = (quorum_reply)rng_below(3);
            CHECK(kv_get_core_reply(gc, sc->nodes[k], other, &sc->obj[i], &counted) == RK_OK);
            CHECK(!counted);
        }
        if (rng_below(4) == 0) {
            CHECK(kv_get_core_reply(gc, 7, QUORUM_REPLY_OK, &sc->obj[i], &counted) == RK_OK);
            CHECK(!counted);
        }
        quorum_verdict want = acks >= sc->r            ? QUORUM_REACHED
                              : errors > sc->n - sc->r ? QUORUM_FAILED
                                                       : QUORUM_PENDING;
        CHECK(kv_get_core_verdict(gc) == want);
        CHECK(kv_get_core_done(gc) == (s + 1 == sc->n));
    }
}

static void test_random_order_independent(void **state)
{
    (void)state;
    /* How often each outcome came up, printed so a change to the generator
     * that stops exercising one is visible. */
    unsigned seen_ok = 0, seen_notfound = 0, seen_quorum = 0, seen_repair = 0, seen_siblings = 0;
    for (unsigned round = 0; round < RANDOM_ROUNDS; round++) {
        scenario sc;
        scenario_make(&sc);

        /* The reference: counts, the fold of object_merge, the stale set. */
        unsigned acks = 0;
        bool any_ok = false;
        rk_object expect = {0};
        for (size_t i = 0; i < sc.n; i++) {
            if (sc.kind[i] == QUORUM_REPLY_ERROR)
                continue;
            acks++;
            if (sc.kind[i] == QUORUM_REPLY_OK) {
                CHECK(object_merge(&expect, &sc.obj[i], 0, NULL) == RK_OK);
                any_ok = true;
            }
        }
        uint64_t want_repairs[MAX_N];
        size_t want_nrep = 0;
        for (size_t i = 0; i < sc.n; i++)
            if (any_ok && ((sc.kind[i] == QUORUM_REPLY_NOTFOUND) ||
                           (sc.kind[i] == QUORUM_REPLY_OK && !same_object(&sc.obj[i], &expect))))
                want_repairs[want_nrep++] = sc.nodes[i];
        rk_err want_result = acks < sc.r                                ? RK_EQUORUM
                             : any_ok && object_live_count(&expect) > 0 ? RK_OK
                                                                        : RK_ENOTFOUND;

        seen_ok += want_result == RK_OK;
        seen_notfound += want_result == RK_ENOTFOUND;
        seen_quorum += want_result == RK_EQUORUM;
        seen_repair += want_nrep > 0;
        seen_siblings += any_ok && expect.len > 1;
        for (int run = 0; run < 4; run++) {
            get_core gc = {0};
            run_order(&sc, &gc, round);
            unsigned got_acks = 0, needed = 0;
            CHECK(kv_get_core_result(&gc, &got_acks, &needed) == want_result);
            CHECK(got_acks == acks && needed == sc.r);
            const rk_object *m = kv_get_core_object(&gc);
            CHECK((m != NULL) == any_ok);
            if (m != NULL)
                CHECK(same_object(m, &expect));
            uint64_t repairs[MAX_N];
            size_t nrep = 0;
            CHECK(kv_get_core_repairs(&gc, repairs, &nrep) == RK_OK);
            CHECK(nrep == want_nrep);
            CHECK(nrep == 0 || memcmp(repairs, want_repairs, nrep * sizeof *repairs) == 0);
            /* After repair every repaired replica would equal the merge. */
            for (size_t k = 0; k < nrep; k++) {
                size_t i = (size_t)(repairs[k] - 1000);
                rk_object fixed = {0};
                if (sc.kind[i] == QUORUM_REPLY_OK)
                    CHECK(object_copy(&fixed, &sc.obj[i]) == RK_OK);
                CHECK(object_merge(&fixed, m, 0, NULL) == RK_OK);
                CHECK(same_object(&fixed, m));
                object_free(&fixed);
            }
            kv_get_core_fini(&gc);
        }
        object_free(&expect);
        scenario_free(&sc);
    }
    printf("# %u rounds: ok %u, not found %u, no quorum %u, with repairs %u, with siblings %u\n",
           RANDOM_ROUNDS, seen_ok, seen_notfound, seen_quorum, seen_repair, seen_siblings);
}

/* The put's verdict and ack sets in random orders. */
static void test_random_put_order_independent(void **state)
{
    (void)state;
    for (unsigned round = 0; round < RANDOM_ROUNDS; round++) {
        size_t n = 1 + rng_below(MAX_N);
        unsigned w = 1 + rng_below((unsigned)n + 1); /* sometimes over n */
        quorum_target targets[MAX_N];
        bool ok[MAX_N];
        unsigned total = 1;
        for (size_t i = 0; i < n; i++) {
            targets[i].node = 1000 + i;
            targets[i].intended = rng_below(3) == 0 ? 2000 + i : targets[i].node;
            ok[i] = i == 0 || rng_below(3) != 0;
            total += i > 0 && ok[i];
        }
        for (int run = 0; run < 4; run++) {
            put_core pc;
            CHECK(kv_put_core_init(&pc, targets, n, targets[0].node, w, 1000) == RK_OK);
            size_t order[MAX_N];
            for (size_t i = 0; i < n; i++)
                order[i] = i;
            for (size_t i = n; i > 1; i--) {
                size_t j = rng_below((unsigned)i), t = order[i - 1];
                order[i - 1] = order[j];
                order[j] = t;
            }
            unsigned acks = 1, errors = 0;
            for (size_t s = 0; s < n; s++) {
                size_t i = order[s];
                if (i == 0)
                    continue;
                kv_put_core_reply(&pc, targets[i].node, ok[i], NULL);
                acks += ok[i];
                errors += !ok[i];
                quorum_verdict want = acks >= w                        ? QUORUM_REACHED
                                      : acks + (n - acks - errors) < w ? QUORUM_FAILED
                                                                       : QUORUM_PENDING;
                CHECK(kv_put_core_verdict(&pc) == want);
            }
            if (w > n)
                CHECK(kv_put_core_verdict(&pc) == QUORUM_FAILED);
            CHECK(kv_put_core_done(&pc));
            unsigned got = 0;
            CHECK(kv_put_core_result(&pc, &got, NULL) == (total >= w ? RK_OK : RK_EQUORUM));
            CHECK(got == total);
            quorum_target fb[MAX_N];
            size_t nfb = kv_put_core_fallbacks(&pc, fb);
            size_t want_fb = 0;
            for (size_t i = 0; i < n; i++)
                if (ok[i] && targets[i].intended != targets[i].node)
                    CHECK(want_fb < nfb && fb[want_fb++].node == targets[i].node);
            CHECK(nfb == want_fb);
        }
    }
}

/* Targeted reads on random replies: whenever every asked target answers,
 * the verdict is the one of asking every target at once, the merge is that
 * of the answers received, and read repair names only targets that
 * answered. The reply order, which asked target answers next, and when
 * the speculative delay passes are random. */
static void test_random_targeted_read(void **state)
{
    (void)state;
    unsigned seen_extra = 0, seen_speculated = 0, seen_unasked = 0, seen_failed = 0;
    for (unsigned round = 0; round < RANDOM_ROUNDS; round++) {
        scenario sc;
        scenario_make(&sc);
        /* The reference verdict: every target asked at once. */
        unsigned total_acks = 0;
        for (size_t i = 0; i < sc.n; i++)
            total_acks += sc.kind[i] != QUORUM_REPLY_ERROR;
        quorum_verdict want = total_acks >= sc.r ? QUORUM_REACHED : QUORUM_FAILED;
        seen_failed += want == QUORUM_FAILED;

        get_core gc = {0};
        CHECK(kv_get_core_init(&gc, sc.nodes, sc.n, sc.r, 1000) == RK_OK);
        size_t first = rng_below((unsigned)sc.n + 2); /* 0 and over n too */
        kv_get_core_target(&gc, first);
        size_t asked = first < sc.r ? sc.r : first;
        if (asked > sc.n)
            asked = sc.n;
        bool answered[MAX_N] = {false};
        size_t n_answered = 0, initial = asked;
        bool speculated = false;
        unsigned errors = 0, acks = 0;
        for (;;) {
            if (!speculated && rng_below(6) == 0) {
                kv_get_core_speculate(&gc);
                speculated = true;
            }
            size_t from = 99;
            size_t more = kv_get_core_to_ask(&gc, &from);
            CHECK(from == asked);
            quorum_verdict v = kv_get_core_verdict(&gc);
            /* What the core must ask: one more per error, all after the
             * delay, nothing once decided. */
            size_t expect_want = speculated ? sc.n : (size_t)sc.r + errors;
            if (expect_want > sc.n)
                expect_want = sc.n;
            size_t expect_more =
                v != QUORUM_PENDING || expect_want <= asked ? 0 : expect_want - asked;
            CHECK(more == expect_more);
            asked += more;
            CHECK(kv_get_core_waiting_on_asked(&gc) == (v == QUORUM_PENDING && asked < sc.n));
            CHECK(kv_get_core_done(&gc) ==
                  ((n_answered == asked && v != QUORUM_PENDING) || n_answered == sc.n));
            /* The next reply: a random asked target that has not answered. */
            size_t open[MAX_N], n_open = 0;
            for (size_t i = 0; i < asked; i++)
                if (!answered[i])
                    open[n_open++] = i;
            if (n_open == 0)
                break;
            size_t i = open[rng_below((unsigned)n_open)];
            bool counted = false;
            CHECK(kv_get_core_reply(&gc, sc.nodes[i], sc.kind[i], &sc.obj[i], &counted) == RK_OK);
            CHECK(counted);
            answered[i] = true;
            n_answered++;
            if (sc.kind[i] == QUORUM_REPLY_ERROR)
                errors++;
            else
                acks++;
        }
        seen_extra += asked > initial && !speculated;
        seen_speculated += speculated && asked > initial;
        seen_unasked += asked < sc.n;

        CHECK(kv_get_core_verdict(&gc) == want);
        CHECK(kv_get_core_done(&gc));
        unsigned got_acks = 0;
        rk_err result = kv_get_core_result(&gc, &got_acks, NULL);
        CHECK(got_acks == acks);
        CHECK((result == RK_EQUORUM) == (want == QUORUM_FAILED));
        if (want == QUORUM_REACHED)
            CHECK(acks >= sc.r);

        /* The merge and the repairs are those of the answers received. */
        rk_object expect = {0};
        bool any_ok = false;
        for (size_t i = 0; i < sc.n; i++) {
            if (!answered[i] || sc.kind[i] != QUORUM_REPLY_OK)
                continue;
            CHECK(object_merge(&expect, &sc.obj[i], 0, NULL) == RK_OK);
            any_ok = true;
        }
        const rk_object *m = kv_get_core_object(&gc);
        CHECK((m != NULL) == any_ok);
        if (m != NULL)
            CHECK(same_object(m, &expect));
        uint64_t want_rep[MAX_N], rep[MAX_N];
        size_t want_nrep = 0, nrep = 99;
        for (size_t i = 0; i < sc.n; i++)
            if (answered[i] && any_ok &&
                (sc.kind[i] == QUORUM_REPLY_NOTFOUND ||
                 (sc.kind[i] == QUORUM_REPLY_OK && !same_object(&sc.obj[i], &expect))))
                want_rep[want_nrep++] = sc.nodes[i];
        CHECK(kv_get_core_repairs(&gc, rep, &nrep) == RK_OK);
        CHECK(nrep == want_nrep);
        CHECK(nrep == 0 || memcmp(rep, want_rep, nrep * sizeof rep[0]) == 0);
        object_free(&expect);
        kv_get_core_fini(&gc);
        scenario_free(&sc);
    }
    printf("# %u rounds: more asked after errors %u, after the delay %u, some never asked %u, "
           "failed %u\n",
           RANDOM_ROUNDS, seen_extra, seen_speculated, seen_unasked, seen_failed);
}

/* ---- latency: the speculative delay ------------------------------------------- */

static void shuffle_u32(uint32_t *v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_below((unsigned)i);
        uint32_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static void test_latency_percentile(void **state)
{
    (void)state;
    uint32_t v[100];
    const struct {
        unsigned p;
        uint32_t want;
    } cases[] = {{99, 99}, {50, 50}, {100, 100}, {1, 1}, {0, 1}, {90, 90}, {150, 100}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (uint32_t i = 0; i < 100; i++)
            v[i] = i + 1;
        shuffle_u32(v, 100);
        assert_int_equal(kv_latency_percentile(v, 100, cases[c].p), cases[c].want);
        for (uint32_t i = 0; i < 100; i++) /* sorted in place */
            assert_int_equal(v[i], i + 1);
    }
    /* Nearest rank on a short array: p50 of 3 is the 2nd, p99 the 3rd. */
    uint32_t three[] = {30, 10, 20};
    assert_int_equal(kv_latency_percentile(three, 3, 50), 20);
    assert_int_equal(kv_latency_percentile(three, 3, 99), 30);
    assert_int_equal(kv_latency_percentile(three, 3, 33), 10);
    assert_int_equal(kv_latency_percentile(three, 3, 34), 20);
    uint32_t one[] = {7};
    assert_int_equal(kv_latency_percentile(one, 1, 50), 7);
    assert_int_equal(kv_latency_percentile(one, 1, 99), 7);
    /* Empty: 0 (and values is not touched). */
    assert_int_equal(kv_latency_percentile(NULL, 0, 99), 0);
    assert_int_equal(kv_latency_percentile(v, 0, 50), 0);
}

static void add_samples(latency_window *w, size_t count, uint32_t us)
{
    for (size_t i = 0; i < count; i++)
        kv_latency_window_add(w, us);
}

static void test_latency_window(void **state)
{
    (void)state;
    latency_window w;
    kv_latency_window_init(&w);
    assert_int_equal(kv_latency_window_delay_us(&w), LATENCY_DELAY_FLOOR_US);

    /* Fast replicas: the floor. */
    add_samples(&w, 3 * LATENCY_WINDOW, 100);
    assert_int_equal(kv_latency_window_delay_us(&w), LATENCY_DELAY_FLOOR_US);

    /* Slow replicas: the delay follows them. */
    add_samples(&w, LATENCY_WINDOW, 10000);
    assert_int_equal(kv_latency_window_delay_us(&w), 10000);

    /* Very slow replicas: capped. */
    add_samples(&w, LATENCY_WINDOW, 1000000);
    assert_int_equal(kv_latency_window_delay_us(&w), LATENCY_DELAY_CEIL_US);

    /* Fast again: old samples leave the window and the floor is back. */
    add_samples(&w, LATENCY_WINDOW, 100);
    assert_int_equal(kv_latency_window_delay_us(&w), LATENCY_DELAY_FLOOR_US);

    /* The floor until LATENCY_REFRESH samples have been seen, however
     * slow; then the percentile. */
    kv_latency_window_init(&w);
    add_samples(&w, LATENCY_REFRESH - 1, 20000);
    assert_int_equal(kv_latency_window_delay_us(&w), LATENCY_DELAY_FLOOR_US);
    kv_latency_window_add(&w, 20000);
    assert_int_equal(kv_latency_window_delay_us(&w), 20000);

    /* p99 of a full window of 128: one slow sample is ignored, two are
     * not (the 127th smallest of 128). */
    kv_latency_window_init(&w);
    add_samples(&w, LATENCY_WINDOW - 1, 100);
    kv_latency_window_add(&w, 30000);
    assert_int_equal(kv_latency_window_delay_us(&w), LATENCY_DELAY_FLOOR_US);
    kv_latency_window_init(&w);
    add_samples(&w, LATENCY_WINDOW - 2, 100);
    add_samples(&w, 2, 30000);
    assert_int_equal(kv_latency_window_delay_us(&w), 30000);

    /* Between floor and ceiling the value is kept as it is. */
    kv_latency_window_init(&w);
    add_samples(&w, LATENCY_WINDOW, LATENCY_DELAY_FLOOR_US + 1);
    assert_int_equal(kv_latency_window_delay_us(&w), LATENCY_DELAY_FLOOR_US + 1);
    kv_latency_window_init(&w);
    add_samples(&w, LATENCY_WINDOW, LATENCY_DELAY_CEIL_US);
    assert_int_equal(kv_latency_window_delay_us(&w), LATENCY_DELAY_CEIL_US);
}

int main(void)
{
    test_seed = rng_seed_from_env("test_quorum");

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_reached_at_rth_reply),
        cmocka_unit_test(test_get_notfound_counts),
        cmocka_unit_test(test_get_errors_fail_when_impossible),
        cmocka_unit_test(test_get_init),
        cmocka_unit_test(test_get_ignores_duplicate_unknown_late),
        cmocka_unit_test(test_get_merge_and_repair),
        cmocka_unit_test(test_get_concurrent_siblings),
        cmocka_unit_test(test_get_tombstone),
        cmocka_unit_test(test_get_equal_clock_different_siblings),
        cmocka_unit_test(test_put_reached),
        cmocka_unit_test(test_put_fails_when_impossible),
        cmocka_unit_test(test_put_fallbacks),
        cmocka_unit_test(test_select_cases),
        cmocka_unit_test(test_select_exhaustive),
        cmocka_unit_test(test_join_union),
        cmocka_unit_test(test_join_quorums_intersect),
        cmocka_unit_test(test_random_order_independent),
        cmocka_unit_test(test_random_put_order_independent),
        cmocka_unit_test(test_quorum_needed),
        cmocka_unit_test(test_plan_one_ring),
        cmocka_unit_test(test_plan_two_rings),
        cmocka_unit_test(test_plan_invalid),
        cmocka_unit_test(test_read_order),
        cmocka_unit_test(test_applier_order),
        cmocka_unit_test(test_attempt_deadline),
        cmocka_unit_test(test_put_missed),
        cmocka_unit_test(test_get_targeted_ok),
        cmocka_unit_test(test_get_targeted_errors),
        cmocka_unit_test(test_get_targeted_speculate),
        cmocka_unit_test(test_get_targeted_repairs),
        cmocka_unit_test(test_random_targeted_read),
        cmocka_unit_test(test_latency_percentile),
        cmocka_unit_test(test_latency_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
