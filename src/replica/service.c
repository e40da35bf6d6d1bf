/* service.c - what a replica does when another node's coordinator calls
 * it: the Kv service (read its copy, merge an object, apply a client
 * write). Hints held for this node arrive through the sync service
 * (Sync.Push with hints_for, src/sync/rpc.c), which merges them with
 * replica_take_hint.
 *
 * Handlers run on the RPC server's threads and answer before returning,
 * after at most one RocksDB call. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replica_internal.h"
#include "ringkv.pb-c.h"

/* ---- the clock a reply is stamped with ------------------------------------ */

static pthread_once_t clock_once = PTHREAD_ONCE_INIT;
static uint64_t clock_id;

/* FNV-1a of the boot id's text: an identity, not a secret. */
static void read_clock_id(void)
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    char text[64];
    size_t len = f ? fread(text, 1, sizeof text, f) : 0;
    if (f != NULL)
        fclose(f);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len && text[i] != '\n'; i++)
        h = (h ^ (uint8_t)text[i]) * 0x100000001b3ull;
    clock_id = len > 0 ? (h ? h : 1) : 0;
    if (len == 0)
        RK_WARN("replica", "no boot id: PBS delays will be halves of round trips");
}

uint64_t replica_clock_id(void)
{
    pthread_once(&clock_once, read_clock_id);
    return clock_id;
}

/* (table, key) of a request, checked as a client's would be: a peer with
 * the secret is trusted, but a bug there must not write garbage here. */
static rk_err request_key(const char *table, const ProtobufCBinaryData *key, replica_key *out)
{
    return replica_key_init(out, table, table ? strlen(table) : 0, (const char *)key->data,
                            key->len);
}

static void handle_get(rpc_request *rq, const ProtobufCMessage *input, void *arg)
{
    replica *rp = arg;
    const Ringkv__ReplicaGetRequest *in = (const Ringkv__ReplicaGetRequest *)input;
    replica_key key;
    rk_buf val = {0};
    rk_err err = request_key(in->table, &in->key, &key);
    Ringkv__ReplicaGetReply out = RINGKV__REPLICA_GET_REPLY__INIT;
    /* when the read began: a write applied before then is certainly seen */
    out.replica_mono_ns = rk_mono_ns();
    out.replica_clock = replica_clock_id();
    if (err == RK_OK)
        err = replica_read(rp, key.dbkey, key.dbkey_len, in->intended, &val);
    if (err == RK_OK) {
        out.found = true;
        out.object.data = (uint8_t *)val.data;
        out.object.len = val.len;
    }
    if (err == RK_ENOTFOUND)
        err = RK_OK;
    rpc_respond(rq, err, &out.base);
    rk_buf_free(&val);
}

/* Merges an object sent by a peer into this node's copy (its replica, or
 * the hint it holds for intended). */
static rk_err merge_incoming(replica *rp, const char *table, const ProtobufCBinaryData *key,
                             const ProtobufCBinaryData *object, uint64_t intended)
{
    replica_key rk;
    rk_err err = request_key(table, key, &rk);
    if (err == RK_OK)
        err = replica_merge_encoded(rp, rk.dbkey, rk.dbkey_len, intended, object->data, object->len,
                                    NULL);
    return err;
}

static void handle_put(rpc_request *rq, const ProtobufCMessage *input, void *arg)
{
    const Ringkv__ReplicaPutRequest *in = (const Ringkv__ReplicaPutRequest *)input;
    rk_err err = merge_incoming(arg, in->table, &in->key, &in->object, in->intended);
    Ringkv__ReplicaPutReply out = RINGKV__REPLICA_PUT_REPLY__INIT;
    /* when the merge had been applied: from then on a read sees it */
    out.replica_mono_ns = rk_mono_ns();
    out.replica_clock = replica_clock_id();
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
    replica *rp = arg;
    const Ringkv__ReplicaApplyRequest *in = (const Ringkv__ReplicaApplyRequest *)input;
    vclock ctx = {0}, if_match = {0};
    replica_update u = {
        .value = (const char *)in->value.data,
        .value_len = in->value.len,
        .tombstone = in->tombstone,
        .if_none_match = in->if_none_match,
        .owner = in->owner,
    };
    replica_key key;
    rk_buf encoded = {0};
    replica_written res = {0};
    rk_err err = request_key(in->table, &in->key, &key);
    if (err == RK_OK && in->has_context) {
        err = clock_from_pb(in->context, in->n_context, &ctx);
        u.context = &ctx;
    }
    if (err == RK_OK && in->has_if_match) {
        err = clock_from_pb(in->if_match, in->n_if_match, &if_match);
        u.if_match = &if_match;
    }
    if (err == RK_OK)
        err = replica_write(rp, &key, &u, &res, &encoded);
    Ringkv__ReplicaApplyReply out = RINGKV__REPLICA_APPLY_REPLY__INIT;
    out.object.data = (uint8_t *)encoded.data;
    out.object.len = encoded.len;
    out.existed = res.existed;
    out.dot_actor = res.dot.actor;
    out.dot_counter = res.dot.counter;
    out.replica_mono_ns = rk_mono_ns();
    out.replica_clock = replica_clock_id();
    rpc_respond(rq, err, &out.base);
    object_free(&res.obj);
    vclock_free(&ctx);
    vclock_free(&if_match);
    rk_buf_free(&encoded);
}

size_t replica_rpc_handlers(replica *rp, rpc_handler *out, size_t cap)
{
    const rpc_handler handlers[] = {
        {&ringkv__kv__descriptor, "Get", 0, handle_get, rp},
        {&ringkv__kv__descriptor, "Put", 0, handle_put, rp},
        {&ringkv__kv__descriptor, "Apply", 0, handle_apply, rp},
    };
    return rpc_handlers_copy(handlers, sizeof handlers / sizeof handlers[0], out, cap);
}
