/* kv_internal.h - what the kv module's files share: the service struct and
 * the coordinator's entry points. Nothing here is for other modules. */
#ifndef RINGKV_KV_INTERNAL_H
#define RINGKV_KV_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "ringkv/kv.h"
#include "ringkv/pbs.h"
#include "latency_internal.h"

struct kv {
    replica *rp;
    rk_actor node_id;
    kv_config cfg;
    cluster_node *cn;
    rpc_client *client;
    /* recent replica read latencies, for the speculative delay */
    latency_window read_latency;
    /* the W, A, R, S delays of every replica exchange, for GET /pbs
     * (kv_pbs_snapshot); clock_id is replica_clock_id(), to tell which
     * replies were stamped with this machine's clock */
    pbs_samples *pbs;
    uint64_t clock_id;

    _Atomic uint64_t reads;
    _Atomic uint64_t quorum_failures;
    _Atomic uint64_t read_repairs;
    _Atomic uint64_t hints_stored;
    _Atomic uint64_t forwarded_writes;
    _Atomic uint64_t speculative_reads;
    _Atomic uint64_t full_reads;
};

/* ---- the coordinator (coord.c) -------------------------------------------- */

struct quorum_plan_result;
/* The plan of a request for position in view (placement.c): the key's
 * replicas (both rings' while a range moves) and its targets, fallbacks
 * standing in for down replicas when sloppy. fallbacks (may be NULL) gets
 * the read ring's fallbacks in order, *fallback_count how many (room for
 * QUORUM_MAX_FALLBACKS). RK_EQUORUM when the view has no ring. */
rk_err kv_plan_in_view(const cluster_view *view, uint64_t position, bool sloppy,
                       struct quorum_plan_result *out, uint64_t *fallbacks, size_t *fallback_count);

rk_err kv_coord_get(kv *k, const replica_key *key, const kv_read_opts *opts, kv_result *res);
rk_err kv_coord_put(kv *k, const replica_key *key, const kv_write *w, kv_result *res);

#endif
