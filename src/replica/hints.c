/* hints.c - the writes this node holds for replicas that missed them: who
 * they are for, reading them in order to hand them over, and deleting them
 * once delivered (or when an operator drops them). Storing a hint is
 * replica_merge with the intended node. */
#include "replica_internal.h"

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
