/* service.c - the sync service's life and its thread: rounds of handoff
 * passes, status moves (JOINING -> MEMBER, LEAVING -> REMOVED),
 * anti-entropy exchanges and tombstone purges, in that order, every
 * interval_ms or when woken; and between them a hint delivery pass every
 * hint_interval_ms. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sync_internal.h"

/* How long a node that finished leaving keeps gossiping before on_left,
 * so that its REMOVED status has reached the others (a 5-node cluster
 * agrees within ~1.5 s, docs/membership.md). */
#define LEAVE_GOSSIP_MS 2000u
/* How often the thread looks at the view between rounds. */
#define WATCH_MS 100u
/* Most peers the service tracks for anti-entropy. */
#define PEERS_MAX 256u

void sync_config_default(sync_config *cfg)
{
    *cfg = (sync_config){
        .interval_ms = SYNC_DEFAULT_INTERVAL_MS,
        .anti_entropy_interval_ms = SYNC_DEFAULT_ANTI_ENTROPY_INTERVAL_MS,
        .rate_bytes_per_sec = SYNC_DEFAULT_RATE_BYTES,
        .tombstone_grace_ms = SYNC_DEFAULT_TOMBSTONE_GRACE_MS,
        .deliver_hints = true,
        .hint_interval_ms = SYNC_DEFAULT_HINT_INTERVAL_MS,
    };
}

/* ---- the loop's state, sync thread only ---------------------------------------- */

typedef struct peer_state {
    uint64_t id;
    cluster_liveness liveness;
    bool due; /* an exchange is owed: it came back, the ring changed, repair */
} peer_state;

typedef struct loop_state {
    peer_state peers[PEERS_MAX];
    size_t peer_count;
    uint64_t next_periodic_ms, next_purge_ms;
    uint64_t next_round_ms, next_hints_ms;
    uint64_t ring_seen; /* sync_rings_id of the last round */
    bool first;
} loop_state;

static peer_state *peer_of(loop_state *ls, uint64_t id)
{
    for (size_t i = 0; i < ls->peer_count; i++)
        if (ls->peers[i].id == id)
            return &ls->peers[i];
    if (ls->peer_count == PEERS_MAX)
        return NULL;
    peer_state *p = &ls->peers[ls->peer_count++];
    *p = (peer_state){.id = id, .liveness = CLUSTER_ALIVE};
    return p;
}

/* Marks the exchanges owed this round: every peer after a restart (this
 * node may have missed writes) or a repair request; a peer that came back;
 * the periodic round and a ring change, to peers with a greater id (one
 * side of each pair starts it). */
static void plan_exchanges(sync_service *s, const sync_rings *r, loop_state *ls, bool repair)
{
    /* A joiner gets its ranges by handoff; it compares trees once it is a
     * member (a ring change, so the round after it). */
    const cluster_view_member *me = cluster_view_find(r->view, s->self);
    if (me != NULL && me->status == CLUSTER_JOINING)
        return;
    uint64_t now = rk_monotonic_ms();
    bool periodic = s->cfg.anti_entropy_interval_ms > 0 && now >= ls->next_periodic_ms;
    if (periodic)
        ls->next_periodic_ms = now + s->cfg.anti_entropy_interval_ms;
    uint64_t rings = sync_rings_id(r);
    bool ring_changed = rings != ls->ring_seen;
    ls->ring_seen = rings;
    for (size_t i = 0; i < r->view->count; i++) {
        const cluster_view_member *m = &r->view->members[i];
        if (m->id == s->self || !cluster_status_in_ring(m->status))
            continue;
        peer_state *p = peer_of(ls, m->id);
        if (p == NULL)
            continue;
        bool back = p->liveness == CLUSTER_DOWN && m->liveness != CLUSTER_DOWN;
        p->liveness = m->liveness;
        bool automatic = !s->cfg.anti_entropy_off &&
                         (ls->first || back || ((periodic || ring_changed) && s->self < m->id));
        if (repair || automatic)
            p->due = true;
    }
    ls->first = false;
}

static void run_exchanges(sync_service *s, const sync_rings *r, loop_state *ls)
{
    for (size_t i = 0; i < ls->peer_count && !sync_stopping(s); i++) {
        peer_state *p = &ls->peers[i];
        const cluster_view_member *m = cluster_view_find(r->view, p->id);
        if (!p->due)
            continue;
        if (m == NULL || !cluster_status_in_ring(m->status)) {
            p->due = false;
            continue;
        }
        if (m->liveness == CLUSTER_DOWN)
            continue; /* owed until it is back */
        rk_err err = sync_exchange(s, r, p->id);
        if (err == RK_OK)
            p->due = false;
        else if (err != RK_ECLOSED)
            RK_INFO(MOD, "anti-entropy with %s: %s; trying again next round", m->name,
                    rk_strerror(err));
    }
}

/* ---- status moves ---------------------------------------------------------------- */

/* A joiner is MEMBER once every other ring member has nothing left to send
 * under the same rings (Sync.Status). */
static void maybe_join(sync_service *s, const sync_rings *r, uint64_t pending)
{
    if (pending > 0)
        return;
    /* Ask every other ring member. With one ring although this node joins
     * (every ring member is joining, so nobody holds ranges yet) there is
     * nobody to wait for. */
    for (size_t i = 0; r->next_version != 0 && i < r->view->count; i++) {
        const cluster_view_member *m = &r->view->members[i];
        if (m->id == s->self || !cluster_status_in_ring(m->status))
            continue;
        Ringkv__SyncRings rings;
        sync_rings_to_pb(s, r, &rings);
        Ringkv__SyncStatusRequest req = RINGKV__SYNC_STATUS_REQUEST__INIT;
        req.rings = &rings;
        ProtobufCMessage *reply = NULL;
        rk_err err = sync_call(s, r, m->id, "Status", &req.base, &reply, NULL);
        uint64_t left = err == RK_OK ? ((Ringkv__SyncStatusReply *)reply)->ranges_pending : 0;
        rpc_reply_free(reply);
        if (err != RK_OK || left > 0)
            return;
    }
    if (cluster_node_set_status(s->cn, s->self, CLUSTER_MEMBER) == RK_OK)
        RK_INFO(MOD, "every range this node owns has arrived: now a member");
}

/* A leaver is REMOVED once it has handed everything off. */
static bool maybe_leave(sync_service *s, uint64_t pending)
{
    if (pending > 0)
        return false;
    if (cluster_node_set_status(s->cn, s->self, CLUSTER_REMOVED) != RK_OK)
        return false;
    RK_INFO(MOD, "every range handed off: this node has left the ring; stopping in %u ms",
            LEAVE_GOSSIP_MS);
    pthread_mutex_lock(&s->mu);
    uint64_t until = rk_monotonic_ms() + LEAVE_GOSSIP_MS;
    while (!s->stopping && rk_monotonic_ms() < until)
        rk_cond_wait_until(&s->cv, &s->mu, until);
    pthread_mutex_unlock(&s->mu);
    if (s->cfg.on_left != NULL)
        s->cfg.on_left(s->cfg.on_left_arg);
    return true;
}

/* ---- the thread -------------------------------------------------------------------- */

/* One round; returns false once this node has left. */
static bool round_once(sync_service *s, loop_state *ls)
{
    sync_rings r;
    if (sync_rings_take(s, &r) != RK_OK)
        return true;
    uint64_t pending = 0;
    rk_err err = sync_handoff_pass(s, &r, &pending);
    if (err == RK_OK) {
        pthread_mutex_lock(&s->mu);
        s->pass_read = r.read_version;
        s->pass_next = r.next_version;
        s->pass_pending = pending;
        s->pass_valid = true;
        pthread_mutex_unlock(&s->mu);
    }
    const cluster_view_member *me = cluster_view_find(r.view, s->self);
    cluster_status status = me != NULL ? me->status : CLUSTER_REMOVED;
    bool go_on = true;
    if (err == RK_OK && status == CLUSTER_JOINING)
        maybe_join(s, &r, pending);
    else if (err == RK_OK && status == CLUSTER_LEAVING)
        go_on = !maybe_leave(s, pending);
    if (go_on && status != CLUSTER_REMOVED) {
        pthread_mutex_lock(&s->mu);
        bool repair = s->repair_requested;
        s->repair_requested = false;
        pthread_mutex_unlock(&s->mu);
        plan_exchanges(s, &r, ls, repair);
        run_exchanges(s, &r, ls);
        uint64_t purge_every =
            s->cfg.anti_entropy_interval_ms ? s->cfg.anti_entropy_interval_ms : 60000u;
        if (rk_monotonic_ms() >= ls->next_purge_ms && !sync_stopping(s)) {
            ls->next_purge_ms = rk_monotonic_ms() + purge_every;
            err = sync_purge_pass(s, &r);
            if (err != RK_OK && err != RK_ECLOSED)
                RK_WARN(MOD, "tombstone purge: %s", rk_strerror(err));
        }
    }
    sync_rings_release(&r);
    return go_on;
}

/* The rings the view holds now, as one number (0 while it has none). */
static uint64_t rings_now(sync_service *s, bool *changing)
{
    sync_rings r;
    *changing = false;
    if (sync_rings_take(s, &r) != RK_OK)
        return 0;
    uint64_t id = sync_rings_id(&r);
    *changing = r.next_version != 0;
    sync_rings_release(&r);
    return id;
}

/* One hint delivery pass, when one is due. */
static void maybe_deliver_hints(sync_service *s, loop_state *ls)
{
    if (!s->cfg.deliver_hints || rk_monotonic_ms() < ls->next_hints_ms)
        return;
    sync_rings r;
    if (sync_rings_take(s, &r) == RK_OK) {
        rk_err err = sync_hint_pass(s, &r);
        if (err != RK_OK && err != RK_ECLOSED)
            RK_WARN("handoff", "hint delivery: %s", rk_strerror(err));
        sync_rings_release(&r);
    }
    ls->next_hints_ms = rk_monotonic_ms() + s->cfg.hint_interval_ms;
}

/* Sleeps until the next round is due (next_round_ms), or sooner when
 * woken, when the rings change (a join or leave should not wait a whole
 * interval to start), or until the next hint pass is due. Returns whether
 * a round is due; false means only the hint pass is. */
static bool wait_for_work(sync_service *s, const loop_state *ls)
{
    bool changing = false;
    uint64_t rings = rings_now(s, &changing);
    uint64_t until = ls->next_round_ms;
    if (s->cfg.deliver_hints && ls->next_hints_ms < until)
        until = ls->next_hints_ms;
    bool round = false;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping && !s->repair_requested && rk_monotonic_ms() < until) {
        uint64_t slice = rk_monotonic_ms() + WATCH_MS;
        rk_cond_wait_until(&s->cv, &s->mu, slice < until ? slice : until);
        pthread_mutex_unlock(&s->mu);
        bool now_changing = false;
        bool changed = rings_now(s, &now_changing) != rings;
        pthread_mutex_lock(&s->mu);
        if (changed) {
            round = true;
            break;
        }
    }
    round = round || s->stopping || s->repair_requested;
    pthread_mutex_unlock(&s->mu);
    return round || rk_monotonic_ms() >= ls->next_round_ms;
}

static void *sync_main(void *arg)
{
    sync_service *s = arg;
    loop_state *ls = calloc(1, sizeof *ls);
    if (ls == NULL) {
        RK_ERROR(MOD, "out of memory: no handoff, anti-entropy or hints on this node");
        return NULL;
    }
    ls->first = true;
    uint64_t now = rk_monotonic_ms();
    ls->next_periodic_ms = now + s->cfg.anti_entropy_interval_ms;
    ls->next_purge_ms = now;
    ls->next_hints_ms = now + s->cfg.hint_interval_ms;
    bool round_due = true;
    while (!sync_stopping(s)) {
        if (round_due) {
            if (!round_once(s, ls))
                break;
            /* While a member joins or leaves, a round every WATCH_MS: a
             * joiner polls the others until they are done. */
            bool changing = false;
            rings_now(s, &changing);
            ls->next_round_ms = rk_monotonic_ms() + (changing ? WATCH_MS : s->cfg.interval_ms);
        }
        maybe_deliver_hints(s, ls);
        round_due = wait_for_work(s, ls);
    }
    free(ls);
    return NULL;
}

static void *responder_main(void *arg)
{
    sync_service *s = arg;
    pthread_mutex_lock(&s->job_mu);
    for (;;) {
        while (s->jobs == NULL && !s->jobs_stopping)
            pthread_cond_wait(&s->job_cv, &s->job_mu);
        sync_job *job = s->jobs;
        if (job == NULL)
            break;
        s->jobs = job->next;
        if (s->jobs == NULL)
            s->jobs_tail = NULL;
        pthread_mutex_unlock(&s->job_mu);
        sync_answer(s, job);
        free(job);
        pthread_mutex_lock(&s->job_mu);
    }
    pthread_mutex_unlock(&s->job_mu);
    return NULL;
}

/* ---- life ------------------------------------------------------------------------------ */

rk_err sync_open(replica *rp, store *st, cluster_node *cn, rpc_client *client,
                 const sync_config *cfg, sync_service **out)
{
    if (rp == NULL || st == NULL || cn == NULL || client == NULL || cfg == NULL || out == NULL ||
        cfg->interval_ms == 0 || (cfg->deliver_hints && cfg->hint_interval_ms == 0))
        return RK_EINVAL;
    sync_service *s = calloc(1, sizeof *s);
    if (s == NULL)
        return RK_ENOMEM;
    *s = (sync_service){.rp = rp, .st = st, .cn = cn, .client = client, .cfg = *cfg};
    s->self = replica_node_id(rp);
    pthread_mutex_init(&s->mu, NULL);
    rk_cond_init_monotonic(&s->cv);
    pthread_mutex_init(&s->job_mu, NULL);
    pthread_cond_init(&s->job_cv, NULL);
    pthread_mutex_init(&s->rate_mu, NULL);
    s->rate_last_ms = rk_monotonic_ms();
    *out = s;
    return RK_OK;
}

rk_err sync_start(sync_service *s)
{
    if (pthread_create(&s->responder, NULL, responder_main, s) != 0)
        return RK_ENOMEM;
    s->responder_running = true;
    if (pthread_create(&s->thread, NULL, sync_main, s) != 0)
        return RK_ENOMEM;
    s->thread_running = true;
    return RK_OK;
}

void sync_stop(sync_service *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    sync_abandon_calls(s);
    pthread_mutex_unlock(&s->mu);
    if (s->thread_running)
        pthread_join(s->thread, NULL);
    s->thread_running = false;
}

void sync_close(sync_service *s)
{
    if (s == NULL)
        return;
    sync_stop(s);
    pthread_mutex_lock(&s->job_mu);
    s->jobs_stopping = true;
    pthread_cond_broadcast(&s->job_cv);
    pthread_mutex_unlock(&s->job_mu);
    if (s->responder_running)
        pthread_join(s->responder, NULL);
    for (size_t i = 0; i < SYNC_TREE_CACHE; i++)
        merkle_free(s->trees[i].tree);
    free(s->done);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->job_mu);
    pthread_cond_destroy(&s->job_cv);
    pthread_mutex_destroy(&s->rate_mu);
    free(s);
}

static void wake(sync_service *s, bool repair)
{
    pthread_mutex_lock(&s->mu);
    if (repair)
        s->repair_requested = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

rk_err sync_leave(sync_service *s)
{
    cluster_view *v = cluster_node_view(s->cn);
    const cluster_view_member *me = cluster_view_find(v, s->self);
    rk_err err = RK_OK;
    if (me == NULL || me->status == CLUSTER_JOINING || me->status == CLUSTER_REMOVED)
        err = RK_EBUSY;
    else if (me->status == CLUSTER_MEMBER && (v->ring == NULL || ring_member_count(v->ring) < 2))
        err = RK_EBUSY;
    cluster_view_unref(v);
    if (err == RK_OK)
        err = cluster_node_set_status(s->cn, s->self, CLUSTER_LEAVING);
    if (err != RK_OK)
        return err;
    pthread_mutex_lock(&s->mu);
    bool first = !s->leaving;
    s->leaving = true;
    pthread_mutex_unlock(&s->mu);
    if (first)
        RK_INFO(MOD, "leaving the cluster: handing every range off");
    wake(s, false);
    return RK_OK;
}

rk_err sync_remove(sync_service *s, uint64_t node_id)
{
    if (node_id == s->self)
        return RK_EINVAL;
    cluster_view *v = cluster_node_view(s->cn);
    const cluster_view_member *m = cluster_view_find(v, node_id);
    rk_err err = RK_OK;
    if (m == NULL)
        err = RK_ENOTFOUND;
    else if (m->status != CLUSTER_REMOVED && m->liveness != CLUSTER_DOWN)
        err = RK_EBUSY;
    bool already = m != NULL && m->status == CLUSTER_REMOVED;
    char name[CLUSTER_NAME_MAX + 1] = "";
    if (m != NULL)
        memcpy(name, m->name, sizeof name);
    cluster_view_unref(v);
    if (err != RK_OK || already)
        return err;
    err = cluster_node_set_status(s->cn, node_id, CLUSTER_REMOVED);
    if (err == RK_OK) {
        RK_INFO(MOD, "removed %s from the ring: re-replicating its ranges", name);
        wake(s, true);
    }
    return err;
}

void sync_repair_now(sync_service *s)
{
    wake(s, true);
}

void sync_get_stats(sync_service *s, sync_stats *out)
{
    *out = (sync_stats){
        .ranges_pending = atomic_load(&s->ranges_pending),
        .handoff_keys_sent = atomic_load(&s->handoff_keys_sent),
        .handoff_bytes_sent = atomic_load(&s->handoff_bytes_sent),
        .handoff_keys_dropped = atomic_load(&s->handoff_keys_dropped),
        .keys_received = atomic_load(&s->keys_received),
        .bytes_received = atomic_load(&s->bytes_received),
        .ae_exchanges = atomic_load(&s->ae_exchanges),
        .ae_keys_compared = atomic_load(&s->ae_keys_compared),
        .ae_keys_repaired = atomic_load(&s->ae_keys_repaired),
        .ae_bytes_sent = atomic_load(&s->ae_bytes_sent),
        .tombstones_purged = atomic_load(&s->tombstones_purged),
        .hints_delivered = atomic_load(&s->hints_delivered),
        .hint_bytes_sent = atomic_load(&s->hint_bytes_sent),
    };
    pthread_mutex_lock(&s->mu);
    out->leaving = s->leaving;
    pthread_mutex_unlock(&s->mu);
}
