/* kv_internal.h - what the kv module's files share: the service struct, the
 * local replica's operations and the coordinator's entry points. Nothing
 * here is for other modules. */
#ifndef RINGKV_KV_INTERNAL_H
#define RINGKV_KV_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "ringkv/kv.h"

struct kv {
    store *st;
    rk_actor node_id;
    kv_config cfg;
    /* Set once by kv_attach_cluster, before serving; NULL for a lone node. */
    cluster_node *cn;
    rpc_client *client;
    /* The handoff thread (handoff.c). */
    pthread_t handoff_thread;
    bool handoff_running;
    pthread_mutex_t handoff_mu;
    pthread_cond_t handoff_cv;
    bool stopping;

    _Atomic uint64_t reads, writes, deletes;
    _Atomic uint64_t siblings_dropped;
    _Atomic uint64_t max_clock_entries;
    _Atomic uint64_t max_siblings_seen;
    _Atomic uint64_t precondition_failures;
    _Atomic uint64_t quorum_failures;
    _Atomic uint64_t read_repairs;
    _Atomic uint64_t hints_stored;
    _Atomic uint64_t hints_delivered;
    _Atomic uint64_t hints_received;
    _Atomic uint64_t forwarded_writes;
};

/* ---- the local replica (kv.c) ----------------------------------------- */

/* The `data` key of (table, key). */
rk_err kv_data_key(const kv_key *key, rk_buf *out);

/* Reads this node's copy: its replica when intended is 0 or this node,
 * else the hint it holds for intended. Appends the encoded object to out;
 * RK_ENOTFOUND when there is none. */
rk_err kv_local_read(kv *k, const char *dbkey, size_t dbkey_len, uint64_t intended, rk_buf *out);

/* A client write applied to this node's replica as its coordinator
 * (conditions, then object_update with this node's id as the actor).
 * res gets the stored object, existed and dot; *encoded (may be NULL) gets
 * the stored bytes appended. */
rk_err kv_local_write(kv *k, const kv_write *w, kv_result *res, rk_buf *encoded);

/* Merges an object another replica sent (read repair, write fan-out,
 * handoff) into this node's replica, or into the hint held for intended
 * when intended is neither 0 nor this node. No sibling cap: replica merges
 * must stay associative (docs/causality.md). */
rk_err kv_local_merge(kv *k, const char *dbkey, size_t dbkey_len, uint64_t intended,
                      const rk_object *incoming);

void kv_atomic_max(_Atomic uint64_t *slot, uint64_t v);

/* ---- the coordinator (coord.c) -------------------------------------------- */

rk_err coord_get(kv *k, const kv_key *key, const kv_read_opts *opts, kv_result *res);
rk_err coord_put(kv *k, const kv_write *w, kv_result *res);

/* ---- hinted handoff (handoff.c) ------------------------------------------- */

rk_err handoff_start(kv *k);
void handoff_stop(kv *k);

#endif
