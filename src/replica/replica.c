/* replica.c - this node's copy of the records: reads, a client's write
 * applied as its coordinator, merges of what other replicas send, and
 * table scans.
 *
 * A write is one store_apply: under the key's lock stripe the current
 * object is decoded, the conditions are checked, the coordinator write of
 * docs/causality.md is applied and the object is encoded back. The object
 * that was written is returned, so the gateway answers without a second
 * read. */
#include <stdlib.h>
#include <string.h>

#include "replica_internal.h"

void replica_config_default(replica_config *cfg)
{
    cfg->max_siblings = 16;
    cfg->max_value_bytes = 1u << 20;
    cfg->accept_hints = true;
}

rk_err replica_open(store *st, rk_actor node_id, const replica_config *cfg, replica **out)
{
    if (st == NULL || node_id == 0 || cfg->max_siblings == 0 || cfg->max_value_bytes == 0)
        return RK_EINVAL;
    replica *rp = calloc(1, sizeof *rp);
    if (rp == NULL)
        return RK_ENOMEM;
    rp->st = st;
    rp->node_id = node_id;
    rp->cfg = *cfg;
    rk_err err = replica_tables_load(rp);
    if (err != RK_OK) {
        free(rp);
        return err;
    }
    *out = rp;
    return RK_OK;
}

void replica_close(replica *rp)
{
    if (rp == NULL)
        return;
    replica_tables_free(rp);
    free(rp);
}

rk_actor replica_node_id(const replica *rp)
{
    return rp->node_id;
}

const replica_config *replica_get_config(const replica *rp)
{
    return &rp->cfg;
}

static void atomic_max(_Atomic uint64_t *slot, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(slot, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak(slot, &cur, v))
        ;
}

static bool is_own(const replica *rp, uint64_t intended)
{
    return intended == 0 || intended == rp->node_id;
}

rk_err replica_read(replica *rp, const char *dbkey, size_t dbkey_len, uint64_t intended,
                    rk_buf *out)
{
    if (is_own(rp, intended))
        return store_get(rp->st, dbkey, dbkey_len, out);
    return store_hint_get(rp->st, intended, dbkey, dbkey_len, out);
}

rk_err replica_get(replica *rp, const replica_key *key, rk_object *out)
{
    rk_buf val = {0};
    rk_object obj = {0};
    rk_err err = replica_read(rp, key->dbkey, key->dbkey_len, 0, &val);
    if (err == RK_OK)
        err = object_decode((const uint8_t *)val.data, val.len, &obj);
    rk_buf_free(&val);
    if (err == RK_ECORRUPT)
        RK_ERROR("replica", "stored object for %.*s/%.*s does not decode", (int)key->table_len,
                 key->table, (int)key->key_len, key->key);
    if (err != RK_OK) {
        object_free(&obj);
        return err;
    }
    *out = obj;
    return RK_OK;
}

/* ---- a client's write ------------------------------------------------- */

/* State shared with the store's read-merge-write callback. */
typedef struct write_state {
    replica *rp;
    const replica_key *key;
    const replica_update *u;
    rk_object obj;
    bool existed;
    size_t dropped;
    clock_dot dot;
    rk_buf *encoded; /* a copy of the bytes written, when asked for */
    rk_buf *told;    /* a copy for the listener, when it wants one */
} write_state;

static rk_err check_conditions(const replica_update *u, const rk_object *obj, bool existed)
{
    if (u->if_none_match && existed)
        return RK_EPRECOND;
    if (u->if_match != NULL && vclock_compare(&obj->clock, u->if_match) != VCLOCK_EQUAL)
        return RK_EPRECOND;
    if (u->tombstone && !existed)
        return RK_ENOTFOUND;
    return RK_OK;
}

static rk_err write_update_cb(void *arg, const char *old, size_t old_len, rk_buf *out)
{
    write_state *ws = arg;
    const replica_update *u = ws->u;
    object_free(&ws->obj); /* store_apply calls this once; keep it safe anyway */
    if (old != NULL) {
        rk_err err = object_decode((const uint8_t *)old, old_len, &ws->obj);
        if (err != RK_OK) {
            RK_ERROR("replica",
                     "stored object for %.*s/%.*s does not decode; refusing to "
                     "overwrite",
                     (int)ws->key->table_len, ws->key->table, (int)ws->key->key_len, ws->key->key);
            return err;
        }
    }
    ws->existed = object_live_count(&ws->obj) > 0;
    rk_err err = check_conditions(u, &ws->obj, ws->existed);
    if (err != RK_OK)
        return err;
    object_write ow = {
        .value = u->value,
        .value_len = u->value_len,
        .tombstone = u->tombstone,
        .owner = u->owner ? u->owner : "",
        .timestamp_ms = rk_now_ms(),
    };
    err = object_update(&ws->obj, u->context, ws->rp->node_id, &ow, ws->rp->cfg.max_siblings,
                        &ws->dropped, &ws->dot);
    if (err != RK_OK)
        return err;
    size_t before = out->len;
    err = object_encode(&ws->obj, out);
    if (err == RK_OK && ws->encoded != NULL)
        err = rk_buf_append(ws->encoded, out->data + before, out->len - before);
    if (err == RK_OK && ws->told != NULL)
        err = rk_buf_append(ws->told, out->data + before, out->len - before);
    return err;
}

static void count_write(replica *rp, const write_state *ws)
{
    atomic_fetch_add_explicit(ws->u->tombstone ? &rp->deletes : &rp->writes, 1,
                              memory_order_relaxed);
    if (ws->dropped)
        atomic_fetch_add_explicit(&rp->siblings_dropped, ws->dropped, memory_order_relaxed);
    atomic_max(&rp->max_clock_entries, ws->obj.clock.len);
    atomic_max(&rp->max_siblings_seen, ws->obj.len);
}

/* A buffer for the listener's copy of what is written to dbkey, or NULL
 * when no listener wants it. */
static rk_buf *listener_copy(replica *rp, const char *dbkey, size_t dbkey_len, rk_buf *buf)
{
    const replica_listener *l = &rp->listener;
    return l->wants_cb != NULL && l->wants_cb(l->arg, dbkey, dbkey_len) ? buf : NULL;
}

static void listener_tell(replica *rp, const char *dbkey, size_t dbkey_len, rk_buf *copy)
{
    if (copy == NULL)
        return;
    rp->listener.changed_cb(rp->listener.arg, dbkey, dbkey_len, copy->data, copy->len);
    rk_buf_free(copy);
}

void replica_set_listener(replica *rp, const replica_listener *l)
{
    rp->listener = l != NULL ? *l : (replica_listener){0};
}

rk_err replica_write(replica *rp, const replica_key *key, const replica_update *u,
                     replica_written *out, rk_buf *encoded)
{
    if (!u->tombstone && (u->value == NULL || u->value_len == 0))
        return RK_EINVAL;
    if (!u->tombstone && u->value_len > rp->cfg.max_value_bytes)
        return RK_ETOOBIG;
    rk_buf told = {0};
    write_state ws = {.rp = rp, .key = key, .u = u, .encoded = encoded};
    ws.told = listener_copy(rp, key->dbkey, key->dbkey_len, &told);
    size_t encoded_before = encoded ? encoded->len : 0;
    rk_err err = store_apply(rp->st, key->dbkey, key->dbkey_len, write_update_cb, &ws);
    if (err != RK_OK) {
        if (err == RK_EPRECOND)
            atomic_fetch_add_explicit(&rp->precondition_failures, 1, memory_order_relaxed);
        if (encoded != NULL)
            encoded->len = encoded_before;
        object_free(&ws.obj);
        rk_buf_free(&told);
        return err;
    }
    listener_tell(rp, key->dbkey, key->dbkey_len, ws.told);
    replica_tables_note_table(rp, key->table, key->table_len);
    count_write(rp, &ws);
    out->obj = ws.obj;
    out->existed = ws.existed;
    out->dot = ws.dot;
    return RK_OK;
}

/* ---- merges ----------------------------------------------------------- */

/* State of one replica merge. */
typedef struct merge_state {
    const rk_object *incoming;
    size_t siblings; /* after the merge */
    bool changed;    /* the stored bytes differ from before */
    rk_buf *told;    /* a copy for the listener, when it wants one */
} merge_state;

static rk_err merge_update_cb(void *arg, const char *old, size_t old_len, rk_buf *out)
{
    merge_state *ms = arg;
    if (old == NULL) {
        ms->siblings = ms->incoming->len;
        ms->changed = true;
        rk_err err = object_encode(ms->incoming, out);
        if (err == RK_OK && ms->told != NULL)
            err = rk_buf_append(ms->told, out->data, out->len);
        return err;
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
    if (err == RK_OK && ms->changed && ms->told != NULL)
        err = rk_buf_append(ms->told, out->data, out->len);
    object_free(&cur);
    return err;
}

rk_err replica_merge(replica *rp, const char *dbkey, size_t dbkey_len, uint64_t intended,
                     const rk_object *incoming, bool *changed)
{
    merge_state ms = {.incoming = incoming};
    rk_buf told = {0};
    rk_err err;
    if (is_own(rp, intended)) {
        ms.told = listener_copy(rp, dbkey, dbkey_len, &told);
        err = store_apply(rp->st, dbkey, dbkey_len, merge_update_cb, &ms);
    } else {
        err = store_hint_apply(rp->st, intended, dbkey, dbkey_len, merge_update_cb, &ms);
    }
    if (err != RK_OK || !ms.changed) {
        rk_buf_free(&told);
        if (err != RK_OK)
            return err;
    } else {
        listener_tell(rp, dbkey, dbkey_len, ms.told);
        replica_tables_note(rp, dbkey, dbkey_len);
    }
    atomic_max(&rp->max_siblings_seen, ms.siblings);
    if (changed != NULL)
        *changed = ms.changed;
    return RK_OK;
}

rk_err replica_merge_encoded(replica *rp, const char *dbkey, size_t dbkey_len, uint64_t intended,
                             const void *object, size_t object_len, bool *changed)
{
    rk_object obj = {0};
    rk_err err = object_decode(object, object_len, &obj);
    if (err == RK_OK)
        err = replica_merge(rp, dbkey, dbkey_len, intended, &obj, changed);
    object_free(&obj);
    return err;
}

/* ---- scans ------------------------------------------------------------ */

/* State of one table scan. */
typedef struct scan_state {
    const char *table;
    size_t table_len;
    const char *after; /* dbkey of the cursor, skipped if met */
    size_t after_len;
    replica_visit_cb visit_cb;
    void *arg;
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
    if (object_decode((const uint8_t *)val, val_len, &obj) != RK_OK) {
        RK_ERROR("replica", "skipping %.*s/%.*s in a scan: stored object does not decode",
                 (int)table_len, table, (int)key_len, key);
        return true;
    }
    bool go_on = true;
    if (object_live_count(&obj) > 0)
        go_on = ss->visit_cb(ss->arg, key, key_len, &obj);
    object_free(&obj);
    return go_on;
}

rk_err replica_scan_table(replica *rp, const char *table, size_t table_len, const char *after,
                          size_t after_len, replica_visit_cb visit_cb, void *arg)
{
    if (!replica_table_valid(table, table_len))
        return RK_EINVAL;
    replica_key cursor;
    if (after != NULL && replica_key_init(&cursor, table, table_len, after, after_len) != RK_OK)
        return RK_EINVAL;
    scan_state ss = {
        .table = table,
        .table_len = table_len,
        .after = after != NULL ? cursor.dbkey : NULL,
        .after_len = after != NULL ? cursor.dbkey_len : 0,
        .visit_cb = visit_cb,
        .arg = arg,
    };
    /* Records are ordered by ring position, so a table's records are spread
     * over the whole keyspace: scan from the cursor to the end. */
    return store_scan(rp->st, ss.after, ss.after_len, NULL, 0, scan_visit_cb, &ss);
}

void replica_get_stats(const replica *rp, replica_stats *out)
{
    out->writes = atomic_load(&rp->writes);
    out->deletes = atomic_load(&rp->deletes);
    out->siblings_dropped = atomic_load(&rp->siblings_dropped);
    out->max_clock_entries = atomic_load(&rp->max_clock_entries);
    out->max_siblings_seen = atomic_load(&rp->max_siblings_seen);
    out->precondition_failures = atomic_load(&rp->precondition_failures);
    out->hints_received = atomic_load(&rp->hints_received);
}
