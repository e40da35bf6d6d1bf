/* counters.c - /metrics lines of the modules' stats structs, each written
 * from a table of {name, labels, type, help, offset} by one function, so a
 * new counter is one row and no line is formatted by hand. */
#include <stddef.h>
#include <string.h>

#include "http_internal.h"

uint64_t http_counter_value(const http_counter *c, const void *stats)
{
    uint64_t v;
    memcpy(&v, (const char *)stats + c->offset, sizeof v);
    return v;
}

void http_counters_write(reply_buf *out, const http_counter *table, size_t n, const void *stats)
{
    for (size_t i = 0; i < n; i++) {
        const http_counter *c = &table[i];
        if (c->name == NULL)
            continue; /* a JSON-only row: its metric is printed elsewhere */
        if (c->help != NULL)
            http_reply_addf(out, "# HELP %s %s\n# TYPE %s %s\n", c->name, c->help, c->name,
                            c->type);
        http_reply_addf(out, "%s%s%s%s %llu\n", c->name, c->labels ? "{" : "",
                        c->labels ? c->labels : "", c->labels ? "}" : "",
                        (unsigned long long)http_counter_value(c, stats));
    }
}

/* A family's first row, and one more series of it. */
#define FAMILY(kind, st, field, metric, series, text)                                              \
    {                                                                                              \
        .name = metric, .labels = series, .type = kind, .help = text,                              \
        .offset = offsetof(st, field)                                                              \
    }
#define SERIES(st, field, metric, series)                                                          \
    {                                                                                              \
        .name = metric, .labels = series, .offset = offsetof(st, field)                            \
    }

/* kv and store counters side by side: /metrics has always listed them
 * interleaved (the hint counters next to the hints held), and one table
 * over both keeps that order. */
typedef struct data_stats {
    kv_stats kv;
    store_stats store;
    uint64_t hints_delivered; /* the sync service's: it hands hints over */
} data_stats;

static const http_counter data_counters[] = {
    FAMILY("counter", data_stats, kv.reads, "ringkv_kv_operations_total", "op=\"read\"",
           "Record operations applied by this node."),
    SERIES(data_stats, kv.writes, "ringkv_kv_operations_total", "op=\"write\""),
    SERIES(data_stats, kv.deletes, "ringkv_kv_operations_total", "op=\"delete\""),
    FAMILY("counter", data_stats, kv.precondition_failures, "ringkv_kv_precondition_failures_total",
           NULL, "Conditional writes refused (412)."),
    FAMILY("counter", data_stats, kv.siblings_dropped, "ringkv_siblings_dropped_total", NULL,
           "Siblings dropped by the per-key cap."),
    FAMILY("gauge", data_stats, kv.max_siblings_seen, "ringkv_siblings_max", NULL,
           "Most siblings one object held after a write."),
    FAMILY("gauge", data_stats, kv.max_clock_entries, "ringkv_clock_entries_max", NULL,
           "Most entries one object's version vector held after a write."),
    FAMILY("gauge", data_stats, store.keys_estimate, "ringkv_keys_estimate", NULL,
           "Records in this node's store (RocksDB estimate)."),
    FAMILY("gauge", data_stats, store.sst_bytes, "ringkv_store_bytes", "part=\"sst\"",
           "Size of this node's RocksDB, by part."),
    SERIES(data_stats, store.memtable_bytes, "ringkv_store_bytes", "part=\"memtable\""),
    SERIES(data_stats, store.live_data_bytes, "ringkv_store_bytes", "part=\"live_data\""),
    FAMILY("counter", data_stats, kv.quorum_failures, "ringkv_quorum_failures_total", NULL,
           "Reads and writes answered 503: too few replicas in time."),
    FAMILY("counter", data_stats, kv.read_repairs, "ringkv_read_repairs_total", NULL,
           "Stale or missing replicas sent the merged object by a read."),
    FAMILY("counter", data_stats, kv.hints_stored, "ringkv_hints_total", "event=\"stored\"",
           "Writes held for replicas that missed them, by what became of them."),
    SERIES(data_stats, hints_delivered, "ringkv_hints_total", "event=\"delivered\""),
    SERIES(data_stats, kv.hints_received, "ringkv_hints_total", "event=\"received\""),
    FAMILY("gauge", data_stats, store.hints_estimate, "ringkv_hints_held", NULL,
           "Hints this node holds (RocksDB estimate)."),
    FAMILY("counter", data_stats, kv.forwarded_writes, "ringkv_forwarded_writes_total", NULL,
           "Client writes applied by another replica (Kv.Apply)."),
    FAMILY("counter", data_stats, kv.speculative_reads, "ringkv_reads_widened_total",
           "reason=\"speculative\"",
           "Targeted reads that asked more replicas, by reason: a replica silent past the "
           "speculative delay, or the read-repair chance asking all."),
    SERIES(data_stats, kv.full_reads, "ringkv_reads_widened_total", "reason=\"read_repair\""),
};

/* What the RPC server dropped or served: a frame that does not open, is
 * stale or replayed is counted here. */
#define RPC_SERVER(field, outcome)                                                                 \
    SERIES(rpc_server_stats, field, "ringkv_rpc_server_total", "outcome=\"" outcome "\"")
static const http_counter rpc_server_counters[] = {
    FAMILY("counter", rpc_server_stats, requests, "ringkv_rpc_server_total", "outcome=\"served\"",
           "RPC requests served, and frames dropped, by outcome."),
    RPC_SERVER(handler_errors, "handler_error"),
    RPC_SERVER(unknown_method, "unknown_method"),
    RPC_SERVER(bad_input, "bad_input"),
    RPC_SERVER(expired, "expired"),
    RPC_SERVER(bad_frames, "bad_frame"),
    RPC_SERVER(malformed, "malformed"),
    RPC_SERVER(stale, "stale"),
    RPC_SERVER(replayed, "replayed"),
    RPC_SERVER(send_errors, "send_error"),
    FAMILY("counter", rpc_server_stats, batches, "ringkv_rpc_server_batches_total", NULL,
           "Batch messages received: calls a peer coalesced into one message (their calls "
           "count above too)."),
};

/* What this node's calls came to. */
#define RPC_CLIENT(field, outcome)                                                                 \
    SERIES(rpc_client_stats, field, "ringkv_rpc_client_total", "outcome=\"" outcome "\"")
static const http_counter rpc_client_counters[] = {
    FAMILY("counter", rpc_client_stats, calls, "ringkv_rpc_client_total", "outcome=\"started\"",
           "RPC calls this node made, by outcome."),
    RPC_CLIENT(ok, "ok"),
    RPC_CLIENT(errors, "error"),
    RPC_CLIENT(timeouts, "timeout"),
    RPC_CLIENT(failures, "failure"),
    RPC_CLIENT(bad_replies, "bad_reply"),
    FAMILY("counter", rpc_client_stats, batches, "ringkv_rpc_client_batches_total", NULL,
           "Batch messages sent: calls to one peer coalesced into one message."),
    FAMILY("counter", rpc_client_stats, batched_calls, "ringkv_rpc_client_batched_calls_total",
           NULL, "Calls this node sent inside batch messages."),
};

#define COUNT(table) (sizeof table / sizeof table[0])

void http_counters_write_node(reply_buf *out, const kv_stats *kv, const store_stats *st,
                              uint64_t hints_delivered, const rpc_server_stats *rpc,
                              const rpc_client_stats *client)
{
    data_stats data = {.kv = *kv, .store = *st, .hints_delivered = hints_delivered};
    http_counters_write(out, data_counters, COUNT(data_counters), &data);
    http_counters_write(out, rpc_server_counters, COUNT(rpc_server_counters), rpc);
    http_counters_write(out, rpc_client_counters, COUNT(rpc_client_counters), client);
}

/* Live updates: the watch module's figures and the events the streams'
 * workers wrote. */
typedef struct live_stats {
    watch_stats watch;
    uint64_t events_sent;
} live_stats;

static const http_counter live_counters[] = {
    FAMILY("gauge", live_stats, watch.streams, "ringkv_subscribers", NULL,
           "Live-update streams (SSE) open on this node."),
    FAMILY("counter", live_stats, watch.streams_opened, "ringkv_subscribers_opened_total", NULL,
           "Live-update streams opened."),
    FAMILY("counter", live_stats, watch.streams_rejected, "ringkv_subscribe_rejected_total", NULL,
           "Streams refused with 503: --max-subscribers were open."),
    FAMILY("counter", live_stats, watch.streams_dropped, "ringkv_subscribers_dropped_total",
           "reason=\"slow\"", "Streams closed by the node, by why."),
    FAMILY("counter", live_stats, events_sent, "ringkv_events_sent_total", NULL,
           "Events written to streams."),
    FAMILY("counter", live_stats, watch.events, "ringkv_events_total", NULL,
           "Events made: new versions of watched keys."),
    FAMILY("counter", live_stats, watch.resets, "ringkv_subscribe_resets_total", NULL,
           "Reset events: a resuming client missed more than the change log holds."),
    FAMILY("counter", live_stats, watch.notifications_in, "ringkv_watch_notifications_total",
           "dir=\"in\"", "Changes of watched keys sent by replicas to nodes with streams."),
    SERIES(live_stats, watch.notifications_out, "ringkv_watch_notifications_total", "dir=\"out\""),
    FAMILY("counter", live_stats, watch.notify_failures, "ringkv_watch_failures_total",
           "call=\"notify\"", "Watch calls that failed or timed out."),
    SERIES(live_stats, watch.lease_failures, "ringkv_watch_failures_total", "call=\"lease\""),
    FAMILY("gauge", live_stats, watch.leases_held, "ringkv_watch_leases", NULL,
           "Leases this node grants: (node, key or table) pairs it notifies."),
    FAMILY("gauge", live_stats, watch.keys_watched, "ringkv_watch_keys", NULL,
           "Keys this node's streams watch (and keep watching a while after)."),
};

void http_counters_write_live(reply_buf *out, const watch_stats *st, uint64_t events_sent)
{
    live_stats ls = {.watch = *st, .events_sent = events_sent};
    http_counters_write(out, live_counters, sizeof live_counters / sizeof live_counters[0], &ls);
}
