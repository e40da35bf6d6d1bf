/* test_merkle.c - unit tests of the anti-entropy Merkle trees (src/merkle). */
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

#include "ringkv/merkle.h"

#include "inputs.h"

/* A record as the store holds it: data key `position | table | 0 | key`
 * (here table "t" and an 8-byte id) and some object bytes. */
typedef struct rec {
    uint64_t pos;
    uint64_t id;
    uint64_t val;
} rec;

#define DBKEY_LEN 18

static void make_dbkey(uint64_t pos, uint64_t id, uint8_t out[DBKEY_LEN])
{
    rk_store_be64(out, pos);
    rk_store_be64(out + 10, id);
    out[8] = 't';
    out[9] = 0;
}

static rk_err rec_add(merkle_tree *t, const rec *r)
{
    uint8_t k[DBKEY_LEN];
    make_dbkey(r->pos, r->id, k);
    return merkle_add(t, r->pos, k, sizeof k, &r->val, sizeof r->val);
}

static rk_err rec_remove(merkle_tree *t, const rec *r)
{
    uint8_t k[DBKEY_LEN];
    make_dbkey(r->pos, r->id, k);
    return merkle_remove(t, r->pos, k, sizeof k, &r->val, sizeof r->val);
}

static merkle_tree *tree_new(uint64_t start, uint64_t end, unsigned depth)
{
    merkle_tree *t = NULL;
    assert_int_equal(merkle_alloc(start, end, depth, &t), RK_OK);
    assert_non_null(t);
    return t;
}

/* A random position in [start, end) (end 0 = 2^64). */
static uint64_t pos_in(uint64_t start, uint64_t end)
{
    uint64_t width = end - start; /* 0 for the whole ring */
    return width ? start + rng_next() % width : rng_next();
}

static void random_recs(rec *r, size_t n, uint64_t start, uint64_t end)
{
    for (size_t i = 0; i < n; i++)
        r[i] = (rec){.pos = pos_in(start, end), .id = i, .val = rng_next()};
}

static void assert_roots(const merkle_tree *a, const merkle_tree *b, bool equal)
{
    uint8_t ra[MERKLE_HASH_BYTES], rb[MERKLE_HASH_BYTES];
    assert_int_equal(merkle_root(a, ra), RK_OK);
    assert_int_equal(merkle_root(b, rb), RK_OK);
    if (equal)
        assert_memory_equal(ra, rb, sizeof ra);
    else
        assert_memory_not_equal(ra, rb, sizeof ra);
}

#define RANGE_START 0x4000000000000000u
#define RANGE_END 0x4001000000000000u

static void test_merkle_alloc_rejects_bad_input(void **state)
{
    (void)state;
    merkle_tree *t = NULL;
    assert_int_equal(merkle_alloc(0, 0, MERKLE_MAX_DEPTH + 1, &t), RK_EINVAL);
    assert_int_equal(merkle_alloc(10, 10, 0, &t), RK_EINVAL);   /* empty */
    assert_int_equal(merkle_alloc(10, 5, 0, &t), RK_EINVAL);    /* wraps */
    assert_int_equal(merkle_alloc(0, 1023, 10, &t), RK_EINVAL); /* a bucket would be empty */
    assert_int_equal(merkle_alloc(0, 10, 0, NULL), RK_EINVAL);
    assert_null(t);

    t = tree_new(0, 1024, 10); /* one position a bucket is fine */
    merkle_free(t);
    t = tree_new(0, 0, 0); /* the whole ring in one bucket */
    assert_int_equal(merkle_bucket_count(t), 1);
    merkle_free(t);
    merkle_free(NULL);
}

/* The XOR of digests does not depend on order: a replica that built its
 * tree from a scan and one that followed writes agree. */
static void test_merkle_equal_sets_equal_roots(void **state)
{
    (void)state;
    rng_seed_from_env("equal_sets_equal_roots");
    enum { N = 5000 };
    rec *r = malloc(N * sizeof *r);
    assert_non_null(r);
    random_recs(r, N, RANGE_START, RANGE_END);

    merkle_tree *a = tree_new(RANGE_START, RANGE_END, 10);
    merkle_tree *b = tree_new(RANGE_START, RANGE_END, 10);
    merkle_tree *c = tree_new(RANGE_START, RANGE_END, 10);
    assert_roots(a, b, true); /* empty trees */
    for (size_t i = 0; i < N; i++)
        assert_int_equal(rec_add(a, &r[i]), RK_OK);
    /* b in reverse order, c in a random permutation */
    for (size_t i = N; i-- > 0;)
        assert_int_equal(rec_add(b, &r[i]), RK_OK);
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = rng_next() % (i + 1);
        rec tmp = r[i];
        r[i] = r[j];
        r[j] = tmp;
    }
    for (size_t i = 0; i < N; i++)
        assert_int_equal(rec_add(c, &r[i]), RK_OK);

    merkle_finish(a);
    merkle_finish(b);
    merkle_finish(c);
    assert_roots(a, b, true);
    assert_roots(a, c, true);
    assert_int_equal(merkle_record_count(a), N);

    size_t count = 99, compared = 0;
    assert_int_equal(merkle_diff(a, c, NULL, 0, &count, &compared), RK_OK);
    assert_int_equal(count, 0);
    assert_int_equal(compared, 1); /* equal roots: nothing below is looked at */

    /* and the records do count: the empty tree differs */
    merkle_tree *empty = tree_new(RANGE_START, RANGE_END, 10);
    assert_roots(a, empty, false);
    merkle_free(empty);
    merkle_free(a);
    merkle_free(b);
    merkle_free(c);
    free(r);
}

/* Builds a and b from r[0..n), applies change to b, and checks that exactly
 * the bucket of position differs. */
static void check_one_bucket(const rec *r, size_t n, uint64_t position,
                             void (*change)(merkle_tree *, const rec *, size_t))
{
    merkle_tree *a = tree_new(RANGE_START, RANGE_END, 10);
    merkle_tree *b = tree_new(RANGE_START, RANGE_END, 10);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rec_add(a, &r[i]), RK_OK);
        assert_int_equal(rec_add(b, &r[i]), RK_OK);
    }
    change(b, r, n);
    merkle_finish(a);
    merkle_finish(b);
    assert_roots(a, b, false);

    size_t want;
    assert_int_equal(merkle_bucket_of(a, position, &want), RK_OK);
    size_t got[4], count = 0, compared = 0;
    assert_int_equal(merkle_diff(a, b, got, 4, &count, &compared), RK_OK);
    assert_int_equal(count, 1);
    assert_int_equal(got[0], want);
    /* one path down: a pair per level, plus the sibling at each level */
    assert_int_equal(compared, 1 + 2 * merkle_depth(a));
    assert_int_equal(merkle_diff(b, a, got, 4, &count, NULL), RK_OK);
    assert_int_equal(count, 1);
    assert_int_equal(got[0], want);

    uint64_t s, e;
    assert_int_equal(merkle_bucket_range(a, want, &s, &e), RK_OK);
    assert_true(s <= position && position < e);
    merkle_free(a);
    merkle_free(b);
}

static void change_value(merkle_tree *t, const rec *r, size_t n)
{
    (void)n;
    rec changed = r[7];
    changed.val ^= 1;
    assert_int_equal(rec_remove(t, &r[7]), RK_OK);
    assert_int_equal(rec_add(t, &changed), RK_OK);
}

static void drop_key(merkle_tree *t, const rec *r, size_t n)
{
    (void)n;
    assert_int_equal(rec_remove(t, &r[7]), RK_OK);
}

static rec extra;

static void add_key(merkle_tree *t, const rec *r, size_t n)
{
    (void)r;
    (void)n;
    assert_int_equal(rec_add(t, &extra), RK_OK);
}

static void test_merkle_one_difference_one_bucket(void **state)
{
    (void)state;
    rng_seed_from_env("one_difference_one_bucket");
    enum { N = 3000 };
    rec *r = malloc(N * sizeof *r);
    assert_non_null(r);
    random_recs(r, N, RANGE_START, RANGE_END);
    check_one_bucket(r, N, r[7].pos, change_value);
    check_one_bucket(r, N, r[7].pos, drop_key);
    /* a key that shares the position of an existing one (same bucket, other
     * key bytes) and one at a fresh position */
    extra = (rec){.pos = r[11].pos, .id = N + 1, .val = 5};
    check_one_bucket(r, N, extra.pos, add_key);
    extra = (rec){.pos = pos_in(RANGE_START, RANGE_END), .id = N + 2, .val = 5};
    check_one_bucket(r, N, extra.pos, add_key);
    free(r);
}

static void test_merkle_add_remove_restores_root(void **state)
{
    (void)state;
    rng_seed_from_env("add_remove_restores_root");
    enum { N = 1000 };
    rec *r = malloc(N * sizeof *r);
    assert_non_null(r);
    random_recs(r, N, RANGE_START, RANGE_END);
    merkle_tree *t = tree_new(RANGE_START, RANGE_END, 8);
    merkle_tree *ref = tree_new(RANGE_START, RANGE_END, 8);
    for (size_t i = 0; i < N / 2; i++) {
        assert_int_equal(rec_add(t, &r[i]), RK_OK);
        assert_int_equal(rec_add(ref, &r[i]), RK_OK);
    }
    merkle_finish(ref);

    for (size_t i = N / 2; i < N; i++)
        assert_int_equal(rec_add(t, &r[i]), RK_OK);
    /* changed since finish: no root until finished again */
    uint8_t root[MERKLE_HASH_BYTES];
    assert_int_equal(merkle_root(t, root), RK_EINVAL);
    size_t count;
    assert_int_equal(merkle_diff(t, ref, NULL, 0, &count, NULL), RK_EINVAL);
    merkle_finish(t);
    assert_roots(t, ref, false);

    for (size_t i = N; i-- > N / 2;)
        assert_int_equal(rec_remove(t, &r[i]), RK_OK);
    merkle_finish(t);
    assert_roots(t, ref, true);
    assert_int_equal(merkle_record_count(t), N / 2);

    /* removing from an empty bucket is refused and changes nothing */
    merkle_tree *empty = tree_new(RANGE_START, RANGE_END, 8);
    merkle_tree *empty2 = tree_new(RANGE_START, RANGE_END, 8);
    assert_int_equal(rec_remove(empty, &r[0]), RK_EINVAL);
    merkle_finish(empty);
    assert_roots(empty, empty2, true);
    /* a record added twice cancels in the XOR but not in the count */
    assert_int_equal(rec_add(empty, &r[0]), RK_OK);
    assert_int_equal(rec_add(empty, &r[0]), RK_OK);
    merkle_finish(empty);
    assert_roots(empty, empty2, false);

    merkle_free(empty);
    merkle_free(empty2);
    merkle_free(t);
    merkle_free(ref);
    free(r);
}

/* Buckets tile the range exactly: bucket_of and bucket_range agree on every
 * edge, including a width that 2^depth does not divide. */
static void check_tiling(uint64_t start, uint64_t end, unsigned depth)
{
    merkle_tree *t = tree_new(start, end, depth);
    size_t n = merkle_bucket_count(t), b;
    assert_int_equal(n, (size_t)1 << depth);
    assert_int_equal(merkle_bucket_of(t, start, &b), RK_OK);
    assert_int_equal(b, 0);
    assert_int_equal(merkle_bucket_of(t, end - 1, &b), RK_OK); /* end 0: 2^64 - 1 */
    assert_int_equal(b, n - 1);
    if (start > 0)
        assert_int_equal(merkle_bucket_of(t, start - 1, &b), RK_EINVAL);
    if (end != 0)
        assert_int_equal(merkle_bucket_of(t, end, &b), RK_EINVAL);

    uint64_t prev_end = start;
    for (size_t i = 0; i < n; i++) {
        uint64_t s, e;
        assert_int_equal(merkle_bucket_range(t, i, &s, &e), RK_OK);
        assert_true(s == prev_end);
        /* no bucket is empty; [0, 0) is the whole ring in one bucket */
        assert_true(e != s || (n == 1 && start == 0 && end == 0));
        assert_int_equal(merkle_bucket_of(t, s, &b), RK_OK);
        assert_int_equal(b, i);
        assert_int_equal(merkle_bucket_of(t, e - 1, &b), RK_OK);
        assert_int_equal(b, i);
        prev_end = e;
    }
    assert_true(prev_end == end); /* the last bucket ends where the range does */
    uint64_t s, e;
    assert_int_equal(merkle_bucket_range(t, n, &s, &e), RK_EINVAL);
    assert_int_equal(merkle_node_range(t, 0, 0, &s, &e), RK_OK);
    assert_true(s == start && e == end);
    merkle_free(t);
}

static void test_merkle_range_edges(void **state)
{
    (void)state;
    check_tiling(RANGE_START, RANGE_END, 10);
    check_tiling(1000, 1000 + 3 * 1024 + 7, 10); /* uneven widths */
    check_tiling(5, 5 + 1024, 10);               /* one position each */
    check_tiling(0xF000000000000000u, 0, 4);     /* to the top */
    check_tiling(0, 0, 10);                      /* the whole ring */
    check_tiling(UINT64_MAX - 1000, 0, 6);       /* 1001 positions up to 2^64 */
    check_tiling(0, 0, 0);

    merkle_tree *t = tree_new(0, 0, 10);
    uint64_t s, e;
    assert_int_equal(merkle_bucket_range(t, 1023, &s, &e), RK_OK);
    assert_true(s == UINT64_MAX - (UINT64_MAX >> 10) && e == 0);
    merkle_free(t);

    /* a record outside the range, or whose key names another position, is
     * refused and leaves the tree as it was */
    t = tree_new(RANGE_START, RANGE_END, 10);
    merkle_tree *ref = tree_new(RANGE_START, RANGE_END, 10);
    rec out_low = {.pos = RANGE_START - 1, .id = 1};
    rec out_high = {.pos = RANGE_END, .id = 2};
    rec edge_low = {.pos = RANGE_START, .id = 3};
    rec edge_high = {.pos = RANGE_END - 1, .id = 4};
    assert_int_equal(rec_add(t, &out_low), RK_EINVAL);
    assert_int_equal(rec_add(t, &out_high), RK_EINVAL);
    uint8_t k[DBKEY_LEN];
    make_dbkey(RANGE_START + 1, 9, k);
    assert_int_equal(merkle_add(t, RANGE_START + 2, k, sizeof k, "v", 1), RK_EINVAL);
    assert_int_equal(merkle_add(t, RANGE_START + 1, k, 7, "v", 1), RK_EINVAL);
    merkle_finish(t);
    assert_roots(t, ref, true);
    assert_int_equal(merkle_record_count(t), 0);

    assert_int_equal(rec_add(t, &edge_low), RK_OK);
    assert_int_equal(rec_add(t, &edge_high), RK_OK);
    merkle_finish(t);
    size_t got[4], count;
    assert_int_equal(merkle_diff(t, ref, got, 4, &count, NULL), RK_OK);
    assert_int_equal(count, 2);
    assert_int_equal(got[0], 0);
    assert_int_equal(got[1], 1023);

    /* trees over other ranges or depths cannot be compared */
    merkle_tree *other = tree_new(RANGE_START, RANGE_END, 9);
    assert_int_equal(merkle_diff(t, other, got, 4, &count, NULL), RK_EINVAL);
    merkle_free(other);
    other = tree_new(RANGE_START + 1, RANGE_END, 10);
    assert_int_equal(merkle_diff(t, other, got, 4, &count, NULL), RK_EINVAL);
    merkle_free(other);
    merkle_free(t);
    merkle_free(ref);
}

static int cmp_size(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    return (a > b) - (a < b);
}

static size_t sort_unique(size_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_size);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || v[m - 1] != v[i])
            v[m++] = v[i];
    return m;
}

/* A million records, 100 of them different (changed, missing or extra):
 * the diff names exactly their buckets, looking at a small part of the
 * tree, and exchanging one encoded level finds the same. */
static void test_merkle_diff_large(void **state)
{
    (void)state;
    rng_seed_from_env("diff_large");
    enum { N = 1 << 20, DIFFS = 100, DEPTH = 14 };
    rec *r = malloc(N * sizeof *r);
    assert_non_null(r);
    random_recs(r, N, 0, 0);
    merkle_tree *a = tree_new(0, 0, DEPTH);
    merkle_tree *b = tree_new(0, 0, DEPTH);

    /* r[i] for i = k * (N / DIFFS) differs: k % 3 == 0 changed in b, 1
     * missing from b, 2 only in b (an extra key) */
    size_t want[DIFFS];
    uint64_t t0 = rk_mono_ns();
    for (size_t i = 0; i < N; i++) {
        size_t k = i / (N / DIFFS);
        bool differs = i % (N / DIFFS) == 0 && k < DIFFS;
        if (!differs) {
            assert_int_equal(rec_add(a, &r[i]), RK_OK);
            assert_int_equal(rec_add(b, &r[i]), RK_OK);
            continue;
        }
        assert_int_equal(merkle_bucket_of(a, r[i].pos, &want[k]), RK_OK);
        rec changed = r[i];
        changed.val++;
        switch (k % 3) {
        case 0:
            assert_int_equal(rec_add(a, &r[i]), RK_OK);
            assert_int_equal(rec_add(b, &changed), RK_OK);
            break;
        case 1: assert_int_equal(rec_add(a, &r[i]), RK_OK); break;
        default: assert_int_equal(rec_add(b, &r[i]), RK_OK); break;
        }
    }
    merkle_finish(a);
    merkle_finish(b);
    uint64_t build_ns = rk_mono_ns() - t0;
    size_t nwant = sort_unique(want, DIFFS);

    size_t got[2 * DIFFS], count, compared;
    t0 = rk_mono_ns();
    assert_int_equal(merkle_diff(a, b, got, 2 * DIFFS, &count, &compared), RK_OK);
    uint64_t diff_ns = rk_mono_ns() - t0;
    assert_int_equal(count, nwant);
    assert_memory_equal(got, want, nwant * sizeof *want);
    /* at most two comparisons per level per differing bucket, and far
     * fewer than the 2^15 - 1 nodes of the tree */
    assert_true(compared <= 1 + 2 * DEPTH * nwant);
    printf("# %d records, %zu buckets differ: %zu of %d nodes compared; build %.0f ms, "
           "diff %.1f us\n",
           N, nwant, compared, (2 << DEPTH) - 1, (double)build_ns / 1e6, (double)diff_ns / 1e3);

    /* the same through encoded levels, as two replicas would exchange them */
    rk_buf buf = {0};
    merkle_level lvl;
    assert_int_equal(merkle_encode_level(b, DEPTH, &buf), RK_OK);
    assert_int_equal(merkle_decode_level(buf.data, buf.len, &lvl), RK_OK);
    assert_int_equal(merkle_diff_level(a, &lvl, got, 2 * DIFFS, &count), RK_OK);
    assert_int_equal(count, nwant);
    assert_memory_equal(got, want, nwant * sizeof *want);

    size_t coarse[DIFFS];
    for (size_t i = 0; i < nwant; i++)
        coarse[i] = want[i] >> (DEPTH - 6);
    size_t ncoarse = sort_unique(coarse, nwant);
    rk_buf_reset(&buf);
    assert_int_equal(merkle_encode_level(b, 6, &buf), RK_OK);
    assert_int_equal(merkle_decode_level(buf.data, buf.len, &lvl), RK_OK);
    assert_int_equal(merkle_diff_level(a, &lvl, got, 2 * DIFFS, &count), RK_OK);
    assert_int_equal(count, ncoarse);
    assert_memory_equal(got, coarse, ncoarse * sizeof *coarse);
    rk_buf_free(&buf);

    merkle_free(a);
    merkle_free(b);
    free(r);
}

static void test_merkle_level_round_trip(void **state)
{
    (void)state;
    rng_seed_from_env("level_round_trip");
    enum { N = 500, DEPTH = 5 };
    rec r[N];
    random_recs(r, N, RANGE_START, RANGE_END);
    merkle_tree *t = tree_new(RANGE_START, RANGE_END, DEPTH);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(rec_add(t, &r[i]), RK_OK);
    rk_buf buf = {0};
    assert_int_equal(merkle_encode_level(t, 0, &buf), RK_EINVAL); /* not finished */
    merkle_finish(t);
    assert_int_equal(merkle_encode_level(t, DEPTH + 1, &buf), RK_EINVAL);

    for (unsigned level = 0; level <= DEPTH; level++) {
        rk_buf_reset(&buf);
        assert_int_equal(merkle_encode_level(t, level, &buf), RK_OK);
        size_t full = MERKLE_LEVEL_HEADER_BYTES + ((size_t)MERKLE_HASH_BYTES << level);
        assert_int_equal(buf.len, full);
        merkle_level lvl;
        assert_int_equal(merkle_decode_level(buf.data, buf.len, &lvl), RK_OK);
        assert_true(lvl.start == RANGE_START && lvl.end == RANGE_END);
        assert_int_equal(lvl.depth, DEPTH);
        assert_int_equal(lvl.level, level);
        assert_int_equal(lvl.count, (size_t)1 << level);
        size_t count = 1;
        assert_int_equal(merkle_diff_level(t, &lvl, NULL, 0, &count), RK_OK);
        assert_int_equal(count, 0);
        if (level == 0) {
            uint8_t root[MERKLE_HASH_BYTES];
            assert_int_equal(merkle_root(t, root), RK_OK);
            assert_memory_equal(lvl.hashes, root, sizeof root);
        }

        /* every truncation, in an exact-length copy so a read past it shows
         * under the address sanitizer */
        for (size_t len = 0; len < full; len++) {
            uint8_t *cut = malloc(len ? len : 1);
            assert_non_null(cut);
            memcpy(cut, buf.data, len);
            assert_int_equal(merkle_decode_level(cut, len, &lvl), RK_ECORRUPT);
            free(cut);
        }
        /* a byte too many */
        assert_int_equal(rk_buf_append(&buf, "x", 1), RK_OK);
        assert_int_equal(merkle_decode_level(buf.data, buf.len, &lvl), RK_ECORRUPT);
    }

    /* a bad header: version, level past depth, reserved byte, bad range */
    rk_buf_reset(&buf);
    assert_int_equal(merkle_encode_level(t, 2, &buf), RK_OK);
    merkle_level lvl;
    uint8_t *p = (uint8_t *)buf.data;
    p[0] = 2;
    assert_int_equal(merkle_decode_level(p, buf.len, &lvl), RK_EUNSUPPORTED);
    p[0] = 1;
    p[2] = DEPTH + 1;
    assert_int_equal(merkle_decode_level(p, buf.len, &lvl), RK_ECORRUPT);
    p[2] = 2;
    p[3] = 1;
    assert_int_equal(merkle_decode_level(p, buf.len, &lvl), RK_ECORRUPT);
    p[3] = 0;
    memcpy(p + 12, p + 4, 8); /* end = start: empty range */
    assert_int_equal(merkle_decode_level(p, buf.len, &lvl), RK_ECORRUPT);

    /* a level of another range decodes but is not comparable */
    merkle_tree *other = tree_new(RANGE_START, RANGE_END + 1, DEPTH);
    rk_buf_reset(&buf);
    assert_int_equal(merkle_encode_level(other, 3, &buf), RK_OK);
    assert_int_equal(merkle_decode_level(buf.data, buf.len, &lvl), RK_OK);
    size_t count;
    assert_int_equal(merkle_diff_level(t, &lvl, NULL, 0, &count), RK_EINVAL);

    rk_buf_free(&buf);
    merkle_free(other);
    merkle_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merkle_alloc_rejects_bad_input),
        cmocka_unit_test(test_merkle_equal_sets_equal_roots),
        cmocka_unit_test(test_merkle_one_difference_one_bucket),
        cmocka_unit_test(test_merkle_add_remove_restores_root),
        cmocka_unit_test(test_merkle_range_edges),
        cmocka_unit_test(test_merkle_diff_large),
        cmocka_unit_test(test_merkle_level_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
