/* ring.c - the ring as fixed ranges, each ranking the members by rendezvous weight. */
#include <assert.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ringkv/ring.h"

/* Why fixed ranges and rendezvous weights instead of `vnodes` random tokens
 * per node (docs/ring.md has the numbers): a node's share of a token ring is
 * a sum of random arcs, so with 64 tokens its spread is ~12% and at 10
 * nodes some node is more than 15% off fair in about 3 of 4 clusters. Here
 * each of Q ranges picks its owner as the member with the highest
 * hash(node, range); a node's share is then Binomial(Q, 1/M)/Q, a 1.2%
 * spread at Q = 65536 and M = 10, and the owner of a range changes only
 * when the member that wins it arrives or leaves. The hashes below are part
 * of the cluster's wire contract: every node must compute the same ring. */

/* Fallbacks kept in the table beyond the n replicas; further ones are
 * computed on demand. A sloppy quorum rarely needs more than one or two. */
enum { STORED_FALLBACKS = 5 };

struct ring {
    atomic_uint refs;
    ring_params params;
    unsigned bits;   /* log2(partitions) */
    size_t count;    /* members */
    size_t depth;    /* entries stored per range: min(count, n + STORED_FALLBACKS) */
    size_t replicas; /* min(count, n) */
    uint64_t version;
    uint64_t *ids;       /* sorted; a member's index is its rank here */
    uint64_t *node_keys; /* node_key(ids[i]) */
    uint32_t *first;     /* ranges for which member i is the first owner */
    uint32_t *replica;   /* ranges for which member i is a replica */
    uint16_t *order;     /* [partitions][depth] member indices, best first */
};

/* SipHash key of node_key(). Like the position key, public and fixed. */
static const unsigned char node_hash_key[crypto_shorthash_KEYBYTES] = "ringkv-node-v01";

/* The splitmix64 finalizer: a bijection of 64 bits with full avalanche. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* A node's key: SipHash-2-4 of its id (8 bytes big-endian). Computed once
 * per member, it spreads ids such as 1, 2, 3 as well as random ones. */
static uint64_t node_key(uint64_t id)
{
    unsigned char msg[8], out[crypto_shorthash_BYTES];
    rk_store_be64(msg, id);
    crypto_shorthash(out, msg, sizeof msg, node_hash_key);
    return rk_load_be64(out);
}

/* A range's key: output p+1 of splitmix64 seeded with 0. */
static uint64_t range_key(uint64_t p)
{
    return mix64((p + 1) * 0x9e3779b97f4a7c15u);
}

/* The rendezvous weight of a member for a range. A strong mixer of the two
 * keys is enough: ids are not chosen by an adversary (a node draws its own
 * at random, and a node that holds the cluster secret is trusted), and the
 * build hashes partitions x members of them, so it must be cheap. */
static uint64_t weight(uint64_t nkey, uint64_t rkey)
{
    return mix64(nkey ^ rkey);
}

/* True if (wa, a) ranks before (wb, b): higher weight first; an equal
 * weight (a 2^-64 event) goes to the higher member index, i.e. higher id. */
static bool ranks_before(uint64_t wa, size_t a, uint64_t wb, size_t b)
{
    return wa > wb || (wa == wb && a > b);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static unsigned log2_exact(uint32_t v)
{
    unsigned bits = 0;
    while ((1u << bits) < v)
        bits++;
    return bits;
}

static size_t range_index(const ring_t *ring, uint64_t position)
{
    return ring->bits == 0 ? 0 : (size_t)(position >> (64 - ring->bits));
}

/* BLAKE2b over a scheme tag, the parameters and the sorted ids. */
static rk_err compute_version(ring_t *ring)
{
    static const char tag[] = "ringkv-ring/rendezvous-v1";
    crypto_generichash_state st;
    unsigned char buf[8], out[16];
    if (crypto_generichash_init(&st, NULL, 0, sizeof out) != 0)
        return RK_ENOMEM;
    crypto_generichash_update(&st, (const unsigned char *)tag, sizeof tag);
    rk_store_be64(buf, ((uint64_t)ring->params.n << 32) | ring->params.partitions);
    crypto_generichash_update(&st, buf, sizeof buf);
    rk_store_be64(buf, ring->count);
    crypto_generichash_update(&st, buf, sizeof buf);
    for (size_t i = 0; i < ring->count; i++) {
        rk_store_be64(buf, ring->ids[i]);
        crypto_generichash_update(&st, buf, sizeof buf);
    }
    crypto_generichash_final(&st, out, sizeof out);
    ring->version = rk_load_be64(out);
    return RK_OK;
}

/* Fills the table: for each range, the `depth` best members by weight,
 * kept sorted by insertion (depth is small, and most members fall below
 * the last kept one after a single comparison). */
static void fill_order(ring_t *ring)
{
    const size_t depth = ring->depth;
    uint64_t w[RING_MAX_N + STORED_FALLBACKS];
    for (size_t p = 0; p < ring->params.partitions; p++) {
        uint64_t rkey = range_key(p);
        uint16_t *row = ring->order + p * depth;
        size_t kept = 0;
        for (size_t i = 0; i < ring->count; i++) {
            uint64_t wi = weight(ring->node_keys[i], rkey);
            if (kept == depth && !ranks_before(wi, i, w[depth - 1], row[depth - 1]))
                continue;
            size_t j = kept < depth ? kept++ : depth - 1;
            while (j > 0 && ranks_before(wi, i, w[j - 1], row[j - 1])) {
                w[j] = w[j - 1];
                row[j] = row[j - 1];
                j--;
            }
            w[j] = wi;
            row[j] = (uint16_t)i;
        }
        ring->first[row[0]]++;
        for (size_t r = 0; r < ring->replicas; r++)
            ring->replica[row[r]]++;
    }
}

static void ring_free(ring_t *ring)
{
    free(ring->ids);
    free(ring->node_keys);
    free(ring->first);
    free(ring->replica);
    free(ring->order);
    free(ring);
}

void ring_params_default(ring_params *params)
{
    params->n = RING_DEFAULT_N;
    params->partitions = RING_DEFAULT_PARTITIONS;
}

/* See ring.h. The ring is built whole, then published: nothing in it
 * changes after this returns, which is what makes lock-free reads safe. */
rk_err ring_build(const uint64_t *members, size_t count, const ring_params *params, ring_t **out)
{
    if (members == NULL || params == NULL || out == NULL || count == 0 ||
        count > RING_MAX_MEMBERS || params->n == 0 || params->n > RING_MAX_N ||
        params->partitions == 0 || params->partitions > RING_MAX_PARTITIONS ||
        (params->partitions & (params->partitions - 1)) != 0)
        return RK_EINVAL;

    /* Idempotent and thread-safe; picks libsodium's fast BLAKE2b. */
    if (sodium_init() < 0)
        return RK_EIO;
    ring_t *ring = calloc(1, sizeof *ring);
    if (ring == NULL)
        return RK_ENOMEM;
    atomic_init(&ring->refs, 1);
    ring->params = *params;
    ring->bits = log2_exact(params->partitions);
    ring->count = count;
    ring->replicas = count < params->n ? count : params->n;
    ring->depth = params->n + STORED_FALLBACKS;
    if (ring->depth > count)
        ring->depth = count;

    ring->ids = malloc(count * sizeof *ring->ids);
    ring->node_keys = malloc(count * sizeof *ring->node_keys);
    ring->first = calloc(count, sizeof *ring->first);
    ring->replica = calloc(count, sizeof *ring->replica);
    ring->order = malloc((size_t)params->partitions * ring->depth * sizeof *ring->order);
    if (!ring->ids || !ring->node_keys || !ring->first || !ring->replica || !ring->order) {
        ring_free(ring);
        return RK_ENOMEM;
    }

    /* Sorting first is what makes the ring independent of the order the
     * members came in: indices, ties and the version all follow the ids. */
    memcpy(ring->ids, members, count * sizeof *ring->ids);
    qsort(ring->ids, count, sizeof *ring->ids, cmp_u64);
    for (size_t i = 1; i < count; i++) {
        if (ring->ids[i] == ring->ids[i - 1]) {
            ring_free(ring);
            return RK_EINVAL;
        }
    }
    for (size_t i = 0; i < count; i++)
        ring->node_keys[i] = node_key(ring->ids[i]);

    rk_err err = compute_version(ring);
    if (err != RK_OK) {
        ring_free(ring);
        return err;
    }
    fill_order(ring);
    *out = ring;
    return RK_OK;
}

ring_t *ring_ref(ring_t *ring)
{
    /* Relaxed is enough: the caller already holds a reference, so the ring
     * cannot be freed under us, and there is nothing to publish. */
    atomic_fetch_add_explicit(&ring->refs, 1, memory_order_relaxed);
    return ring;
}

void ring_unref(ring_t *ring)
{
    if (ring == NULL)
        return;
    /* Release orders this holder's reads before the count drops; the
     * acquire fence makes every holder's reads happen before the free. */
    if (atomic_fetch_sub_explicit(&ring->refs, 1, memory_order_release) == 1) {
        atomic_thread_fence(memory_order_acquire);
        ring_free(ring);
    }
}

uint64_t ring_version(const ring_t *ring)
{
    return ring->version;
}

void ring_get_params(const ring_t *ring, ring_params *out)
{
    *out = ring->params;
}

size_t ring_member_count(const ring_t *ring)
{
    return ring->count;
}

uint64_t ring_member_id(const ring_t *ring, size_t index)
{
    assert(index < ring->count);
    return ring->ids[index];
}

/* Index of node_id among the sorted ids, or count if absent. */
static size_t member_index(const ring_t *ring, uint64_t node_id)
{
    size_t lo = 0, hi = ring->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring->ids[mid] < node_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ring->count && ring->ids[lo] == node_id ? lo : ring->count;
}

bool ring_has_member(const ring_t *ring, uint64_t node_id)
{
    return member_index(ring, node_id) < ring->count;
}

size_t ring_replica_count(const ring_t *ring)
{
    return ring->replicas;
}

size_t ring_range_preference_list(const ring_t *ring, size_t index, uint64_t *out_ids, size_t max)
{
    assert(index < ring->params.partitions);
    size_t want = max < ring->count ? max : ring->count;
    size_t stored = want < ring->depth ? want : ring->depth;
    const uint16_t *row = ring->order + index * ring->depth;
    for (size_t k = 0; k < stored; k++)
        out_ids[k] = ring->ids[row[k]];
    if (want == stored)
        return want;

    /* Past the table: each next member is the best one ranking after the
     * previous, found by one scan of the members. No memory needed. */
    uint64_t rkey = range_key(index);
    size_t prev = row[stored - 1];
    uint64_t prev_w = weight(ring->node_keys[prev], rkey);
    for (size_t k = stored; k < want; k++) {
        size_t best = ring->count;
        uint64_t best_w = 0;
        for (size_t i = 0; i < ring->count; i++) {
            uint64_t wi = weight(ring->node_keys[i], rkey);
            if (ranks_before(prev_w, prev, wi, i) &&
                (best == ring->count || ranks_before(wi, i, best_w, best))) {
                best = i;
                best_w = wi;
            }
        }
        assert(best < ring->count);
        out_ids[k] = ring->ids[best];
        prev = best;
        prev_w = best_w;
    }
    return want;
}

size_t ring_preference_list(const ring_t *ring, uint64_t position, uint64_t *out_ids, size_t max)
{
    return ring_range_preference_list(ring, range_index(ring, position), out_ids, max);
}

rk_err ring_range_rank(const ring_t *ring, size_t index, uint64_t node_id, size_t *out_rank)
{
    assert(index < ring->params.partitions);
    size_t m = member_index(ring, node_id);
    if (m == ring->count)
        return RK_ENOTFOUND;
    const uint16_t *row = ring->order + index * ring->depth;
    for (size_t k = 0; k < ring->depth; k++) {
        if (row[k] == m) {
            *out_rank = k;
            return RK_OK;
        }
    }
    /* Not stored: its rank is the number of members that rank before it. */
    uint64_t rkey = range_key(index);
    uint64_t wm = weight(ring->node_keys[m], rkey);
    size_t rank = 0;
    for (size_t i = 0; i < ring->count; i++)
        if (i != m && ranks_before(weight(ring->node_keys[i], rkey), i, wm, m))
            rank++;
    *out_rank = rank;
    return RK_OK;
}

size_t ring_range_count(const ring_t *ring)
{
    return ring->params.partitions;
}

void ring_range_at(const ring_t *ring, size_t index, ring_range *out)
{
    assert(index < ring->params.partitions);
    out->index = (uint32_t)index;
    if (ring->bits == 0) {
        out->start = out->end = 0;
        return;
    }
    unsigned shift = 64 - ring->bits;
    out->start = (uint64_t)index << shift;
    /* The last range's end wraps to 0, which ring.h defines as 2^64. */
    out->end = out->start + ((uint64_t)1 << shift);
}

void ring_range_of(const ring_t *ring, uint64_t position, ring_range *out)
{
    ring_range_at(ring, range_index(ring, position), out);
}

bool ring_range_contains(const ring_range *range, uint64_t position)
{
    return position >= range->start && (range->end == 0 || position < range->end);
}

rk_err ring_owner_share(const ring_t *ring, uint64_t node_id, double *first, double *replica)
{
    size_t m = member_index(ring, node_id);
    if (m == ring->count)
        return RK_ENOTFOUND;
    double q = (double)ring->params.partitions;
    if (first != NULL)
        *first = ring->first[m] / q;
    if (replica != NULL)
        *replica = ring->replica[m] / q;
    return RK_OK;
}
