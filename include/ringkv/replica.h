/* replica.h - this node's copy of the records: read, conditional write,
 * merge and hint application on the store, and the RPC services through
 * which other nodes' coordinators reach it.
 *
 * Layers (DESIGN.md, "Layers of a request"): store < replica < {kv, sync}.
 * The coordinator (kv) applies a client's write through replica_write when
 * this node is a replica, and merges what other replicas send through
 * replica_merge; the sync service (handoff, anti-entropy, hint delivery)
 * merges records through replica_merge_encoded. Nothing here talks to
 * another node: the RPC handlers only answer.
 *
 * A record is addressed by a replica_key, computed once per request
 * (ring position and storage key together) and passed down by pointer.
 *
 * Threads: every function may be called from any thread; a write or merge
 * of one key is serialised by the store's lock stripe. */
#ifndef RINGKV_REPLICA_H
#define RINGKV_REPLICA_H

#include "ringkv/clock.h"
#include "ringkv/common.h"
#include "ringkv/rpc.h"
#include "ringkv/store.h"

#define REPLICA_TABLE_MAX 64
#define REPLICA_KEY_MAX 1024
/* position (8) | table | 0x00 | key */
#define REPLICA_DBKEY_MAX (8 + REPLICA_TABLE_MAX + 1 + REPLICA_KEY_MAX)

/* ---- names ------------------------------------------------------------ */

/* [A-Za-z0-9_.-]{1,64}. Reserved (leading '_') names are valid here; the
 * caller decides whether a client may write them. */
bool replica_table_valid(const char *table, size_t len);
bool replica_table_reserved(const char *table, size_t len);
/* 1..1024 bytes of UTF-8 without NUL. */
bool replica_key_valid(const char *key, size_t len);

/* ---- addresses -------------------------------------------------------- */

/* A record's address: its names (borrowed), its ring position and its
 * storage key (held inline, so making one allocates nothing). */
typedef struct replica_key {
    const char *table;
    size_t table_len;
    const char *key;
    size_t key_len;
    uint64_t position;
    size_t dbkey_len;
    char dbkey[REPLICA_DBKEY_MAX + 1];
} replica_key;

/* Validates the names and computes the position and storage key once.
 * table and key must outlive out. RK_EINVAL for a bad table or key. */
rk_err replica_key_init(replica_key *out, const char *table, size_t table_len, const char *key,
                        size_t key_len);

/* ---- the replica ------------------------------------------------------ */

typedef struct replica replica;

typedef struct replica_config {
    size_t max_siblings;    /* cap per key on client writes (default 16) */
    size_t max_value_bytes; /* compact JSON text (default 1 MiB) */
    bool accept_hints;      /* take hints handed to this node (true; false: --handoff off) */
} replica_config;

void replica_config_default(replica_config *cfg);

/* Opens the replica over st (borrowed: close the replica first) for the
 * node node_id. Free with replica_close. RK_EINVAL for a zero id or cap. */
rk_err replica_open(store *st, rk_actor node_id, const replica_config *cfg, replica **out);
void replica_close(replica *rp);

/* Told of every change to this node's own records (not to hints it holds
 * for others), after the change is stored: the watch module notifies the
 * nodes with subscribers. wants_cb is asked first, with the storage key,
 * so that a replica nobody watches keeps no copy of what it writes; only
 * if it says yes does changed_cb get the object's new bytes. Both run on
 * the writing thread and must not block. */
typedef struct replica_listener {
    bool (*wants_cb)(void *arg, const char *dbkey, size_t dbkey_len);
    void (*changed_cb)(void *arg, const char *dbkey, size_t dbkey_len, const void *object,
                       size_t object_len);
    void *arg;
} replica_listener;
/* Sets (l NULL: clears) the one listener. Call before other threads use
 * the replica (at start-up) or after they stopped. */
void replica_set_listener(replica *rp, const replica_listener *l);
rk_actor replica_node_id(const replica *rp);
const replica_config *replica_get_config(const replica *rp);

/* Reads this node's copy of dbkey: its replica when intended is 0 or this
 * node, else the hint it holds for intended. Appends the encoded object to
 * out; RK_ENOTFOUND when there is none. */
rk_err replica_read(replica *rp, const char *dbkey, size_t dbkey_len, uint64_t intended,
                    rk_buf *out);

/* replica_read of this node's own copy, decoded into *out (free with
 * object_free). A key whose siblings are all tombstones is RK_OK with
 * object_live_count 0. */
rk_err replica_get(replica *rp, const replica_key *key, rk_object *out);

/* A client's write as the replica that coordinates it applies it
 * (docs/causality.md). Nothing is owned. */
typedef struct replica_update {
    const char *value; /* compact JSON text; ignored for a tombstone */
    size_t value_len;
    bool tombstone;
    const vclock *context;  /* NULL = after the local version */
    const vclock *if_match; /* NULL = unconditional */
    bool if_none_match;     /* create only */
    const char *owner;      /* "" or NULL when auth is off */
} replica_update;

/* What replica_write stored. Free obj with object_free. */
typedef struct replica_written {
    rk_object obj;
    bool existed;  /* the key had a live value before */
    clock_dot dot; /* the dot this write issued */
} replica_written;

/* Applies u to this node's replica of key as its coordinator: conditions,
 * then object_update with this node as the actor, in one read-merge-write
 * under the key's lock. RK_EPRECOND when a condition fails, RK_ENOTFOUND
 * for a tombstone on a key with no live value (nothing written),
 * RK_ETOOBIG over max_value_bytes, RK_EINVAL for an empty value. On RK_OK
 * *out holds the stored object and encoded (may be NULL) gets its bytes
 * appended; on error *out is untouched. */
rk_err replica_write(replica *rp, const replica_key *key, const replica_update *u,
                     replica_written *out, rk_buf *encoded);

/* Merges an object another replica sent (read repair, write fan-out,
 * handoff, anti-entropy) into this node's replica of dbkey, or into the
 * hint held for intended when intended is neither 0 nor this node (that is
 * how a hint is stored). No sibling cap: replica merges must stay
 * associative (docs/causality.md). *changed (may be NULL) says whether the
 * stored bytes changed. */
rk_err replica_merge(replica *rp, const char *dbkey, size_t dbkey_len, uint64_t intended,
                     const rk_object *incoming, bool *changed);

/* replica_merge of an encoded object; RK_ECORRUPT when it does not decode. */
rk_err replica_merge_encoded(replica *rp, const char *dbkey, size_t dbkey_len, uint64_t intended,
                             const void *object, size_t object_len, bool *changed);

/* ---- hints held here for other replicas --------------------------------- */

/* The nodes this node holds hints for, in increasing order: up to cap ids
 * to out; returns how many there are (may exceed cap). */
size_t replica_hint_targets(replica *rp, uint64_t *out, size_t cap);
/* Visits intended's hints in storage-key order after `after` (NULL = from
 * the first), as store_hint_scan does. */
rk_err replica_hint_scan(replica *rp, uint64_t intended, const char *after, size_t after_len,
                         store_visit_cb visit_cb, void *arg);
/* Deletes a delivered hint only if its bytes still equal expected (a write
 * merged into it after it was sent must not be lost): RK_OK deleted,
 * RK_EPRECOND changed since, RK_ENOTFOUND gone. */
rk_err replica_hint_remove_if(replica *rp, uint64_t intended, const char *dbkey, size_t dbkey_len,
                              const char *expected, size_t expected_len);
/* Deletes every hint held for intended (0: for every node); *out_count
 * (may be NULL) says how many. */
rk_err replica_hint_drop(replica *rp, uint64_t intended, uint64_t *out_count);
/* Takes a write another node held for this one (hinted handoff, delivered
 * by that node's sync service): merges the encoded object into this
 * node's replica of dbkey and counts it in hints_received. *changed (may
 * be NULL) as replica_merge. RK_EUNSUPPORTED when this node takes no hints
 * (accept_hints false: --handoff off; nothing merged, the sender keeps
 * it), RK_EINVAL for a malformed data key, RK_ECORRUPT for an object that
 * does not decode. */
rk_err replica_take_hint(replica *rp, const char *dbkey, size_t dbkey_len, const void *object,
                         size_t object_len, bool *changed);

/* Visits this node's records of table in ring order, starting after
 * `after` (NULL = from the beginning), skipping keys whose siblings are all
 * tombstones. visit_cb returns false to stop. Pointers are valid during the
 * call only. RK_EINVAL for a bad table or cursor. */
typedef bool (*replica_visit_cb)(void *arg, const char *key, size_t key_len, const rk_object *obj);
rk_err replica_scan_table(replica *rp, const char *table, size_t table_len, const char *after,
                          size_t after_len, replica_visit_cb visit_cb, void *arg);

/* ---- the table catalog ----------------------------------------------- */

/* Most tables the catalog lists; past it a new name is stored but not
 * listed (logged). */
#define REPLICA_TABLES_MAX 4096
typedef char replica_table_name[REPLICA_TABLE_MAX + 1];

/* The tables this node has stored records of (a write, a merge, a hint),
 * sorted; a table stays listed after its records moved away. *out is an
 * array of *out_count names: free it with free(). RK_ENOMEM. */
rk_err replica_tables_list(replica *rp, replica_table_name **out, size_t *out_count);

/* The Kv service (Get, Put, Apply: what other coordinators ask of this
 * replica), for rpc_server_open. (Hints held for this node come through
 * the sync service, which calls replica_take_hint.) Writes up to cap handlers to out;
 * returns how many there are. */
size_t replica_rpc_handlers(replica *rp, rpc_handler *out, size_t cap);

/* The id of this machine's CLOCK_MONOTONIC: a hash of the kernel's boot id
 * (/proc/sys/kernel/random/boot_id), read once. The Kv replies carry it
 * beside the replica's clock reading, so a coordinator with the same id
 * knows both readings come from one clock (PBS, docs/pbs.md). 0 when the
 * boot id cannot be read: no clock is then taken as shared. Any thread. */
uint64_t replica_clock_id(void);

/* Counters for /metrics. */
typedef struct replica_stats {
    uint64_t writes, deletes;       /* client writes applied here as coordinator */
    uint64_t siblings_dropped;      /* by the cap */
    uint64_t max_clock_entries;     /* largest clock written */
    uint64_t max_siblings_seen;     /* most siblings an object had after a write or merge */
    uint64_t precondition_failures; /* If-Match / If-None-Match refused */
    uint64_t hints_received;        /* handed-off writes merged here */
} replica_stats;
void replica_get_stats(const replica *rp, replica_stats *out);

/* The store's statistics (keys, bytes on disk and in memory). */
rk_err replica_get_store_stats(replica *rp, store_stats *out);

#endif
