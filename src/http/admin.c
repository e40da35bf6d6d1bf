/* admin.c - /health, /metrics, /membership, /cluster, the web client under
 * /ui/, and the routes whose features are not built yet. */
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

int handle_membership(request *rq)
{
    int rc;
    if (!only_get(rq, &rc))
        return rc;
    rk_buf b = {0};
    rk_err err = rk_buf_appends(&b, "[");
    if (err == RK_OK)
        err = rk_buf_append_json_string(&b, rq->srv->http_addr, strlen(rq->srv->http_addr));
    if (err == RK_OK)
        err = rk_buf_appends(&b, "]");
    return reply_built(rq, err, &b);
}

int handle_cluster(request *rq)
{
    int rc;
    if (!only_get(rq, &rc))
        return rc;
    const http_server *s = rq->srv;
    const kv_config *cfg = kv_get_config(s->k);
    rk_buf b = {0};
    rk_err err = rk_buf_appendf(&b, "{\"cluster_id\":\"%s\",\"node\":", s->cluster_id);
    if (err == RK_OK)
        err = rk_buf_append_json_string(&b, s->name, strlen(s->name));
    if (err == RK_OK)
        err = rk_buf_appendf(&b, ",\"n\":%u,\"r\":%u,\"w\":%u,\"partitions\":%u,\"members\":[{\"id\":\"%016llx\",\"name\":",
                             cfg->n, cfg->r, cfg->w, s->partitions, (unsigned long long)s->node_id);
    if (err == RK_OK)
        err = rk_buf_append_json_string(&b, s->name, strlen(s->name));
    if (err == RK_OK)
        err = rk_buf_appends(&b, ",\"http\":");
    if (err == RK_OK)
        err = rk_buf_append_json_string(&b, s->http_addr, strlen(s->http_addr));
    if (err == RK_OK)
        err = rk_buf_appends(&b, ",\"rpc\":");
    if (err == RK_OK)
        err = rk_buf_append_json_string(&b, s->rpc_addr, strlen(s->rpc_addr));
    /* One member: this node, alive, owning the whole ring. */
    if (err == RK_OK)
        err = rk_buf_appends(&b, ",\"status\":\"alive\",\"self\":true,\"last_heard_ms\":0,\"ownership\":1.0}]}");
    return reply_built(rq, err, &b);
}

static rk_err render_kv_metrics(const http_server *s, rk_buf *out)
{
    kv_stats ks;
    kv_get_stats(s->k, &ks);
    store_stats ss = {0};
    rk_err err = store_get_stats(s->st, &ss);
    if (err != RK_OK)
        return err;
    return rk_buf_appendf(out,
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
