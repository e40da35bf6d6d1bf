/* lease.c - leasing this node's interest from the replicas: at once when a
 * stream opens (it waits, so that a write acknowledged after the stream is
 * open makes an event), and again every lease_ms / 3 from the lease
 * thread, against the ring of that moment, so leases follow the replicas
 * when the ring changes and come back to a replica that restarted. */
#include <stdlib.h>
#include <string.h>

#include "watch_internal.h"

/* The calls one watch_lease_now waits for; shared with their callbacks,
 * which may outlive the wait. The last to let go frees it. */
typedef struct lease_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned refs;    /* the waiter and each call in flight */
    unsigned pending; /* calls not answered yet */
    watch *w;
} lease_wait;

static void wait_release(lease_wait *lw)
{
    pthread_mutex_lock(&lw->mu);
    bool last = --lw->refs == 0;
    pthread_mutex_unlock(&lw->mu);
    if (!last)
        return;
    pthread_cond_destroy(&lw->cv);
    pthread_mutex_destroy(&lw->mu);
    free(lw);
}

static void lease_cb(rk_err err, ProtobufCMessage *reply, void *arg)
{
    lease_wait *lw = arg;
    rpc_reply_free(reply);
    if (err != RK_OK)
        atomic_fetch_add_explicit(&lw->w->lease_failures, 1, memory_order_relaxed);
    pthread_mutex_lock(&lw->mu);
    lw->pending--;
    pthread_cond_signal(&lw->cv);
    pthread_mutex_unlock(&lw->mu);
    wait_release(lw);
}

/* One node and the keys (indices into names) it is a replica of. */
typedef struct target {
    uint64_t node;
    size_t *keys;
    size_t n_keys, cap;
    bool tables; /* a ring member: it gets the whole-table leases */
} target;

typedef struct targets {
    target *items;
    size_t len, cap;
} targets;

static target *target_of(targets *ts, uint64_t node)
{
    for (size_t i = 0; i < ts->len; i++)
        if (ts->items[i].node == node)
            return &ts->items[i];
    if (rk_array_grow((void **)&ts->items, &ts->cap, ts->len + 1, sizeof *ts->items) != RK_OK)
        return NULL;
    ts->items[ts->len] = (target){.node = node};
    return &ts->items[ts->len++];
}

static void add_key(targets *ts, uint64_t node, size_t key)
{
    target *t = target_of(ts, node);
    if (t == NULL)
        return;
    if (t->n_keys > 0 && t->keys[t->n_keys - 1] == key)
        return; /* a replica in both rings */
    if (rk_array_grow((void **)&t->keys, &t->cap, t->n_keys + 1, sizeof *t->keys) == RK_OK)
        t->keys[t->n_keys++] = key;
}

/* Who to lease from: each key's replicas in the ring and, while the ring
 * changes, in the next one; every member of either for whole tables. */
static void plan(const cluster_view *view, bool any_table, char *const *names,
                 const size_t *name_lens, size_t n_names, targets *out)
{
    const ring_t *rings[2] = {view->ring, view->next_ring};
    for (size_t r = 0; r < 2; r++) {
        if (rings[r] == NULL)
            continue;
        for (size_t m = 0; any_table && m < ring_member_count(rings[r]); m++) {
            target *t = target_of(out, ring_member_id(rings[r], m));
            if (t != NULL)
                t->tables = true;
        }
        uint64_t ids[RING_MAX_N];
        for (size_t i = 0; i < n_names; i++) {
            size_t table_len = strlen(names[i]);
            const char *key = names[i] + table_len + 1;
            uint64_t pos = ring_position(names[i], table_len, key, name_lens[i] - table_len - 1);
            size_t n = ring_preference_list(rings[r], pos, ids, RING_MAX_N);
            for (size_t j = 0; j < n; j++)
                add_key(out, ids[j], i);
        }
    }
}

/* Sends t its leases, in batches; each call started adds to lw. */
static void send_leases(watch *w, const cluster_view *view, const target *t, char *const *tables,
                        size_t n_tables, char *const *names, const size_t *name_lens, lease_op op,
                        lease_wait *lw)
{
    Ringkv__WatchKey *keys = calloc(WATCH_LEASE_BATCH, sizeof *keys);
    Ringkv__WatchKey **ptrs = calloc(WATCH_LEASE_BATCH, sizeof *ptrs);
    if (keys == NULL || ptrs == NULL) {
        free(keys);
        free(ptrs);
        return;
    }
    const cluster_view_member *m = cluster_view_find(view, t->node);
    size_t first = 0;
    bool tables_sent = !t->tables || n_tables == 0;
    while (first < t->n_keys || !tables_sent) {
        Ringkv__WatchLeaseRequest req = RINGKV__WATCH_LEASE_REQUEST__INIT;
        req.lease_ms = w->cfg.lease_ms;
        req.release = op == LEASE_RELEASE;
        if (!tables_sent) {
            req.n_tables = n_tables;
            req.tables = (char **)tables;
            tables_sent = true;
        }
        size_t n = 0;
        for (; first < t->n_keys && n < WATCH_LEASE_BATCH; first++, n++) {
            size_t i = t->keys[first];
            size_t table_len = strlen(names[i]);
            ringkv__watch_key__init(&keys[n]);
            keys[n].table = names[i];
            keys[n].key = (ProtobufCBinaryData){name_lens[i] - table_len - 1,
                                                (uint8_t *)names[i] + table_len + 1};
            ptrs[n] = &keys[n];
        }
        req.n_keys = n;
        req.keys = ptrs;
        if (t->node == w->self) {
            watch_registry_lease(w, w->self, &req, rk_monotonic_ms() + w->cfg.lease_ms);
            continue;
        }
        pthread_mutex_lock(&lw->mu);
        lw->refs++;
        lw->pending++;
        pthread_mutex_unlock(&lw->mu);
        rk_err err =
            rpc_call_async(w->client, m->rpc_addr, &ringkv__watch__descriptor, "Lease", &req.base,
                           rk_deadline_after_ms(w->cfg.lease_wait_ms), lease_cb, lw);
        if (err != RK_OK) {
            atomic_fetch_add_explicit(&w->lease_failures, 1, memory_order_relaxed);
            pthread_mutex_lock(&lw->mu);
            lw->pending--;
            pthread_mutex_unlock(&lw->mu);
            wait_release(lw);
        }
    }
    free(keys);
    free(ptrs);
}

void watch_lease_now(watch *w, char *const *tables, size_t n_tables, char *const *names,
                     const size_t *name_lens, size_t n_names, lease_op op)
{
    lease_wait *lw = calloc(1, sizeof *lw);
    if (lw == NULL)
        return;
    pthread_mutex_init(&lw->mu, NULL);
    rk_cond_init_monotonic(&lw->cv);
    lw->refs = 1;
    lw->w = w;
    cluster_view *view = cluster_node_view(w->cn);
    targets ts = {0};
    plan(view, n_tables > 0, names, name_lens, n_names, &ts);
    for (size_t i = 0; i < ts.len; i++) {
        const target *t = &ts.items[i];
        /* A node that is down gets its leases at the next renewal after it
         * is back: waiting for it would hold the stream for nothing. */
        if (t->node == w->self ||
            (cluster_view_alive(view, t->node) && cluster_view_find(view, t->node) != NULL))
            send_leases(w, view, t, tables, n_tables, names, name_lens, op, lw);
        free(t->keys);
    }
    free(ts.items);
    cluster_view_unref(view);
    if (op == LEASE_WAIT) {
        uint64_t deadline = rk_deadline_after_ms(w->cfg.lease_wait_ms);
        pthread_mutex_lock(&lw->mu);
        while (lw->pending > 0 && rk_cond_wait_until(&lw->cv, &lw->mu, deadline) == 0)
            ;
        pthread_mutex_unlock(&lw->mu);
    }
    wait_release(lw);
}

/* ---- the lease thread ------------------------------------------------------ */

/* Names of tables and keys, copied out of the hub for one lease round. */
typedef struct name_list {
    char **tables;
    size_t n_tables, tables_cap;
    char **names;
    size_t *name_lens;
    size_t n_names, names_cap, lens_cap;
} name_list;

static void add_name(name_list *l, const char *key, size_t key_len, bool table)
{
    char *copy = malloc(key_len + 1);
    if (copy == NULL)
        return;
    memcpy(copy, key, key_len);
    copy[key_len] = '\0';
    if (table && rk_array_grow((void **)&l->tables, &l->tables_cap, l->n_tables + 1,
                               sizeof *l->tables) == RK_OK) {
        l->tables[l->n_tables++] = copy;
        return;
    }
    if (!table &&
        rk_array_grow((void **)&l->names, &l->names_cap, l->n_names + 1, sizeof *l->names) ==
            RK_OK &&
        rk_array_grow((void **)&l->name_lens, &l->lens_cap, l->n_names + 1, sizeof *l->name_lens) ==
            RK_OK) {
        l->names[l->n_names] = copy;
        l->name_lens[l->n_names++] = key_len;
        return;
    }
    free(copy);
}

static void name_list_free(name_list *l)
{
    for (size_t i = 0; i < l->n_tables; i++)
        free(l->tables[i]);
    for (size_t i = 0; i < l->n_names; i++)
        free(l->names[i]);
    free(l->tables);
    free(l->names);
    free(l->name_lens);
}

/* One round: what to renew (states with streams, or lingering) and what
 * to release (states whose linger is over, freed here), so that replicas
 * stop notifying at once instead of when the lease runs out. */
typedef struct renewal {
    name_list renew, release;
    uint64_t now;
} renewal;

static bool renew_key_cb(void *arg, const char *key, size_t key_len, void *value)
{
    renewal *rn = arg;
    keystate *ks = value;
    if (ks->n_streams == 0 && ks->linger_until == 0)
        return false; /* a table stream's, leased with its table */
    bool over = ks->n_streams == 0 && ks->linger_until <= rn->now;
    add_name(over ? &rn->release : &rn->renew, key, key_len, false);
    if (!over)
        return false;
    watch_event_unref(ks->last);
    free(ks);
    return true;
}

static bool renew_table_cb(void *arg, const char *key, size_t key_len, void *value)
{
    renewal *rn = arg;
    tablestate *ts = value;
    bool over = ts->n_streams == 0 && ts->linger_until <= rn->now;
    add_name(over ? &rn->release : &rn->renew, key, key_len, true);
    if (over)
        free(ts);
    return over;
}

static void renew(watch *w)
{
    renewal rn = {.now = rk_monotonic_ms()};
    pthread_mutex_lock(&w->mu);
    rk_map_visit(&w->keys, renew_key_cb, &rn);
    rk_map_visit(&w->tables, renew_table_cb, &rn);
    pthread_mutex_unlock(&w->mu);
    name_list *lists[2] = {&rn.renew, &rn.release};
    for (size_t i = 0; i < 2; i++) {
        name_list *l = lists[i];
        if (l->n_tables + l->n_names > 0)
            watch_lease_now(w, l->tables, l->n_tables, l->names, l->name_lens, l->n_names,
                            i == 0 ? LEASE_RENEW : LEASE_RELEASE);
        name_list_free(l);
    }
    watch_registry_sweep(w);
}

static void *lease_thread(void *arg)
{
    watch *w = arg;
    uint64_t period = w->cfg.lease_ms / 3 ? w->cfg.lease_ms / 3 : 1;
    pthread_mutex_lock(&w->run_mu);
    while (!w->stopping) {
        uint64_t next = rk_monotonic_ms() + period;
        while (!w->stopping && rk_cond_wait_until(&w->run_cv, &w->run_mu, next) == 0)
            ;
        if (w->stopping)
            break;
        pthread_mutex_unlock(&w->run_mu);
        renew(w);
        pthread_mutex_lock(&w->run_mu);
    }
    pthread_mutex_unlock(&w->run_mu);
    return NULL;
}

rk_err watch_lease_start(watch *w)
{
    if (pthread_create(&w->thread, NULL, lease_thread, w) != 0)
        return RK_ENOMEM;
    w->thread_running = true;
    return RK_OK;
}

void watch_lease_stop(watch *w)
{
    pthread_mutex_lock(&w->run_mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->run_cv);
    pthread_mutex_unlock(&w->run_mu);
    if (w->thread_running)
        pthread_join(w->thread, NULL);
    w->thread_running = false;
}
