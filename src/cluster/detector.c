/* detector.c - the failure detector's timeouts (the diagram is in
 * include/ringkv/cluster.h; cluster_merge makes members alive again). */
#include "cluster_internal.h"

size_t cluster_tick(cluster_table *table, uint64_t now_ms, cluster_event_cb event_cb, void *arg)
{
    size_t transitions = 0;
    for (size_t i = 0; i < table->count; i++) {
        cluster_member *m = &table->rows[i];
        /* The local node is alive by definition; removed ids are tombstones. */
        if (m->entry.id == table->self_id || m->entry.status == CLUSTER_REMOVED)
            continue;
        uint64_t quiet = now_ms > m->last_heard_ms ? now_ms - m->last_heard_ms : 0;
        cluster_liveness to = m->liveness;
        if (quiet >= table->config.down_after_ms)
            to = CLUSTER_DOWN;
        else if (quiet >= table->config.suspect_after_ms && m->liveness == CLUSTER_ALIVE)
            to = CLUSTER_SUSPECT;
        if (to == m->liveness)
            continue;
        if (event_cb != NULL) {
            cluster_event ev = {.kind = CLUSTER_EVENT_LIVENESS,
                                .node_id = m->entry.id,
                                .old_value = m->liveness,
                                .new_value = to};
            event_cb(arg, &ev);
        }
        m->liveness = to;
        transitions++;
    }
    return transitions;
}
