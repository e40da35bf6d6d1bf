/* watch_internal.h - what the watch module's files share: the hub's
 * states (hub.c), the registry of leases (registry.c), leasing (lease.c)
 * and the service (service.c). Nothing here is for other modules. */
#ifndef RINGKV_WATCH_INTERNAL_H
#define RINGKV_WATCH_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "ringkv.pb-c.h"
#include "ringkv/watch.h"

#define MOD "watch"
/* Keys per Lease call. */
#define WATCH_LEASE_BATCH 2048u
/* How long a Notify may take before the replica counts it failed. */
#define WATCH_NOTIFY_TIMEOUT_MS 2000u

struct watch_event {
    _Atomic unsigned refs;
    watch_event_kind kind;
    uint64_t seq;
    char *table, *key; /* NUL-terminated copies, in the same allocation */
    size_t table_len, key_len;
    rk_object obj;
    const char *reason;
    pthread_mutex_t text_mu; /* taken only while text is made */
    _Atomic bool rendered;   /* text is made (and then never changes) */
    rk_buf text;
};

/* A stream's place in one watched key's (or table's) list of streams. */
typedef struct watch_link {
    struct watch_link *prev, *next;
    watch_stream *stream;
} watch_link;

/* A key this node's streams watch (or a table stream saw, to send each of
 * its versions once). Under w->mu. */
typedef struct keystate {
    watch_link *streams; /* list head */
    size_t n_streams;
    watch_event *last;     /* the newest event of the key, NULL before one */
    uint64_t since_seq;    /* no change of the key is missing from the log since */
    uint64_t linger_until; /* without streams: leased until then; 0 with streams */
    size_t table_len;      /* the map key is table '\0' key */
} keystate;

typedef struct tablestate {
    watch_link *streams;
    size_t n_streams;
    uint64_t since_seq;
    uint64_t linger_until;
} tablestate;

struct watch_stream {
    watch *w;
    struct watch_stream *prev_all, *next_all; /* w->streams, under w->mu */
    char *table;
    size_t table_len;
    size_t n_keys;    /* 0: the whole table */
    keystate **keys;  /* n_keys, under w->mu */
    char **key_names; /* n_keys map keys (table '\0' key), owned */
    size_t *key_name_lens;
    watch_link *links;  /* n_keys (or 1 for a table) */
    pthread_mutex_t mu; /* guards the queue and the flags */
    pthread_cond_t cv;
    watch_event **queue; /* a ring of len events from head */
    size_t head, len, cap;
    bool dropped, closed;
    bool waiting; /* the reader is in watch_stream_next's wait */
};

struct watch {
    replica *rp;
    cluster_node *cn;
    rpc_client *client;
    watch_config cfg;
    uint64_t self;
    uint64_t epoch;         /* random per start: change-log ids of another run are not ours */
    watch_render_cb render; /* NULL: streams render (watch_set_renderer) */
    void *render_arg;

    /* The hub (hub.c). */
    pthread_mutex_t mu;
    rk_map keys;           /* table '\0' key -> keystate */
    rk_map tables;         /* table -> tablestate */
    watch_stream *streams; /* every open stream */
    size_t n_streams;
    size_t table_only_keys; /* keystates without streams kept for dedup */
    bool shutting_down;
    watch_event **log;  /* ring of cfg.log_events; log[seq % cap] */
    uint64_t next_seq;  /* the next event's seq; the first is 1 */
    uint64_t first_seq; /* the oldest seq the log still has */

    /* The registry (registry.c). */
    pthread_mutex_t reg_mu;
    rk_map reg_keys;           /* table '\0' key -> lease_set */
    rk_map reg_tables;         /* table -> lease_set */
    _Atomic size_t reg_count;  /* entries in both: 0 means no change is wanted */
    _Atomic size_t reg_leases; /* leases in them, expired ones until the sweep */

    /* The lease thread (lease.c). */
    pthread_t thread;
    bool thread_running;
    pthread_mutex_t run_mu;
    pthread_cond_t run_cv;
    bool stopping;

    _Atomic uint64_t streams_opened, streams_rejected, streams_dropped;
    _Atomic uint64_t events, events_queued, resets;
    _Atomic uint64_t notifications_in, notifications_out, notify_failures, lease_failures;
};

/* ---- the hub (hub.c) ---------------------------------------------------- */

/* The hub is the bottom of the module: it knows nothing of leases. The
 * files call downwards only: service.c -> lease.c -> registry.c -> hub.c
 * (a stream opens in service.c: attached in the hub, leased, marked). */

/* Makes a stream and links it into the states it watches (made as
 * needed), without leasing them: RK_EBUSY over max_streams, RK_ECLOSED
 * after watch_shutdown, RK_EINVAL for a bad spec. */
rk_err watch_hub_attach(watch *w, const watch_spec *spec, watch_stream **out);
/* Marks the states of s whose leases now hold: no change of them is
 * missing from the change log from here on. */
void watch_hub_leased(watch_stream *s);

/* A change of table/key to obj, from a replica: a new version becomes an
 * event, logged and queued to the streams that watch it. */
void watch_hub_apply(watch *w, const char *table, size_t table_len, const char *key, size_t key_len,
                     const rk_object *obj);
/* The map key of table/key into out (cap >= table_len + key_len + 1). */
size_t watch_key_name(const char *table, size_t table_len, const char *key, size_t key_len,
                      char *out);
void watch_hub_free(watch *w);

/* ---- the registry (registry.c) ----------------------------------------- */

/* Grants node a lease on tables and keys until expires_ms. */
rk_err watch_registry_lease(watch *w, uint64_t node, const Ringkv__WatchLeaseRequest *req,
                            uint64_t expires_ms);
/* Drops the expired leases. */
void watch_registry_sweep(watch *w);
size_t watch_registry_leases(watch *w);
void watch_registry_free(watch *w);
/* The replica's listener (see replica_listener). */
bool watch_registry_wants(void *arg, const char *dbkey, size_t dbkey_len);
void watch_registry_changed(void *arg, const char *dbkey, size_t dbkey_len, const void *object,
                            size_t object_len);

/* ---- leasing (lease.c) --------------------------------------------------- */

/* What watch_lease_now asks of the replicas. */
typedef enum lease_op {
    LEASE_WAIT,    /* lease, and wait until they answered or lease_wait_ms passed */
    LEASE_RENEW,   /* lease, without waiting */
    LEASE_RELEASE, /* end the leases now, without waiting */
} lease_op;
/* Leases (or releases) the whole tables[0..n_tables) (NUL-terminated) and
 * the keys names[0..n_names) (map key names: table '\0' key) from their
 * replicas now. */
void watch_lease_now(watch *w, char *const *tables, size_t n_tables, char *const *names,
                     const size_t *name_lens, size_t n_names, lease_op op);
rk_err watch_lease_start(watch *w);
void watch_lease_stop(watch *w);

#endif
