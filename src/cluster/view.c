/* view.c - the immutable, reference-counted cluster_view the coordinator
 * reads (node.c builds and publishes it). */
#include <stddef.h>
#include <stdlib.h>

#include "node_internal.h"

view_box *cluster_view_box_alloc(size_t count)
{
    view_box *box = calloc(1, sizeof *box + count * sizeof box->members[0]);
    if (box == NULL)
        return NULL;
    atomic_init(&box->refs, 1);
    box->view.count = count;
    box->view.members = box->members;
    return box;
}

bool cluster_view_ring_has(const ring_t *ring, const uint64_t *ids, size_t n)
{
    if (ring == NULL || ring_member_count(ring) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ring_member_id(ring, i) != ids[i])
            return false;
    return true;
}

void cluster_view_unref(cluster_view *view)
{
    if (view == NULL)
        return;
    view_box *box = (view_box *)((char *)view - offsetof(view_box, view));
    /* acq_rel: every use of the view by other holders happens before the
     * last one frees it. */
    if (atomic_fetch_sub_explicit(&box->refs, 1, memory_order_acq_rel) != 1)
        return;
    ring_unref(box->view.ring);
    ring_unref(box->view.next_ring);
    free(box);
}

static int compare_id(const void *key, const void *member)
{
    uint64_t id = *(const uint64_t *)key;
    uint64_t other = ((const cluster_view_member *)member)->id;
    return (id > other) - (id < other);
}

const cluster_view_member *cluster_view_find(const cluster_view *view, uint64_t id)
{
    if (view == NULL || view->count == 0)
        return NULL;
    return bsearch(&id, view->members, view->count, sizeof view->members[0], compare_id);
}

bool cluster_view_alive(const cluster_view *view, uint64_t id)
{
    const cluster_view_member *m = cluster_view_find(view, id);
    return m != NULL && (id == view->self_id || m->liveness != CLUSTER_DOWN);
}
