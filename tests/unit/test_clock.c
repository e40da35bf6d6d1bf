/* test_clock.c - version vectors, objects and contexts: cases, laws, faults. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringkv.pb-c.h"
#include "ringkv/clock.h"

/* ---- allocation faults -------------------------------------------------
 *
 * Every allocation failure must return RK_ENOMEM and leave the inputs as
 * they were, so the test replaces malloc and friends (glibc lets a program
 * do that) with versions that can fail the n-th call and that count live
 * blocks, and then fails each allocation of an operation in turn, as
 * SQLite's *fault.test do. AddressSanitizer owns malloc itself, so under
 * it these tests are skipped; the plain build runs them. */

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer) ||                           \
    __has_feature(memory_sanitizer)
#define FAULTS 0
#else
#define FAULTS 1
#endif

static long fault_countdown = -1; /* fail when it reaches 0; -1: never */
static bool fault_hit;
static long live_blocks;

#if FAULTS
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);

static bool inject(void)
{
    if (fault_countdown < 0 || fault_countdown-- > 0)
        return false;
    fault_hit = true;
    return true;
}

void *malloc(size_t size)
{
    void *p = inject() ? NULL : __libc_malloc(size);
    live_blocks += p != NULL;
    return p;
}

void *calloc(size_t n, size_t size)
{
    void *p = inject() ? NULL : __libc_calloc(n, size);
    live_blocks += p != NULL;
    return p;
}

void *realloc(void *old, size_t size)
{
    void *p = inject() ? NULL : __libc_realloc(old, size);
    live_blocks += old == NULL && p != NULL;
    return p;
}

void free(void *p)
{
    live_blocks -= p != NULL;
    __libc_free(p);
}
#endif

static void arm_fault(long n)
{
    fault_hit = false;
    fault_countdown = n;
}

static void disarm_fault(void)
{
    fault_countdown = -1;
}

/* ---- helpers ------------------------------------------------------------ */

/* Actor ids spread over the 64-bit range so fixed64 encoding and unsigned
 * ordering are both exercised. */
static const rk_actor A = 0x00000000000000a1ULL;
static const rk_actor B = 0x7f000000000000b2ULL;
static const rk_actor C = 0xffffffffffffffc3ULL;

/* A clock from (actor, counter) pairs in any order: CLOCK({A, 1}, {B, 2}). */
static vclock clock_of(const uint64_t (*pairs)[2], size_t n)
{
    vclock c = {0};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(vclock_advance(&c, pairs[i][0], pairs[i][1]), RK_OK);
    return c;
}

#define CLOCK(...)                                                                                 \
    clock_of((const uint64_t[][2]){__VA_ARGS__},                                                   \
             sizeof((const uint64_t[][2]){__VA_ARGS__}) / sizeof(uint64_t[2]))

static void encode_to(const rk_object *o, rk_buf *b)
{
    rk_buf_reset(b);
    assert_int_equal(object_encode(o, b), RK_OK);
}

static bool same_object(const rk_object *x, const rk_object *y)
{
    rk_buf bx = {0}, by = {0};
    encode_to(x, &bx);
    encode_to(y, &by);
    bool same = bx.len == by.len && (bx.len == 0 || memcmp(bx.data, by.data, bx.len) == 0);
    rk_buf_free(&bx);
    rk_buf_free(&by);
    return same;
}

/* A write of a JSON value with no cap; returns the new dot. */
static clock_dot put(rk_object *o, const vclock *ctx, rk_actor actor, const char *value,
                     uint64_t ts)
{
    object_write w = {
        .value = value, .value_len = strlen(value), .owner = "alice", .timestamp_ms = ts};
    clock_dot dot = {0};
    assert_int_equal(object_update(o, ctx, actor, &w, 0, NULL, &dot), RK_OK);
    return dot;
}

static clock_dot put_tombstone(rk_object *o, const vclock *ctx, rk_actor actor, uint64_t ts)
{
    object_write w = {.tombstone = true, .timestamp_ms = ts};
    clock_dot dot = {0};
    assert_int_equal(object_update(o, ctx, actor, &w, 0, NULL, &dot), RK_OK);
    return dot;
}

static const sibling *find_sibling(const rk_object *o, clock_dot dot)
{
    for (size_t i = 0; i < o->len; i++)
        if (o->siblings[i].dot.actor == dot.actor && o->siblings[i].dot.counter == dot.counter)
            return &o->siblings[i];
    return NULL;
}

static bool dot_less(clock_dot a, clock_dot b)
{
    return a.actor < b.actor || (a.actor == b.actor && a.counter < b.counter);
}

/* The invariants of clock.h, checked from outside. */
static bool invariants_hold(const rk_object *o)
{
    for (size_t i = 0; i < o->clock.len; i++) {
        if (o->clock.entries[i].counter == 0)
            return false;
        if (i > 0 && o->clock.entries[i - 1].actor >= o->clock.entries[i].actor)
            return false;
    }
    for (size_t i = 0; i < o->len; i++) {
        const sibling *s = &o->siblings[i];
        if (s->dot.counter == 0 || !vclock_covers(&o->clock, s->dot))
            return false;
        if (i > 0 && !dot_less(o->siblings[i - 1].dot, s->dot))
            return false;
        if (s->tombstone ? s->value != NULL : s->value == NULL || s->value[s->value_len] != '\0')
            return false;
        if (s->owner == NULL)
            return false;
    }
    return true;
}

/* ---- version vectors ---------------------------------------------------- */

static void test_vclock_compare(void **state)
{
    (void)state;
    vclock empty = {0};
    vclock a = CLOCK({A, 1}, {B, 2});
    vclock a2 = CLOCK({B, 2}, {A, 1});
    vclock later = CLOCK({A, 2}, {B, 2});
    vclock wider = CLOCK({A, 1}, {B, 2}, {C, 1});
    vclock other = CLOCK({A, 2}, {B, 1});
    vclock only_c = CLOCK({C, 5});

    assert_int_equal(vclock_compare(&empty, &empty), VCLOCK_EQUAL);
    assert_int_equal(vclock_compare(&a, &a2), VCLOCK_EQUAL);
    assert_int_equal(vclock_compare(&a, &later), VCLOCK_BEFORE);
    assert_int_equal(vclock_compare(&later, &a), VCLOCK_AFTER);
    assert_int_equal(vclock_compare(&a, &wider), VCLOCK_BEFORE); /* missing actor = 0 */
    assert_int_equal(vclock_compare(&wider, &a), VCLOCK_AFTER);
    assert_int_equal(vclock_compare(&empty, &a), VCLOCK_BEFORE);
    assert_int_equal(vclock_compare(&a, &empty), VCLOCK_AFTER);
    assert_int_equal(vclock_compare(&a, &other), VCLOCK_CONCURRENT);
    assert_int_equal(vclock_compare(&later, &wider), VCLOCK_CONCURRENT);
    assert_int_equal(vclock_compare(&a, &only_c), VCLOCK_CONCURRENT);

    vclock *all[] = {&a, &a2, &later, &wider, &other, &only_c};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        vclock_free(all[i]);
}

static void test_vclock_increment_advance(void **state)
{
    (void)state;
    vclock c = {0};
    uint64_t n = 0;
    assert_int_equal(vclock_increment(&c, B, &n), RK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(vclock_increment(&c, B, &n), RK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(vclock_increment(&c, A, &n), RK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(vclock_get(&c, B), 2);
    assert_int_equal(vclock_get(&c, C), 0);

    /* advance never lowers, and a zero counter adds no entry */
    assert_int_equal(vclock_advance(&c, B, 1), RK_OK);
    assert_int_equal(vclock_get(&c, B), 2);
    assert_int_equal(vclock_advance(&c, C, 0), RK_OK);
    assert_int_equal(c.len, 2);
    assert_int_equal(vclock_advance(&c, C, 7), RK_OK);
    assert_int_equal(c.len, 3);
    /* entries are sorted by actor however they were added */
    assert_true(c.entries[0].actor == A && c.entries[1].actor == B && c.entries[2].actor == C);

    /* a counter that would wrap is refused and leaves the clock alone */
    assert_int_equal(vclock_advance(&c, A, UINT64_MAX), RK_OK);
    n = 42;
    assert_int_equal(vclock_increment(&c, A, &n), RK_EINVAL);
    assert_int_equal(n, 42);
    assert_true(vclock_get(&c, A) == UINT64_MAX);
    vclock_free(&c);
    assert_null(c.entries);
    assert_int_equal(c.len, 0);
}

static void test_vclock_join(void **state)
{
    (void)state;
    vclock a = CLOCK({A, 3}, {C, 1});
    vclock b = CLOCK({A, 1}, {B, 4}, {C, 2});
    vclock empty = {0};
    assert_int_equal(vclock_join(&a, &b), RK_OK);
    vclock want = CLOCK({A, 3}, {B, 4}, {C, 2});
    assert_int_equal(vclock_compare(&a, &want), VCLOCK_EQUAL);
    assert_int_equal(a.len, 3);

    assert_int_equal(vclock_join(&a, &empty), RK_OK); /* identity */
    assert_int_equal(vclock_compare(&a, &want), VCLOCK_EQUAL);
    assert_int_equal(vclock_join(&a, &a), RK_OK); /* self */
    assert_int_equal(vclock_compare(&a, &want), VCLOCK_EQUAL);
    assert_int_equal(vclock_join(&empty, &b), RK_OK);
    assert_int_equal(vclock_compare(&empty, &b), VCLOCK_EQUAL);

    /* disjoint actors interleave in order */
    vclock x = CLOCK({B, 1}), y = CLOCK({A, 1}, {C, 1});
    assert_int_equal(vclock_join(&x, &y), RK_OK);
    assert_int_equal(x.len, 3);
    assert_true(x.entries[0].actor == A && x.entries[1].actor == B && x.entries[2].actor == C);

    vclock *all[] = {&a, &b, &empty, &want, &x, &y};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        vclock_free(all[i]);
}

static void test_vclock_covers_copy_remove(void **state)
{
    (void)state;
    vclock c = CLOCK({A, 3}, {B, 1});
    assert_true(vclock_covers(&c, (clock_dot){A, 3}));
    assert_true(vclock_covers(&c, (clock_dot){A, 1}));
    assert_false(vclock_covers(&c, (clock_dot){A, 4}));
    assert_false(vclock_covers(&c, (clock_dot){C, 1}));

    vclock d = CLOCK({C, 9}); /* copy overwrites what d held */
    assert_int_equal(vclock_copy(&d, &c), RK_OK);
    assert_int_equal(vclock_compare(&d, &c), VCLOCK_EQUAL);
    assert_ptr_not_equal(d.entries, c.entries);
    assert_int_equal(vclock_copy(&d, &d), RK_OK);
    assert_int_equal(vclock_compare(&d, &c), VCLOCK_EQUAL);

    vclock_remove(&d, A);
    assert_int_equal(d.len, 1);
    assert_int_equal(vclock_get(&d, A), 0);
    vclock_remove(&d, C); /* absent: no-op */
    assert_int_equal(d.len, 1);
    vclock empty = {0};
    assert_int_equal(vclock_copy(&d, &empty), RK_OK);
    assert_int_equal(d.len, 0);
    vclock_free(&c);
    vclock_free(&d);
}

/* ---- writes --------------------------------------------------------------- */

static void test_update_blind(void **state)
{
    (void)state;
    rk_object o = {0};
    clock_dot d1 = put(&o, NULL, A, "1", 100);
    assert_true(d1.actor == A && d1.counter == 1);
    assert_int_equal(o.len, 1);
    assert_string_equal(o.siblings[0].value, "1");
    assert_string_equal(o.siblings[0].owner, "alice");

    /* a blind write follows this replica's clock: it replaces everything */
    clock_dot d2 = put(&o, NULL, A, "2", 101);
    assert_int_equal(d2.counter, 2);
    assert_int_equal(o.len, 1);
    assert_string_equal(o.siblings[0].value, "2");
    vclock want = CLOCK({A, 2});
    assert_int_equal(vclock_compare(&o.clock, &want), VCLOCK_EQUAL);
    assert_true(invariants_hold(&o));

    /* an empty context is not "no context": it covers nothing */
    vclock none = {0};
    put(&o, &none, A, "3", 102);
    assert_int_equal(o.len, 2);
    assert_true(invariants_hold(&o));

    /* a NULL value with a length is refused, obj untouched */
    object_write bad = {.value = NULL, .value_len = 3};
    assert_int_equal(object_update(&o, NULL, A, &bad, 0, NULL, NULL), RK_EINVAL);
    assert_int_equal(o.len, 2);
    vclock_free(&want);
    object_free(&o);
}

static void test_update_same_context_both_survive(void **state)
{
    (void)state;
    rk_object o = {0};
    put(&o, NULL, A, "\"v1\"", 100);
    vclock ctx = {0};
    assert_int_equal(vclock_copy(&ctx, &o.clock), RK_OK); /* a read */

    clock_dot x = put(&o, &ctx, A, "\"x\"", 110);
    clock_dot y = put(&o, &ctx, A, "\"y\"", 105);
    assert_int_equal(o.len, 2); /* v1 is gone, x and y are concurrent */
    assert_non_null(find_sibling(&o, x));
    assert_non_null(find_sibling(&o, y));
    assert_null(find_sibling(&o, (clock_dot){A, 1}));
    assert_true(invariants_hold(&o));

    /* a write with the context of a read resolves the siblings into one */
    vclock read = {0};
    assert_int_equal(vclock_copy(&read, &o.clock), RK_OK);
    clock_dot z = put(&o, &read, A, "\"z\"", 120);
    assert_int_equal(o.len, 1);
    assert_non_null(find_sibling(&o, z));

    /* a stale context (from before x and y) keeps what it did not see */
    put(&o, &ctx, A, "\"stale\"", 130);
    assert_int_equal(o.len, 2);
    assert_non_null(find_sibling(&o, z));
    vclock_free(&ctx);
    vclock_free(&read);
    object_free(&o);
}

static void test_update_through_two_replicas(void **state)
{
    (void)state;
    rk_object ra = {0}, rb = {0};
    put(&ra, NULL, A, "\"v1\"", 100);
    assert_int_equal(object_merge(&rb, &ra, 0, NULL), RK_OK); /* replication */
    assert_true(same_object(&ra, &rb));
    vclock ctx = {0};
    assert_int_equal(vclock_copy(&ctx, &ra.clock), RK_OK);

    clock_dot x = put(&ra, &ctx, A, "\"x\"", 110);
    clock_dot y = put(&rb, &ctx, B, "\"y\"", 111);
    assert_int_equal(object_merge(&ra, &rb, 0, NULL), RK_OK);
    assert_int_equal(object_merge(&rb, &ra, 0, NULL), RK_OK);
    assert_true(same_object(&ra, &rb));
    assert_int_equal(ra.len, 2);
    assert_non_null(find_sibling(&ra, x));
    assert_non_null(find_sibling(&ra, y));
    assert_string_equal(object_winner(&ra)->value, "\"y\"");

    /* a context from replica B, written at replica A before A has merged:
     * the clock takes in the context, so B's sibling is dropped later */
    rk_object ra2 = {0}, rb2 = {0};
    put(&rb2, NULL, B, "\"b\"", 100);
    put(&ra2, NULL, A, "\"a\"", 100);
    vclock from_b = {0};
    assert_int_equal(vclock_copy(&from_b, &rb2.clock), RK_OK);
    clock_dot w = put(&ra2, &from_b, A, "\"w\"", 120);
    assert_int_equal(ra2.len, 2); /* "a" was not in the context */
    assert_int_equal(object_merge(&ra2, &rb2, 0, NULL), RK_OK);
    assert_int_equal(ra2.len, 2);
    assert_null(find_sibling(&ra2, (clock_dot){B, 1}));
    assert_non_null(find_sibling(&ra2, w));

    vclock_free(&ctx);
    vclock_free(&from_b);
    object_free(&ra);
    object_free(&rb);
    object_free(&ra2);
    object_free(&rb2);
}

static void test_update_cap(void **state)
{
    (void)state;
    rk_object o = {0};
    vclock none = {0};
    object_write w = {.value = "1", .value_len = 1, .owner = "", .timestamp_ms = 30};
    size_t dropped = 99;
    assert_int_equal(object_update(&o, &none, A, &w, 2, &dropped, NULL), RK_OK);
    assert_int_equal(dropped, 0);
    w.timestamp_ms = 10;
    assert_int_equal(object_update(&o, &none, A, &w, 2, &dropped, NULL), RK_OK);
    w.timestamp_ms = 20;
    clock_dot third;
    assert_int_equal(object_update(&o, &none, A, &w, 2, &dropped, &third), RK_OK);
    assert_int_equal(dropped, 1);
    assert_int_equal(o.siblings_dropped, 1);
    assert_int_equal(o.len, 2);
    assert_null(find_sibling(&o, (clock_dot){A, 2}));        /* the oldest, ts 10 */
    assert_true(vclock_covers(&o.clock, (clock_dot){A, 2})); /* stays covered */
    assert_true(invariants_hold(&o));

    /* equal timestamps: the smallest (actor, counter) goes first (the new
     * write, A at ts 60, is never a candidate) */
    rk_object t = {0};
    w.timestamp_ms = 50;
    assert_int_equal(object_update(&t, &none, C, &w, 2, NULL, NULL), RK_OK);
    assert_int_equal(object_update(&t, &none, B, &w, 2, NULL, NULL), RK_OK);
    w.timestamp_ms = 60;
    assert_int_equal(object_update(&t, &none, A, &w, 2, &dropped, NULL), RK_OK);
    assert_int_equal(dropped, 1);
    assert_int_equal(t.len, 2);
    assert_null(find_sibling(&t, (clock_dot){B, 1}));
    assert_non_null(find_sibling(&t, (clock_dot){C, 1}));
    assert_non_null(find_sibling(&t, (clock_dot){A, 1}));
    object_free(&o);
    object_free(&t);
}

/* A coordinator whose wall clock runs behind writes the "oldest" sibling:
 * the cap must drop another one, or an acknowledged write would be
 * unreadable at once. */
static void test_update_cap_spares_new_write(void **state)
{
    (void)state;
    rk_object o = {0};
    vclock none = {0};
    object_write w = {.value = "1", .value_len = 1, .owner = "", .timestamp_ms = 100};
    assert_int_equal(object_update(&o, &none, A, &w, 2, NULL, NULL), RK_OK);
    w.timestamp_ms = 200;
    assert_int_equal(object_update(&o, &none, B, &w, 2, NULL, NULL), RK_OK);
    w.timestamp_ms = 50;
    size_t dropped = 0;
    clock_dot mine;
    assert_int_equal(object_update(&o, &none, C, &w, 2, &dropped, &mine), RK_OK);
    assert_int_equal(dropped, 1);
    assert_int_equal(o.len, 2);
    assert_non_null(find_sibling(&o, mine));          /* the write survives */
    assert_null(find_sibling(&o, (clock_dot){A, 1})); /* the oldest other */
    assert_non_null(find_sibling(&o, (clock_dot){B, 1}));
    assert_true(invariants_hold(&o));
    object_free(&o);
}

static void test_cap_drop_stays_dropped(void **state)
{
    (void)state;
    rk_object ra = {0}, rb = {0};
    vclock none = {0};
    put(&ra, &none, A, "\"old\"", 10);
    put(&ra, &none, A, "\"mid\"", 30);
    assert_int_equal(object_copy(&rb, &ra), RK_OK);
    object_write w = {.value = "\"new\"", .value_len = 5, .timestamp_ms = 40};
    size_t dropped = 0;
    assert_int_equal(object_update(&ra, &none, A, &w, 2, &dropped, NULL), RK_OK);
    assert_int_equal(dropped, 1);

    /* rb still holds (A,1); ra has seen and dropped it: it does not return */
    assert_int_equal(object_merge(&ra, &rb, 2, &dropped), RK_OK);
    assert_int_equal(dropped, 0);
    assert_null(find_sibling(&ra, (clock_dot){A, 1}));
    assert_int_equal(object_merge(&rb, &ra, 2, &dropped), RK_OK);
    assert_null(find_sibling(&rb, (clock_dot){A, 1}));
    assert_true(same_object(&ra, &rb));
    assert_int_equal(rb.siblings_dropped, 1); /* max of both sides, not a sum */
    object_free(&ra);
    object_free(&rb);
}

static void test_merge_cap_counts(void **state)
{
    (void)state;
    rk_object ra = {0}, rb = {0};
    put(&ra, NULL, A, "\"a\"", 10);
    put(&rb, NULL, B, "\"b\"", 20);
    size_t dropped = 0;
    assert_int_equal(object_merge(&ra, &rb, 1, &dropped), RK_OK);
    assert_int_equal(dropped, 1);
    assert_int_equal(ra.len, 1);
    assert_true(ra.siblings[0].dot.actor == B);
    assert_int_equal(ra.siblings_dropped, 1);
    assert_true(vclock_covers(&ra.clock, (clock_dot){A, 1}));
    object_free(&ra);
    object_free(&rb);
}

static void test_winner(void **state)
{
    (void)state;
    rk_object o = {0};
    assert_null(object_winner(&o));
    assert_null(object_live_winner(&o));
    assert_int_equal(object_live_count(&o), 0);

    vclock none = {0};
    put(&o, &none, A, "\"a\"", 100);
    put(&o, &none, B, "\"b\"", 100); /* same time: greater actor wins */
    put(&o, &none, A, "\"a2\"", 90);
    assert_string_equal(object_winner(&o)->value, "\"b\"");
    put(&o, &none, A, "\"a3\"", 100); /* same time, smaller actor */
    assert_string_equal(object_winner(&o)->value, "\"b\"");
    assert_int_equal(object_live_count(&o), 4);

    put_tombstone(&o, &none, C, 200);
    const sibling *w = object_winner(&o);
    assert_true(w->tombstone && w->dot.actor == C);
    assert_null(w->value);
    assert_string_equal(object_live_winner(&o)->value, "\"b\"");
    assert_int_equal(object_live_count(&o), 4);

    /* a delete with the read's context leaves only the tombstone: 404 */
    vclock read = {0};
    assert_int_equal(vclock_copy(&read, &o.clock), RK_OK);
    put_tombstone(&o, &read, A, 300);
    assert_int_equal(o.len, 1);
    assert_int_equal(object_live_count(&o), 0);
    assert_null(object_live_winner(&o));
    assert_non_null(object_winner(&o));

    rk_object t = {0};
    put(&t, &none, A, "\"x\"", 100);
    put(&t, &none, A, "\"y\"", 100);
    assert_string_equal(object_winner(&t)->value, "\"y\"");
    vclock_free(&read);
    object_free(&o);
    object_free(&t);
}

static void test_prune_actor(void **state)
{
    (void)state;
    rk_object o = {0};
    put(&o, NULL, A, "\"a\"", 1);
    vclock ctx = CLOCK({C, 4}, {A, 1});
    put(&o, &ctx, B, "\"b\"", 2); /* clock gains C:4, no sibling of C */
    assert_int_equal(vclock_get(&o.clock, C), 4);
    assert_false(object_prune_actor(&o, B)); /* (B,1) still needs B */
    assert_int_equal(vclock_get(&o.clock, B), 1);
    assert_true(object_prune_actor(&o, C));
    assert_int_equal(vclock_get(&o.clock, C), 0);
    assert_false(object_prune_actor(&o, C)); /* nothing left to prune */
    assert_true(object_prune_actor(&o, A));  /* (A,1) was overwritten */
    assert_int_equal(o.clock.len, 1);
    assert_true(invariants_hold(&o));
    vclock_free(&ctx);
    object_free(&o);
}

static void test_object_copy(void **state)
{
    (void)state;
    rk_object o = {0}, c = {0};
    vclock none = {0};
    put(&o, &none, A, "\"a\"", 1);
    put_tombstone(&o, &none, B, 2);
    o.siblings_dropped = 7;
    put(&c, NULL, C, "\"overwritten\"", 3);
    assert_int_equal(object_copy(&c, &o), RK_OK);
    assert_true(same_object(&c, &o));
    assert_ptr_not_equal(c.siblings[0].value, o.siblings[0].value);
    assert_int_equal(c.siblings_dropped, 7);
    object_free(&o);
    assert_int_equal(c.len, 2); /* independent of o */
    object_free(&c);
    object_free(&c); /* freeing twice is harmless: free leaves it empty */
}

/* ---- encoding ------------------------------------------------------------ */

static void test_encode_roundtrip(void **state)
{
    (void)state;
    rk_object o = {0}, back = {0};
    vclock none = {0};
    put(&o, &none, C, "{\"k\":[1,2]}", 1700000000000ULL);
    put(&o, &none, A, "", 5); /* empty value, not a tombstone */
    put_tombstone(&o, &none, B, 6);
    object_write w = {.value = "\"x\"", .value_len = 3, .owner = NULL, .timestamp_ms = 7};
    assert_int_equal(object_update(&o, &none, B, &w, 0, NULL, NULL), RK_OK);
    o.siblings_dropped = 12345;

    rk_buf b = {0};
    encode_to(&o, &b);
    assert_int_equal(object_decode((const uint8_t *)b.data, b.len, &back), RK_OK);
    assert_true(same_object(&o, &back));
    assert_true(invariants_hold(&back));
    assert_int_equal(back.siblings_dropped, 12345);
    const sibling *e = find_sibling(&back, (clock_dot){A, 1});
    assert_non_null(e);
    assert_false(e->tombstone);
    assert_int_equal(e->value_len, 0);
    assert_string_equal(e->value, "");
    const sibling *t = find_sibling(&back, (clock_dot){B, 1});
    assert_true(t->tombstone);
    assert_null(t->value);
    assert_string_equal(find_sibling(&back, (clock_dot){B, 2})->owner, "");

    /* encode appends */
    rk_buf two = {0};
    assert_int_equal(rk_buf_appends(&two, "xy"), RK_OK);
    assert_int_equal(object_encode(&o, &two), RK_OK);
    assert_int_equal(two.len, b.len + 2);
    assert_memory_equal(two.data + 2, b.data, b.len);

    /* the empty object encodes to nothing and back */
    rk_object empty = {0}, empty_back = {0};
    encode_to(&empty, &b);
    assert_int_equal(b.len, 0);
    assert_int_equal(object_decode((const uint8_t *)"", 0, &empty_back), RK_OK);
    assert_int_equal(empty_back.len, 0);
    assert_int_equal(empty_back.clock.len, 0);

    rk_buf_free(&b);
    rk_buf_free(&two);
    object_free(&o);
    object_free(&back);
}

typedef struct raw_sibling {
    uint64_t actor, counter;
    const char *value;
    bool tombstone;
} raw_sibling;

/* Packs a ringkv.Object as any writer might, invariants or not. */
static void pack_raw(const uint64_t (*clock)[2], size_t nc, const raw_sibling *sibs, size_t ns,
                     rk_buf *out)
{
    Ringkv__ClockEntry ce[8], *cp[8];
    Ringkv__Sibling se[8], *sp[8];
    assert_true(nc <= 8 && ns <= 8);
    for (size_t i = 0; i < nc; i++) {
        ringkv__clock_entry__init(&ce[i]);
        ce[i].actor = clock[i][0];
        ce[i].counter = clock[i][1];
        cp[i] = &ce[i];
    }
    for (size_t i = 0; i < ns; i++) {
        ringkv__sibling__init(&se[i]);
        se[i].actor = sibs[i].actor;
        se[i].counter = sibs[i].counter;
        se[i].tombstone = sibs[i].tombstone;
        if (sibs[i].value) {
            se[i].value.data = (uint8_t *)sibs[i].value;
            se[i].value.len = strlen(sibs[i].value);
        }
        sp[i] = &se[i];
    }
    Ringkv__Object msg = RINGKV__OBJECT__INIT;
    msg.n_clock = nc;
    msg.clock = cp;
    msg.n_siblings = ns;
    msg.siblings = sp;
    rk_buf_reset(out);
    assert_int_equal(rk_buf_reserve(out, ringkv__object__get_packed_size(&msg)), RK_OK);
    out->len = ringkv__object__pack(&msg, (uint8_t *)out->data);
}

static rk_err decode_raw(const uint64_t (*clock)[2], size_t nc, const raw_sibling *sibs, size_t ns)
{
    rk_buf b = {0};
    pack_raw(clock, nc, sibs, ns, &b);
    rk_object o = {0};
    rk_err err = object_decode((const uint8_t *)b.data, b.len, &o);
    if (err == RK_OK)
        assert_true(invariants_hold(&o));
    else
        assert_true(o.len == 0 && o.siblings == NULL && o.clock.entries == NULL);
    object_free(&o);
    rk_buf_free(&b);
    return err;
}

static void test_decode_rejects(void **state)
{
    (void)state;
    const uint64_t good[][2] = {{A, 2}, {B, 1}};
    const raw_sibling two[] = {{B, 1, "\"b\"", false}, {A, 2, "\"a\"", false}};
    /* the positive control: unsorted siblings are fine, they get sorted */
    assert_int_equal(decode_raw(good, 2, two, 2), RK_OK);

    const uint64_t unsorted[][2] = {{B, 1}, {A, 2}};
    assert_int_equal(decode_raw(unsorted, 2, two, 2), RK_ECORRUPT);
    const uint64_t dup_actor[][2] = {{A, 2}, {A, 3}};
    assert_int_equal(decode_raw(dup_actor, 2, NULL, 0), RK_ECORRUPT);
    const uint64_t zero[][2] = {{A, 2}, {B, 0}};
    assert_int_equal(decode_raw(zero, 2, NULL, 0), RK_ECORRUPT);

    const raw_sibling uncovered[] = {{A, 3, "1", false}};
    assert_int_equal(decode_raw(good, 2, uncovered, 1), RK_ECORRUPT);
    const raw_sibling unknown_actor[] = {{C, 1, "1", false}};
    assert_int_equal(decode_raw(good, 2, unknown_actor, 1), RK_ECORRUPT);
    const raw_sibling dup[] = {{A, 1, "1", false}, {B, 1, "2", false}, {A, 1, "3", false}};
    assert_int_equal(decode_raw(good, 2, dup, 3), RK_ECORRUPT);
    const raw_sibling zero_dot[] = {{A, 0, "1", false}};
    assert_int_equal(decode_raw(good, 2, zero_dot, 1), RK_ECORRUPT);
    const raw_sibling valued_tombstone[] = {{A, 1, "1", true}};
    assert_int_equal(decode_raw(good, 2, valued_tombstone, 1), RK_ECORRUPT);

    /* bytes that are not protobuf at all, and a truncated encoding */
    rk_object o = {0};
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(object_decode(garbage, sizeof garbage, &o), RK_ECORRUPT);
    const uint8_t wrong_type[] = {0x0d, 0x01}; /* field 1 as fixed32, cut short */
    assert_int_equal(object_decode(wrong_type, sizeof wrong_type, &o), RK_ECORRUPT);
    rk_buf b = {0};
    pack_raw(good, 2, two, 2, &b);
    for (size_t cut = 1; cut < b.len; cut++) {
        rk_err err = object_decode((const uint8_t *)b.data, b.len - cut, &o);
        if (err == RK_OK) { /* a cut on a field boundary can still be valid */
            assert_true(invariants_hold(&o));
            object_free(&o);
        } else {
            assert_int_equal(err, RK_ECORRUPT);
        }
    }
    assert_null(o.siblings);
    rk_buf_free(&b);
}

/* ---- contexts --------------------------------------------------------- */

static void test_context_roundtrip(void **state)
{
    (void)state;
    rk_buf text = {0};
    vclock empty = {0}, back = {0};
    assert_int_equal(context_encode(&empty, &text), RK_OK);
    assert_int_equal(text.len, 0); /* the empty clock is "" ... */
    assert_int_equal(context_decode("", 0, &back), RK_OK);
    assert_int_equal(back.len, 0); /* ... and "" is the empty clock */

    vclock c = CLOCK({A, 1}, {B, 300}, {C, UINT64_MAX});
    assert_int_equal(context_encode(&c, &text), RK_OK);
    assert_true(text.len > 0);
    for (size_t i = 0; i < text.len; i++) {
        char ch = text.data[i];
        assert_true((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_');
    }
    assert_int_equal(context_decode(text.data, text.len, &back), RK_OK);
    assert_int_equal(vclock_compare(&c, &back), VCLOCK_EQUAL);
    assert_int_equal(back.len, 3);

    /* appends after what out already holds */
    rk_buf two = {0};
    assert_int_equal(rk_buf_appends(&two, "ctx="), RK_OK);
    assert_int_equal(context_encode(&c, &two), RK_OK);
    assert_string_equal(two.data + 4, text.data);

    vclock_free(&c);
    vclock_free(&back);
    rk_buf_free(&text);
    rk_buf_free(&two);
}

static void pack_context(const uint64_t (*clock)[2], size_t n, rk_buf *text)
{
    Ringkv__ClockEntry ce[4], *cp[4];
    for (size_t i = 0; i < n; i++) {
        ringkv__clock_entry__init(&ce[i]);
        ce[i].actor = clock[i][0];
        ce[i].counter = clock[i][1];
        cp[i] = &ce[i];
    }
    Ringkv__Context msg = RINGKV__CONTEXT__INIT;
    msg.n_clock = n;
    msg.clock = cp;
    uint8_t bin[128];
    size_t len = ringkv__context__pack(&msg, bin);
    rk_buf_reset(text);
    assert_int_equal(rk_b64url_encode(bin, len, text), RK_OK);
}

static void test_context_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "!!!!", "a",  "abc=", "ab+/",   "ab cd",
        "AQ==", "/w", "%41",  "_____w", /* base64url fine, protobuf not (varint runs off the end) */
    };
    vclock c = {0};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(context_decode(bad[i], strlen(bad[i]), &c), RK_EINVAL);
        assert_null(c.entries);
    }
    rk_buf text = {0};
    const uint64_t unsorted[][2] = {{B, 1}, {A, 1}};
    pack_context(unsorted, 2, &text);
    assert_int_equal(context_decode(text.data, text.len, &c), RK_EINVAL);
    const uint64_t zero[][2] = {{A, 0}};
    pack_context(zero, 1, &text);
    assert_int_equal(context_decode(text.data, text.len, &c), RK_EINVAL);
    const uint64_t dup[][2] = {{A, 1}, {A, 2}};
    pack_context(dup, 2, &text);
    assert_int_equal(context_decode(text.data, text.len, &c), RK_EINVAL);
    const uint64_t fine[][2] = {{A, 1}, {C, 2}};
    pack_context(fine, 2, &text);
    assert_int_equal(context_decode(text.data, text.len, &c), RK_OK);
    assert_int_equal(c.len, 2);
    /* the text must be used whole: a trailing character makes it invalid */
    vclock d = {0};
    assert_int_equal(rk_buf_appends(&text, "!"), RK_OK);
    assert_int_equal(context_decode(text.data, text.len, &d), RK_EINVAL);
    vclock_free(&c);
    rk_buf_free(&text);
}

/* ---- allocation faults ----------------------------------------------------- */

typedef struct fixture {
    rk_object a, b, out;
    vclock c1, c2, out_clock;
    rk_buf buf, bytes, text;
} fixture;

static void fixture_setup(fixture *f)
{
    *f = (fixture){0};
    vclock none = {0};
    put(&f->a, NULL, A, "\"a1\"", 10);
    put(&f->a, &none, B, "\"b1\"", 11);
    put_tombstone(&f->a, &none, C, 12);
    assert_int_equal(object_copy(&f->b, &f->a), RK_OK);
    put(&f->b, &none, B, "\"b2\"", 13);
    put(&f->a, &none, A, "\"a2\"", 14);
    f->c1 = CLOCK({A, 3}, {C, 1}, {0x10, 1}, {0x20, 1}); /* full: growing allocates */
    f->c2 = CLOCK({A, 1}, {B, 5}, {0x55ULL, 2});
    assert_int_equal(rk_buf_appends(&f->buf, "prefix"), RK_OK);
    assert_int_equal(object_encode(&f->a, &f->bytes), RK_OK);
    assert_int_equal(context_encode(&f->c2, &f->text), RK_OK);
}

static void fixture_teardown(fixture *f)
{
    object_free(&f->a);
    object_free(&f->b);
    object_free(&f->out);
    vclock_free(&f->c1);
    vclock_free(&f->c2);
    vclock_free(&f->out_clock);
    rk_buf_free(&f->buf);
    rk_buf_free(&f->bytes);
    rk_buf_free(&f->text);
}

static rk_err op_vclock_copy(fixture *f)
{
    return vclock_copy(&f->c1, &f->c2);
}
static rk_err op_vclock_advance(fixture *f)
{
    return vclock_advance(&f->c1, B, 9);
}
static rk_err op_vclock_join(fixture *f)
{
    return vclock_join(&f->c1, &f->c2);
}
static rk_err op_object_copy(fixture *f)
{
    return object_copy(&f->a, &f->b);
}
static rk_err op_merge(fixture *f)
{
    return object_merge(&f->a, &f->b, 0, NULL);
}
static rk_err op_merge_cap(fixture *f)
{
    return object_merge(&f->a, &f->b, 2, NULL);
}
static rk_err op_encode(fixture *f)
{
    return object_encode(&f->a, &f->buf);
}
static rk_err op_context_encode(fixture *f)
{
    return context_encode(&f->c2, &f->buf);
}

static rk_err op_update(fixture *f)
{
    object_write w = {.value = "\"new\"", .value_len = 5, .owner = "bob", .timestamp_ms = 20};
    return object_update(&f->a, &f->c2, 0x55, &w, 3, NULL, NULL);
}

static rk_err op_decode(fixture *f)
{
    return object_decode((const uint8_t *)f->bytes.data, f->bytes.len, &f->out);
}

static rk_err op_context_decode(fixture *f)
{
    return context_decode(f->text.data, f->text.len, &f->out_clock);
}

/* Snapshot of everything an operation may touch, compared after a failure. */
typedef struct snapshot {
    rk_buf a, b, buf;
    vclock c1, c2;
} snapshot;

static void take(snapshot *s, fixture *f)
{
    *s = (snapshot){0};
    encode_to(&f->a, &s->a);
    encode_to(&f->b, &s->b);
    assert_int_equal(rk_buf_append(&s->buf, f->buf.data, f->buf.len), RK_OK);
    assert_int_equal(vclock_copy(&s->c1, &f->c1), RK_OK);
    assert_int_equal(vclock_copy(&s->c2, &f->c2), RK_OK);
}

static void assert_unchanged(snapshot *s, fixture *f)
{
    snapshot now;
    take(&now, f);
    assert_int_equal(now.a.len, s->a.len);
    assert_memory_equal(now.a.data, s->a.data, s->a.len);
    assert_int_equal(now.b.len, s->b.len);
    assert_memory_equal(now.b.data, s->b.data, s->b.len);
    assert_int_equal(f->buf.len, s->buf.len);
    assert_memory_equal(f->buf.data, s->buf.data, s->buf.len);
    assert_int_equal(vclock_compare(&f->c1, &s->c1), VCLOCK_EQUAL);
    assert_int_equal(vclock_compare(&f->c2, &s->c2), VCLOCK_EQUAL);
    assert_true(f->out.len == 0 && f->out.siblings == NULL && f->out.clock.entries == NULL);
    assert_null(f->out_clock.entries);
    assert_true(invariants_hold(&f->a) && invariants_hold(&f->b));
    rk_buf *bufs[] = {&now.a, &now.b, &now.buf, &s->a, &s->b, &s->buf};
    for (size_t i = 0; i < 6; i++)
        rk_buf_free(bufs[i]);
    vclock_free(&now.c1);
    vclock_free(&now.c2);
    vclock_free(&s->c1);
    vclock_free(&s->c2);
}

/* Fails the 0th, 1st, ... allocation of op until op no longer allocates
 * past the failure point; each failure must give RK_ENOMEM, change
 * nothing and leak nothing, and the run that succeeds must leak nothing. */
static void run_faults(const char *name, rk_err (*op)(fixture *))
{
    for (long n = 0;; n++) {
        assert_true(n < 1000);
        long base = live_blocks;
        fixture f;
        fixture_setup(&f);
        snapshot s;
        take(&s, &f);
        arm_fault(n);
        rk_err err = op(&f);
        disarm_fault();
        bool done = !fault_hit;
        if (done) {
            if (err != RK_OK)
                fail_msg("%s: %s with no injected failure", name, rk_errcode(err));
            rk_buf *bufs[] = {&s.a, &s.b, &s.buf};
            for (size_t i = 0; i < 3; i++)
                rk_buf_free(bufs[i]);
            vclock_free(&s.c1);
            vclock_free(&s.c2);
        } else {
            if (err != RK_ENOMEM)
                fail_msg("%s: allocation %ld failed but got %s", name, n, rk_errcode(err));
            assert_unchanged(&s, &f);
        }
        fixture_teardown(&f);
        if (live_blocks != base)
            fail_msg("%s: allocation %ld: %ld blocks leaked", name, n, live_blocks - base);
        if (done)
            return;
    }
}

static void test_allocation_faults(void **state)
{
    (void)state;
    if (!FAULTS)
        skip();
    run_faults("vclock_copy", op_vclock_copy);
    run_faults("vclock_advance", op_vclock_advance);
    run_faults("vclock_join", op_vclock_join);
    run_faults("object_copy", op_object_copy);
    run_faults("object_update", op_update);
    run_faults("object_merge", op_merge);
    run_faults("object_merge capped", op_merge_cap);
    run_faults("object_encode", op_encode);
    run_faults("object_decode", op_decode);
    run_faults("context_encode", op_context_encode);
    run_faults("context_decode", op_context_decode);
}

/* ---- randomized laws -------------------------------------------------------
 *
 * A world of four replicas takes random writes (blind, with a context read
 * from any replica, or with an old context from the history), merges and
 * reads; objects for the laws are replica states of the same world, so a
 * dot names one write everywhere, as in a real cluster. */

static uint64_t seed;
static size_t iteration;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg("%s:%d: %s failed (RINGKV_TEST_SEED=%llu, iteration %zu)", __FILE__,          \
                     __LINE__, #cond, (unsigned long long)seed, iteration);                        \
    } while (0)

typedef struct rng {
    uint64_t s;
} rng;

/* splitmix64: tiny, and the same sequence on every platform */
static uint64_t next_u64(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t pick(rng *r, size_t n)
{
    return (size_t)(next_u64(r) % n);
}

enum { REPLICAS = 4, HISTORY = 16 };
static const rk_actor world_actors[REPLICAS] = {0x42, 0xfffffffffffffff0ULL, 0x8000000000000000ULL,
                                                0x1};

typedef struct world {
    rk_object rep[REPLICAS];
    vclock hist[HISTORY];
    size_t n_hist;
    uint64_t now;
    uint64_t values;
    size_t cap; /* 0: none */
} world;

static void remember(world *w, const vclock *c)
{
    CHECK(vclock_copy(&w->hist[w->n_hist++ % HISTORY], c) == RK_OK);
}

/* The write's context: none, a read at any replica, or an old read. */
static const vclock *choose_context(world *w, rng *r)
{
    static const vclock empty = {0};
    switch (pick(r, 5)) {
    case 0: return NULL;
    case 1: return &empty;
    case 2: return &w->rep[pick(r, REPLICAS)].clock;
    default:
        if (w->n_hist == 0)
            return NULL;
        size_t avail = w->n_hist < HISTORY ? w->n_hist : HISTORY;
        return &w->hist[pick(r, avail)];
    }
}

/* A write, checked against the spec's step 3: the survivors are exactly
 * the old siblings the context does not cover, plus the new one. */
static void world_write(world *w, rng *r, size_t i)
{
    rk_object *o = &w->rep[i];
    const vclock *ctx = choose_context(w, r);
    rk_object before = {0};
    vclock ctx_copy = {0};
    CHECK(object_copy(&before, o) == RK_OK);
    CHECK(vclock_copy(&ctx_copy, ctx ? ctx : &o->clock) == RK_OK);

    char value[32];
    int len = snprintf(value, sizeof value, "\"v%llu\"", (unsigned long long)++w->values);
    char owner[8];
    snprintf(owner, sizeof owner, "u%zu", pick(r, 3));
    object_write wr = {.value = value,
                       .value_len = (size_t)len,
                       .owner = owner,
                       .tombstone = pick(r, 6) == 0,
                       .timestamp_ms = w->now + pick(r, 4)}; /* ties and skew */
    w->now += pick(r, 3);
    size_t dropped = 0;
    clock_dot dot;
    CHECK(object_update(o, ctx, world_actors[i], &wr, w->cap, &dropped, &dot) == RK_OK);
    CHECK(invariants_hold(o));
    CHECK(dot.actor == world_actors[i] && dot.counter == vclock_get(&before.clock, dot.actor) + 1);
    CHECK(o->siblings_dropped == before.siblings_dropped + dropped);
    if (dropped == 0) {
        CHECK(find_sibling(o, dot) != NULL);
        for (size_t k = 0; k < before.len; k++) {
            bool covered = vclock_covers(&ctx_copy, before.siblings[k].dot);
            CHECK((find_sibling(o, before.siblings[k].dot) != NULL) == !covered);
        }
    }
    /* step 4: VV := VV join C join {r: n} */
    CHECK(vclock_join(&ctx_copy, &before.clock) == RK_OK);
    CHECK(vclock_advance(&ctx_copy, dot.actor, dot.counter) == RK_OK);
    CHECK(vclock_compare(&o->clock, &ctx_copy) == VCLOCK_EQUAL);
    object_free(&before);
    vclock_free(&ctx_copy);
    if (pick(r, 2))
        remember(w, &o->clock); /* the writer reads its own write */
}

static void world_step(world *w, rng *r)
{
    size_t i = pick(r, REPLICAS), j = pick(r, REPLICAS);
    switch (pick(r, 8)) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4: world_write(w, r, i); break;
    case 5:
    case 6:
        CHECK(object_merge(&w->rep[i], &w->rep[j], w->cap, NULL) == RK_OK); /* i == j too */
        CHECK(invariants_hold(&w->rep[i]));
        break;
    default: remember(w, &w->rep[i].clock); /* a read */
    }
}

static void world_free(world *w)
{
    for (size_t i = 0; i < REPLICAS; i++)
        object_free(&w->rep[i]);
    for (size_t i = 0; i < HISTORY; i++)
        vclock_free(&w->hist[i]);
}

static void merged(const rk_object *x, const rk_object *y, size_t cap, rk_object *out)
{
    CHECK(object_copy(out, x) == RK_OK);
    CHECK(object_merge(out, y, cap, NULL) == RK_OK);
    CHECK(invariants_hold(out));
}

static bool same_sibling(const sibling *x, const sibling *y)
{
    return x->timestamp_ms == y->timestamp_ms && x->tombstone == y->tombstone &&
           x->value_len == y->value_len && strcmp(x->owner, y->owner) == 0 &&
           (x->tombstone || memcmp(x->value, y->value, x->value_len) == 0);
}

/* The merge's sibling set, computed straight from docs/causality.md. */
static void check_merge_set(const rk_object *x, const rk_object *y, const rk_object *m)
{
    size_t want = 0;
    for (size_t k = 0; k < x->len; k++) {
        const sibling *s = &x->siblings[k];
        bool keep = find_sibling(y, s->dot) || !vclock_covers(&y->clock, s->dot);
        const sibling *got = find_sibling(m, s->dot);
        CHECK((got != NULL) == keep);
        CHECK(!got || same_sibling(got, s));
        want += keep;
    }
    for (size_t k = 0; k < y->len; k++) {
        const sibling *s = &y->siblings[k];
        if (find_sibling(x, s->dot))
            continue;
        bool keep = !vclock_covers(&x->clock, s->dot);
        const sibling *got = find_sibling(m, s->dot);
        CHECK((got != NULL) == keep);
        CHECK(!got || same_sibling(got, s));
        want += keep;
    }
    CHECK(m->len == want);
    vclock join = {0};
    CHECK(vclock_copy(&join, &x->clock) == RK_OK);
    CHECK(vclock_join(&join, &y->clock) == RK_OK);
    CHECK(vclock_compare(&m->clock, &join) == VCLOCK_EQUAL);
    vclock_free(&join);
}

static void check_roundtrip(const rk_object *x)
{
    rk_buf b = {0};
    rk_object back = {0};
    CHECK(object_encode(x, &b) == RK_OK);
    CHECK(object_decode((const uint8_t *)b.data, b.len, &back) == RK_OK);
    CHECK(same_object(x, &back));
    rk_buf_free(&b);
    object_free(&back);

    rk_buf text = {0};
    vclock c = {0};
    CHECK(context_encode(&x->clock, &text) == RK_OK);
    CHECK(context_decode(text.data ? text.data : "", text.len, &c) == RK_OK);
    CHECK(vclock_compare(&c, &x->clock) == VCLOCK_EQUAL);
    rk_buf_free(&text);
    vclock_free(&c);
}

/* Commutative, associative, idempotent, exactly the spec's set, the join
 * as clock; all without a cap, where the laws are exact. */
static void check_laws(const rk_object *a, const rk_object *b, const rk_object *c)
{
    rk_object ab = {0}, ba = {0}, ab_c = {0}, bc = {0}, a_bc = {0}, aa = {0}, ab_b = {0};
    merged(a, b, 0, &ab);
    merged(b, a, 0, &ba);
    CHECK(same_object(&ab, &ba));
    check_merge_set(a, b, &ab);

    merged(&ab, c, 0, &ab_c);
    merged(b, c, 0, &bc);
    merged(a, &bc, 0, &a_bc);
    CHECK(same_object(&ab_c, &a_bc));

    merged(a, a, 0, &aa);
    CHECK(same_object(&aa, a));
    merged(&ab, b, 0, &ab_b);
    CHECK(same_object(&ab_b, &ab));

    check_roundtrip(a);
    check_roundtrip(&ab_c);
    rk_object *all[] = {&ab, &ba, &ab_c, &bc, &a_bc, &aa, &ab_b};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++)
        object_free(all[k]);
}

/* With a cap the merge stays commutative (the cap's order is total). */
static void check_capped_commutes(const rk_object *a, const rk_object *b, size_t cap)
{
    rk_object ab = {0}, ba = {0};
    merged(a, b, cap, &ab);
    merged(b, a, cap, &ba);
    CHECK(same_object(&ab, &ba));
    CHECK(ab.len <= cap);
    object_free(&ab);
    object_free(&ba);
}

/* Gossip without a cap: every replica ends with the same bytes. */
static void check_convergence(world *w)
{
    for (size_t i = 1; i < REPLICAS; i++)
        CHECK(object_merge(&w->rep[0], &w->rep[i], 0, NULL) == RK_OK);
    for (size_t i = 1; i < REPLICAS; i++) {
        CHECK(object_merge(&w->rep[i], &w->rep[0], 0, NULL) == RK_OK);
        CHECK(same_object(&w->rep[i], &w->rep[0]));
    }
}

static void test_random_laws(void **state)
{
    (void)state;
    rng r = {seed};
    const size_t iterations = 3000;
    for (iteration = 0; iteration < iterations; iteration++) {
        world w = {.now = 1000, .cap = pick(&r, 4) == 0 ? 1 + pick(&r, 3) : 0};
        size_t steps = pick(&r, 40);
        for (size_t s = 0; s < steps; s++)
            world_step(&w, &r);
        const rk_object *a = &w.rep[pick(&r, REPLICAS)];
        const rk_object *b = &w.rep[pick(&r, REPLICAS)];
        const rk_object *c = &w.rep[pick(&r, REPLICAS)];
        check_laws(a, b, c);
        if (w.cap)
            check_capped_commutes(a, b, w.cap);
        check_convergence(&w);
        world_free(&w);
    }
}

static uint64_t choose_seed(void)
{
    const char *env = getenv("RINGKV_TEST_SEED");
    uint64_t s;
    if (env && *env && rk_parse_u64(env, strlen(env), &s) == RK_OK)
        return s;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec;
}

int main(void)
{
    seed = choose_seed();
    printf("test_clock: seed %llu (replay with RINGKV_TEST_SEED=%llu)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    fflush(stdout);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vclock_compare),
        cmocka_unit_test(test_vclock_increment_advance),
        cmocka_unit_test(test_vclock_join),
        cmocka_unit_test(test_vclock_covers_copy_remove),
        cmocka_unit_test(test_update_blind),
        cmocka_unit_test(test_update_same_context_both_survive),
        cmocka_unit_test(test_update_through_two_replicas),
        cmocka_unit_test(test_update_cap),
        cmocka_unit_test(test_update_cap_spares_new_write),
        cmocka_unit_test(test_cap_drop_stays_dropped),
        cmocka_unit_test(test_merge_cap_counts),
        cmocka_unit_test(test_winner),
        cmocka_unit_test(test_prune_actor),
        cmocka_unit_test(test_object_copy),
        cmocka_unit_test(test_encode_roundtrip),
        cmocka_unit_test(test_decode_rejects),
        cmocka_unit_test(test_context_roundtrip),
        cmocka_unit_test(test_context_rejects),
        cmocka_unit_test(test_allocation_faults),
        cmocka_unit_test(test_random_laws),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
