/* replica_internal.h - what the replica module's files share: the struct
 * behind replica.h. Nothing here is for other modules. */
#ifndef RINGKV_REPLICA_INTERNAL_H
#define RINGKV_REPLICA_INTERNAL_H

#include <stdatomic.h>

#include "ringkv/replica.h"

struct replica {
    store *st;
    rk_actor node_id;
    replica_config cfg;
    replica_listener listener; /* wants_cb NULL: none */
    _Atomic uint64_t writes, deletes;
    _Atomic uint64_t siblings_dropped;
    _Atomic uint64_t max_clock_entries;
    _Atomic uint64_t max_siblings_seen;
    _Atomic uint64_t precondition_failures;
    _Atomic uint64_t hints_received;
};

#endif
