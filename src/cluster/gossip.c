/* gossip.c - merging a peer's entries, the pull reply, peer selection. */
#include <stdlib.h>
#include <string.h>

#include "cluster_internal.h"

/* The total order on versions: (incarnation, heartbeat), then the strings,
 * so two entries with equal counters but different contents (which only a
 * bug or a restart that lost its incarnation makes) resolve the same way on
 * every node. 0 only for equal contents (the status is not compared). */
static int version_cmp(const cluster_entry *a, const cluster_entry *b)
{
    if (a->incarnation != b->incarnation)
        return a->incarnation < b->incarnation ? -1 : 1;
    if (a->heartbeat != b->heartbeat)
        return a->heartbeat < b->heartbeat ? -1 : 1;
    int c = strcmp(a->name, b->name);
    if (c == 0)
        c = strcmp(a->http_addr, b->http_addr);
    if (c == 0)
        c = strcmp(a->rpc_addr, b->rpc_addr);
    return (c > 0) - (c < 0);
}

static bool same_addresses(const cluster_entry *a, const cluster_entry *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(a->http_addr, b->http_addr) == 0 &&
           strcmp(a->rpc_addr, b->rpc_addr) == 0;
}

static void emit(cluster_event_cb cb, void *arg, cluster_event_kind kind, uint64_t id,
                 uint64_t old_value, uint64_t new_value)
{
    if (cb == NULL)
        return;
    cluster_event ev = {
        .kind = kind, .node_id = id, .old_value = old_value, .new_value = new_value};
    cb(arg, &ev);
}

/* Fills order[0..count) with the indices of entries sorted by id.
 * Insertion sort: peers send cluster_export's id order, for which it is
 * linear, and qsort would need a static comparison context. */
static void order_by_id(const cluster_entry *entries, size_t count, size_t *order)
{
    for (size_t i = 0; i < count; i++) {
        size_t j = i;
        while (j > 0 && entries[order[j - 1]].id > entries[i].id) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

/* The local row: its status follows the lattice like any other, but its
 * version is the local node's alone. A claim at least as new that is not
 * exactly its own is overtaken by a new incarnation. */
static void merge_self(cluster_member *row, const cluster_entry *e, cluster_event_cb cb, void *arg,
                       cluster_merge_result *res)
{
    if (e->status > row->entry.status) {
        if (cluster_status_in_ring(e->status) != cluster_status_in_ring(row->entry.status))
            res->ring_changed = true;
        emit(cb, arg, CLUSTER_EVENT_STATUS, e->id, row->entry.status, e->status);
        row->entry.status = e->status;
        res->updated++;
    }
    if (version_cmp(e, &row->entry) > 0) {
        uint64_t old = row->entry.incarnation;
        if (e->incarnation < UINT64_MAX) {
            row->entry.incarnation = e->incarnation + 1;
        } else {
            /* Unreachable but for a broken peer: outrank it by heartbeat. */
            row->entry.incarnation = UINT64_MAX;
            if (row->entry.heartbeat <= e->heartbeat && e->heartbeat < UINT64_MAX)
                row->entry.heartbeat = e->heartbeat + 1;
        }
        emit(cb, arg, CLUSTER_EVENT_REFUTED, e->id, old, row->entry.incarnation);
        res->refuted = true;
    }
}

static void merge_known(cluster_member *row, const cluster_entry *e, uint64_t now_ms,
                        cluster_event_cb cb, void *arg, cluster_merge_result *res)
{
    bool changed = false;
    if (e->status > row->entry.status) {
        if (cluster_status_in_ring(e->status) != cluster_status_in_ring(row->entry.status))
            res->ring_changed = true;
        emit(cb, arg, CLUSTER_EVENT_STATUS, e->id, row->entry.status, e->status);
        row->entry.status = e->status;
        changed = true;
    }
    if (version_cmp(e, &row->entry) > 0) {
        if (!same_addresses(e, &row->entry))
            emit(cb, arg, CLUSTER_EVENT_ADDRESS, e->id, 0, 0);
        cluster_status status = row->entry.status;
        row->entry = *e;
        row->entry.status = status;
        row->last_heard_ms = now_ms;
        if (row->liveness != CLUSTER_ALIVE) {
            emit(cb, arg, CLUSTER_EVENT_LIVENESS, e->id, row->liveness, CLUSTER_ALIVE);
            row->liveness = CLUSTER_ALIVE;
        }
        changed = true;
    }
    if (changed)
        res->updated++;
}

rk_err cluster_merge(cluster_table *table, const cluster_entry *entries, size_t count,
                     uint64_t now_ms, cluster_event_cb event_cb, void *arg,
                     cluster_merge_result *result)
{
    cluster_merge_result res = {0};
    if (count > CLUSTER_MAX_MEMBERS)
        return RK_EINVAL;
    for (size_t i = 0; i < count; i++)
        if (!cluster_entry_valid(&entries[i]))
            return RK_EINVAL;
    size_t *order = malloc((count ? count : 1) * sizeof *order);
    if (order == NULL)
        return RK_ENOMEM;
    order_by_id(entries, count, order);
    size_t unknown = 0;
    for (size_t i = 0; i < count; i++) {
        const cluster_entry *e = &entries[order[i]];
        if (i > 0 && entries[order[i - 1]].id == e->id) {
            free(order);
            return RK_EINVAL; /* the same id twice: a broken peer */
        }
        bool found;
        cluster_row_index(table, e->id, &found);
        if (!found)
            unknown++;
    }
    if (table->count + unknown > CLUSTER_MAX_MEMBERS) {
        free(order);
        return RK_EINVAL;
    }
    if (cluster_rows_reserve(table, unknown) != RK_OK) {
        free(order);
        return RK_ENOMEM;
    }
    /* Nothing can fail from here on, so a failed merge changed nothing and
     * ran no callback. */
    for (size_t i = 0; i < count; i++) {
        const cluster_entry *e = &entries[order[i]];
        bool found;
        size_t at = cluster_row_index(table, e->id, &found);
        cluster_member *row = &table->rows[at];
        if (!found) {
            memmove(row + 1, row, (table->count - at) * sizeof *row);
            table->count++;
            *row =
                (cluster_member){.entry = *e, .liveness = CLUSTER_ALIVE, .last_heard_ms = now_ms};
            if (cluster_status_in_ring(e->status))
                res.ring_changed = true;
            emit(event_cb, arg, CLUSTER_EVENT_ADDED, e->id, 0, e->status);
            res.added++;
        } else if (e->id == table->self_id) {
            merge_self(row, e, event_cb, arg, &res);
        } else {
            merge_known(row, e, now_ms, event_cb, arg, &res);
        }
    }
    free(order);
    if (result != NULL)
        *result = res;
    return RK_OK;
}

/* True if merging local into a table holding remote (NULL: no row) would
 * change that row. */
static bool newer_than(const cluster_entry *local, const cluster_entry *remote)
{
    return remote == NULL || local->status > remote->status || version_cmp(local, remote) > 0;
}

size_t cluster_delta(const cluster_table *table, const cluster_entry *entries, size_t count,
                     cluster_entry *out, size_t cap)
{
    bool sorted = true;
    for (size_t i = 1; i < count && sorted; i++)
        sorted = entries[i - 1].id < entries[i].id;
    size_t n = 0, r = 0;
    for (size_t i = 0; i < table->count; i++) {
        const cluster_entry *local = &table->rows[i].entry;
        const cluster_entry *remote = NULL;
        if (sorted) {
            /* cluster_export's order: walk both lists together. */
            while (r < count && entries[r].id < local->id)
                r++;
            if (r < count && entries[r].id == local->id)
                remote = &entries[r];
        } else {
            for (size_t j = 0; j < count; j++)
                if (entries[j].id == local->id) {
                    remote = &entries[j];
                    break;
                }
        }
        if (newer_than(local, remote)) {
            if (n < cap)
                out[n] = *local;
            n++;
        }
    }
    return n;
}

size_t cluster_pick_peers(const cluster_table *table, unsigned liveness_mask, size_t k,
                          cluster_rand_cb rand_cb, void *rand_arg, uint64_t *out)
{
    /* Reservoir sampling (Vitter's algorithm R): uniform over the
     * candidates without a scratch array. */
    size_t seen = 0;
    for (size_t i = 0; i < table->count && k > 0; i++) {
        const cluster_member *m = &table->rows[i];
        if (m->entry.id == table->self_id || m->entry.status == CLUSTER_REMOVED ||
            !(liveness_mask & CLUSTER_LIVENESS_BIT(m->liveness)))
            continue;
        if (seen < k) {
            out[seen] = m->entry.id;
        } else {
            uint64_t j = rand_cb(rand_arg) % (seen + 1);
            if (j < k)
                out[j] = m->entry.id;
        }
        seen++;
    }
    return seen < k ? seen : k;
}
