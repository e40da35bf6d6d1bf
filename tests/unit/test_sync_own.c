/* test_sync_own.c - who sends which range while the ring changes
 * (src/sync/own.c), and the key-by-key comparison handoff and
 * anti-entropy share (src/sync/transfer.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sync/sync_internal.h"

#define PARTITIONS 1024u

static const uint64_t A = 0x1111, B = 0x2222, C = 0x3333, D = 0x4444;

/* Rings of read[0..nr) and next[0..nn) (nn 0: no change in progress). */
static sync_rings rings_of(const uint64_t *read, size_t nr, const uint64_t *next, size_t nn)
{
    ring_params p = {.n = 3, .partitions = PARTITIONS};
    sync_rings r = {0};
    ring_t *rr = NULL, *rn = NULL;
    assert_int_equal(ring_build(read, nr, &p, &rr), RK_OK);
    r.read = rr;
    r.next = rr;
    if (nn > 0) {
        assert_int_equal(ring_build(next, nn, &p, &rn), RK_OK);
        r.next = rn;
    }
    r.range_bits = 10;
    return r;
}

static void rings_free(sync_rings *r)
{
    if (r->next != r->read)
        ring_unref((ring_t *)r->next);
    ring_unref((ring_t *)r->read);
}

static bool has(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* Joining D: every range D gains is sent to it by exactly one of the nodes
 * that hold it, the one that loses the range, which keeps its copy while it
 * still serves reads; ranges D does not gain cost nobody anything. (A node
 * holding a range it has no replica of, none here, owes it to the next
 * replicas: that duty costs one scan of an empty range.) */
static void test_join_one_sender_per_gained_range(void **state)
{
    (void)state;
    const uint64_t old[] = {A, B, C}, all[] = {A, B, C, D};
    sync_rings r = rings_of(old, 3, all, 4);
    size_t gained = 0;
    for (size_t i = 0; i < PARTITIONS; i++) {
        uint64_t nextr[3], readr[3];
        sync_replicas(&r, i, true, nextr);
        sync_replicas(&r, i, false, readr);
        size_t senders = 0;
        for (size_t k = 0; k < 4; k++) {
            if (!has(readr, 3, all[k]))
                continue;
            sync_duty d;
            sync_duty_of(&r, all[k], i, &d);
            if (d.target_count == 0)
                continue;
            senders++;
            assert_false(d.drop);
            assert_true(has(d.targets, d.target_count, D));
            assert_false(has(nextr, 3, all[k]));
        }
        bool d_gains = has(nextr, 3, D);
        gained += d_gains;
        assert_int_equal(senders, d_gains ? 1 : 0);
    }
    /* about 3/4 of the ranges move to the fourth node */
    assert_true(gained > PARTITIONS / 2 && gained < PARTITIONS * 7 / 8 + 1);
    rings_free(&r);
}

/* After the join (one ring again), a node holding a range it does not own
 * sends it to the three replicas and drops it; replicas owe nothing. */
static void test_after_join_orphans_are_sent_and_dropped(void **state)
{
    (void)state;
    const uint64_t all[] = {A, B, C, D};
    sync_rings r = rings_of(all, 4, NULL, 0);
    for (size_t i = 0; i < PARTITIONS; i++) {
        uint64_t reps[3];
        sync_replicas(&r, i, false, reps);
        for (size_t k = 0; k < 4; k++) {
            sync_duty d;
            sync_duty_of(&r, all[k], i, &d);
            if (has(reps, 3, all[k])) {
                assert_int_equal(d.target_count, 0);
            } else {
                assert_int_equal(d.target_count, 3);
                assert_true(d.drop);
            }
        }
    }
    rings_free(&r);
}

/* Leaving D: D sends every range it holds, and keeps serving them; no
 * other holder owes anything. */
static void test_leave_only_the_leaver_sends(void **state)
{
    (void)state;
    const uint64_t all[] = {A, B, C, D}, rest[] = {A, B, C};
    sync_rings r = rings_of(all, 4, rest, 3);
    for (size_t i = 0; i < PARTITIONS; i++) {
        uint64_t readr[3];
        sync_replicas(&r, i, false, readr);
        for (size_t k = 0; k < 4; k++) {
            if (!has(readr, 3, all[k]))
                continue;
            sync_duty d;
            sync_duty_of(&r, all[k], i, &d);
            bool sends = all[k] == D;
            assert_int_equal(d.target_count > 0, sends);
            if (sends) {
                assert_false(d.drop);
                assert_int_equal(d.target_count, 3);
            }
        }
        assert_true(sync_holds(&r, i, A) && sync_holds(&r, i, B) && sync_holds(&r, i, C));
    }
    rings_free(&r);
}

/* A cluster growing from one node: nobody loses a range, so the first
 * read replica sends it to the new ones. */
static void test_growing_from_one_node_the_first_replica_sends(void **state)
{
    (void)state;
    const uint64_t one[] = {A}, three[] = {A, B, C};
    sync_rings r = rings_of(one, 1, three, 3);
    for (size_t i = 0; i < PARTITIONS; i++) {
        sync_duty d;
        sync_duty_of(&r, A, i, &d);
        assert_int_equal(d.target_count, 2);
        assert_true(has(d.targets, 2, B) && has(d.targets, 2, C));
        sync_duty_of(&r, B, i, &d);
        assert_int_equal(d.target_count, 0);
    }
    rings_free(&r);
}

/* ---- sync_compare ---------------------------------------------------------- */

typedef struct seen {
    size_t only_here, only_there, both;
} seen;

static rk_err count_cb(void *arg, size_t local, const Ringkv__SyncDigest *remote)
{
    seen *s = arg;
    if (remote == NULL)
        s->only_here++;
    else if (local == SIZE_MAX)
        s->only_there++;
    else
        s->both++;
    return RK_OK;
}

static void test_compare_finds_each_kind_of_difference(void **state)
{
    (void)state;
    sync_records rs = {0};
    /* here: k1=v1 k2=v2 k4=v4; there: k2=v2 k3=v3 k4=vX */
    assert_int_equal(sync_records_add(&rs, "k1", 2, "v1", 2), RK_OK);
    assert_int_equal(sync_records_add(&rs, "k2", 2, "v2", 2), RK_OK);
    assert_int_equal(sync_records_add(&rs, "k4", 2, "v4", 2), RK_OK);
    const char *keys[] = {"k2", "k3", "k4"}, *vals[] = {"v2", "v3", "vX"};
    uint8_t digests[3][SYNC_DIGEST_BYTES];
    Ringkv__SyncDigest d[3], *ptrs[3];
    for (size_t i = 0; i < 3; i++) {
        ringkv__sync_digest__init(&d[i]);
        sync_digest(vals[i], 2, digests[i]);
        d[i].dbkey.data = (uint8_t *)keys[i];
        d[i].dbkey.len = 2;
        d[i].digest.data = digests[i];
        d[i].digest.len = SYNC_DIGEST_BYTES;
        ptrs[i] = &d[i];
    }
    Ringkv__SyncDigestsReply remote = RINGKV__SYNC_DIGESTS_REPLY__INIT;
    remote.n_digests = 3;
    remote.digests = ptrs;
    seen s = {0};
    assert_int_equal(sync_compare(&rs, &remote, count_cb, &s), RK_OK);
    assert_int_equal(s.only_here, 1);  /* k1 */
    assert_int_equal(s.only_there, 1); /* k3 */
    assert_int_equal(s.both, 1);       /* k4; k2 is equal and not reported */
    sync_records_free(&rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_one_sender_per_gained_range),
        cmocka_unit_test(test_after_join_orphans_are_sent_and_dropped),
        cmocka_unit_test(test_leave_only_the_leaver_sends),
        cmocka_unit_test(test_growing_from_one_node_the_first_replica_sends),
        cmocka_unit_test(test_compare_finds_each_kind_of_difference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
