/* node.c - the running membership of this node (include/ringkv/cluster.h):
 * the table behind a mutex, its persistence in `meta`, the join through
 * seeds, the gossip thread, the Membership service's handlers, and the
 * published cluster_view (view.c builds and frees views).
 *
 * Threads and what each may do:
 *
 *   caller of open/start/close/set_status  may block: joins, persists,
 *                                          builds views (before the gossip
 *                                          thread runs or after it stopped)
 *   the gossip thread                      rounds, and all housekeeping:
 *                                          logging events, persisting the
 *                                          table, building views
 *   RPC workers (Join, Gossip, Ping)       merge under the mutex, answer,
 *                                          wake the gossip thread
 *   NNG threads (gossip reply callbacks)   merge under the mutex, wake the
 *                                          gossip thread; never block
 *
 * Locks, in the order they may be taken:
 *   house_lock  serializes housekeeping; held across RocksDB writes and
 *               ring builds, so never taken by a handler or a callback
 *   lock        the table and the fields marked (lock); held for memory
 *               work only: never across an RPC, a RocksDB call or logging
 *   view_lock   the current view pointer: one load and one increment */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "node_internal.h"
#include "ringkv.pb-c.h"

#define MOD "cluster"
#define META_MEMBERS "members"
#define META_CLUSTER_ID "cluster_id"
#define JOIN_DEFAULT_TIMEOUT_MS 10000u
#define JOIN_CALL_TIMEOUT_MS 1000u /* one seed's chance per pass */
#define JOIN_PASS_PAUSE_MS 100u    /* between passes over the seeds */
#define GOSSIP_MIN_DEADLINE_MS 200u
#define PROBE_INTERVAL_MS 2000u        /* one DOWN member probed this often */
#define FOREIGN_LOG_INTERVAL_MS 10000u /* refused foreign gossip: one line per */

struct cluster_node {
    /* Set by open; read-only afterwards. */
    store *st;
    rpc_client *client;
    uint64_t self_id;
    ring_params params;
    char *seeds;
    uint32_t join_timeout_ms;
    uint32_t interval_ms;
    unsigned fanout;
    bool fresh; /* no members stored: cluster_node_start joins through seeds */
    /* 0 until a fresh node has joined; written once, read by handlers. */
    _Atomic uint64_t cluster_id;

    pthread_mutex_t lock;
    pthread_cond_t wake;    /* the gossip thread: stop, or work queued */
    pthread_cond_t drained; /* in_flight fell to 0 */
    cluster_table *table;   /* (lock) */
    cluster_event *events;  /* (lock) queued for housekeeping to log */
    size_t n_events, cap_events;
    size_t lost_events;       /* (lock) not queued: out of memory */
    bool dirty;               /* (lock) to persist: not just heartbeats changed */
    bool view_stale;          /* (lock) the published view is out of date */
    bool wake_pending;        /* (lock) housekeeping wanted before the next round */
    bool stopping;            /* (lock) */
    size_t in_flight;         /* (lock) gossip calls whose callback has not run */
    uint64_t foreign_refused; /* (lock) gossips from another cluster since logged */
    uint64_t foreign_log_ms;  /* (lock) when that was last logged */

    /* Only the thread that calls start and close touches these. */
    pthread_t thread;
    bool thread_started;
    /* Only the gossip thread touches these: scratch for a round. */
    uint64_t *peers;
    char (*peer_addrs)[CLUSTER_ADDR_MAX + 1];

    pthread_mutex_t house_lock;
    bool persist_failing; /* (house_lock) logged once per failing streak */

    pthread_mutex_t view_lock;
    view_box *view; /* (view_lock to read from other threads; written under
                       house_lock and view_lock) */
};

/* ---- small helpers ------------------------------------------------------- */

static uint64_t random_u64(void *arg)
{
    (void)arg;
    uint64_t v;
    randombytes_buf(&v, sizeof v);
    return v;
}

static cluster_params my_params(const cluster_node *cn)
{
    cluster_params p = {.cluster_id = atomic_load(&cn->cluster_id),
                        .n = cn->params.n,
                        .partitions = cn->params.partitions};
    return p;
}

/* ---- entries <-> Member messages ------------------------------------------ */

/* The proto's MemberStatus is cluster_status shifted by one, so that an
 * unset field (0) is not a valid status. */
static bool entry_from_proto(const Ringkv__Member *m, cluster_entry *out)
{
    if (m == NULL || m->status < RINGKV__MEMBER_STATUS__MEMBER_STATUS_JOINING ||
        m->status > RINGKV__MEMBER_STATUS__MEMBER_STATUS_REMOVED)
        return false;
    cluster_status status = (cluster_status)(m->status - 1);
    if (cluster_entry_init(out, m->node_id, m->name, m->http_addr, m->rpc_addr, status) != RK_OK)
        return false;
    out->incarnation = m->incarnation;
    out->heartbeat = m->heartbeat;
    return true;
}

/* The strings of m point into e: e must outlive m. */
static void entry_to_proto(cluster_entry *e, Ringkv__Member *m)
{
    ringkv__member__init(m);
    m->node_id = e->id;
    m->name = e->name;
    m->http_addr = e->http_addr;
    m->rpc_addr = e->rpc_addr;
    m->status = (Ringkv__MemberStatus)(e->status + 1);
    m->incarnation = e->incarnation;
    m->heartbeat = e->heartbeat;
}

/* Converts a received member list. On RK_OK *out holds count entries
 * (free it); RK_EINVAL on a malformed member, RK_ENOMEM. */
static rk_err entries_from_proto(Ringkv__Member *const *members, size_t count, cluster_entry **out)
{
    if (count > CLUSTER_MAX_MEMBERS)
        return RK_EINVAL;
    cluster_entry *entries = malloc((count ? count : 1) * sizeof *entries);
    if (entries == NULL)
        return RK_ENOMEM;
    for (size_t i = 0; i < count; i++)
        if (!entry_from_proto(members[i], &entries[i])) {
            free(entries);
            return RK_EINVAL;
        }
    *out = entries;
    return RK_OK;
}

/* Member messages pointing into entries[0..count): what a request or a
 * reply carries. Free with member_list_free. */
typedef struct member_list {
    Ringkv__Member *members;
    Ringkv__Member **ptrs;
    size_t count;
} member_list;

static rk_err member_list_init(member_list *list, cluster_entry *entries, size_t count)
{
    list->count = count;
    list->members = malloc((count ? count : 1) * sizeof *list->members);
    list->ptrs = malloc((count ? count : 1) * sizeof *list->ptrs);
    if (list->members == NULL || list->ptrs == NULL) {
        free(list->members);
        free(list->ptrs);
        return RK_ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        entry_to_proto(&entries[i], &list->members[i]);
        list->ptrs[i] = &list->members[i];
    }
    return RK_OK;
}

static void member_list_free(member_list *list)
{
    free(list->members);
    free(list->ptrs);
}

/* Copies the table's entries (cn->lock held). On RK_OK *out holds *count
 * entries: free it. */
static rk_err export_locked(cluster_node *cn, cluster_entry **out, size_t *count)
{
    size_t n = cluster_member_count(cn->table);
    cluster_entry *entries = malloc(n * sizeof *entries);
    if (entries == NULL)
        return RK_ENOMEM;
    cluster_export(cn->table, entries, n);
    *out = entries;
    *count = n;
    return RK_OK;
}

/* ---- events ---------------------------------------------------------------- */

/* The cluster_event_cb of every merge and tick; runs under cn->lock (on any
 * thread, NNG's included), so it only queues: housekeeping logs the queue
 * outside the lock. A liveness change needs a new view but no write (it is
 * local and not kept); a refutation needs a write (the incarnation) but no
 * new view (versions are not in it); the rest need both. */
static void on_event(void *arg, const cluster_event *ev)
{
    cluster_node *cn = arg;
    if (ev->kind != CLUSTER_EVENT_REFUTED)
        cn->view_stale = true;
    if (ev->kind != CLUSTER_EVENT_LIVENESS)
        cn->dirty = true;
    cn->wake_pending = true;
    if (rk_array_grow((void **)&cn->events, &cn->cap_events, cn->n_events + 1,
                      sizeof *cn->events) != RK_OK) {
        cn->lost_events++;
        return;
    }
    cn->events[cn->n_events++] = *ev;
}

/* After a merge on a handler or callback thread (cn->lock held): let the
 * gossip thread do the housekeeping the merge's events asked for. */
static void wake_if_pending(cluster_node *cn)
{
    if (cn->wake_pending)
        pthread_cond_signal(&cn->wake);
}

typedef struct described_event {
    cluster_event ev;
    char name[CLUSTER_NAME_MAX + 1];
    char http_addr[CLUSTER_ADDR_MAX + 1];
    char rpc_addr[CLUSTER_ADDR_MAX + 1];
} described_event;

static void log_event(const described_event *d)
{
    const cluster_event *ev = &d->ev;
    switch (ev->kind) {
    case CLUSTER_EVENT_ADDED:
        RK_INFO(MOD, "%s (%s) added, %s, id %016" PRIx64, d->name, d->rpc_addr,
                cluster_status_name((cluster_status)ev->new_value), ev->node_id);
        break;
    case CLUSTER_EVENT_STATUS:
        RK_INFO(MOD, "%s (%s) moved from %s to %s", d->name, d->rpc_addr,
                cluster_status_name((cluster_status)ev->old_value),
                cluster_status_name((cluster_status)ev->new_value));
        break;
    case CLUSTER_EVENT_LIVENESS:
        RK_INFO(MOD, "%s (%s) is %s%s", d->name, d->rpc_addr,
                cluster_liveness_name((cluster_liveness)ev->new_value),
                ev->new_value == CLUSTER_ALIVE ? " again" : "");
        break;
    case CLUSTER_EVENT_ADDRESS:
        RK_INFO(MOD, "%s is now at %s (rpc), %s (http)", d->name, d->rpc_addr, d->http_addr);
        break;
    case CLUSTER_EVENT_REFUTED:
        RK_INFO(MOD,
                "refuted a stale or false claim about this node: incarnation %" PRIu64
                " -> %" PRIu64,
                ev->old_value, ev->new_value);
        break;
    }
}

/* Logs the queued events, with each member's current name and addresses.
 * house_lock held. */
static void log_events(cluster_node *cn)
{
    pthread_mutex_lock(&cn->lock);
    cluster_event *events = cn->events;
    size_t n = cn->n_events, lost = cn->lost_events;
    cn->events = NULL;
    cn->n_events = cn->cap_events = cn->lost_events = 0;
    described_event *d = n ? calloc(n, sizeof *d) : NULL;
    for (size_t i = 0; d != NULL && i < n; i++) {
        d[i].ev = events[i];
        const cluster_member *m = cluster_find(cn->table, events[i].node_id);
        if (m != NULL) { /* rows are never deleted, so always */
            memcpy(d[i].name, m->entry.name, sizeof d[i].name);
            memcpy(d[i].http_addr, m->entry.http_addr, sizeof d[i].http_addr);
            memcpy(d[i].rpc_addr, m->entry.rpc_addr, sizeof d[i].rpc_addr);
        }
    }
    pthread_mutex_unlock(&cn->lock);
    free(events);
    if (d == NULL && n > 0)
        lost += n;
    for (size_t i = 0; d != NULL && i < n; i++)
        log_event(&d[i]);
    if (lost > 0)
        RK_WARN(MOD, "%zu membership events not logged (out of memory)", lost);
    free(d);
}

/* ---- persistence ------------------------------------------------------------- */

/* Writes the table under "members" if something other than heartbeats and
 * liveness changed (cn->dirty) and the node is in a cluster: a fresh node
 * stores nothing until it has joined, so a failed join leaves a data dir
 * that joins again. house_lock held. */
static rk_err persist(cluster_node *cn)
{
    rk_buf buf = {0};
    pthread_mutex_lock(&cn->lock);
    if (!cn->dirty || atomic_load(&cn->cluster_id) == 0) {
        pthread_mutex_unlock(&cn->lock);
        return RK_OK;
    }
    rk_err err = cluster_table_encode(cn->table, &buf);
    if (err == RK_OK)
        cn->dirty = false; /* a change during the write sets it again */
    pthread_mutex_unlock(&cn->lock);
    if (err == RK_OK)
        err = store_meta_put(cn->st, META_MEMBERS, buf.data, buf.len);
    rk_buf_free(&buf);
    if (err != RK_OK) {
        pthread_mutex_lock(&cn->lock);
        cn->dirty = true; /* tried again after the next round */
        pthread_mutex_unlock(&cn->lock);
        if (!cn->persist_failing)
            RK_ERROR(MOD, "cannot store the member table: %s (will retry)", rk_strerror(err));
        cn->persist_failing = true;
    } else if (cn->persist_failing) {
        RK_INFO(MOD, "member table stored again");
        cn->persist_failing = false;
    }
    return err;
}

/* "cluster_id" holds 16 lowercase hex digits. A build before membership
 * stored 32 (a random 128-bit id, and no members); its first 16 digits
 * become the id and are written back as 16. RK_ENOTFOUND when absent,
 * RK_ECORRUPT (logged) when unreadable. */
static rk_err load_cluster_id(store *st, uint64_t *out)
{
    rk_buf buf = {0};
    rk_err err = store_meta_get(st, META_CLUSTER_ID, &buf);
    if (err != RK_OK) {
        rk_buf_free(&buf);
        return err;
    }
    uint64_t id = 0;
    bool ok = (buf.len == 16 || buf.len == 32) && rk_hex_parse_u64(buf.data, 16, &id) == RK_OK;
    if (!ok || id == 0) {
        RK_ERROR(MOD, "stored cluster id '%.*s' is not 16 hex digits",
                 (int)(buf.len > 40 ? 40 : buf.len), buf.data);
        rk_buf_free(&buf);
        return RK_ECORRUPT;
    }
    bool old_format = buf.len == 32;
    rk_buf_free(&buf);
    if (old_format) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, id);
        err = store_meta_put(st, META_CLUSTER_ID, hex, 16);
        if (err != RK_OK)
            return err;
        RK_INFO(MOD, "cluster id stored by an older build rewritten as %s", hex);
    }
    *out = id;
    return RK_OK;
}

static rk_err store_cluster_id(store *st, uint64_t id)
{
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, id);
    return store_meta_put(st, META_CLUSTER_ID, hex, 16);
}

/* ---- the view ------------------------------------------------------------------ */

/* The ring of ids[0..n): shared with the old view's read or next ring when
 * it has the same members, else built. *out NULL when n is 0. */
static rk_err ring_of(cluster_node *cn, const view_box *old, const uint64_t *ids, size_t n,
                      ring_t **out)
{
    *out = NULL;
    if (old != NULL && cluster_view_ring_has(old->view.ring, ids, n))
        *out = ring_ref(old->view.ring);
    else if (old != NULL && cluster_view_ring_has(old->view.next_ring, ids, n))
        *out = ring_ref(old->view.next_ring);
    else if (n > 0)
        return ring_build(ids, n, &cn->params, out);
    return RK_OK;
}

/* Builds and publishes a new view if an event made the current one stale.
 * The snapshot is taken under the lock; the rings are built outside it (it
 * costs milliseconds), or shared with the current view when the
 * ring members did not change (a liveness or address change). house_lock held,
 * so views are published one at a time, in order. On failure the view
 * stays stale and the next housekeeping tries again. */
static rk_err refresh_view(cluster_node *cn)
{
    pthread_mutex_lock(&cn->lock);
    if (!cn->view_stale) {
        pthread_mutex_unlock(&cn->lock);
        return RK_OK;
    }
    size_t count = cluster_member_count(cn->table);
    view_box *box = cluster_view_box_alloc(count);
    uint64_t *ids = malloc(2 * count * sizeof *ids + 1);
    if (box == NULL || ids == NULL) {
        pthread_mutex_unlock(&cn->lock);
        free(box);
        free(ids);
        return RK_ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        const cluster_member *m = cluster_member_at(cn->table, i);
        cluster_view_member *v = &box->members[i];
        v->id = m->entry.id;
        memcpy(v->name, m->entry.name, sizeof v->name);
        memcpy(v->http_addr, m->entry.http_addr, sizeof v->http_addr);
        memcpy(v->rpc_addr, m->entry.rpc_addr, sizeof v->rpc_addr);
        v->status = m->entry.status;
        v->liveness = m->liveness;
    }
    uint64_t *next_ids = ids + count;
    size_t n_ring = cluster_ring_members_of(cn->table, false, ids, count);
    size_t n_next = cluster_ring_members_of(cn->table, true, next_ids, count);
    box->view.self_id = cn->self_id;
    box->view.cluster_id = atomic_load(&cn->cluster_id);
    box->view.membership_version = cluster_membership_version(cn->table);
    cn->view_stale = false;
    pthread_mutex_unlock(&cn->lock);

    /* Only house_lock holders write cn->view, so it can be read here
     * without view_lock. */
    view_box *old = cn->view;
    ring_t *ring = NULL, *next = NULL;
    bool same = n_ring == n_next && memcmp(ids, next_ids, n_ring * sizeof *ids) == 0;
    rk_err err = ring_of(cn, old, ids, n_ring, &ring);
    if (err == RK_OK && !same)
        err = ring_of(cn, old, next_ids, n_next, &next);
    free(ids);
    if (err != RK_OK) {
        RK_ERROR(MOD, "cannot build the rings of %zu and %zu members: %s", n_ring, n_next,
                 rk_strerror(err));
        ring_unref(ring);
        pthread_mutex_lock(&cn->lock);
        cn->view_stale = true;
        pthread_mutex_unlock(&cn->lock);
        free(box);
        return err;
    }
    box->view.ring = ring;
    box->view.next_ring = next;
    box->view.generation = old != NULL ? old->view.generation + 1 : 1;
    pthread_mutex_lock(&cn->view_lock);
    cn->view = box;
    pthread_mutex_unlock(&cn->view_lock);
    cluster_view_unref(old == NULL ? NULL : &old->view); /* the node's reference */
    return RK_OK;
}

/* Logs queued events, persists and publishes a new view, as needed. The
 * first error of the write or the build, which are retried next time. */
static rk_err housekeeping(cluster_node *cn)
{
    pthread_mutex_lock(&cn->house_lock);
    log_events(cn);
    rk_err err = persist(cn);
    rk_err view_err = refresh_view(cn);
    pthread_mutex_unlock(&cn->house_lock);
    return err != RK_OK ? err : view_err;
}

/* ---- the Membership service ----------------------------------------------------- */

/* Join: a fresh node asks this one (a seed). The reply always carries this
 * node's parameters, so a refused joiner can say why; the members only
 * when the joiner was accepted (and merged). A node that has not joined
 * yet answers RK_ENOTFOUND: it has no cluster to offer, and the joiner
 * tries its next seed. */
static void join_cb(rpc_request *req, const ProtobufCMessage *input, void *arg)
{
    cluster_node *cn = arg;
    const Ringkv__JoinRequest *in = (const Ringkv__JoinRequest *)input;
    cluster_params mine = my_params(cn);
    if (mine.cluster_id == 0) {
        rpc_respond(req, RK_ENOTFOUND, NULL);
        return;
    }
    cluster_entry joiner;
    if (in->self == NULL || in->params == NULL || !entry_from_proto(in->self, &joiner)) {
        rpc_respond(req, RK_EINVAL, NULL);
        return;
    }
    Ringkv__ClusterParams params = RINGKV__CLUSTER_PARAMS__INIT;
    params.cluster_id = mine.cluster_id;
    params.n = mine.n;
    params.partitions = mine.partitions;
    Ringkv__JoinReply reply = RINGKV__JOIN_REPLY__INIT;
    reply.params = &params;

    cluster_params theirs = {.cluster_id = in->params->cluster_id,
                             .n = in->params->n,
                             .partitions = in->params->partitions};
    char reason[256];
    bool refused = true;
    if (joiner.id == cn->self_id)
        snprintf(reason, sizeof reason, "it has this node's id %016" PRIx64 " (a copied data dir?)",
                 joiner.id);
    else
        refused = cluster_check_join(&theirs, &mine, reason, sizeof reason) != RK_OK;
    if (refused) {
        RK_WARN(MOD, "refused the join of %s (%s): %s", joiner.name, joiner.rpc_addr, reason);
        rpc_respond(req, RK_OK, &reply.base);
        return;
    }

    cluster_entry *entries = NULL;
    size_t count = 0;
    pthread_mutex_lock(&cn->lock);
    rk_err err = cluster_merge(cn->table, &joiner, 1, rk_monotonic_ms(), on_event, cn, NULL);
    if (err == RK_OK)
        err = export_locked(cn, &entries, &count);
    wake_if_pending(cn);
    pthread_mutex_unlock(&cn->lock);
    member_list list;
    if (err == RK_OK)
        err = member_list_init(&list, entries, count);
    if (err != RK_OK) {
        free(entries);
        rpc_respond(req, err, NULL);
        return;
    }
    reply.n_members = list.count;
    reply.members = list.ptrs;
    rpc_respond(req, RK_OK, &reply.base);
    member_list_free(&list);
    free(entries);
}

/* Counts a gossip from another cluster and logs one line per
 * FOREIGN_LOG_INTERVAL_MS at most: a misconfigured node sends one every
 * round, and the log must not fill with them. */
static void refuse_foreign(cluster_node *cn, uint64_t sender, uint64_t their_id)
{
    uint64_t now = rk_monotonic_ms();
    pthread_mutex_lock(&cn->lock);
    cn->foreign_refused++;
    uint64_t refused = 0;
    if (cn->foreign_log_ms == 0 || now - cn->foreign_log_ms >= FOREIGN_LOG_INTERVAL_MS) {
        refused = cn->foreign_refused;
        cn->foreign_refused = 0;
        cn->foreign_log_ms = now;
    }
    pthread_mutex_unlock(&cn->lock);
    if (refused > 0)
        RK_WARN(MOD,
                "refused %" PRIu64 " gossip message(s) from another cluster (latest from "
                "node %016" PRIx64 " in cluster %016" PRIx64 "; this is cluster %016" PRIx64 ")",
                refused, sender, their_id, atomic_load(&cn->cluster_id));
}

/* Gossip: the push half arrives; merge it and answer with the pull half.
 * The answer is cluster_delta (the rows this node has that would change
 * the caller's table), not every row: the caller just sent its whole
 * table, so the delta is exactly what it lacks, and in a quiet cluster it
 * is a handful of heartbeats instead of the whole table twice per
 * exchange. */
static void gossip_cb(rpc_request *req, const ProtobufCMessage *input, void *arg)
{
    cluster_node *cn = arg;
    const Ringkv__GossipRequest *in = (const Ringkv__GossipRequest *)input;
    uint64_t ours = atomic_load(&cn->cluster_id);
    if (ours == 0 || in->cluster_id != ours) {
        refuse_foreign(cn, rpc_request_sender(req), in->cluster_id);
        rpc_respond(req, RK_EINVAL, NULL);
        return;
    }
    cluster_entry *entries = NULL, *delta = NULL;
    rk_err err = entries_from_proto(in->members, in->n_members, &entries);
    size_t n_delta = 0;
    if (err == RK_OK) {
        pthread_mutex_lock(&cn->lock);
        err =
            cluster_merge(cn->table, entries, in->n_members, rk_monotonic_ms(), on_event, cn, NULL);
        if (err == RK_OK) {
            size_t cap = cluster_member_count(cn->table);
            delta = malloc(cap * sizeof *delta);
            if (delta == NULL)
                err = RK_ENOMEM;
            else
                n_delta = cluster_delta(cn->table, entries, in->n_members, delta, cap);
        }
        wake_if_pending(cn);
        pthread_mutex_unlock(&cn->lock);
    }
    free(entries);
    member_list list;
    if (err == RK_OK)
        err = member_list_init(&list, delta, n_delta);
    if (err != RK_OK) {
        RK_DEBUG(MOD, "gossip from %016" PRIx64 " not taken: %s", rpc_request_sender(req),
                 rk_strerror(err));
        free(delta);
        rpc_respond(req, err, NULL);
        return;
    }
    Ringkv__GossipReply reply = RINGKV__GOSSIP_REPLY__INIT;
    reply.n_members = list.count;
    reply.members = list.ptrs;
    rpc_respond(req, RK_OK, &reply.base);
    member_list_free(&list);
    free(delta);
}

static void ping_cb(rpc_request *req, const ProtobufCMessage *input, void *arg)
{
    cluster_node *cn = arg;
    const Ringkv__PingRequest *in = (const Ringkv__PingRequest *)input;
    Ringkv__PingReply reply = RINGKV__PING_REPLY__INIT;
    reply.node_id = cn->self_id;
    reply.payload = in->payload;
    rpc_respond(req, RK_OK, &reply.base);
}

size_t cluster_node_handlers(cluster_node *cn, rpc_handler *out, size_t cap)
{
    const rpc_handler all[] = {
        {.service = &ringkv__membership__descriptor,
         .method = "Join",
         .handler_cb = join_cb,
         .arg = cn},
        {.service = &ringkv__membership__descriptor,
         .method = "Gossip",
         .handler_cb = gossip_cb,
         .arg = cn},
        {.service = &ringkv__membership__descriptor,
         .method = "Ping",
         .handler_cb = ping_cb,
         .arg = cn},
    };
    return rpc_handlers_copy(all, sizeof all / sizeof all[0], out, cap);
}

/* ---- the gossip round -------------------------------------------------------------- */

typedef struct gossip_call {
    cluster_node *cn;
    uint64_t peer;
} gossip_call;

/* The last thing a call does with cn: close may free it right after. */
static void call_done(cluster_node *cn)
{
    pthread_mutex_lock(&cn->lock);
    if (--cn->in_flight == 0)
        pthread_cond_broadcast(&cn->drained);
    pthread_mutex_unlock(&cn->lock);
}

/* On an NNG thread: merge the pull half under the lock, nothing slower. */
static void gossip_reply_cb(rk_err err, ProtobufCMessage *reply, void *arg)
{
    gossip_call *call = arg;
    cluster_node *cn = call->cn;
    if (err == RK_OK) {
        const Ringkv__GossipReply *r = (const Ringkv__GossipReply *)reply;
        cluster_entry *entries = NULL;
        err = entries_from_proto(r->members, r->n_members, &entries);
        if (err == RK_OK) {
            pthread_mutex_lock(&cn->lock);
            err = cluster_merge(cn->table, entries, r->n_members, rk_monotonic_ms(), on_event, cn,
                                NULL);
            wake_if_pending(cn);
            pthread_mutex_unlock(&cn->lock);
            free(entries);
        }
    }
    if (err != RK_OK)
        RK_DEBUG(MOD, "gossip with %016" PRIx64 ": %s", call->peer, rk_strerror(err));
    rpc_reply_free(reply);
    free(call);
    call_done(cn);
}

static void send_gossip(cluster_node *cn, uint64_t peer, const char *addr,
                        const Ringkv__GossipRequest *req, uint64_t deadline_ms)
{
    gossip_call *call = malloc(sizeof *call);
    if (call == NULL)
        return;
    call->cn = cn;
    call->peer = peer;
    pthread_mutex_lock(&cn->lock);
    cn->in_flight++;
    pthread_mutex_unlock(&cn->lock);
    rk_err err = rpc_call_async(cn->client, addr, &ringkv__membership__descriptor, "Gossip",
                                &req->base, deadline_ms, gossip_reply_cb, call);
    if (err != RK_OK) { /* the callback will not run */
        RK_DEBUG(MOD, "gossip to %016" PRIx64 " at %s not sent: %s", peer, addr, rk_strerror(err));
        free(call);
        call_done(cn);
    }
}

/* One round: heartbeat, push-pull with fanout live peers (and now and then
 * with one DOWN member, so a node that came back or the far side of a
 * healed partition is heard again even when nobody else talks to it),
 * then the detector's tick. The replies are merged by their callbacks,
 * mostly after this returns: their news counts from the next tick on. */
static void gossip_round(cluster_node *cn, bool probe)
{
    cluster_entry *entries = NULL;
    size_t count = 0, k;
    pthread_mutex_lock(&cn->lock);
    cluster_heartbeat(cn->table);
    k = cluster_pick_peers(
        cn->table, CLUSTER_LIVENESS_BIT(CLUSTER_ALIVE) | CLUSTER_LIVENESS_BIT(CLUSTER_SUSPECT),
        cn->fanout, random_u64, NULL, cn->peers);
    if (probe)
        k += cluster_pick_peers(cn->table, CLUSTER_LIVENESS_BIT(CLUSTER_DOWN), 1, random_u64, NULL,
                                cn->peers + k);
    for (size_t i = 0; i < k; i++)
        memcpy(cn->peer_addrs[i], cluster_find(cn->table, cn->peers[i])->entry.rpc_addr,
               sizeof cn->peer_addrs[i]);
    rk_err err = k > 0 ? export_locked(cn, &entries, &count) : RK_OK;
    pthread_mutex_unlock(&cn->lock);

    member_list list;
    if (k > 0 && err == RK_OK && (err = member_list_init(&list, entries, count)) == RK_OK) {
        Ringkv__GossipRequest req = RINGKV__GOSSIP_REQUEST__INIT;
        req.cluster_id = atomic_load(&cn->cluster_id);
        req.n_members = list.count;
        req.members = list.ptrs;
        uint32_t timeout =
            cn->interval_ms > GOSSIP_MIN_DEADLINE_MS ? cn->interval_ms : GOSSIP_MIN_DEADLINE_MS;
        uint64_t deadline = rk_deadline_after_ms(timeout);
        for (size_t i = 0; i < k; i++)
            send_gossip(cn, cn->peers[i], cn->peer_addrs[i], &req, deadline);
        member_list_free(&list);
    }
    if (err != RK_OK)
        RK_WARN(MOD, "gossip round skipped: %s", rk_strerror(err));
    free(entries);

    pthread_mutex_lock(&cn->lock);
    cluster_tick(cn->table, rk_monotonic_ms(), on_event, cn);
    pthread_mutex_unlock(&cn->lock);
}

/* The gossip thread: a round every interval_ms, and housekeeping after
 * each round and whenever a handler or callback queued events. The phase
 * of the rounds is the node's start time, different on every node. */
static void *gossip_main(void *arg)
{
    cluster_node *cn = arg;
    uint64_t next_round = rk_monotonic_ms();
    uint64_t next_probe = next_round + PROBE_INTERVAL_MS;
    for (;;) {
        pthread_mutex_lock(&cn->lock);
        while (!cn->stopping && !cn->wake_pending && rk_monotonic_ms() < next_round)
            rk_cond_wait_until(&cn->wake, &cn->lock, next_round);
        bool stop = cn->stopping;
        cn->wake_pending = false;
        pthread_mutex_unlock(&cn->lock);
        if (stop)
            break;
        uint64_t now = rk_monotonic_ms();
        if (now >= next_round) {
            bool probe = now >= next_probe;
            gossip_round(cn, probe);
            if (probe)
                next_probe = now + PROBE_INTERVAL_MS;
            next_round += cn->interval_ms;
            if (next_round <= now) /* fell behind (a slow disk): no burst of rounds */
                next_round = now + cn->interval_ms;
        }
        housekeeping(cn); /* failures were logged and are retried */
    }
    return NULL;
}

/* ---- join -------------------------------------------------------------------------- */

/* Takes a Join reply from seed. RK_OK: joined and stored. RK_EINVAL
 * (logged): the parameters differ, or the seed refused. RK_EIO: the
 * cluster id or table could not be stored. Anything else: a bad reply;
 * try another seed. */
static rk_err take_join_reply(cluster_node *cn, const char *seed, const Ringkv__JoinReply *reply)
{
    if (reply->params == NULL)
        return RK_ECORRUPT;
    cluster_params mine = my_params(cn);
    cluster_params theirs = {.cluster_id = reply->params->cluster_id,
                             .n = reply->params->n,
                             .partitions = reply->params->partitions};
    char reason[256];
    if (cluster_check_join(&mine, &theirs, reason, sizeof reason) != RK_OK) {
        RK_ERROR(MOD, "cannot join the cluster through %s: %s", seed, reason);
        return RK_EINVAL;
    }
    if (theirs.cluster_id == 0)
        return RK_ECORRUPT; /* a seed outside a cluster answers RK_ENOTFOUND */
    if (reply->n_members == 0) {
        RK_ERROR(MOD,
                 "cannot join the cluster through %s: the seed refused this node "
                 "(its log says why)",
                 seed);
        return RK_EINVAL;
    }
    cluster_entry *entries;
    rk_err err = entries_from_proto(reply->members, reply->n_members, &entries);
    if (err != RK_OK)
        return err == RK_EINVAL ? RK_ECORRUPT : err;
    pthread_mutex_lock(&cn->lock);
    err =
        cluster_merge(cn->table, entries, reply->n_members, rk_monotonic_ms(), on_event, cn, NULL);
    size_t count = cluster_member_count(cn->table);
    if (err == RK_OK) {
        atomic_store(&cn->cluster_id, theirs.cluster_id);
        cn->dirty = cn->view_stale = true;
    }
    pthread_mutex_unlock(&cn->lock);
    free(entries);
    if (err != RK_OK)
        return err == RK_EINVAL ? RK_ECORRUPT : err;
    RK_INFO(MOD, "joined cluster %016" PRIx64 " through %s: %zu members", theirs.cluster_id, seed,
            count);
    /* The id first: a crash between the writes leaves a node that joins
     * the same cluster again, never one with members and no cluster. */
    err = store_cluster_id(cn->st, theirs.cluster_id);
    if (err == RK_OK)
        err = housekeeping(cn);
    if (err != RK_OK) {
        RK_ERROR(MOD, "joined, but cannot store the membership: %s", rk_strerror(err));
        return RK_EIO;
    }
    return RK_OK;
}

/* Splits the seed list in place into seeds[0..*n) (at most cap), trimmed,
 * without this node's own address. */
static size_t split_seeds(char *list, const char *self_addr, char **seeds, size_t cap)
{
    size_t n = 0;
    char *save = NULL;
    for (char *s = strtok_r(list, ",", &save); s != NULL && n < cap;
         s = strtok_r(NULL, ",", &save)) {
        while (*s == ' ' || *s == '\t')
            s++;
        char *end = s + strlen(s);
        while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (*s != '\0' && strcmp(s, self_addr) != 0)
            seeds[n++] = s;
    }
    return n;
}

#define MAX_SEEDS 64

/* Asks each seed in turn, passes over the list until join_timeout_ms. */
static rk_err join(cluster_node *cn)
{
    char *list = strdup(cn->seeds);
    if (list == NULL)
        return RK_ENOMEM;
    cluster_entry self;
    pthread_mutex_lock(&cn->lock);
    self = cluster_self(cn->table)->entry;
    pthread_mutex_unlock(&cn->lock);
    char *seeds[MAX_SEEDS];
    rk_err last[MAX_SEEDS];
    size_t n = split_seeds(list, self.rpc_addr, seeds, MAX_SEEDS);
    if (n == 0) {
        RK_ERROR(MOD, "no seed to join through in '%s' (only this node's own address?)", cn->seeds);
        free(list);
        return RK_EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        last[i] = RK_ETIMEDOUT;

    Ringkv__Member me;
    entry_to_proto(&self, &me);
    Ringkv__ClusterParams params = RINGKV__CLUSTER_PARAMS__INIT;
    cluster_params mine = my_params(cn);
    params.cluster_id = mine.cluster_id; /* 0 unless an older build left one */
    params.n = mine.n;
    params.partitions = mine.partitions;
    Ringkv__JoinRequest req = RINGKV__JOIN_REQUEST__INIT;
    req.self = &me;
    req.params = &params;

    RK_INFO(MOD, "joining through %s (for up to %" PRIu32 " ms)", cn->seeds, cn->join_timeout_ms);
    uint64_t give_up = rk_deadline_after_ms(cn->join_timeout_ms);
    rk_err result = RK_ETIMEDOUT;
    for (bool done = false; !done;) {
        for (size_t i = 0; i < n && !done; i++) {
            uint64_t now = rk_monotonic_ms();
            if (now >= give_up) {
                done = true;
                break;
            }
            uint64_t deadline = now + JOIN_CALL_TIMEOUT_MS;
            if (deadline > give_up)
                deadline = give_up;
            ProtobufCMessage *reply = NULL;
            rk_err err = rpc_call(cn->client, seeds[i], &ringkv__membership__descriptor, "Join",
                                  &req.base, deadline, &reply);
            if (err == RK_OK) {
                err = take_join_reply(cn, seeds[i], (const Ringkv__JoinReply *)reply);
                rpc_reply_free(reply);
                if (err == RK_OK || err == RK_EINVAL || err == RK_EIO) {
                    result = err;
                    done = true;
                    break;
                }
            }
            last[i] = err;
            RK_DEBUG(MOD, "join through %s: %s", seeds[i], rk_strerror(err));
        }
        uint64_t now = rk_monotonic_ms();
        if (!done && now < give_up)
            rk_sleep_ms((unsigned)(give_up - now < JOIN_PASS_PAUSE_MS ? give_up - now
                                                                      : JOIN_PASS_PAUSE_MS));
        else
            done = true;
    }
    if (result == RK_ETIMEDOUT) {
        rk_buf why = {0};
        for (size_t i = 0; i < n; i++)
            rk_buf_appendf(&why, "%s%s: %s", i ? ", " : "", seeds[i],
                           last[i] == RK_ENOTFOUND ? "not in a cluster yet" : rk_strerror(last[i]));
        RK_ERROR(MOD,
                 "no seed answered the join within %" PRIu32 " ms (%s): they are down, or "
                 "run with a different CLUSTER_SECRET and drop this node's frames",
                 cn->join_timeout_ms, why.data ? why.data : "");
        rk_buf_free(&why);
    }
    free(list);
    return result;
}

/* ---- open, start, close ------------------------------------------------------------- */

static bool valid_params(uint32_t n, uint32_t partitions)
{
    return n >= 1 && n <= RING_MAX_N && partitions >= 1 && partitions <= RING_MAX_PARTITIONS &&
           (partitions & (partitions - 1)) == 0;
}

/* Frees what open made; cn's thread is not running. */
static void node_free(cluster_node *cn)
{
    if (cn->view != NULL)
        cluster_view_unref(&cn->view->view);
    cluster_table_free(cn->table);
    free(cn->events);
    free(cn->seeds);
    free(cn->peers);
    free(cn->peer_addrs);
    pthread_mutex_destroy(&cn->view_lock);
    pthread_mutex_destroy(&cn->house_lock);
    pthread_cond_destroy(&cn->drained);
    pthread_cond_destroy(&cn->wake);
    pthread_mutex_destroy(&cn->lock);
    free(cn);
}

static cluster_node *node_alloc(const cluster_node_options *opts)
{
    cluster_node *cn = calloc(1, sizeof *cn);
    if (cn == NULL)
        return NULL;
    pthread_mutex_init(&cn->lock, NULL);
    rk_cond_init_monotonic(&cn->wake); /* rounds wait until rk_monotonic_ms deadlines */
    pthread_cond_init(&cn->drained, NULL);
    pthread_mutex_init(&cn->house_lock, NULL);
    pthread_mutex_init(&cn->view_lock, NULL);
    cn->st = opts->st;
    cn->client = opts->client;
    cn->self_id = opts->self_id;
    cn->params.n = opts->n;
    cn->params.partitions = opts->partitions;
    cn->join_timeout_ms = opts->join_timeout_ms ? opts->join_timeout_ms : JOIN_DEFAULT_TIMEOUT_MS;
    cn->interval_ms =
        opts->gossip_interval_ms ? opts->gossip_interval_ms : CLUSTER_DEFAULT_GOSSIP_INTERVAL_MS;
    cn->fanout = opts->fanout ? opts->fanout : CLUSTER_DEFAULT_FANOUT;
    if (cn->fanout > CLUSTER_MAX_MEMBERS)
        cn->fanout = CLUSTER_MAX_MEMBERS;
    cn->peers = malloc((cn->fanout + 1) * sizeof *cn->peers);
    cn->peer_addrs = malloc((cn->fanout + 1) * sizeof *cn->peer_addrs);
    bool has_seeds = opts->seeds != NULL && opts->seeds[strspn(opts->seeds, " ,\t")] != '\0';
    cn->seeds = has_seeds ? strdup(opts->seeds) : NULL;
    if (cn->peers == NULL || cn->peer_addrs == NULL || (has_seeds && cn->seeds == NULL)) {
        node_free(cn);
        return NULL;
    }
    return cn;
}

/* Makes cn->table and cn->cluster_id from the store (see cluster_node_open). */
static rk_err load(cluster_node *cn, const cluster_entry *self, const cluster_config *config)
{
    uint64_t now = rk_monotonic_ms(), cluster_id = 0;
    rk_buf members = {0};
    rk_err err = store_meta_get(cn->st, META_MEMBERS, &members);
    if (err == RK_OK) {
        /* A restart: rejoin through the stored members. */
        err = cluster_table_decode(members.data, members.len, self, config, now, &cn->table);
        rk_buf_free(&members);
        if (err == RK_EINVAL)
            RK_ERROR(MOD,
                     "the stored member table belongs to another node id, not %016" PRIx64
                     " (a data dir belongs to one node)",
                     self->id);
        else if (err == RK_ECORRUPT)
            RK_ERROR(MOD, "the stored member table does not decode");
        if (err != RK_OK)
            return err;
        err = load_cluster_id(cn->st, &cluster_id);
        if (err == RK_ENOTFOUND) {
            RK_ERROR(MOD, "members are stored but no cluster id");
            err = RK_ECORRUPT;
        }
        if (err != RK_OK)
            return err;
        const cluster_member *me = cluster_self(cn->table);
        RK_INFO(MOD, "rejoining cluster %016" PRIx64 " through %zu stored members%s", cluster_id,
                cluster_member_count(cn->table) - 1,
                cn->seeds ? " (seeds ignored: they are only for a fresh node)" : "");
        if (me->entry.status == CLUSTER_REMOVED)
            RK_WARN(MOD, "this node was removed from the cluster: it must not serve; start it "
                         "with an empty data dir to come back as a new node");
        atomic_store(&cn->cluster_id, cluster_id);
        cn->dirty = true; /* the new incarnation and addresses */
        return RK_OK;
    }
    rk_buf_free(&members);
    if (err != RK_ENOTFOUND)
        return RK_EIO;
    /* No members: an older build may have left a cluster id (one node). */
    err = load_cluster_id(cn->st, &cluster_id);
    if (err != RK_OK && err != RK_ENOTFOUND)
        return err;
    /* A joiner is JOINING until its ranges have arrived (src/sync moves it
     * to MEMBER); the first node of a cluster holds everything already. */
    cluster_entry me = *self;
    me.status = cn->seeds != NULL ? CLUSTER_JOINING : CLUSTER_MEMBER;
    err = cluster_table_alloc(&me, config, now, &cn->table);
    if (err != RK_OK)
        return err;
    if (cn->seeds != NULL) {
        cn->fresh = true; /* joins in start; stores nothing until then */
        atomic_store(&cn->cluster_id, cluster_id);
        return RK_OK;
    }
    if (cluster_id == 0) {
        while (cluster_id == 0)
            cluster_id = random_u64(NULL);
        err = store_cluster_id(cn->st, cluster_id);
        if (err != RK_OK)
            return err;
    }
    RK_INFO(MOD, "started cluster %016" PRIx64 " as its first member", cluster_id);
    atomic_store(&cn->cluster_id, cluster_id);
    cn->dirty = true;
    return RK_OK;
}

rk_err cluster_node_open(const cluster_node_options *opts, cluster_node **out)
{
    if (opts == NULL || opts->st == NULL || opts->client == NULL || out == NULL ||
        !valid_params(opts->n, opts->partitions))
        return RK_EINVAL;
    cluster_entry self;
    rk_err err = cluster_entry_init(&self, opts->self_id, opts->name, opts->http_addr,
                                    opts->rpc_addr, CLUSTER_MEMBER);
    if (err != RK_OK)
        return err;
    cluster_config config = opts->config;
    if (config.suspect_after_ms == 0 && config.down_after_ms == 0)
        cluster_config_default(&config);
    if (config.suspect_after_ms == 0 || config.down_after_ms < config.suspect_after_ms)
        return RK_EINVAL;
    if (sodium_init() < 0)
        return RK_EIO;
    cluster_node *cn = node_alloc(opts);
    if (cn == NULL)
        return RK_ENOMEM;
    err = load(cn, &self, &config);
    if (err == RK_OK) {
        cn->view_stale = true;
        err = housekeeping(cn); /* the first view, and the table if there is a cluster */
    }
    if (err != RK_OK) {
        node_free(cn);
        return err;
    }
    *out = cn;
    return RK_OK;
}

rk_err cluster_node_start(cluster_node *cn)
{
    if (cn->thread_started)
        return RK_EINVAL;
    if (cn->fresh) {
        rk_err err = join(cn);
        if (err != RK_OK)
            return err;
        cn->fresh = false;
    }
    if (pthread_create(&cn->thread, NULL, gossip_main, cn) != 0)
        return RK_ENOMEM;
    cn->thread_started = true;
    return RK_OK;
}

void cluster_node_close(cluster_node *cn)
{
    if (cn == NULL)
        return;
    if (cn->thread_started) {
        pthread_mutex_lock(&cn->lock);
        cn->stopping = true;
        pthread_cond_signal(&cn->wake);
        pthread_mutex_unlock(&cn->lock);
        pthread_join(cn->thread, NULL);
    }
    /* Reply callbacks touch cn until call_done: wait for each (a deadline
     * bounds them, about one interval). */
    pthread_mutex_lock(&cn->lock);
    while (cn->in_flight > 0)
        pthread_cond_wait(&cn->drained, &cn->lock);
    cn->dirty = true; /* keep the last heartbeat too */
    pthread_mutex_unlock(&cn->lock);
    pthread_mutex_lock(&cn->house_lock);
    log_events(cn);
    persist(cn); /* logged on failure */
    pthread_mutex_unlock(&cn->house_lock);
    node_free(cn);
}

/* ---- what other modules read ------------------------------------------------------- */

uint64_t cluster_node_cluster_id(const cluster_node *cn)
{
    return atomic_load(&cn->cluster_id);
}

rk_err cluster_node_set_status(cluster_node *cn, uint64_t id, cluster_status status)
{
    pthread_mutex_lock(&cn->lock);
    const cluster_member *m = cluster_find(cn->table, id);
    cluster_status old = m != NULL ? m->entry.status : status;
    rk_err err = cluster_set_status(cn->table, id, status, NULL);
    if (err == RK_OK && old != status) {
        /* cluster_set_status reports no event: make the one a merge would. */
        cluster_event ev = {
            .kind = CLUSTER_EVENT_STATUS, .node_id = id, .old_value = old, .new_value = status};
        on_event(cn, &ev);
    }
    pthread_mutex_unlock(&cn->lock);
    if (err != RK_OK || old == status)
        return err;
    /* Here rather than on the gossip thread: the change is stored and
     * visible before this returns; the next round carries it on. A failed
     * write was logged and is retried after the next round. */
    housekeeping(cn);
    return RK_OK;
}

rk_err cluster_node_table(cluster_node *cn, cluster_table **out)
{
    pthread_mutex_lock(&cn->lock);
    rk_err err = cluster_table_clone(cn->table, out);
    pthread_mutex_unlock(&cn->lock);
    return err;
}

cluster_view *cluster_node_view(cluster_node *cn)
{
    pthread_mutex_lock(&cn->view_lock);
    view_box *box = cn->view;
    atomic_fetch_add_explicit(&box->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&cn->view_lock);
    return &box->view;
}
