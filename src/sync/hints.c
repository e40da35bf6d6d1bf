/* hints.c - hint delivery: the writes this node holds for replicas that
 * missed them go to those replicas once they are alive again.
 *
 * The coordinator (kv) stores a hint when a write is finished and a
 * replica did not ack it (replica_merge with the intended node). This pass,
 * run by the sync thread every hint_interval_ms, hands them over through
 * the sync service's own calls: the same token bucket as range handoff and
 * anti-entropy, one batch in flight, counted in its metrics.
 *
 * One hint's life:
 *
 *     (stored by kv) --> HELD --(batch acked)--> deleted
 *                         ^  |
 *                         |  +--(merged into after it was read)--+
 *                         |                                     |
 *                         +------ kept, sent again next pass <---+
 *
 * | transition          | where                                             |
 * |---------------------|---------------------------------------------------|
 * | stored              | coord.c store_hints: replica_merge(intended)      |
 * | sent                | deliver_to: replica_hint_scan, sync_push_hints    |
 * | deleted             | deliver_to: replica_hint_remove_if, after the ack |
 * | kept (changed)      | replica_hint_remove_if says RK_EPRECOND           |
 * | kept (refused, no   | the batch failed: the node is down, was restarted |
 * |  answer)            | with --handoff off (RK_EUNSUPPORTED), or busy     |
 * | dropped by operator | replica_hint_drop (POST /cluster/hints/drop)      |
 *
 * Nothing is remembered between passes but the hints themselves: a pass
 * that stops half way (a refusal, a crash) starts from the first hint
 * again next time, and a merge of a hint the replica already has changes
 * nothing there. */
#include <stdlib.h>
#include <string.h>

#include "sync_internal.h"

/* Nodes looked at per pass; the others wait for the next one. */
#define HINT_TARGETS_MAX 256u

typedef struct batch_ctx {
    sync_records *rs;
    size_t bytes;
    rk_err err;
} batch_ctx;

/* Takes hints until the batch is full (SYNC_BATCH_RECORDS or
 * SYNC_BATCH_BYTES; one hint larger than that goes alone). */
static bool collect_cb(void *arg, const char *dbkey, size_t dbkey_len, const char *val,
                       size_t val_len)
{
    batch_ctx *c = arg;
    c->err = sync_records_add(c->rs, dbkey, dbkey_len, val, val_len);
    c->bytes += dbkey_len + val_len;
    return c->err == RK_OK && c->rs->count < SYNC_BATCH_RECORDS && c->bytes < SYNC_BATCH_BYTES;
}

/* Hands every hint held for m to it, batch after batch, until they are
 * all acked or one batch fails. *delivered gets how many were acked. */
static rk_err deliver_to(sync_service *s, const sync_rings *r, const cluster_view_member *m,
                         uint64_t *delivered)
{
    sync_records batch = {0};
    rk_buf after = {0};
    rk_err err;
    for (;;) {
        sync_records_reset(&batch);
        batch_ctx c = {&batch, 0, RK_OK};
        err = replica_hint_scan(s->rp, m->id, after.data, after.len, collect_cb, &c);
        if (err == RK_OK)
            err = c.err;
        if (err != RK_OK || batch.count == 0)
            break;
        err = sync_push_hints(s, r, m->id, &batch);
        if (err != RK_OK)
            break;
        *delivered += batch.count;
        for (size_t i = 0; i < batch.count; i++)
            /* RK_EPRECOND: a newer write merged into the hint after it was
             * read; it stays and goes out next pass. RK_ENOTFOUND: an
             * operator dropped it meanwhile. */
            (void)replica_hint_remove_if(s->rp, m->id, sync_record_key(&batch, i),
                                         batch.items[i].key_len, sync_record_value(&batch, i),
                                         batch.items[i].val_len);
        size_t last = batch.count - 1;
        rk_buf_reset(&after);
        err = rk_buf_append(&after, sync_record_key(&batch, last), batch.items[last].key_len);
        if (err != RK_OK)
            break;
    }
    sync_records_free(&batch);
    rk_buf_free(&after);
    return err;
}

rk_err sync_hint_pass(sync_service *s, const sync_rings *r)
{
    uint64_t ids[HINT_TARGETS_MAX];
    size_t n = replica_hint_targets(s->rp, ids, HINT_TARGETS_MAX);
    if (n > HINT_TARGETS_MAX)
        n = HINT_TARGETS_MAX; /* the rest next pass */
    for (size_t i = 0; i < n; i++) {
        if (sync_stopping(s))
            return RK_ECLOSED;
        const cluster_view_member *m = cluster_view_find(r->view, ids[i]);
        /* A node not (yet) in the view, removed, or not alive keeps its
         * hints: removed ones until an operator drops them (its ranges are
         * re-replicated from the other replicas). */
        if (ids[i] == s->self || m == NULL || m->status == CLUSTER_REMOVED ||
            !cluster_view_alive(r->view, ids[i]))
            continue;
        uint64_t delivered = 0;
        rk_err err = deliver_to(s, r, m, &delivered);
        if (delivered > 0) {
            atomic_fetch_add_explicit(&s->hints_delivered, delivered, memory_order_relaxed);
            RK_INFO("handoff", "handed %llu held writes to %s (%s)", (unsigned long long)delivered,
                    m->name, m->rpc_addr);
        }
        if (err == RK_ECLOSED)
            return err;
        if (err != RK_OK)
            RK_DEBUG("handoff", "%s did not take its hints yet: %s", m->name, rk_strerror(err));
    }
    return RK_OK;
}
