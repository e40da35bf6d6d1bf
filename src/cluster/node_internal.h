/* node_internal.h - the published view's allocation, shared by node.c
 * (which builds and publishes views) and view.c (which reads and frees
 * them). */
#ifndef RINGKV_CLUSTER_NODE_INTERNAL_H
#define RINGKV_CLUSTER_NODE_INTERNAL_H

#include <stdatomic.h>

#include "ringkv/cluster_node.h"

/* A view and its members in one allocation, behind a reference count that
 * the public cluster_view does not show. */
typedef struct view_box {
    atomic_size_t refs;
    cluster_view view;
    cluster_view_member members[];
} view_box;

/* A box for count members, one reference, view.count and view.members set,
 * the rest zero. Free with cluster_view_unref(&box->view) (which also drops
 * view.ring once set), or with free() before it is published. NULL on
 * ENOMEM. */
view_box *cluster_view_box_alloc(size_t count);

/* True when ring (may be NULL) is built of exactly ids[0..n), which are in
 * increasing order: a new view can then share the ring. */
bool cluster_view_ring_has(const ring_t *ring, const uint64_t *ids, size_t n);

#endif
