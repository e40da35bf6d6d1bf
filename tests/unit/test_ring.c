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

static uint64_t rng_state;

/* splitmix64: the same stream on every libc, so a printed seed replays. */
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void rng_seed_from_env(const char *test)
{
    const char *env = getenv("RINGKV_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    rng_state = seed;
    printf("# %s: seed %" PRIu64 " (replay with RINGKV_TEST_SEED=%" PRIu64 ")\n", test, seed,
           seed);
}

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
        {"default", "a", 0xfe63f9cb5f6311f6u},
        {"users", "alice", 0x9f437f20a20153afu},
        {"t", "", 0xa54c782d45d521efu},
        {"ab", "c", 0xb8d77b522cb24c71u},
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
 * 5% of 100000/16 = 6250. Binomial sd is ~77, so 5% (312) is over 4 sd:
 * a correct hash fails this about once in 1,400 seeds. */
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
        if (count[b] < fair * 0.95 || count[b] > fair * 1.05)
            print_error("bucket %d holds %u keys, fair is %.0f\n", b, count[b], fair);
        assert_in_range(count[b], (unsigned)(fair * 0.95), (unsigned)(fair * 1.05));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_position_is_deterministic),
        cmocka_unit_test(test_position_separates_table_and_key),
        cmocka_unit_test(test_position_matches_documented_format),
        cmocka_unit_test(test_position_is_uniform),
        cmocka_unit_test(test_position_sequential_keys_spread),
        cmocka_unit_test(test_position_uses_whole_max_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
