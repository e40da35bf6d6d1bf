/* hints.c - the writes this node holds for replicas that missed them: who
 * they are for, reading them in order to hand them over, and deleting them
 * once delivered (or when an operator drops them); and taking the ones
 * another node held for this one. Storing a hint is replica_merge with the
 * intended node. */
#include "replica_internal.h"
#include "ringkv/ring.h"

rk_err replica_take_hint(replica *rp, const char *dbkey, size_t dbkey_len, const void *object,
                         size_t object_len, bool *changed)
{
    if (!rp->cfg.accept_hints)
        return RK_EUNSUPPORTED;
    /* A peer with the secret is trusted, but a bug there must not file
     * garbage here: the key must be a data key a client could have made. */
    uint64_t position;
    const char *table, *key;
    size_t table_len, key_len;
    if (store_data_key_parse(dbkey, dbkey_len, &position, &table, &table_len, &key, &key_len) !=
            RK_OK ||
        !replica_table_valid(table, table_len) || !replica_key_valid(key, key_len) ||
        ring_position(table, table_len, key, key_len) != position)
        return RK_EINVAL;
    rk_err err = replica_merge_encoded(rp, dbkey, dbkey_len, 0, object, object_len, changed);
    if (err == RK_OK)
        atomic_fetch_add_explicit(&rp->hints_received, 1, memory_order_relaxed);
    return err;
}

size_t replica_hint_targets(replica *rp, uint64_t *out, size_t cap)
{
    return store_hint_targets(rp->st, out, cap);
}

rk_err replica_hint_scan(replica *rp, uint64_t intended, const char *after, size_t after_len,
                         store_visit_cb visit_cb, void *arg)
{
    return store_hint_scan(rp->st, intended, after, after_len, visit_cb, arg);
}

rk_err replica_hint_remove_if(replica *rp, uint64_t intended, const char *dbkey, size_t dbkey_len,
                              const char *expected, size_t expected_len)
{
    return store_hint_remove_if(rp->st, intended, dbkey, dbkey_len, expected, expected_len);
}

rk_err replica_hint_drop(replica *rp, uint64_t intended, uint64_t *out_count)
{
    return store_hint_drop(rp->st, intended, out_count);
}

rk_err replica_get_store_stats(replica *rp, store_stats *out)
{
    return store_get_stats(rp->st, out);
}
