/* merkle.c - Merkle trees over a ring range, for anti-entropy (sync.h). */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ringkv/merkle.h"

/* Positions are 64-bit and a range may be the whole ring (width 2^64), so
 * bucket arithmetic needs 128 bits: offset * 2^depth < 2^84. */
__extension__ typedef unsigned __int128 u128;

/* Domain tags keep a leaf's hash from ever equalling an inner node's, so a
 * leaf cannot be passed off as a subtree. */
static const uint8_t LEAF_TAG[] = "ringkv-merkle-leaf-v1";
static const uint8_t NODE_TAG[] = "ringkv-merkle-node-v1";
static const uint8_t RECORD_TAG[] = "ringkv-merkle-record-v1";

#define LEVEL_VERSION 1u

typedef struct leaf {
    uint8_t xor [MERKLE_HASH_BYTES]; /* XOR of the records' digests */
    uint64_t count;
} leaf;

struct merkle_tree {
    uint64_t start;
    uint64_t end; /* 0 = 2^64 */
    u128 width;   /* end - start, in 1 .. 2^64 */
    unsigned depth;
    size_t leaves; /* 2^depth */
    uint64_t records;
    bool finished;
    leaf *leaf; /* [leaves] */
    /* Node hashes in heap order: node 1 is the root, node i has children
     * 2i and 2i+1, the leaves' hashes are nodes [leaves, 2 * leaves).
     * Node 0 is unused so that the index arithmetic stays plain. */
    uint8_t (*node)[MERKLE_HASH_BYTES];
};

static u128 range_width(uint64_t start, uint64_t end)
{
    return (end == 0 ? ((u128)1 << 64) : (u128)end) - start;
}

static bool range_valid(uint64_t start, uint64_t end, unsigned depth)
{
    if (depth > MERKLE_MAX_DEPTH)
        return false;
    if (end != 0 && start >= end)
        return false;
    return range_width(start, end) >= ((u128)1 << depth);
}

rk_err merkle_alloc(uint64_t start, uint64_t end, unsigned depth, merkle_tree **out)
{
    if (!out || !range_valid(start, end, depth))
        return RK_EINVAL;
    if (sodium_init() < 0)
        return RK_EIO;
    merkle_tree *t = calloc(1, sizeof *t);
    if (!t)
        return RK_ENOMEM;
    t->start = start;
    t->end = end;
    t->width = range_width(start, end);
    t->depth = depth;
    t->leaves = (size_t)1 << depth;
    t->leaf = calloc(t->leaves, sizeof *t->leaf);
    t->node = calloc(2 * t->leaves, sizeof *t->node);
    if (!t->leaf || !t->node) {
        merkle_free(t);
        return RK_ENOMEM;
    }
    merkle_finish(t);
    *out = t;
    return RK_OK;
}

void merkle_free(merkle_tree *tree)
{
    if (!tree)
        return;
    free(tree->leaf);
    free(tree->node);
    free(tree);
}

static bool bucket_index(const merkle_tree *t, uint64_t position, size_t *out)
{
    if (position < t->start || (t->end != 0 && position >= t->end))
        return false;
    u128 offset = position - t->start;
    *out = (size_t)((offset << t->depth) / t->width);
    return true;
}

/* BLAKE2b-256 of (tag, u64 dbkey length, dbkey, value): the length makes
 * the split between key and value unambiguous, so (k, v) and (k', v') with
 * k||v == k'||v' still differ. */
static void record_digest(const void *dbkey, size_t dbkey_len, const void *value, size_t value_len,
                          uint8_t out[MERKLE_HASH_BYTES])
{
    crypto_generichash_state st;
    uint8_t len_be[8];
    rk_store_be64(len_be, (uint64_t)dbkey_len);
    crypto_generichash_init(&st, NULL, 0, MERKLE_HASH_BYTES);
    crypto_generichash_update(&st, RECORD_TAG, sizeof RECORD_TAG);
    crypto_generichash_update(&st, len_be, sizeof len_be);
    crypto_generichash_update(&st, dbkey, dbkey_len);
    crypto_generichash_update(&st, value, value_len);
    crypto_generichash_final(&st, out, MERKLE_HASH_BYTES);
}

/* Finds the record's bucket after checking what merkle_add documents. */
static rk_err locate(const merkle_tree *t, uint64_t position, const void *dbkey, size_t dbkey_len,
                     const void *value, size_t value_len, size_t *out)
{
    if (!t || (!dbkey && dbkey_len) || (!value && value_len))
        return RK_EINVAL;
    /* A record filed under another position than its key's would sit in a
     * bucket whose scan never finds it, and the replicas would differ on
     * that bucket forever. */
    if (dbkey_len < 8 || rk_load_be64(dbkey) != position)
        return RK_EINVAL;
    if (!bucket_index(t, position, out))
        return RK_EINVAL;
    return RK_OK;
}

static void leaf_xor(leaf *l, const uint8_t d[MERKLE_HASH_BYTES])
{
    for (size_t i = 0; i < MERKLE_HASH_BYTES; i++)
        l->xor [i] ^= d[i];
}

rk_err merkle_add(merkle_tree *tree, uint64_t position, const void *dbkey, size_t dbkey_len,
                  const void *value, size_t value_len)
{
    size_t b;
    rk_err err = locate(tree, position, dbkey, dbkey_len, value, value_len, &b);
    if (err != RK_OK)
        return err;
    uint8_t d[MERKLE_HASH_BYTES];
    record_digest(dbkey, dbkey_len, value, value_len, d);
    leaf_xor(&tree->leaf[b], d);
    tree->leaf[b].count++;
    tree->records++;
    tree->finished = false;
    return RK_OK;
}

rk_err merkle_remove(merkle_tree *tree, uint64_t position, const void *dbkey, size_t dbkey_len,
                     const void *value, size_t value_len)
{
    size_t b;
    rk_err err = locate(tree, position, dbkey, dbkey_len, value, value_len, &b);
    if (err != RK_OK)
        return err;
    if (tree->leaf[b].count == 0)
        return RK_EINVAL;
    uint8_t d[MERKLE_HASH_BYTES];
    record_digest(dbkey, dbkey_len, value, value_len, d);
    leaf_xor(&tree->leaf[b], d);
    tree->leaf[b].count--;
    tree->records--;
    tree->finished = false;
    return RK_OK;
}

/* The count is hashed with the XOR so that a bucket whose digests happen to
 * cancel (a record added twice by a caller's bug) still differs from an
 * empty one. */
static void leaf_hash(const leaf *l, uint8_t out[MERKLE_HASH_BYTES])
{
    crypto_generichash_state st;
    uint8_t count_be[8];
    rk_store_be64(count_be, l->count);
    crypto_generichash_init(&st, NULL, 0, MERKLE_HASH_BYTES);
    crypto_generichash_update(&st, LEAF_TAG, sizeof LEAF_TAG);
    crypto_generichash_update(&st, count_be, sizeof count_be);
    crypto_generichash_update(&st, l->xor, sizeof l->xor);
    crypto_generichash_final(&st, out, MERKLE_HASH_BYTES);
}

static void node_hash(const uint8_t left[MERKLE_HASH_BYTES], const uint8_t right[MERKLE_HASH_BYTES],
                      uint8_t out[MERKLE_HASH_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, MERKLE_HASH_BYTES);
    crypto_generichash_update(&st, NODE_TAG, sizeof NODE_TAG);
    crypto_generichash_update(&st, left, MERKLE_HASH_BYTES);
    crypto_generichash_update(&st, right, MERKLE_HASH_BYTES);
    crypto_generichash_final(&st, out, MERKLE_HASH_BYTES);
}

/* Rehashes everything rather than tracking dirty paths: at the default
 * depths it is well under a millisecond, and one anti-entropy round calls
 * it once per range. */
void merkle_finish(merkle_tree *tree)
{
    if (!tree || tree->finished)
        return;
    size_t n = tree->leaves;
    for (size_t i = 0; i < n; i++)
        leaf_hash(&tree->leaf[i], tree->node[n + i]);
    for (size_t i = n - 1; i >= 1; i--)
        node_hash(tree->node[2 * i], tree->node[2 * i + 1], tree->node[i]);
    tree->finished = true;
}

rk_err merkle_root(const merkle_tree *tree, uint8_t out[MERKLE_HASH_BYTES])
{
    if (!tree || !out || !tree->finished)
        return RK_EINVAL;
    /* With depth 0 the single leaf is node 1: the loop in merkle_finish
     * wrote it as a leaf hash, which is the root. */
    memcpy(out, tree->node[1], MERKLE_HASH_BYTES);
    return RK_OK;
}

unsigned merkle_depth(const merkle_tree *tree)
{
    return tree->depth;
}

size_t merkle_bucket_count(const merkle_tree *tree)
{
    return tree->leaves;
}

uint64_t merkle_record_count(const merkle_tree *tree)
{
    return tree->records;
}

rk_err merkle_bucket_of(const merkle_tree *tree, uint64_t position, size_t *out_index)
{
    size_t b;
    if (!tree || !out_index || !bucket_index(tree, position, &b))
        return RK_EINVAL;
    *out_index = b;
    return RK_OK;
}

/* The first offset of bucket i is ceil(i * width / 2^depth): the least o
 * with floor(o * 2^depth / width) >= i, so ranges and bucket_index agree
 * exactly, with no gap or overlap. */
static uint64_t bucket_start(const merkle_tree *t, size_t i)
{
    u128 num = (u128)i * t->width;
    u128 off = (num + ((u128)1 << t->depth) - 1) >> t->depth;
    return (uint64_t)(t->start + off); /* start + width wraps to 0 = top */
}

rk_err merkle_node_range(const merkle_tree *tree, unsigned level, size_t index, uint64_t *start,
                         uint64_t *end)
{
    if (!tree || !start || !end || level > tree->depth)
        return RK_EINVAL;
    unsigned shift = tree->depth - level;
    if (index >= ((size_t)1 << level))
        return RK_EINVAL;
    *start = bucket_start(tree, index << shift);
    *end = bucket_start(tree, (index + 1) << shift);
    return RK_OK;
}

rk_err merkle_node_hash(const merkle_tree *tree, unsigned level, size_t index,
                        uint8_t out[MERKLE_HASH_BYTES], uint64_t *out_count)
{
    if (!tree->finished || level > tree->depth || index >= ((size_t)1 << level))
        return RK_EINVAL;
    memcpy(out, tree->node[((size_t)1 << level) + index], MERKLE_HASH_BYTES);
    if (out_count != NULL) {
        size_t span = (size_t)1 << (tree->depth - level);
        uint64_t count = 0;
        for (size_t i = index * span; i < (index + 1) * span; i++)
            count += tree->leaf[i].count;
        *out_count = count;
    }
    return RK_OK;
}

rk_err merkle_bucket_range(const merkle_tree *tree, size_t index, uint64_t *start, uint64_t *end)
{
    if (!tree)
        return RK_EINVAL;
    return merkle_node_range(tree, tree->depth, index, start, end);
}

static bool same_shape(const merkle_tree *a, const merkle_tree *b)
{
    return a->start == b->start && a->end == b->end && a->depth == b->depth;
}

typedef struct diff_walk {
    const merkle_tree *a;
    const merkle_tree *b;
    size_t *out;
    size_t cap;
    size_t count;
    size_t compared;
} diff_walk;

/* Recursion is at most MERKLE_MAX_DEPTH + 1 deep. Left before right, so
 * buckets come out in increasing order. */
static void diff_node(diff_walk *w, size_t i)
{
    w->compared++;
    if (memcmp(w->a->node[i], w->b->node[i], MERKLE_HASH_BYTES) == 0)
        return;
    if (i >= w->a->leaves) {
        if (w->count < w->cap)
            w->out[w->count] = i - w->a->leaves;
        w->count++;
        return;
    }
    diff_node(w, 2 * i);
    diff_node(w, 2 * i + 1);
}

rk_err merkle_diff(const merkle_tree *a, const merkle_tree *b, size_t *out_buckets, size_t cap,
                   size_t *out_count, size_t *out_compared)
{
    if (!a || !b || !out_count || (cap && !out_buckets))
        return RK_EINVAL;
    if (!same_shape(a, b) || !a->finished || !b->finished)
        return RK_EINVAL;
    diff_walk w = {.a = a, .b = b, .out = out_buckets, .cap = cap};
    diff_node(&w, 1);
    *out_count = w.count;
    if (out_compared)
        *out_compared = w.compared;
    return RK_OK;
}

rk_err merkle_encode_level(const merkle_tree *tree, unsigned level, rk_buf *out)
{
    if (!tree || !out || !tree->finished || level > tree->depth)
        return RK_EINVAL;
    uint8_t head[MERKLE_LEVEL_HEADER_BYTES] = {LEVEL_VERSION, (uint8_t)tree->depth, (uint8_t)level,
                                               0};
    rk_store_be64(head + 4, tree->start);
    rk_store_be64(head + 12, tree->end);
    size_t n = (size_t)1 << level;
    rk_err err = rk_buf_reserve(out, sizeof head + n * MERKLE_HASH_BYTES);
    if (err != RK_OK)
        return err;
    err = rk_buf_append(out, head, sizeof head);
    if (err == RK_OK) /* nodes [2^level, 2^(level+1)) are the level, in order */
        err = rk_buf_append(out, tree->node[n], n * MERKLE_HASH_BYTES);
    return err;
}

rk_err merkle_decode_level(const void *data, size_t len, merkle_level *out)
{
    const uint8_t *p = data;
    if (!out || (!p && len))
        return RK_EINVAL;
    if (len < MERKLE_LEVEL_HEADER_BYTES)
        return RK_ECORRUPT;
    if (p[0] != LEVEL_VERSION)
        return RK_EUNSUPPORTED;
    unsigned depth = p[1], level = p[2];
    uint64_t start = rk_load_be64(p + 4), end = rk_load_be64(p + 12);
    if (p[3] != 0 || level > depth || !range_valid(start, end, depth))
        return RK_ECORRUPT;
    size_t n = (size_t)1 << level;
    if (len - MERKLE_LEVEL_HEADER_BYTES != n * MERKLE_HASH_BYTES)
        return RK_ECORRUPT;
    *out = (merkle_level){.start = start,
                          .end = end,
                          .depth = depth,
                          .level = level,
                          .count = n,
                          .hashes = p + MERKLE_LEVEL_HEADER_BYTES};
    return RK_OK;
}

rk_err merkle_diff_level(const merkle_tree *tree, const merkle_level *remote, size_t *out_nodes,
                         size_t cap, size_t *out_count)
{
    if (!tree || !remote || !out_count || (cap && !out_nodes) || !tree->finished)
        return RK_EINVAL;
    if (remote->start != tree->start || remote->end != tree->end || remote->depth != tree->depth ||
        remote->level > tree->depth || remote->count != ((size_t)1 << remote->level))
        return RK_EINVAL;
    size_t count = 0;
    for (size_t i = 0; i < remote->count; i++) {
        if (memcmp(tree->node[remote->count + i], remote->hashes + i * MERKLE_HASH_BYTES,
                   MERKLE_HASH_BYTES) == 0)
            continue;
        if (count < cap)
            out_nodes[count] = i;
        count++;
    }
    *out_count = count;
    return RK_OK;
}
