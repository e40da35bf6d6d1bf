/* pbs.c - GET /pbs: how stale a read with this cluster's N and a given R
 * and W is likely to be, predicted from the replica delays this node's
 * coordinator has observed (src/pbs, docs/pbs.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

/* The times asked about when the request names none (ms after the ack). */
static const double default_t_ms[] = {0, 1, 2, 5, 10, 20, 50, 100};
#define MAX_T_MS 3600000.0 /* an hour: past it, ask for something else */

typedef struct pbs_params {
    unsigned n, r, w, trials;
    double t_ms[PBS_MAX_T];
    size_t t_count;
    bool reader_elsewhere; /* ?reader=other */
} pbs_params;

/* ?reader=this (the default: the read goes through this node too) or
 * other (through another node). RK_EINVAL after a 400 otherwise. */
static rk_err parse_reader(request *rq, pbs_params *p)
{
    char text[8];
    int n = http_request_param(rq, "reader", text, sizeof text);
    if (n == -1 || (n >= 0 && strcmp(text, "this") == 0))
        return RK_OK;
    if (n >= 0 && strcmp(text, "other") == 0) {
        p->reader_elsewhere = true;
        return RK_OK;
    }
    http_reply_error(rq, 400, "bad_param", "reader must be this or other");
    return RK_EINVAL;
}

static rk_err bad_param(request *rq, const char *msg)
{
    http_reply_error(rq, 400, "bad_param", msg);
    return RK_EINVAL;
}

/* One ?t=: milliseconds, fractions allowed, 0..MAX_T_MS. */
static rk_err parse_t(request *rq, const char *text, double *out)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || !isfinite(v) || v < 0 || v > MAX_T_MS)
        return bad_param(rq, "t must be a number of milliseconds from 0 to 3600000");
    *out = v;
    return RK_OK;
}

/* Every ?t= in the order given; the defaults when there is none. */
static rk_err parse_times(request *rq, pbs_params *p)
{
    const char *qs = rq->ri->query_string ? rq->ri->query_string : "";
    for (size_t i = 0;; i++) {
        char text[32];
        int len = mg_get_var2(qs, strlen(qs), "t", text, sizeof text, i);
        if (len == -1)
            break;
        if (p->t_count == PBS_MAX_T)
            return bad_param(rq, "at most 32 values of t");
        if (len < 0)
            return bad_param(rq, "t must be a number of milliseconds from 0 to 3600000");
        rk_err err = parse_t(rq, text, &p->t_ms[p->t_count]);
        if (err != RK_OK)
            return err;
        p->t_count++;
    }
    if (p->t_count == 0) {
        p->t_count = sizeof default_t_ms / sizeof default_t_ms[0];
        memcpy(p->t_ms, default_t_ms, sizeof default_t_ms);
    }
    return RK_OK;
}

/* Replicas per key in the read ring (fewer than the configured N while
 * the ring is smaller), as /cluster's replicas_per_key. */
static unsigned cluster_n(const http_server *s)
{
    cluster_view *v = cluster_node_view(s->cluster);
    size_t n = v->ring ? ring_replica_count(v->ring) : kv_get_config(s->k)->n;
    cluster_view_unref(v);
    return n == 0 ? 1 : n > PBS_MAX_N ? PBS_MAX_N : (unsigned)n;
}

/* The query, checked; on RK_EINVAL a 400 has been sent. r and w default to
 * the node's, capped at N. */
static rk_err parse_params(request *rq, pbs_params *p)
{
    const kv_config *cfg = kv_get_config(rq->srv->k);
    p->n = cluster_n(rq->srv);
    uint64_t r = cfg->r < p->n ? cfg->r : p->n, w = cfg->w < p->n ? cfg->w : p->n;
    uint64_t trials = PBS_DEFAULT_TRIALS;
    if (http_request_uint_param(rq, "r", 1, p->n, &r) != RK_OK ||
        http_request_uint_param(rq, "w", 1, p->n, &w) != RK_OK ||
        http_request_uint_param(rq, "trials", 1, PBS_MAX_TRIALS, &trials) != RK_OK)
        return RK_EINVAL;
    p->r = (unsigned)r;
    p->w = (unsigned)w;
    p->trials = (unsigned)trials;
    if (parse_reader(rq, p) != RK_OK)
        return RK_EINVAL;
    return parse_times(rq, p);
}

/* "samples": what the prediction stands on. */
static void add_samples(reply_buf *b, const pbs_snapshot *snap)
{
    http_reply_addf(b,
                    "\"samples\":{\"w\":%zu,\"a\":%zu,\"r\":%zu,\"s\":%zu,\"peers\":%zu,"
                    "\"clock\":\"%s\",\"rounds\":%llu,\"split_rounds\":%llu,"
                    "\"wake_write\":%zu,\"wake_read\":%zu}",
                    snap->count[PBS_W], snap->count[PBS_A], snap->count[PBS_R], snap->count[PBS_S],
                    snap->peer_count, snap->split_rounds > 0 ? "split_rtt" : "shared",
                    (unsigned long long)snap->rounds, (unsigned long long)snap->split_rounds,
                    snap->wake[PBS_WRITE].count, snap->wake[PBS_READ].count);
}

/* 503 no_samples: fewer than PBS_MIN_SAMPLES delays of some kind. */
static bool enough_samples(request *rq, const pbs_snapshot *snap)
{
    for (int k = 0; k < PBS_KINDS; k++)
        if (snap->count[k] < PBS_MIN_SAMPLES) {
            reply_buf b = {0};
            http_reply_addf(&b,
                            "{\"error\":\"not enough replica delays observed yet: %u of each of "
                            "w, a, r, s are needed; write and read through this node first\","
                            "\"code\":\"no_samples\",\"needed\":%u,",
                            PBS_MIN_SAMPLES, PBS_MIN_SAMPLES);
            add_samples(&b, snap);
            http_reply_add_str(&b, "}");
            http_reply_json(rq, 503, NULL, &b);
            http_reply_buf_free(&b);
            return false;
        }
    return true;
}

static void add_percentiles(reply_buf *b, const char *name, const pbs_percentiles *p)
{
    http_reply_addf(b, ",\"%s\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f}", name,
                    p->p50, p->p90, p->p99, p->p999);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* "p50/p99" in ms of one distribution (nearest rank), or null. */
static void add_dist(reply_buf *b, const char *name, const pbs_dist *d)
{
    uint32_t *v = d->count ? malloc(d->count * sizeof *v) : NULL;
    if (v == NULL) {
        http_reply_addf(b, "\"%s\":null", name);
        return;
    }
    memcpy(v, d->us, d->count * sizeof *v);
    qsort(v, d->count, sizeof *v, cmp_u32);
    size_t r50 = (d->count * 50 + 99) / 100, r99 = (d->count * 99 + 99) / 100;
    http_reply_addf(b, "\"%s\":[%.3f,%.3f]", name, v[r50 - 1] / 1000.0, v[r99 - 1] / 1000.0);
    free(v);
}

/* "delays": each peer's W, A, R, S as [p50, p99] ms, and the wake-ups:
 * what the prediction drew from, for a reader who wants to see why. */
static void add_delays(reply_buf *b, const pbs_snapshot *snap, uint64_t self)
{
    static const char *const kind_names[PBS_KINDS] = {"w", "a", "r", "s"};
    http_reply_add_str(b, ",\"delays\":{\"peers\":[");
    for (size_t i = 0; i < snap->peer_count; i++) {
        const pbs_peer *peer = &snap->peers[i];
        http_reply_addf(b, "%s{\"id\":\"%016llx\",\"self\":%s", i ? "," : "",
                        (unsigned long long)peer->id, peer->id == self ? "true" : "false");
        for (int k = 0; k < PBS_KINDS; k++) {
            http_reply_add_str(b, ",");
            add_dist(b, kind_names[k], &peer->kind[k]);
        }
        http_reply_add_str(b, "}");
    }
    http_reply_add_str(b, "],");
    add_dist(b, "wake_write", &snap->wake[PBS_WRITE]);
    http_reply_add_str(b, ",");
    add_dist(b, "wake_read", &snap->wake[PBS_READ]);
    http_reply_add_str(b, "}");
}

static void add_prediction(reply_buf *b, const pbs_params *p, const pbs_snapshot *snap,
                           uint64_t self, const pbs_prediction *pr, double elapsed_ms)
{
    http_reply_addf(b, "{\"n\":%u,\"r\":%u,\"w\":%u,\"trials\":%u,\"reader\":\"%s\",", p->n, p->r,
                    p->w, p->trials, p->reader_elsewhere ? "other" : "this");
    add_samples(b, snap);
    http_reply_add_str(b, ",\"t_visibility\":[");
    for (size_t i = 0; i < p->t_count; i++)
        http_reply_addf(b, "%s{\"t_ms\":%.10g,\"p_consistent\":%.6g}", i ? "," : "", p->t_ms[i],
                        pr->p_consistent[i]);
    http_reply_add_str(b, "],\"k_staleness\":[");
    for (int k = 0; k < PBS_K_MAX; k++)
        http_reply_addf(b, "%s{\"k\":%d,\"p\":%.6g}", k ? "," : "", k + 1, pr->k_staleness[k]);
    http_reply_add_str(b, "]");
    add_percentiles(b, "read_latency_ms", &pr->read_ms);
    add_percentiles(b, "write_latency_ms", &pr->write_ms);
    add_delays(b, snap, self);
    http_reply_addf(b, ",\"elapsed_ms\":%.3f}", elapsed_ms);
}

void http_handle_pbs(request *rq)
{
    pbs_params p = {0};
    if (parse_params(rq, &p) != RK_OK)
        return;
    pbs_snapshot snap;
    rk_err err = kv_pbs_snapshot(rq->srv->k, &snap);
    if (err != RK_OK) {
        http_reply_err(rq, err);
        return;
    }
    if (!enough_samples(rq, &snap)) {
        pbs_snapshot_free(&snap);
        return;
    }
    uint64_t t0 = rk_mono_ns();
    /* a fresh seed per request: repeatable runs are the unit tests' */
    rk_rng rng;
    rk_rng_seed(&rng, t0 ^ (rk_now_ms() << 20) ^ (uint64_t)(uintptr_t)rq);
    /* The node's own read strategy: a share of reads ask every replica. */
    const kv_config *cfg = kv_get_config(rq->srv->k);
    pbs_query q = {.n = p.n,
                   .r = p.r,
                   .w = p.w,
                   .trials = p.trials,
                   .t_ms = p.t_ms,
                   .t_count = p.t_count,
                   .self = rq->srv->node_id,
                   .read_all_share =
                       cfg->read_repair_percent >= 100 ? 1.0 : cfg->read_repair_percent / 100.0,
                   .wake = {snap.wake[PBS_WRITE], snap.wake[PBS_READ]},
                   .reader_elsewhere = p.reader_elsewhere};
    pbs_prediction pr;
    err = pbs_predict(snap.peers, snap.peer_count, &q, &rng, &pr);
    if (err != RK_OK) {
        pbs_snapshot_free(&snap);
        http_reply_err(rq, err);
        return;
    }
    double elapsed_ms = (double)(rk_mono_ns() - t0) / 1e6;
    reply_buf b = {0};
    add_prediction(&b, &p, &snap, rq->srv->node_id, &pr, elapsed_ms);
    pbs_snapshot_free(&snap);
    http_reply_json(rq, 200, NULL, &b);
    http_reply_buf_free(&b);
}
