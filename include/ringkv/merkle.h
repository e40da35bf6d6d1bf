/* merkle.h - a Merkle tree over the records of one ring range, the pure
 * core of anti-entropy (src/merkle; driven by the sync service). */
#ifndef RINGKV_MERKLE_H
#define RINGKV_MERKLE_H

#include "ringkv/common.h"

/* A Merkle tree over the records of one ring range [start, end) (end == 0:
 * to the top of the ring, 2^64), so that two replicas can find the few
 * positions where they differ without sending their keys. docs/anti-entropy.md
 * says why it is built this way.
 *
 * - The range is cut into 2^depth leaves ("buckets") of equal width by
 *   position: bucket i holds offsets o = position - start with
 *   floor(o * 2^depth / width) == i. A bucket is one contiguous scan of the
 *   store (merkle_bucket_range), because data keys begin with the position.
 * - A record's digest is a 256-bit BLAKE2b (crypto_generichash) of its data
 *   key and its encoded object. A leaf holds the XOR of its records' digests
 *   and their count, so adding or removing a record is O(1) and needs no
 *   order: a tree can follow the store write by write or be built from one
 *   scan, and equal record sets give equal trees in any insertion order.
 * - A leaf's node hash is BLAKE2b(tag, count, xor); an inner node's is
 *   BLAKE2b(tag, left, right). Equal roots mean equal trees (barring a
 *   2^-128 collision), and a diff walks down only where hashes differ.
 *
 * A tree is plain memory: not thread-safe, no global state, no I/O. Adding
 * and removing never allocate. After any add or remove, merkle_finish must
 * run before merkle_root, merkle_diff or merkle_encode_level. */

typedef struct merkle_tree merkle_tree;

#define MERKLE_HASH_BYTES 32u
/* 2^20 leaves cost 104 MiB (40 bytes a leaf, 64 bytes of node hashes a
 * leaf); more buys nothing for ranges of a few thousand keys. */
#define MERKLE_MAX_DEPTH 20u

/* Allocates an empty tree over [start, end) with 2^depth leaves; free it
 * with merkle_free. RK_EINVAL if depth > MERKLE_MAX_DEPTH, the range is
 * empty or wraps (start >= end with end != 0), or it is narrower than
 * 2^depth positions (a bucket would be empty); RK_ENOMEM; RK_EIO if
 * libsodium fails to initialise. The empty tree is finished. */
rk_err merkle_alloc(uint64_t start, uint64_t end, unsigned depth, merkle_tree **out);
/* Frees the tree. NULL is a no-op. */
void merkle_free(merkle_tree *tree);

/* Adds the record stored under dbkey (a `data` key, store.h: it must begin
 * with position, 8 bytes big-endian) whose encoded object is value. No
 * allocation. RK_EINVAL if position is outside the tree's range or does
 * not match dbkey's first 8 bytes; the tree is then unchanged. The caller
 * must not add one dbkey twice without removing it in between (the XOR
 * would cancel): to change a record, remove its old bytes, add the new. */
rk_err merkle_add(merkle_tree *tree, uint64_t position, const void *dbkey, size_t dbkey_len,
                  const void *value, size_t value_len);
/* Removes a record added earlier with the same arguments (the XOR is its
 * own inverse). RK_EINVAL as merkle_add, or if the bucket holds no record;
 * removing bytes that were never added corrupts the bucket, which the next
 * anti-entropy round then repairs by a scan. */
rk_err merkle_remove(merkle_tree *tree, uint64_t position, const void *dbkey, size_t dbkey_len,
                     const void *value, size_t value_len);

/* Computes the node hashes from the leaves: 2^(depth+1) - 1 hashes (about
 * 0.3 ms at depth 10). Idempotent. */
void merkle_finish(merkle_tree *tree);

/* Copies the root hash to out. RK_EINVAL if the tree changed since the last
 * merkle_finish. */
rk_err merkle_root(const merkle_tree *tree, uint8_t out[MERKLE_HASH_BYTES]);

unsigned merkle_depth(const merkle_tree *tree);
size_t merkle_bucket_count(const merkle_tree *tree); /* 2^depth */
uint64_t merkle_record_count(const merkle_tree *tree);

/* The bucket that holds position. RK_EINVAL if outside the range. */
rk_err merkle_bucket_of(const merkle_tree *tree, uint64_t position, size_t *out_index);
/* The positions [*start, *end) of bucket index, for a store scan; *end == 0
 * means the top of the ring. RK_EINVAL if index >= merkle_bucket_count. */
rk_err merkle_bucket_range(const merkle_tree *tree, size_t index, uint64_t *start, uint64_t *end);
/* The same for node index of level (0 = root, depth = the leaves), which
 * covers buckets [index << (depth - level), (index + 1) << (depth - level)). */
rk_err merkle_node_range(const merkle_tree *tree, unsigned level, size_t index, uint64_t *start,
                         uint64_t *end);

/* The hash of node index of level (0 = root, depth = the leaves) of a
 * finished tree, and (out_count, may be NULL) how many records lie under
 * it. RK_EINVAL if not finished or out of range. The exchange between
 * replicas (src/sync/exchange.c) asks for the nodes under those that
 * differ, a few levels at a time. */
rk_err merkle_node_hash(const merkle_tree *tree, unsigned level, size_t index,
                        uint8_t out[MERKLE_HASH_BYTES], uint64_t *out_count);

/* Compares two finished trees over the same range and depth, walking down
 * only under nodes whose hashes differ. Writes up to cap differing bucket
 * indices, in increasing order, to out_buckets (may be NULL if cap is 0);
 * *out_count gets how many buckets differ (may exceed cap) and
 * *out_compared, if not NULL, how many node pairs were compared (1 when the
 * roots are equal). RK_EINVAL if the trees are not comparable or not
 * finished. */
rk_err merkle_diff(const merkle_tree *a, const merkle_tree *b, size_t *out_buckets, size_t cap,
                   size_t *out_count, size_t *out_compared);

/* ---- exchanging one level ------------------------------------------------ */

/* Two replicas exchange the node hashes of one level, not whole trees: a
 * root first, then (if it differs) a level deep enough to name the
 * differing buckets, then only those buckets' keys. The encoding (all
 * integers big-endian):
 *     u8 version (1) | u8 depth | u8 level | u8 0 | u64 start | u64 end
 *     | 2^level node hashes of MERKLE_HASH_BYTES each, left to right
 * so it says which range and shape it describes and is checked against the
 * local tree before use. */

#define MERKLE_LEVEL_HEADER_BYTES 20u

/* A decoded level. hashes points into the buffer it was decoded from. */
typedef struct merkle_level {
    uint64_t start;
    uint64_t end;
    unsigned depth;
    unsigned level;
    size_t count;          /* 2^level */
    const uint8_t *hashes; /* count x MERKLE_HASH_BYTES */
} merkle_level;

/* Appends the encoding of level (0..depth) of a finished tree to out.
 * RK_EINVAL if level > depth or the tree is not finished; RK_ENOMEM. */
rk_err merkle_encode_level(const merkle_tree *tree, unsigned level, rk_buf *out);
/* Decodes data[0..len) into *out without copying: out->hashes points into
 * data. RK_ECORRUPT if the bytes are truncated, too long or describe an
 * impossible tree; RK_EUNSUPPORTED for another version. */
rk_err merkle_decode_level(const void *data, size_t len, merkle_level *out);
/* Compares a decoded remote level with the same level of a finished local
 * tree: writes up to cap indices (of nodes at that level, increasing) whose
 * hashes differ to out_nodes, and how many differ to *out_count. Turn them
 * into scan ranges with merkle_node_range. RK_EINVAL if the level describes
 * another range or depth, or the tree is not finished. */
rk_err merkle_diff_level(const merkle_tree *tree, const merkle_level *remote, size_t *out_nodes,
                         size_t cap, size_t *out_count);

#endif
