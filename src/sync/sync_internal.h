/* sync_internal.h - what the sync service's files share (private to
 * src/sync): the service struct, ownership under the two rings, the rate
 * limiter, record batches, the RPC calls and the parts (handoff,
 * anti-entropy, purge, hints). */
#ifndef RINGKV_SYNC_INTERNAL_H
#define RINGKV_SYNC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "ringkv.pb-c.h"
#include "ringkv/ring.h"
#include "ringkv/sync.h"

#define MOD "sync"

/* Bytes of the per-record digest compared by Sync.Digests. */
#define SYNC_DIGEST_BYTES 16u
/* Records or bytes per Sync.Push: small enough that a batch is a few ms
 * of a peer's time, so client requests interleave with a handoff. */
#define SYNC_BATCH_RECORDS 256u
#define SYNC_BATCH_BYTES (512u * 1024u)
/* How long one sync call may take (a responder may first build a tree). */
#define SYNC_CALL_TIMEOUT_MS 10000u
/* Sessions whose trees a responder keeps at once. */
#define SYNC_TREE_CACHE 4u

/* The rings a pass or a request is planned against. */
typedef struct sync_rings {
    cluster_view *view;                  /* one reference, owned */
    const ring_t *read;                  /* view->ring */
    const ring_t *next;                  /* view->next_ring, or view->ring when there is none */
    uint64_t read_version, next_version; /* next_version 0 when no next ring */
    unsigned range_bits;                 /* log2 of the range count */
} sync_rings;

/* One responder-side tree, built for one peer's exchange session. */
typedef struct tree_entry {
    uint64_t session, peer;
    uint64_t used_ms;
    merkle_tree *tree;
} tree_entry;

/* A queued Sync request, answered by the responder thread. */
typedef struct sync_job {
    struct sync_job *next;
    rpc_request *req;
    const ProtobufCMessage *input;
    int method; /* sync_method */
} sync_job;

typedef enum sync_method {
    SYNC_STATUS,
    SYNC_TREE,
    SYNC_DIGESTS,
    SYNC_PULL,
    SYNC_PUSH,
} sync_method;

struct sync_service {
    replica *rp;
    store *st;
    cluster_node *cn;
    rpc_client *client;
    sync_config cfg;
    uint64_t self;

    /* The sync thread: handoff passes, anti-entropy, purge, status moves. */
    pthread_t thread;
    bool thread_running;
    pthread_mutex_t mu; /* guards the fields below it up to the counters */
    pthread_cond_t cv;
    bool stopping;
    bool repair_requested;
    struct sync_wait *waits; /* calls being waited for (calls.c), woken by sync_stop */
    bool leaving;
    /* The pass the Status RPC reports: pending ranges under these rings. */
    uint64_t pass_read, pass_next;
    uint64_t pass_pending;
    bool pass_valid;

    /* The responder thread answers Sync requests in order. */
    pthread_t responder;
    bool responder_running;
    pthread_mutex_t job_mu;
    pthread_cond_t job_cv;
    sync_job *jobs, *jobs_tail;
    bool jobs_stopping;
    tree_entry trees[SYNC_TREE_CACHE]; /* responder thread only */

    /* Token bucket over bytes sent (rate.c). */
    pthread_mutex_t rate_mu;
    double tokens;
    uint64_t rate_last_ms;

    /* Handoff state, sync thread only. */
    uint8_t *done; /* per range: handoff duty finished under done_rings */
    size_t done_len;
    uint64_t done_read, done_next;

    _Atomic uint64_t ranges_pending;
    _Atomic uint64_t handoff_keys_sent, handoff_bytes_sent, handoff_keys_dropped;
    _Atomic uint64_t keys_received, bytes_received;
    _Atomic uint64_t ae_exchanges, ae_keys_compared, ae_keys_repaired, ae_bytes_sent;
    _Atomic uint64_t tombstones_purged;
    _Atomic uint64_t hints_delivered, hint_bytes_sent;
};

/* ---- rings and ownership (own.c) ------------------------------------------ */

/* Takes a view reference from the node and fills *out. RK_EBUSY while the
 * view has no ring. Release with sync_rings_release. */
rk_err sync_rings_take(sync_service *s, sync_rings *out);
void sync_rings_release(sync_rings *r);
/* The range index of a position. */
size_t sync_range_of(const sync_rings *r, uint64_t position);
/* [*start, *end) of range index (end 0 = the top). */
void sync_range_bounds(const sync_rings *r, size_t index, uint64_t *start, uint64_t *end);
size_t sync_range_count(const sync_rings *r);
/* The replicas of range index in the read ring (next false) or next ring. */
size_t sync_replicas(const sync_rings *r, size_t index, bool next, uint64_t *out);
/* Whether node is a replica of range index in either ring. */
bool sync_holds(const sync_rings *r, size_t index, uint64_t node);
/* Whether a and b both hold range index: the ranges two replicas compare. */
bool sync_shared(const sync_rings *r, size_t index, uint64_t a, uint64_t b);
/* One number for the pair of rings (0 never names a pair). */
uint64_t sync_rings_id(const sync_rings *r);
/* Whether the caller's rings are the ones in *r. */
bool sync_rings_match(const sync_rings *r, const Ringkv__SyncRings *theirs);
/* Fills a SyncRings message for a request from this node. */
void sync_rings_to_pb(const sync_service *s, const sync_rings *r, Ringkv__SyncRings *out);

/* What this node must do for one range under the rings. */
typedef struct sync_duty {
    uint64_t targets[2 * RING_MAX_N]; /* who must receive the range */
    size_t target_count;              /* 0: nothing to send */
    bool drop;                        /* delete the local copy once sent */
} sync_duty;
void sync_duty_of(const sync_rings *r, uint64_t self, size_t index, sync_duty *out);

/* ---- local records (records.c) --------------------------------------------- */

/* Records of a scan, in key order: dbkeys and objects in one buffer. */
typedef struct sync_record {
    size_t key_off, key_len, val_off, val_len;
    uint8_t digest[SYNC_DIGEST_BYTES];
} sync_record;

typedef struct sync_records {
    rk_buf bytes;
    sync_record *items;
    size_t count, cap;
} sync_records;

void sync_records_free(sync_records *rs);
void sync_records_reset(sync_records *rs);
const char *sync_record_key(const sync_records *rs, size_t i);
const char *sync_record_value(const sync_records *rs, size_t i);
/* Appends the local records in positions [start, end) (end 0 = the top);
 * with filter, only those of ranges filter_cb accepts. */
typedef bool (*sync_range_filter)(void *arg, size_t range);
rk_err sync_records_scan(sync_service *s, const sync_rings *r, uint64_t start, uint64_t end,
                         sync_range_filter filter_cb, void *arg, sync_records *out);
/* Appends one record (copies). */
rk_err sync_records_add(sync_records *rs, const void *key, size_t key_len, const void *val,
                        size_t val_len);
/* The ring position a data key begins with (dbkey has 8 bytes or more). */
uint64_t sync_key_position(const void *dbkey);
void sync_digest(const void *val, size_t len, uint8_t out[SYNC_DIGEST_BYTES]);
/* Whether an encoded object is all tombstones, the newest older than
 * cutoff_ms (wall clock). */
bool sync_expired_tombstone(const void *val, size_t len, uint64_t cutoff_ms);

/* Walks the local records (key order) and a peer's digests of the same
 * positions (key order) together, calling cb for each key that differs:
 * (local index, NULL) only here, (SIZE_MAX, digest) only there, (index,
 * digest) on both with other bytes. */
typedef rk_err (*sync_compare_cb)(void *arg, size_t local, const Ringkv__SyncDigest *remote);
rk_err sync_compare(const sync_records *rs, const Ringkv__SyncDigestsReply *remote,
                    sync_compare_cb cb, void *arg);

/* ---- calls to peers (calls.c) ------------------------------------------------ */

/* Waits until the token bucket allows bytes (rate_bytes_per_sec; 0 = no
 * cap) or the service stops. */
void sync_rate_wait(sync_service *s, size_t bytes);
/* Calls the Sync service's method on peer (by id, through the view) and
 * waits for the reply, or until sync_stop: then RK_ECLOSED at once, for a
 * request to a peer that went away waits in NNG until its deadline
 * (SYNC_CALL_TIMEOUT_MS), and a stop must not. Counts the request and
 * reply bytes. */
rk_err sync_call(sync_service *s, const sync_rings *r, uint64_t peer, const char *method,
                 const ProtobufCMessage *in, ProtobufCMessage **reply, _Atomic uint64_t *sent);
/* The peer's digests of its records in ranges[0..n) (shared_only: only
 * ranges both hold) or of keys. */
rk_err sync_call_digests(sync_service *s, const sync_rings *r, uint64_t peer,
                         const Ringkv__SyncRange *ranges, size_t n, bool shared_only,
                         const ProtobufCBinaryData *keys, size_t n_keys,
                         Ringkv__SyncDigestsReply **out, _Atomic uint64_t *sent);
/* Pushes records idx[0..n) of rs to peer in batches. *changed (may be
 * NULL) gets how many changed the peer's copy. */
rk_err sync_push(sync_service *s, const sync_rings *r, uint64_t peer, const sync_records *rs,
                 const size_t *idx, size_t n, _Atomic uint64_t *sent, uint64_t *changed);
/* Pushes every record of rs to peer in one call as hints held for it
 * (hints_for). The caller keeps the batch within SYNC_BATCH_RECORDS and
 * SYNC_BATCH_BYTES. */
rk_err sync_push_hints(sync_service *s, const sync_rings *r, uint64_t peer, const sync_records *rs);

/* ---- the parts ---------------------------------------------------------------- */

/* One handoff pass over every range (transfer.c). *pending gets the ranges
 * left undone. RK_ECLOSED when stopping. */
rk_err sync_handoff_pass(sync_service *s, const sync_rings *r, uint64_t *pending);
/* One anti-entropy exchange with peer (exchange.c). */
rk_err sync_exchange(sync_service *s, const sync_rings *r, uint64_t peer);
/* shared[i]: both this node and peer hold range i (tree.c). malloc'd:
 * free() it. NULL when out of memory. */
uint8_t *sync_shared_ranges(const sync_service *s, const sync_rings *r, uint64_t peer);
/* The tree over this node's records of the ranges marked in shared. */
rk_err sync_tree_of_ranges(sync_service *s, const sync_rings *r, const uint8_t *shared,
                           merkle_tree **out);
/* Builds this node's tree over the ranges both it and peer hold (tree.c). */
rk_err sync_build_tree(sync_service *s, const sync_rings *r, uint64_t peer, merkle_tree **out);
/* One tombstone purge pass (purge.c). */
rk_err sync_purge_pass(sync_service *s, const sync_rings *r);
/* One hint delivery pass (hints.c): every alive node this node holds
 * hints for gets them. RK_ECLOSED when stopping. */
rk_err sync_hint_pass(sync_service *s, const sync_rings *r);

/* The handlers (rpc.c). */
void sync_answer(sync_service *s, sync_job *job);
bool sync_stopping(sync_service *s);
/* Wakes every sync_call waiting for a reply (they return RK_ECLOSED).
 * Call with s->mu held, after setting s->stopping. */
void sync_abandon_calls(sync_service *s);
/* How many sync_calls are waiting for a reply now (for tests). */
size_t sync_calls_waiting(sync_service *s);

#endif
