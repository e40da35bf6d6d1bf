/* kv.h - the key-value service a node offers its gateway: get, put, delete
 * and listing of (table, key) records with Dynamo semantics.
 *
 * Every get and put is coordinated over the key's preference list
 * (docs/architecture.md, "The coordinator"): ask the replicas, answer when
 * R or W replied, read repair, sloppy quorum, hints for replicas that
 * missed a write and their handoff. A node alone is a one-member cluster:
 * while the ring has fewer members than N, a key has as many replicas as
 * there are members and R and W are met by all of them (DESIGN.md).
 *
 * Layers: kv sits on the replica layer (this node's copy) and reaches the
 * other replicas through rpc; the gateway (http) sits on kv. */
#ifndef RINGKV_KV_H
#define RINGKV_KV_H

#include "ringkv/clock.h"
#include "ringkv/cluster_node.h"
#include "ringkv/common.h"
#include "ringkv/pbs.h"
#include "ringkv/replica.h"
#include "ringkv/rpc.h"

/* The longest names (replica.h says which are valid). */
#define KV_TABLE_MAX REPLICA_TABLE_MAX
#define KV_KEY_MAX REPLICA_KEY_MAX

typedef struct kv kv;

typedef struct kv_config {
    unsigned n, r, w;       /* replicas, default read / write quorum */
    size_t max_siblings;    /* cap per key (default 16) */
    size_t max_value_bytes; /* compact JSON text (default 1 MiB) */
    uint32_t timeout_ms;    /* default quorum wait (1000) */
    /* Store hints for replicas that missed a write, and take the ones held
     * for this node (true; false: --handoff off). Their delivery is the
     * sync service's (sync_config.deliver_hints, hint_interval_ms). */
    bool handoff;
    /* Reads ask R replicas; the others are asked when one of those has
     * not answered within the speculative delay (drawn from recent replica
     * latencies) or failed. 0 = derive it; see docs/architecture.md. */
    uint32_t speculative_ms;
    /* Percent of reads that ask all replicas, so read repair reaches the
     * ones a targeted read leaves out (default 10). */
    unsigned read_repair_percent;
} kv_config;

void kv_config_default(kv_config *cfg);

/* The replica layer's part of cfg (caps and whether hints are taken). */
void kv_config_replica(const kv_config *cfg, replica_config *out);

/* Opens the service: rp is this node's copy, cn the membership, client
 * the RPC client to the other nodes (all borrowed: close kv before them).
 * No thread. Free with kv_close, before closing cn and client. RK_EINVAL
 * for a bad config. */
rk_err kv_open(replica *rp, cluster_node *cn, rpc_client *client, const kv_config *cfg, kv **out);
/* Frees k. Gets and puts must have stopped. NULL is a no-op. */
void kv_close(kv *k);
const kv_config *kv_get_config(const kv *k);
rk_actor kv_node_id(const kv *k);

typedef struct kv_key {
    const char *table;
    size_t table_len;
    const char *key;
    size_t key_len;
} kv_key;

/* ---- operations -------------------------------------------------------- */

typedef struct kv_read_opts {
    unsigned r;          /* 0 = the configured default */
    uint32_t timeout_ms; /* 0 = default */
    bool local;          /* this replica alone, no quorum */
    bool strict;         /* no fallbacks (?sloppy=false) */
} kv_read_opts;

typedef struct kv_write {
    kv_key key;
    const char *value; /* compact JSON text; ignored for a delete */
    size_t value_len;
    bool tombstone;         /* a delete */
    const vclock *context;  /* NULL = blind write after the local version */
    const vclock *if_match; /* NULL = unconditional */
    bool if_none_match;     /* create only */
    const char *owner;      /* "" when auth is off */
    unsigned w;             /* 0 = configured default */
    uint32_t timeout_ms;
    bool strict; /* no fallbacks (?sloppy=false) */
} kv_write;

/* Most nodes one request talks to (2 N during a join). */
#define KV_MAX_TARGETS 32

/* The object as read or as written. Free with kv_result_free. */
typedef struct kv_result {
    rk_object obj;
    bool existed;    /* a write: the key had a live value before */
    clock_dot dot;   /* a write: the dot it issued */
    unsigned acks;   /* replicas that answered */
    unsigned needed; /* replicas the quorum asked for */
    /* Replicas the key has while the ring has fewer members than N (each
     * member holds it, and R and W were met by all of them); 0 when the
     * ring has N members or more. X-Ringkv-Under-Replicated shows it. */
    unsigned under_replicated;
    /* Who made the quorum (X-Ringkv-Replicas): the nodes that answered a
     * read or acked a write by the time the answer was given. */
    uint64_t answered[KV_MAX_TARGETS];
    size_t answered_count;
    /* Fallbacks among them, each with the replica it stood in for
     * (X-Ringkv-Fallbacks). */
    uint64_t fallback[KV_MAX_TARGETS];
    uint64_t fallback_for[KV_MAX_TARGETS];
    size_t fallback_count;
} kv_result;

void kv_result_free(kv_result *res);

/* Reads (table, key). RK_ENOTFOUND when absent; a key whose siblings are
 * all tombstones is returned with RK_OK and object_live_count 0, so the
 * caller can hand out its context. RK_EQUORUM with res->acks/needed set
 * when fewer than r replicas answered. */
rk_err kv_get(kv *k, const kv_key *key, const kv_read_opts *opts, kv_result *res);

/* Writes (or deletes) as docs/causality.md says. RK_EPRECOND when a
 * condition fails, RK_ENOTFOUND for a delete of a key with no live value
 * (nothing written), RK_ETOOBIG over max_value_bytes, RK_EQUORUM with
 * acks/needed. On RK_EQUORUM the write may still have been applied on the
 * replicas that answered (as in Dynamo: not acknowledged, not undone). */
rk_err kv_put(kv *k, const kv_write *w, kv_result *res);

/* Where a key lives in this node's view of the ring, as a request with a
 * sloppy quorum would address it now. */
typedef struct kv_placement {
    uint64_t position; /* ring_position of (table, key) */
    uint32_t range;    /* its range of the read ring */
    /* The intended replicas: the read ring's, then (while the range moves
     * to a joining node) the last `pending` of them, the next ring's. */
    uint64_t replicas[KV_MAX_TARGETS];
    size_t replica_count, pending;
    /* The read ring's fallbacks, in the order they would stand in. */
    uint64_t fallbacks[KV_MAX_TARGETS];
    size_t fallback_count;
    /* Who stands in now: stand_in[i] for the down replica stand_in_for[i]. */
    uint64_t stand_in[KV_MAX_TARGETS], stand_in_for[KV_MAX_TARGETS];
    size_t stand_in_count;
} kv_placement;

/* Fills *out with the placement of key (the same plan kv_get and kv_put
 * follow). RK_EINVAL for a bad table or key; RK_EQUORUM when every member
 * was removed (nobody holds anything). No I/O. */
rk_err kv_placement_of(kv *k, const kv_key *key, kv_placement *out);

/* The tables this node has stored records of, sorted (replica_tables_list:
 * free *out with free()). */
rk_err kv_tables(kv *k, replica_table_name **out, size_t *out_count);

/* Visits the records of table in ring order, starting after `after` (NULL
 * = from the beginning), skipping keys whose siblings are all tombstones.
 * visit_cb returns false to stop. Pointers are valid during the call only. */
typedef replica_visit_cb kv_visit_cb;
rk_err kv_scan(kv *k, const char *table, size_t table_len, const char *after, size_t after_len,
               kv_visit_cb visit_cb, void *arg);

/* Counters for /metrics. */
typedef struct kv_stats {
    uint64_t reads, writes, deletes;
    uint64_t siblings_dropped;  /* by the cap */
    uint64_t max_clock_entries; /* largest clock written */
    uint64_t max_siblings_seen; /* most siblings an object had after a write */
    uint64_t precondition_failures;
    uint64_t quorum_failures;   /* reads and writes answered 503 */
    uint64_t read_repairs;      /* stale or missing replicas sent the merged object */
    uint64_t hints_stored;      /* writes held for a replica that missed them
                                   (delivered: sync_stats.hints_delivered) */
    uint64_t hints_received;    /* handed-off writes merged here */
    uint64_t forwarded_writes;  /* applied by another replica (Kv.Apply) */
    uint64_t speculative_reads; /* reads that asked more replicas after the delay */
    uint64_t full_reads;        /* reads that asked every replica (read-repair chance) */
} kv_stats;
void kv_get_stats(const kv *k, kv_stats *out);

/* A copy of the replica delays this node's coordinator has observed (W, A,
 * R, S per peer, the peer being this node too: docs/pbs.md), for a PBS
 * prediction. Free with pbs_snapshot_free. RK_ENOMEM. Any thread. */
rk_err kv_pbs_snapshot(kv *k, pbs_snapshot *out);

/* The storage's statistics (keys, bytes on disk and in memory). */
rk_err kv_get_storage_stats(kv *k, store_stats *out);

/* Deletes every hint this node holds for intended (0: for every node),
 * for an operator who knows those writes are not wanted; *out_count (may
 * be NULL) says how many. */
rk_err kv_drop_hints(kv *k, uint64_t intended, uint64_t *out_count);

#endif
