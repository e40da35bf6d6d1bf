/* http.h - the node's HTTP gateway: REST/JSON API, metrics, web client. */
#ifndef RINGKV_HTTP_H
#define RINGKV_HTTP_H

#include "ringkv/common.h"
#include "ringkv/kv.h"
#include "ringkv/store.h"
#include "ringkv/sync.h"
#include "ringkv/watch.h"

typedef struct http_server http_server;

/* What /health and /cluster say about this node. Strings are copied. */
typedef struct http_node_info {
    const char *name;
    uint64_t id;
    const char *http_addr; /* host:port as given to --http */
    const char *rpc_addr;
    const char *cluster_id;
    unsigned partitions; /* fixed ring ranges */
    /* Borrowed, each required: every node runs them, a node alone too (a
     * one-member cluster, as `ringkvd --data d` is). */
    cluster_node *cluster;  /* /membership, /cluster, the quorum headers */
    rpc_server *rpc;        /* for /metrics */
    rpc_client *rpc_client; /* for /metrics */
    sync_service *sync;     /* leave, remove, repair, /cluster's "sync" */
    watch *watch;           /* the subscribe routes' streams */
} http_node_info;

typedef struct http_options {
    const char *listen;        /* host:port */
    unsigned threads;          /* civetweb workers for everything but streams */
    unsigned max_streams;      /* more workers, for SSE streams (the watch
                                  module's max_streams) */
    const char *webclient_dir; /* served at /ui/; NULL = none */
    size_t max_value_bytes;    /* 413 above this */
} http_options;

/* Starts serving; k and the members node borrows must outlive the server.
 * Returns RK_EINVAL (nothing started) when node lacks its cluster, rpc,
 * rpc_client or sync; RK_ENOMEM; RK_EIO when it cannot listen. Free with
 * http_stop, which waits for requests in flight to finish. */
rk_err http_start(const http_options *opts, const http_node_info *node, kv *k, http_server **out);
void http_stop(http_server *srv);

#endif
