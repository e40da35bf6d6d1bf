/* server.c - starts and stops civetweb with the gateway's settings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* civetweb's own log lines go to ours, at warn level: they are rare and
 * usually worth seeing (a port in use, a client that sent garbage). */
static int log_message_cb(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    RK_WARN("civetweb", "%s", message);
    return 1;
}

rk_err http_start(const http_options *opts, const http_node_info *node, kv *k, http_server **out)
{
    /* No route has a branch for a missing part: refuse here, once. */
    if (node->cluster == NULL || node->rpc == NULL || node->rpc_client == NULL ||
        node->sync == NULL || node->watch == NULL)
        return RK_EINVAL;
    http_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return RK_ENOMEM;
    rk_err err = http_metrics_alloc(http_routes, http_route_count, &srv->metrics);
    if (err != RK_OK) {
        free(srv);
        return err;
    }
    srv->k = k;
    srv->opts = *opts;
    copy_str(srv->listen, sizeof srv->listen, opts->listen);
    copy_str(srv->webclient_dir, sizeof srv->webclient_dir, opts->webclient_dir);
    srv->opts.listen = srv->listen;
    srv->opts.webclient_dir = srv->webclient_dir;
    copy_str(srv->name, sizeof srv->name, node->name);
    copy_str(srv->http_addr, sizeof srv->http_addr, node->http_addr);
    copy_str(srv->rpc_addr, sizeof srv->rpc_addr, node->rpc_addr);
    copy_str(srv->cluster_id, sizeof srv->cluster_id, node->cluster_id);
    srv->node_id = node->id;
    srv->partitions = node->partitions;
    srv->cluster = node->cluster;
    srv->rpc = node->rpc;
    srv->rpc_client = node->rpc_client;
    srv->sync = node->sync;
    srv->watch = node->watch;
    srv->started_ms = rk_now_ms();

    /* Every open connection holds a worker thread (civetweb's model), so the
     * thread count is the connection limit: the REST workers, and as many
     * more as streams may be open, so that streams never take the workers
     * requests need (the watch module refuses a stream over its maximum).
     * civetweb starts them all at once; an idle one costs ~28 KB
     * (docs/live-updates.md). Keep-alive is off by default in civetweb and
     * costs ~6x throughput without it; Nagle is off because small replies
     * must not wait for an ACK. A request's head must arrive within
     * request_timeout_ms: a connection that sends half a request holds a
     * worker no longer than that. */
    char threads[16];
    snprintf(threads, sizeof threads, "%u",
             (opts->threads ? opts->threads : 64) + opts->max_streams);
    const char *options[] = {
        "listening_ports",
        srv->listen,
        "num_threads",
        threads,
        "enable_keep_alive",
        "yes",
        "keep_alive_timeout_ms",
        "30000",
        "request_timeout_ms",
        "30000",
        "tcp_nodelay",
        "1",
        "enable_directory_listing",
        "no",
        /* Keys are decoded by our router, segment by segment: civetweb's
         * own decoding would turn "a%2541" into "aA" and lose "%2F". */
        "decode_url",
        "no",
        NULL,
    };
    struct mg_callbacks callbacks = {.log_message = log_message_cb};
    mg_init_library(0);
    srv->ctx = mg_start(&callbacks, srv, options);
    if (srv->ctx == NULL) {
        RK_ERROR("http", "cannot listen on %s (in use, or not a local address?)", srv->listen);
        mg_exit_library();
        http_metrics_free(srv->metrics);
        free(srv);
        return RK_EIO;
    }
    watch_set_renderer(srv->watch, http_render_event, NULL);
    mg_set_request_handler(srv->ctx, "/", http_dispatch, srv);
    *out = srv;
    return RK_OK;
}

void http_stop(http_server *srv)
{
    if (srv == NULL)
        return;
    watch_shutdown(srv->watch); /* streams end: mg_stop waits for their handlers */
    mg_stop(srv->ctx);          /* waits for the handlers that are running */
    mg_exit_library();
    http_metrics_free(srv->metrics);
    free(srv);
}
