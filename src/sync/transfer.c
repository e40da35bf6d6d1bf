/* transfer.c - range handoff: each range this node must send (sync_duty_of)
 * goes to its targets in batches, and is dropped here once every target
 * has it.
 *
 * Nothing is remembered on disk: the duties follow from the view and the
 * store, and a range is marked done in memory only. After a crash the next
 * pass sends again; Digests first means a target that already has a record
 * gets nothing, and a merge of an object already held changes nothing, so
 * a resumed handoff neither loses nor duplicates. */
#include <stdlib.h>
#include <string.h>

#include "sync_internal.h"

typedef struct need_ctx {
    size_t *idx;
    size_t count;
} need_ctx;

/* Collects the local records the target lacks or holds otherwise. */
static rk_err need_cb(void *arg, size_t local, const Ringkv__SyncDigest *remote)
{
    (void)remote;
    need_ctx *c = arg;
    if (local != SIZE_MAX)
        c->idx[c->count++] = local;
    return RK_OK;
}

/* Ranges handed off per round of calls: one Digests and a few Push calls
 * per target cover them all, instead of one round trip per range. */
#define CHUNK_RANGES 64u

/* One chunk of ranges with duties, scanned. */
typedef struct chunk {
    size_t index[CHUNK_RANGES];
    sync_duty duty[CHUNK_RANGES];
    size_t first[CHUNK_RANGES + 1]; /* records of range k: [first[k], first[k+1]) */
    bool failed[CHUNK_RANGES];
    size_t count;
    sync_records rs;
} chunk;

static bool targets_has(const sync_duty *d, uint64_t node)
{
    for (size_t i = 0; i < d->target_count; i++)
        if (d->targets[i] == node)
            return true;
    return false;
}

/* Sends target the records of the chunk's ranges it must receive. */
static rk_err send_to(sync_service *s, const sync_rings *r, chunk *c, uint64_t target)
{
    Ringkv__SyncRange ranges[CHUNK_RANGES];
    size_t n = 0;
    sync_records mine = {0};
    rk_err err = RK_OK;
    for (size_t k = 0; err == RK_OK && k < c->count; k++) {
        if (!targets_has(&c->duty[k], target) || c->first[k] == c->first[k + 1])
            continue;
        ringkv__sync_range__init(&ranges[n]);
        sync_range_bounds(r, c->index[k], &ranges[n].start, &ranges[n].end);
        n++;
        for (size_t i = c->first[k]; err == RK_OK && i < c->first[k + 1]; i++)
            err = sync_records_add(&mine, sync_record_key(&c->rs, i), c->rs.items[i].key_len,
                                   sync_record_value(&c->rs, i), c->rs.items[i].val_len);
    }
    Ringkv__SyncDigestsReply *remote = NULL;
    if (err == RK_OK && n > 0)
        err = sync_call_digests(s, r, target, ranges, n, false, NULL, 0, &remote,
                                &s->handoff_bytes_sent);
    size_t *idx = err == RK_OK && n > 0 ? malloc(mine.count * sizeof *idx) : NULL;
    if (err == RK_OK && n > 0 && idx == NULL)
        err = RK_ENOMEM;
    need_ctx need = {idx, 0};
    if (err == RK_OK && n > 0)
        err = sync_compare(&mine, remote, need_cb, &need);
    if (remote != NULL)
        rpc_reply_free(&remote->base);
    if (err == RK_OK && need.count > 0)
        err = sync_push(s, r, target, &mine, idx, need.count, &s->handoff_bytes_sent, NULL);
    if (err == RK_OK)
        atomic_fetch_add_explicit(&s->handoff_keys_sent, need.count, memory_order_relaxed);
    free(idx);
    sync_records_free(&mine);
    return err;
}

/* Drops the local copy of range k's records, unless a write changed one
 * since it was read (RK_EBUSY then: the range is sent again next pass). */
static rk_err drop_sent(sync_service *s, const chunk *c, size_t k)
{
    rk_err result = RK_OK;
    for (size_t i = c->first[k]; i < c->first[k + 1]; i++) {
        rk_err err = store_remove_if(s->st, sync_record_key(&c->rs, i), c->rs.items[i].key_len,
                                     sync_record_value(&c->rs, i), c->rs.items[i].val_len);
        if (err == RK_OK)
            atomic_fetch_add_explicit(&s->handoff_keys_dropped, 1, memory_order_relaxed);
        else if (err == RK_EPRECOND)
            result = RK_EBUSY;
        else if (err != RK_ENOTFOUND)
            return err;
    }
    return result;
}

/* Scans, sends and drops one chunk; marks failed[k] for ranges not done.
 * Returns the first error. */
static rk_err transfer_chunk(sync_service *s, const sync_rings *r, chunk *c)
{
    rk_err first = RK_OK;
    sync_records_reset(&c->rs);
    for (size_t k = 0; k < c->count; k++) {
        uint64_t start, end;
        sync_range_bounds(r, c->index[k], &start, &end);
        c->first[k] = c->rs.count;
        c->failed[k] = false;
        rk_err err = sync_records_scan(s, r, start, end, NULL, NULL, &c->rs);
        if (err != RK_OK) {
            for (size_t j = 0; j < c->count; j++)
                c->failed[j] = true;
            return err;
        }
    }
    c->first[c->count] = c->rs.count;
    /* each target once, for every range of the chunk it must receive */
    uint64_t done_targets[CHUNK_RANGES * 2 * RING_MAX_N];
    size_t n_done = 0;
    for (size_t k = 0; k < c->count; k++) {
        for (size_t t = 0; t < c->duty[k].target_count; t++) {
            uint64_t target = c->duty[k].targets[t];
            bool seen = target == s->self;
            for (size_t j = 0; j < n_done && !seen; j++)
                seen = done_targets[j] == target;
            if (seen)
                continue;
            done_targets[n_done++] = target;
            rk_err err = send_to(s, r, c, target);
            if (err == RK_OK)
                continue;
            if (first == RK_OK)
                first = err;
            for (size_t j = 0; j < c->count; j++)
                if (targets_has(&c->duty[j], target))
                    c->failed[j] = true;
        }
    }
    for (size_t k = 0; k < c->count; k++) {
        if (c->failed[k] || !c->duty[k].drop)
            continue;
        rk_err err = drop_sent(s, c, k);
        if (err != RK_OK) {
            c->failed[k] = true;
            if (first == RK_OK)
                first = err;
        }
    }
    return first;
}

/* Resets the done marks when the rings changed. */
static rk_err reset_done(sync_service *s, const sync_rings *r)
{
    size_t n = sync_range_count(r);
    if (s->done_len != n) {
        uint8_t *done = calloc(n, 1);
        if (done == NULL)
            return RK_ENOMEM;
        free(s->done);
        s->done = done;
        s->done_len = n;
    } else if (s->done_read == r->read_version && s->done_next == r->next_version) {
        return RK_OK;
    } else {
        memset(s->done, 0, n);
    }
    s->done_read = r->read_version;
    s->done_next = r->next_version;
    return RK_OK;
}

rk_err sync_handoff_pass(sync_service *s, const sync_rings *r, uint64_t *pending)
{
    rk_err err = reset_done(s, r);
    if (err != RK_OK)
        return err;
    size_t n = sync_range_count(r);
    sync_duty d;
    uint64_t left = 0;
    for (size_t i = 0; i < n; i++) {
        if (s->done[i])
            continue;
        sync_duty_of(r, s->self, i, &d);
        if (d.target_count == 0)
            s->done[i] = 1;
        else
            left++;
    }
    atomic_store(&s->ranges_pending, left);
    chunk *c = calloc(1, sizeof *c);
    if (c == NULL)
        return RK_ENOMEM;
    uint64_t failed = 0;
    rk_err first = RK_OK;
    for (size_t i = 0; i < n && left > 0;) {
        c->count = 0;
        for (; i < n && c->count < CHUNK_RANGES; i++) {
            if (s->done[i])
                continue;
            c->index[c->count] = i;
            sync_duty_of(r, s->self, i, &c->duty[c->count]);
            c->count++;
        }
        if (sync_stopping(s)) {
            sync_records_free(&c->rs);
            free(c);
            return RK_ECLOSED;
        }
        err = transfer_chunk(s, r, c);
        if (err != RK_OK && first == RK_OK)
            first = err;
        for (size_t k = 0; k < c->count; k++) {
            if (c->failed[k])
                failed++;
            else
                s->done[c->index[k]] = 1;
        }
        left -= c->count;
        atomic_store(&s->ranges_pending, left + failed);
    }
    sync_records_free(&c->rs);
    free(c);
    if (failed > 0)
        RK_INFO(MOD, "handoff: %llu ranges not sent yet (%s); trying again",
                (unsigned long long)failed, rk_strerror(first));
    *pending = failed;
    return RK_OK;
}
