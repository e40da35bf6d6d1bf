/* own.c - who holds a range while the ring changes, and what this node
 * must send.
 *
 * The view carries the read ring (MEMBER + LEAVING) and, while members
 * join or leave, the next ring (JOINING + MEMBER). A range's holders are
 * its replicas in both: reads count the read ring's, writes go to all of
 * them (src/kv/coord.c), so the next ring's new replicas only miss what was
 * written before the change, which handoff sends. */
#include <string.h>

#include "sync_internal.h"

rk_err sync_rings_take(sync_service *s, sync_rings *out)
{
    cluster_view *v = cluster_node_view(s->cn);
    if (v->ring == NULL) {
        cluster_view_unref(v);
        return RK_EBUSY;
    }
    *out = (sync_rings){.view = v, .read = v->ring};
    out->next = v->next_ring != NULL ? v->next_ring : v->ring;
    out->read_version = ring_version(v->ring);
    out->next_version = v->next_ring != NULL ? ring_version(v->next_ring) : 0;
    size_t count = ring_range_count(v->ring);
    while (((size_t)1 << out->range_bits) < count)
        out->range_bits++;
    return RK_OK;
}

void sync_rings_release(sync_rings *r)
{
    cluster_view_unref(r->view);
    r->view = NULL;
}

size_t sync_range_count(const sync_rings *r)
{
    return (size_t)1 << r->range_bits;
}

size_t sync_range_of(const sync_rings *r, uint64_t position)
{
    return r->range_bits == 0 ? 0 : (size_t)(position >> (64 - r->range_bits));
}

void sync_range_bounds(const sync_rings *r, size_t index, uint64_t *start, uint64_t *end)
{
    ring_range range;
    ring_range_at(r->read, index, &range);
    *start = range.start;
    *end = range.end;
}

size_t sync_replicas(const sync_rings *r, size_t index, bool next, uint64_t *out)
{
    const ring_t *ring = next ? r->next : r->read;
    return ring_range_preference_list(ring, index, out, ring_replica_count(ring));
}

static bool has(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

bool sync_holds(const sync_rings *r, size_t index, uint64_t node)
{
    uint64_t ids[RING_MAX_N];
    if (has(ids, sync_replicas(r, index, false, ids), node))
        return true;
    return r->next != r->read && has(ids, sync_replicas(r, index, true, ids), node);
}

bool sync_shared(const sync_rings *r, size_t index, uint64_t a, uint64_t b)
{
    return sync_holds(r, index, a) && sync_holds(r, index, b);
}

uint64_t sync_rings_id(const sync_rings *r)
{
    /* the multiplier keeps (a, b) and (b, a) apart */
    return (r->read_version ^ r->next_version * 31) | 1;
}

bool sync_rings_match(const sync_rings *r, const Ringkv__SyncRings *theirs)
{
    return theirs != NULL && theirs->read_ring == r->read_version &&
           theirs->next_ring == r->next_version;
}

void sync_rings_to_pb(const sync_service *s, const sync_rings *r, Ringkv__SyncRings *out)
{
    ringkv__sync_rings__init(out);
    out->read_ring = r->read_version;
    out->next_ring = r->next_version;
    out->from = s->self;
}

/* - A node that is not a replica of the range in the next ring sends it to
 *   all of them (Digests first, so those that have it get nothing), and
 *   drops its copy once it is not a read replica either (the change is
 *   over). While it still serves reads it keeps the copy.
 * - Where the range gains a replica but no read replica loses it (the ring
 *   had fewer than N members), the first read replica sends it to the new
 *   ones: someone must, and one is enough. */
void sync_duty_of(const sync_rings *r, uint64_t self, size_t index, sync_duty *out)
{
    uint64_t readr[RING_MAX_N], nextr[RING_MAX_N];
    size_t nr = sync_replicas(r, index, false, readr);
    size_t nn = sync_replicas(r, index, true, nextr);
    out->target_count = 0;
    out->drop = false;
    if (!has(nextr, nn, self)) {
        for (size_t i = 0; i < nn; i++)
            out->targets[out->target_count++] = nextr[i];
        out->drop = !has(readr, nr, self);
        return;
    }
    if (nr == 0 || readr[0] != self)
        return;
    for (size_t i = 0; i < nr; i++)
        if (!has(nextr, nn, readr[i]))
            return; /* a loser sends it */
    for (size_t i = 0; i < nn; i++)
        if (!has(readr, nr, nextr[i]))
            out->targets[out->target_count++] = nextr[i];
}
