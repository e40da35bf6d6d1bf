/* server.c - the RPC server: a REP socket, a pool of contexts, worker threads.
 *
 * Each context (struct rpc_request) is a slot that holds one request from
 * receipt to reply:
 *
 *        nng recv done            worker: frame ok          rpc_respond
 *   RECV ------------> queued ------------------> handler ------------> SEND
 *    ^                   |  worker: bad frame,                            |
 *    |                   |  stale, replayed, expired                      |
 *    +-------------------+--------------------------------- send done ---+
 *
 *   RECV -> queued   slot_cb (NNG thread) stamps the receipt time, queues it
 *   queued -> handler/RECV   serve (worker thread) opens and checks the frame;
 *                    a dropped frame is counted and the slot receives again
 *   handler -> SEND  rpc_respond (any thread) seals the answer and sends it
 *   SEND -> RECV     slot_cb again, once NNG has sent (or failed to send)
 *
 * Crypto and protobuf work happens on the workers, never on NNG's threads,
 * and a handler that blocks holds one worker, not NNG; with
 * opts.inline_handlers, slot_cb runs serve itself instead (serve_inline),
 * saving the handoff, for handlers that answer at once. The slot count
 * bounds the requests in flight; past it, NNG leaves requests in the
 * connection (backpressure).
 *
 * A slot that receives a batch (rpc_internal.h) serves each member frame as a
 * sub-request: an rpc_request with no context of its own, inside a struct
 * batch, that goes through the same checks and handlers as a frame that
 * came alone. rpc_respond on a sub-request keeps its sealed reply in the
 * batch; whoever drops the batch's last reference (the last member to
 * answer, or serve_batch itself when every member answered at once or was
 * dropped) sends all the replies as one batch on the slot and frees the
 * batch:
 *
 *   RECV -> queued -> serve_batch: members served in order  (refs = N + 1)
 *            each member: dropped, or answered now or later  (refs - 1 each)
 *            serve_batch done                                 (refs - 1)
 *   refs 0 -> batch_send: SEND the replies (or RECV again if there are
 *            none: every member was dropped)
 *
 * A sub-request handed to a handler counts in outstanding like any other,
 * and its rpc_respond sends the batch (when last) before outstanding drops,
 * so close never frees a slot or the server under a late answer.
 *
 * Failpoints (docs/failpoints.md) act on whole NNG messages, a frame or a
 * batch, and pick their rule by the peer's node id (the sender written in
 * the frame, for a request; the request's, for a reply):
 *
 *   RECV --(rpc.recv delay)--> held --(due)--> queued     slot_cb, held_cb
 *   RECV --(rpc.recv drop)---> RECV (never answered: the caller times out)
 *   RECV --(rpc.recv fail)---> queued, and every request in it is answered
 *                              RK_EIO instead of reaching its handler
 *   rpc_respond --(rpc.send delay)--> held --(due)--> SEND     send_reply
 *   rpc_respond --(rpc.send drop)---> RECV (the answer is lost)
 *   rpc_respond --(rpc.send fail)---> SEND of RK_EIO answers instead
 *
 * A held message keeps its slot (the slots bound what is in flight, held
 * or not). A request released from its hold goes to the workers, never
 * inline: the timer thread must not run handlers. Close cancels what is
 * still held once nothing can hold any more (after the gate is shut). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "rpc_internal.h"

typedef struct binding {
    const ProtobufCServiceDescriptor *service;
    const ProtobufCMethodDescriptor *method;
    rpc_handler_cb handler_cb;
    void *arg;
} binding;

typedef enum slot_state { SLOT_RECV, SLOT_SEND } slot_state;

typedef struct batch batch;

struct rpc_request {
    rpc_server *srv;
    nng_ctx ctx;
    nng_aio *aio;
    slot_state state;
    rpc_request *next; /* work queue */
    nng_msg *msg;      /* the received frame, while queued */
    uint64_t received_ms;
    /* set by serve for the handler, valid until rpc_respond */
    uint64_t call_id;
    uint64_t sender;
    uint64_t deadline_ms;
    const binding *bound;
    ProtobufCMessage *input;
    bool counted; /* in srv->outstanding */
    /* a sub-request: the batch it belongs to (NULL for a slot), and its
     * sealed reply once answered (NULL: dropped, no entry) */
    batch *batch;
    nng_msg *reply;
    /* failpoints: RK_EIO answers every request of the received message
     * (rpc.recv fail); a message held on the timer, and what it is */
    rk_err injected;
    failpoint_timer timer;
    nng_msg *held;
    bool held_is_reply;
    uint64_t held_deadline_ms;
};

/* A received batch being served: one sub-request per member. Allocated by
 * serve_batch, freed by batch_release when the last reference goes. */
struct batch {
    rpc_request *slot;   /* the slot that received it and sends the reply */
    _Atomic size_t refs; /* members not answered or dropped yet, + 1 while serving */
    size_t n;
    rpc_request subs[]; /* n */
};

struct rpc_server {
    rpc_options opts;
    frame_key key;
    nng_socket sock;
    int port;
    binding *bindings;
    size_t n_bindings;
    replay_cache *replay;
    rpc_request *slots;
    size_t n_slots;
    pthread_t *workers;
    size_t n_workers;

    pthread_mutex_t mu; /* guards the queue, stopping, outstanding */
    pthread_cond_t work_cv;
    pthread_cond_t idle_cv;
    rpc_request *q_head;
    rpc_request *q_tail;
    bool stopping;
    size_t outstanding;    /* handed to a handler, not yet answered */
    size_t inline_running; /* serve() running on an NNG thread */
    rpc_gate gate;         /* every NNG operation starts through it */

    struct {
        _Atomic uint64_t requests, handler_errors, unknown_method, bad_input, expired, bad_frames,
            malformed, stale, replayed, send_errors, batches;
    } stats;
};

#define COUNT(srv, field) atomic_fetch_add_explicit(&(srv)->stats.field, 1, memory_order_relaxed)

/* Waits for the next request on slot r; once closing, the slot rests. */
static void start_recv(rpc_request *r)
{
    if (!rpc_gate_enter(&r->srv->gate))
        return;
    r->state = SLOT_RECV;
    nng_aio_set_timeout(r->aio, NNG_DURATION_INFINITE);
    nng_ctx_recv(r->ctx, r->aio);
    rpc_gate_exit(&r->srv->gate);
}

static void enqueue(rpc_server *srv, rpc_request *r)
{
    pthread_mutex_lock(&srv->mu);
    r->next = NULL;
    if (srv->q_tail != NULL)
        srv->q_tail->next = r;
    else
        srv->q_head = r;
    srv->q_tail = r;
    pthread_cond_signal(&srv->work_cv);
    pthread_mutex_unlock(&srv->mu);
}

static void serve(rpc_server *srv, rpc_request *r);

/* serve() on this NNG thread, unless the server is closing (then the slot
 * rests, as a queued request would). Counted so that close waits for it. */
static void serve_inline(rpc_server *srv, rpc_request *r)
{
    pthread_mutex_lock(&srv->mu);
    bool stopping = srv->stopping;
    if (!stopping)
        srv->inline_running++;
    pthread_mutex_unlock(&srv->mu);
    if (stopping) {
        nng_msg_free(r->msg);
        r->msg = NULL;
        return;
    }
    serve(srv, r);
    pthread_mutex_lock(&srv->mu);
    if (--srv->inline_running == 0 && srv->outstanding == 0)
        pthread_cond_broadcast(&srv->idle_cv);
    pthread_mutex_unlock(&srv->mu);
}

static void send_now(rpc_request *slot, nng_msg *m, uint64_t deadline_ms);

/* Failpoint timer thread: the message held on slot r is due. A request
 * arrives now (its deadline counts from here, as for any request: the
 * link was slow, not the caller); a reply goes out. */
static void held_cb(void *arg)
{
    rpc_request *r = arg;
    nng_msg *m = r->held;
    r->held = NULL;
    if (r->held_is_reply) {
        send_now(r, m, r->held_deadline_ms);
        return;
    }
    r->msg = m;
    r->received_ms = rk_monotonic_ms();
    enqueue(r->srv, r);
}

/* The rpc.recv failpoint for the message just received on slot r (in
 * r->msg), on an NNG thread. True: taken care of (held or dropped); false:
 * serve it (with r->injected set when the rule said fail). */
static bool hold_request(rpc_server *srv, rpc_request *r)
{
    failpoint_peer peer = {0};
    rpc_message_sender(nng_msg_body(r->msg), nng_msg_len(r->msg), &peer.id);
    failpoint_action a = failpoint_eval(FAILPOINT_RPC_RECV, &peer);
    switch (a.kind) {
    case FAILPOINT_NONE: return false;
    case FAILPOINT_FAIL: r->injected = RK_EIO; return false;
    case FAILPOINT_DROP:
        nng_msg_free(r->msg);
        r->msg = NULL;
        start_recv(r);
        return true;
    case FAILPOINT_DELAY:
        r->held = r->msg;
        r->held_is_reply = false;
        r->msg = NULL;
        if (failpoint_timer_start(&r->timer, a.delay_us, held_cb, r) == RK_OK)
            return true;
        r->msg = r->held;
        r->held = NULL;
        return false;
    }
    (void)srv;
    return false;
}

/* NNG thread: a receive or a send of slot r finished. */
static void slot_cb(void *arg)
{
    rpc_request *r = arg;
    rpc_server *srv = r->srv;
    int rv = nng_aio_result(r->aio);
    if (r->state == SLOT_SEND) {
        if (rv != 0) {
            /* The message is still ours when a send fails. */
            nng_msg *m = nng_aio_get_msg(r->aio);
            nng_aio_set_msg(r->aio, NULL);
            if (m != NULL)
                nng_msg_free(m);
            if (rv != NNG_ECLOSED && rv != NNG_ECANCELED) {
                COUNT(srv, send_errors);
                RK_DEBUG("rpc", "reply not sent: %s", nng_strerror(rv));
            }
        }
        start_recv(r);
        return;
    }
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
        return; /* the server is closing: the slot rests */
    if (rv != 0) {
        RK_WARN("rpc", "receive failed: %s", nng_strerror(rv));
        start_recv(r);
        return;
    }
    r->msg = nng_aio_get_msg(r->aio);
    nng_aio_set_msg(r->aio, NULL);
    r->received_ms = rk_monotonic_ms();
    r->injected = RK_OK;
    if (failpoint_armed(FAILPOINT_RPC_RECV) && hold_request(srv, r))
        return;
    if (srv->opts.inline_handlers)
        serve_inline(srv, r);
    else
        enqueue(srv, r);
}

static const binding *find_binding(const rpc_server *srv, const char *service, const char *method)
{
    for (size_t i = 0; i < srv->n_bindings; i++) {
        const binding *b = &srv->bindings[i];
        if (strcmp(b->service->name, service) == 0 && strcmp(b->method->name, method) == 0)
            return b;
    }
    return NULL;
}

/* Checks the frame buf[len] (inside a message the caller owns) and hands it
 * to its handler or answers it with an error: true. Or drops it, counted:
 * false, and r is still the caller's. When own is not NULL, *own is the
 * message holding buf and is freed before the handler runs (a big Put's
 * frame is not kept while the handler works on its unpacked copy). */
static bool serve_frame(rpc_server *srv, rpc_request *r, uint8_t *buf, size_t len, nng_msg **own)
{
    frame_view v = {0};
    rk_err err = rpc_frame_decode(&srv->key, buf, len, &v);
    if (err != RK_OK) {
        if (err == RK_ECORRUPT)
            COUNT(srv, bad_frames);
        else
            COUNT(srv, malformed);
        goto drop;
    }
    if (v.hdr->kind != RINGKV__FRAME_HEADER__KIND__KIND_REQUEST) {
        COUNT(srv, malformed);
        goto drop;
    }
    if (rpc_frame_check_time(v.hdr->timestamp_ms, rk_now_ms(), srv->opts.window_ms) != RK_OK) {
        COUNT(srv, stale);
        goto drop;
    }
    /* Only authentic frames reach the cache, so no one without the key can
     * fill it. A clear frame has no nonce and no protection. */
    if (v.nonce != NULL) {
        err = rpc_replay_cache_check(srv->replay, v.nonce, v.hdr->timestamp_ms, rk_now_ms(),
                                     srv->opts.window_ms);
        if (err == RK_EEXIST) {
            COUNT(srv, replayed);
            goto drop;
        }
        if (err != RK_OK) {
            COUNT(srv, stale);
            goto drop;
        }
    }
    r->call_id = v.hdr->call_id;
    r->sender = v.sender;
    r->deadline_ms = v.hdr->timeout_ms > 0 ? r->received_ms + v.hdr->timeout_ms : UINT64_MAX;
    r->input = NULL;
    r->bound = NULL;
    r->counted = false;
    if (rk_monotonic_ms() >= r->deadline_ms) {
        /* The caller has given up; running it would only add load. */
        COUNT(srv, expired);
        goto drop;
    }
    r->bound = find_binding(srv, v.hdr->service, v.hdr->method);
    if (r->bound != NULL && r->injected != RK_OK) {
        /* rpc.recv fail: the request came, but as if its handler failed */
        rpc_frame_view_fini(&v);
        rpc_respond(r, r->injected, NULL);
        return true;
    }
    if (r->bound == NULL) {
        COUNT(srv, unknown_method);
        RK_DEBUG("rpc", "no handler for %s.%s", v.hdr->service, v.hdr->method);
        rpc_frame_view_fini(&v);
        rpc_respond(r, RK_EUNSUPPORTED, NULL);
        return true;
    }
    r->input = protobuf_c_message_unpack(r->bound->method->input, NULL, v.payload_len, v.payload);
    rpc_frame_view_fini(&v);
    if (own != NULL) {
        nng_msg_free(*own);
        *own = NULL;
    }
    if (r->input == NULL) {
        COUNT(srv, bad_input);
        rpc_respond(r, RK_ECORRUPT, NULL);
        return true;
    }
    COUNT(srv, requests);
    pthread_mutex_lock(&srv->mu);
    srv->outstanding++;
    r->counted = true;
    pthread_mutex_unlock(&srv->mu);
    r->bound->handler_cb(r, r->input, r->bound->arg);
    return true;

drop:
    rpc_frame_view_fini(&v);
    return false;
}

static void send_reply(rpc_request *slot, nng_msg *m, uint64_t deadline_ms, failpoint_action fa);

/* A reply frame to call_id that carries err and no payload, or NULL. */
static nng_msg *error_reply(rpc_server *srv, uint64_t call_id, rk_err err)
{
    Ringkv__FrameHeader hdr = RINGKV__FRAME_HEADER__INIT;
    hdr.kind = RINGKV__FRAME_HEADER__KIND__KIND_REPLY;
    hdr.call_id = call_id;
    hdr.timestamp_ms = rk_now_ms();
    hdr.status = (int32_t)err;
    nng_msg *m = NULL;
    if (rpc_frame_encode(&srv->key, srv->opts.node_id, &hdr, NULL, srv->opts.max_frame_bytes, &m) !=
        RK_OK)
        return NULL;
    return m;
}

/* The rpc.send failpoint for a reply to sender: none when no rule names
 * the point. */
static failpoint_action reply_fault(uint64_t sender)
{
    failpoint_action none = {FAILPOINT_NONE, 0};
    if (!failpoint_armed(FAILPOINT_RPC_SEND))
        return none;
    failpoint_peer peer = {.id = sender};
    return failpoint_eval(FAILPOINT_RPC_SEND, &peer);
}

/* All members of b have answered or were dropped: sends their replies as
 * one batch on the slot (or lets the slot receive again if there are none,
 * as for a dropped frame), and frees b. */
static void batch_send(rpc_server *srv, batch *b)
{
    rpc_request *slot = b->slot;
    size_t n = 0, bytes = 0;
    uint64_t deadline = 0;
    failpoint_action fa = {FAILPOINT_NONE, 0};
    for (size_t i = 0; i < b->n && failpoint_armed(FAILPOINT_RPC_SEND); i++) {
        if (b->subs[i].reply == NULL)
            continue;
        fa = reply_fault(b->subs[i].sender); /* one caller sent the batch */
        break;
    }
    for (size_t i = 0; i < b->n && fa.kind == FAILPOINT_FAIL; i++) {
        rpc_request *sub = &b->subs[i];
        if (sub->reply == NULL)
            continue;
        nng_msg_free(sub->reply);
        sub->reply = error_reply(srv, sub->call_id, RK_EIO); /* NULL: that member gets RK_EIO */
    }
    for (size_t i = 0; i < b->n; i++) {
        rpc_request *sub = &b->subs[i];
        if (sub->reply == NULL)
            continue;
        size_t len = nng_msg_len(sub->reply);
        if (rpc_batch_bytes(n + 1, bytes + len) > srv->opts.max_frame_bytes) {
            /* The caller could not receive it; that member gets RK_EIO. */
            COUNT(srv, send_errors);
            nng_msg_free(sub->reply);
            sub->reply = NULL;
            continue;
        }
        n++;
        bytes += len;
        if (sub->deadline_ms > deadline)
            deadline = sub->deadline_ms;
    }
    nng_msg *m = NULL;
    if (n > 0 && nng_msg_alloc(&m, rpc_batch_bytes(n, bytes)) == 0) {
        uint8_t *at = rpc_batch_begin(nng_msg_body(m), (uint32_t)n);
        for (size_t i = 0; i < b->n; i++)
            if (b->subs[i].reply != NULL)
                at = rpc_batch_add(at, nng_msg_body(b->subs[i].reply),
                                   nng_msg_len(b->subs[i].reply));
    }
    for (size_t i = 0; i < b->n; i++)
        if (b->subs[i].reply != NULL)
            nng_msg_free(b->subs[i].reply);
    free(b);
    if (m != NULL)
        send_reply(slot, m, deadline, fa);
    else
        start_recv(slot);
}

/* Drops one reference to b; the last one sends the batch reply. */
static void batch_release(rpc_server *srv, batch *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        batch_send(srv, b);
}

/* The batch in m, received by slot: each member is served as a frame that
 * came alone would be. A malformed batch is dropped like a bad frame. */
static void serve_batch(rpc_server *srv, rpc_request *slot, nng_msg *m)
{
    batch_span spans[RPC_BATCH_MAX_MEMBERS];
    size_t n;
    if (rpc_batch_parse(nng_msg_body(m), nng_msg_len(m), spans, RPC_BATCH_MAX_MEMBERS, &n) !=
        RK_OK) {
        COUNT(srv, bad_frames);
        nng_msg_free(m);
        start_recv(slot);
        return;
    }
    COUNT(srv, batches);
    batch *b = calloc(1, sizeof *b + n * sizeof b->subs[0]);
    if (b == NULL) {
        nng_msg_free(m);
        start_recv(slot);
        return;
    }
    b->slot = slot;
    b->n = n;
    atomic_init(&b->refs, n + 1);
    for (size_t i = 0; i < n; i++) {
        rpc_request *sub = &b->subs[i];
        sub->srv = srv;
        sub->batch = b;
        sub->received_ms = slot->received_ms;
        sub->injected = slot->injected;
        if (!serve_frame(srv, sub, spans[i].frame, spans[i].len, NULL))
            batch_release(srv, b); /* dropped: no entry, never the last reference */
    }
    nng_msg_free(m);
    batch_release(srv, b);
}

/* Worker thread (or NNG thread, inline): serves the frame or batch in
 * r->msg. */
static void serve(rpc_server *srv, rpc_request *r)
{
    nng_msg *m = r->msg;
    r->msg = NULL;
    if (rpc_batch_is(nng_msg_body(m), nng_msg_len(m))) {
        serve_batch(srv, r, m);
        return;
    }
    bool served = serve_frame(srv, r, nng_msg_body(m), nng_msg_len(m), &m);
    if (m != NULL)
        nng_msg_free(m);
    if (!served)
        start_recv(r);
}

static void *worker_main(void *arg)
{
    rpc_server *srv = arg;
    for (;;) {
        pthread_mutex_lock(&srv->mu);
        while (srv->q_head == NULL && !srv->stopping)
            pthread_cond_wait(&srv->work_cv, &srv->mu);
        if (srv->stopping) {
            pthread_mutex_unlock(&srv->mu);
            return NULL;
        }
        rpc_request *r = srv->q_head;
        srv->q_head = r->next;
        if (srv->q_head == NULL)
            srv->q_tail = NULL;
        pthread_mutex_unlock(&srv->mu);
        serve(srv, r);
    }
}

void rpc_respond(rpc_request *r, rk_err err, const ProtobufCMessage *reply)
{
    rpc_server *srv = r->srv;
    const ProtobufCMessage *payload = NULL;
    /* A batch's replies go out together: batch_send asks for them. */
    failpoint_action fa = {FAILPOINT_NONE, 0};
    if (r->batch == NULL)
        fa = reply_fault(r->sender);
    if (err == RK_OK) {
        if (reply == NULL || reply->descriptor != r->bound->method->output) {
            RK_ERROR("rpc", "handler of %s.%s answered with the wrong message type",
                     r->bound->service->name, r->bound->method->name);
            err = RK_EINVAL;
        } else {
            payload = reply;
        }
    }
    if (err < 0 || err >= RK_ERR_COUNT)
        err = RK_EIO;
    Ringkv__FrameHeader hdr = RINGKV__FRAME_HEADER__INIT;
    hdr.kind = RINGKV__FRAME_HEADER__KIND__KIND_REPLY;
    hdr.call_id = r->call_id;
    hdr.timestamp_ms = rk_now_ms();
    hdr.status = (int32_t)err;
    if (fa.kind == FAILPOINT_FAIL) { /* the caller hears RK_EIO instead */
        hdr.status = (int32_t)RK_EIO;
        payload = NULL;
    }
    nng_msg *m = NULL;
    rk_err e = rpc_frame_encode(&srv->key, srv->opts.node_id, &hdr, payload,
                                srv->opts.max_frame_bytes, &m);
    if (e != RK_OK) {
        /* Too big or no memory: say so instead, without a payload. */
        hdr.status = (int32_t)e;
        err = e;
        if (rpc_frame_encode(&srv->key, srv->opts.node_id, &hdr, NULL, srv->opts.max_frame_bytes,
                             &m) != RK_OK)
            m = NULL;
    }
    if (err != RK_OK && r->counted)
        COUNT(srv, handler_errors);
    if (r->input != NULL) {
        protobuf_c_message_free_unpacked(r->input, NULL);
        r->input = NULL;
    }
    bool counted = r->counted;
    r->counted = false;
    /* After the send starts (or the batch is released) the slot may be
     * reused and the batch freed at once: touch only srv from here on. It
     * happens before outstanding drops so that close, which waits for
     * outstanding, never frees an aio under a send being started. */
    if (r->batch != NULL) {
        r->reply = m;
        batch_release(srv, r->batch);
    } else if (m != NULL) {
        send_reply(r, m, r->deadline_ms, fa);
    } else {
        start_recv(r);
    }
    if (counted) {
        pthread_mutex_lock(&srv->mu);
        if (--srv->outstanding == 0)
            pthread_cond_broadcast(&srv->idle_cv);
        pthread_mutex_unlock(&srv->mu);
    }
}

/* Sends m (a reply frame or a batch of them) on slot, which then receives
 * again, after what the rpc.send failpoint fa says (a delay holds it, a
 * drop loses it); takes ownership of m. */
static void send_reply(rpc_request *slot, nng_msg *m, uint64_t deadline_ms, failpoint_action fa)
{
    if (fa.kind == FAILPOINT_DROP) {
        nng_msg_free(m);
        start_recv(slot);
        return;
    }
    if (fa.kind == FAILPOINT_DELAY) {
        slot->held = m;
        slot->held_is_reply = true;
        slot->held_deadline_ms = deadline_ms;
        if (failpoint_timer_start(&slot->timer, fa.delay_us, held_cb, slot) == RK_OK)
            return;
        slot->held = NULL;
    }
    send_now(slot, m, deadline_ms);
}

/* send_reply without failpoints. */
static void send_now(rpc_request *slot, nng_msg *m, uint64_t deadline_ms)
{
    rpc_server *srv = slot->srv;
    if (!rpc_gate_enter(&srv->gate)) {
        nng_msg_free(m);
        start_recv(slot); /* closed: the slot rests */
        return;
    }
    uint64_t now = rk_monotonic_ms();
    uint64_t left = deadline_ms > now ? deadline_ms - now : 0;
    /* A reply may wait behind others on the connection; past the
     * caller's deadline (plus slack) nobody wants it. */
    nng_duration t = deadline_ms == UINT64_MAX ? 60000
                     : left > 60000            ? 60000
                                               : (nng_duration)left + 1000;
    slot->state = SLOT_SEND;
    nng_aio_set_msg(slot->aio, m);
    nng_aio_set_timeout(slot->aio, t);
    nng_ctx_send(slot->ctx, slot->aio);
    rpc_gate_exit(&srv->gate);
}

uint64_t rpc_request_sender(const rpc_request *req)
{
    return req->sender;
}

uint64_t rpc_request_deadline(const rpc_request *req)
{
    return req->deadline_ms;
}

const ProtobufCMethodDescriptor *rpc_request_method(const rpc_request *req)
{
    return req->bound->method;
}

/* Resolves and checks the handler table into srv->bindings. */
static rk_err bind_handlers(rpc_server *srv, const rpc_handler *handlers, size_t n)
{
    srv->bindings = calloc(n > 0 ? n : 1, sizeof *srv->bindings);
    if (srv->bindings == NULL)
        return RK_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const rpc_handler *h = &handlers[i];
        if (h->service == NULL || h->handler_cb == NULL) {
            RK_ERROR("rpc", "handler %zu has no service or no callback", i);
            return RK_EINVAL;
        }
        const ProtobufCMethodDescriptor *m =
            h->method != NULL                         ? rpc_find_method(h->service, h->method)
            : h->method_index < h->service->n_methods ? &h->service->methods[h->method_index]
                                                      : NULL;
        if (m == NULL) {
            RK_ERROR("rpc", "service %s has no method %s", h->service->name,
                     h->method != NULL ? h->method : "(index out of range)");
            return RK_EINVAL;
        }
        if (find_binding(srv, h->service->name, m->name) != NULL) {
            RK_ERROR("rpc", "two handlers for %s.%s", h->service->name, m->name);
            return RK_EINVAL;
        }
        srv->bindings[srv->n_bindings++] = (binding){
            .service = h->service, .method = m, .handler_cb = h->handler_cb, .arg = h->arg};
    }
    return RK_OK;
}

static rk_err open_socket(rpc_server *srv, const char *listen_addr)
{
    char *url = rpc_url(listen_addr);
    if (url == NULL)
        return listen_addr == NULL || listen_addr[0] == '\0' ? RK_EINVAL : RK_ENOMEM;
    int rv = nng_rep0_open(&srv->sock);
    if (rv != 0) {
        free(url);
        return rpc_from_nng(rv, "rep0 open");
    }
    nng_listener l;
    if ((rv = nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ, srv->opts.max_frame_bytes)) != 0 ||
        (rv = nng_listen(srv->sock, url, &l, 0)) != 0 ||
        (rv = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &srv->port)) != 0) {
        RK_ERROR("rpc", "cannot listen on %s: %s", url, nng_strerror(rv));
        free(url);
        return rv == NNG_EADDRINUSE ? RK_EEXIST : rpc_from_nng(rv, "listen");
    }
    RK_DEBUG("rpc", "listening on %s (port %d)", url, srv->port);
    free(url);
    return RK_OK;
}

static rk_err start_slots(rpc_server *srv)
{
    srv->slots = calloc(srv->opts.contexts, sizeof *srv->slots);
    if (srv->slots == NULL)
        return RK_ENOMEM;
    for (size_t i = 0; i < srv->opts.contexts; i++) {
        rpc_request *r = &srv->slots[i];
        r->srv = srv;
        int rv = nng_aio_alloc(&r->aio, slot_cb, r);
        if (rv != 0)
            return rpc_from_nng(rv, "aio alloc");
        srv->n_slots++;
        if ((rv = nng_ctx_open(&r->ctx, srv->sock)) != 0)
            return rpc_from_nng(rv, "ctx open");
    }
    for (size_t i = 0; i < srv->n_slots; i++)
        start_recv(&srv->slots[i]);
    return RK_OK;
}

static rk_err start_workers(rpc_server *srv)
{
    srv->workers = calloc(srv->opts.workers, sizeof *srv->workers);
    if (srv->workers == NULL)
        return RK_ENOMEM;
    for (size_t i = 0; i < srv->opts.workers; i++) {
        if (pthread_create(&srv->workers[i], NULL, worker_main, srv) != 0)
            return RK_ENOMEM;
        srv->n_workers++;
    }
    return RK_OK;
}

rk_err rpc_server_open(const char *listen_addr, const rpc_options *opts,
                       const rpc_handler *handlers, size_t n, rpc_server **out)
{
    if (opts == NULL || (handlers == NULL && n > 0))
        return RK_EINVAL;
    rpc_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return RK_ENOMEM;
    srv->opts = *opts;
    srv->opts.secret = NULL; /* not kept: only the derived key is */
    srv->opts.secret_len = 0;
    rpc_options_fill(&srv->opts);
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->work_cv, NULL);
    pthread_cond_init(&srv->idle_cv, NULL);
    srv->sock = (nng_socket)NNG_SOCKET_INITIALIZER;

    rk_err err = rpc_frame_key_from_options(opts, &srv->key);
    if (err == RK_OK)
        err = bind_handlers(srv, handlers, n);
    if (err == RK_OK)
        err = rpc_replay_cache_alloc(srv->opts.replay_entries, &srv->replay);
    if (err == RK_OK)
        err = start_workers(srv);
    if (err == RK_OK)
        err = open_socket(srv, listen_addr);
    if (err == RK_OK)
        err = start_slots(srv);
    if (err != RK_OK) {
        rpc_server_close(srv);
        return err;
    }
    *out = srv;
    return RK_OK;
}

void rpc_server_close(rpc_server *srv)
{
    if (srv == NULL)
        return;
    /* 1. No new handler calls: the workers finish what they run and exit. */
    pthread_mutex_lock(&srv->mu);
    srv->stopping = true;
    pthread_cond_broadcast(&srv->work_cv);
    pthread_mutex_unlock(&srv->mu);
    for (size_t i = 0; i < srv->n_workers; i++)
        pthread_join(srv->workers[i], NULL);
    /* 2. Deferred requests still belong to their handlers: wait for their
     *    answers, which still go out (the socket is open). */
    pthread_mutex_lock(&srv->mu);
    while (srv->outstanding > 0 || srv->inline_running > 0)
        pthread_cond_wait(&srv->idle_cv, &srv->mu);
    pthread_mutex_unlock(&srv->mu);
    /* 3. Nobody starts an NNG operation any more; stop those pending
     *    (nng_aio_stop waits for a running slot_cb). */
    rpc_gate_close(&srv->gate);
    for (size_t i = 0; i < srv->n_slots; i++)
        nng_aio_stop(srv->slots[i].aio);
    /*    Nothing holds a message any more (holds start in slot_cb, which
     *    has stopped, or in answers, which are done): drop what is still
     *    held; a release that is running finds the gate shut. */
    if (failpoint_enabled())
        for (size_t i = 0; i < srv->n_slots; i++)
            if (failpoint_timer_cancel(&srv->slots[i].timer) && srv->slots[i].held != NULL) {
                nng_msg_free(srv->slots[i].held);
                srv->slots[i].held = NULL;
            }
    /* 4. Only now, with nothing in flight, close the socket. */
    if (nng_socket_id(srv->sock) > 0)
        nng_close(srv->sock);
    for (size_t i = 0; i < srv->n_slots; i++)
        nng_aio_free(srv->slots[i].aio);
    for (rpc_request *r = srv->q_head; r != NULL; r = r->next)
        if (r->msg != NULL)
            nng_msg_free(r->msg);
    free(srv->slots);
    free(srv->workers);
    free(srv->bindings);
    rpc_replay_cache_free(srv->replay);
    rpc_frame_key_wipe(&srv->key);
    pthread_cond_destroy(&srv->idle_cv);
    pthread_cond_destroy(&srv->work_cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}

int rpc_server_port(const rpc_server *srv)
{
    return srv->port;
}

void rpc_server_get_stats(const rpc_server *srv, rpc_server_stats *out)
{
    /* The counters are atomics; reading them does not change them. */
    rpc_server *s = (rpc_server *)srv;
#define LOAD(f) out->f = atomic_load_explicit(&s->stats.f, memory_order_relaxed)
    LOAD(requests);
    LOAD(handler_errors);
    LOAD(unknown_method);
    LOAD(bad_input);
    LOAD(expired);
    LOAD(bad_frames);
    LOAD(malformed);
    LOAD(stale);
    LOAD(replayed);
    LOAD(send_errors);
    LOAD(batches);
#undef LOAD
}
