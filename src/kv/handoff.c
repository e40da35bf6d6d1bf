/* handoff.c - hands held hints to the replicas they were meant for.
 *
 * One thread per node. Every handoff_interval_ms it lists the nodes this
 * node holds hints for (one seek per node), and for each one the current
 * view says is alive it sends the hints in ring order, a batch at a time,
 * all calls of a batch in flight at once. A hint is deleted only after its
 * replica acknowledged it, and only if it did not change meanwhile (a newer
 * write merged into it is sent next round). A replica that refuses or does
 * not answer keeps its hints until a later round. */
#include <stdlib.h>
#include <string.h>

#include "kv_internal.h"
#include "ringkv.pb-c.h"

#define HANDOFF_BATCH 64
#define HANDOFF_MAX_TARGETS 256
#define HANDOFF_CALL_TIMEOUT_MS 2000

/* One hint of a batch, copied out of the scan. */
typedef struct handoff_item {
    rk_buf dbkey;
    rk_buf value;
    rk_err result;
} handoff_item;

typedef struct handoff_batch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t pending;
    handoff_item items[HANDOFF_BATCH];
    size_t count;
} handoff_batch;

typedef struct handoff_call {
    handoff_batch *batch;
    size_t index;
} handoff_call;

static bool collect_cb(void *arg, const char *dbkey, size_t dbkey_len, const char *val,
                       size_t val_len)
{
    handoff_batch *b = arg;
    handoff_item *it = &b->items[b->count];
    if (rk_buf_append(&it->dbkey, dbkey, dbkey_len) != RK_OK ||
        rk_buf_append(&it->value, val, val_len) != RK_OK) {
        rk_buf_free(&it->dbkey);
        rk_buf_free(&it->value);
        return false;
    }
    b->count++;
    return b->count < HANDOFF_BATCH;
}

static void hint_reply_cb(rk_err err, ProtobufCMessage *reply, void *arg)
{
    handoff_call *call = arg;
    handoff_batch *b = call->batch;
    rpc_reply_free(reply);
    pthread_mutex_lock(&b->mu);
    b->items[call->index].result = err;
    if (--b->pending == 0)
        pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Starts the call for item i; on failure to start, records the error. */
static void send_item(kv *k, const char *addr, uint64_t intended, handoff_batch *b,
                      handoff_call *call, size_t i)
{
    handoff_item *it = &b->items[i];
    uint64_t pos;
    const char *table, *key;
    size_t table_len, key_len;
    char table_z[KV_TABLE_MAX + 1];
    rk_err err = store_data_key_parse(it->dbkey.data, it->dbkey.len, &pos, &table, &table_len,
                                      &key, &key_len);
    if (err == RK_OK && table_len > KV_TABLE_MAX)
        err = RK_ECORRUPT;
    if (err == RK_OK) {
        memcpy(table_z, table, table_len);
        table_z[table_len] = '\0';
        Ringkv__HintRequest msg = RINGKV__HINT_REQUEST__INIT;
        msg.intended = intended;
        msg.table = table_z;
        msg.key.data = (uint8_t *)key;
        msg.key.len = key_len;
        msg.object.data = (uint8_t *)it->value.data;
        msg.object.len = it->value.len;
        *call = (handoff_call){b, i};
        err = rpc_call_async(k->client, addr, &ringkv__handoff__descriptor, "Hint", &msg.base,
                             rk_deadline_after_ms(HANDOFF_CALL_TIMEOUT_MS), hint_reply_cb, call);
    }
    if (err != RK_OK) {
        pthread_mutex_lock(&b->mu);
        it->result = err;
        b->pending--;
        pthread_mutex_unlock(&b->mu);
    }
}

/* Sends one batch and waits for every answer. Returns how many were
 * acknowledged; *all_ok says whether every one was. */
static size_t send_batch(kv *k, const char *addr, uint64_t intended, handoff_batch *b,
                         bool *all_ok)
{
    handoff_call calls[HANDOFF_BATCH];
    b->pending = b->count;
    for (size_t i = 0; i < b->count; i++)
        send_item(k, addr, intended, b, &calls[i], i);
    pthread_mutex_lock(&b->mu);
    while (b->pending > 0)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    size_t delivered = 0;
    *all_ok = true;
    for (size_t i = 0; i < b->count; i++) {
        handoff_item *it = &b->items[i];
        if (it->result != RK_OK) {
            *all_ok = false;
            continue;
        }
        delivered++;
        /* RK_EPRECOND: a newer write merged into the hint after it was
         * read; it stays and goes out next round. */
        replica_hint_remove_if(k->rp, intended, it->dbkey.data, it->dbkey.len, it->value.data,
                             it->value.len);
    }
    return delivered;
}

static void batch_clear(handoff_batch *b)
{
    for (size_t i = 0; i < b->count; i++) {
        rk_buf_free(&b->items[i].dbkey);
        rk_buf_free(&b->items[i].value);
        b->items[i].result = RK_OK;
    }
    b->count = 0;
}

/* Hands every hint held for member m to it, until one is refused. */
static void deliver_to(kv *k, const cluster_view_member *m)
{
    handoff_batch b = {0};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    rk_buf after = {0};
    size_t delivered = 0;
    rk_err failure = RK_OK;
    for (;;) {
        rk_err err = replica_hint_scan(k->rp, m->id, after.data, after.len, collect_cb, &b);
        if (err != RK_OK || b.count == 0) {
            failure = err;
            break;
        }
        bool all_ok;
        delivered += send_batch(k, m->rpc_addr, m->id, &b, &all_ok);
        if (!all_ok) {
            for (size_t i = 0; i < b.count && failure == RK_OK; i++)
                failure = b.items[i].result;
            break;
        }
        after.len = 0;
        rk_buf_append(&after, b.items[b.count - 1].dbkey.data, b.items[b.count - 1].dbkey.len);
        batch_clear(&b);
    }
    batch_clear(&b);
    rk_buf_free(&after);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
    if (delivered > 0) {
        atomic_fetch_add_explicit(&k->hints_delivered, delivered, memory_order_relaxed);
        RK_INFO("handoff", "handed %zu held writes to %s (%s)", delivered, m->name, m->rpc_addr);
    }
    if (failure != RK_OK)
        RK_DEBUG("handoff", "%s did not take its hints yet: %s", m->name, rk_strerror(failure));
}

static void handoff_round(kv *k)
{
    uint64_t ids[HANDOFF_MAX_TARGETS];
    size_t n = replica_hint_targets(k->rp, ids, HANDOFF_MAX_TARGETS);
    if (n == 0)
        return;
    if (n > HANDOFF_MAX_TARGETS)
        n = HANDOFF_MAX_TARGETS; /* the rest next round */
    cluster_view *view = cluster_node_view(k->cn);
    for (size_t i = 0; i < n; i++) {
        const cluster_view_member *m = cluster_view_find(view, ids[i]);
        if (ids[i] == k->node_id || m == NULL || m->status == CLUSTER_REMOVED ||
            !cluster_view_alive(view, ids[i]))
            continue;
        deliver_to(k, m);
    }
    cluster_view_unref(view);
}

static void *handoff_main(void *arg)
{
    kv *k = arg;
    pthread_mutex_lock(&k->handoff_mu);
    while (!k->stopping) {
        rk_cond_wait_until(&k->handoff_cv, &k->handoff_mu,
                           rk_monotonic_ms() + k->cfg.handoff_interval_ms);
        if (k->stopping)
            break;
        pthread_mutex_unlock(&k->handoff_mu);
        handoff_round(k);
        pthread_mutex_lock(&k->handoff_mu);
    }
    pthread_mutex_unlock(&k->handoff_mu);
    return NULL;
}

rk_err handoff_start(kv *k)
{
    if (!k->cfg.handoff) {
        RK_INFO("handoff", "hinted handoff is off: hints are neither taken nor handed over");
        return RK_OK;
    }
    if (pthread_create(&k->handoff_thread, NULL, handoff_main, k) != 0)
        return RK_ENOMEM;
    k->handoff_running = true;
    return RK_OK;
}

void handoff_stop(kv *k)
{
    if (!k->handoff_running)
        return;
    pthread_mutex_lock(&k->handoff_mu);
    k->stopping = true;
    pthread_cond_signal(&k->handoff_cv);
    pthread_mutex_unlock(&k->handoff_mu);
    pthread_join(k->handoff_thread, NULL);
    k->handoff_running = false;
}
