/* metrics.c - request counters and latency histograms per route, rendered
 * as Prometheus text. Lock-free: relaxed atomics, one slot per route. */
#include <stdatomic.h>
#include <stdlib.h>

#include "http_internal.h"

static const char *route_names[MR_COUNT] = {
    [MR_KEY_GET] = "key_get", [MR_KEY_PUT] = "key_put", [MR_KEY_DELETE] = "key_delete",
    [MR_KEYS_LIST] = "keys_list", [MR_KEYS_BATCH] = "keys_batch", [MR_STORE] = "store",
    [MR_SUBSCRIBE] = "subscribe", [MR_HEALTH] = "health", [MR_METRICS] = "metrics",
    [MR_MEMBERSHIP] = "membership", [MR_CLUSTER] = "cluster",
    [MR_CLUSTER_LEAVE] = "cluster_leave", [MR_CLUSTER_REMOVE] = "cluster_remove",
    [MR_CLUSTER_REPAIR] = "cluster_repair", [MR_HINTS_DROP] = "hints_drop", [MR_AUTH] = "auth",
    [MR_UI] = "ui", [MR_UNMATCHED] = "unmatched",
};

/* Upper bounds in microseconds; the last bucket is +Inf. */
static const uint64_t bucket_us[] = {50, 100, 250, 500, 1000, 2500, 5000, 10000,
                                     25000, 50000, 100000, 250000, 1000000};
#define NBUCKETS (sizeof bucket_us / sizeof bucket_us[0])
#define NCLASSES 5 /* 1xx..5xx */

typedef struct route_metrics {
    _Atomic uint64_t by_class[NCLASSES];
    _Atomic uint64_t buckets[NBUCKETS + 1];
    _Atomic uint64_t sum_ns;
} route_metrics;

struct http_metrics {
    route_metrics routes[MR_COUNT];
};

rk_err http_metrics_alloc(http_metrics **out)
{
    http_metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return RK_ENOMEM;
    *out = m;
    return RK_OK;
}

void http_metrics_free(http_metrics *m)
{
    free(m);
}

void http_metrics_record(http_metrics *m, metric_route route, int status, uint64_t elapsed_ns)
{
    if ((unsigned)route >= MR_COUNT)
        route = MR_UNMATCHED;
    route_metrics *r = &m->routes[route];
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

static rk_err render_counts(const http_metrics *m, rk_buf *out)
{
    rk_err err = rk_buf_appends(out,
        "# HELP ringkv_http_requests_total HTTP requests answered, by route and status class.\n"
        "# TYPE ringkv_http_requests_total counter\n");
    for (int r = 0; r < MR_COUNT && err == RK_OK; r++)
        for (int c = 0; c < NCLASSES && err == RK_OK; c++) {
            uint64_t v = atomic_load_explicit(&m->routes[r].by_class[c], memory_order_relaxed);
            if (v)
                err = rk_buf_appendf(out, "ringkv_http_requests_total{route=\"%s\",status=\"%dxx\"} %llu\n",
                                     route_names[r], c + 1, (unsigned long long)v);
        }
    if (err == RK_OK)
        err = rk_buf_appends(out,
            "# HELP ringkv_http_errors_total HTTP requests answered with a 4xx or 5xx status.\n"
            "# TYPE ringkv_http_errors_total counter\n");
    for (int r = 0; r < MR_COUNT && err == RK_OK; r++) {
        uint64_t v = atomic_load(&m->routes[r].by_class[3]) + atomic_load(&m->routes[r].by_class[4]);
        if (v)
            err = rk_buf_appendf(out, "ringkv_http_errors_total{route=\"%s\"} %llu\n", route_names[r],
                                 (unsigned long long)v);
    }
    return err;
}

static rk_err render_histograms(const http_metrics *m, rk_buf *out)
{
    rk_err err = rk_buf_appends(out,
        "# HELP ringkv_http_request_duration_seconds Time from request to reply, by route.\n"
        "# TYPE ringkv_http_request_duration_seconds histogram\n");
    for (int r = 0; r < MR_COUNT && err == RK_OK; r++) {
        const route_metrics *rm = &m->routes[r];
        uint64_t total = 0;
        for (size_t b = 0; b <= NBUCKETS; b++)
            total += atomic_load_explicit(&rm->buckets[b], memory_order_relaxed);
        if (total == 0)
            continue;
        uint64_t cum = 0;
        for (size_t b = 0; b <= NBUCKETS && err == RK_OK; b++) {
            cum += atomic_load_explicit(&rm->buckets[b], memory_order_relaxed);
            if (b < NBUCKETS)
                err = rk_buf_appendf(out,
                    "ringkv_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                    route_names[r], (double)bucket_us[b] / 1e6, (unsigned long long)cum);
            else
                err = rk_buf_appendf(out,
                    "ringkv_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                    route_names[r], (unsigned long long)cum);
        }
        if (err == RK_OK)
            err = rk_buf_appendf(out,
                "ringkv_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                "ringkv_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                route_names[r], (double)atomic_load(&rm->sum_ns) / 1e9, route_names[r],
                (unsigned long long)cum);
    }
    return err;
}

rk_err http_metrics_render(const http_metrics *m, rk_buf *out)
{
    rk_err err = render_counts(m, out);
    if (err == RK_OK)
        err = render_histograms(m, out);
    return err;
}
