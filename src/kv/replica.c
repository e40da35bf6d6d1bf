/* replica.c - what a node does when another node's coordinator calls it:
 * the Kv service (read its copy, merge an object, apply a client write)
 * and the Handoff service (take a write held for it while it was away).
 *
 * Handlers run on the RPC server's workers and answer before returning. */
#include <stdlib.h>
#include <string.h>

#include "kv_internal.h"
#include "ringkv.pb-c.h"

/* (table, key) of a request, checked as a client's would be: a peer with
 * the secret is trusted, but a bug there must not write garbage here. */
static rk_err request_key(const char *table, const ProtobufCBinaryData *key, kv_key *out,
                          rk_buf *dbkey)
{
    size_t table_len = table ? strlen(table) : 0;
    if (!kv_table_valid(table, table_len) || !kv_key_valid((const char *)key->data, key->len))
        return RK_EINVAL;
    *out = (kv_key){table, table_len, (const char *)key->data, key->len};
    return kv_data_key(out, dbkey);
}

static void handle_get(rpc_request *rq, const ProtobufCMessage *input, void *arg)
{
    kv *k = arg;
    const Ringkv__ReplicaGetRequest *in = (const Ringkv__ReplicaGetRequest *)input;
    kv_key key;
    rk_buf dbkey = {0}, val = {0};
    rk_err err = request_key(in->table, &in->key, &key, &dbkey);
    if (err == RK_OK)
        err = kv_local_read(k, dbkey.data, dbkey.len, in->intended, &val);
    Ringkv__ReplicaGetReply out = RINGKV__REPLICA_GET_REPLY__INIT;
    if (err == RK_OK) {
        out.found = true;
        out.object.data = (uint8_t *)val.data;
        out.object.len = val.len;
    }
    if (err == RK_ENOTFOUND)
        err = RK_OK;
    rpc_respond(rq, err, &out.base);
    rk_buf_free(&dbkey);
    rk_buf_free(&val);
}

/* Decodes an object sent by a peer and merges it into this node's copy
 * (its replica, or the hint it holds for intended). */
static rk_err merge_incoming(kv *k, const char *table, const ProtobufCBinaryData *key,
                             const ProtobufCBinaryData *object, uint64_t intended)
{
    kv_key kk;
    rk_buf dbkey = {0};
    rk_object obj = {0};
    rk_err err = request_key(table, key, &kk, &dbkey);
    if (err == RK_OK)
        err = object_decode(object->data, object->len, &obj);
    if (err == RK_OK)
        err = kv_local_merge(k, dbkey.data, dbkey.len, intended, &obj);
    object_free(&obj);
    rk_buf_free(&dbkey);
    return err;
}

static void handle_put(rpc_request *rq, const ProtobufCMessage *input, void *arg)
{
    const Ringkv__ReplicaPutRequest *in = (const Ringkv__ReplicaPutRequest *)input;
    rk_err err = merge_incoming(arg, in->table, &in->key, &in->object, in->intended);
    Ringkv__ReplicaPutReply out = RINGKV__REPLICA_PUT_REPLY__INIT;
    rpc_respond(rq, err, &out.base);
}

static rk_err clock_from_pb(Ringkv__ClockEntry *const *entries, size_t n, vclock *out)
{
    for (size_t i = 0; i < n; i++) {
        if (entries[i]->actor == 0 || entries[i]->counter == 0)
            return RK_EINVAL;
        rk_err err = vclock_advance(out, entries[i]->actor, entries[i]->counter);
        if (err != RK_OK)
            return err;
    }
    return RK_OK;
}

static void handle_apply(rpc_request *rq, const ProtobufCMessage *input, void *arg)
{
    kv *k = arg;
    const Ringkv__ReplicaApplyRequest *in = (const Ringkv__ReplicaApplyRequest *)input;
    vclock ctx = {0}, if_match = {0};
    kv_write w = {
        .value = (const char *)in->value.data,
        .value_len = in->value.len,
        .tombstone = in->tombstone,
        .if_none_match = in->if_none_match,
        .owner = in->owner,
    };
    rk_buf dbkey = {0}, encoded = {0};
    kv_result res = {0};
    rk_err err = request_key(in->table, &in->key, &w.key, &dbkey);
    if (err == RK_OK && !in->tombstone && (in->value.len == 0 || in->value.len > k->cfg.max_value_bytes))
        err = in->value.len == 0 ? RK_EINVAL : RK_ETOOBIG;
    if (err == RK_OK && in->has_context) {
        err = clock_from_pb(in->context, in->n_context, &ctx);
        w.context = &ctx;
    }
    if (err == RK_OK && in->has_if_match) {
        err = clock_from_pb(in->if_match, in->n_if_match, &if_match);
        w.if_match = &if_match;
    }
    if (err == RK_OK)
        err = kv_local_write(k, &w, &res, &encoded);
    Ringkv__ReplicaApplyReply out = RINGKV__REPLICA_APPLY_REPLY__INIT;
    out.object.data = (uint8_t *)encoded.data;
    out.object.len = encoded.len;
    out.existed = res.existed;
    out.dot_actor = res.dot.actor;
    out.dot_counter = res.dot.counter;
    rpc_respond(rq, err, &out.base);
    kv_result_free(&res);
    vclock_free(&ctx);
    vclock_free(&if_match);
    rk_buf_free(&dbkey);
    rk_buf_free(&encoded);
}

/* A fallback or a coordinator hands over a write this node missed. With
 * --handoff off the node refuses, and the sender keeps the hint. */
static void handle_hint(rpc_request *rq, const ProtobufCMessage *input, void *arg)
{
    kv *k = arg;
    const Ringkv__HintRequest *in = (const Ringkv__HintRequest *)input;
    rk_err err = RK_EUNSUPPORTED;
    if (k->cfg.handoff)
        err = in->intended == k->node_id
                  ? merge_incoming(k, in->table, &in->key, &in->object, 0)
                  : RK_EINVAL;
    if (err == RK_OK)
        atomic_fetch_add_explicit(&k->hints_received, 1, memory_order_relaxed);
    Ringkv__HintReply out = RINGKV__HINT_REPLY__INIT;
    rpc_respond(rq, err, &out.base);
}

size_t kv_rpc_handlers(kv *k, rpc_handler *out, size_t cap)
{
    const rpc_handler handlers[] = {
        {&ringkv__kv__descriptor, "Get", 0, handle_get, k},
        {&ringkv__kv__descriptor, "Put", 0, handle_put, k},
        {&ringkv__kv__descriptor, "Apply", 0, handle_apply, k},
        {&ringkv__handoff__descriptor, "Hint", 0, handle_hint, k},
    };
    size_t n = sizeof handlers / sizeof handlers[0];
    for (size_t i = 0; i < n && i < cap; i++)
        out[i] = handlers[i];
    return n;
}
