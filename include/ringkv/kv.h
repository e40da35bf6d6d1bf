/* kv.h - the key-value service a node offers its gateway: get, put, delete
 * and listing of (table, key) records with Dynamo semantics.
 *
 * Opened alone (kv_open), it serves the node's own replica as a one-member
 * cluster: asking for more acknowledgements than there are members is a
 * quorum failure (RK_EQUORUM), never a silent success. Attached to a
 * cluster (kv_attach_cluster), every get and put is coordinated over the
 * key's preference list (docs/architecture.md, "The coordinator"): fan out
 * to the replicas at once, answer when R or W replied, read repair, sloppy
 * quorum, hints for replicas that missed a write and their handoff. */
#ifndef RINGKV_KV_H
#define RINGKV_KV_H

#include "ringkv/clock.h"
#include "ringkv/cluster.h"
#include "ringkv/common.h"
#include "ringkv/rpc.h"
#include "ringkv/store.h"

#define KV_TABLE_MAX 64
#define KV_KEY_MAX 1024

typedef struct kv kv;

typedef struct kv_config {
    unsigned n, r, w;            /* replicas, default read / write quorum */
    size_t max_siblings;         /* cap per key (default 16) */
    size_t max_value_bytes;      /* compact JSON text (default 1 MiB) */
    uint32_t timeout_ms;         /* default quorum wait (1000) */
    bool handoff;                /* accept and hand off hints (true) */
    uint32_t handoff_interval_ms;/* how often held hints are offered (1000) */
} kv_config;

void kv_config_default(kv_config *cfg);

/* Opens the service over st (not owned: close kv before st). Free with
 * kv_close. */
rk_err kv_open(store *st, rk_actor node_id, const kv_config *cfg, kv **out);
void kv_close(kv *k);
const kv_config *kv_get_config(const kv *k);
rk_actor kv_node_id(const kv *k);
unsigned kv_member_count(const kv *k);

/* Joins the service to a cluster: from now on gets and puts are
 * coordinated over cn's view and rpc (both borrowed; close kv before
 * them), and a thread hands off held hints every handoff_interval_ms.
 * Call once, before serving. RK_EINVAL if already attached. */
rk_err kv_attach_cluster(kv *k, cluster_node *cn, rpc_client *client);
/* Stops the handoff thread; call before closing cn and the rpc client.
 * Gets and puts must have stopped. */
void kv_detach_cluster(kv *k);

/* The Kv and Handoff services' handlers (replica get, put, apply; hint
 * delivery), for rpc_server_open. Writes up to cap to out; returns how many
 * there are. */
size_t kv_rpc_handlers(kv *k, rpc_handler *out, size_t cap);


/* ---- names ------------------------------------------------------------ */

/* [A-Za-z0-9_.-]{1,64}. Reserved (leading '_') names are valid here; the
 * caller decides whether a client may write them. */
bool kv_table_valid(const char *table, size_t len);
bool kv_table_reserved(const char *table, size_t len);
/* 1..1024 bytes of UTF-8 without NUL. */
bool kv_key_valid(const char *key, size_t len);

typedef struct kv_key {
    const char *table;
    size_t table_len;
    const char *key;
    size_t key_len;
} kv_key;

/* ---- operations -------------------------------------------------------- */

typedef struct kv_read_opts {
    unsigned r;            /* 0 = the configured default */
    uint32_t timeout_ms;   /* 0 = default */
    bool local;            /* this replica alone, no quorum */
    bool strict;           /* no fallbacks (?sloppy=false) */
} kv_read_opts;

typedef struct kv_write {
    kv_key key;
    const char *value;     /* compact JSON text; ignored for a delete */
    size_t value_len;
    bool tombstone;        /* a delete */
    const vclock *context; /* NULL = blind write after the local version */
    const vclock *if_match;/* NULL = unconditional */
    bool if_none_match;    /* create only */
    const char *owner;     /* "" when auth is off */
    unsigned w;            /* 0 = configured default */
    uint32_t timeout_ms;
    bool strict;           /* no fallbacks (?sloppy=false) */
} kv_write;

/* Most nodes one request talks to (2 N during a join). */
#define KV_MAX_TARGETS 32

/* The object as read or as written. Free with kv_result_free. */
typedef struct kv_result {
    rk_object obj;
    bool existed;          /* a write: the key had a live value before */
    clock_dot dot;         /* a write: the dot it issued */
    unsigned acks;         /* replicas that answered */
    unsigned needed;       /* replicas the quorum asked for */
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

/* Visits the records of table in ring order, starting after `after` (NULL
 * = from the beginning), skipping keys whose siblings are all tombstones.
 * visit_cb returns false to stop. Pointers are valid during the call only. */
typedef bool (*kv_visit_cb)(void *arg, const char *key, size_t key_len,
                            const rk_object *obj);
rk_err kv_scan(kv *k, const char *table, size_t table_len,
               const char *after, size_t after_len,
               kv_visit_cb visit_cb, void *arg);

/* For src/sync: merges an encoded object that another replica holds into
 * this node's replica of dbkey (a `data` key), as read repair does.
 * *changed (may be NULL) says whether the stored bytes changed. RK_ECORRUPT
 * when object does not decode. */
rk_err kv_merge_record(kv *k, const char *dbkey, size_t dbkey_len, const void *object,
                       size_t object_len, bool *changed);

/* Counters for /metrics. */
typedef struct kv_stats {
    uint64_t reads, writes, deletes;
    uint64_t siblings_dropped;     /* by the cap */
    uint64_t max_clock_entries;    /* largest clock written */
    uint64_t max_siblings_seen;    /* most siblings an object had after a write */
    uint64_t precondition_failures;
    uint64_t quorum_failures;      /* reads and writes answered 503 */
    uint64_t read_repairs;         /* stale or missing replicas sent the merged object */
    uint64_t hints_stored;         /* writes held for a replica that missed them */
    uint64_t hints_delivered;      /* held writes a replica acknowledged */
    uint64_t hints_received;       /* handed-off writes merged here */
    uint64_t forwarded_writes;     /* applied by another replica (Kv.Apply) */
} kv_stats;
void kv_get_stats(const kv *k, kv_stats *out);

#endif
