/* rpc.c - the Sync service's handlers.
 *
 * RPC handlers run inline on NNG's threads (ringkvd), and a sync request
 * may scan a range, merge a batch or build a whole tree: too long to hold
 * one of NNG's few threads. So a handler only queues the request, and one
 * responder thread answers them in order (rpc_respond may be called from
 * any thread). One thread also bounds what a peer's handoff can take from
 * this node's disk at once. */
#include <stdlib.h>
#include <string.h>

#include "sync_internal.h"

/* ---- Status ---------------------------------------------------------------- */

static void answer_status(sync_service *s, const sync_rings *r, rpc_request *rq,
                          const Ringkv__SyncStatusRequest *in)
{
    Ringkv__SyncStatusReply out = RINGKV__SYNC_STATUS_REPLY__INIT;
    rk_err err = RK_EBUSY;
    pthread_mutex_lock(&s->mu);
    if (sync_rings_match(r, in->rings) && s->pass_valid && s->pass_read == r->read_version &&
        s->pass_next == r->next_version) {
        out.ranges_pending = s->pass_pending;
        err = RK_OK;
    }
    pthread_mutex_unlock(&s->mu);
    rpc_respond(rq, err, &out.base);
}

/* ---- Tree ------------------------------------------------------------------ */

/* The tree of the session, built on its first request (responder thread). */
static rk_err session_tree(sync_service *s, const sync_rings *r, uint64_t session, uint64_t peer,
                           merkle_tree **out)
{
    uint64_t now = rk_monotonic_ms();
    tree_entry *oldest = &s->trees[0];
    for (size_t i = 0; i < SYNC_TREE_CACHE; i++) {
        tree_entry *e = &s->trees[i];
        if (e->tree != NULL && e->session == session && e->peer == peer) {
            e->used_ms = now;
            *out = e->tree;
            return RK_OK;
        }
        /* a new session from the same peer ends its last one */
        if (e->tree != NULL && e->peer == peer) {
            merkle_free(e->tree);
            e->tree = NULL;
        }
        if (e->tree == NULL || e->used_ms < oldest->used_ms)
            oldest = e;
    }
    merkle_tree *tree = NULL;
    rk_err err = sync_build_tree(s, r, peer, &tree);
    if (err != RK_OK)
        return err;
    merkle_free(oldest->tree);
    *oldest = (tree_entry){session, peer, now, tree};
    *out = tree;
    return RK_OK;
}

static void answer_tree(sync_service *s, const sync_rings *r, rpc_request *rq,
                        const Ringkv__SyncTreeRequest *in)
{
    merkle_tree *tree = NULL;
    rk_err err = sync_rings_match(r, in->rings) ? RK_OK : RK_EBUSY;
    if (err == RK_OK)
        err = session_tree(s, r, in->session, in->rings->from, &tree);
    if (err == RK_OK && (in->depth != merkle_depth(tree) || in->level > in->depth))
        err = RK_EINVAL;
    uint8_t *hashes = err == RK_OK ? malloc(in->n_nodes * SYNC_DIGEST_BYTES + 1) : NULL;
    uint64_t *counts = err == RK_OK ? malloc((in->n_nodes + 1) * sizeof *counts) : NULL;
    if (err == RK_OK && (hashes == NULL || counts == NULL))
        err = RK_ENOMEM;
    for (size_t i = 0; err == RK_OK && i < in->n_nodes; i++) {
        uint8_t h[MERKLE_HASH_BYTES];
        err = merkle_node_hash(tree, in->level, in->nodes[i], h, &counts[i]);
        memcpy(hashes + i * SYNC_DIGEST_BYTES, h, SYNC_DIGEST_BYTES);
    }
    Ringkv__SyncTreeReply out = RINGKV__SYNC_TREE_REPLY__INIT;
    out.hashes.data = hashes;
    out.hashes.len = err == RK_OK ? in->n_nodes * SYNC_DIGEST_BYTES : 0;
    out.n_counts = err == RK_OK ? in->n_nodes : 0;
    out.counts = counts;
    atomic_fetch_add_explicit(&s->ae_bytes_sent, protobuf_c_message_get_packed_size(&out.base),
                              memory_order_relaxed);
    rpc_respond(rq, err, &out.base);
    free(hashes);
    free(counts);
}

/* ---- Digests and Pull ---------------------------------------------------------- */

typedef struct shared_ctx {
    const sync_rings *r;
    uint64_t self, peer;
} shared_ctx;

static bool shared_with(void *arg, size_t range)
{
    const shared_ctx *c = arg;
    return sync_shared(c->r, range, c->self, c->peer);
}

/* Appends the local records of keys[0..n) that exist. */
static rk_err add_keys(sync_service *s, const ProtobufCBinaryData *keys, size_t n, sync_records *rs)
{
    rk_err err = RK_OK;
    for (size_t i = 0; err == RK_OK && i < n; i++) {
        rk_buf val = {0};
        err = store_get(s->st, (const char *)keys[i].data, keys[i].len, &val);
        if (err == RK_OK)
            err = sync_records_add(rs, keys[i].data, keys[i].len, val.data, val.len);
        else if (err == RK_ENOTFOUND)
            err = RK_OK;
        rk_buf_free(&val);
    }
    return err;
}

/* Local records of the requested ranges, or of the requested keys. */
static rk_err gather(sync_service *s, const sync_rings *r, const Ringkv__SyncDigestsRequest *in,
                     sync_records *rs)
{
    shared_ctx c = {r, s->self, in->rings != NULL ? in->rings->from : 0};
    rk_err err = RK_OK;
    for (size_t i = 0; err == RK_OK && i < in->n_ranges; i++)
        err = sync_records_scan(s, r, in->ranges[i]->start, in->ranges[i]->end,
                                in->shared_only ? shared_with : NULL, &c, rs);
    if (err == RK_OK)
        err = add_keys(s, in->dbkeys, in->n_dbkeys, rs);
    return err;
}

static void answer_digests(sync_service *s, const sync_rings *r, rpc_request *rq,
                           const Ringkv__SyncDigestsRequest *in)
{
    sync_records rs = {0};
    rk_err err = gather(s, r, in, &rs);
    Ringkv__SyncDigest *ds = err == RK_OK ? calloc(rs.count + 1, sizeof *ds) : NULL;
    Ringkv__SyncDigest **ptrs = err == RK_OK ? calloc(rs.count + 1, sizeof *ptrs) : NULL;
    if (err == RK_OK && (ds == NULL || ptrs == NULL))
        err = RK_ENOMEM;
    Ringkv__SyncDigestsReply out = RINGKV__SYNC_DIGESTS_REPLY__INIT;
    for (size_t i = 0; err == RK_OK && i < rs.count; i++) {
        ringkv__sync_digest__init(&ds[i]);
        ds[i].dbkey.data = (uint8_t *)sync_record_key(&rs, i);
        ds[i].dbkey.len = rs.items[i].key_len;
        ds[i].digest.data = rs.items[i].digest;
        ds[i].digest.len = SYNC_DIGEST_BYTES;
        ptrs[i] = &ds[i];
    }
    if (err == RK_OK) {
        out.n_digests = rs.count;
        out.digests = ptrs;
    }
    atomic_fetch_add_explicit(&s->ae_bytes_sent, protobuf_c_message_get_packed_size(&out.base),
                              memory_order_relaxed);
    rpc_respond(rq, err, &out.base);
    free(ds);
    free(ptrs);
    sync_records_free(&rs);
}

static void answer_pull(sync_service *s, rpc_request *rq, const Ringkv__SyncPullRequest *in)
{
    sync_records rs = {0};
    rk_err err = add_keys(s, in->dbkeys, in->n_dbkeys, &rs);
    Ringkv__SyncRecord *recs = calloc(rs.count + 1, sizeof *recs);
    Ringkv__SyncRecord **ptrs = calloc(rs.count + 1, sizeof *ptrs);
    if (err == RK_OK && (recs == NULL || ptrs == NULL))
        err = RK_ENOMEM;
    Ringkv__SyncPullReply out = RINGKV__SYNC_PULL_REPLY__INIT;
    for (size_t i = 0; err == RK_OK && i < rs.count; i++) {
        ringkv__sync_record__init(&recs[i]);
        recs[i].dbkey.data = (uint8_t *)sync_record_key(&rs, i);
        recs[i].dbkey.len = rs.items[i].key_len;
        recs[i].object.data = (uint8_t *)sync_record_value(&rs, i);
        recs[i].object.len = rs.items[i].val_len;
        ptrs[i] = &recs[i];
    }
    if (err == RK_OK) {
        out.n_records = rs.count;
        out.records = ptrs;
    }
    atomic_fetch_add_explicit(&s->ae_bytes_sent, protobuf_c_message_get_packed_size(&out.base),
                              memory_order_relaxed);
    rpc_respond(rq, err, &out.base);
    free(recs);
    free(ptrs);
    sync_records_free(&rs);
}

/* ---- Push -------------------------------------------------------------------------- */

/* Hints held for this node (hints_for): merged whatever the rings say -
 * the coordinator chose this node as a replica of each key when it wrote
 * it, and a ring that changed since leaves the record to range handoff
 * like any other - unless this node takes no hints (--handoff off), and
 * then none of them, so the sender keeps them all. */
static rk_err take_hints(sync_service *s, const Ringkv__SyncPushRequest *in, uint32_t *changed)
{
    if (in->hints_for != s->self)
        return RK_EINVAL; /* meant for a node that had this address before */
    if (!replica_get_config(s->rp)->accept_hints)
        return RK_EUNSUPPORTED;
    rk_err err = RK_OK;
    for (size_t i = 0; err == RK_OK && i < in->n_records; i++) {
        const Ringkv__SyncRecord *rec = in->records[i];
        bool c = false;
        err = replica_take_hint(s->rp, (const char *)rec->dbkey.data, rec->dbkey.len,
                                rec->object.data, rec->object.len, &c);
        *changed += c;
    }
    return err;
}

/* Records of ranges this node holds (range handoff, anti-entropy). */
static rk_err take_records(sync_service *s, const sync_rings *r, const Ringkv__SyncPushRequest *in,
                           uint32_t *changed)
{
    rk_err err = RK_OK;
    /* A record of a range this node does not hold under its view would be
     * dropped by its next handoff pass: refuse the batch, so the sender
     * keeps its copy and tries again once the views agree. */
    for (size_t i = 0; err == RK_OK && i < in->n_records; i++) {
        const ProtobufCBinaryData *key = &in->records[i]->dbkey;
        if (key->len < 8) {
            err = RK_EINVAL;
            break;
        }
        if (!sync_holds(r, sync_range_of(r, sync_key_position(key->data)), s->self))
            err = RK_EBUSY;
    }
    for (size_t i = 0; err == RK_OK && i < in->n_records; i++) {
        const Ringkv__SyncRecord *rec = in->records[i];
        bool c = false;
        err = replica_merge_encoded(s->rp, (const char *)rec->dbkey.data, rec->dbkey.len, 0,
                                    rec->object.data, rec->object.len, &c);
        *changed += c;
    }
    return err;
}

static void answer_push(sync_service *s, const sync_rings *r, rpc_request *rq,
                        const Ringkv__SyncPushRequest *in)
{
    uint32_t changed = 0;
    rk_err err =
        in->hints_for != 0 ? take_hints(s, in, &changed) : take_records(s, r, in, &changed);
    atomic_fetch_add_explicit(&s->keys_received, changed, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bytes_received, protobuf_c_message_get_packed_size(&in->base),
                              memory_order_relaxed);
    Ringkv__SyncPushReply out = RINGKV__SYNC_PUSH_REPLY__INIT;
    out.changed = changed;
    rpc_respond(rq, err, &out.base);
}

/* ---- queue and dispatch ------------------------------------------------------------- */

void sync_answer(sync_service *s, sync_job *job)
{
    sync_rings r;
    if (sync_rings_take(s, &r) != RK_OK) {
        rpc_respond(job->req, RK_EBUSY, NULL);
        return;
    }
    if (job->method != SYNC_PUSH && job->method != SYNC_STATUS)
        atomic_fetch_add_explicit(&s->bytes_received,
                                  protobuf_c_message_get_packed_size(job->input),
                                  memory_order_relaxed);
    switch (job->method) {
    case SYNC_STATUS:
        answer_status(s, &r, job->req, (const Ringkv__SyncStatusRequest *)job->input);
        break;
    case SYNC_TREE:
        answer_tree(s, &r, job->req, (const Ringkv__SyncTreeRequest *)job->input);
        break;
    case SYNC_DIGESTS:
        answer_digests(s, &r, job->req, (const Ringkv__SyncDigestsRequest *)job->input);
        break;
    case SYNC_PULL: answer_pull(s, job->req, (const Ringkv__SyncPullRequest *)job->input); break;
    default: answer_push(s, &r, job->req, (const Ringkv__SyncPushRequest *)job->input); break;
    }
    sync_rings_release(&r);
}

typedef struct handler_arg {
    sync_service *s;
    sync_method method;
} handler_arg;

static void enqueue(rpc_request *rq, const ProtobufCMessage *input, sync_service *s,
                    sync_method method)
{
    sync_job *job = malloc(sizeof *job);
    if (job == NULL) {
        rpc_respond(rq, RK_ENOMEM, NULL);
        return;
    }
    *job = (sync_job){NULL, rq, input, (int)method};
    pthread_mutex_lock(&s->job_mu);
    if (s->jobs_tail != NULL)
        s->jobs_tail->next = job;
    else
        s->jobs = job;
    s->jobs_tail = job;
    pthread_cond_signal(&s->job_cv);
    pthread_mutex_unlock(&s->job_mu);
}

/* Status answers at once (it reads two numbers), so a joiner's poll does
 * not wait behind a peer's handoff batches. */
static void on_status(rpc_request *rq, const ProtobufCMessage *in, void *arg)
{
    sync_job job = {NULL, rq, in, SYNC_STATUS};
    sync_answer(arg, &job);
}
static void on_tree(rpc_request *rq, const ProtobufCMessage *in, void *arg)
{
    enqueue(rq, in, arg, SYNC_TREE);
}
static void on_digests(rpc_request *rq, const ProtobufCMessage *in, void *arg)
{
    enqueue(rq, in, arg, SYNC_DIGESTS);
}
static void on_pull(rpc_request *rq, const ProtobufCMessage *in, void *arg)
{
    enqueue(rq, in, arg, SYNC_PULL);
}
static void on_push(rpc_request *rq, const ProtobufCMessage *in, void *arg)
{
    enqueue(rq, in, arg, SYNC_PUSH);
}

size_t sync_rpc_handlers(sync_service *s, rpc_handler *out, size_t cap)
{
    const rpc_handler all[] = {
        {&ringkv__sync__descriptor, "Status", 0, on_status, s},
        {&ringkv__sync__descriptor, "Tree", 0, on_tree, s},
        {&ringkv__sync__descriptor, "Digests", 0, on_digests, s},
        {&ringkv__sync__descriptor, "Pull", 0, on_pull, s},
        {&ringkv__sync__descriptor, "Push", 0, on_push, s},
    };
    return rpc_handlers_copy(all, sizeof all / sizeof all[0], out, cap);
}
