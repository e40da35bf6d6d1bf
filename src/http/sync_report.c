/* sync_report.c - what the sync service reports: /cluster's "sync" object
 * and its /metrics lines, both from one table of struct sync_stats. */
#include <stddef.h>

#include "http_internal.h"

/* One table, so the JSON and the metrics cannot drift apart and a new
 * counter is one line: its JSON member is the field's name. */
#define COUNTER(field, metric, kind, text)                                                         \
    {                                                                                              \
        .name = metric, .type = kind, .help = text, .offset = offsetof(sync_stats, field),         \
        .json = #field                                                                             \
    }

static const http_counter counters[] = {
    COUNTER(ranges_pending, "ringkv_sync_ranges_pending", "gauge",
            "Ring ranges this node still has to hand off."),
    COUNTER(handoff_keys_sent, "ringkv_handoff_keys_sent_total", "counter",
            "Records pushed to their new replicas by range handoff."),
    COUNTER(handoff_bytes_sent, "ringkv_handoff_bytes_sent_total", "counter",
            "Bytes of records pushed by range handoff."),
    COUNTER(handoff_keys_dropped, "ringkv_handoff_keys_dropped_total", "counter",
            "Local copies deleted once every new replica acknowledged them."),
    COUNTER(keys_received, "ringkv_sync_keys_received_total", "counter",
            "Records pushed to or pulled by this node (handoff, anti-entropy) that changed its "
            "replica."),
    COUNTER(bytes_received, "ringkv_sync_bytes_received_total", "counter",
            "Bytes of sync messages this node received: pushes, and the replies to its own calls."),
    COUNTER(ae_exchanges, "ringkv_anti_entropy_exchanges_total", "counter",
            "Anti-entropy exchanges with a peer completed."),
    COUNTER(ae_keys_compared, "ringkv_anti_entropy_keys_compared_total", "counter",
            "Keys compared by digest in buckets whose Merkle hashes differed."),
    COUNTER(ae_keys_repaired, "ringkv_anti_entropy_keys_repaired_total", "counter",
            "Keys sent or fetched by anti-entropy because the replicas differed."),
    COUNTER(ae_bytes_sent, "ringkv_anti_entropy_bytes_sent_total", "counter",
            "Tree, digest and record bytes sent by anti-entropy."),
    COUNTER(tombstones_purged, "ringkv_tombstones_purged_total", "counter",
            "Tombstones purged after the grace period, once every holder had them."),
    /* /metrics says it as ringkv_hints_total{event="delivered"}, beside the
     * hints stored and received, which are kv's and the replica's. */
    COUNTER(hints_delivered, NULL, "counter", NULL),
    COUNTER(hint_bytes_sent, "ringkv_hint_bytes_sent_total", "counter",
            "Bytes of held writes (hints) sent to the replicas they were meant for."),
};

#undef COUNTER

#define N_COUNTERS (sizeof counters / sizeof counters[0])

void http_sync_append_json(const sync_stats *st, reply_buf *out)
{
    http_reply_add_str(out, "{");
    for (size_t i = 0; i < N_COUNTERS; i++)
        http_reply_addf(out, "\"%s\":%llu,", counters[i].json,
                        (unsigned long long)http_counter_value(&counters[i], st));
    http_reply_addf(out, "\"leaving\":%s}", st->leaving ? "true" : "false");
}

void http_sync_render_metrics(const sync_stats *st, reply_buf *out)
{
    http_counters_write(out, counters, N_COUNTERS, st);
}
