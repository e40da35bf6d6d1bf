/* cluster.h - cluster membership: the member table, its gossip merge, the
 * failure detector and the member set the ring is built from.
 *
 * Pure logic: no network, no storage, no threads, no clock reads. The
 * machinery (the gossip loop in the node) sends and receives entries, reads
 * the monotonic clock and passes now_ms in, persists cluster_table_encode's
 * bytes in the store's `meta` column family, and rebuilds the ring when
 * cluster_ring_members changes. docs/membership.md explains the protocol and
 * the timing numbers.
 *
 * A table is not thread-safe: one owner (the gossip loop) mutates it; other
 * threads get immutable snapshots (cluster_table_clone, or the ring built
 * from cluster_ring_members). */
#ifndef RINGKV_CLUSTER_H
#define RINGKV_CLUSTER_H

#include "ringkv/common.h"

/* ---- what gossip carries about one member ------------------------------ */

/* Place of a member in the ring. It only moves forward, in this order, and
 * a merge keeps the greatest (a join-semilattice, so every node converges
 * to the same statuses whatever the order of gossip):
 *
 *     JOINING --> MEMBER --> LEAVING --> REMOVED
 *        |           |                     ^
 *        |           +---------------------+   (remove of a dead node)
 *        +---------------------------------+
 *
 * - JOINING: announced, in the ring; ranges are still moving to it.
 *   Set by cluster_table_alloc for a node that joins through a seed.
 * - MEMBER: in the ring, holding its ranges. Set by the node itself
 *   (cluster_set_status) once its handoff has arrived, or at alloc for the
 *   first node of a new cluster.
 * - LEAVING: still in the ring while it hands its ranges away
 *   (cluster_set_status on the leaving node, for `ringkv cluster leave`).
 * - REMOVED: out of the ring, final. Set on the node that finished leaving,
 *   or by any node for `remove` of a dead node. The entry is kept as a
 *   tombstone so stale gossip cannot bring the id back; a removed node that
 *   restarts learns it and must not serve (a new data dir gives a new id).
 *
 * Down is not a status: liveness (below) is local and never changes the
 * ring. The ring members are JOINING, MEMBER and LEAVING. */
typedef enum cluster_status {
    CLUSTER_JOINING = 0,
    CLUSTER_MEMBER = 1,
    CLUSTER_LEAVING = 2,
    CLUSTER_REMOVED = 3,
} cluster_status;
#define CLUSTER_STATUS_COUNT 4

/* Local view of whether a member runs. The failure detector:
 *
 *            no newer version for suspect_after_ms
 *     ALIVE ---------------------------------------> SUSPECT
 *       ^  \                                            |
 *       |   \  no newer version for down_after_ms       | no newer version
 *       |    +----------------------------------+       | for down_after_ms
 *       |                                       v       v
 *       +--------- newer (incarnation, ----------- DOWN
 *                   heartbeat) arrives
 *
 * - ALIVE -> SUSPECT, SUSPECT -> DOWN, ALIVE -> DOWN (ticks further apart
 *   than the gap): cluster_tick, from the time since last_heard_ms.
 * - SUSPECT -> ALIVE, DOWN -> ALIVE: cluster_merge, when an entry with a
 *   greater (incarnation, heartbeat) arrives, from the member itself or
 *   relayed by any other node (heartbeats spread like any other news).
 * The local node is always ALIVE in its own table. Removed members are not
 * watched. Liveness is never gossiped: each node decides for itself, so one
 * node's bad link cannot make the others drop a member. */
typedef enum cluster_liveness {
    CLUSTER_ALIVE = 0,
    CLUSTER_SUSPECT = 1,
    CLUSTER_DOWN = 2,
} cluster_liveness;
#define CLUSTER_LIVENESS_BIT(l) (1u << (unsigned)(l))

#define CLUSTER_NAME_MAX 64  /* bytes of a node name, without the NUL */
#define CLUSTER_ADDR_MAX 255 /* bytes of "host:port", without the NUL */
/* Ids a table can hold, removed ones included (as RING_MAX_MEMBERS). */
#define CLUSTER_MAX_MEMBERS 4096u

/* One member as gossip carries it; maps field for field to the gossip
 * message. Strings are NUL-terminated and contain no NUL. The version of an
 * entry is (incarnation, heartbeat), compared in that order; only the
 * member itself raises it, and the greater version carries the name and
 * addresses. */
typedef struct cluster_entry {
    uint64_t id; /* never 0 */
    char name[CLUSTER_NAME_MAX + 1];
    char http_addr[CLUSTER_ADDR_MAX + 1];
    char rpc_addr[CLUSTER_ADDR_MAX + 1];
    cluster_status status;
    uint64_t incarnation; /* raised by the member on restart and to refute */
    uint64_t heartbeat;   /* raised by the member every gossip round */
} cluster_entry;

/* Fills *entry with id, the strings and status, incarnation and heartbeat
 * 0. RK_EINVAL if id is 0 or a string is NULL or too long. */
rk_err cluster_entry_init(cluster_entry *entry, uint64_t id, const char *name,
                          const char *http_addr, const char *rpc_addr, cluster_status status);

/* One row of the table: the gossiped entry plus what this node saw. */
typedef struct cluster_member {
    cluster_entry entry;
    cluster_liveness liveness;
    uint64_t last_heard_ms; /* caller's monotonic ms when the version last rose */
} cluster_member;

/* "joining", "member", "leaving", "removed" / "alive", "suspect", "down".
 * Static; "?" for a value out of range. */
const char *cluster_status_name(cluster_status status);
const char *cluster_liveness_name(cluster_liveness liveness);

/* ---- configuration ------------------------------------------------------ */

/* The machinery's gossip loop: every interval it raises its own heartbeat
 * (cluster_heartbeat), push-pulls with fanout peers (cluster_pick_peers),
 * and ticks the detector. docs/membership.md derives these numbers: with
 * them a killed node is DOWN everywhere within ~8 s (< 10 s) and a 5-node
 * cluster agrees on its members within ~1.5 s of a join (< 5 s). */
#define CLUSTER_DEFAULT_GOSSIP_INTERVAL_MS 250u
#define CLUSTER_DEFAULT_FANOUT 2u
#define CLUSTER_DEFAULT_SUSPECT_AFTER_MS 2000u
#define CLUSTER_DEFAULT_DOWN_AFTER_MS 5000u

typedef struct cluster_config {
    uint64_t suspect_after_ms; /* > 0 */
    uint64_t down_after_ms;    /* >= suspect_after_ms */
} cluster_config;

/* Fills *config with the defaults above. */
void cluster_config_default(cluster_config *config);

/* ---- the table ------------------------------------------------------------ */

typedef struct cluster_table cluster_table;

/* A new table that holds only the local node, *self (copied; its status is
 * JOINING for a node about to join through a seed, MEMBER for the first
 * node of a new cluster). config NULL means the defaults. On success *out
 * is the table: free it with cluster_table_free. RK_EINVAL on a bad self
 * entry or config, RK_ENOMEM. */
rk_err cluster_table_alloc(const cluster_entry *self, const cluster_config *config, uint64_t now_ms,
                           cluster_table **out);
/* NULL is a no-op. */
void cluster_table_free(cluster_table *table);
/* A deep copy (a snapshot for readers): free it with cluster_table_free.
 * RK_ENOMEM. */
rk_err cluster_table_clone(const cluster_table *table, cluster_table **out);

uint64_t cluster_self_id(const cluster_table *table);
/* The local node's row; valid until the table is next changed or freed. */
const cluster_member *cluster_self(const cluster_table *table);
/* Rows, removed ones included, in increasing id order. */
size_t cluster_member_count(const cluster_table *table);
/* index < cluster_member_count; valid until the table is next changed. */
const cluster_member *cluster_member_at(const cluster_table *table, size_t index);
/* The row of id, or NULL; valid until the table is next changed. */
const cluster_member *cluster_find(const cluster_table *table, uint64_t id);

/* Copies up to cap entries (what gossip sends: every row, removed ones
 * included, in id order) to out; returns the number of rows, which may be
 * more than cap (as snprintf). */
size_t cluster_export(const cluster_table *table, cluster_entry *out, size_t cap);

/* ---- changes made by this node ------------------------------------------- */

/* Raises the local node's heartbeat by one; call once per gossip round,
 * before sending. */
void cluster_heartbeat(cluster_table *table);

/* Moves member id (the local node or any other) forward to status: the
 * local node's leave (LEAVING, then REMOVED when its ranges are handed
 * over), its own JOINING -> MEMBER, or an operator's remove of a dead node
 * (REMOVED). Gossip carries it on: the status lattice needs no version
 * bump. *ring_changed (may be NULL) is set when the ring member set
 * changed. RK_OK without change if the status is already there;
 * RK_ENOTFOUND for an unknown id; RK_EINVAL for a move backwards or from
 * REMOVED. */
rk_err cluster_set_status(cluster_table *table, uint64_t id, cluster_status status,
                          bool *ring_changed);

/* ---- events, for the machinery's log and metrics ------------------------- */

typedef enum cluster_event_kind {
    CLUSTER_EVENT_ADDED,    /* new id; new_value = its status */
    CLUSTER_EVENT_STATUS,   /* ring status moved: old_value -> new_value */
    CLUSTER_EVENT_LIVENESS, /* liveness changed: old_value -> new_value */
    CLUSTER_EVENT_ADDRESS,  /* name or an address changed with a newer version */
    CLUSTER_EVENT_REFUTED,  /* the local node raised its incarnation:
                               old_value -> new_value */
} cluster_event_kind;

typedef struct cluster_event {
    cluster_event_kind kind;
    uint64_t node_id;
    uint64_t old_value; /* cluster_status, cluster_liveness or incarnation */
    uint64_t new_value;
} cluster_event;

/* Called synchronously, once per event, in id order. It must not change
 * the table. */
typedef void (*cluster_event_cb)(void *arg, const cluster_event *event);

/* ---- gossip --------------------------------------------------------------- */

typedef struct cluster_merge_result {
    size_t added;      /* ids this table did not know */
    size_t updated;    /* known ids whose version or status rose */
    bool ring_changed; /* cluster_ring_members is different now */
    bool refuted;      /* the local node raised its incarnation */
} cluster_merge_result;

/* Merges entries[0..count) received from a peer (a push or the reply to
 * one). For each entry:
 * - an unknown id is added, ALIVE, heard at now_ms;
 * - the status becomes the greater of the two (the lattice above);
 * - the greater version (incarnation, heartbeat; then name, http and rpc
 *   address by strcmp, so equal versions still resolve the same way on
 *   every node) replaces the version, name and addresses; if it rose, the
 *   member is heard at now_ms and becomes ALIVE.
 * For the status and the version this is a join: commutative, associative
 * and idempotent, so every node ends with the same rows whatever the order
 * of gossip. The local node's own row is the exception: nobody else may
 * speak for it, so an entry about it that would win over its own row (a
 * previous life's heartbeat that outlived a restart, a stale or false
 * claim) is refuted: the local node raises its incarnation above it, and
 * gossip carries the new version out, which overrides the claim
 * everywhere. An entry that loses to its own row loses everywhere else
 * too, and needs no answer. A status about itself is still accepted
 * (someone removed it: the machinery checks cluster_self()).
 *
 * Entries are checked first: on RK_EINVAL (an id 0, an unterminated string,
 * a status out of range, the same id twice) or when the table would exceed
 * CLUSTER_MAX_MEMBERS, or RK_ENOMEM, nothing changed and event_cb was not
 * called. result and event_cb may be NULL. The caller keeps entries. */
rk_err cluster_merge(cluster_table *table, const cluster_entry *entries, size_t count,
                     uint64_t now_ms, cluster_event_cb event_cb, void *arg,
                     cluster_merge_result *result);

/* The pull half of push-pull: writes to out (room for cap entries) this
 * table's entries that would change a table holding exactly
 * entries[0..count) (the peer's push): ids it lacks, a greater status or a
 * greater version. Returns how many there are, which may exceed cap. */
size_t cluster_delta(const cluster_table *table, const cluster_entry *entries, size_t count,
                     cluster_entry *out, size_t cap);

/* Applies the failure detector's timeouts at now_ms (see the diagram
 * above) and reports each transition through event_cb (may be NULL).
 * Returns the number of transitions. now_ms earlier than a last_heard_ms
 * counts as no time passed. */
size_t cluster_tick(cluster_table *table, uint64_t now_ms, cluster_event_cb event_cb, void *arg);

/* A uniform 64-bit random number; tests pass a seeded one. */
typedef uint64_t (*cluster_rand_cb)(void *arg);

/* Picks up to k distinct other members, uniformly at random, whose status
 * is not REMOVED and whose liveness is in liveness_mask (an OR of
 * CLUSTER_LIVENESS_BIT; ALIVE|SUSPECT for the gossip round, DOWN for the
 * occasional probe that lets a healed partition rejoin). Writes their ids
 * to out (room for k) and returns how many: min(k, candidates). No
 * allocation. */
size_t cluster_pick_peers(const cluster_table *table, unsigned liveness_mask, size_t k,
                          cluster_rand_cb rand_cb, void *rand_arg, uint64_t *out);

/* ---- the ring's members ----------------------------------------------------- */

/* True for the statuses the ring is built from: JOINING, MEMBER, LEAVING. */
bool cluster_status_in_ring(cluster_status status);

/* Writes the ids of the ring members (status JOINING, MEMBER or LEAVING,
 * whatever their liveness), in increasing order, to out (room for cap) and
 * returns how many there are, which may exceed cap (as snprintf). Pass the
 * result to ring_build. */
size_t cluster_ring_members(const cluster_table *table, uint64_t *out, size_t cap);

/* While members join or leave there are two rings (docs/membership.md,
 * "Changing the ring"): the one that serves reads is built from the members
 * that hold their ranges (MEMBER and LEAVING), the next one from the
 * members that will (JOINING and MEMBER). As cluster_ring_members, for
 * next false (the read ring) or true. When no member holds its ranges yet
 * (every ring member JOINING), the read ring is the next ring. */
size_t cluster_ring_members_of(const cluster_table *table, bool next, uint64_t *out, size_t cap);

/* A 64-bit hash of every (id, status) row, removed ones included. Two
 * tables with equal versions hold the same ids with the same statuses, so
 * the same ring members (barring a 2^-64 collision): nodes compare views by
 * 8 bytes. Liveness, versions and addresses do not enter it. FNV-1a over
 * the ids (8 bytes big-endian) and statuses (1 byte) in id order: part of
 * the protocol, every build must compute it the same way. */
uint64_t cluster_membership_version(const cluster_table *table);

/* ---- persistence (codec.c) --------------------------------------------------- */

/* Appends the table to out in a small binary format (docs/membership.md):
 * the local id and every row's entry; liveness and times are local and not
 * kept. RK_ENOMEM (out may then hold part of it). */
rk_err cluster_table_encode(const cluster_table *table, rk_buf *out);

/* Rebuilds a table from cluster_table_encode's bytes after a restart.
 * *self is the local node as started now (its addresses and name may have
 * changed; its id must be the one stored, else RK_EINVAL: a data dir
 * belongs to one node). The local row keeps its stored status and gets
 * incarnation stored + 1, heartbeat 0, so its first gossip overrides what
 * its previous life said. Every other row starts ALIVE, heard at now_ms:
 * the detector gives each a full down_after_ms to show up. config NULL
 * means the defaults. On success *out is the table: free it with
 * cluster_table_free. RK_ECORRUPT on bytes that do not decode exactly,
 * RK_EINVAL, RK_ENOMEM. */
rk_err cluster_table_decode(const void *data, size_t len, const cluster_entry *self,
                            const cluster_config *config, uint64_t now_ms, cluster_table **out);

/* ---- joining (join.c) ------------------------------------------------------ */

/* The parameters every member of a cluster shares. */
typedef struct cluster_params {
    uint64_t cluster_id; /* random, made by the first node; 0: not in a cluster yet */
    uint32_t n;
    uint32_t partitions;
} cluster_params;

/* Checks that a node with parameters *mine may join a cluster with
 * parameters *theirs: n and partitions must be equal, and the cluster ids
 * too unless mine is 0 (a fresh node). RK_OK, or RK_EINVAL with a one-line
 * reason for the operator written to reason (NUL-terminated, truncated to
 * reason_len; reason may be NULL when reason_len is 0). */
rk_err cluster_check_join(const cluster_params *mine, const cluster_params *theirs, char *reason,
                          size_t reason_len);

#endif
