/* ring_view.c - what the web client draws: the tables this node holds
 * (/tables), the ring's owners around the circle (/ring) and where a key
 * lives (/{table}/placement/{key}). Read-only; no I/O beyond the store's
 * catalog. */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

#define RING_SEGMENTS_DEFAULT 360
#define RING_SEGMENTS_MAX 4096

void http_handle_tables(request *rq)
{
    replica_table_name *names = NULL;
    size_t count = 0;
    rk_err err = kv_tables(rq->srv->k, &names, &count);
    if (err != RK_OK) {
        http_reply_err(rq, err);
        return;
    }
    reply_buf b = {0};
    http_reply_add_str(&b, "{\"tables\":[");
    size_t listed = 0;
    for (size_t i = 0; i < count; i++) {
        if (replica_table_reserved(names[i], strlen(names[i])))
            continue;
        http_reply_add_str(&b, listed++ ? "," : "");
        http_reply_add_json_cstr(&b, names[i]);
    }
    http_reply_add_str(&b, "]}");
    free(names);
    http_reply_built(rq, &b);
}

/* Index of id among the ring's members (increasing id order). */
static size_t member_index(const ring_t *ring, uint64_t id)
{
    size_t lo = 0, hi = ring_member_count(ring);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring_member_id(ring, mid) < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void add_member_ref(reply_buf *b, const cluster_view *v, uint64_t id)
{
    const cluster_view_member *m = cluster_view_find(v, id);
    http_reply_addf(b, "{\"id\":\"%016llx\",\"name\":", (unsigned long long)id);
    http_reply_add_json_cstr(b, m ? m->name : "");
    if (m != NULL)
        http_reply_addf(b, ",\"status\":\"%s\",\"liveness\":\"%s\"", cluster_status_name(m->status),
                        cluster_liveness_name(m->liveness));
    http_reply_add_str(b, "}");
}

/* The first owner of S evenly spaced positions, clockwise from 0: the
 * ring's colours without sending all its ranges. */
void http_handle_ring(request *rq)
{
    uint64_t segments = RING_SEGMENTS_DEFAULT;
    if (http_request_uint_param(rq, "segments", 1, RING_SEGMENTS_MAX, &segments) != RK_OK)
        return;
    cluster_view *v = cluster_node_view(rq->srv->cluster);
    if (v->ring == NULL) {
        cluster_view_unref(v);
        http_reply_error(rq, 503, "no_ring", "every member was removed: there is no ring");
        return;
    }
    const ring_t *ring = v->ring;
    reply_buf b = {0};
    http_reply_addf(&b,
                    "{\"partitions\":%zu,\"n\":%u,\"replicas_per_key\":%zu,"
                    "\"ring_version\":\"%016llx\",\"members\":[",
                    ring_range_count(ring), kv_get_config(rq->srv->k)->n, ring_replica_count(ring),
                    (unsigned long long)ring_version(ring));
    for (size_t i = 0; i < ring_member_count(ring); i++) {
        http_reply_add_str(&b, i ? "," : "");
        add_member_ref(&b, v, ring_member_id(ring, i));
    }
    http_reply_add_str(&b, "],\"segments\":[");
    /* 2^64 / segments, as a step that never overflows. */
    uint64_t step = segments == 1 ? 0 : (UINT64_MAX / segments) + 1;
    for (uint64_t s = 0; s < segments; s++) {
        uint64_t first;
        ring_preference_list(ring, s * step, &first, 1);
        http_reply_addf(&b, "%s%zu", s ? "," : "", member_index(ring, first));
    }
    http_reply_add_str(&b, "]}");
    cluster_view_unref(v);
    http_reply_built(rq, &b);
}

static void add_id_list(reply_buf *b, const char *name, const cluster_view *v, const uint64_t *ids,
                        size_t count)
{
    http_reply_addf(b, ",\"%s\":[", name);
    for (size_t i = 0; i < count; i++) {
        http_reply_add_str(b, i ? "," : "");
        add_member_ref(b, v, ids[i]);
    }
    http_reply_add_str(b, "]");
}

static const char *name_of(const cluster_view *v, uint64_t id)
{
    const cluster_view_member *m = cluster_view_find(v, id);
    return m ? m->name : "";
}

void http_handle_placement(request *rq)
{
    kv_key key = {rq->m.table, rq->m.table_len, rq->m.key, rq->m.key_len};
    kv_placement pl;
    rk_err err = kv_placement_of(rq->srv->k, &key, &pl);
    if (err == RK_EQUORUM) {
        http_reply_error(rq, 503, "no_ring", "every member was removed: there is no ring");
        return;
    }
    if (err != RK_OK) {
        http_reply_err(rq, err);
        return;
    }
    cluster_view *v = cluster_node_view(rq->srv->cluster);
    reply_buf b = {0};
    http_reply_add_str(&b, "{\"table\":");
    http_reply_add_json_string(&b, rq->m.table, rq->m.table_len);
    http_reply_add_str(&b, ",\"key\":");
    http_reply_add_json_string(&b, rq->m.key, rq->m.key_len);
    /* position / 2^64: where the key sits on the circle, from the top */
    http_reply_addf(&b, ",\"position\":\"%016llx\",\"angle\":%.6f,\"range\":%u,\"pending\":%zu",
                    (unsigned long long)pl.position, (double)pl.position / 18446744073709551616.0,
                    pl.range, pl.pending);
    add_id_list(&b, "replicas", v, pl.replicas, pl.replica_count);
    add_id_list(&b, "fallbacks", v, pl.fallbacks, pl.fallback_count);
    http_reply_add_str(&b, ",\"stand_ins\":[");
    for (size_t i = 0; i < pl.stand_in_count; i++) {
        http_reply_add_str(&b, i ? ",{\"fallback\":" : "{\"fallback\":");
        http_reply_add_json_cstr(&b, name_of(v, pl.stand_in[i]));
        http_reply_add_str(&b, ",\"for\":");
        http_reply_add_json_cstr(&b, name_of(v, pl.stand_in_for[i]));
        http_reply_add_str(&b, "}");
    }
    http_reply_add_str(&b, "]}");
    cluster_view_unref(v);
    http_reply_built(rq, &b);
}
