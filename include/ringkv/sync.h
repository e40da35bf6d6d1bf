/* sync.h - what moves records between nodes in the background: range
 * handoff, anti-entropy between the replicas of a ring range, tombstone
 * purge and the delivery of hints. */
#ifndef RINGKV_SYNC_H
#define RINGKV_SYNC_H

#include "ringkv/common.h"
#include "ringkv/merkle.h"
/* The sync service: one per node (src/sync/service.c and friends), on its own thread.
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
    /* No exchange but the ones asked for (sync_repair_now): none at start,
     * periodic, on ring changes or when a peer returns. For experiments
     * that measure what quorums and read repair alone do (false). */
    bool anti_entropy_off;
    uint64_t rate_bytes_per_sec; /* cap on bytes sent; 0 = none */
    uint64_t tombstone_grace_ms; /* age before a tombstone may be purged */
    bool deliver_hints;          /* hand held hints to their nodes (true;
                                    false: --handoff off) */
    uint32_t hint_interval_ms;   /* how often held hints are offered (1000) */
    /* Called once, from the sync thread, after a LEAVING node has handed
     * everything off and marked itself REMOVED: ringkvd stops the process. */
    void (*on_left)(void *arg);
    void *on_left_arg;
} sync_config;

void sync_config_default(sync_config *cfg);

/* Opens the service (all borrowed; close the service before them). No
 * thread yet. RK_EINVAL, RK_ENOMEM. */
rk_err sync_open(replica *rp, store *st, cluster_node *cn, rpc_client *client,
                 const sync_config *cfg, sync_service **out);
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
    uint64_t ranges_pending;    /* ranges with handoff work left (gauge) */
    uint64_t handoff_keys_sent; /* records pushed by handoff */
    uint64_t handoff_bytes_sent;
    uint64_t handoff_keys_dropped; /* local copies deleted once handed off */
    uint64_t keys_received;        /* records pushed here or pulled that changed
                                      this replica */
    uint64_t bytes_received;       /* bytes of sync messages received: requests
                                      this node answered, replies to its calls */
    uint64_t ae_exchanges;         /* anti-entropy exchanges completed */
    uint64_t ae_keys_compared;     /* keys compared by digest in differing buckets */
    uint64_t ae_keys_repaired;     /* keys sent or fetched because they differed */
    uint64_t ae_bytes_sent;        /* tree, digest and record bytes sent */
    uint64_t tombstones_purged;
    uint64_t hints_delivered; /* held writes their replica acknowledged */
    uint64_t hint_bytes_sent; /* bytes of Sync.Push calls carrying hints */
    bool leaving;             /* sync_leave was called */
} sync_stats;
void sync_get_stats(sync_service *s, sync_stats *out);

#endif
