/* placement.c - where a key lives: the plan a request would follow (its
 * replicas in both rings while a range moves, its fallbacks, and who
 * stands in for a down replica), shared by the coordinator and by
 * GET /{table}/placement/{key}, so the page shows what requests do. */
#include <string.h>

#include "kv_internal.h"
#include "quorum_internal.h"

static bool alive_cb(void *arg, uint64_t node)
{
    return cluster_view_alive(arg, node);
}

rk_err kv_plan_in_view(const cluster_view *view, uint64_t position, bool sloppy,
                       quorum_plan_result *out, uint64_t *fallbacks, size_t *fallback_count)
{
    const ring_t *ring = view->ring, *next = view->next_ring;
    if (ring == NULL) /* every member removed: nobody holds anything */
        return RK_EQUORUM;
    uint64_t pref[RING_MAX_N + QUORUM_MAX_FALLBACKS], npref[RING_MAX_N + QUORUM_MAX_FALLBACKS];
    quorum_prefs p = {.pref = pref, .replicas = ring_replica_count(ring)};
    p.count = ring_preference_list(ring, position, pref, p.replicas + QUORUM_MAX_FALLBACKS);
    if (next != NULL) {
        p.next = npref;
        p.next_replicas = ring_replica_count(next);
        p.next_count =
            ring_preference_list(next, position, npref, p.next_replicas + QUORUM_MAX_FALLBACKS);
    }
    if (fallbacks != NULL) {
        *fallback_count = p.count - p.replicas;
        memcpy(fallbacks, pref + p.replicas, *fallback_count * sizeof *fallbacks);
    }
    /* The view is only read: alive_cb takes it as void * by convention. */
    return kv_quorum_plan(&p, alive_cb, (void *)view, sloppy, out);
}

rk_err kv_placement_of(kv *k, const kv_key *key, kv_placement *out)
{
    replica_key rk;
    if (replica_key_init(&rk, key->table, key->table_len, key->key, key->key_len) != RK_OK)
        return RK_EINVAL;
    cluster_view *view = cluster_node_view(k->cn);
    quorum_plan_result plan;
    kv_placement pl = {.position = rk.position};
    rk_err err = kv_plan_in_view(view, rk.position, true, &plan, pl.fallbacks, &pl.fallback_count);
    if (err == RK_OK) {
        ring_range range;
        ring_range_of(view->ring, rk.position, &range);
        pl.range = range.index;
        memcpy(pl.replicas, plan.replicas, plan.replica_count * sizeof pl.replicas[0]);
        pl.replica_count = plan.replica_count;
        pl.pending = plan.pending;
        for (size_t i = 0; i < plan.target_count; i++) {
            if (!quorum_target_is_fallback(&plan.targets[i]))
                continue;
            pl.stand_in[pl.stand_in_count] = plan.targets[i].node;
            pl.stand_in_for[pl.stand_in_count++] = plan.targets[i].intended;
        }
        *out = pl;
    }
    cluster_view_unref(view);
    return err;
}
