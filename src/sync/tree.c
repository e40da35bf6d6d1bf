/* tree.c - this node's Merkle tree over the ranges it shares with a peer,
 * built by one scan: what an anti-entropy initiator (exchange.c) compares
 * and what a responder (rpc.c) answers Sync.Tree with. */
#include <stdlib.h>
#include <string.h>

#include "sync_internal.h"

/* A scan adding the shared ranges' records to a tree. */
typedef struct tree_ctx {
    const sync_rings *r;
    const uint8_t *shared;
    merkle_tree *tree;
    rk_err err;
} tree_ctx;

static bool tree_add_cb(void *arg, const char *dbkey, size_t dbkey_len, const char *val,
                        size_t val_len)
{
    tree_ctx *c = arg;
    if (dbkey_len < 8)
        return true;
    uint64_t pos = sync_key_position(dbkey);
    if (!c->shared[sync_range_of(c->r, pos)])
        return true;
    c->err = merkle_add(c->tree, pos, dbkey, dbkey_len, val, val_len);
    return c->err == RK_OK;
}

/* shared[i]: both this node and peer hold range i. */
uint8_t *sync_shared_ranges(const sync_service *s, const sync_rings *r, uint64_t peer)
{
    size_t n = sync_range_count(r);
    uint8_t *shared = malloc(n);
    if (shared == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        shared[i] = sync_shared(r, i, s->self, peer);
    return shared;
}

/* The tree over the records of the ranges marked in shared. */
rk_err sync_tree_of_ranges(sync_service *s, const sync_rings *r, const uint8_t *shared,
                           merkle_tree **out)
{
    merkle_tree *tree = NULL;
    rk_err err = merkle_alloc(0, 0, r->range_bits, &tree);
    tree_ctx c = {r, shared, tree, RK_OK};
    static const char zero[8];
    if (err == RK_OK)
        err = store_scan(s->st, zero, sizeof zero, NULL, 0, tree_add_cb, &c);
    if (err == RK_OK)
        err = c.err;
    if (err != RK_OK) {
        merkle_free(tree);
        return err;
    }
    merkle_finish(tree);
    *out = tree;
    return RK_OK;
}

rk_err sync_build_tree(sync_service *s, const sync_rings *r, uint64_t peer, merkle_tree **out)
{
    uint8_t *shared = sync_shared_ranges(s, r, peer);
    if (shared == NULL)
        return RK_ENOMEM;
    rk_err err = sync_tree_of_ranges(s, r, shared, out);
    free(shared);
    return err;
}
