/* admin.c - /health, /metrics, /membership, /cluster, the web client under
 * /ui/, and the routes whose features are not built yet. The routes that
 * change the cluster are in cluster_admin.c. Which methods each takes is
 * the route table's business (dispatch.c). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "http_internal.h"

void http_handle_health(request *rq)
{
    const http_server *s = rq->srv;
    reply_buf b = {0};
    http_reply_add_str(&b, "{\"status\":\"ok\",\"node\":");
    http_reply_add_json_cstr(&b, s->name);
    http_reply_addf(&b, ",\"id\":\"%016llx\",\"uptime_ms\":%llu}", (unsigned long long)s->node_id,
                    (unsigned long long)(rk_now_ms() - s->started_ms));
    http_reply_built(rq, &b);
}

/* The ring members' HTTP addresses (a lone node: its own). */
void http_handle_membership(request *rq)
{
    const http_server *s = rq->srv;
    reply_buf b = {0};
    http_reply_add_str(&b, "[");
    cluster_table *t = NULL;
    if (b.err == RK_OK)
        b.err = cluster_node_table(s->cluster, &t);
    bool first = true;
    for (size_t i = 0; t != NULL && i < cluster_member_count(t); i++) {
        const cluster_entry *e = &cluster_member_at(t, i)->entry;
        if (!cluster_status_in_ring(e->status))
            continue;
        http_reply_add_str(&b, first ? "" : ",");
        first = false;
        http_reply_add_json_cstr(&b, e->http_addr);
    }
    cluster_table_free(t);
    http_reply_add_str(&b, "]");
    http_reply_built(rq, &b);
}

/* One member of /cluster. */
static void add_member(reply_buf *b, const cluster_member *m, bool self, const ring_t *ring,
                       uint64_t now_ms)
{
    const cluster_entry *e = &m->entry;
    double share = 0;
    if (ring != NULL && ring_owner_share(ring, e->id, NULL, &share) != RK_OK)
        share = 0;
    http_reply_addf(b, "{\"id\":\"%016llx\",\"name\":", (unsigned long long)e->id);
    http_reply_add_json_cstr(b, e->name);
    http_reply_add_str(b, ",\"http\":");
    http_reply_add_json_cstr(b, e->http_addr);
    http_reply_add_str(b, ",\"rpc\":");
    http_reply_add_json_cstr(b, e->rpc_addr);
    uint64_t ago = self || now_ms < m->last_heard_ms ? 0 : now_ms - m->last_heard_ms;
    http_reply_addf(b,
                    ",\"status\":\"%s\",\"liveness\":\"%s\",\"self\":%s,"
                    "\"incarnation\":%llu,\"last_heard_ms_ago\":%llu,\"ownership\":%.4f}",
                    cluster_status_name(e->status), cluster_liveness_name(m->liveness),
                    self ? "true" : "false", (unsigned long long)e->incarnation,
                    (unsigned long long)ago, share);
}

/* /cluster's "sync": the handoff and anti-entropy counters. */
static void add_sync(reply_buf *b, sync_service *sync)
{
    http_reply_add_str(b, "],\"sync\":");
    sync_stats st;
    sync_get_stats(sync, &st);
    http_sync_append_json(&st, b);
}

/* Replicas each key has in the read ring: min(N, members). Fewer than N
 * while the ring is smaller than N; R and W are then met by all of them. */
static size_t replicas_per_key(const cluster_view *v)
{
    return v->ring ? ring_replica_count(v->ring) : 0;
}

void http_handle_cluster(request *rq)
{
    const http_server *s = rq->srv;
    const kv_config *cfg = kv_get_config(s->k);
    cluster_table *t = NULL;
    cluster_view *v = cluster_node_view(s->cluster);
    reply_buf b = {0};
    b.err = cluster_node_table(s->cluster, &t);
    http_reply_addf(&b, "{\"cluster_id\":\"%016llx\",\"node\":", (unsigned long long)v->cluster_id);
    http_reply_add_json_cstr(&b, s->name);
    http_reply_addf(&b,
                    ",\"id\":\"%016llx\",\"n\":%u,\"r\":%u,\"w\":%u,\"partitions\":%u,"
                    "\"replicas_per_key\":%zu,\"under_replicated\":%s,"
                    "\"ring_version\":\"%016llx\",\"members\":[",
                    (unsigned long long)s->node_id, cfg->n, cfg->r, cfg->w, s->partitions,
                    replicas_per_key(v), replicas_per_key(v) < cfg->n ? "true" : "false",
                    (unsigned long long)(v->ring ? ring_version(v->ring) : 0));
    uint64_t now = rk_monotonic_ms();
    for (size_t i = 0; t != NULL && i < cluster_member_count(t); i++) {
        const cluster_member *m = cluster_member_at(t, i);
        http_reply_add_str(&b, i ? "," : "");
        add_member(&b, m, m->entry.id == s->node_id, v->ring, now);
    }
    add_sync(&b, s->sync);
    http_reply_add_str(&b, "}");
    cluster_table_free(t);
    cluster_view_unref(v);
    http_reply_built(rq, &b);
}

/* Every module's counters, each from its table (counters.c). */
void http_handle_metrics(request *rq)
{
    const http_server *s = rq->srv;
    reply_buf b = {0};
    http_metrics_render(s->metrics, &b);
    kv_stats ks;
    kv_get_stats(s->k, &ks);
    /* kv stores hints and the replica takes them; the sync service
     * delivers them, so the three events of one family come from two
     * places. */
    sync_stats sy;
    sync_get_stats(s->sync, &sy);
    store_stats ss = {0};
    if (b.err == RK_OK)
        b.err = kv_get_storage_stats(s->k, &ss);
    rpc_server_stats rs;
    rpc_client_stats rc;
    rpc_server_get_stats(s->rpc, &rs);
    rpc_client_get_stats(s->rpc_client, &rc);
    http_counters_write_node(&b, &ks, &ss, sy.hints_delivered, &rs, &rc);
    http_sync_render_metrics(&sy, &b);
    watch_stats ws;
    watch_get_stats(s->watch, &ws);
    http_counters_write_live(&b, &ws, atomic_load(&s->events_sent));
    if (b.err == RK_OK)
        http_reply_send(rq, 200, "text/plain; version=0.0.4", NULL, b.buf.data, b.buf.len);
    else
        http_reply_error(rq, 500, rk_errcode(b.err), rk_strerror(b.err));
    http_reply_buf_free(&b);
}

#define PEER_METRICS_TIMEOUT_MS 1000
#define PEER_METRICS_MAX (4u << 20)

/* GET /cluster/metrics/{node}: a member's /metrics, fetched by this node,
 * so a page served here can chart every node without talking to them. */
void http_handle_peer_metrics(request *rq)
{
    char text[CLUSTER_NAME_MAX + 1];
    size_t len = 0;
    const char *raw = rq->m.rest ? rq->m.rest + 1 : "";
    if (http_percent_decode(raw, strlen(raw), text, sizeof text, &len) != RK_OK || len == 0) {
        http_reply_error(rq, 404, "not_found", "no such node; see GET /cluster");
        return;
    }
    cluster_view *v = cluster_node_view(rq->srv->cluster);
    const cluster_view_member *m = NULL;
    rk_err err = http_admin_find_member(v, text, &m);
    char addr[CLUSTER_ADDR_MAX + 16] = "";
    bool self = err == RK_OK && m->id == rq->srv->node_id;
    if (err == RK_OK && !self)
        rk_reachable_http_addr(m->http_addr, m->rpc_addr, addr, sizeof addr);
    cluster_view_unref(v);
    if (err == RK_ENOTFOUND) {
        http_reply_error(rq, 404, "not_found", "no such node; see GET /cluster");
        return;
    }
    if (err == RK_EEXIST) {
        http_reply_error(rq, 409, "conflict", "several nodes carry that name: give the 16-hex id");
        return;
    }
    if (self) {
        http_handle_metrics(rq);
        return;
    }
    rk_buf body = {0};
    int status = 0;
    char why[256] = "";
    err = http_fetch_get(addr, "/metrics", PEER_METRICS_TIMEOUT_MS, PEER_METRICS_MAX, &status,
                         &body, why, sizeof why);
    if (err == RK_OK && status == 200) {
        http_reply_send(rq, 200, "text/plain; version=0.0.4", NULL, body.data, body.len);
    } else {
        char msg[sizeof addr + sizeof why + 16];
        if (err == RK_OK)
            snprintf(msg, sizeof msg, "%s answered %d", addr, status);
        else
            snprintf(msg, sizeof msg, "%s: %s", addr, why);
        http_reply_error(rq, 502, "unreachable", msg);
    }
    rk_buf_free(&body);
}

static void redirect(request *rq, const char *to)
{
    char headers[256];
    snprintf(headers, sizeof headers, "Location: %s\r\n", to);
    http_reply_send(rq, 302, "text/plain", headers, "", 0);
}

/* Static files of the web client. Paths with "..", "%" or a backslash are
 * refused outright rather than normalised. */
void http_handle_ui(request *rq)
{
    const char *rest = rq->m.rest;
    if (rest == NULL || *rest == '\0' || strcmp(rq->ri->local_uri, "/") == 0) {
        redirect(rq, "/ui/");
        return;
    }
    if (rq->srv->webclient_dir[0] == '\0') {
        http_reply_error(rq, 404, "not_found", "this node serves no web client (--webclient)");
        return;
    }
    size_t len = strcspn(rest, "?");
    if (strstr(rest, "..") != NULL || memchr(rest, '%', len) != NULL ||
        memchr(rest, '\\', len) != NULL) {
        http_reply_error(rq, 404, "not_found", "no such file");
        return;
    }
    char path[2048];
    int n = snprintf(path, sizeof path, "%s%.*s%s", rq->srv->webclient_dir, (int)len, rest,
                     rest[len - 1] == '/' ? "index.html" : "");
    struct stat st;
    if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        http_reply_error(rq, 404, "not_found", "no such file");
    else
        http_reply_file(rq, path);
}

void http_handle_auth(request *rq)
{
    http_reply_error(rq, 501, "unsupported",
                     "authentication is not built yet: every write is anonymous");
}
