/* replica_internal.h - what the replica module's files share: the struct
 * behind replica.h. Nothing here is for other modules. */
#ifndef RINGKV_REPLICA_INTERNAL_H
#define RINGKV_REPLICA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "ringkv/replica.h"

/* The catalog of tables (tables.c). */
typedef struct replica_tables {
    pthread_mutex_t mu;
    rk_map names; /* table name -> non-NULL */
    rk_err err;   /* of a rebuild scan */
} replica_tables;

struct replica {
    store *st;
    rk_actor node_id;
    replica_config cfg;
    replica_listener listener; /* wants_cb NULL: none */
    replica_tables tables;
    _Atomic uint64_t writes, deletes;
    _Atomic uint64_t siblings_dropped;
    _Atomic uint64_t max_clock_entries;
    _Atomic uint64_t max_siblings_seen;
    _Atomic uint64_t precondition_failures;
    _Atomic uint64_t hints_received;
};

/* Loads the catalog from `meta` (or, for a store written before it
 * existed, from the records; once). Free with replica_tables_free. */
rk_err replica_tables_load(replica *rp);
void replica_tables_free(replica *rp);
/* Adds the table of a record just stored here (dbkey) to the catalog. */
void replica_tables_note(replica *rp, const char *dbkey, size_t dbkey_len);
/* The same for a table already known by name (a client's write). */
void replica_tables_note_table(replica *rp, const char *table, size_t table_len);

#endif
