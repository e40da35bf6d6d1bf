/* cluster_node.h - the running membership of this node (src/cluster/node.c).
 *
 * cluster.h is the pure membership logic; cluster_node is the machinery
 * around it: it owns the table behind a mutex (never held across network I/O), persists
 * it in the store's `meta` column family, joins through seeds, runs the
 * gossip loop on its own thread (heartbeat, push-pull with fanout peers
 * over the Membership service, the detector's tick, an occasional probe of
 * a DOWN member so a healed partition rejoins), rebuilds the ring when the
 * ring members change, and publishes what the coordinator needs as an
 * immutable, reference-counted cluster_view. */
#ifndef RINGKV_CLUSTER_NODE_H
#define RINGKV_CLUSTER_NODE_H

#include "ringkv/cluster.h"
#include "ringkv/ring.h"
#include "ringkv/rpc.h"
#include "ringkv/store.h"

typedef struct cluster_node cluster_node;

typedef struct cluster_node_options {
    store *st;          /* borrowed: `meta` keys "members" and "cluster_id" */
    rpc_client *client; /* borrowed: Join, Gossip and probes go through it */
    uint64_t self_id;   /* store_node_id */
    const char *name, *http_addr, *rpc_addr;
    uint32_t n, partitions; /* this node's (stored) parameters */
    /* Comma-separated RPC addresses of seeds ("h:p,h:p"), or NULL. Used
     * only by a node that has no members stored yet (a fresh node); a
     * restarted node rejoins through its stored members and ignores them
     * (logged). */
    const char *seeds;
    uint32_t join_timeout_ms;    /* how long to keep trying the seeds; 0 = 10 s */
    uint32_t gossip_interval_ms; /* 0 = CLUSTER_DEFAULT_GOSSIP_INTERVAL_MS */
    unsigned fanout;             /* 0 = CLUSTER_DEFAULT_FANOUT */
    cluster_config config;       /* zero = cluster_config_default */
} cluster_node_options;

/* Loads or creates this node's membership; no network yet. With members
 * stored: a restart (cluster_table_decode). Else with seeds: a fresh node
 * that joins in cluster_node_start (cluster id 0 until then). Else: the
 * first node of a new cluster, MEMBER, with a new random cluster id, both
 * stored at once. RK_EINVAL (logged) when the stored table belongs to
 * another node id; RK_ECORRUPT (logged) when the stored table or cluster
 * id does not decode; RK_EIO, RK_ENOMEM. Free with cluster_node_close. */
rk_err cluster_node_open(const cluster_node_options *opts, cluster_node **out);

/* The Membership service's handlers (Join, Gossip, Ping) bound to cn, for
 * rpc_server_open. Writes up to cap to out; returns how many there are. */
size_t cluster_node_handlers(cluster_node *cn, rpc_handler *out, size_t cap);

/* Joins through the seeds if this node is fresh (each seed in turn until
 * join_timeout_ms: RK_ETIMEDOUT when none answered, e.g. a wrong cluster
 * secret, whose frames the seeds drop; RK_EINVAL when a seed's parameters
 * differ; the reason is logged either way; RK_EIO when the joined
 * membership could not be stored), then starts the gossip thread. Call
 * once the RPC server serving cluster_node_handlers listens. */
rk_err cluster_node_start(cluster_node *cn);

/* Stops the gossip thread, persists the table, frees. The RPC server must
 * be closed first (its handlers use cn). NULL is a no-op. */
void cluster_node_close(cluster_node *cn);

/* The cluster's id (0 while a fresh node has not joined yet). */
uint64_t cluster_node_cluster_id(const cluster_node *cn);

/* Moves a member's status (cluster_set_status) and gossips it on. */
rk_err cluster_node_set_status(cluster_node *cn, uint64_t id, cluster_status status);

/* A deep copy of the table, with liveness and last-heard times, for
 * /cluster and /membership. Free with cluster_table_free. */
rk_err cluster_node_table(cluster_node *cn, cluster_table **out);

/* ---- the view the coordinator reads ----------------------------------- */

typedef struct cluster_view_member {
    uint64_t id;
    char name[CLUSTER_NAME_MAX + 1];
    char http_addr[CLUSTER_ADDR_MAX + 1];
    char rpc_addr[CLUSTER_ADDR_MAX + 1];
    cluster_status status;
    cluster_liveness liveness;
} cluster_view_member;

/* Immutable once published. A new view is published whenever a member is
 * added or changes status, liveness, name or address (not on heartbeats). */
typedef struct cluster_view {
    uint64_t self_id;
    uint64_t cluster_id;
    uint64_t membership_version; /* cluster_membership_version */
    uint64_t generation;         /* rises with every view published */
    /* The ring that serves reads (cluster_ring_members_of, next false);
     * owned by the view; NULL only when none is left (all removed). */
    ring_t *ring;
    /* While members join or leave: the next ring (JOINING + MEMBER), which
     * writes also go to; NULL when it is the same as ring. A range's
     * holders are its replicas in both. */
    ring_t *next_ring;
    size_t count;                       /* every member, removed ones included */
    const cluster_view_member *members; /* in increasing id order */
} cluster_view;

/* A new reference to the current view; never NULL after a successful
 * cluster_node_open. Cheap (a mutex for one pointer load and an atomic
 * increment): take one per request. */
cluster_view *cluster_node_view(cluster_node *cn);
/* Drops a reference; the last one frees the view (and its ring ref). */
void cluster_view_unref(cluster_view *view);
/* The member with id (binary search), or NULL. */
const cluster_view_member *cluster_view_find(const cluster_view *view, uint64_t id);
/* True when id is in the view and not DOWN (the local node always is). */
bool cluster_view_alive(const cluster_view *view, uint64_t id);

#endif
