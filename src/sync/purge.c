/* purge.c - tombstones that stay dead.
 *
 * A delete is a tombstone sibling (docs/causality.md). Kept forever they
 * cost space; dropped too early, a replica that missed the delete would
 * bring the value back through anti-entropy or read repair. A tombstone is
 * purged here when:
 * - every sibling of the key is a tombstone, the newest older than
 *   tombstone_grace_ms, and
 * - every other holder of its range (both rings) answers, and holds the
 *   same bytes or nothing (it purged already, or never had the key).
 * A holder that is down or unreachable blocks the purge, so a replica that
 * missed the delete first learns it (hints, anti-entropy), and only then
 * can the key go. Anti-entropy does not carry an expired tombstone to a
 * node that lacks the key (exchange.c), so replicas that purged first are
 * not handed it back. */
#include <stdlib.h>
#include <string.h>

#include "sync_internal.h"

/* Tombstones looked at per pass. */
#define PURGE_BATCH 4096u

typedef struct candidates_ctx {
    sync_records *rs;
    uint64_t cutoff_ms;
    rk_err err;
} candidates_ctx;

static bool candidate_cb(void *arg, const char *dbkey, size_t dbkey_len, const char *val,
                         size_t val_len)
{
    candidates_ctx *c = arg;
    if (!sync_expired_tombstone(val, val_len, c->cutoff_ms))
        return true;
    c->err = sync_records_add(c->rs, dbkey, dbkey_len, val, val_len);
    return c->err == RK_OK && c->rs->count < PURGE_BATCH;
}

static size_t range_of_key(const sync_rings *r, const char *dbkey)
{
    return sync_range_of(r, sync_key_position(dbkey));
}

/* Clears ok[i] for the candidates peer holds otherwise, or all of them if
 * it cannot be asked. */
static void check_peer(sync_service *s, const sync_rings *r, uint64_t peer, const sync_records *rs,
                       bool *ok)
{
    size_t *idx = malloc((rs->count + 1) * sizeof *idx);
    ProtobufCBinaryData *keys = malloc((rs->count + 1) * sizeof *keys);
    if (idx == NULL || keys == NULL) {
        /* not asked is not agreed: purge nothing this round */
        for (size_t i = 0; i < rs->count; i++)
            ok[i] = false;
        free(idx);
        free(keys);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < rs->count; i++) {
        if (!ok[i] || !sync_holds(r, range_of_key(r, sync_record_key(rs, i)), peer))
            continue;
        idx[n] = i;
        keys[n].data = (uint8_t *)sync_record_key(rs, i);
        keys[n].len = rs->items[i].key_len;
        n++;
    }
    Ringkv__SyncDigestsReply *reply = NULL;
    rk_err err = RK_OK;
    if (n > 0)
        err = sync_call_digests(s, r, peer, NULL, 0, false, keys, n, &reply, NULL);
    /* the reply lists the keys the peer has, in the order asked */
    size_t j = 0;
    for (size_t k = 0; err == RK_OK && k < n; k++) {
        size_t i = idx[k];
        const Ringkv__SyncDigest *d = j < reply->n_digests ? reply->digests[j] : NULL;
        if (d == NULL || d->dbkey.len != keys[k].len ||
            memcmp(d->dbkey.data, keys[k].data, keys[k].len) != 0)
            continue; /* absent there */
        j++;
        ok[i] = d->digest.len == SYNC_DIGEST_BYTES &&
                memcmp(d->digest.data, rs->items[i].digest, SYNC_DIGEST_BYTES) == 0;
    }
    if (err != RK_OK)
        for (size_t k = 0; k < n; k++)
            ok[idx[k]] = false;
    if (reply != NULL)
        rpc_reply_free(&reply->base);
    free(idx);
    free(keys);
}

rk_err sync_purge_pass(sync_service *s, const sync_rings *r)
{
    sync_records rs = {0};
    candidates_ctx c = {&rs, rk_now_ms() - s->cfg.tombstone_grace_ms, RK_OK};
    static const char zero[8];
    rk_err err = store_scan(s->st, zero, sizeof zero, NULL, 0, candidate_cb, &c);
    if (err == RK_OK)
        err = c.err;
    if (err != RK_OK || rs.count == 0) {
        sync_records_free(&rs);
        return err;
    }
    bool *ok = malloc(rs.count * sizeof *ok);
    if (ok == NULL) {
        sync_records_free(&rs);
        return RK_ENOMEM;
    }
    for (size_t i = 0; i < rs.count; i++)
        ok[i] = true;
    for (size_t m = 0; m < r->view->count; m++) {
        const cluster_view_member *peer = &r->view->members[m];
        if (peer->id != s->self && cluster_status_in_ring(peer->status))
            check_peer(s, r, peer->id, &rs, ok); /* clears ok[] if stopping */
    }
    uint64_t purged = 0;
    for (size_t i = 0; i < rs.count; i++)
        if (ok[i] && store_remove_if(s->st, sync_record_key(&rs, i), rs.items[i].key_len,
                                     sync_record_value(&rs, i), rs.items[i].val_len) == RK_OK)
            purged++;
    if (purged > 0)
        RK_INFO(MOD, "purged %llu tombstones older than %llu ms", (unsigned long long)purged,
                (unsigned long long)s->cfg.tombstone_grace_ms);
    atomic_fetch_add_explicit(&s->tombstones_purged, purged, memory_order_relaxed);
    free(ok);
    sync_records_free(&rs);
    return RK_OK;
}
