/* coord.c - the coordinator: a client's get or put sent to the key's
 * replicas, answered as soon as R or W of them replied.
 *
 * A read asks R replicas (this node's own copy first), and the others only
 * when one fails or has not answered within the speculative delay, drawn
 * from recent replica latencies (latency_internal.h); a configurable share of reads
 * asks every replica so read repair reaches them all. A write is applied
 * by one replica and sent to every target at once.
 *
 * The quorum rules live in quorum.c (pure, unit-tested); this file does the
 * talking. A request is a ref-counted coord_req: the HTTP worker that waits
 * for the verdict holds one reference and each RPC in flight holds one, so
 * replies that arrive after the client got its answer still land safely.
 * Whoever sees the last reply finishes the request: read repair for a get,
 * hints for a put's replicas that did not ack.
 *
 * Every replica exchange that succeeds also leaves its two one-way delays
 * (W and A for a write, R and S for a read) in k->pbs, for GET /pbs
 * (docs/pbs.md): note_remote_delay and note_local_delay.
 *
 * Locking: req->mu guards the core and the counters; it is never held
 * across an RPC call or a RocksDB write. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "kv_internal.h"
#include "quorum_internal.h"
#include "ringkv.pb-c.h"

typedef struct coord_req coord_req;

/* One RPC in flight: which target it went to. */
typedef struct coord_call {
    coord_req *req;
    size_t index; /* into req->targets */
} coord_call;

struct coord_req {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int refs;
    kv *k;
    bool is_put;
    bool finished;      /* repairs or hints have been taken care of */
    size_t outstanding; /* replies still to come (local ones included) */
    get_core gc;
    put_core pc;
    quorum_plan_result plan; /* targets and intended replicas */
    coord_call calls[QUORUM_MAX_TARGETS];
    pthread_t waiter;    /* the client's thread, which allocated the request */
    uint64_t reached_ns; /* when another thread's reply met the quorum; 0: not (yet) */
    uint64_t sent_ns[QUORUM_MAX_TARGETS]; /* when each call left */
    /* The key, addressed once by kv.c; its names point into key.dbkey
     * (position | table | 0x00 | key), so the table is a C string there. */
    replica_key key;
    rk_buf encoded; /* a put: the object sent to every target */
    uint64_t deadline_ms;
    cluster_view *view;
};

void kv_result_free(kv_result *res)
{
    object_free(&res->obj);
    memset(res, 0, sizeof *res);
}

/* ---- request life ---------------------------------------------------------- */

/* The request outlives the caller's key (late replies, read repair), so it
 * keeps its own copy, with the names pointing into it. */
static void req_copy_key(coord_req *req, const replica_key *key)
{
    replica_key *mine = &req->key;
    mine->position = key->position;
    mine->dbkey_len = key->dbkey_len;
    memcpy(mine->dbkey, key->dbkey, key->dbkey_len);
    mine->dbkey[key->dbkey_len] = '\0';
    mine->table = mine->dbkey + 8;
    mine->table_len = key->table_len;
    mine->key = mine->table + key->table_len + 1;
    mine->key_len = key->key_len;
}

static coord_req *req_alloc(kv *k, const replica_key *key, cluster_view *view, bool is_put)
{
    coord_req *req = calloc(1, sizeof *req);
    if (req == NULL)
        return NULL;
    rk_cond_init_monotonic(&req->cv);
    pthread_mutex_init(&req->mu, NULL);
    atomic_init(&req->refs, 1);
    req->k = k;
    req->is_put = is_put;
    req->view = view;
    req->waiter = pthread_self();
    req_copy_key(req, key);
    return req;
}

static void req_unref(coord_req *req)
{
    if (atomic_fetch_sub(&req->refs, 1) != 1)
        return;
    if (!req->is_put)
        kv_get_core_fini(&req->gc);
    rk_buf_free(&req->encoded);
    cluster_view_unref(req->view);
    pthread_mutex_destroy(&req->mu);
    pthread_cond_destroy(&req->cv);
    free(req);
}

static quorum_verdict req_verdict(const coord_req *req)
{
    return req->is_put ? kv_put_core_verdict(&req->pc) : kv_get_core_verdict(&req->gc);
}

static bool req_done(const coord_req *req)
{
    return req->is_put ? kv_put_core_done(&req->pc) : kv_get_core_done(&req->gc);
}

/* Whether the waiter has its answer: a quorum reached, or one that failed
 * once every target answered. A failed quorum still waits for the targets
 * in flight (they answer fast, or the deadline ends it), so the 503 counts
 * every replica that did take the write: a quorum that cannot be met (W=3
 * with a replica known down) fails at once in the core, before the alive
 * replicas have acked. */
static bool req_answered(const coord_req *req)
{
    quorum_verdict v = req_verdict(req);
    return v == QUORUM_REACHED || (v == QUORUM_FAILED && req_done(req));
}

/* Waits (req->mu held) until req_answered or the deadline passed; at the
 * deadline the core is told the time so a pending verdict fails. */
static void req_wait(coord_req *req, uint64_t deadline_ms)
{
    while (!req_answered(req)) {
        if (rk_monotonic_ms() >= deadline_ms ||
            rk_cond_wait_until(&req->cv, &req->mu, deadline_ms) == ETIMEDOUT)
            break;
    }
    if (req_verdict(req) != QUORUM_PENDING)
        return;
    if (req->is_put)
        kv_put_core_tick(&req->pc, deadline_ms);
    else
        kv_get_core_tick(&req->gc, deadline_ms);
}

/* True for the one caller that sees the last reply in (req->mu held). */
static bool req_take_finish(coord_req *req)
{
    if (req->outstanding > 0 || req->finished || !req_done(req))
        return false;
    req->finished = true;
    return true;
}

static const char *peer_addr(const coord_req *req, uint64_t node)
{
    const cluster_view_member *m = cluster_view_find(req->view, node);
    return m != NULL ? m->rpc_addr : NULL;
}

/* ---- PBS samples ------------------------------------------------------------ */

/* One exchange with a remote replica that just answered: send_ns when
 * this call left, and the replica's stamp from the reply (its clock
 * reading and the clock's id). Each message's delays count from its own
 * send: that a write reaches the replicas other than its applier only
 * after the applier is the model's business (pbs_predict), not the
 * samples'. */
static void note_remote_delay(kv *k, uint64_t node, pbs_leg leg, uint64_t send_ns,
                              uint64_t remote_ns, uint64_t remote_clock)
{
    uint32_t out_us, back_us;
    bool same_clock = remote_clock != 0 && remote_clock == k->clock_id;
    bool split =
        pbs_split_round(send_ns, send_ns, remote_ns, rk_mono_ns(), same_clock, &out_us, &back_us);
    pbs_samples_add(k->pbs, node, leg, out_us, back_us, split);
}

/* This node's own replica, which took from call_ns until now: no network,
 * so a write is applied at its end (W = the apply, A = 0) and a read
 * begins at once (R = 0, S = the read). */
static void note_local_delay(kv *k, pbs_leg leg, uint64_t call_ns)
{
    uint64_t now = rk_mono_ns();
    uint32_t out_us, back_us;
    pbs_split_round(call_ns, call_ns, leg == PBS_WRITE ? now : call_ns, now, true, &out_us,
                    &back_us);
    pbs_samples_add(k->pbs, k->node_id, leg, out_us, back_us, false);
}

/* ---- planning ------------------------------------------------------------------- */

/* The replicas and targets of the key in the current view: while members
 * join or leave (view->next_ring), the union of the key's replicas in both
 * rings (kv_plan_in_view). */
static rk_err plan_targets(coord_req *req, bool sloppy)
{
    return kv_plan_in_view(req->view, req->key.position, sloppy, &req->plan, NULL, NULL);
}

/* The answers a quorum of q needs from this request's targets. */
static unsigned needed_of(const coord_req *req, unsigned q)
{
    return kv_quorum_needed(q, req->plan.old_count, req->plan.pending);
}

/* Fills res->under_replicated when the ring has fewer members than N. */
static void note_short_ring(const coord_req *req, kv_result *res)
{
    const ring_t *ring = req->view->ring;
    size_t replicas = ring ? ring_replica_count(ring) : 0;
    res->under_replicated = replicas < req->k->cfg.n ? (unsigned)replicas : 0;
}

/* ---- get ---------------------------------------------------------------------- */

static void get_feed(coord_req *req, uint64_t node, quorum_reply reply, const rk_object *obj)
{
    if (reply == QUORUM_REPLY_OK && kv_get_core_reply(&req->gc, node, reply, obj, NULL) == RK_OK)
        return;
    /* out of memory merging: count the replica as failed rather than lose
     * track of it */
    kv_get_core_reply(&req->gc, node, reply == QUORUM_REPLY_OK ? QUORUM_REPLY_ERROR : reply, NULL,
                      NULL);
}

static void read_repair(coord_req *req);
static void ask(coord_req *req, size_t from, size_t count);

/* After a reply: count it and wake the waiter, noting when the reply
 * that met the quorum came in (note_wake). */
static void req_replied(coord_req *req)
{
    req->outstanding--;
    if (req->reached_ns == 0 && req_answered(req) && !pthread_equal(pthread_self(), req->waiter))
        req->reached_ns = rk_mono_ns();
    pthread_cond_signal(&req->cv);
}

/* The waiter (req->mu held) has woken with its quorum met by another
 * thread's reply: how long after that reply. Answers that came in
 * meanwhile are part of a read's reply; a write's client hears of it only
 * now (docs/pbs.md). A quorum met in the waiter's own thread (its own
 * copy, the applier's answer) is no sample. */
static void note_wake(coord_req *req, pbs_leg leg)
{
    uint64_t now = rk_mono_ns(), at = req->reached_ns;
    if (req_verdict(req) != QUORUM_REACHED || at == 0)
        return;
    uint64_t us = now > at ? (now - at) / 1000u : 0;
    pbs_samples_add_wake(req->k->pbs, leg, us > UINT32_MAX ? UINT32_MAX : (uint32_t)us);
}

/* Feeds one target's answer, asks the targets the core wants next (one
 * more for an error), and finishes the read - read repair - if this was
 * the last answer. */
static void get_answered(coord_req *req, uint64_t node, quorum_reply kind, const rk_object *obj)
{
    pthread_mutex_lock(&req->mu);
    get_feed(req, node, kind, obj);
    req_replied(req);
    size_t from, more = kv_get_core_to_ask(&req->gc, &from);
    req->outstanding += more;
    bool finish = req_take_finish(req);
    pthread_mutex_unlock(&req->mu);
    if (more > 0)
        ask(req, from, more);
    if (finish)
        read_repair(req);
}

static void get_reply_cb(rk_err err, ProtobufCMessage *reply, void *arg)
{
    coord_call *call = arg;
    coord_req *req = call->req;
    uint64_t node = req->plan.targets[call->index].node;
    quorum_reply kind = QUORUM_REPLY_ERROR;
    rk_object obj = {0};
    if (err == RK_OK) {
        uint64_t sent = req->sent_ns[call->index];
        uint64_t took = (rk_mono_ns() - sent) / 1000u;
        kv_latency_window_add(&req->k->read_latency,
                              took > UINT32_MAX ? UINT32_MAX : (uint32_t)took);
        const Ringkv__ReplicaGetReply *r = (const Ringkv__ReplicaGetReply *)reply;
        note_remote_delay(req->k, node, PBS_READ, sent, r->replica_mono_ns, r->replica_clock);
        if (!r->found)
            kind = QUORUM_REPLY_NOTFOUND;
        else if (object_decode(r->object.data, r->object.len, &obj) == RK_OK)
            kind = QUORUM_REPLY_OK;
    }
    rpc_reply_free(reply);
    get_answered(req, node, kind, &obj);
    object_free(&obj);
    req_unref(req);
}

/* Reads this node's copy for target i and feeds it (req->mu not held). */
static void get_local(coord_req *req, size_t i)
{
    kv *k = req->k;
    rk_buf val = {0};
    rk_object obj = {0};
    quorum_reply kind = QUORUM_REPLY_ERROR;
    uint64_t start = rk_mono_ns();
    rk_err err = replica_read(k->rp, req->key.dbkey, req->key.dbkey_len,
                              req->plan.targets[i].intended, &val);
    if (err == RK_OK || err == RK_ENOTFOUND)
        note_local_delay(k, PBS_READ, start);
    if (err == RK_ENOTFOUND)
        kind = QUORUM_REPLY_NOTFOUND;
    else if (err == RK_OK && object_decode((const uint8_t *)val.data, val.len, &obj) == RK_OK)
        kind = QUORUM_REPLY_OK;
    rk_buf_free(&val);
    get_answered(req, k->node_id, kind, &obj);
    object_free(&obj);
}

static void get_remote(coord_req *req, size_t i)
{
    const quorum_target *t = &req->plan.targets[i];
    Ringkv__ReplicaGetRequest msg = RINGKV__REPLICA_GET_REQUEST__INIT;
    msg.table = (char *)req->key.table;
    msg.key.data = (uint8_t *)req->key.key;
    msg.key.len = req->key.key_len;
    msg.intended = t->intended;
    const char *addr = peer_addr(req, t->node);
    req->calls[i] = (coord_call){req, i};
    req->sent_ns[i] = rk_mono_ns();
    atomic_fetch_add(&req->refs, 1);
    rk_err err = addr == NULL
                     ? RK_EINVAL
                     : rpc_call_async(req->k->client, addr, &ringkv__kv__descriptor, "Get",
                                      &msg.base, req->deadline_ms, get_reply_cb, &req->calls[i]);
    if (err == RK_OK)
        return;
    atomic_fetch_sub(&req->refs, 1);
    get_answered(req, t->node, QUORUM_REPLY_ERROR, NULL);
}

/* Asks targets [from, from + count), already counted as outstanding: the
 * remote ones first, so this node's own read overlaps their round trips. */
static void ask(coord_req *req, size_t from, size_t count)
{
    uint64_t self = req->k->node_id;
    for (size_t i = from; i < from + count; i++)
        if (req->plan.targets[i].node != self)
            get_remote(req, i);
    for (size_t i = from; i < from + count; i++)
        if (req->plan.targets[i].node == self)
            get_local(req, i);
}

/* Sends the merged object to one stale replica. */
static void repair_done_cb(rk_err err, ProtobufCMessage *reply, void *arg)
{
    (void)err;
    rpc_reply_free(reply);
    req_unref(arg);
}

static void send_object(coord_req *req, const quorum_target *t, uint64_t deadline_ms,
                        rpc_reply_cb done_cb, void *arg)
{
    Ringkv__ReplicaPutRequest msg = RINGKV__REPLICA_PUT_REQUEST__INIT;
    msg.table = (char *)req->key.table;
    msg.key.data = (uint8_t *)req->key.key;
    msg.key.len = req->key.key_len;
    msg.object.data = (uint8_t *)req->encoded.data;
    msg.object.len = req->encoded.len;
    msg.intended = t->intended;
    const char *addr = peer_addr(req, t->node);
    rk_err err = addr == NULL ? RK_EINVAL
                              : rpc_call_async(req->k->client, addr, &ringkv__kv__descriptor, "Put",
                                               &msg.base, deadline_ms, done_cb, arg);
    if (err != RK_OK)
        done_cb(err, NULL, arg);
}

/* Every target has answered (or the deadline passed): send the merged
 * object to each replica that answered with less (kv_get_core_repairs). */
static void read_repair(coord_req *req)
{
    uint64_t stale[QUORUM_MAX_TARGETS];
    size_t count = 0;
    pthread_mutex_lock(&req->mu);
    const rk_object *merged = kv_get_core_object(&req->gc);
    rk_err err = merged == NULL ? RK_ENOTFOUND : kv_get_core_repairs(&req->gc, stale, &count);
    if (err == RK_OK && count > 0)
        err = object_encode(merged, &req->encoded);
    rk_object copy = {0};
    if (err == RK_OK && count > 0)
        err = object_copy(&copy, merged);
    pthread_mutex_unlock(&req->mu);
    if (err != RK_OK || count == 0) {
        object_free(&copy);
        return;
    }
    kv *k = req->k;
    uint64_t deadline = rk_deadline_after_ms(k->cfg.timeout_ms);
    for (size_t i = 0; i < count; i++) {
        const quorum_target *t = NULL;
        for (size_t j = 0; j < req->plan.target_count; j++)
            if (req->plan.targets[j].node == stale[i])
                t = &req->plan.targets[j];
        if (t == NULL)
            continue;
        atomic_fetch_add_explicit(&k->read_repairs, 1, memory_order_relaxed);
        if (t->node == k->node_id) {
            replica_merge(k->rp, req->key.dbkey, req->key.dbkey_len, t->intended, &copy, NULL);
            continue;
        }
        atomic_fetch_add(&req->refs, 1);
        send_object(req, t, deadline, repair_done_cb, req);
    }
    object_free(&copy);
}

/* Copies who answered into res for the X-Ringkv-* headers. */
static void note_answered(const coord_req *req, const uint64_t *nodes, size_t count, kv_result *res)
{
    for (size_t i = 0; i < count && res->answered_count < KV_MAX_TARGETS; i++) {
        res->answered[res->answered_count++] = nodes[i];
        for (size_t j = 0; j < req->plan.target_count; j++) {
            const quorum_target *t = &req->plan.targets[j];
            if (t->node == nodes[i] && quorum_target_is_fallback(t) &&
                res->fallback_count < KV_MAX_TARGETS) {
                res->fallback[res->fallback_count] = t->node;
                res->fallback_for[res->fallback_count++] = t->intended;
            }
        }
    }
}

/* The verdict, as kv_get reports it (req->mu held). */
static rk_err get_result(coord_req *req, kv_result *res)
{
    rk_err err = kv_get_core_result(&req->gc, &res->acks, &res->needed);
    uint64_t answered[QUORUM_MAX_TARGETS];
    note_answered(req, answered, kv_get_core_answered(&req->gc, answered), res);
    if (err == RK_EQUORUM)
        return err;
    const rk_object *merged = kv_get_core_object(&req->gc);
    if (merged == NULL)
        return RK_ENOTFOUND;
    /* Tombstones only: kv.h hands them out with RK_OK so a 404 can carry
     * their context. */
    return object_copy(&res->obj, merged);
}

/* Whether this read asks every replica at once: the read-repair chance
 * (a share of reads, so read repair reaches replicas that targeted reads
 * leave out). */
static bool read_asks_all(kv *k)
{
    unsigned pct = k->cfg.read_repair_percent;
    if (pct == 0)
        return false;
    return pct >= 100 || randombytes_uniform(100) < pct;
}

/* Waits (req->mu held) for the read's verdict; when the speculative delay
 * passes with a target asked and silent, asks the rest (they may answer
 * first: the verdict takes whichever R answers come). */
static void get_wait(coord_req *req)
{
    kv *k = req->k;
    uint32_t delay_us = k->cfg.speculative_ms ? k->cfg.speculative_ms * 1000u
                                              : kv_latency_window_delay_us(&k->read_latency);
    uint64_t speculate_at = rk_monotonic_ms() + (delay_us + 999) / 1000;
    while (!req_answered(req)) {
        uint64_t now = rk_monotonic_ms();
        if (now >= req->deadline_ms)
            break;
        bool may_speculate =
            kv_get_core_waiting_on_asked(&req->gc) && !kv_get_core_speculated(&req->gc);
        if (may_speculate && now >= speculate_at) {
            kv_get_core_speculate(&req->gc);
            size_t from, more = kv_get_core_to_ask(&req->gc, &from);
            req->outstanding += more;
            atomic_fetch_add_explicit(&k->speculative_reads, 1, memory_order_relaxed);
            pthread_mutex_unlock(&req->mu);
            ask(req, from, more);
            pthread_mutex_lock(&req->mu);
            continue;
        }
        uint64_t until =
            may_speculate && speculate_at < req->deadline_ms ? speculate_at : req->deadline_ms;
        rk_cond_wait_until(&req->cv, &req->mu, until);
    }
    if (kv_get_core_verdict(&req->gc) == QUORUM_PENDING)
        kv_get_core_tick(&req->gc, req->deadline_ms);
}

rk_err kv_coord_get(kv *k, const replica_key *key, const kv_read_opts *opts, kv_result *res)
{
    cluster_view *view = cluster_node_view(k->cn);
    coord_req *req = req_alloc(k, key, view, false);
    if (req == NULL) {
        cluster_view_unref(view);
        return RK_ENOMEM;
    }
    req->deadline_ms =
        rk_deadline_after_ms(opts->timeout_ms ? opts->timeout_ms : k->cfg.timeout_ms);
    unsigned r = opts->r ? opts->r : k->cfg.r;
    res->needed = r;
    rk_err err = plan_targets(req, !opts->strict);
    uint64_t nodes[QUORUM_MAX_TARGETS];
    if (err == RK_OK) {
        kv_quorum_read_order(req->plan.targets, req->plan.target_count, k->node_id);
        for (size_t i = 0; i < req->plan.target_count; i++)
            nodes[i] = req->plan.targets[i].node;
        r = needed_of(req, r);
        res->needed = r;
        note_short_ring(req, res);
        err = kv_get_core_init(&req->gc, nodes, req->plan.target_count, r, req->deadline_ms);
    }
    if (err != RK_OK) {
        req_unref(req);
        return err;
    }
    if (read_asks_all(k))
        atomic_fetch_add_explicit(&k->full_reads, 1, memory_order_relaxed);
    else
        kv_get_core_target(&req->gc, r);
    size_t first = kv_get_core_asked(&req->gc);
    req->outstanding = first;
    ask(req, 0, first);
    pthread_mutex_lock(&req->mu);
    get_wait(req);
    note_wake(req, PBS_READ);
    err = get_result(req, res);
    bool finish = req_take_finish(req);
    pthread_mutex_unlock(&req->mu);
    if (finish)
        read_repair(req);
    if (err == RK_EQUORUM)
        atomic_fetch_add_explicit(&k->quorum_failures, 1, memory_order_relaxed);
    req_unref(req);
    return err;
}

/* ---- put ---------------------------------------------------------------------- */

static void store_hints(coord_req *req);

static void put_reply_cb(rk_err err, ProtobufCMessage *reply, void *arg)
{
    coord_call *call = arg;
    coord_req *req = call->req;
    uint64_t node = req->plan.targets[call->index].node;
    if (err == RK_OK) {
        const Ringkv__ReplicaPutReply *r = (const Ringkv__ReplicaPutReply *)reply;
        note_remote_delay(req->k, node, PBS_WRITE, req->sent_ns[call->index], r->replica_mono_ns,
                          r->replica_clock);
    }
    rpc_reply_free(reply);
    pthread_mutex_lock(&req->mu);
    kv_put_core_reply(&req->pc, node, err == RK_OK, NULL);
    req_replied(req);
    bool finish = req_take_finish(req);
    pthread_mutex_unlock(&req->mu);
    if (finish)
        store_hints(req);
    req_unref(req);
}

/* Replicas that no target acked for (down, silent, or no fallback to stand
 * in) get the object as a hint held here, handed off when they are seen
 * alive again (the sync service: src/sync/hints.c). The coordinator keeps these hints itself, so a
 * write missed by a replica reaches it even in a cluster with no spare node
 * to act as a fallback (3 nodes, N = 3). */
static void store_hints(coord_req *req)
{
    kv *k = req->k;
    uint64_t missed[QUORUM_MAX_TARGETS];
    pthread_mutex_lock(&req->mu);
    size_t count =
        kv_put_core_missed(&req->pc, req->plan.replicas, req->plan.replica_count, missed);
    pthread_mutex_unlock(&req->mu);
    if (count == 0 || !k->cfg.handoff)
        return;
    rk_object obj = {0};
    if (object_decode((const uint8_t *)req->encoded.data, req->encoded.len, &obj) != RK_OK) {
        RK_ERROR("kv", "cannot keep hints for %s: the written object does not decode",
                 req->key.table);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        if (missed[i] == k->node_id) {
            /* this node's own copy failed: a hint for itself would never be
             * handed off, so say so; the other replicas and read repair
             * carry the write */
            RK_ERROR("kv",
                     "this replica did not store a write to %s; read repair or a "
                     "later write will bring it",
                     req->key.table);
            continue;
        }
        rk_err err =
            replica_merge(k->rp, req->key.dbkey, req->key.dbkey_len, missed[i], &obj, NULL);
        if (err == RK_OK)
            atomic_fetch_add_explicit(&k->hints_stored, 1, memory_order_relaxed);
        else
            RK_WARN("kv", "could not keep a hint for %016llx: %s", (unsigned long long)missed[i],
                    rk_strerror(err));
    }
    object_free(&obj);
}

/* Converts a clock for the wire; entries and ptrs have room for c->len. */
static void clock_to_pb(const vclock *c, Ringkv__ClockEntry *entries, Ringkv__ClockEntry **ptrs)
{
    for (size_t i = 0; i < c->len; i++) {
        ringkv__clock_entry__init(&entries[i]);
        entries[i].actor = c->entries[i].actor;
        entries[i].counter = c->entries[i].counter;
        ptrs[i] = &entries[i];
    }
}

/* Asks replica t to apply the client's write (Kv.Apply): it becomes the
 * write's actor. On RK_OK res and req->encoded hold what it stored. */
static rk_err apply_remote(coord_req *req, const quorum_target *t, const kv_write *w,
                           uint64_t deadline_ms, kv_result *res)
{
    size_t ctx_len = w->context ? w->context->len : 0, im_len = w->if_match ? w->if_match->len : 0;
    Ringkv__ClockEntry *entries = calloc(ctx_len + im_len + 1, sizeof *entries);
    Ringkv__ClockEntry **ptrs = calloc(ctx_len + im_len + 1, sizeof *ptrs);
    if (entries == NULL || ptrs == NULL) {
        free(entries);
        free(ptrs);
        return RK_ENOMEM;
    }
    Ringkv__ReplicaApplyRequest msg = RINGKV__REPLICA_APPLY_REQUEST__INIT;
    msg.table = (char *)req->key.table;
    msg.key.data = (uint8_t *)req->key.key;
    msg.key.len = req->key.key_len;
    msg.value.data = (uint8_t *)w->value;
    msg.value.len = w->tombstone ? 0 : w->value_len;
    msg.tombstone = w->tombstone;
    msg.has_context = w->context != NULL;
    msg.n_context = ctx_len;
    msg.context = ptrs;
    msg.has_if_match = w->if_match != NULL;
    msg.n_if_match = im_len;
    msg.if_match = ptrs + ctx_len;
    msg.if_none_match = w->if_none_match;
    msg.owner = (char *)(w->owner ? w->owner : "");
    if (w->context)
        clock_to_pb(w->context, entries, ptrs);
    if (w->if_match)
        clock_to_pb(w->if_match, entries + ctx_len, ptrs + ctx_len);

    const char *addr = peer_addr(req, t->node);
    ProtobufCMessage *reply = NULL;
    uint64_t sent = rk_mono_ns();
    rk_err err = addr == NULL ? RK_EINVAL
                              : rpc_call(req->k->client, addr, &ringkv__kv__descriptor, "Apply",
                                         &msg.base, deadline_ms, &reply);
    free(entries);
    free(ptrs);
    if (err != RK_OK)
        return err;
    const Ringkv__ReplicaApplyReply *r = (const Ringkv__ReplicaApplyReply *)reply;
    note_remote_delay(req->k, t->node, PBS_WRITE, sent, r->replica_mono_ns, r->replica_clock);
    err = object_decode(r->object.data, r->object.len, &res->obj);
    if (err == RK_OK)
        err = rk_buf_append(&req->encoded, r->object.data, r->object.len);
    res->existed = r->existed;
    res->dot = (clock_dot){r->dot_actor, r->dot_counter};
    rpc_reply_free(reply);
    return err;
}

/* A transport failure: another replica may apply the write instead. */
static bool unreachable(rk_err err)
{
    return err == RK_ETIMEDOUT || err == RK_EIO || err == RK_ECLOSED || err == RK_ECORRUPT;
}

/* What a quorum read saw of the key before a conditional write or a
 * delete: merged into the applying replica first, so the conditions are
 * checked against everything R replicas hold, not against one replica
 * that may have missed writes (a delete through a stale replica answered
 * 404 and left the value alive). */
typedef struct seen_state {
    const rk_object *obj; /* NULL: the quorum saw nothing */
    rk_buf encoded;
} seen_state;

/* Merges seen into target t's copy and waits for it (RK_OK when nothing
 * was seen). */
static rk_err bring_up_to_date(coord_req *req, const quorum_target *t, seen_state *seen,
                               uint64_t deadline_ms)
{
    if (seen == NULL || seen->obj == NULL)
        return RK_OK;
    kv *k = req->k;
    if (t->node == k->node_id)
        return replica_merge(k->rp, req->key.dbkey, req->key.dbkey_len, 0, seen->obj, NULL);
    if (seen->encoded.len == 0) {
        rk_err err = object_encode(seen->obj, &seen->encoded);
        if (err != RK_OK)
            return err;
    }
    Ringkv__ReplicaPutRequest msg = RINGKV__REPLICA_PUT_REQUEST__INIT;
    msg.table = (char *)req->key.table;
    msg.key.data = (uint8_t *)req->key.key;
    msg.key.len = req->key.key_len;
    msg.object.data = (uint8_t *)seen->encoded.data;
    msg.object.len = seen->encoded.len;
    const char *addr = peer_addr(req, t->node);
    ProtobufCMessage *reply = NULL;
    rk_err err = addr == NULL ? RK_EINVAL
                              : rpc_call(k->client, addr, &ringkv__kv__descriptor, "Put", &msg.base,
                                         deadline_ms, &reply);
    rpc_reply_free(reply);
    return err;
}

/* Applies the client's write to this node's replica, which becomes its
 * actor. On RK_OK res and req->encoded hold what it stored. */
static rk_err apply_local(coord_req *req, const kv_write *w, kv_result *res)
{
    replica_update u = {
        .value = w->value,
        .value_len = w->value_len,
        .tombstone = w->tombstone,
        .context = w->context,
        .if_match = w->if_match,
        .if_none_match = w->if_none_match,
        .owner = w->owner,
    };
    replica_written out;
    uint64_t call = rk_mono_ns();
    rk_err err = replica_write(req->k->rp, &req->key, &u, &out, &req->encoded);
    if (err != RK_OK)
        return err;
    note_local_delay(req->k, PBS_WRITE, call);
    res->obj = out.obj;
    res->existed = out.existed;
    res->dot = out.dot;
    return RK_OK;
}

/* Applies the write on the first replica target that takes it
 * (kv_quorum_applier_order: this node first when it is one), after bringing
 * it up to date with seen. *applier is the one that did; failed[] marks
 * replicas that could not be reached. */
static rk_err apply_write(coord_req *req, const kv_write *w, seen_state *seen, kv_result *res,
                          uint64_t *applier, bool *failed)
{
    kv *k = req->k;
    size_t order[QUORUM_MAX_TARGETS];
    size_t count =
        kv_quorum_applier_order(req->plan.targets, req->plan.target_count, k->node_id, order);
    for (size_t o = 0; o < count; o++) {
        size_t i = order[o];
        const quorum_target *t = &req->plan.targets[i];
        bool remote = t->node != k->node_id;
        /* (A call that was sent and is only slow may be applied twice, as
         * two siblings of the same value: rarer, and it loses nothing.) */
        uint64_t attempt =
            kv_quorum_attempt_deadline(rk_monotonic_ms(), req->deadline_ms, remote, o + 1 < count);
        rk_err err = bring_up_to_date(req, t, seen, attempt);
        if (err == RK_OK && !remote)
            err = apply_local(req, w, res);
        else if (err == RK_OK)
            err = apply_remote(req, t, w, attempt, res);
        if (err == RK_OK) {
            if (remote)
                atomic_fetch_add_explicit(&k->forwarded_writes, 1, memory_order_relaxed);
            *applier = t->node;
            return RK_OK;
        }
        if (!unreachable(err))
            return err;
        object_free(&res->obj);
        rk_buf_free(&req->encoded);
        failed[i] = true;
    }
    return RK_EQUORUM;
}

static void put_fan_out(coord_req *req, uint64_t applier, const bool *failed, uint64_t deadline)
{
    kv *k = req->k;
    rk_object obj = {0};
    bool decoded = false;
    /* remote targets first (i < count), then this node's own copy, so its
     * RocksDB write overlaps the network round trips */
    for (size_t step = 0; step < 2 * req->plan.target_count; step++) {
        size_t i = step % req->plan.target_count;
        const quorum_target *t = &req->plan.targets[i];
        if (t->node == applier || (step < req->plan.target_count) == (t->node == k->node_id))
            continue;
        if (failed[i]) {
            pthread_mutex_lock(&req->mu);
            kv_put_core_reply(&req->pc, t->node, false, NULL);
            req_replied(req);
            pthread_mutex_unlock(&req->mu);
        } else if (t->node == k->node_id) {
            if (!decoded)
                decoded = object_decode((const uint8_t *)req->encoded.data, req->encoded.len,
                                        &obj) == RK_OK;
            uint64_t call = rk_mono_ns();
            bool ok = decoded && replica_merge(k->rp, req->key.dbkey, req->key.dbkey_len,
                                               t->intended, &obj, NULL) == RK_OK;
            if (ok)
                note_local_delay(k, PBS_WRITE, call);
            pthread_mutex_lock(&req->mu);
            kv_put_core_reply(&req->pc, t->node, ok, NULL);
            req_replied(req);
            pthread_mutex_unlock(&req->mu);
        } else {
            req->calls[i] = (coord_call){req, i};
            req->sent_ns[i] = rk_mono_ns();
            atomic_fetch_add(&req->refs, 1);
            send_object(req, t, deadline, put_reply_cb, &req->calls[i]);
        }
    }
    object_free(&obj);
}

/* The quorum read a conditional write or a delete starts with (default R,
 * the write's timeout and strictness). RK_EQUORUM when R did not answer:
 * a condition checked on fewer replicas could be wrong either way. */
static rk_err read_before_write(kv *k, const replica_key *key, const kv_write *w, kv_result *read,
                                seen_state *seen)
{
    kv_read_opts ro = {.timeout_ms = w->timeout_ms, .strict = w->strict};
    rk_err err = kv_coord_get(k, key, &ro, read);
    if (err == RK_OK)
        seen->obj = &read->obj;
    return err == RK_ENOTFOUND ? RK_OK : err;
}

rk_err kv_coord_put(kv *k, const replica_key *key, const kv_write *w, kv_result *res)
{
    cluster_view *view = cluster_node_view(k->cn);
    coord_req *req = req_alloc(k, key, view, true);
    if (req == NULL) {
        cluster_view_unref(view);
        return RK_ENOMEM;
    }
    unsigned wq = w->w ? w->w : k->cfg.w;
    req->deadline_ms = rk_deadline_after_ms(w->timeout_ms ? w->timeout_ms : k->cfg.timeout_ms);
    res->needed = wq;
    bool failed[QUORUM_MAX_TARGETS] = {false};
    uint64_t applier = 0;
    seen_state seen = {0};
    kv_result read = {0};
    rk_err err = plan_targets(req, !w->strict);
    if (err == RK_OK) {
        wq = needed_of(req, wq);
        res->needed = wq;
        note_short_ring(req, res);
    }
    if (err == RK_OK && (w->tombstone || w->if_match != NULL || w->if_none_match)) {
        err = read_before_write(k, key, w, &read, &seen);
        if (err == RK_EQUORUM) {
            res->acks = read.acks;
            res->needed = read.needed;
        }
    }
    if (err == RK_OK)
        err = apply_write(req, w, &seen, res, &applier, failed);
    kv_result_free(&read);
    rk_buf_free(&seen.encoded);
    if (err == RK_OK)
        err = kv_put_core_init(&req->pc, req->plan.targets, req->plan.target_count, applier, wq,
                               req->deadline_ms);
    if (err != RK_OK) {
        if (err == RK_EQUORUM)
            atomic_fetch_add_explicit(&k->quorum_failures, 1, memory_order_relaxed);
        req_unref(req);
        return err;
    }
    req->outstanding = req->plan.target_count - 1;
    put_fan_out(req, applier, failed, req->deadline_ms);

    pthread_mutex_lock(&req->mu);
    req_wait(req, req->deadline_ms);
    note_wake(req, PBS_WRITE);
    err = kv_put_core_result(&req->pc, &res->acks, &res->needed);
    quorum_target acked[QUORUM_MAX_TARGETS];
    size_t n_acked = kv_put_core_acked(&req->pc, acked);
    uint64_t nodes[QUORUM_MAX_TARGETS];
    for (size_t i = 0; i < n_acked; i++)
        nodes[i] = acked[i].node;
    note_answered(req, nodes, n_acked, res);
    bool finish = req_take_finish(req);
    pthread_mutex_unlock(&req->mu);
    if (finish)
        store_hints(req);
    if (err == RK_EQUORUM)
        atomic_fetch_add_explicit(&k->quorum_failures, 1, memory_order_relaxed);
    req_unref(req);
    return err;
}
