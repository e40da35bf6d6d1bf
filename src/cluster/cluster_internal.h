/* cluster_internal.h - the member table's layout, shared by members.c and
 * codec.c. */
#ifndef RINGKV_CLUSTER_INTERNAL_H
#define RINGKV_CLUSTER_INTERNAL_H

#include "ringkv/cluster.h"

struct cluster_table {
    uint64_t self_id;
    cluster_config config;
    cluster_member *rows; /* sorted by entry.id, ids unique */
    size_t count;
    size_t cap;
};

/* True if entry is well formed: id not 0, strings terminated within their
 * arrays, status in range. */
bool cluster_entry_valid(const cluster_entry *entry);
bool cluster_config_valid(const cluster_config *config);

/* Index of id in table->rows, or where it would be inserted (*found false). */
size_t cluster_row_index(const cluster_table *table, uint64_t id, bool *found);

/* Makes room for extra more rows. RK_ENOMEM. */
rk_err cluster_rows_reserve(cluster_table *table, size_t extra);

#endif
