/* client.c - the RPC client: a REQ socket per peer, a context per call in flight.
 *
 * A call is a slot (NNG context + aio) taken from its peer's free list, or
 * made when the list is empty, and given back when the call ends; slots
 * are freed only when the client closes. One call:
 *
 *          rpc_call_async              send done               reply
 *   idle -----------------> SEND -----------------> RECV ---------------> idle
 *                            |  send failed or         |  timed out,        (callback)
 *                            |  deadline (no peer)     |  conn. lost, closed
 *                            +-------------------------+-----------------> idle
 *
 *   idle -> SEND   rpc_call_async: frame sealed, nng_ctx_send
 *   SEND -> RECV   call_cb: nng_ctx_recv with the time left
 *   RECV -> idle   call_cb -> finish: reply opened, checked, unpacked,
 *                  callback run, slot back on the free list
 *
 * Coalescing: while fewer than batch_threshold calls to a peer are on the
 * wire, a call goes out alone, as above. Otherwise its sealed frame waits
 * in its peer's queue (CALL_QUEUED), and the queue goes out as one batch
 * message (rpc_internal.h) when the next call to that peer ends - a completion is
 * the moment, as in Nagle's algorithm without its timer - or at once when
 * it holds batch_max_calls calls or batch_max_bytes. The batch travels on
 * the first queued call's slot, the carrier; the others only lend it their
 * call state:
 *
 *   QUEUED --(completion of a call to the peer, or queue full)--> sent:
 *      one call: SEND as a call alone
 *      several:  the carrier SENDs the batch, RECVs the batch reply, and
 *                ends every member with its own reply (finish_batch)
 *
 *   rpc_call_async -> QUEUED   under mu; the cap check may take the queue
 *   QUEUED -> SEND             take_queue (under mu), send_queue (after it)
 *   carrier RECV -> idle       end_call -> finish_batch: members matched by
 *                              sealed call id; none in the reply: RK_EIO;
 *                              deadline passed: RK_ETIMEDOUT
 *
 * A queued call adds no latency at low load (nothing waits unless calls
 * are in flight) and at most one round trip under load. The carrier waits
 * until its latest member's deadline, so a queue goes out as batches of
 * calls whose deadlines are within BATCH_DEADLINE_SLACK_MS.
 *
 * Failpoints (docs/failpoints.md): when a rule names rpc.send or rpc.recv,
 * a message to or from the peer may be held on the failpoint timer, which
 * puts the call in a fourth state:
 *
 *   SEND --(rpc.send delay)--> HELD --(due)--> SEND   (start_send, held_cb)
 *   RECV --(rpc.recv delay)--> HELD --(due)--> idle   (call_cb, held_cb:
 *                                                       the reply, late)
 *   SEND or RECV --(drop, or a delay past the deadline)--> HELD
 *                  --(deadline)--> idle with RK_ETIMEDOUT, as a lost message
 *   SEND --(rpc.send fail)--> HELD --(at once)--> idle with RK_EIO
 *   RECV --(rpc.recv fail)--> idle with RK_EIO
 *   HELD --(rpc_client_close)--> idle with RK_ECLOSED
 *
 * One rule decision covers one NNG message: a batch is delayed, dropped or
 * failed whole, as the packets carrying it would be. A call is held under
 * the gate, so that close, once the gate is shut, finds every held call.
 *
 * NNG's REQ resend is off: a request goes out once, and a call whose peer
 * goes away after the send fails rather than running twice. NNG dials in the
 * background and re-dials after the peer restarts; a call to a peer that is
 * not connected waits in the send queue until it connects or the deadline
 * passes. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "rpc_internal.h"

/* NNG re-dials a lost peer with a back-off between these. The maximum is
 * kept well under a quorum's default 1 s deadline: calls to a peer wait,
 * queued, until it is connected, so with a 2 s back-off a replica that had
 * just restarted (and that gossip already called alive) still failed R=N
 * reads for up to 2 s (tests/integration/test_cluster_restart.py). A
 * refused connect on a LAN costs one SYN; four a second per dead peer is
 * nothing. */
#define RECONNECT_MIN_MS 50
#define RECONNECT_MAX_MS 250

/* Coalescing (above). With 2, a peer gets two calls at once before any
 * waits, so a lone caller and a caller with one fan-out never queue.
 * 32 calls or 256 KiB bound a batch, and with it what one lost or slow
 * peer can hold back; a frame over 256 KiB always goes alone (so a batch
 * stays far under any peer's max_frame_bytes). */
#define BATCH_THRESHOLD 2u
#define BATCH_MAX_CALLS 32u
#define BATCH_MAX_BYTES (256u << 10)
/* A batch waits for its latest member's deadline, so a queue is cut into
 * batches whose deadlines lie within this of each other: a member whose
 * peer stopped answering hears RK_ETIMEDOUT at most this late. A write's
 * first attempt has a shorter deadline than the calls around it, and its
 * failover to the next replica must not wait for theirs. */
#define BATCH_DEADLINE_SLACK_MS 50u

typedef struct peer peer;
typedef struct call call;

typedef enum call_state { CALL_QUEUED, CALL_SEND, CALL_RECV, CALL_HELD } call_state;

/* What a held call does when its failpoint timer is due. */
typedef enum call_hold {
    HOLD_SEND,  /* send held: the request or batch */
    HOLD_REPLY, /* end with held: the reply */
    HOLD_END,   /* end with held_err */
} call_hold;

struct call {
    rpc_client *client;
    peer *peer;
    nng_ctx ctx;
    nng_aio *aio;
    call *next_free;
    call *next_all;
    /* the call in flight */
    call_state state;
    uint64_t call_id;
    uint64_t deadline_ms;
    const ProtobufCMethodDescriptor *method;
    rpc_reply_cb reply_cb;
    void *arg;
    nng_msg *frame; /* QUEUED: the sealed request, until it is sent */
    call *next;     /* in the peer's queue, then in the carrier's batch */
    /* the carrier of a batch: its calls, this one first (NULL: alone) */
    call *members;
    size_t n_members;
    uint64_t wait_until; /* the send and receive deadline: own or the batch's latest */
    /* a member: its outcome while the carrier sorts the batch reply */
    bool answered;
    rk_err result;
    ProtobufCMessage *reply;
    /* CALL_HELD by a failpoint (client.c's head) */
    failpoint_timer timer;
    call_hold hold;
    nng_msg *held;
    rk_err held_err;
};

struct peer {
    char *url;
    nng_socket sock;
    call *free_calls; /* under client->mu */
    call *all_calls;  /* under client->mu */
    /* under client->mu: calls on the wire (alone or in batches), and the
     * queue of calls waiting to go out as a batch */
    size_t sent;
    call *q_head, *q_tail;
    size_t q_calls, q_bytes;
    peer *next;
};

struct rpc_client {
    rpc_options opts;
    frame_key key;
    pthread_mutex_t mu; /* guards peers, the slot lists, inflight, closing */
    pthread_cond_t idle_cv;
    peer *peers;
    size_t inflight;
    _Atomic bool closing; /* written under mu; read without it in call_cb */
    rpc_gate gate;        /* every NNG operation starts through it */
    _Atomic uint64_t next_call_id;
    /* coalescing, fixed at open (rpc_client_set_batching for tests) */
    size_t batch_threshold, batch_max_calls, batch_max_bytes;
    uint64_t batch_slack_ms;
    struct {
        _Atomic uint64_t calls, ok, errors, timeouts, failures, bad_replies, batches, batched_calls;
    } stats;
};

#define COUNT(c, field) atomic_fetch_add_explicit(&(c)->stats.field, 1, memory_order_relaxed)

/* ---- peers and slots ----------------------------------------------------- */

static void peer_free(peer *p)
{
    if (p == NULL)
        return;
    if (nng_socket_id(p->sock) > 0)
        nng_close(p->sock);
    for (call *s = p->all_calls, *next; s != NULL; s = next) {
        next = s->next_all;
        nng_aio_free(s->aio); /* waits for a call_cb still returning */
        free(s);
    }
    free(p->url);
    free(p);
}

/* A REQ socket dialing url in the background. Free with peer_free. */
static rk_err peer_open(const rpc_client *c, const char *url, peer **out)
{
    peer *p = calloc(1, sizeof *p);
    if (p == NULL)
        return RK_ENOMEM;
    p->sock = (nng_socket)NNG_SOCKET_INITIALIZER;
    if ((p->url = strdup(url)) == NULL) {
        free(p);
        return RK_ENOMEM;
    }
    int rv = nng_req0_open(&p->sock);
    if (rv == 0)
        rv = nng_socket_set_ms(p->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    if (rv == 0)
        rv = nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, c->opts.max_frame_bytes);
    if (rv == 0)
        rv = nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, RECONNECT_MIN_MS);
    if (rv == 0)
        rv = nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, RECONNECT_MAX_MS);
    /* NONBLOCK: the first connect happens in the background too, so a peer
     * that is down neither blocks us nor fails the dial; NNG keeps retrying. */
    if (rv == 0)
        rv = nng_dial(p->sock, url, NULL, NNG_FLAG_NONBLOCK);
    if (rv != 0) {
        RK_WARN("rpc", "cannot dial %s: %s", url, nng_strerror(rv));
        peer_free(p);
        return rpc_from_nng(rv, "dial");
    }
    *out = p;
    return RK_OK;
}

static peer *find_peer(const rpc_client *c, const char *url)
{
    for (peer *p = c->peers; p != NULL; p = p->next)
        if (strcmp(p->url, url) == 0)
            return p;
    return NULL;
}

static void call_cb(void *arg);

/* A new slot of peer p. Called under c->mu: nothing here waits on the
 * network (a context and an aio are plain allocations). */
static rk_err slot_new(rpc_client *c, peer *p, call **out)
{
    call *s = calloc(1, sizeof *s);
    if (s == NULL)
        return RK_ENOMEM;
    s->client = c;
    s->peer = p;
    int rv = nng_aio_alloc(&s->aio, call_cb, s);
    if (rv != 0) {
        free(s);
        return rpc_from_nng(rv, "aio alloc");
    }
    if ((rv = nng_ctx_open(&s->ctx, p->sock)) != 0) {
        nng_aio_free(s->aio);
        free(s);
        return rpc_from_nng(rv, "ctx open");
    }
    s->next_all = p->all_calls;
    p->all_calls = s;
    *out = s;
    return RK_OK;
}

/* Takes an idle slot for url, making the peer and the slot if needed, and
 * counts the call in flight. */
static rk_err slot_take(rpc_client *c, const char *url, call **out)
{
    peer *fresh = NULL;
    rk_err err = RK_OK;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (atomic_load(&c->closing)) {
            err = RK_ECLOSED;
            break;
        }
        peer *p = find_peer(c, url);
        if (p == NULL && fresh != NULL) {
            p = fresh;
            fresh = NULL;
            p->next = c->peers;
            c->peers = p;
        }
        if (p == NULL) {
            /* Open the socket without the lock, then look again: another
             * thread may have made the same peer meanwhile. */
            pthread_mutex_unlock(&c->mu);
            err = peer_open(c, url, &fresh);
            pthread_mutex_lock(&c->mu);
            if (err != RK_OK)
                break;
            continue;
        }
        call *s = p->free_calls;
        if (s != NULL)
            p->free_calls = s->next_free;
        else
            err = slot_new(c, p, &s);
        if (err == RK_OK) {
            c->inflight++;
            *out = s;
        }
        break;
    }
    pthread_mutex_unlock(&c->mu);
    peer_free(fresh); /* lost the race, or closing */
    return err;
}

/* Gives slot s back to its peer and counts the call out. */
static void slot_release(call *s)
{
    rpc_client *c = s->client;
    pthread_mutex_lock(&c->mu);
    s->next_free = s->peer->free_calls;
    s->peer->free_calls = s;
    if (--c->inflight == 0)
        pthread_cond_broadcast(&c->idle_cv);
    pthread_mutex_unlock(&c->mu);
}

/* Ends the call on slot s: runs the callback, then gives the slot back.
 * After the slot is back another thread may reuse it at once, so nothing
 * touches s after that. */
static void finish(call *s, rk_err err, ProtobufCMessage *reply)
{
    rpc_client *c = s->client;
    if (err == RK_OK)
        COUNT(c, ok);
    else if (err == RK_ETIMEDOUT)
        COUNT(c, timeouts);
    else if (err == RK_EIO || err == RK_ECORRUPT || err == RK_ECLOSED || err == RK_ENOMEM)
        COUNT(c, failures);
    else
        COUNT(c, errors);
    s->reply_cb(err, reply, s->arg);
    slot_release(s);
}

/* Checks a decoded reply frame v for call s; returns the handler's status,
 * with *reply the output message on RK_OK, or RK_ECORRUPT (counted). */
static rk_err check_reply(call *s, const frame_view *v, ProtobufCMessage **reply)
{
    rpc_client *c = s->client;
    /* NNG matched the reply to our context by its own request id, which is
     * not sealed; the sealed call id makes sure it answers this call. */
    if (v->hdr->kind != RINGKV__FRAME_HEADER__KIND__KIND_REPLY || v->hdr->call_id != s->call_id ||
        rpc_frame_check_time(v->hdr->timestamp_ms, rk_now_ms(), c->opts.window_ms) != RK_OK)
        goto bad;
    if (v->hdr->status != RK_OK) {
        int32_t st = v->hdr->status;
        return st > 0 && st < RK_ERR_COUNT ? (rk_err)st : RK_EIO;
    }
    *reply = protobuf_c_message_unpack(s->method->output, NULL, v->payload_len, v->payload);
    if (*reply == NULL)
        goto bad;
    return RK_OK;
bad:
    COUNT(c, bad_replies);
    RK_DEBUG("rpc", "bad reply from %s", s->peer->url);
    return RK_ECORRUPT;
}

/* Opens and checks the reply frame in m for call s (check_reply). */
static rk_err read_reply(call *s, nng_msg *m, ProtobufCMessage **reply)
{
    frame_view v = {0};
    if (rpc_frame_decode(&s->client->key, nng_msg_body(m), nng_msg_len(m), &v) != RK_OK) {
        COUNT(s->client, bad_replies);
        RK_DEBUG("rpc", "bad reply from %s", s->peer->url);
        return RK_ECORRUPT;
    }
    rk_err err = check_reply(s, &v, reply);
    rpc_frame_view_fini(&v);
    return err;
}

/* Sorts the batch reply in m out to the members of carrier: each member
 * whose call id a sealed reply carries gets that reply's outcome. */
static void read_batch_reply(call *carrier, nng_msg *m)
{
    rpc_client *c = carrier->client;
    batch_span spans[RPC_BATCH_MAX_MEMBERS];
    size_t n;
    if (rpc_batch_parse(nng_msg_body(m), nng_msg_len(m), spans, RPC_BATCH_MAX_MEMBERS, &n) !=
        RK_OK) {
        COUNT(c, bad_replies);
        RK_DEBUG("rpc", "bad batch reply from %s", carrier->peer->url);
        for (call *s = carrier->members; s != NULL; s = s->next)
            s->result = RK_ECORRUPT;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        frame_view v = {0};
        if (rpc_frame_decode(&c->key, spans[i].frame, spans[i].len, &v) != RK_OK) {
            COUNT(c, bad_replies);
            continue;
        }
        call *s = carrier->members;
        while (s != NULL && (s->answered || s->call_id != v.hdr->call_id))
            s = s->next;
        if (s != NULL) {
            s->answered = true;
            s->result = check_reply(s, &v, &s->reply);
        } else {
            COUNT(c, bad_replies); /* not one of ours, or a duplicate */
        }
        rpc_frame_view_fini(&v);
    }
}

/* The batch on carrier is over: with the batch reply m (taken), or with
 * err for all. Ends every member, the carrier last (its slot is the one
 * whose callback is running). */
static void finish_batch(call *carrier, rk_err err, nng_msg *m)
{
    for (call *s = carrier->members; s != NULL; s = s->next) {
        s->answered = false;
        s->reply = NULL;
        s->result = m != NULL ? RK_EIO : err; /* no reply in the batch: RK_EIO */
    }
    if (m != NULL) {
        read_batch_reply(carrier, m);
        nng_msg_free(m);
    }
    call *s = carrier->members;
    carrier->members = NULL;
    carrier->n_members = 0;
    uint64_t now = rk_monotonic_ms();
    for (call *next; s != NULL; s = next) {
        next = s->next; /* s may be reused once finished */
        if (now >= s->deadline_ms && s->result != RK_ECLOSED) {
            /* As a call alone would have: its receive ends at its deadline. */
            rpc_reply_free(s->reply);
            s->reply = NULL;
            s->result = RK_ETIMEDOUT;
        }
        if (s != carrier)
            finish(s, s->result, s->reply);
    }
    finish(carrier, carrier->result, carrier->reply);
}

static nng_duration time_left(uint64_t deadline_ms)
{
    uint64_t now = rk_monotonic_ms();
    if (now >= deadline_ms)
        return 0;
    uint64_t left = deadline_ms - now;
    return left > INT32_MAX ? INT32_MAX : (nng_duration)left;
}

/* The error for a failed send or receive. A call cut short by
 * rpc_client_close is RK_ECLOSED whatever NNG said (a cancel, or a
 * connection reset racing with it): the closing flag decides. */
static rk_err transport_error(const call *s, int rv, const char *what)
{
    if (atomic_load(&s->client->closing) || rv == NNG_ECANCELED)
        return RK_ECLOSED;
    return rpc_from_nng(rv, what);
}

/* Calls taken from a peer's queue to be sent; those whose deadline passed
 * while they waited are set aside, to end without being sent. */
typedef struct queue {
    call *head;
    size_t n;
    call *expired;
} queue;

/* Under c->mu: takes p's queue into q and counts its calls as sent. While
 * closing, leaves it: rpc_client_close fails the queued calls itself. With
 * drop_expired, calls whose deadline passed go to q->expired, to end
 * without being sent: only on an NNG thread, since ending them runs their
 * callbacks (rpc_call_async never runs one on its caller's thread). */
static void take_queue(rpc_client *c, peer *p, queue *q, bool drop_expired)
{
    *q = (queue){0};
    if (p->q_head == NULL || atomic_load(&c->closing))
        return;
    uint64_t now = rk_monotonic_ms();
    call **tail = &q->head;
    for (call *s = p->q_head, *next; s != NULL; s = next) {
        next = s->next;
        s->next = NULL;
        if (drop_expired && now >= s->deadline_ms) {
            s->next = q->expired;
            q->expired = s;
        } else {
            *tail = s;
            tail = &s->next;
            q->n++;
        }
    }
    p->q_head = p->q_tail = NULL;
    p->q_calls = p->q_bytes = 0;
    p->sent += q->n;
}

/* Hands m (taken) to NNG on slot s; the caller is inside the gate. */
static void send_started(call *s, nng_msg *m)
{
    /* While no connection is up, the send waits in NNG's queue: its
     * timeout is the deadline. */
    nng_duration left = time_left(s->wait_until);
    s->state = CALL_SEND;
    nng_aio_set_msg(s->aio, m);
    nng_aio_set_timeout(s->aio, left > 0 ? left : 1);
    nng_ctx_send(s->ctx, s->aio);
}

static void held_cb(void *arg);

/* Holds call s on the failpoint timer for delay_us (under the gate). True:
 * held, and from now on s may end on the timer thread at any moment. False
 * (no memory for the timer): nothing changed, the caller goes on as if no
 * rule had fired. */
static bool hold(call *s, call_hold what, nng_msg *m, rk_err err, uint64_t delay_us)
{
    s->state = CALL_HELD;
    s->hold = what;
    s->held = m;
    s->held_err = err;
    if (failpoint_timer_start(&s->timer, delay_us, held_cb, s) != RK_OK) {
        s->held = NULL;
        return false;
    }
    return true;
}

/* The rpc.send failpoint for the request or batch m on slot s, inside the
 * gate. True: taken care of (held, or lost: m is freed); false: send it. */
static bool hold_send(call *s, nng_msg *m)
{
    failpoint_peer peer = {.addr = s->peer->url};
    failpoint_action a = failpoint_eval(FAILPOINT_RPC_SEND, &peer);
    uint64_t left_us = rpc_us_until(s->wait_until);
    switch (a.kind) {
    case FAILPOINT_NONE: return false;
    case FAILPOINT_DELAY:
        if (a.delay_us < left_us)
            return hold(s, HOLD_SEND, m, RK_OK, a.delay_us);
        /* It would arrive after the caller gave up: as good as lost. */
        /* fallthrough */
    case FAILPOINT_DROP:
        if (!hold(s, HOLD_END, NULL, RK_ETIMEDOUT, left_us))
            return false;
        nng_msg_free(m);
        return true;
    case FAILPOINT_FAIL:
        /* On the timer thread, not here: this may be rpc_call_async's
         * caller, whose callback must never run on its own thread. */
        if (!hold(s, HOLD_END, NULL, RK_EIO, 0))
            return false;
        nng_msg_free(m);
        return true;
    }
    return false;
}

/* Starts sending m (taken on true) on slot s, or holds it as a failpoint
 * says. False: the client is closing, nothing started, m is still the
 * caller's. */
static bool start_send(call *s, nng_msg *m)
{
    rpc_client *c = s->client;
    if (!rpc_gate_enter(&c->gate))
        return false;
    if (!failpoint_armed(FAILPOINT_RPC_SEND) || !hold_send(s, m))
        send_started(s, m);
    rpc_gate_exit(&c->gate);
    return true;
}

/* Gives the n calls of list, which could not be sent because the client
 * is closing, back to p's queue, where rpc_client_close fails them. */
static void requeue(rpc_client *c, peer *p, call *list, size_t n)
{
    call *last = list;
    while (last->next != NULL)
        last = last->next;
    pthread_mutex_lock(&c->mu);
    p->sent -= n;
    last->next = p->q_head;
    p->q_head = list;
    if (p->q_tail == NULL)
        p->q_tail = last;
    p->q_calls += n;
    pthread_cond_broadcast(&c->idle_cv);
    pthread_mutex_unlock(&c->mu);
}

/* Sends the n calls of list (counted as sent), without c->mu: one as a
 * call alone, several as one batch carried by the first (or each alone if
 * the batch cannot be allocated). Calls that cannot be sent (closing) go
 * back to the queue for close. */
static void send_group(rpc_client *c, peer *p, queue *q)
{
    call *carrier = q->head;
    nng_msg *m = NULL;
    size_t bytes = 0;
    uint64_t latest = 0;
    for (call *s = q->head; s != NULL; s = s->next) {
        bytes += nng_msg_len(s->frame);
        if (s->deadline_ms > latest)
            latest = s->deadline_ms;
    }
    if (q->n > 1 && nng_msg_alloc(&m, rpc_batch_bytes(q->n, bytes)) == 0) {
        uint8_t *at = rpc_batch_begin(nng_msg_body(m), (uint32_t)q->n);
        /* The member frames go now: once the batch is sent its reply may
         * end the members and their slots be reused before we return. */
        for (call *s = q->head; s != NULL; s = s->next) {
            at = rpc_batch_add(at, nng_msg_body(s->frame), nng_msg_len(s->frame));
            nng_msg_free(s->frame);
            s->frame = NULL;
        }
        carrier->members = q->head;
        carrier->n_members = q->n;
        carrier->wait_until = latest;
        /* counted first: once sent, the batch may end before we return */
        COUNT(c, batches);
        atomic_fetch_add_explicit(&c->stats.batched_calls, q->n, memory_order_relaxed);
        if (!start_send(carrier, m)) {
            atomic_fetch_sub_explicit(&c->stats.batches, 1, memory_order_relaxed);
            atomic_fetch_sub_explicit(&c->stats.batched_calls, q->n, memory_order_relaxed);
            nng_msg_free(m);
            carrier->members = NULL;
            carrier->n_members = 0;
            requeue(c, p, q->head, q->n);
        }
        return;
    }
    /* One call (a batch of one is a plain frame), or no memory for the
     * batch: each goes alone on its own slot. */
    size_t left = q->n;
    for (call *s = q->head, *next; s != NULL; s = next, left--) {
        next = s->next;
        s->next = NULL;
        s->members = NULL;
        s->n_members = 0;
        s->wait_until = s->deadline_ms;
        m = s->frame;
        s->frame = NULL;
        if (!start_send(s, m)) {
            s->frame = m;
            s->next = next;
            requeue(c, p, s, left);
            return;
        }
    }
}

/* Sends the calls of q (take_queue), without c->mu, in batches of near
 * deadlines (within batch_slack_ms). Ends q->expired here. */
static void send_queue(rpc_client *c, peer *p, queue *q)
{
    for (call *s = q->expired, *next; s != NULL; s = next) {
        next = s->next;
        nng_msg_free(s->frame);
        s->frame = NULL;
        finish(s, RK_ETIMEDOUT, NULL);
    }
    /* Sort by deadline (a queue is at most batch_max_calls long, and
     * usually in deadline order already: insertion sort). */
    call *sorted = NULL;
    for (call *s = q->head, *next; s != NULL; s = next) {
        next = s->next;
        call **at = &sorted;
        while (*at != NULL && (*at)->deadline_ms <= s->deadline_ms)
            at = &(*at)->next;
        s->next = *at;
        *at = s;
    }
    while (sorted != NULL) {
        queue g = {.head = sorted, .n = 1};
        call *last = sorted;
        while (last->next != NULL &&
               last->next->deadline_ms - sorted->deadline_ms <= c->batch_slack_ms) {
            last = last->next;
            g.n++;
        }
        sorted = last->next;
        last->next = NULL;
        send_group(c, p, &g);
    }
}

/* The call or batch on slot s is over: with a reply message m (taken), or
 * with err. Counts it off its peer, sends the calls queued behind it (this
 * completion is their moment), then ends it. */
static void end_call(call *s, rk_err err, nng_msg *m)
{
    rpc_client *c = s->client;
    queue q;
    pthread_mutex_lock(&c->mu);
    s->peer->sent -= s->n_members > 0 ? s->n_members : 1;
    take_queue(c, s->peer, &q, true);
    pthread_mutex_unlock(&c->mu);
    send_queue(c, s->peer, &q);
    if (s->n_members > 0) {
        finish_batch(s, err, m);
        return;
    }
    ProtobufCMessage *reply = NULL;
    if (m != NULL) {
        err = read_reply(s, m, &reply);
        nng_msg_free(m);
    }
    finish(s, err, reply);
}

/* Failpoint timer thread: held call s is due (client.c's head). */
static void held_cb(void *arg)
{
    call *s = arg;
    nng_msg *m = s->held;
    s->held = NULL;
    switch (s->hold) {
    case HOLD_SEND:
        if (!rpc_gate_enter(&s->client->gate)) {
            nng_msg_free(m);
            end_call(s, RK_ECLOSED, NULL);
            return;
        }
        send_started(s, m);
        rpc_gate_exit(&s->client->gate);
        return;
    case HOLD_REPLY: end_call(s, RK_OK, m); return;
    case HOLD_END: end_call(s, s->held_err, NULL); return;
    }
}

/* The rpc.recv failpoint for the reply m of slot s, on an NNG thread.
 * True: taken care of (held, lost or failed; m is the hold's or freed);
 * false: use it now. */
static bool hold_reply(call *s, nng_msg *m)
{
    failpoint_peer peer = {.addr = s->peer->url};
    failpoint_action a = failpoint_eval(FAILPOINT_RPC_RECV, &peer);
    if (a.kind == FAILPOINT_NONE)
        return false;
    if (a.kind == FAILPOINT_FAIL) {
        nng_msg_free(m);
        end_call(s, RK_EIO, NULL);
        return true;
    }
    if (!rpc_gate_enter(&s->client->gate))
        return false; /* closing: the reply is as good as any outcome */
    uint64_t left_us = rpc_us_until(s->wait_until);
    bool held;
    if (a.kind == FAILPOINT_DELAY && a.delay_us < left_us) {
        held = hold(s, HOLD_REPLY, m, RK_OK, a.delay_us);
    } else { /* dropped, or late past the deadline */
        held = hold(s, HOLD_END, NULL, RK_ETIMEDOUT, left_us);
        if (held)
            nng_msg_free(m);
    }
    rpc_gate_exit(&s->client->gate);
    return held;
}

/* NNG thread: the send or the receive of slot s finished. */
static void call_cb(void *arg)
{
    call *s = arg;
    int rv = nng_aio_result(s->aio);
    if (s->state == CALL_SEND) {
        if (rv != 0) {
            /* A failed send gives the message back. */
            nng_msg *m = nng_aio_get_msg(s->aio);
            nng_aio_set_msg(s->aio, NULL);
            if (m != NULL)
                nng_msg_free(m);
            end_call(s, transport_error(s, rv, "send"), NULL);
            return;
        }
        nng_duration left = time_left(s->wait_until);
        if (left == 0) {
            end_call(s, RK_ETIMEDOUT, NULL);
            return;
        }
        if (!rpc_gate_enter(&s->client->gate)) {
            end_call(s, RK_ECLOSED, NULL);
            return;
        }
        s->state = CALL_RECV;
        nng_aio_set_timeout(s->aio, left);
        nng_ctx_recv(s->ctx, s->aio);
        rpc_gate_exit(&s->client->gate);
        return;
    }
    if (rv != 0) {
        /* NNG_ECONNRESET: the peer went away after our request went out.
         * With resend off NNG does not send it again (it may have run). */
        end_call(s, transport_error(s, rv, "receive"), NULL);
        return;
    }
    nng_msg *m = nng_aio_get_msg(s->aio);
    nng_aio_set_msg(s->aio, NULL);
    if (failpoint_armed(FAILPOINT_RPC_RECV) && hold_reply(s, m))
        return;
    end_call(s, RK_OK, m);
}

/* ---- public ----------------------------------------------------------------- */

rk_err rpc_client_open(const rpc_options *opts, rpc_client **out)
{
    if (opts == NULL)
        return RK_EINVAL;
    rpc_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return RK_ENOMEM;
    c->opts = *opts;
    c->opts.secret = NULL;
    c->opts.secret_len = 0;
    rpc_options_fill(&c->opts);
    rk_err err = rpc_frame_key_from_options(opts, &c->key);
    if (err != RK_OK) {
        free(c);
        return err;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->idle_cv, NULL);
    /* A random start keeps call ids of a restarted client apart from the
     * ones its previous life used. */
    uint64_t first;
    randombytes_buf(&first, sizeof first);
    atomic_init(&c->next_call_id, first);
    rpc_client_set_batching(c, BATCH_THRESHOLD, BATCH_MAX_CALLS, BATCH_MAX_BYTES,
                            BATCH_DEADLINE_SLACK_MS);
    *out = c;
    return RK_OK;
}

void rpc_client_close(rpc_client *c)
{
    if (c == NULL)
        return;
    /* 1. No new calls and no new peers or slots (slot_take checks closing
     *    under mu), so the lists below are stable without the lock. */
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->closing, true);
    peer *peers = c->peers;
    c->peers = NULL;
    pthread_mutex_unlock(&c->mu);
    /* 2. Nobody starts an NNG operation any more; cancel the pending ones.
     *    Their callbacks run with RK_ECLOSED (a call between its send and
     *    its receive finds the gate closed and ends the same way). */
    rpc_gate_close(&c->gate);
    for (peer *p = peers; p != NULL; p = p->next)
        for (call *s = p->all_calls; s != NULL; s = s->next_all)
            nng_aio_cancel(s->aio);
    /*    Calls held by a failpoint were held inside the gate: all are on
     *    the timer now, or running their end there (cancel waits for it). */
    if (failpoint_enabled())
        for (peer *p = peers; p != NULL; p = p->next)
            for (call *s = p->all_calls; s != NULL; s = s->next_all)
                if (failpoint_timer_cancel(&s->timer)) {
                    if (s->held != NULL)
                        nng_msg_free(s->held);
                    s->held = NULL;
                    end_call(s, RK_ECLOSED, NULL);
                }
    /*    Queued calls have no operation to cancel: they end here. Nobody
     *    takes a queue once closing is set, but a sender that lost the
     *    race with the gate gives its calls back (requeue, which wakes
     *    us): so drain until nothing is in flight. */
    pthread_mutex_lock(&c->mu);
    while (c->inflight > 0) {
        call *q = NULL;
        for (peer *p = peers; p != NULL; p = p->next) {
            if (p->q_tail != NULL) {
                p->q_tail->next = q;
                q = p->q_head;
            }
            p->q_head = p->q_tail = NULL;
            p->q_calls = p->q_bytes = 0;
        }
        if (q == NULL) {
            pthread_cond_wait(&c->idle_cv, &c->mu);
            continue;
        }
        pthread_mutex_unlock(&c->mu);
        for (call *s = q, *next; s != NULL; s = next) {
            next = s->next;
            if (s->frame != NULL)
                nng_msg_free(s->frame);
            s->frame = NULL;
            finish(s, RK_ECLOSED, NULL);
        }
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    /* 3. Only now, with nothing in flight, close the sockets (peer_free). */
    for (peer *p = peers, *next; p != NULL; p = next) {
        next = p->next;
        peer_free(p);
    }
    rpc_frame_key_wipe(&c->key);
    pthread_cond_destroy(&c->idle_cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void rpc_client_get_stats(const rpc_client *c, rpc_client_stats *out)
{
    rpc_client *cc = (rpc_client *)c;
#define LOAD(f) out->f = atomic_load_explicit(&cc->stats.f, memory_order_relaxed)
    LOAD(calls);
    LOAD(ok);
    LOAD(errors);
    LOAD(timeouts);
    LOAD(failures);
    LOAD(bad_replies);
    LOAD(batches);
    LOAD(batched_calls);
#undef LOAD
}

void rpc_client_set_batching(rpc_client *c, size_t threshold, size_t max_calls, size_t max_bytes,
                             uint64_t slack_ms)
{
    c->batch_slack_ms = slack_ms;
    /* At least one call on the wire before any waits: a completion is what
     * sends a queue, so a queue with nothing in flight would never go. */
    c->batch_threshold = threshold > 0 ? threshold : 1;
    c->batch_max_calls = max_calls == 0                      ? 1
                         : max_calls > RPC_BATCH_MAX_MEMBERS ? RPC_BATCH_MAX_MEMBERS
                                                             : max_calls;
    /* A batch holds at most 2 x max_bytes; keep it well inside a frame. */
    size_t limit = c->opts.max_frame_bytes / 4;
    c->batch_max_bytes = max_bytes < limit ? max_bytes : limit;
}

rk_err rpc_call_async(rpc_client *c, const char *peer_addr,
                      const ProtobufCServiceDescriptor *service, const char *method,
                      const ProtobufCMessage *request, uint64_t deadline_ms, rpc_reply_cb reply_cb,
                      void *arg)
{
    if (c == NULL || reply_cb == NULL || request == NULL)
        return RK_EINVAL;
    const ProtobufCMethodDescriptor *md = rpc_find_method(service, method);
    if (md == NULL || request->descriptor != md->input)
        return RK_EINVAL;
    nng_duration left = time_left(deadline_ms);
    if (left == 0)
        return RK_ETIMEDOUT;
    char *url = rpc_url(peer_addr);
    if (url == NULL)
        return peer_addr == NULL || peer_addr[0] == '\0' ? RK_EINVAL : RK_ENOMEM;

    uint64_t call_id = atomic_fetch_add_explicit(&c->next_call_id, 1, memory_order_relaxed);
    Ringkv__FrameHeader hdr = RINGKV__FRAME_HEADER__INIT;
    hdr.kind = RINGKV__FRAME_HEADER__KIND__KIND_REQUEST;
    hdr.call_id = call_id;
    hdr.timestamp_ms = rk_now_ms();
    hdr.timeout_ms = (uint32_t)left;
    hdr.service = (char *)service->name;
    hdr.method = (char *)md->name;
    nng_msg *m;
    rk_err err =
        rpc_frame_encode(&c->key, c->opts.node_id, &hdr, request, c->opts.max_frame_bytes, &m);
    if (err != RK_OK) {
        free(url);
        return err;
    }
    call *s = NULL; /* set by slot_take; GCC -O3 cannot see it */
    err = slot_take(c, url, &s);
    free(url);
    if (err != RK_OK) {
        nng_msg_free(m);
        return err;
    }
    s->call_id = call_id;
    s->deadline_ms = deadline_ms;
    s->method = md;
    s->reply_cb = reply_cb;
    s->arg = arg;
    s->frame = NULL;
    s->next = NULL;
    s->members = NULL;
    s->n_members = 0;
    s->wait_until = deadline_ms;
    /* Alone or queued: decided, and the queue changed, under the lock;
     * anything sent is sent after it. */
    peer *p = s->peer;
    queue q = {0};
    /* Counted before it can end on another thread (taken off the queue
     * and answered); uncounted if it does not start after all. */
    COUNT(c, calls);
    pthread_mutex_lock(&c->mu);
    if (atomic_load(&c->closing)) {
        pthread_mutex_unlock(&c->mu);
        atomic_fetch_sub_explicit(&c->stats.calls, 1, memory_order_relaxed);
        slot_release(s);
        nng_msg_free(m);
        return RK_ECLOSED;
    }
    size_t len = nng_msg_len(m);
    bool alone = (p->q_head == NULL && p->sent < c->batch_threshold) || len > c->batch_max_bytes;
    if (alone) {
        p->sent++;
    } else {
        s->state = CALL_QUEUED;
        s->frame = m;
        if (p->q_tail != NULL)
            p->q_tail->next = s;
        else
            p->q_head = s;
        p->q_tail = s;
        p->q_calls++;
        p->q_bytes += len;
        if (p->q_calls >= c->batch_max_calls || p->q_bytes >= c->batch_max_bytes)
            take_queue(c, p, &q, false);
    }
    pthread_mutex_unlock(&c->mu);
    if (!alone) {
        /* Started: the queue goes out at the next completion, at the
         * latest when the calls on the wire time out. */
        send_queue(c, p, &q);
        return RK_OK;
    }
    /* From here on NNG reports every outcome through call_cb. */
    if (!start_send(s, m)) {
        /* closing began after slot_take: the call never started */
        pthread_mutex_lock(&c->mu);
        p->sent--;
        pthread_mutex_unlock(&c->mu);
        atomic_fetch_sub_explicit(&c->stats.calls, 1, memory_order_relaxed);
        slot_release(s);
        nng_msg_free(m);
        return RK_ECLOSED;
    }
    return RK_OK;
}

/* ---- blocking convenience ----------------------------------------------------- */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    rk_err err;
    ProtobufCMessage *reply;
} waiter;

static void wake_cb(rk_err err, ProtobufCMessage *reply, void *arg)
{
    waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->err = err;
    w->reply = reply;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

rk_err rpc_call(rpc_client *c, const char *peer_addr, const ProtobufCServiceDescriptor *service,
                const char *method, const ProtobufCMessage *request, uint64_t deadline_ms,
                ProtobufCMessage **reply)
{
    waiter w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    rk_err err = rpc_call_async(c, peer_addr, service, method, request, deadline_ms, wake_cb, &w);
    if (err == RK_OK) {
        /* No timed wait needed: the aio timeout guarantees the callback. */
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        err = w.err;
        if (err == RK_OK)
            *reply = w.reply;
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return err;
}
