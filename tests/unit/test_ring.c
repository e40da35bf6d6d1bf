/* test_ring.c - unit tests of record placement on the ring. */
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

#include "ringkv/ring.h"

#include "inputs.h"

static uint64_t pos(const char *table, const char *key)
{
    return ring_position(table, strlen(table), key, strlen(key));
}

/* Every node of every cluster must compute the same position, so it
 * depends on the bytes only: not on the call, the buffer or its address. */
static void test_position_is_deterministic(void **state)
{
    (void)state;
    uint64_t a = pos("users", "alice");
    assert_true(a == pos("users", "alice"));

    char table[16], key[16];
    strcpy(table, "users");
    strcpy(key, "alice");
    assert_true(a == ring_position(table, 5, key, 5));
    /* Bytes past the given lengths do not count. */
    assert_true(a == ring_position("usersXX", 5, "aliceYY", 5));

    /* Nearby inputs land far apart. */
    assert_true(a != pos("users", "alicf"));
    assert_true(a != pos("users", "Alice"));
    assert_true(a != pos("user", "alice"));
    assert_true(ring_position("t", 1, "a\0", 2) != ring_position("t", 1, "a", 1));
}

/* The table and the key are separated, so moving bytes between them moves
 * the record. */
static void test_position_separates_table_and_key(void **state)
{
    (void)state;
    assert_true(pos("ab", "c") != pos("a", "bc"));
    assert_true(pos("abc", "d") != pos("ab", "cd"));
    assert_true(pos("t", "k") != pos("k", "t"));
    assert_true(pos("default", "x") != pos("other", "x"));
}

/* Positions are part of the on-disk format: a change to the hash, its key
 * or the message layout moves every stored record. These values come from
 * an independent SipHash-2-4 (checked against the paper's test vector) over
 * `table 0x00 key` with the key "ringkv-ring-v01\0", first 8 output bytes
 * read big-endian, as ring.h documents. */
static void test_position_matches_documented_format(void **state)
{
    (void)state;
    static const struct {
        const char *table, *key;
        uint64_t position;
    } v[] = {
        {"default", "a", 0xfe63f9cb5f6311f6u}, {"users", "alice", 0x9f437f20a20153afu},
        {"t", "", 0xa54c782d45d521efu},        {"ab", "c", 0xb8d77b522cb24c71u},
        {"a", "bc", 0x30b9970851cf545bu},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint64_t got = pos(v[i].table, v[i].key);
        if (got != v[i].position)
            print_error("%s/%s: got 0x%016" PRIx64 ", want 0x%016" PRIx64 "\n", v[i].table,
                        v[i].key, got, v[i].position);
        assert_true(got == v[i].position);
    }
}

/* 100k random keys into 16 buckets by the top 4 bits: each bucket within
 * 8% of 100000/16 = 6250. Binomial sd is ~77, so 8% (500) is 6.5 sd: a
 * correct hash fails about once in 10^9 runs (5% failed once in ~1,400
 * seeds, too flaky for CI), while a biased hash still fails. */
static void test_position_is_uniform(void **state)
{
    (void)state;
    rng_seed_from_env("position_is_uniform");
    enum { KEYS = 100000, BUCKETS = 16 };
    unsigned count[BUCKETS] = {0};
    for (int i = 0; i < KEYS; i++) {
        char key[40];
        int n = snprintf(key, sizeof key, "key-%" PRIx64, rng_next());
        uint64_t p = ring_position("default", 7, key, (size_t)n);
        count[p >> 60]++;
    }
    const double fair = (double)KEYS / BUCKETS;
    for (int b = 0; b < BUCKETS; b++) {
        if (count[b] < fair * 0.92 || count[b] > fair * 1.08)
            print_error("bucket %d holds %u keys, fair is %.0f\n", b, count[b], fair);
        assert_in_range(count[b], (unsigned)(fair * 0.92), (unsigned)(fair * 1.08));
    }
}

/* Sequential keys (the common case: user-1, user-2, ...) spread as well. */
static void test_position_sequential_keys_spread(void **state)
{
    (void)state;
    enum { KEYS = 100000, BUCKETS = 16 };
    unsigned count[BUCKETS] = {0};
    for (int i = 0; i < KEYS; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "user-%d", i);
        count[ring_position("users", 5, key, (size_t)n) >> 60]++;
    }
    const double fair = (double)KEYS / BUCKETS;
    for (int b = 0; b < BUCKETS; b++)
        assert_in_range(count[b], (unsigned)(fair * 0.95), (unsigned)(fair * 1.05));
}

/* The longest valid table (64) and key (1024) are hashed whole: the last
 * byte of each still counts. */
static void test_position_uses_whole_max_lengths(void **state)
{
    (void)state;
    char table[64], key[1024];
    memset(table, 't', sizeof table);
    memset(key, 'k', sizeof key);
    uint64_t a = ring_position(table, sizeof table, key, sizeof key);
    key[1023] = 'K';
    uint64_t b = ring_position(table, sizeof table, key, sizeof key);
    table[63] = 'T';
    uint64_t c = ring_position(table, sizeof table, key, sizeof key);
    assert_true(a != b);
    assert_true(b != c);
}

/* ======================================================================
 * The ring: ranges, preference lists, balance and movement (ring_build).
 * ====================================================================== */

#include <pthread.h>
#include <stdatomic.h>

static ring_t *build_ring(const uint64_t *ids, size_t count, uint32_t n, uint32_t partitions)
{
    ring_params params = {.n = n, .partitions = partitions};
    ring_t *ring = NULL;
    assert_int_equal(ring_build(ids, count, &params, &ring), RK_OK);
    assert_non_null(ring);
    return ring;
}

static void random_member_ids(uint64_t *ids, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        bool fresh;
        do {
            ids[i] = rng_next();
            fresh = true;
            for (size_t j = 0; j < i; j++)
                fresh &= ids[j] != ids[i];
        } while (!fresh);
    }
}

static bool has_id(const uint64_t *ids, size_t count, uint64_t id)
{
    for (size_t i = 0; i < count; i++)
        if (ids[i] == id)
            return true;
    return false;
}

static double deviation(double share, double fair)
{
    double d = share / fair - 1;
    return d < 0 ? -d : d;
}

/* Everything that is not a valid member set or parameter set is refused,
 * and *out is left alone. */
static void test_ring_build_rejects_bad_input(void **state)
{
    (void)state;
    uint64_t ids[3] = {1, 2, 3}, dup[3] = {7, 8, 7};
    ring_params ok;
    ring_params_default(&ok);
    assert_int_equal(ok.n, RING_DEFAULT_N);
    assert_int_equal(ok.partitions, RING_DEFAULT_PARTITIONS);
    ring_t *untouched = (ring_t *)&ok, *ring = untouched;

    assert_int_equal(ring_build(ids, 0, &ok, &ring), RK_EINVAL);
    assert_int_equal(ring_build(dup, 3, &ok, &ring), RK_EINVAL);
    assert_int_equal(ring_build(NULL, 3, &ok, &ring), RK_EINVAL);
    assert_int_equal(ring_build(ids, 3, NULL, &ring), RK_EINVAL);
    assert_int_equal(ring_build(ids, 3, &ok, NULL), RK_EINVAL);
    /* Checked before the ids are read. */
    assert_int_equal(ring_build(ids, RING_MAX_MEMBERS + 1, &ok, &ring), RK_EINVAL);
    const ring_params bads[] = {
        {0, 16384}, {RING_MAX_N + 1, 16384},      {3, 0}, {3, 3},
        {3, 1000},  {3, RING_MAX_PARTITIONS * 2},
    };
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++)
        assert_int_equal(ring_build(ids, 3, &bads[i], &ring), RK_EINVAL);
    assert_ptr_equal(ring, untouched);

    /* The limits themselves are fine. */
    ring_unref(build_ring(ids, 3, RING_MAX_N, 1));
    ring_unref(build_ring(ids, 3, 1, RING_MAX_PARTITIONS));
    ring_unref(NULL);
}

/* Every node that has seen the same members computes the same ring, in
 * whatever order gossip delivered them; anything else gives another
 * version. */
static void test_ring_is_pure_function_of_members(void **state)
{
    (void)state;
    rng_seed_from_env("ring_is_pure_function_of_members");
    enum { M = 10 };
    uint64_t ids[M], shuffled[M];
    random_member_ids(ids, M);
    memcpy(shuffled, ids, sizeof ids);
    for (size_t i = M - 1; i > 0; i--) {
        size_t j = (size_t)(rng_next() % (i + 1));
        uint64_t t = shuffled[i];
        shuffled[i] = shuffled[j];
        shuffled[j] = t;
    }
    ring_t *a = build_ring(ids, M, 3, RING_DEFAULT_PARTITIONS);
    ring_t *b = build_ring(shuffled, M, 3, RING_DEFAULT_PARTITIONS);
    assert_true(ring_version(a) == ring_version(b));
    assert_int_equal(ring_member_count(a), M);
    for (size_t i = 0; i < M; i++) {
        assert_true(ring_member_id(a, i) == ring_member_id(b, i));
        assert_true(has_id(ids, M, ring_member_id(a, i)));
        if (i > 0)
            assert_true(ring_member_id(a, i - 1) < ring_member_id(a, i));
    }
    for (size_t r = 0; r < ring_range_count(a); r++) {
        uint64_t la[M], lb[M];
        assert_int_equal(ring_range_preference_list(a, r, la, M), M);
        assert_int_equal(ring_range_preference_list(b, r, lb, M), M);
        assert_memory_equal(la, lb, sizeof la);
    }

    ring_t *other_n = build_ring(ids, M, 2, RING_DEFAULT_PARTITIONS);
    ring_t *other_q = build_ring(ids, M, 3, RING_DEFAULT_PARTITIONS / 2);
    ring_t *fewer = build_ring(ids, M - 1, 3, RING_DEFAULT_PARTITIONS);
    ids[0] ^= 1;
    ring_t *changed = build_ring(ids, M, 3, RING_DEFAULT_PARTITIONS);
    const uint64_t v = ring_version(a);
    assert_true(ring_version(other_n) != v);
    assert_true(ring_version(other_q) != v);
    assert_true(ring_version(fewer) != v);
    assert_true(ring_version(changed) != v);
    ring_params got;
    ring_get_params(other_q, &got);
    assert_int_equal(got.n, 3);
    assert_int_equal(got.partitions, RING_DEFAULT_PARTITIONS / 2);
    ring_unref(a);
    ring_unref(b);
    ring_unref(other_n);
    ring_unref(other_q);
    ring_unref(fewer);
    ring_unref(changed);
}

/* A preference list names each member once: the replicas, then every
 * other member as a fallback, however many are asked for; shorter lists
 * are prefixes of longer ones. Small clusters replicate on all members. */
static void test_ring_preference_lists_are_distinct(void **state)
{
    (void)state;
    rng_seed_from_env("ring_preference_lists_are_distinct");
    const size_t sizes[] = {1, 2, 3, 4, 8, 13};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const size_t m = sizes[s];
        uint64_t ids[13], list[16], shorter[16];
        random_member_ids(ids, m);
        ring_t *ring = build_ring(ids, m, 3, RING_DEFAULT_PARTITIONS);
        assert_int_equal(ring_replica_count(ring), m < 3 ? m : 3);
        for (size_t r = 0; r < ring_range_count(ring); r++) {
            assert_int_equal(ring_range_preference_list(ring, r, list, m + 3), m);
            for (size_t i = 0; i < m; i++) {
                assert_true(has_id(ids, m, list[i]));
                assert_false(has_id(list, i, list[i]));
            }
            if (r % 97 == 0) {
                for (size_t k = 0; k <= m; k++) {
                    assert_int_equal(ring_range_preference_list(ring, r, shorter, k), k);
                    assert_memory_equal(shorter, list, k * sizeof *list);
                }
            }
        }
        /* A position's list is its range's list. */
        for (int i = 0; i < 1000; i++) {
            uint64_t p = rng_next();
            ring_range range;
            ring_range_of(ring, p, &range);
            assert_int_equal(ring_preference_list(ring, p, list, m), m);
            assert_int_equal(ring_range_preference_list(ring, range.index, shorter, m), m);
            assert_memory_equal(list, shorter, m * sizeof *list);
        }
        if (m == 1) {
            double first, replica;
            assert_int_equal(ring_owner_share(ring, ids[0], &first, &replica), RK_OK);
            assert_true(first == 1.0 && replica == 1.0);
        }
        ring_unref(ring);
    }
}

/* The defining property of rendezvous placement, and the reason nothing
 * moves between old members: a range's order over any subset of members is
 * the big order with the others left out. It also checks the fallbacks
 * computed past the precomputed table against the table of a smaller ring,
 * and ring_range_rank against the list. */
static void test_ring_order_restricts_to_subsets(void **state)
{
    (void)state;
    rng_seed_from_env("ring_order_restricts_to_subsets");
    enum { BIG = 24, SMALL = 9, Q = 2048 };
    uint64_t ids[BIG], subset[SMALL];
    random_member_ids(ids, BIG);
    uint64_t pool[BIG];
    memcpy(pool, ids, sizeof pool);
    for (size_t i = 0; i < SMALL; i++) { /* a random sample, as a partial shuffle */
        size_t j = i + (size_t)(rng_next() % (BIG - i));
        uint64_t t = pool[i];
        pool[i] = pool[j];
        pool[j] = t;
        subset[i] = pool[i];
    }
    ring_t *big = build_ring(ids, BIG, 3, Q);
    ring_t *small = build_ring(subset, SMALL, 3, Q);
    for (size_t r = 0; r < Q; r++) {
        uint64_t lb[BIG], ls[SMALL], filtered[SMALL];
        assert_int_equal(ring_range_preference_list(big, r, lb, BIG), BIG);
        assert_int_equal(ring_range_preference_list(small, r, ls, SMALL), SMALL);
        size_t k = 0;
        for (size_t i = 0; i < BIG; i++)
            if (has_id(subset, SMALL, lb[i]))
                filtered[k++] = lb[i];
        assert_int_equal(k, SMALL);
        assert_memory_equal(filtered, ls, sizeof ls);
        if (r % 61 == 0) {
            for (size_t i = 0; i < BIG; i++) {
                size_t rank = BIG;
                assert_int_equal(ring_range_rank(big, r, lb[i], &rank), RK_OK);
                assert_int_equal(rank, i);
            }
        }
    }
    size_t rank = 99;
    uint64_t stranger = ids[0] ^ 0x8000000000000000u;
    while (has_id(ids, BIG, stranger))
        stranger++;
    assert_int_equal(ring_range_rank(big, 0, stranger, &rank), RK_ENOTFOUND);
    assert_int_equal(rank, 99);
    assert_false(ring_has_member(big, stranger));
    assert_true(ring_has_member(big, ids[5]));
    ring_unref(big);
    ring_unref(small);
}

/* Worst deviation from fair of the members' first and replica shares. */
static void ring_balance(const ring_t *ring, const uint64_t *ids, size_t m, double *worst_first,
                         double *worst_replica)
{
    double replicas = (double)ring_replica_count(ring);
    double sum_first = 0, sum_replica = 0;
    *worst_first = *worst_replica = 0;
    for (size_t i = 0; i < m; i++) {
        double first, replica;
        assert_int_equal(ring_owner_share(ring, ids[i], &first, &replica), RK_OK);
        sum_first += first;
        sum_replica += replica;
        double df = deviation(first, 1.0 / (double)m);
        double dr = deviation(replica, replicas / (double)m);
        if (df > *worst_first)
            *worst_first = df;
        if (dr > *worst_replica)
            *worst_replica = dr;
    }
    /* Shares are counts of equal ranges over a power of two: exact sums. */
    assert_true(sum_first == 1.0);
    assert_true(sum_replica == replicas);
}

/* The acceptance bar of the cluster issue: with the default parameters
 * every node's share (as first owner, and as any replica) is within 15% of
 * fair at 3, 5 and 10 nodes, for random ids and for ids made to look alike.
 * A node's share is Binomial(65536, 1/M)/65536: at 10 nodes 15% is 12.8
 * standard deviations, so no random id set should ever fail (docs/ring.md
 * has the measured spread). */
static void test_ring_balance_default_params(void **state)
{
    (void)state;
    rng_seed_from_env("ring_balance_default_params");
    enum { SETS = 30, STRUCTURED = 4 };
    const size_t sizes[] = {3, 5, 10};
    ring_params params;
    ring_params_default(&params);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const size_t m = sizes[s];
        double worst_first = 0, worst_replica = 0;
        for (int set = 0; set < SETS + STRUCTURED; set++) {
            uint64_t ids[10];
            for (size_t i = 0; i < m; i++) {
                switch (set - SETS) {
                case 0: ids[i] = i + 1; break;                  /* 1, 2, 3, ... */
                case 1: ids[i] = (uint64_t)1 << (i * 5); break; /* one bit each */
                case 2: ids[i] = UINT64_MAX - i; break;
                case 3: ids[i] = i << 56; break; /* 0, top byte only */
                default: break;
                }
            }
            if (set < SETS)
                random_member_ids(ids, m);
            ring_t *ring = NULL;
            assert_int_equal(ring_build(ids, m, &params, &ring), RK_OK);
            double wf, wr;
            ring_balance(ring, ids, m, &wf, &wr);
            if (wf > 0.15 || wr > 0.15) {
                print_error("%zu nodes, set %d: first off by %.1f%%, replica by %.1f%%; ids:\n", m,
                            set, wf * 100, wr * 100);
                for (size_t i = 0; i < m; i++)
                    print_error("  0x%016" PRIx64 "\n", ids[i]);
            }
            assert_true(wf <= 0.15);
            assert_true(wr <= 0.15);
            worst_first = wf > worst_first ? wf : worst_first;
            worst_replica = wr > worst_replica ? wr : worst_replica;
            ring_unref(ring);
        }
        printf("# balance: %2zu nodes, %d id sets: worst first-owner share %.1f%% off fair, "
               "worst replica share %.1f%%\n",
               m, SETS + STRUCTURED, worst_first * 100, worst_replica * 100);
    }
}

/* A join moves only what the new node takes: a range's first owner either
 * stays or becomes the new node, and a range's replicas either stay exactly
 * (same order) or gain the new node and lose only the last one. So the
 * changed part of the ring is exactly the new node's share, about n/(M+1).
 * Read backwards, the same pair of rings is a leave. */
static void test_ring_join_moves_only_to_new_node(void **state)
{
    (void)state;
    rng_seed_from_env("ring_join_moves_only_to_new_node");
    const size_t sizes[] = {2, 3, 5, 10};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const size_t m = sizes[s];
        uint64_t ids[11];
        random_member_ids(ids, m + 1);
        const uint64_t newcomer = ids[m];
        ring_t *before = build_ring(ids, m, 3, RING_DEFAULT_PARTITIONS);
        ring_t *after = build_ring(ids, m + 1, 3, RING_DEFAULT_PARTITIONS);
        size_t first_moved = 0, replicas_changed = 0;
        const size_t q = ring_range_count(after);
        for (size_t r = 0; r < q; r++) {
            uint64_t a[3], b[3], rest[3];
            size_t na = ring_range_preference_list(before, r, a, 3);
            size_t nb = ring_range_preference_list(after, r, b, 3);
            if (a[0] != b[0]) {
                assert_true(b[0] == newcomer); /* never between two old members */
                first_moved++;
            }
            if (!has_id(b, nb, newcomer)) {
                assert_int_equal(na, nb);
                assert_memory_equal(a, b, na * sizeof *a);
                continue;
            }
            replicas_changed++;
            size_t k = 0;
            for (size_t i = 0; i < nb; i++)
                if (b[i] != newcomer)
                    rest[k++] = b[i];
            assert_true(k <= na);
            assert_memory_equal(rest, a, k * sizeof *a);
        }
        double first, replica;
        assert_int_equal(ring_owner_share(after, newcomer, &first, &replica), RK_OK);
        assert_true((double)first_moved / (double)q == first);
        assert_true((double)replicas_changed / (double)q == replica);
        double ideal = (double)ring_replica_count(after) / (double)(m + 1);
        assert_true(deviation((double)replicas_changed / (double)q, ideal) <= 0.15);
        printf("# join %2zu -> %2zu: first owner moved on %.2f%% of the ring (ideal %.2f%%), "
               "replicas changed on %.2f%% (ideal %.2f%%), 0 between old nodes\n",
               m, m + 1, 100.0 * (double)first_moved / (double)q, 100.0 / (double)(m + 1),
               100.0 * (double)replicas_changed / (double)q, 100 * ideal);
        ring_unref(before);
        ring_unref(after);
    }
}

/* Ranges tile the ring in order, [start, end) with end 0 for the top, and
 * every position falls in exactly the range ring_range_of names. */
static void test_ring_ranges_tile_the_ring(void **state)
{
    (void)state;
    rng_seed_from_env("ring_ranges_tile_the_ring");
    uint64_t ids[4] = {10, 20, 30, 40};
    const uint32_t qs[] = {1, 2, 1024, RING_DEFAULT_PARTITIONS};
    for (size_t t = 0; t < sizeof qs / sizeof qs[0]; t++) {
        ring_t *ring = build_ring(ids, 4, 3, qs[t]);
        const size_t q = ring_range_count(ring);
        assert_int_equal(q, qs[t]);
        const uint64_t width = q == 1 ? 0 : (uint64_t)1 << (64 - __builtin_ctz(qs[t]));
        uint64_t expect_start = 0;
        for (size_t i = 0; i < q; i++) {
            ring_range range, again;
            ring_range_at(ring, i, &range);
            assert_int_equal(range.index, i);
            assert_true(range.start == expect_start);
            assert_true(range.end == range.start + width); /* wraps to 0 at the top */
            expect_start = range.end;
            assert_true(ring_range_contains(&range, range.start));
            assert_true(ring_range_contains(&range, range.end - 1));
            if (range.start > 0)
                assert_false(ring_range_contains(&range, range.start - 1));
            if (range.end != 0)
                assert_false(ring_range_contains(&range, range.end));
            ring_range_of(ring, range.start, &again);
            assert_int_equal(again.index, i);
            ring_range_of(ring, range.end - 1, &again);
            assert_int_equal(again.index, i);
        }
        assert_true(expect_start == 0); /* the last range ends at 2^64 */
        for (int i = 0; i < 1000; i++) {
            uint64_t p = rng_next();
            ring_range range;
            ring_range_of(ring, p, &range);
            assert_true(ring_range_contains(&range, p));
        }
        ring_unref(ring);
    }
}

/* Known answers from an independent implementation of docs/ring.md
 * (Python: SipHash-2-4 of each id, splitmix64 mixing, BLAKE2b for the
 * version). The ring is part of the cluster protocol: nodes running
 * different builds must agree on it, so a change here is a format change. */
static void test_ring_matches_documented_format(void **state)
{
    (void)state;
    const uint64_t a = 0x1111111111111111u, b = 0x2222222222222222u, c = 0x3333333333333333u,
                   d = 0x4444444444444444u, e = 0x5555555555555555u;
    const uint64_t ids[5] = {e, c, a, d, b};
    ring_t *ring = build_ring(ids, 5, 3, 16384);
    assert_true(ring_version(ring) == 0x671273a48b17ed30u);
    ring_t *n2 = build_ring(ids, 5, 2, 16384);
    assert_true(ring_version(n2) == 0x61ebaa450fee5c6bu);
    ring_t *q1024 = build_ring(ids, 5, 3, 1024);
    assert_true(ring_version(q1024) == 0x7f1d8e02e7cbd4bfu);

    static const struct {
        uint64_t position;
        uint32_t range;
        uint64_t order[5];
    } v[] = {
        {0x0000000000000000u, 0, {a, e, c, b, d}},
        {0x8000000000000000u, 8192, {d, e, b, a, c}},
        {0xfe63f9cb5f6311f6u, 16280, {a, c, d, b, e}}, /* default/a */
        {0xffffffffffffffffu, 16383, {b, d, a, c, e}},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint64_t got[5];
        ring_range range;
        ring_range_of(ring, v[i].position, &range);
        assert_int_equal(range.index, v[i].range);
        assert_int_equal(ring_preference_list(ring, v[i].position, got, 5), 5);
        assert_memory_equal(got, v[i].order, sizeof got);
    }
    const uint64_t sorted[5] = {a, b, c, d, e};
    const unsigned first[5] = {3316, 3222, 3452, 3204, 3190};
    const unsigned replica[5] = {9867, 9831, 9857, 9825, 9772};
    for (size_t i = 0; i < 5; i++) {
        double f, r;
        assert_int_equal(ring_owner_share(ring, sorted[i], &f, &r), RK_OK);
        assert_true(f == first[i] / 16384.0);
        assert_true(r == replica[i] / 16384.0);
    }
    ring_unref(ring);
    ring_unref(n2);
    ring_unref(q1024);
}

/* Readers take the current ring from a slot and use it lock-free while a
 * writer keeps swapping rings in; the sanitizer build catches a ring freed
 * under a reader. */
struct slot_test {
    ring_slot *slot;
    atomic_bool stop;
    atomic_ulong reads;
};

static void *slot_reader(void *arg)
{
    struct slot_test *t = arg;
    uint64_t p = (uint64_t)(uintptr_t)arg;
    while (!atomic_load(&t->stop)) {
        ring_t *ring = ring_slot_get(t->slot);
        if (ring == NULL)
            continue;
        uint64_t list[8];
        size_t m = ring_member_count(ring);
        for (int i = 0; i < 64; i++) {
            p = p * 6364136223846793005u + 1442695040888963407u;
            size_t got = ring_preference_list(ring, p, list, 8);
            if (got != (m < 8 ? m : 8) || !ring_has_member(ring, list[0]))
                abort();
        }
        ring_unref(ring);
        atomic_fetch_add(&t->reads, 1);
    }
    return NULL;
}

static void test_ring_slot_swaps_under_readers(void **state)
{
    (void)state;
    struct slot_test t;
    assert_int_equal(ring_slot_alloc(&t.slot), RK_OK);
    atomic_init(&t.stop, false);
    atomic_init(&t.reads, 0);
    assert_null(ring_slot_get(t.slot));

    pthread_t readers[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&readers[i], NULL, slot_reader, &t), 0);
    uint64_t ids[12];
    for (size_t i = 0; i < 12; i++)
        ids[i] = 1000 + i;
    for (int round = 0; round < 200; round++) {
        ring_t *ring = build_ring(ids, 3 + (size_t)round % 10, 3, 1024);
        ring_t *same = ring_ref(ring);
        assert_ptr_equal(same, ring);
        ring_unref(same);
        ring_slot_set(t.slot, ring);
        ring_unref(ring); /* the slot holds its own reference */
    }
    atomic_store(&t.stop, true);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_join(readers[i], NULL), 0);

    ring_t *last = ring_slot_get(t.slot);
    assert_non_null(last);
    assert_int_equal(ring_member_count(last), 3 + 199 % 10);
    ring_unref(last);
    ring_slot_set(t.slot, NULL);
    assert_null(ring_slot_get(t.slot));
    ring_slot_free(t.slot);
    printf("# slot: %lu reader snapshots while 200 rings were swapped in\n",
           (unsigned long)atomic_load(&t.reads));
}

/* Not an assertion, a number to watch: the cost of the lookup that every
 * request makes, and of building a ring on a membership change. */
static void test_ring_lookup_benchmark(void **state)
{
    (void)state;
    rng_seed_from_env("ring_lookup_benchmark");
    enum { M = 10, LOOKUPS = 1000000 };
    uint64_t ids[M], list[M], sink = 0;
    random_member_ids(ids, M);
    uint64_t t0 = rk_mono_ns();
    ring_t *ring = build_ring(ids, M, 3, RING_DEFAULT_PARTITIONS);
    uint64_t build_ns = rk_mono_ns() - t0;
    const size_t wants[2] = {3, 5};
    double ns[2];
    for (int k = 0; k < 2; k++) {
        uint64_t p = rng_next();
        t0 = rk_mono_ns();
        for (int i = 0; i < LOOKUPS; i++) {
            p = p * 6364136223846793005u + 1442695040888963407u;
            sink += ring_preference_list(ring, p, list, wants[k]) + list[0];
        }
        ns[k] = (double)(rk_mono_ns() - t0) / LOOKUPS;
    }
    printf("# lookup: %.1f ns for n=3 ids, %.1f ns for n+2; build %.2f ms (10 members, %u "
           "ranges)%s\n",
           ns[0], ns[1], (double)build_ns / 1e6, RING_DEFAULT_PARTITIONS, sink == 1 ? " " : "");
    ring_unref(ring);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_position_is_deterministic),
        cmocka_unit_test(test_position_separates_table_and_key),
        cmocka_unit_test(test_position_matches_documented_format),
        cmocka_unit_test(test_position_is_uniform),
        cmocka_unit_test(test_position_sequential_keys_spread),
        cmocka_unit_test(test_position_uses_whole_max_lengths),
        /* the ring */
        cmocka_unit_test(test_ring_build_rejects_bad_input),
        cmocka_unit_test(test_ring_is_pure_function_of_members),
        cmocka_unit_test(test_ring_preference_lists_are_distinct),
        cmocka_unit_test(test_ring_order_restricts_to_subsets),
        cmocka_unit_test(test_ring_balance_default_params),
        cmocka_unit_test(test_ring_join_moves_only_to_new_node),
        cmocka_unit_test(test_ring_ranges_tile_the_ring),
        cmocka_unit_test(test_ring_matches_documented_format),
        cmocka_unit_test(test_ring_slot_swaps_under_readers),
        cmocka_unit_test(test_ring_lookup_benchmark),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
