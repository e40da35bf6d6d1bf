/* registry.c - the leases this node grants: which nodes want the changes
 * of which keys and tables, and telling them. Runs on the writing thread
 * of every change (the replica's listener), so it only looks up, copies
 * and starts an asynchronous call: a slow or dead subscriber node costs a
 * write nothing. */
#include <stdlib.h>
#include <string.h>

#include "ringkv/store.h"
#include "watch_internal.h"

typedef struct lease {
    uint64_t node;
    uint64_t expires_ms;
} lease;

/* The leases on one key or table: usually one node's (the hub's), so the
 * set is one allocation sized to what it holds, not an array grown from 8
 * (a node of a cluster whose streams watch 100,000 keys holds 100,000 of
 * these). */
typedef struct lease_set {
    uint32_t len, cap;
    lease items[];
} lease_set;

/* Adds (or extends) node's lease on name in m, one of w's two maps. */
static rk_err lease_add(watch *w, rk_map *m, const char *name, size_t len, uint64_t node,
                        uint64_t expires)
{
    lease_set *ls = rk_map_get(m, name, len);
    for (size_t i = 0; ls != NULL && i < ls->len; i++) {
        if (ls->items[i].node == node) {
            if (ls->items[i].expires_ms < expires)
                ls->items[i].expires_ms = expires;
            return RK_OK;
        }
    }
    if (ls == NULL || ls->len == ls->cap) {
        uint32_t cap = ls == NULL ? 1 : ls->cap * 2;
        lease_set *grown = realloc(ls, sizeof *ls + cap * sizeof ls->items[0]);
        if (grown == NULL)
            return RK_ENOMEM;
        if (ls == NULL)
            grown->len = 0;
        grown->cap = cap;
        rk_err err = rk_map_put(m, name, len, grown); /* new, or the moved set */
        if (err != RK_OK) {
            if (ls == NULL)
                free(grown);
            return err; /* a moved set is still in the map: only a new one can fail */
        }
        if (ls == NULL)
            atomic_fetch_add(&w->reg_count, 1);
        ls = grown;
    }
    ls->items[ls->len++] = (lease){node, expires};
    atomic_fetch_add_explicit(&w->reg_leases, 1, memory_order_relaxed);
    return RK_OK;
}

/* Drops node's lease on name, if it has one (the set goes at the next
 * sweep once empty). */
static void lease_drop(rk_map *m, const char *name, size_t len, uint64_t node)
{
    lease_set *ls = rk_map_get(m, name, len);
    for (size_t i = 0; ls != NULL && i < ls->len; i++)
        if (ls->items[i].node == node)
            ls->items[i].expires_ms = 0;
}

rk_err watch_registry_lease(watch *w, uint64_t node, const Ringkv__WatchLeaseRequest *req,
                            uint64_t expires_ms)
{
    char name[REPLICA_TABLE_MAX + 1 + REPLICA_KEY_MAX];
    rk_err err = RK_OK;
    pthread_mutex_lock(&w->reg_mu);
    for (size_t i = 0; err == RK_OK && i < req->n_tables; i++) {
        const char *t = req->tables[i];
        size_t tl = strlen(t);
        if (!replica_table_valid(t, tl))
            continue;
        if (req->release)
            lease_drop(&w->reg_tables, t, tl, node);
        else
            err = lease_add(w, &w->reg_tables, t, tl, node, expires_ms);
    }
    for (size_t i = 0; err == RK_OK && i < req->n_keys; i++) {
        const Ringkv__WatchKey *k = req->keys[i];
        size_t tl = strlen(k->table);
        if (!replica_table_valid(k->table, tl) ||
            !replica_key_valid((const char *)k->key.data, k->key.len))
            continue;
        size_t len = watch_key_name(k->table, tl, (const char *)k->key.data, k->key.len, name);
        if (req->release)
            lease_drop(&w->reg_keys, name, len, node);
        else
            err = lease_add(w, &w->reg_keys, name, len, node, expires_ms);
    }
    pthread_mutex_unlock(&w->reg_mu);
    return err;
}

typedef struct sweep_state {
    uint64_t now;
    watch *w;
} sweep_state;

static bool sweep_cb(void *arg, const char *key, size_t key_len, void *value)
{
    (void)key, (void)key_len;
    sweep_state *st = arg;
    lease_set *ls = value;
    size_t kept = 0;
    for (size_t i = 0; i < ls->len; i++)
        if (ls->items[i].expires_ms > st->now)
            ls->items[kept++] = ls->items[i];
    atomic_fetch_sub_explicit(&st->w->reg_leases, ls->len - kept, memory_order_relaxed);
    ls->len = (uint32_t)kept;
    if (kept > 0)
        return false;
    free(ls);
    atomic_fetch_sub(&st->w->reg_count, 1);
    return true;
}

void watch_registry_sweep(watch *w)
{
    sweep_state st = {.now = rk_monotonic_ms(), .w = w};
    pthread_mutex_lock(&w->reg_mu);
    rk_map_visit(&w->reg_keys, sweep_cb, &st);
    rk_map_visit(&w->reg_tables, sweep_cb, &st);
    pthread_mutex_unlock(&w->reg_mu);
}

/* Kept as a counter, not counted: /metrics must not walk 100,000 entries
 * under the lock every write's listener takes. */
size_t watch_registry_leases(watch *w)
{
    return atomic_load_explicit(&w->reg_leases, memory_order_relaxed);
}

static bool free_cb(void *arg, const char *key, size_t key_len, void *value)
{
    (void)arg, (void)key, (void)key_len;
    free(value);
    return false;
}

void watch_registry_free(watch *w)
{
    rk_map_visit(&w->reg_keys, free_cb, NULL);
    rk_map_visit(&w->reg_tables, free_cb, NULL);
    rk_map_free(&w->reg_keys);
    rk_map_free(&w->reg_tables);
}

/* ---- the replica's listener ---------------------------------------------- */

/* The table and key of a storage key. */
typedef struct named_key {
    const char *table, *key;
    size_t table_len, key_len;
    char name[REPLICA_TABLE_MAX + 1 + REPLICA_KEY_MAX];
    size_t name_len;
} named_key;

static bool name_of(const char *dbkey, size_t dbkey_len, named_key *out)
{
    uint64_t position;
    if (store_data_key_parse(dbkey, dbkey_len, &position, &out->table, &out->table_len, &out->key,
                             &out->key_len) != RK_OK ||
        out->table_len > REPLICA_TABLE_MAX || out->key_len > REPLICA_KEY_MAX)
        return false;
    out->name_len = watch_key_name(out->table, out->table_len, out->key, out->key_len, out->name);
    return true;
}

/* The nodes with a live lease on nk (its key or its table), at most cap. */
static size_t leaseholders(watch *w, const named_key *nk, uint64_t *out, size_t cap)
{
    uint64_t now = rk_monotonic_ms();
    size_t n = 0;
    pthread_mutex_lock(&w->reg_mu);
    const lease_set *sets[2] = {rk_map_get(&w->reg_keys, nk->name, nk->name_len),
                                rk_map_get(&w->reg_tables, nk->table, nk->table_len)};
    for (size_t s = 0; s < 2; s++) {
        for (size_t i = 0; sets[s] != NULL && i < sets[s]->len && n < cap; i++) {
            const lease *l = &sets[s]->items[i];
            bool seen = false;
            for (size_t j = 0; j < n && !seen; j++)
                seen = out[j] == l->node;
            if (l->expires_ms > now && !seen)
                out[n++] = l->node;
        }
    }
    pthread_mutex_unlock(&w->reg_mu);
    return n;
}

bool watch_registry_wants(void *arg, const char *dbkey, size_t dbkey_len)
{
    watch *w = arg;
    if (atomic_load_explicit(&w->reg_count, memory_order_relaxed) == 0)
        return false;
    named_key nk;
    uint64_t one;
    return name_of(dbkey, dbkey_len, &nk) && leaseholders(w, &nk, &one, 1) > 0;
}

static void notify_cb(rk_err err, ProtobufCMessage *reply, void *arg)
{
    watch *w = arg;
    if (err != RK_OK)
        atomic_fetch_add_explicit(&w->notify_failures, 1, memory_order_relaxed);
    rpc_reply_free(reply);
}

/* Sends one change to node (another node: an RPC it need not wait for). */
static void notify_node(watch *w, const cluster_view *view, uint64_t node,
                        const Ringkv__WatchNotifyRequest *req)
{
    const cluster_view_member *m = cluster_view_find(view, node);
    if (m == NULL)
        return;
    atomic_fetch_add_explicit(&w->notifications_out, 1, memory_order_relaxed);
    rk_err err =
        rpc_call_async(w->client, m->rpc_addr, &ringkv__watch__descriptor, "Notify", &req->base,
                       rk_deadline_after_ms(WATCH_NOTIFY_TIMEOUT_MS), notify_cb, w);
    if (err != RK_OK)
        atomic_fetch_add_explicit(&w->notify_failures, 1, memory_order_relaxed);
}

void watch_registry_changed(void *arg, const char *dbkey, size_t dbkey_len, const void *object,
                            size_t object_len)
{
    watch *w = arg;
    named_key nk;
    uint64_t nodes[64];
    if (!name_of(dbkey, dbkey_len, &nk))
        return;
    size_t n = leaseholders(w, &nk, nodes, 64);
    if (n == 0)
        return;
    /* The table and key are not NUL-terminated in dbkey. */
    char table[REPLICA_TABLE_MAX + 1];
    memcpy(table, nk.table, nk.table_len);
    table[nk.table_len] = '\0';
    Ringkv__WatchChange change = RINGKV__WATCH_CHANGE__INIT;
    change.table = table;
    change.key = (ProtobufCBinaryData){nk.key_len, (uint8_t *)nk.key};
    change.object = (ProtobufCBinaryData){object_len, (uint8_t *)object};
    Ringkv__WatchChange *changes[1] = {&change};
    Ringkv__WatchNotifyRequest req = RINGKV__WATCH_NOTIFY_REQUEST__INIT;
    req.n_changes = 1;
    req.changes = changes;
    cluster_view *view = NULL;
    for (size_t i = 0; i < n; i++) {
        if (nodes[i] == w->self) {
            /* This node's own streams: no RPC to itself. */
            rk_object obj = {0};
            if (object_decode(object, object_len, &obj) == RK_OK) {
                atomic_fetch_add_explicit(&w->notifications_in, 1, memory_order_relaxed);
                watch_hub_apply(w, nk.table, nk.table_len, nk.key, nk.key_len, &obj);
            }
            object_free(&obj);
            continue;
        }
        if (view == NULL)
            view = cluster_node_view(w->cn);
        notify_node(w, view, nodes[i], &req);
    }
    if (view != NULL)
        cluster_view_unref(view);
}
