/* node_fixture.c - a real node in the test process (node_fixture.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "node_fixture.h"
#include "support.h"

static const char SECRET[] = "unit-test-cluster-secret-0123456789";
#define PARTITIONS 256u

/* A port the kernel just gave out and took back: free for a moment. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

void test_node_up(test_node *tn, size_t index, const kv_config *kc, const sync_config *sc,
                  const char *seed_rpc_addr)
{
    if (tn->dir[0] == '\0') {
        strcpy(tn->dir, "/tmp/ringkv-test-node-XXXXXX");
        assert_non_null(mkdtemp(tn->dir));
        snprintf(tn->rpc_addr, sizeof tn->rpc_addr, "127.0.0.1:%d", free_port());
        snprintf(tn->http_addr, sizeof tn->http_addr, "127.0.0.1:%zu", 1000 + index);
        snprintf(tn->name, sizeof tn->name, "c%zu", index + 1);
    }
    store_options so;
    store_options_default(&so);
    so.cache_bytes = 4 << 20;
    assert_int_equal(store_open(tn->dir, &so, &tn->st), RK_OK);
    assert_int_equal(store_node_id(tn->st, &tn->id), RK_OK);
    replica_config rc;
    kv_config_replica(kc, &rc);
    assert_int_equal(replica_open(tn->st, tn->id, &rc, &tn->rp), RK_OK);
    rpc_options ro = {.secret = SECRET, .secret_len = sizeof SECRET - 1, .node_id = tn->id};
    assert_int_equal(rpc_client_open(&ro, &tn->client), RK_OK);
    cluster_node_options co = {
        .st = tn->st,
        .client = tn->client,
        .self_id = tn->id,
        .name = tn->name,
        .http_addr = tn->http_addr,
        .rpc_addr = tn->rpc_addr,
        .n = kc->n,
        .partitions = PARTITIONS,
        .seeds = seed_rpc_addr,
        .gossip_interval_ms = 50,
        .config = {.suspect_after_ms = 300, .down_after_ms = 800},
    };
    assert_int_equal(cluster_node_open(&co, &tn->cn), RK_OK);
    tn->sync = NULL;
    if (sc != NULL)
        assert_int_equal(sync_open(tn->rp, tn->st, tn->cn, tn->client, sc, &tn->sync), RK_OK);
    watch_config wc;
    watch_config_default(&wc);
    wc.lease_ms = 900; /* short timings, as the membership's */
    wc.lease_wait_ms = 500;
    assert_int_equal(watch_open(tn->rp, tn->cn, tn->client, &wc, &tn->watch), RK_OK);
    rpc_handler handlers[24];
    size_t n = cluster_node_handlers(tn->cn, handlers, 24);
    n += replica_rpc_handlers(tn->rp, handlers + n, 24 - n);
    n += watch_rpc_handlers(tn->watch, handlers + n, 24 - n);
    if (tn->sync != NULL)
        n += sync_rpc_handlers(tn->sync, handlers + n, 24 - n);
    assert_int_equal(rpc_server_open(tn->rpc_addr, &ro, handlers, n, &tn->srv), RK_OK);
    assert_int_equal(cluster_node_start(tn->cn), RK_OK);
    cluster_view *v = cluster_node_view(tn->cn);
    uint64_t self = v->self_id;
    cluster_view_unref(v);
    assert_int_equal(cluster_node_set_status(tn->cn, self, CLUSTER_MEMBER), RK_OK);
    assert_int_equal(kv_open(tn->rp, tn->cn, tn->client, kc, &tn->k), RK_OK);
    if (tn->sync != NULL)
        assert_int_equal(sync_start(tn->sync), RK_OK);
    assert_int_equal(watch_start(tn->watch), RK_OK);
    tn->up = true;
}

void test_node_down(test_node *tn)
{
    if (!tn->up)
        return;
    sync_stop(tn->sync);
    rpc_server_close(tn->srv);
    watch_stop(tn->watch);
    sync_close(tn->sync);
    tn->sync = NULL;
    kv_close(tn->k);
    cluster_node_close(tn->cn);
    rpc_client_close(tn->client);
    watch_close(tn->watch);
    tn->watch = NULL;
    replica_close(tn->rp);
    store_close(tn->st);
    tn->k = NULL;
    tn->up = false;
}

void test_node_destroy(test_node *tn)
{
    test_node_down(tn);
    if (tn->dir[0] != '\0')
        rm_tree(tn->dir);
    tn->dir[0] = '\0';
}
