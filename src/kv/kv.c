/* kv.c - get, put, delete and scans of records against this node's replica.
 *
 * A put is one store_apply: under the key's lock stripe the current object
 * is decoded, the conditions are checked, the coordinator write of
 * docs/causality.md is applied and the object is encoded back. The object
 * that was written stays in the result, so the gateway answers without a
 * second read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_internal.h"
#include "ringkv/ring.h"

void kv_config_default(kv_config *cfg)
{
    cfg->n = 3;
    cfg->r = 2;
    cfg->w = 2;
    cfg->max_siblings = 16;
    cfg->max_value_bytes = 1u << 20;
    cfg->timeout_ms = 1000;
    cfg->handoff = true;
    cfg->handoff_interval_ms = 1000;
}

rk_err kv_open(store *st, rk_actor node_id, const kv_config *cfg, kv **out)
{
    if (st == NULL || node_id == 0 || cfg->n == 0 || cfg->r == 0 || cfg->w == 0 ||
        cfg->r > cfg->n || cfg->w > cfg->n || cfg->max_siblings == 0)
        return RK_EINVAL;
    kv *k = calloc(1, sizeof *k);
    if (k == NULL)
        return RK_ENOMEM;
    k->st = st;
    k->node_id = node_id;
    k->cfg = *cfg;
    if (k->cfg.timeout_ms == 0)
        k->cfg.timeout_ms = 1000;
    if (k->cfg.handoff_interval_ms == 0)
        k->cfg.handoff_interval_ms = 1000;
    pthread_mutex_init(&k->handoff_mu, NULL);
    rk_cond_init_monotonic(&k->handoff_cv); /* waits until rk_monotonic_ms deadlines */
    *out = k;
    return RK_OK;
}

rk_err kv_attach_cluster(kv *k, cluster_node *cn, rpc_client *client)
{
    if (k->cn != NULL || cn == NULL || client == NULL)
        return RK_EINVAL;
    k->cn = cn;
    k->client = client;
    return handoff_start(k);
}

void kv_detach_cluster(kv *k)
{
    handoff_stop(k);
}

void kv_close(kv *k)
{
    if (k == NULL)
        return;
    handoff_stop(k);
    pthread_mutex_destroy(&k->handoff_mu);
    pthread_cond_destroy(&k->handoff_cv);
    free(k);
}

const kv_config *kv_get_config(const kv *k)
{
    return &k->cfg;
}

rk_actor kv_node_id(const kv *k)
{
    return k->node_id;
}

unsigned kv_member_count(const kv *k)
{
    if (k->cn == NULL)
        return 1;
    cluster_view *v = cluster_node_view(k->cn);
    unsigned count = v->ring ? (unsigned)ring_member_count(v->ring) : 0;
    cluster_view_unref(v);
    return count;
}

void kv_result_free(kv_result *res)
{
    object_free(&res->obj);
    memset(res, 0, sizeof *res);
}

/* Replicas that can answer for a key right now: min(N, members). */
static unsigned reachable_replicas(const kv *k)
{
    unsigned members = kv_member_count(k);
    return members < k->cfg.n ? members : k->cfg.n;
}

/* Checks a requested quorum against N; fills acks/needed. */
static rk_err check_quorum(const kv *k, unsigned asked, unsigned dflt, kv_result *res)
{
    unsigned q = asked ? asked : dflt;
    if (q > k->cfg.n)
        return RK_EINVAL;
    res->needed = q;
    res->acks = reachable_replicas(k);
    return res->acks >= q ? RK_OK : RK_EQUORUM;
}

void kv_atomic_max(_Atomic uint64_t *slot, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(slot, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak(slot, &cur, v))
        ;
}

rk_err kv_data_key(const kv_key *key, rk_buf *out)
{
    uint64_t pos = ring_position(key->table, key->table_len, key->key, key->key_len);
    return store_data_key(pos, key->table, key->table_len, key->key, key->key_len, out);
}

rk_err kv_local_read(kv *k, const char *dbkey, size_t dbkey_len, uint64_t intended, rk_buf *out)
{
    if (intended == 0 || intended == k->node_id)
        return store_get(k->st, dbkey, dbkey_len, out);
    return store_hint_get(k->st, intended, dbkey, dbkey_len, out);
}

/* This node's replica alone: ?local=1, and a node with no cluster. */
static rk_err local_get(kv *k, const kv_key *key, kv_result *res)
{
    rk_buf dbkey = {0}, val = {0};
    rk_err err = kv_data_key(key, &dbkey);
    if (err == RK_OK)
        err = kv_local_read(k, dbkey.data, dbkey.len, 0, &val);
    if (err == RK_OK)
        err = object_decode((const uint8_t *)val.data, val.len, &res->obj);
    rk_buf_free(&dbkey);
    rk_buf_free(&val);
    if (err != RK_OK)
        object_free(&res->obj);
    if (err == RK_ECORRUPT)
        RK_ERROR("kv", "stored object for %.*s/%.*s does not decode", (int)key->table_len,
                 key->table, (int)key->key_len, key->key);
    if (err == RK_OK) {
        res->answered[0] = k->node_id;
        res->answered_count = 1;
    }
    return err;
}

rk_err kv_get(kv *k, const kv_key *key, const kv_read_opts *opts, kv_result *res)
{
    memset(res, 0, sizeof *res);
    if (!kv_table_valid(key->table, key->table_len) || !kv_key_valid(key->key, key->key_len))
        return RK_EINVAL;
    unsigned r = opts->r ? opts->r : k->cfg.r;
    if (r > k->cfg.n)
        return RK_EINVAL;
    atomic_fetch_add_explicit(&k->reads, 1, memory_order_relaxed);
    if (opts->local) {
        res->acks = res->needed = 1;
        return local_get(k, key, res);
    }
    if (k->cn != NULL)
        return coord_get(k, key, opts, res);
    rk_err err = check_quorum(k, opts->r, k->cfg.r, res);
    return err == RK_OK ? local_get(k, key, res) : err;
}

/* State shared with the store's read-merge-write callback. */
typedef struct put_state {
    kv *k;
    const kv_write *w;
    rk_object obj;
    bool existed;
    size_t dropped;
    clock_dot dot;
    rk_buf *encoded; /* a copy of the bytes written, when asked for */
} put_state;

static rk_err check_conditions(const kv_write *w, const rk_object *obj, bool existed)
{
    if (w->if_none_match && existed)
        return RK_EPRECOND;
    if (w->if_match != NULL && vclock_compare(&obj->clock, w->if_match) != VCLOCK_EQUAL)
        return RK_EPRECOND;
    if (w->tombstone && !existed)
        return RK_ENOTFOUND;
    return RK_OK;
}

static rk_err put_update_cb(void *arg, const char *old, size_t old_len, rk_buf *out)
{
    put_state *ps = arg;
    const kv_write *w = ps->w;
    object_free(&ps->obj); /* store_apply calls this once; keep it safe anyway */
    if (old != NULL) {
        rk_err err = object_decode((const uint8_t *)old, old_len, &ps->obj);
        if (err != RK_OK) {
            RK_ERROR("kv", "stored object for %.*s/%.*s does not decode; refusing to overwrite",
                     (int)w->key.table_len, w->key.table, (int)w->key.key_len, w->key.key);
            return err;
        }
    }
    ps->existed = object_live_count(&ps->obj) > 0;
    rk_err err = check_conditions(w, &ps->obj, ps->existed);
    if (err != RK_OK)
        return err;
    object_write ow = {
        .value = w->value,
        .value_len = w->value_len,
        .tombstone = w->tombstone,
        .owner = w->owner ? w->owner : "",
        .timestamp_ms = rk_now_ms(),
    };
    err = object_update(&ps->obj, w->context, ps->k->node_id, &ow, ps->k->cfg.max_siblings,
                        &ps->dropped, &ps->dot);
    if (err != RK_OK)
        return err;
    size_t before = out->len;
    err = object_encode(&ps->obj, out);
    if (err == RK_OK && ps->encoded != NULL)
        err = rk_buf_append(ps->encoded, out->data + before, out->len - before);
    return err;
}

static void count_write(kv *k, const put_state *ps)
{
    atomic_fetch_add_explicit(ps->w->tombstone ? &k->deletes : &k->writes, 1,
                              memory_order_relaxed);
    if (ps->dropped)
        atomic_fetch_add_explicit(&k->siblings_dropped, ps->dropped, memory_order_relaxed);
    kv_atomic_max(&k->max_clock_entries, ps->obj.clock.len);
    kv_atomic_max(&k->max_siblings_seen, ps->obj.len);
}

rk_err kv_local_write(kv *k, const kv_write *w, kv_result *res, rk_buf *encoded)
{
    rk_buf dbkey = {0};
    rk_err err = kv_data_key(&w->key, &dbkey);
    if (err != RK_OK)
        return err;
    put_state ps = {.k = k, .w = w, .encoded = encoded};
    err = store_apply(k->st, dbkey.data, dbkey.len, put_update_cb, &ps);
    rk_buf_free(&dbkey);
    if (err != RK_OK) {
        if (err == RK_EPRECOND)
            atomic_fetch_add_explicit(&k->precondition_failures, 1, memory_order_relaxed);
        object_free(&ps.obj);
        return err;
    }
    count_write(k, &ps);
    res->obj = ps.obj;
    res->existed = ps.existed;
    res->dot = ps.dot;
    return RK_OK;
}

/* State of one replica merge. */
typedef struct merge_state {
    const rk_object *incoming;
    size_t siblings; /* after the merge */
    bool changed;    /* the stored bytes differ from before */
} merge_state;

static rk_err merge_update_cb(void *arg, const char *old, size_t old_len, rk_buf *out)
{
    merge_state *ms = arg;
    if (old == NULL) {
        ms->siblings = ms->incoming->len;
        ms->changed = true;
        return object_encode(ms->incoming, out);
    }
    rk_object cur = {0};
    rk_err err = object_decode((const uint8_t *)old, old_len, &cur);
    if (err == RK_OK)
        err = object_merge(&cur, ms->incoming, 0, NULL);
    if (err == RK_OK) {
        ms->siblings = cur.len;
        err = object_encode(&cur, out);
    }
    if (err == RK_OK)
        ms->changed = out->len != old_len || memcmp(out->data, old, old_len) != 0;
    object_free(&cur);
    return err;
}

/* kv_local_merge, and whether the stored bytes changed (changed may be
 * NULL). */
static rk_err local_merge(kv *k, const char *dbkey, size_t dbkey_len, uint64_t intended,
                          const rk_object *incoming, bool *changed)
{
    merge_state ms = {.incoming = incoming};
    rk_err err;
    if (intended == 0 || intended == k->node_id)
        err = store_apply(k->st, dbkey, dbkey_len, merge_update_cb, &ms);
    else
        err = store_hint_apply(k->st, intended, dbkey, dbkey_len, merge_update_cb, &ms);
    if (err == RK_OK)
        kv_atomic_max(&k->max_siblings_seen, ms.siblings);
    if (err == RK_OK && changed != NULL)
        *changed = ms.changed;
    return err;
}

rk_err kv_local_merge(kv *k, const char *dbkey, size_t dbkey_len, uint64_t intended,
                      const rk_object *incoming)
{
    return local_merge(k, dbkey, dbkey_len, intended, incoming, NULL);
}

rk_err kv_merge_record(kv *k, const char *dbkey, size_t dbkey_len, const void *object,
                       size_t object_len, bool *changed)
{
    rk_object obj = {0};
    rk_err err = object_decode(object, object_len, &obj);
    if (err == RK_OK)
        err = local_merge(k, dbkey, dbkey_len, 0, &obj, changed);
    object_free(&obj);
    return err;
}

static rk_err check_write(const kv *k, const kv_write *w)
{
    if (!kv_table_valid(w->key.table, w->key.table_len) ||
        !kv_key_valid(w->key.key, w->key.key_len))
        return RK_EINVAL;
    if (!w->tombstone && (w->value == NULL || w->value_len == 0))
        return RK_EINVAL;
    if (!w->tombstone && w->value_len > k->cfg.max_value_bytes)
        return RK_ETOOBIG;
    if ((w->w ? w->w : k->cfg.w) > k->cfg.n)
        return RK_EINVAL;
    return RK_OK;
}

rk_err kv_put(kv *k, const kv_write *w, kv_result *res)
{
    memset(res, 0, sizeof *res);
    rk_err err = check_write(k, w);
    if (err != RK_OK)
        return err;
    if (k->cn != NULL)
        return coord_put(k, w, res);
    err = check_quorum(k, w->w, k->cfg.w, res);
    if (err == RK_OK)
        err = kv_local_write(k, w, res, NULL);
    if (err == RK_OK) {
        res->answered[0] = k->node_id;
        res->answered_count = 1;
    }
    return err;
}

/* State of one table scan. */
typedef struct scan_state {
    const char *table;
    size_t table_len;
    const char *after;      /* dbkey of the cursor, skipped if met */
    size_t after_len;
    kv_visit_cb visit_cb;
    void *arg;
    rk_err err;
} scan_state;

static bool scan_visit_cb(void *arg, const char *dbkey, size_t dbkey_len, const char *val,
                          size_t val_len)
{
    scan_state *ss = arg;
    if (ss->after != NULL && dbkey_len == ss->after_len && memcmp(dbkey, ss->after, dbkey_len) == 0)
        return true;
    uint64_t pos;
    const char *table, *key;
    size_t table_len, key_len;
    if (store_data_key_parse(dbkey, dbkey_len, &pos, &table, &table_len, &key, &key_len) != RK_OK)
        return true; /* not a record key; nothing of ours */
    if (table_len != ss->table_len || memcmp(table, ss->table, table_len) != 0)
        return true;
    rk_object obj = {0};
    rk_err err = object_decode((const uint8_t *)val, val_len, &obj);
    if (err != RK_OK) {
        RK_ERROR("kv", "skipping %.*s/%.*s in a scan: stored object does not decode",
                 (int)table_len, table, (int)key_len, key);
        return true;
    }
    bool go_on = true;
    if (object_live_count(&obj) > 0)
        go_on = ss->visit_cb(ss->arg, key, key_len, &obj);
    object_free(&obj);
    return go_on;
}

rk_err kv_scan(kv *k, const char *table, size_t table_len, const char *after, size_t after_len,
               kv_visit_cb visit_cb, void *arg)
{
    if (!kv_table_valid(table, table_len))
        return RK_EINVAL;
    if (after != NULL && !kv_key_valid(after, after_len))
        return RK_EINVAL;
    rk_buf start = {0};
    if (after != NULL) {
        kv_key cursor = {table, table_len, after, after_len};
        rk_err err = kv_data_key(&cursor, &start);
        if (err != RK_OK)
            return err;
    }
    scan_state ss = {
        .table = table,
        .table_len = table_len,
        .after = start.data,
        .after_len = start.len,
        .visit_cb = visit_cb,
        .arg = arg,
    };
    /* Records are ordered by ring position, so a table's records are spread
     * over the whole keyspace: scan from the cursor to the end. */
    rk_err err = store_scan(k->st, start.data, start.len, NULL, 0, scan_visit_cb, &ss);
    rk_buf_free(&start);
    return err;
}

void kv_get_stats(const kv *k, kv_stats *out)
{
    out->reads = atomic_load(&k->reads);
    out->writes = atomic_load(&k->writes);
    out->deletes = atomic_load(&k->deletes);
    out->siblings_dropped = atomic_load(&k->siblings_dropped);
    out->max_clock_entries = atomic_load(&k->max_clock_entries);
    out->max_siblings_seen = atomic_load(&k->max_siblings_seen);
    out->precondition_failures = atomic_load(&k->precondition_failures);
    out->quorum_failures = atomic_load(&k->quorum_failures);
    out->read_repairs = atomic_load(&k->read_repairs);
    out->hints_stored = atomic_load(&k->hints_stored);
    out->hints_delivered = atomic_load(&k->hints_delivered);
    out->hints_received = atomic_load(&k->hints_received);
    out->forwarded_writes = atomic_load(&k->forwarded_writes);
}
