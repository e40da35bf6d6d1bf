/* sync.h - what moves records between nodes in the background: range
 * handoff, anti-entropy between the replicas of a ring range, tombstone
 * purge and the delivery of hints. */
#ifndef RINGKV_SYNC_H
#define RINGKV_SYNC_H

#include "ringkv/common.h"

/* ---- merkle ------------------------------------------------------------- */

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
rk_err merkle_remove(merkle_tree *tree, uint64_t position, const void *dbkey,
                     size_t dbkey_len, const void *value, size_t value_len);

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
rk_err merkle_bucket_range(const merkle_tree *tree, size_t index, uint64_t *start,
                           uint64_t *end);
/* The same for node index of level (0 = root, depth = the leaves), which
 * covers buckets [index << (depth - level), (index + 1) << (depth - level)). */
rk_err merkle_node_range(const merkle_tree *tree, unsigned level, size_t index,
                         uint64_t *start, uint64_t *end);

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

/* ==== the sync service: range handoff, anti-entropy, tombstone purge, =====
 * ==== hint delivery ========================================================
 *
 * One per node (src/sync/service.c and friends), on its own thread.
 * docs/anti-entropy.md and docs/membership.md ("Changing the ring") say how
 * it works. In short:
 *
 * - Two rings. While a member is JOINING or LEAVING, the view carries the
 *   ring that serves reads (MEMBER + LEAVING: who holds the data) and the
 *   next ring (JOINING + MEMBER: who will). A range's holders are the
 *   union of its replicas in both.
 * - Handoff. A node that holds data in a range it does not own in the next
 *   ring streams that range to the next ring's replicas in bounded batches
 *   (Sync.Digests first, so only what a replica lacks is sent; Sync.Push
 *   merges), and deletes its copy only once every one of them acked, and
 *   only if the copy did not change meanwhile. Where a range gains a
 *   replica and no holder loses it, its first replica sends it. The work
 *   is derived from the store and the view alone, so a node killed in the
 *   middle simply starts again after a restart; a merge of what is already
 *   there changes nothing, so nothing is duplicated.
 * - A JOINING node becomes MEMBER once every ring member reports no range
 *   left to send (Sync.Status); a LEAVING node becomes REMOVED once it has
 *   handed everything off, and then the process stops (on_left).
 * - Anti-entropy. Every anti_entropy_interval_ms, when a peer comes back,
 *   and on sync_repair_now, a node compares with each peer a Merkle tree
 *   over the ranges both hold (built by one scan; see the docs for why not
 *   kept incrementally), walks down only where hashes differ, compares the
 *   keys of the differing buckets by digest and exchanges only the keys
 *   that differ, both ways.
 * - Tombstones. A key whose siblings are all tombstones and whose newest
 *   one is older than tombstone_grace_ms is purged once every other holder
 *   of its range holds the same tombstone or nothing; an unreachable holder
 *   blocks the purge, so a replica that missed the delete learns it first.
 * - Hints. Every hint_interval_ms, the writes this node holds for a
 *   replica that missed them (the coordinator, kv, stores them) go to that
 *   replica once the view says it is alive, a batch per Sync.Push marked
 *   hints_for; each is deleted after the ack, only if it did not change
 *   meanwhile. A node that takes no hints (--handoff off) refuses them and
 *   the sender keeps them.
 * - Every byte sent for handoff, anti-entropy and hints goes through one
 *   token bucket of rate_bytes_per_sec, and one batch is in flight per
 *   peer, so a join does not starve client traffic. */

#include "ringkv/cluster_node.h"
#include "ringkv/replica.h"
#include "ringkv/rpc.h"
#include "ringkv/store.h"

typedef struct sync_service sync_service;

#define SYNC_DEFAULT_INTERVAL_MS 1000u
#define SYNC_DEFAULT_ANTI_ENTROPY_INTERVAL_MS 60000u
#define SYNC_DEFAULT_RATE_BYTES (32u * 1024u * 1024u)
#define SYNC_DEFAULT_TOMBSTONE_GRACE_MS (10u * 60u * 1000u)
#define SYNC_DEFAULT_HINT_INTERVAL_MS 1000u

typedef struct sync_config {
    uint32_t interval_ms;              /* how often handoff work is looked for */
    uint32_t anti_entropy_interval_ms; /* periodic exchanges; 0 = only on demand */
    uint64_t rate_bytes_per_sec;       /* cap on bytes sent; 0 = none */
    uint64_t tombstone_grace_ms;       /* age before a tombstone may be purged */
    bool deliver_hints;                /* hand held hints to their nodes (true;
                                          false: --handoff off) */
    uint32_t hint_interval_ms;         /* how often held hints are offered (1000) */
    /* Called once, from the sync thread, after a LEAVING node has handed
     * everything off and marked itself REMOVED: ringkvd stops the process. */
    void (*on_left)(void *arg);
    void *on_left_arg;
} sync_config;

void sync_config_default(sync_config *cfg);

/* Opens the service (all borrowed; close the service before them). No
 * thread yet. RK_EINVAL, RK_ENOMEM. */
rk_err sync_open(replica *rp, store *st, cluster_node *cn, rpc_client *client, const sync_config *cfg,
                 sync_service **out);
/* The Sync service's handlers for rpc_server_open. */
size_t sync_rpc_handlers(sync_service *s, rpc_handler *out, size_t cap);
/* Starts the thread; call once the RPC server listens. */
rk_err sync_start(sync_service *s);
/* Stops the background thread (handoff, anti-entropy, purge); call it
 * before closing the RPC server, which waits for the requests the service
 * still answers. NULL is a no-op. */
void sync_stop(sync_service *s);
/* Stops everything and frees. Call it after the HTTP server and the RPC
 * server are closed (their handlers use it). NULL is a no-op. */
void sync_close(sync_service *s);

/* `ringkv cluster leave`: marks this node LEAVING; the thread hands off
 * every range, marks it REMOVED and calls on_left. RK_OK also when already
 * leaving; RK_EBUSY when this is the last member of the ring (nobody to
 * hand to) or the node is still JOINING. */
rk_err sync_leave(sync_service *s);
/* `ringkv cluster remove NODE`: marks a dead member REMOVED; the survivors
 * re-replicate its ranges (handoff to the new replicas, then
 * anti-entropy). RK_ENOTFOUND for an unknown id, RK_EINVAL for this node,
 * RK_EBUSY when this node does not see it DOWN. RK_OK when already
 * removed. */
rk_err sync_remove(sync_service *s, uint64_t node_id);
/* `ringkv cluster repair`: an anti-entropy round with every peer, now. */
void sync_repair_now(sync_service *s);

/* Counters for /cluster and /metrics. */
typedef struct sync_stats {
    uint64_t ranges_pending;      /* ranges with handoff work left (gauge) */
    uint64_t handoff_keys_sent;   /* records pushed by handoff */
    uint64_t handoff_bytes_sent;
    uint64_t handoff_keys_dropped;/* local copies deleted once handed off */
    uint64_t keys_received;       /* records pushed here or pulled that changed
                                     this replica */
    uint64_t bytes_received;      /* bytes of sync messages received: requests
                                     this node answered, replies to its calls */
    uint64_t ae_exchanges;        /* anti-entropy exchanges completed */
    uint64_t ae_keys_compared;    /* keys compared by digest in differing buckets */
    uint64_t ae_keys_repaired;    /* keys sent or fetched because they differed */
    uint64_t ae_bytes_sent;       /* tree, digest and record bytes sent */
    uint64_t tombstones_purged;
    uint64_t hints_delivered;     /* held writes their replica acknowledged */
    uint64_t hint_bytes_sent;     /* bytes of Sync.Push calls carrying hints */
    bool leaving;                 /* sync_leave was called */
} sync_stats;
void sync_get_stats(sync_service *s, sync_stats *out);

#endif
