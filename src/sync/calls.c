/* calls.c - what the sync parts send to peers: every call goes through
 * one token bucket, so handoff, anti-entropy and hints together stay under
 * rate_bytes_per_sec, and is counted for /metrics. */
#include <stdlib.h>
#include <string.h>

#include "sync_internal.h"

bool sync_stopping(sync_service *s)
{
    pthread_mutex_lock(&s->mu);
    bool stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stopping;
}

void sync_rate_wait(sync_service *s, size_t bytes)
{
    double rate = (double)s->cfg.rate_bytes_per_sec;
    if (rate <= 0)
        return;
    /* A burst of up to a quarter second of sending, so one batch larger
     * than that still goes, after its wait. */
    double burst = rate / 4 > SYNC_BATCH_BYTES ? rate / 4 : SYNC_BATCH_BYTES;
    for (;;) {
        pthread_mutex_lock(&s->rate_mu);
        uint64_t now = rk_monotonic_ms();
        s->tokens += (double)(now - s->rate_last_ms) * rate / 1000.0;
        if (s->tokens > burst)
            s->tokens = burst;
        s->rate_last_ms = now;
        double lack = (double)bytes - s->tokens;
        if (lack <= 0 || s->tokens >= burst) {
            s->tokens -= (double)bytes;
            pthread_mutex_unlock(&s->rate_mu);
            return;
        }
        pthread_mutex_unlock(&s->rate_mu);
        if (sync_stopping(s))
            return;
        uint64_t wait_ms = (uint64_t)(lack * 1000.0 / rate) + 1;
        rk_sleep_ms(wait_ms > 100 ? 100 : (uint32_t)wait_ms);
    }
}

/* One sync call in flight, shared by the thread waiting for it and the
 * reply callback (an NNG thread); whichever lets go last frees it. While a
 * thread waits, the call is on s->waits, so sync_stop can wake it. */
typedef struct sync_wait {
    struct sync_wait *prev, *next; /* in s->waits, under s->mu */
    pthread_mutex_t mu;            /* guards the fields below */
    pthread_cond_t cv;
    unsigned refs;
    bool done, abandoned;
    rk_err err;
    ProtobufCMessage *reply;
} sync_wait;

static void wait_release(sync_wait *w)
{
    pthread_mutex_lock(&w->mu);
    bool last = --w->refs == 0;
    pthread_mutex_unlock(&w->mu);
    if (!last)
        return;
    rpc_reply_free(w->reply); /* a reply nobody took: the call was abandoned */
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static void reply_cb(rk_err err, ProtobufCMessage *reply, void *arg)
{
    sync_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->err = err;
    w->reply = reply;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    wait_release(w);
}

void sync_abandon_calls(sync_service *s)
{
    for (sync_wait *w = s->waits; w != NULL; w = w->next) {
        pthread_mutex_lock(&w->mu);
        w->abandoned = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
}

size_t sync_calls_waiting(sync_service *s)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (const sync_wait *w = s->waits; w != NULL; w = w->next)
        n++;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Puts w on s->waits; false (w not listed) when the service is stopping. */
static bool wait_list(sync_service *s, sync_wait *w)
{
    pthread_mutex_lock(&s->mu);
    bool stopping = s->stopping;
    if (!stopping) {
        w->next = s->waits;
        if (s->waits != NULL)
            s->waits->prev = w;
        s->waits = w;
    }
    pthread_mutex_unlock(&s->mu);
    return !stopping;
}

static void wait_unlist(sync_service *s, sync_wait *w)
{
    pthread_mutex_lock(&s->mu);
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        s->waits = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&s->mu);
}

/* Starts the call and waits for its reply or for sync_stop. */
static rk_err call_and_wait(sync_service *s, const char *addr, const char *method,
                            const ProtobufCMessage *in, ProtobufCMessage **reply)
{
    sync_wait *w = calloc(1, sizeof *w);
    if (w == NULL)
        return RK_ENOMEM;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->refs = 2; /* this thread and the callback */
    if (!wait_list(s, w)) {
        w->refs = 1;
        wait_release(w);
        return RK_ECLOSED;
    }
    rk_err err = rpc_call_async(s->client, addr, &ringkv__sync__descriptor, method, in,
                                rk_deadline_after_ms(SYNC_CALL_TIMEOUT_MS), reply_cb, w);
    if (err != RK_OK) {
        w->refs = 1; /* the callback never runs */
    } else {
        pthread_mutex_lock(&w->mu);
        while (!w->done && !w->abandoned)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->done) {
            err = w->err;
            *reply = w->reply;
            w->reply = NULL;
        } else {
            err = RK_ECLOSED; /* the callback frees the reply when it comes */
        }
        pthread_mutex_unlock(&w->mu);
    }
    wait_unlist(s, w);
    wait_release(w);
    return err;
}

rk_err sync_call(sync_service *s, const sync_rings *r, uint64_t peer, const char *method,
                 const ProtobufCMessage *in, ProtobufCMessage **reply, _Atomic uint64_t *sent)
{
    const cluster_view_member *m = cluster_view_find(r->view, peer);
    if (m == NULL)
        return RK_EINVAL;
    size_t bytes = protobuf_c_message_get_packed_size(in);
    sync_rate_wait(s, bytes);
    rk_err err = call_and_wait(s, m->rpc_addr, method, in, reply);
    if (sent != NULL && err != RK_ECLOSED)
        atomic_fetch_add_explicit(sent, bytes, memory_order_relaxed);
    if (err == RK_OK)
        atomic_fetch_add_explicit(&s->bytes_received, protobuf_c_message_get_packed_size(*reply),
                                  memory_order_relaxed);
    return err;
}

rk_err sync_call_digests(sync_service *s, const sync_rings *r, uint64_t peer,
                         const Ringkv__SyncRange *ranges, size_t n, bool shared_only,
                         const ProtobufCBinaryData *keys, size_t n_keys,
                         Ringkv__SyncDigestsReply **out, _Atomic uint64_t *sent)
{
    Ringkv__SyncRings rings;
    sync_rings_to_pb(s, r, &rings);
    Ringkv__SyncDigestsRequest req = RINGKV__SYNC_DIGESTS_REQUEST__INIT;
    Ringkv__SyncRange **rp = calloc(n + 1, sizeof *rp);
    if (rp == NULL)
        return RK_ENOMEM;
    for (size_t i = 0; i < n; i++)
        rp[i] = (Ringkv__SyncRange *)&ranges[i];
    req.rings = &rings;
    req.n_ranges = n;
    req.ranges = rp;
    req.shared_only = shared_only;
    req.n_dbkeys = n_keys;
    req.dbkeys = (ProtobufCBinaryData *)keys;
    ProtobufCMessage *reply = NULL;
    rk_err err = sync_call(s, r, peer, "Digests", &req.base, &reply, sent);
    free(rp);
    if (err == RK_OK)
        *out = (Ringkv__SyncDigestsReply *)reply;
    return err;
}

/* Sends records idx[0..count) of rs (idx NULL: the first count) as one
 * Push; hints_for 0 for replicas, else the peer the records are hints for. */
static rk_err push_batch(sync_service *s, const sync_rings *r, uint64_t peer,
                         const sync_records *rs, const size_t *idx, size_t count,
                         uint64_t hints_for, _Atomic uint64_t *sent, uint64_t *changed)
{
    Ringkv__SyncRecord *recs = calloc(count, sizeof *recs);
    Ringkv__SyncRecord **ptrs = calloc(count, sizeof *ptrs);
    if (recs == NULL || ptrs == NULL) {
        free(recs);
        free(ptrs);
        return RK_ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        size_t at = idx != NULL ? idx[i] : i;
        const sync_record *it = &rs->items[at];
        ringkv__sync_record__init(&recs[i]);
        recs[i].dbkey.data = (uint8_t *)sync_record_key(rs, at);
        recs[i].dbkey.len = it->key_len;
        recs[i].object.data = (uint8_t *)sync_record_value(rs, at);
        recs[i].object.len = it->val_len;
        ptrs[i] = &recs[i];
    }
    Ringkv__SyncRings rings;
    sync_rings_to_pb(s, r, &rings);
    Ringkv__SyncPushRequest req = RINGKV__SYNC_PUSH_REQUEST__INIT;
    req.rings = &rings;
    req.n_records = count;
    req.records = ptrs;
    req.hints_for = hints_for;
    ProtobufCMessage *reply = NULL;
    rk_err err = sync_call(s, r, peer, "Push", &req.base, &reply, sent);
    if (err == RK_OK && changed != NULL)
        *changed += ((Ringkv__SyncPushReply *)reply)->changed;
    rpc_reply_free(reply);
    free(recs);
    free(ptrs);
    return err;
}

rk_err sync_push(sync_service *s, const sync_rings *r, uint64_t peer, const sync_records *rs,
                 const size_t *idx, size_t n, _Atomic uint64_t *sent, uint64_t *changed)
{
    size_t first = 0;
    while (first < n) {
        size_t last = first, bytes = 0;
        while (last < n && last - first < SYNC_BATCH_RECORDS &&
               (bytes == 0 || bytes + rs->items[idx[last]].val_len < SYNC_BATCH_BYTES)) {
            bytes += rs->items[idx[last]].key_len + rs->items[idx[last]].val_len;
            last++;
        }
        rk_err err = push_batch(s, r, peer, rs, idx + first, last - first, 0, sent, changed);
        if (err != RK_OK)
            return err;
        first = last;
    }
    return RK_OK;
}

rk_err sync_push_hints(sync_service *s, const sync_rings *r, uint64_t peer, const sync_records *rs)
{
    return push_batch(s, r, peer, rs, NULL, rs->count, peer, &s->hint_bytes_sent, NULL);
}
