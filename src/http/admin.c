/* admin.c - /health, /metrics, /membership, /cluster, the web client under
 * /ui/, and the routes whose features are not built yet. The routes that
 * change the cluster are in cluster_admin.c. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "http_internal.h"

static bool only_get(request *rq, int *rc)
{
    if (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0)
        return true;
    *rc = reply_method_not_allowed(rq, "GET");
    return false;
}

static int reply_built(request *rq, rk_err err, rk_buf *body)
{
    int rc = err == RK_OK ? reply_json(rq->conn, 200, NULL, body)
                          : reply_error(rq->conn, 500, rk_errcode(err), rk_strerror(err));
    rk_buf_free(body);
    return rc;
}

int handle_health(request *rq)
{
    int rc;
    if (!only_get(rq, &rc))
        return rc;
    const http_server *s = rq->srv;
    rk_buf b = {0};
    rk_err err = rk_buf_appends(&b, "{\"status\":\"ok\",\"node\":");
    if (err == RK_OK)
        err = rk_buf_append_json_string(&b, s->name, strlen(s->name));
    if (err == RK_OK)
        err = rk_buf_appendf(&b, ",\"id\":\"%016llx\",\"uptime_ms\":%llu}",
                             (unsigned long long)s->node_id,
                             (unsigned long long)(rk_now_ms() - s->started_ms));
    return reply_built(rq, err, &b);
}

/* The ring members' HTTP addresses (a lone node: its own). */
int handle_membership(request *rq)
{
    int rc;
    if (!only_get(rq, &rc))
        return rc;
    const http_server *s = rq->srv;
    rk_buf b = {0};
    rk_err err = rk_buf_appends(&b, "[");
    cluster_table *t = NULL;
    if (err == RK_OK && s->cluster == NULL)
        err = rk_buf_append_json_string(&b, s->http_addr, strlen(s->http_addr));
    else if (err == RK_OK)
        err = cluster_node_table(s->cluster, &t);
    bool first = true;
    for (size_t i = 0; t != NULL && err == RK_OK && i < cluster_member_count(t); i++) {
        const cluster_entry *e = &cluster_member_at(t, i)->entry;
        if (!cluster_status_in_ring(e->status))
            continue;
        err = rk_buf_appends(&b, first ? "" : ",");
        first = false;
        if (err == RK_OK)
            err = rk_buf_append_json_string(&b, e->http_addr, strlen(e->http_addr));
    }
    cluster_table_free(t);
    if (err == RK_OK)
        err = rk_buf_appends(&b, "]");
    return reply_built(rq, err, &b);
}

/* One member of /cluster. */
static rk_err append_member(rk_buf *b, const cluster_member *m, bool self, const ring_t *ring,
                            uint64_t now_ms)
{
    const cluster_entry *e = &m->entry;
    double share = 0;
    if (ring != NULL && ring_owner_share(ring, e->id, NULL, &share) != RK_OK)
        share = 0;
    rk_err err = rk_buf_appendf(b, "{\"id\":\"%016llx\",\"name\":", (unsigned long long)e->id);
    if (err == RK_OK)
        err = rk_buf_append_json_string(b, e->name, strlen(e->name));
    if (err == RK_OK)
        err = rk_buf_appends(b, ",\"http\":");
    if (err == RK_OK)
        err = rk_buf_append_json_string(b, e->http_addr, strlen(e->http_addr));
    if (err == RK_OK)
        err = rk_buf_appends(b, ",\"rpc\":");
    if (err == RK_OK)
        err = rk_buf_append_json_string(b, e->rpc_addr, strlen(e->rpc_addr));
    uint64_t ago = self || now_ms < m->last_heard_ms ? 0 : now_ms - m->last_heard_ms;
    if (err == RK_OK)
        err = rk_buf_appendf(b,
                             ",\"status\":\"%s\",\"liveness\":\"%s\",\"self\":%s,"
                             "\"incarnation\":%llu,\"last_heard_ms_ago\":%llu,\"ownership\":%.4f}",
                             cluster_status_name(e->status), cluster_liveness_name(m->liveness),
                             self ? "true" : "false", (unsigned long long)e->incarnation,
                             (unsigned long long)ago, share);
    return err;
}

/* /cluster's "sync": the handoff and anti-entropy counters, null when this
 * node runs no sync service. */
static rk_err append_sync(rk_buf *b, sync_service *sync)
{
    rk_err err = rk_buf_appends(b, "],\"sync\":");
    if (err != RK_OK || sync == NULL)
        return err == RK_OK ? rk_buf_appends(b, "null") : err;
    sync_stats st;
    sync_get_stats(sync, &st);
    return http_sync_append_json(&st, b);
}

/* Replicas each key has in the read ring: min(N, members). Fewer than N
 * while the ring is smaller than N; R and W are then met by all of them. */
static size_t replicas_per_key(const cluster_view *v)
{
    return v->ring ? ring_replica_count(v->ring) : 0;
}

int handle_cluster(request *rq)
{
    int rc;
    if (!only_get(rq, &rc))
        return rc;
    const http_server *s = rq->srv;
    if (s->cluster == NULL)
        return reply_error(rq->conn, 503, "no_cluster", "this node is not part of a cluster");
    const kv_config *cfg = kv_get_config(s->k);
    cluster_table *t = NULL;
    cluster_view *v = cluster_node_view(s->cluster);
    rk_buf b = {0};
    rk_err err = cluster_node_table(s->cluster, &t);
    if (err == RK_OK)
        err = rk_buf_appendf(&b, "{\"cluster_id\":\"%016llx\",\"node\":",
                             (unsigned long long)v->cluster_id);
    if (err == RK_OK)
        err = rk_buf_append_json_string(&b, s->name, strlen(s->name));
    if (err == RK_OK)
        err = rk_buf_appendf(&b,
                             ",\"id\":\"%016llx\",\"n\":%u,\"r\":%u,\"w\":%u,\"partitions\":%u,"
                             "\"replicas_per_key\":%zu,\"under_replicated\":%s,"
                             "\"ring_version\":\"%016llx\",\"members\":[",
                             (unsigned long long)s->node_id, cfg->n, cfg->r, cfg->w, s->partitions,
                             replicas_per_key(v), replicas_per_key(v) < cfg->n ? "true" : "false",
                             (unsigned long long)(v->ring ? ring_version(v->ring) : 0));
    uint64_t now = rk_monotonic_ms();
    for (size_t i = 0; err == RK_OK && i < cluster_member_count(t); i++) {
        const cluster_member *m = cluster_member_at(t, i);
        err = rk_buf_appends(&b, i ? "," : "");
        if (err == RK_OK)
            err = append_member(&b, m, m->entry.id == s->node_id, v->ring, now);
    }
    if (err == RK_OK)
        err = append_sync(&b, s->sync);
    if (err == RK_OK)
        err = rk_buf_appends(&b, "}");
    cluster_table_free(t);
    cluster_view_unref(v);
    return reply_built(rq, err, &b);
}

static rk_err render_kv_metrics(const http_server *s, rk_buf *out)
{
    kv_stats ks;
    kv_get_stats(s->k, &ks);
    /* kv stores hints and the replica takes them; the sync service
     * delivers them (none without one), so the three events of one family
     * come from two places. */
    sync_stats sy = {0};
    if (s->sync != NULL)
        sync_get_stats(s->sync, &sy);
    store_stats ss = {0};
    rk_err err = kv_get_storage_stats(s->k, &ss);
    if (err != RK_OK)
        return err;
    err = rk_buf_appendf(out,
        "# HELP ringkv_kv_operations_total Record operations applied by this node.\n"
        "# TYPE ringkv_kv_operations_total counter\n"
        "ringkv_kv_operations_total{op=\"read\"} %llu\n"
        "ringkv_kv_operations_total{op=\"write\"} %llu\n"
        "ringkv_kv_operations_total{op=\"delete\"} %llu\n"
        "# HELP ringkv_kv_precondition_failures_total Conditional writes refused (412).\n"
        "# TYPE ringkv_kv_precondition_failures_total counter\n"
        "ringkv_kv_precondition_failures_total %llu\n"
        "# HELP ringkv_siblings_dropped_total Siblings dropped by the per-key cap.\n"
        "# TYPE ringkv_siblings_dropped_total counter\n"
        "ringkv_siblings_dropped_total %llu\n"
        "# HELP ringkv_siblings_max Most siblings one object held after a write.\n"
        "# TYPE ringkv_siblings_max gauge\n"
        "ringkv_siblings_max %llu\n"
        "# HELP ringkv_clock_entries_max Most entries one object's version vector held after a write.\n"
        "# TYPE ringkv_clock_entries_max gauge\n"
        "ringkv_clock_entries_max %llu\n"
        "# HELP ringkv_keys_estimate Records in this node's store (RocksDB estimate).\n"
        "# TYPE ringkv_keys_estimate gauge\n"
        "ringkv_keys_estimate %llu\n"
        "# HELP ringkv_store_bytes Size of this node's RocksDB, by part.\n"
        "# TYPE ringkv_store_bytes gauge\n"
        "ringkv_store_bytes{part=\"sst\"} %llu\n"
        "ringkv_store_bytes{part=\"memtable\"} %llu\n"
        "ringkv_store_bytes{part=\"live_data\"} %llu\n",
        (unsigned long long)ks.reads, (unsigned long long)ks.writes,
        (unsigned long long)ks.deletes, (unsigned long long)ks.precondition_failures,
        (unsigned long long)ks.siblings_dropped, (unsigned long long)ks.max_siblings_seen,
        (unsigned long long)ks.max_clock_entries, (unsigned long long)ss.keys_estimate,
        (unsigned long long)ss.sst_bytes, (unsigned long long)ss.memtable_bytes,
        (unsigned long long)ss.live_data_bytes);
    if (err != RK_OK)
        return err;
    return rk_buf_appendf(out,
        "# HELP ringkv_quorum_failures_total Reads and writes answered 503: too few replicas in time.\n"
        "# TYPE ringkv_quorum_failures_total counter\n"
        "ringkv_quorum_failures_total %llu\n"
        "# HELP ringkv_read_repairs_total Stale or missing replicas sent the merged object by a read.\n"
        "# TYPE ringkv_read_repairs_total counter\n"
        "ringkv_read_repairs_total %llu\n"
        "# HELP ringkv_hints_total Writes held for replicas that missed them, by what became of them.\n"
        "# TYPE ringkv_hints_total counter\n"
        "ringkv_hints_total{event=\"stored\"} %llu\n"
        "ringkv_hints_total{event=\"delivered\"} %llu\n"
        "ringkv_hints_total{event=\"received\"} %llu\n"
        "# HELP ringkv_hints_held Hints this node holds (RocksDB estimate).\n"
        "# TYPE ringkv_hints_held gauge\n"
        "ringkv_hints_held %llu\n"
        "# HELP ringkv_forwarded_writes_total Client writes applied by another replica (Kv.Apply).\n"
        "# TYPE ringkv_forwarded_writes_total counter\n"
        "ringkv_forwarded_writes_total %llu\n",
        (unsigned long long)ks.quorum_failures, (unsigned long long)ks.read_repairs,
        (unsigned long long)ks.hints_stored, (unsigned long long)sy.hints_delivered,
        (unsigned long long)ks.hints_received, (unsigned long long)ss.hints_estimate,
        (unsigned long long)ks.forwarded_writes);
}

/* What the RPC server dropped or served and what the client's calls came
 * to: a frame that does not open, is stale or replayed is counted here. */
static rk_err render_rpc_metrics(const http_server *s, rk_buf *out)
{
    rk_err err = RK_OK;
    if (s->rpc != NULL) {
        rpc_server_stats st;
        rpc_server_get_stats(s->rpc, &st);
        err = rk_buf_appendf(out,
            "# HELP ringkv_rpc_server_total RPC requests served, and frames dropped, by outcome.\n"
            "# TYPE ringkv_rpc_server_total counter\n"
            "ringkv_rpc_server_total{outcome=\"served\"} %llu\n"
            "ringkv_rpc_server_total{outcome=\"handler_error\"} %llu\n"
            "ringkv_rpc_server_total{outcome=\"unknown_method\"} %llu\n"
            "ringkv_rpc_server_total{outcome=\"bad_input\"} %llu\n"
            "ringkv_rpc_server_total{outcome=\"expired\"} %llu\n"
            "ringkv_rpc_server_total{outcome=\"bad_frame\"} %llu\n"
            "ringkv_rpc_server_total{outcome=\"malformed\"} %llu\n"
            "ringkv_rpc_server_total{outcome=\"stale\"} %llu\n"
            "ringkv_rpc_server_total{outcome=\"replayed\"} %llu\n"
            "ringkv_rpc_server_total{outcome=\"send_error\"} %llu\n",
            (unsigned long long)st.requests, (unsigned long long)st.handler_errors,
            (unsigned long long)st.unknown_method, (unsigned long long)st.bad_input,
            (unsigned long long)st.expired, (unsigned long long)st.bad_frames,
            (unsigned long long)st.malformed, (unsigned long long)st.stale,
            (unsigned long long)st.replayed, (unsigned long long)st.send_errors);
    }
    if (err == RK_OK && s->rpc_client != NULL) {
        rpc_client_stats ct;
        rpc_client_get_stats(s->rpc_client, &ct);
        err = rk_buf_appendf(out,
            "# HELP ringkv_rpc_client_total RPC calls this node made, by outcome.\n"
            "# TYPE ringkv_rpc_client_total counter\n"
            "ringkv_rpc_client_total{outcome=\"started\"} %llu\n"
            "ringkv_rpc_client_total{outcome=\"ok\"} %llu\n"
            "ringkv_rpc_client_total{outcome=\"error\"} %llu\n"
            "ringkv_rpc_client_total{outcome=\"timeout\"} %llu\n"
            "ringkv_rpc_client_total{outcome=\"failure\"} %llu\n"
            "ringkv_rpc_client_total{outcome=\"bad_reply\"} %llu\n",
            (unsigned long long)ct.calls, (unsigned long long)ct.ok,
            (unsigned long long)ct.errors, (unsigned long long)ct.timeouts,
            (unsigned long long)ct.failures, (unsigned long long)ct.bad_replies);
    }
    return err;
}

int handle_metrics(request *rq)
{
    int rc;
    if (!only_get(rq, &rc))
        return rc;
    rk_buf b = {0};
    rk_err err = http_metrics_render(rq->srv->metrics, &b);
    if (err == RK_OK)
        err = render_kv_metrics(rq->srv, &b);
    if (err == RK_OK)
        err = render_rpc_metrics(rq->srv, &b);
    if (err == RK_OK && rq->srv->sync != NULL) {
        sync_stats st;
        sync_get_stats(rq->srv->sync, &st);
        err = http_sync_render_metrics(&st, &b);
    }
    rc = err == RK_OK ? reply_send(rq->conn, 200, "text/plain; version=0.0.4", NULL, b.data, b.len)
                      : reply_error(rq->conn, 500, rk_errcode(err), rk_strerror(err));
    rk_buf_free(&b);
    return rc;
}

static int redirect(request *rq, const char *to)
{
    char headers[256];
    snprintf(headers, sizeof headers, "Location: %s\r\n", to);
    return reply_send(rq->conn, 302, "text/plain", headers, "", 0);
}

/* Static files of the web client. Paths with "..", "%" or a backslash are
 * refused outright rather than normalised. */
int handle_ui(request *rq)
{
    int rc;
    if (!only_get(rq, &rc))
        return rc;
    const char *rest = rq->m.rest;
    if (rest == NULL || *rest == '\0' || strcmp(rq->ri->local_uri, "/") == 0)
        return redirect(rq, "/ui/");
    if (rq->srv->webclient_dir[0] == '\0')
        return reply_error(rq->conn, 404, "not_found", "this node serves no web client (--webclient)");
    size_t len = strcspn(rest, "?");
    if (strstr(rest, "..") != NULL || memchr(rest, '%', len) != NULL || memchr(rest, '\\', len) != NULL)
        return reply_error(rq->conn, 404, "not_found", "no such file");
    char path[2048];
    int n = snprintf(path, sizeof path, "%s%.*s%s", rq->srv->webclient_dir, (int)len, rest,
                     rest[len - 1] == '/' ? "index.html" : "");
    struct stat st;
    if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return reply_error(rq->conn, 404, "not_found", "no such file");
    mg_send_mime_file(rq->conn, path, NULL);
    return 200;
}

int handle_auth(request *rq)
{
    return reply_error(rq->conn, 501, "unsupported",
                       "authentication is not built yet: every write is anonymous");
}

int handle_subscribe(request *rq)
{
    return reply_error(rq->conn, 501, "unsupported", "live updates (SSE) are not built yet");
}
