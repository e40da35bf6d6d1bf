/* exchange.c - anti-entropy between two replicas.
 *
 * Each side builds a Merkle tree (src/sync/merkle.c) over the records of
 * the ranges both hold, by one scan of its store. The initiator asks for
 * the peer's node hashes a few levels at a time, only under nodes that
 * differ, and stops descending where a node covers few records; for those
 * ranges the two compare per-key digests (Sync.Digests) and exchange only
 * the keys that differ: Pull what the peer has newer or alone, merge it,
 * Push what this side has newer or alone. Both replicas end up with the
 * merge of the two.
 *
 * Why rebuilt by a scan rather than kept up to date on every write: the
 * tree then never disagrees with the store (a crash, a purge, a handoff
 * drop or a bug in an incremental update would leave a tree that differs
 * forever), the write path pays nothing, and a scan of a million records
 * costs about a second per exchange, which a periodic job can afford. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "sync_internal.h"

/* Levels descended per Tree call. */
#define LEVEL_STEP 4u
/* A differing node with at most this many records (on either side) is
 * compared key by key instead of descending further. */
#define DIGEST_BELOW 64u
/* Nodes per Tree call, ranges per Digests call, keys per Pull call. */
#define TREE_NODES_MAX 4096u
#define DIGEST_RANGES_MAX 64u
#define PULL_KEYS_MAX 256u

/* ---- the initiator ------------------------------------------------------------ */

typedef struct exchange {
    sync_service *s;
    const sync_rings *r;
    uint64_t peer;
    uint64_t session;
    merkle_tree *tree;
    uint8_t *shared;
    Ringkv__SyncRange *ranges; /* to compare key by key */
    size_t range_count, range_cap;
    uint64_t compared, repaired;
} exchange;

static rk_err add_range(exchange *x, unsigned level, size_t index)
{
    size_t need = x->range_count + 1;
    if (rk_array_grow((void **)&x->ranges, &x->range_cap, need, sizeof *x->ranges) != RK_OK)
        return RK_ENOMEM;
    Ringkv__SyncRange *out = &x->ranges[x->range_count++];
    ringkv__sync_range__init(out);
    return merkle_node_range(x->tree, level, index, &out->start, &out->end);
}

/* Asks for the peer's hashes of nodes[0..n) at level and sorts each into
 * next (descend) or the ranges (compare keys). */
static rk_err tree_step(exchange *x, unsigned level, const uint32_t *nodes, size_t n,
                        uint32_t *next, size_t *next_count, unsigned next_level)
{
    Ringkv__SyncRings rings;
    sync_rings_to_pb(x->s, x->r, &rings);
    Ringkv__SyncTreeRequest req = RINGKV__SYNC_TREE_REQUEST__INIT;
    req.rings = &rings;
    req.session = x->session;
    req.depth = merkle_depth(x->tree);
    req.level = level;
    req.n_nodes = n;
    req.nodes = (uint32_t *)nodes;
    ProtobufCMessage *reply = NULL;
    rk_err err = sync_call(x->s, x->r, x->peer, "Tree", &req.base, &reply, &x->s->ae_bytes_sent);
    if (err != RK_OK)
        return err;
    const Ringkv__SyncTreeReply *tr = (const Ringkv__SyncTreeReply *)reply;
    if (tr->hashes.len != n * SYNC_DIGEST_BYTES || tr->n_counts != n)
        err = RK_ECORRUPT;
    for (size_t i = 0; err == RK_OK && i < n; i++) {
        uint8_t mine[MERKLE_HASH_BYTES];
        uint64_t count = 0;
        err = merkle_node_hash(x->tree, level, nodes[i], mine, &count);
        if (err != RK_OK ||
            memcmp(mine, tr->hashes.data + i * SYNC_DIGEST_BYTES, SYNC_DIGEST_BYTES) == 0)
            continue;
        uint64_t most = count > tr->counts[i] ? count : tr->counts[i];
        if (level == merkle_depth(x->tree) || most <= DIGEST_BELOW) {
            err = add_range(x, level, nodes[i]);
            continue;
        }
        size_t span = (size_t)1 << (next_level - level);
        for (size_t c = 0; c < span; c++)
            next[(*next_count)++] = (uint32_t)(((size_t)nodes[i] << (next_level - level)) + c);
    }
    rpc_reply_free(reply);
    return err;
}

/* Walks the trees down from the root; fills x->ranges. */
static rk_err walk(exchange *x)
{
    unsigned depth = merkle_depth(x->tree), level = 0;
    uint32_t *nodes = malloc(sizeof *nodes);
    size_t count = 1;
    rk_err err = nodes == NULL ? RK_ENOMEM : RK_OK;
    if (nodes != NULL)
        nodes[0] = 0;
    while (err == RK_OK && count > 0) {
        unsigned next_level = level + LEVEL_STEP < depth ? level + LEVEL_STEP : depth;
        size_t span = (size_t)1 << (next_level - level);
        uint32_t *next = malloc((count * span + 1) * sizeof *next);
        size_t next_count = 0;
        if (next == NULL)
            err = RK_ENOMEM;
        for (size_t i = 0; err == RK_OK && i < count; i += TREE_NODES_MAX) {
            size_t n = count - i < TREE_NODES_MAX ? count - i : TREE_NODES_MAX;
            err = tree_step(x, level, nodes + i, n, next, &next_count, next_level);
        }
        free(nodes);
        nodes = next;
        count = next_count;
        level = next_level;
    }
    free(nodes);
    return err;
}

static bool shared_filter(void *arg, size_t range)
{
    return ((const uint8_t *)arg)[range] != 0;
}

typedef struct diff_lists {
    ProtobufCBinaryData *pull;
    size_t pull_count;
    size_t *push; /* local indices */
    size_t push_count;
    const sync_records *rs;
    uint64_t cutoff_ms;
} diff_lists;

/* Records only here are pushed, only there pulled, on both sides pulled,
 * merged and pushed back. An expired tombstone only here is not pushed
 * (the peer purged it or never had it; purge.c takes it away here). */
static rk_err diff_cb(void *arg, size_t local, const Ringkv__SyncDigest *remote)
{
    diff_lists *d = arg;
    if (remote != NULL)
        d->pull[d->pull_count++] = remote->dbkey;
    if (local != SIZE_MAX &&
        (remote != NULL || !sync_expired_tombstone(sync_record_value(d->rs, local),
                                                   d->rs->items[local].val_len, d->cutoff_ms)))
        d->push[d->push_count++] = local;
    return RK_OK;
}

/* Pulls keys, merges them here; an expired tombstone for a key absent here
 * is not taken (it would only come back to be purged again). */
static rk_err pull_merge(exchange *x, const ProtobufCBinaryData *keys, size_t n, uint64_t cutoff)
{
    for (size_t first = 0; first < n; first += PULL_KEYS_MAX) {
        Ringkv__SyncPullRequest req = RINGKV__SYNC_PULL_REQUEST__INIT;
        req.n_dbkeys = n - first < PULL_KEYS_MAX ? n - first : PULL_KEYS_MAX;
        req.dbkeys = (ProtobufCBinaryData *)keys + first;
        ProtobufCMessage *reply = NULL;
        rk_err err =
            sync_call(x->s, x->r, x->peer, "Pull", &req.base, &reply, &x->s->ae_bytes_sent);
        if (err != RK_OK)
            return err;
        const Ringkv__SyncPullReply *pr = (const Ringkv__SyncPullReply *)reply;
        for (size_t i = 0; err == RK_OK && i < pr->n_records; i++) {
            const Ringkv__SyncRecord *rec = pr->records[i];
            if (sync_expired_tombstone(rec->object.data, rec->object.len, cutoff)) {
                rk_buf cur = {0};
                rk_err got =
                    store_get(x->s->st, (const char *)rec->dbkey.data, rec->dbkey.len, &cur);
                rk_buf_free(&cur);
                if (got == RK_ENOTFOUND)
                    continue;
            }
            bool changed = false;
            err = replica_merge_encoded(x->s->rp, (const char *)rec->dbkey.data, rec->dbkey.len, 0,
                                        rec->object.data, rec->object.len, &changed);
            if (err == RK_OK && changed) {
                x->repaired++;
                atomic_fetch_add_explicit(&x->s->keys_received, 1, memory_order_relaxed);
            }
        }
        rpc_reply_free(reply);
        if (err != RK_OK)
            return err;
    }
    return RK_OK;
}

/* Compares and repairs ranges[0..n) key by key. */
static rk_err repair_ranges(exchange *x, const Ringkv__SyncRange *ranges, size_t n)
{
    uint64_t cutoff = rk_now_ms() - x->s->cfg.tombstone_grace_ms;
    Ringkv__SyncDigestsReply *remote = NULL;
    rk_err err = sync_call_digests(x->s, x->r, x->peer, ranges, n, true, NULL, 0, &remote,
                                   &x->s->ae_bytes_sent);
    if (err != RK_OK)
        return err;
    sync_records rs = {0}, out = {0};
    for (size_t i = 0; err == RK_OK && i < n; i++)
        err = sync_records_scan(x->s, x->r, ranges[i].start, ranges[i].end, shared_filter,
                                x->shared, &rs);
    diff_lists d = {.rs = &rs, .cutoff_ms = cutoff};
    d.pull = malloc((remote->n_digests + 1) * sizeof *d.pull);
    d.push = malloc((rs.count + 1) * sizeof *d.push);
    if (err == RK_OK && (d.pull == NULL || d.push == NULL))
        err = RK_ENOMEM;
    if (err == RK_OK)
        err = sync_compare(&rs, remote, diff_cb, &d);
    x->compared += rs.count + remote->n_digests;
    if (err == RK_OK)
        err = pull_merge(x, d.pull, d.pull_count, cutoff);
    /* what to push, as stored after the merges */
    for (size_t i = 0; err == RK_OK && i < d.push_count; i++) {
        rk_buf cur = {0};
        const char *key = sync_record_key(&rs, d.push[i]);
        size_t key_len = rs.items[d.push[i]].key_len;
        rk_err got = store_get(x->s->st, key, key_len, &cur);
        if (got == RK_OK)
            err = sync_records_add(&out, key, key_len, cur.data, cur.len);
        else if (got != RK_ENOTFOUND)
            err = got;
        rk_buf_free(&cur);
    }
    uint64_t changed = 0;
    for (size_t i = 0; i < out.count; i++)
        d.push[i] = i;
    if (err == RK_OK && out.count > 0)
        err =
            sync_push(x->s, x->r, x->peer, &out, d.push, out.count, &x->s->ae_bytes_sent, &changed);
    x->repaired += changed;
    free(d.pull);
    free(d.push);
    rpc_reply_free(&remote->base);
    sync_records_free(&rs);
    sync_records_free(&out);
    return err;
}

static int range_cmp(const void *a, const void *b)
{
    uint64_t x = ((const Ringkv__SyncRange *)a)->start, y = ((const Ringkv__SyncRange *)b)->start;
    return (x > y) - (x < y);
}

rk_err sync_exchange(sync_service *s, const sync_rings *r, uint64_t peer)
{
    exchange x = {.s = s, .r = r, .peer = peer};
    randombytes_buf(&x.session, sizeof x.session);
    x.shared = sync_shared_ranges(s, r, peer);
    if (x.shared == NULL)
        return RK_ENOMEM;
    rk_err err = sync_tree_of_ranges(s, r, x.shared, &x.tree);
    if (err == RK_OK)
        err = walk(&x);
    if (err == RK_OK && x.range_count > 1) /* ranges is NULL while empty */
        qsort(x.ranges, x.range_count, sizeof *x.ranges, range_cmp);
    for (size_t i = 0; err == RK_OK && i < x.range_count; i += DIGEST_RANGES_MAX) {
        size_t n = x.range_count - i < DIGEST_RANGES_MAX ? x.range_count - i : DIGEST_RANGES_MAX;
        err = repair_ranges(&x, x.ranges + i, n);
    }
    if (err == RK_OK) {
        atomic_fetch_add_explicit(&s->ae_exchanges, 1, memory_order_relaxed);
        if (x.repaired > 0)
            RK_INFO(MOD,
                    "anti-entropy with %016llx: %zu ranges differed, %llu keys compared, "
                    "%llu repaired",
                    (unsigned long long)peer, x.range_count, (unsigned long long)x.compared,
                    (unsigned long long)x.repaired);
    }
    atomic_fetch_add_explicit(&s->ae_keys_compared, x.compared, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->ae_keys_repaired, x.repaired, memory_order_relaxed);
    merkle_free(x.tree);
    free(x.shared);
    free(x.ranges);
    return err;
}
