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

#include "frame.h"

/* NNG re-dials a lost peer with a back-off between these. The maximum is
 * kept well under a quorum's default 1 s deadline: calls to a peer wait,
 * queued, until it is connected, so with a 2 s back-off a replica that had
 * just restarted (and that gossip already called alive) still failed R=N
 * reads for up to 2 s (tests/integration/test_cluster_restart.py). A
 * refused connect on a LAN costs one SYN; four a second per dead peer is
 * nothing. */
#define RECONNECT_MIN_MS 50
#define RECONNECT_MAX_MS 250

typedef struct peer peer;
typedef struct call call;

typedef enum call_state { CALL_SEND, CALL_RECV } call_state;

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
};

struct peer {
    char *url;
    nng_socket sock;
    call *free_calls; /* under client->mu */
    call *all_calls;  /* under client->mu */
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
    struct {
        _Atomic uint64_t calls, ok, errors, timeouts, failures, bad_replies;
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

/* Opens and checks a reply frame; on RK_OK *reply is the output message (or
 * NULL with the handler's status returned). */
static rk_err read_reply(call *s, nng_msg *m, ProtobufCMessage **reply)
{
    rpc_client *c = s->client;
    frame_view v = {0};
    rk_err err = rpc_frame_decode(&c->key, nng_msg_body(m), nng_msg_len(m), &v);
    if (err != RK_OK)
        goto bad;
    /* NNG matched the reply to our context by its own request id, which is
     * not sealed; the sealed call id makes sure it answers this call. */
    if (v.hdr->kind != RINGKV__FRAME_HEADER__KIND__KIND_REPLY || v.hdr->call_id != s->call_id ||
        rpc_frame_check_time(v.hdr->timestamp_ms, rk_now_ms(), c->opts.window_ms) != RK_OK)
        goto bad;
    if (v.hdr->status != RK_OK) {
        int32_t st = v.hdr->status;
        rpc_frame_view_fini(&v);
        return st > 0 && st < RK_ERR_COUNT ? (rk_err)st : RK_EIO;
    }
    *reply = protobuf_c_message_unpack(s->method->output, NULL, v.payload_len, v.payload);
    rpc_frame_view_fini(&v);
    if (*reply == NULL)
        goto bad;
    return RK_OK;
bad:
    rpc_frame_view_fini(&v);
    COUNT(c, bad_replies);
    RK_DEBUG("rpc", "bad reply from %s", s->peer->url);
    return RK_ECORRUPT;
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
            finish(s, transport_error(s, rv, "send"), NULL);
            return;
        }
        nng_duration left = time_left(s->deadline_ms);
        if (left == 0) {
            finish(s, RK_ETIMEDOUT, NULL);
            return;
        }
        if (!rpc_gate_enter(&s->client->gate)) {
            finish(s, RK_ECLOSED, NULL);
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
        finish(s, transport_error(s, rv, "receive"), NULL);
        return;
    }
    nng_msg *m = nng_aio_get_msg(s->aio);
    nng_aio_set_msg(s->aio, NULL);
    ProtobufCMessage *reply = NULL;
    rk_err err = read_reply(s, m, &reply);
    nng_msg_free(m);
    finish(s, err, reply);
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
    pthread_mutex_lock(&c->mu);
    while (c->inflight > 0)
        pthread_cond_wait(&c->idle_cv, &c->mu);
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
#undef LOAD
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
    call *s;
    err = slot_take(c, url, &s);
    free(url);
    if (err != RK_OK) {
        nng_msg_free(m);
        return err;
    }
    s->state = CALL_SEND;
    s->call_id = call_id;
    s->deadline_ms = deadline_ms;
    s->method = md;
    s->reply_cb = reply_cb;
    s->arg = arg;
    /* From here on NNG reports every outcome through call_cb. While no
     * connection is up, the send waits in the queue: its timeout is the
     * deadline. */
    if (!rpc_gate_enter(&c->gate)) {
        /* closing began after slot_take: the call never started */
        slot_release(s);
        nng_msg_free(m);
        return RK_ECLOSED;
    }
    COUNT(c, calls);
    left = time_left(deadline_ms);
    nng_aio_set_msg(s->aio, m);
    nng_aio_set_timeout(s->aio, left > 0 ? left : 1);
    nng_ctx_send(s->ctx, s->aio);
    rpc_gate_exit(&c->gate);
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
