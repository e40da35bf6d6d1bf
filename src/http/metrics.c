/* metrics.c - request counters and latency histograms per route, rendered
 * as Prometheus text. Lock-free: relaxed atomics, one slot per metric name
 * of the route table (taken at start, so the table is the one list). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

/* Upper bounds in microseconds; the last bucket is +Inf. */
static const uint64_t bucket_us[] = {50,    100,   250,   500,    1000,   2500,   5000,
                                     10000, 25000, 50000, 100000, 250000, 1000000};
#define NBUCKETS (sizeof bucket_us / sizeof bucket_us[0])
#define NCLASSES 5 /* 1xx..5xx */

typedef struct route_metrics {
    _Atomic uint64_t by_class[NCLASSES];
    _Atomic uint64_t buckets[NBUCKETS + 1];
    _Atomic uint64_t sum_ns;
} route_metrics;

/* One slot per metric name of the route table, then "unmatched". */
struct http_metrics {
    size_t count;
    const char **names;
    route_metrics *routes;
};

static bool has_name(const http_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->names[i], name) == 0)
            return true;
    return false;
}

rk_err http_metrics_alloc(const http_route *routes, size_t n, http_metrics **out)
{
    http_metrics *m = calloc(1, sizeof *m);
    if (m != NULL) {
        m->names = calloc(n + 1, sizeof *m->names);
        m->routes = calloc(n + 1, sizeof *m->routes);
    }
    if (m == NULL || m->names == NULL || m->routes == NULL) {
        http_metrics_free(m);
        return RK_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        if (!has_name(m, routes[i].metric))
            m->names[m->count++] = routes[i].metric;
    m->names[m->count++] = "unmatched";
    *out = m;
    return RK_OK;
}

void http_metrics_free(http_metrics *m)
{
    if (m == NULL)
        return;
    free(m->names);
    free(m->routes);
    free(m);
}

/* The slot of metric; the last one, "unmatched", when it has none. A
 * linear search: a score of names, each told apart by its first bytes. */
static route_metrics *slot_of(http_metrics *m, const char *metric)
{
    for (size_t i = 0; metric != NULL && i + 1 < m->count; i++)
        if (strcmp(m->names[i], metric) == 0)
            return &m->routes[i];
    return &m->routes[m->count - 1];
}

void http_metrics_record(http_metrics *m, const char *metric, int status, uint64_t elapsed_ns)
{
    route_metrics *r = slot_of(m, metric);
    int cls = status / 100 - 1;
    if (cls < 0 || cls >= NCLASSES)
        cls = 4;
    atomic_fetch_add_explicit(&r->by_class[cls], 1, memory_order_relaxed);
    /* Compare in ns: "le" means at most, so 50.5 us is not in le=50us. */
    size_t b = 0;
    while (b < NBUCKETS && elapsed_ns > bucket_us[b] * 1000)
        b++;
    atomic_fetch_add_explicit(&r->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->sum_ns, elapsed_ns, memory_order_relaxed);
}

static void render_counts(const http_metrics *m, reply_buf *out)
{
    http_reply_add_str(
        out,
        "# HELP ringkv_http_requests_total HTTP requests answered, by route and status class.\n"
        "# TYPE ringkv_http_requests_total counter\n");
    for (size_t r = 0; r < m->count; r++)
        for (int c = 0; c < NCLASSES; c++) {
            uint64_t v = atomic_load_explicit(&m->routes[r].by_class[c], memory_order_relaxed);
            if (v)
                http_reply_addf(out,
                                "ringkv_http_requests_total{route=\"%s\",status=\"%dxx\"} %llu\n",
                                m->names[r], c + 1, (unsigned long long)v);
        }
    http_reply_add_str(
        out, "# HELP ringkv_http_errors_total HTTP requests answered with a 4xx or 5xx status.\n"
             "# TYPE ringkv_http_errors_total counter\n");
    for (size_t r = 0; r < m->count; r++) {
        const route_metrics *rm = &m->routes[r];
        uint64_t v = atomic_load(&rm->by_class[3]) + atomic_load(&rm->by_class[4]);
        if (v)
            http_reply_addf(out, "ringkv_http_errors_total{route=\"%s\"} %llu\n", m->names[r],
                            (unsigned long long)v);
    }
}

static void render_histogram(const char *name, const route_metrics *rm, reply_buf *out)
{
    uint64_t total = 0;
    for (size_t b = 0; b <= NBUCKETS; b++)
        total += atomic_load_explicit(&rm->buckets[b], memory_order_relaxed);
    if (total == 0)
        return;
    uint64_t cum = 0;
    for (size_t b = 0; b <= NBUCKETS; b++) {
        cum += atomic_load_explicit(&rm->buckets[b], memory_order_relaxed);
        if (b < NBUCKETS)
            http_reply_addf(
                out, "ringkv_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                name, (double)bucket_us[b] / 1e6, (unsigned long long)cum);
        else
            http_reply_addf(
                out, "ringkv_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                name, (unsigned long long)cum);
    }
    http_reply_addf(out,
                    "ringkv_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                    "ringkv_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                    name, (double)atomic_load(&rm->sum_ns) / 1e9, name, (unsigned long long)cum);
}

void http_metrics_render(const http_metrics *m, reply_buf *out)
{
    render_counts(m, out);
    http_reply_add_str(
        out, "# HELP ringkv_http_request_duration_seconds Time from request to reply, by route.\n"
             "# TYPE ringkv_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < m->count; r++)
        render_histogram(m->names[r], &m->routes[r], out);
}
