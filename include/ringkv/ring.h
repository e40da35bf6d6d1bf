/* ring.h - placement of records on the 64-bit consistent-hash ring. */
#ifndef RINGKV_RING_H
#define RINGKV_RING_H

#include "ringkv/common.h"

/* Position of (table, key) on the ring: the first 8 bytes, big-endian, of a
 * keyed hash of `table \0 key`. The hash key is a fixed constant, not a
 * secret: every node of every cluster must compute the same positions. */
uint64_t ring_position(const char *table, size_t table_len, const char *key, size_t key_len);

/* ---- the ring: who holds which positions ------------------------------ */

/* The ring is cut into `partitions` equal, fixed ranges (a power of two, so
 * a position's range is its top bits). Each range ranks every member by a
 * rendezvous weight, hash(node, range): the preference list of the range is
 * the members in falling weight order, the first n are its replicas and the
 * rest are its fallbacks. docs/ring.md says why (64 random tokens per node
 * could not keep every share within 15% of fair) and fixes the hashes.
 *
 * Properties every caller may rely on:
 * - A pure function of the member set and the parameters: order of the ids
 *   given to ring_build does not matter; equal inputs give equal rings and
 *   equal ring_version on every node.
 * - Range boundaries depend on `partitions` only, never on the members, so
 *   a range index names the same positions in every ring of a cluster.
 * - Adding a member only moves ranges (or replica slots) to that member;
 *   removing one only moves its own away. Nothing moves between two others.
 * - A ring is immutable once built and reference-counted: share it with
 *   ring_ref, drop it with ring_unref, publish it with a ring_slot. */

typedef struct ring ring_t;

typedef struct ring_params {
    uint32_t n;          /* replicas per range, 1..RING_MAX_N */
    uint32_t partitions; /* ranges, a power of two, 1..RING_MAX_PARTITIONS */
} ring_params;

#define RING_DEFAULT_N 3u
/* Fixed for the life of a cluster (changing it moves almost every key).
 * 65536 keeps every node within 15% of fair up to ~60 nodes (docs/ring.md);
 * the table costs 16 bytes per range. */
#define RING_DEFAULT_PARTITIONS 65536u
#define RING_MAX_N 16u
#define RING_MAX_PARTITIONS (1u << 20)
/* Members are held as 16-bit indices and building costs partitions x
 * members hashes; 4096 is far past any cluster this store aims at. */
#define RING_MAX_MEMBERS 4096u

/* Fills *params with RING_DEFAULT_N and RING_DEFAULT_PARTITIONS. */
void ring_params_default(ring_params *params);

/* Builds the ring of members[0..count) (64-bit node ids, any order). On
 * success *out holds one reference: free it with ring_unref. RK_EINVAL if
 * count is 0 or over RING_MAX_MEMBERS, an id repeats, or params are out of
 * range; RK_ENOMEM; RK_EIO if libsodium fails to initialise. The caller
 * keeps members. Costs about partitions x
 * count cheap hashes (~8 ms for 10 members at the default). */
rk_err ring_build(const uint64_t *members, size_t count, const ring_params *params, ring_t **out);

/* Takes one more reference to ring and returns it. Thread-safe. */
ring_t *ring_ref(ring_t *ring);
/* Drops one reference; the last one frees the ring. NULL is a no-op.
 * Thread-safe; a ring must not be used after its caller's unref. */
void ring_unref(ring_t *ring);

/* ---- the ring's identity ---------------------------------------------- */

/* 64-bit hash of the sorted member ids, n, partitions and the placement
 * scheme: two nodes with equal versions have equal rings (barring a 2^-64
 * collision), so gossip can compare rings without sending them. */
uint64_t ring_version(const ring_t *ring);
void ring_get_params(const ring_t *ring, ring_params *out);
size_t ring_member_count(const ring_t *ring);
/* The index-th member id in increasing id order, index < member count. */
uint64_t ring_member_id(const ring_t *ring, size_t index);
bool ring_has_member(const ring_t *ring, uint64_t node_id);
/* Replicas per range: min(n, member count). */
size_t ring_replica_count(const ring_t *ring);

/* ---- lookups: O(1), no allocation, safe from any thread ----------------- */

/* Writes the preference list of position into out_ids[0..max): the
 * ring_replica_count() replicas first, in order (out_ids[0] is the first
 * owner), then the fallbacks for a sloppy quorum, each node once. Returns
 * how many it wrote: min(max, member count); out_ids must have room for
 * max ids (max may be 0). The first few fallbacks are
 * precomputed; asking for more than n + 5 costs O(members) per extra id. */
size_t ring_preference_list(const ring_t *ring, uint64_t position, uint64_t *out_ids, size_t max);

/* ---- ranges: what handoff, anti-entropy and listing scan ----------------- */

/* One contiguous range of positions [start, end). end == 0 means the range
 * runs to the top of the ring (2^64), which only the last range does. In
 * the store's key order (8-byte big-endian position first) a range is one
 * scan: from start, up to end (no upper bound when end == 0). */
typedef struct ring_range {
    uint32_t index; /* 0 .. ring_range_count()-1, in increasing position */
    uint64_t start;
    uint64_t end;
} ring_range;

/* Number of ranges: the partitions parameter. */
size_t ring_range_count(const ring_t *ring);
/* Fills *out with range index (index < ring_range_count). */
void ring_range_at(const ring_t *ring, size_t index, ring_range *out);
/* The range that holds position. */
void ring_range_of(const ring_t *ring, uint64_t position, ring_range *out);
bool ring_range_contains(const ring_range *range, uint64_t position);
/* As ring_preference_list, for every position of range index. */
size_t ring_range_preference_list(const ring_t *ring, size_t index, uint64_t *out_ids, size_t max);
/* Where node_id stands in range index's preference list: 0 for the first
 * owner, < ring_replica_count() for a replica. RK_ENOTFOUND if node_id is
 * not a member. O(1) for replicas and the precomputed fallbacks. */
rk_err ring_range_rank(const ring_t *ring, size_t index, uint64_t node_id, size_t *out_rank);

/* ---- ownership --------------------------------------------------------- */

/* Fractions of the 2^64 ring for which node_id is the first replica
 * (*first) and any of the replicas (*replica; the members' replica shares
 * sum to ring_replica_count()). Either pointer may be NULL. RK_ENOTFOUND
 * if node_id is not a member. */
rk_err ring_owner_share(const ring_t *ring, uint64_t node_id, double *first, double *replica);

/* ---- publishing the current ring ---------------------------------------- */

/* A slot holds the current ring for many readers and an occasional writer.
 * A reader's ring_slot_get takes a reference under a mutex held for one
 * pointer load and one atomic increment, then works with the snapshot lock-free for as long as it
 * likes; a writer's ring_slot_set swaps in a new ring. (Loading a bare
 * pointer and then calling ring_ref would race with the writer's unref.) */
typedef struct ring_slot ring_slot;

/* Allocates an empty slot; free it with ring_slot_free. RK_ENOMEM. */
rk_err ring_slot_alloc(ring_slot **out);
/* Drops the slot's reference to its ring and frees the slot. NULL is a no-op. */
void ring_slot_free(ring_slot *slot);
/* Returns a new reference to the current ring (free it with ring_unref), or
 * NULL if the slot holds none. */
ring_t *ring_slot_get(ring_slot *slot);
/* Makes ring (may be NULL) current; the slot takes its own reference, the
 * caller keeps its one. The previous ring is unref'd outside the lock. */
void ring_slot_set(ring_slot *slot, ring_t *ring);

#endif
