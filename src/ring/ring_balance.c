/* ring_balance.c - measures balance, movement and lookup cost of the ring
 * (and of the random-token ring it replaced) over many random member sets.
 * docs/ring.md quotes its output; run with --help for the flags. */
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringkv/ring.h"

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void random_ids(uint64_t *ids, size_t count)
{
    for (size_t i = 0; i < count; i++) {
    again:
        ids[i] = rng_next();
        for (size_t j = 0; j < i; j++)
            if (ids[j] == ids[i])
                goto again;
    }
}

static double now_s(void)
{
    return (double)rk_mono_ns() / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- the token ring of the original design, for comparison ------------- */

/* Each member owns `vnodes` tokens at SipHash(id, i); a position belongs to
 * the first token at or after it, clockwise, and its preference list is the
 * first n distinct nodes from there. */
typedef struct token {
    uint64_t pos;
    uint32_t node; /* index into the id array */
} token;

static int cmp_token(const void *a, const void *b)
{
    const token *x = a, *y = b;
    if (x->pos != y->pos)
        return (x->pos > y->pos) - (x->pos < y->pos);
    return (x->node > y->node) - (x->node < y->node);
}

static token *token_ring(const uint64_t *ids, size_t count, unsigned vnodes)
{
    static const unsigned char key[crypto_shorthash_KEYBYTES] = "ringkv-tokn-v01";
    token *t = malloc(count * vnodes * sizeof *t);
    if (t == NULL)
        abort();
    for (size_t m = 0; m < count; m++) {
        for (unsigned i = 0; i < vnodes; i++) {
            unsigned char msg[12], out[8];
            rk_store_be64(msg, ids[m]);
            rk_store_be32(msg + 8, i);
            crypto_shorthash(out, msg, sizeof msg, key);
            uint64_t v = rk_load_be64(out);
            t[m * vnodes + i] = (token){v, (uint32_t)m};
        }
    }
    qsort(t, count * vnodes, sizeof *t, cmp_token);
    return t;
}

/* Index of the token that owns position (first at or after it). */
static size_t token_at(const token *t, size_t total, uint64_t position)
{
    size_t lo = 0, hi = total;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t[mid].pos < position)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == total ? 0 : lo;
}

/* The first n distinct nodes from token j clockwise, into out (bitmask of
 * members, count <= 64 here). */
static uint64_t token_replicas(const token *t, size_t total, size_t j, unsigned n, size_t count)
{
    uint64_t set = 0;
    unsigned got = 0;
    for (size_t k = 0; k < total && got < n && got < count; k++) {
        uint32_t node = t[(j + k) % total].node;
        if (!(set & (1ull << node))) {
            set |= 1ull << node;
            got++;
        }
    }
    return set;
}

/* Arc owned by token j: (previous token, t[j]]. */
static double arc(const token *t, size_t total, size_t j)
{
    uint64_t prev = t[(j + total - 1) % total].pos;
    return (double)(t[j].pos - prev) / 18446744073709551616.0;
}

static void token_shares(const uint64_t *ids, size_t count, unsigned vnodes, unsigned n,
                         double *first, double *replica)
{
    size_t total = count * vnodes;
    token *t = token_ring(ids, count, vnodes);
    memset(first, 0, count * sizeof *first);
    memset(replica, 0, count * sizeof *replica);
    for (size_t j = 0; j < total; j++) {
        double a = arc(t, total, j);
        first[t[j].node] += a;
        uint64_t set = token_replicas(t, total, j, n, count);
        for (size_t m = 0; m < count; m++)
            if (set & (1ull << m))
                replica[m] += a;
    }
    free(t);
}

/* Fraction of the ring whose first owner / replica set changes when member
 * `count` (the last id) joins members [0, count), and the part of the first
 * owner change that goes to an old member. */
static void token_movement(const uint64_t *ids, size_t count, unsigned vnodes, unsigned n,
                           double *first_moved, double *set_moved, double *old_to_old)
{
    size_t total_old = count * vnodes, total_new = (count + 1) * vnodes;
    token *old = token_ring(ids, count, vnodes);
    token *new = token_ring(ids, count + 1, vnodes);
    *first_moved = *set_moved = *old_to_old = 0;
    /* The new ring's tokens include the old ones, so its arcs are the
     * pieces on which both rings are constant. */
    for (size_t j = 0; j < total_new; j++) {
        double a = arc(new, total_new, j);
        size_t o = token_at(old, total_old, new[j].pos);
        uint32_t before = old[o].node, after = new[j].node;
        if (before != after) {
            *first_moved += a;
            if (after != count)
                *old_to_old += a;
        }
        uint64_t s_old = token_replicas(old, total_old, o, n, count);
        uint64_t s_new = token_replicas(new, total_new, j, n, count + 1);
        if (s_old != s_new)
            *set_moved += a;
    }
    free(old);
    free(new);
}

/* ---- the ring as built -------------------------------------------------- */

static ring_t *build(const uint64_t *ids, size_t count, const ring_params *params)
{
    ring_t *ring = NULL;
    if (ring_build(ids, count, params, &ring) != RK_OK) {
        fprintf(stderr, "ring_build failed\n");
        exit(1);
    }
    return ring;
}

static void ring_shares(const uint64_t *ids, size_t count, const ring_params *params, double *first,
                        double *replica)
{
    ring_t *ring = build(ids, count, params);
    for (size_t m = 0; m < count; m++)
        ring_owner_share(ring, ids[m], &first[m], &replica[m]);
    ring_unref(ring);
}

static void ring_movement(const uint64_t *ids, size_t count, const ring_params *params,
                          double *first_moved, double *set_moved, double *old_to_old)
{
    ring_t *old = build(ids, count, params), *new = build(ids, count + 1, params);
    size_t ranges = ring_range_count(old), moved = 0, sets = 0, o2o = 0;
    for (size_t r = 0; r < ranges; r++) {
        uint64_t a[RING_MAX_N], b[RING_MAX_N];
        size_t na = ring_range_preference_list(old, r, a, params->n);
        size_t nb = ring_range_preference_list(new, r, b, params->n);
        if (a[0] != b[0]) {
            moved++;
            if (b[0] != ids[count])
                o2o++;
        }
        /* Same set of replicas? (lists are short; order is not compared) */
        bool same = na == nb;
        for (size_t i = 0; same && i < na; i++) {
            bool found = false;
            for (size_t j = 0; j < nb; j++)
                found |= a[i] == b[j];
            same = found;
        }
        sets += !same;
    }
    *first_moved = (double)moved / (double)ranges;
    *set_moved = (double)sets / (double)ranges;
    *old_to_old = (double)o2o / (double)ranges;
    ring_unref(old);
    ring_unref(new);
}

/* ---- report --------------------------------------------------------------- */

typedef struct options {
    unsigned sets, vnodes, n, partitions;
    double tolerance;
    uint64_t seed;
    size_t nodes[32], node_counts;
    bool tokens, rendezvous, bench;
} options;

/* Worst |share / fair - 1| over the members. */
static double worst(const double *share, size_t count, double fair)
{
    double w = 0;
    for (size_t m = 0; m < count; m++) {
        double d = fabs(share[m] / fair - 1);
        if (d > w)
            w = d;
    }
    return w;
}

static void balance(const options *o, bool tokens)
{
    ring_params params = {.n = o->n, .partitions = o->partitions};
    printf("\n%s: worst deviation of a node's share from fair, over %u random id sets\n",
           tokens ? "tokens" : "rendezvous", o->sets);
    printf("| nodes | share   | mean worst | p99 worst | max worst | sets over %.0f%% |\n",
           o->tolerance * 100);
    printf("|------:|---------|-----------:|----------:|----------:|-------------:|\n");
    for (size_t c = 0; c < o->node_counts; c++) {
        size_t count = o->nodes[c];
        if (tokens && count > 64)
            continue; /* token_replicas keeps a 64-bit member set */
        uint64_t *ids = malloc(count * sizeof *ids);
        double *first = malloc(count * sizeof *first), *rep = malloc(count * sizeof *rep);
        double *wf = malloc(o->sets * sizeof *wf), *wr = malloc(o->sets * sizeof *wr);
        for (unsigned s = 0; s < o->sets; s++) {
            random_ids(ids, count);
            if (tokens)
                token_shares(ids, count, o->vnodes, o->n, first, rep);
            else
                ring_shares(ids, count, &params, first, rep);
            wf[s] = worst(first, count, 1.0 / (double)count);
            size_t r = count < o->n ? count : o->n;
            wr[s] = worst(rep, count, (double)r / (double)count);
        }
        for (int k = 0; k < 2; k++) {
            double *w = k == 0 ? wf : wr;
            qsort(w, o->sets, sizeof *w, cmp_double);
            double sum = 0;
            unsigned over = 0;
            for (unsigned s = 0; s < o->sets; s++) {
                sum += w[s];
                over += w[s] > o->tolerance;
            }
            printf("| %5zu | %-7s | %9.1f%% | %8.1f%% | %8.1f%% | %5u (%4.1f%%) |\n", count,
                   k == 0 ? "first" : "replica", 100 * sum / o->sets,
                   100 * w[(size_t)(0.99 * (o->sets - 1))], 100 * w[o->sets - 1], over,
                   100.0 * over / o->sets);
        }
        free(ids);
        free(first);
        free(rep);
        free(wf);
        free(wr);
    }
}

static void movement(const options *o, bool tokens)
{
    ring_params params = {.n = o->n, .partitions = o->partitions};
    printf("\n%s: one node joins M nodes (mean over %u id sets); ideal first = 1/(M+1), "
           "replica set = n/(M+1)\n",
           tokens ? "tokens" : "rendezvous", o->sets);
    printf("| M -> M+1 | first owner moved | ideal | replica set changed | ideal | "
           "moved between old nodes |\n");
    printf("|---------:|------------------:|------:|--------------------:|------:|"
           "------------------------:|\n");
    for (size_t c = 0; c < o->node_counts; c++) {
        size_t count = o->nodes[c];
        if (tokens && count + 1 > 64)
            continue; /* as in balance() */
        uint64_t *ids = malloc((count + 1) * sizeof *ids);
        double fm = 0, sm = 0, oo = 0;
        for (unsigned s = 0; s < o->sets; s++) {
            double a, b, d;
            random_ids(ids, count + 1);
            if (tokens)
                token_movement(ids, count, o->vnodes, o->n, &a, &b, &d);
            else
                ring_movement(ids, count, &params, &a, &b, &d);
            fm += a;
            sm += b;
            oo += d;
        }
        double r = (double)(count + 1 < o->n ? count + 1 : o->n);
        printf("| %3zu -> %-3zu | %16.2f%% | %4.1f%% | %18.2f%% | %4.1f%% | %22.4f%% |\n", count,
               count + 1, 100 * fm / o->sets, 100.0 / (double)(count + 1), 100 * sm / o->sets,
               100 * r / (double)(count + 1), 100 * oo / o->sets);
        free(ids);
    }
}

static void bench(const options *o)
{
    ring_params params = {.n = o->n, .partitions = o->partitions};
    printf("\nrendezvous: build and lookup cost (n=%u, %u ranges)\n", o->n, o->partitions);
    printf("| nodes | build ms | lookup ns (n ids) | lookup ns (n+2) | lookup ns (all) | "
           "ring bytes |\n");
    printf("|------:|---------:|------------------:|----------------:|----------------:|"
           "-----------:|\n");
    for (size_t c = 0; c < o->node_counts; c++) {
        size_t count = o->nodes[c];
        uint64_t *ids = malloc(count * sizeof *ids), *out = malloc(count * sizeof *out);
        random_ids(ids, count);
        double t0 = now_s();
        ring_t *ring = build(ids, count, &params);
        double build_ms = (now_s() - t0) * 1e3;
        double ns[3];
        size_t wants[3] = {o->n, o->n + 2, count};
        uint64_t sink = 0;
        for (int k = 0; k < 3; k++) {
            enum { LOOKUPS = 1000000 };
            size_t lookups = k == 2 ? LOOKUPS / (count > 10 ? count : 10) : LOOKUPS;
            uint64_t p = rng_next();
            t0 = now_s();
            for (size_t i = 0; i < lookups; i++) {
                p = p * 6364136223846793005u + 1442695040888963407u;
                sink += ring_preference_list(ring, p, out, wants[k]) + out[0];
            }
            ns[k] = (now_s() - t0) * 1e9 / (double)lookups;
        }
        size_t depth = o->n + 5 < count ? o->n + 5 : count;
        size_t bytes = (size_t)o->partitions * depth * 2 + count * 32;
        printf("| %5zu | %8.2f | %17.1f | %15.1f | %15.1f | %10zu |%s\n", count, build_ms, ns[0],
               ns[1], ns[2], bytes, sink == 42 ? " " : "");
        ring_unref(ring);
        free(ids);
        free(out);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: ring_balance [--sets K] [--seed S] [--nodes 3,5,10] [--n N]\n"
                    "       [--partitions Q] [--vnodes V] [--tolerance 0.15]\n"
                    "       [--only tokens|rendezvous|bench]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    options o = {.sets = 1000,
                 .vnodes = 64,
                 .n = RING_DEFAULT_N,
                 .partitions = RING_DEFAULT_PARTITIONS,
                 .tolerance = 0.15,
                 .seed = (uint64_t)time(NULL),
                 .nodes = {3, 5, 10},
                 .node_counts = 3,
                 .tokens = true,
                 .rendezvous = true,
                 .bench = true};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--sets") == 0)
            o.sets = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--seed") == 0)
            o.seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--n") == 0)
            o.n = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--partitions") == 0)
            o.partitions = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--vnodes") == 0)
            o.vnodes = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--tolerance") == 0)
            o.tolerance = strtod(v, NULL);
        else if (strcmp(a, "--only") == 0) {
            o.tokens = strcmp(v, "tokens") == 0;
            o.rendezvous = strcmp(v, "rendezvous") == 0;
            o.bench = strcmp(v, "bench") == 0;
        } else if (strcmp(a, "--nodes") == 0) {
            o.node_counts = 0;
            for (char *s = (char *)v; *s && o.node_counts < 32;) {
                char *end;
                o.nodes[o.node_counts++] = strtoul(s, &end, 10);
                s = *end == ',' ? end + 1 : end;
                if (end == s && *s)
                    usage();
            }
        } else
            usage();
    }
    if (o.sets == 0 || o.n == 0 || o.n > RING_MAX_N || o.node_counts == 0)
        usage();
    if (sodium_init() < 0)
        return 1;
    printf("ring_balance --seed %" PRIu64 " --sets %u --n %u --partitions %u --vnodes %u\n", o.seed,
           o.sets, o.n, o.partitions, o.vnodes);
    uint64_t seed = o.seed;
    if (o.tokens) {
        rng_state = seed;
        balance(&o, true);
        rng_state = seed;
        movement(&o, true);
    }
    if (o.rendezvous) {
        rng_state = seed;
        balance(&o, false);
        rng_state = seed;
        movement(&o, false);
    }
    if (o.bench) {
        rng_state = seed;
        bench(&o);
    }
    return 0;
}
