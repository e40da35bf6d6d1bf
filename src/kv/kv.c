/* kv.c - the service's entry points: requests are checked here, their key
 * addressed once (replica_key: ring position and storage key), and handed
 * to the coordinator (coord.c); ?local=1 reads and table listings go to
 * this node's replica directly. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "kv_internal.h"

void kv_config_default(kv_config *cfg)
{
    *cfg = (kv_config){
        .n = 3,
        .r = 2,
        .w = 2,
        .max_siblings = 16,
        .max_value_bytes = 1u << 20,
        .timeout_ms = 1000,
        .handoff = true,
        .speculative_ms = 0,
        .read_repair_percent = 10,
    };
}

void kv_config_replica(const kv_config *cfg, replica_config *out)
{
    replica_config_default(out);
    out->max_siblings = cfg->max_siblings;
    out->max_value_bytes = cfg->max_value_bytes;
    out->accept_hints = cfg->handoff;
}

rk_err kv_open(replica *rp, cluster_node *cn, rpc_client *client, const kv_config *cfg, kv **out)
{
    if (rp == NULL || cn == NULL || client == NULL || cfg->n == 0 || cfg->r == 0 || cfg->w == 0 ||
        cfg->r > cfg->n || cfg->w > cfg->n || cfg->max_siblings == 0 ||
        cfg->read_repair_percent > 100)
        return RK_EINVAL;
    kv *k = calloc(1, sizeof *k);
    if (k == NULL)
        return RK_ENOMEM;
    k->rp = rp;
    k->node_id = replica_node_id(rp);
    k->cn = cn;
    k->client = client;
    k->cfg = *cfg;
    if (k->cfg.timeout_ms == 0)
        k->cfg.timeout_ms = 1000;
    kv_latency_window_init(&k->read_latency);
    k->clock_id = replica_clock_id();
    if (pbs_samples_alloc(randombytes_random() | (uint64_t)randombytes_random() << 32, &k->pbs) !=
        RK_OK) {
        free(k);
        return RK_ENOMEM;
    }
    *out = k;
    return RK_OK;
}

void kv_close(kv *k)
{
    if (k == NULL)
        return;
    pbs_samples_free(k->pbs);
    free(k);
}

rk_err kv_pbs_snapshot(kv *k, pbs_snapshot *out)
{
    return pbs_samples_snapshot(k->pbs, out);
}

const kv_config *kv_get_config(const kv *k)
{
    return &k->cfg;
}

rk_actor kv_node_id(const kv *k)
{
    return k->node_id;
}

/* This node's replica alone: ?local=1. */
static rk_err local_get(kv *k, const replica_key *key, kv_result *res)
{
    res->acks = res->needed = 1;
    rk_err err = replica_get(k->rp, key, &res->obj);
    if (err == RK_OK) {
        res->answered[0] = k->node_id;
        res->answered_count = 1;
    }
    return err;
}

rk_err kv_get(kv *k, const kv_key *key, const kv_read_opts *opts, kv_result *res)
{
    memset(res, 0, sizeof *res);
    replica_key rk;
    if (replica_key_init(&rk, key->table, key->table_len, key->key, key->key_len) != RK_OK)
        return RK_EINVAL;
    if ((opts->r ? opts->r : k->cfg.r) > k->cfg.n)
        return RK_EINVAL;
    atomic_fetch_add_explicit(&k->reads, 1, memory_order_relaxed);
    if (opts->local)
        return local_get(k, &rk, res);
    return kv_coord_get(k, &rk, opts, res);
}

static rk_err check_write(const kv *k, const kv_write *w)
{
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
    replica_key rk;
    if (replica_key_init(&rk, w->key.table, w->key.table_len, w->key.key, w->key.key_len) != RK_OK)
        return RK_EINVAL;
    rk_err err = check_write(k, w);
    if (err != RK_OK)
        return err;
    return kv_coord_put(k, &rk, w, res);
}

rk_err kv_scan(kv *k, const char *table, size_t table_len, const char *after, size_t after_len,
               kv_visit_cb visit_cb, void *arg)
{
    return replica_scan_table(k->rp, table, table_len, after, after_len, visit_cb, arg);
}

rk_err kv_tables(kv *k, replica_table_name **out, size_t *out_count)
{
    return replica_tables_list(k->rp, out, out_count);
}

void kv_get_stats(const kv *k, kv_stats *out)
{
    replica_stats rs;
    replica_get_stats(k->rp, &rs);
    *out = (kv_stats){
        .reads = atomic_load(&k->reads),
        .writes = rs.writes,
        .deletes = rs.deletes,
        .siblings_dropped = rs.siblings_dropped,
        .max_clock_entries = rs.max_clock_entries,
        .max_siblings_seen = rs.max_siblings_seen,
        .precondition_failures = rs.precondition_failures,
        .quorum_failures = atomic_load(&k->quorum_failures),
        .read_repairs = atomic_load(&k->read_repairs),
        .hints_stored = atomic_load(&k->hints_stored),
        .hints_received = rs.hints_received,
        .forwarded_writes = atomic_load(&k->forwarded_writes),
        .speculative_reads = atomic_load(&k->speculative_reads),
        .full_reads = atomic_load(&k->full_reads),
    };
}

rk_err kv_get_storage_stats(kv *k, store_stats *out)
{
    return replica_get_store_stats(k->rp, out);
}

rk_err kv_drop_hints(kv *k, uint64_t intended, uint64_t *out_count)
{
    return replica_hint_drop(k->rp, intended, out_count);
}
