/* node_fixture.h - a real node in the test process: a RocksDB store in a
 * temporary directory, its replica, sealed RPC on a free 127.0.0.1 port,
 * the membership, the kv service, live updates (watch) and, when asked
 * for, the sync service
 * (range handoff, anti-entropy, purge, hint delivery), in ringkvd's order.
 * A node alone is a one-member cluster (what `ringkvd --data d` is);
 * several join through a seed. Short timings. A joiner is made MEMBER at
 * once, before its sync service starts: the tests join nodes that hold
 * nothing yet, so there is no range to wait for. */
#ifndef RINGKV_TEST_NODE_FIXTURE_H
#define RINGKV_TEST_NODE_FIXTURE_H

#include "ringkv/kv.h"
#include "ringkv/sync.h"
#include "ringkv/watch.h"

typedef struct test_node {
    char dir[64];
    char rpc_addr[32], http_addr[32], name[16];
    store *st;
    replica *rp;
    kv *k;
    rpc_client *client;
    rpc_server *srv;
    cluster_node *cn;
    sync_service *sync; /* NULL when started without one */
    watch *watch;       /* live updates: every node has them, as in ringkvd */
    uint64_t id;
    bool up;
} test_node;

/* Starts tn (or restarts it from its dir): kc configures kv (its n is the
 * cluster's), sc the sync service (NULL: none, so no hint is delivered and
 * no anti-entropy runs), seed_rpc_addr is the node to join through on
 * first start, or NULL to found a cluster. index names it ("c1", ...).
 * Asserts success. */
void test_node_up(test_node *tn, size_t index, const kv_config *kc, const sync_config *sc,
                  const char *seed_rpc_addr);
/* Stops tn in ringkvd's order; its dir stays for a restart. */
void test_node_down(test_node *tn);
/* test_node_down and removes its dir. */
void test_node_destroy(test_node *tn);

#endif
