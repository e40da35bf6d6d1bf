/* watch.h - live updates: the streams of changes that SSE subscribers read.
 *
 * Two sides, in every node:
 * - the hub: this node's streams (one key, a list of keys, or a whole
 *   table). It leases its interest from the replicas of each key it watches
 *   (every ring member for a table) over RPC, renews the leases and moves
 *   them when the ring changes, so a node that dies leaves nothing behind.
 *   A change reported by several replicas becomes one event (the vector
 *   clock says whether it is new), kept in a bounded change log for
 *   clients that resume, and queued to each stream that watches it.
 * - the registry: the leases other nodes (and this one) hold here; every
 *   change this node's replica applies to a leased key is sent to them
 *   (Watch.Notify), without ever holding up the write.
 *
 * A stream's queue is bounded: a reader that falls that far behind is
 * dropped, never waited for. docs/live-updates.md has the whole story. */
#ifndef RINGKV_WATCH_H
#define RINGKV_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringkv/clock.h"
#include "ringkv/cluster_node.h"
#include "ringkv/common.h"
#include "ringkv/replica.h"
#include "ringkv/rpc.h"

typedef struct watch_config {
    unsigned max_streams;   /* streams held at once (--max-subscribers); 1024 */
    unsigned stream_queue;  /* events a stream may have unsent before it is dropped; 1024 */
    unsigned log_events;    /* events the change log keeps for resuming; 16384 */
    uint32_t lease_ms;      /* an interest lapses unless renewed by then; 9000 */
    uint32_t linger_ms;     /* interest kept after its last stream leaves, so a
                               client that reconnects misses nothing; 60000 */
    uint32_t lease_wait_ms; /* how long a new stream waits for its leases; 2000 */
    unsigned table_keys;    /* keys whose newest version a table stream remembers
                               (to send each version once); 100000 */
} watch_config;

void watch_config_default(watch_config *cfg);

typedef struct watch watch;

/* Opens the hub and the registry and becomes rp's change listener. Free
 * with watch_close. */
rk_err watch_open(replica *rp, cluster_node *cn, rpc_client *client, const watch_config *cfg,
                  watch **out);
/* The Watch RPC service's handlers (Lease, Notify), for rpc_server_open. */
size_t watch_rpc_handlers(watch *w, rpc_handler *out, size_t cap);
/* Starts the thread that renews leases and sweeps expired ones. */
rk_err watch_start(watch *w);
/* Ends every stream (their waits return RK_ECLOSED) and refuses new ones:
 * call before stopping the HTTP server, whose handlers hold the streams. */
void watch_shutdown(watch *w);
/* watch_shutdown and stops the lease thread: call once no Watch RPC can
 * arrive (the RPC server is closed), before the cluster node closes. */
void watch_stop(watch *w);
/* After watch_stop and rpc_client_close (whose calls in flight may be the
 * watch module's). Stops being rp's listener; frees. NULL ok. */
void watch_close(watch *w);

/* ---- events -------------------------------------------------------------- */

typedef enum watch_event_kind {
    WATCH_UPDATED, /* the key has a live version */
    WATCH_DELETED, /* every version is a tombstone */
    WATCH_RESET,   /* what the client missed cannot be replayed: re-read */
} watch_event_kind;

/* An event, shared by the change log and the streams it was queued to. */
typedef struct watch_event watch_event;

typedef struct watch_event_info {
    watch_event_kind kind;
    uint64_t seq; /* its place in this node's change log; for a reset, the
                     place after which the stream misses nothing */
    const char *table;
    size_t table_len;
    const char *key; /* NULL for a reset about a whole stream */
    size_t key_len;
    const rk_object *obj; /* the merged versions; NULL for a reset */
    const char *reason;   /* a reset's, for people */
} watch_event_info;

void watch_event_get(const watch_event *ev, watch_event_info *out);
void watch_event_unref(watch_event *ev);

/* Renders an event into out (the data line of the SSE frame). */
typedef rk_err (*watch_render_cb)(void *arg, const watch_event_info *ev, rk_buf *out);
/* The event's rendered form, made once by the first caller with render and
 * then shared by every stream; NULL if rendering failed. */
const rk_buf *watch_event_text(watch_event *ev, watch_render_cb render, void *arg);
/* Has the hub render each event once, before it is queued, so that the
 * streams that wake for it find the text made (the gateway sets it at
 * start; without it the first stream makes it). Call before streams open. */
void watch_set_renderer(watch *w, watch_render_cb render, void *arg);

/* ---- streams ------------------------------------------------------------- */

typedef struct watch_stream watch_stream;

/* What a stream watches: keys[0..n_keys) of table, or the whole table. */
typedef struct watch_spec {
    const char *table;
    size_t table_len;
    const char *const *keys;
    const size_t *key_lens;
    size_t n_keys; /* 0: the whole table */
} watch_spec;

/* Opens a stream and leases its interest from the replicas, waiting up to
 * lease_wait_ms for them, so that a write acknowledged after this returns
 * produces an event. RK_EBUSY when max_streams are open, RK_ECLOSED after
 * watch_shutdown, RK_EINVAL for a bad spec, RK_ENOMEM. */
rk_err watch_stream_open(watch *w, const watch_spec *spec, watch_stream **out);
/* Resumes after a change-log id ("<epoch>-<seq>", watch_format_id): queues
 * the events the client missed, or a reset when the log does not cover the
 * gap (the id is too old, another node's, or from before a restart). */
void watch_stream_resume(watch_stream *s, const char *id, size_t id_len);
/* Queues a reset: the client should re-read (reason says why). */
void watch_stream_reset(watch_stream *s, const char *reason);
/* For a one-key stream resuming from a context: obj is the key's version
 * read now. Queues the key's newest version to this stream (and, if obj is
 * news to the hub, to every stream of the key). */
rk_err watch_stream_offer(watch_stream *s, const rk_object *obj);
/* The next event (unref it), waiting until deadline_ms (rk_monotonic_ms
 * clock). RK_ETIMEDOUT at the deadline; RK_EBUSY when the stream was
 * dropped for falling behind; RK_ECLOSED after watch_shutdown. */
rk_err watch_stream_next(watch_stream *s, uint64_t deadline_ms, watch_event **ev);
/* Whether the stream is of one key (its event ids are contexts). */
bool watch_stream_one_key(const watch_stream *s);
void watch_stream_close(watch_stream *s);

/* "<16 hex epoch>-<seq>": the id of a change-log event. buf of 40. */
void watch_format_id(const watch *w, uint64_t seq, char *buf, size_t cap);

typedef struct watch_stats {
    uint64_t streams;           /* open now */
    uint64_t streams_opened;    /* ever */
    uint64_t streams_rejected;  /* over max_streams */
    uint64_t streams_dropped;   /* fell a full queue behind */
    uint64_t events;            /* made (one per new version of a watched key) */
    uint64_t events_queued;     /* queued to streams */
    uint64_t resets;            /* reset events queued */
    uint64_t notifications_in;  /* changes received from replicas (self included) */
    uint64_t notifications_out; /* changes sent to nodes with leases */
    uint64_t notify_failures;   /* of those, calls that failed */
    uint64_t lease_failures;    /* lease calls that failed or timed out */
    uint64_t leases_held;       /* (node, key or table) leases this node grants now */
    uint64_t keys_watched;      /* keys this node's streams watch (and lingering) */
} watch_stats;
void watch_get_stats(watch *w, watch_stats *out);

#endif
