/* join.c - may a node join a cluster: its parameters against the cluster's. */
#include <inttypes.h>
#include <stdio.h>

#include "ringkv/cluster.h"

rk_err cluster_check_join(const cluster_params *mine, const cluster_params *theirs, char *reason,
                          size_t reason_len)
{
    /* Each parameter places keys: a node that disagreed on any of them would
     * read and write different replicas than the rest of the cluster. */
    if (mine->cluster_id != 0 && mine->cluster_id != theirs->cluster_id) {
        if (reason_len > 0)
            snprintf(reason, reason_len,
                     "this node's data belongs to cluster %016" PRIx64
                     ", the seed is in cluster %016" PRIx64 "; use an empty data dir to join it",
                     mine->cluster_id, theirs->cluster_id);
        return RK_EINVAL;
    }
    if (mine->n != theirs->n) {
        if (reason_len > 0)
            snprintf(reason, reason_len,
                     "replication factor differs: this node has n=%" PRIu32
                     ", the cluster has n=%" PRIu32 "; start it with --n %" PRIu32,
                     mine->n, theirs->n, theirs->n);
        return RK_EINVAL;
    }
    if (mine->partitions != theirs->partitions) {
        if (reason_len > 0)
            snprintf(reason, reason_len,
                     "partitions differ: this node has %" PRIu32 ", the cluster has %" PRIu32
                     "; start it with --partitions %" PRIu32,
                     mine->partitions, theirs->partitions, theirs->partitions);
        return RK_EINVAL;
    }
    return RK_OK;
}
