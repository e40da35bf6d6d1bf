/* latency.c - recent replica latencies and the speculative delay. */
#include <stdlib.h>
#include <string.h>

#include "latency_internal.h"

void kv_latency_window_init(latency_window *w)
{
    memset(w, 0, sizeof *w);
    atomic_store(&w->delay_us, LATENCY_DELAY_FLOOR_US);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

uint32_t kv_latency_percentile(uint32_t *values, size_t count, unsigned p)
{
    if (count == 0)
        return 0;
    qsort(values, count, sizeof values[0], cmp_u32);
    if (p >= 100)
        return values[count - 1];
    /* nearest rank: the smallest value with at least p% at or below it */
    size_t rank = (count * p + 99) / 100;
    return values[rank == 0 ? 0 : rank - 1];
}

static uint32_t clamp_delay(uint32_t us)
{
    if (us < LATENCY_DELAY_FLOOR_US)
        return LATENCY_DELAY_FLOOR_US;
    return us > LATENCY_DELAY_CEIL_US ? LATENCY_DELAY_CEIL_US : us;
}

void kv_latency_window_add(latency_window *w, uint32_t us)
{
    uint64_t n = atomic_fetch_add_explicit(&w->count, 1, memory_order_relaxed);
    atomic_store_explicit(&w->samples_us[n % LATENCY_WINDOW], us, memory_order_relaxed);
    if ((n + 1) % LATENCY_REFRESH != 0)
        return;
    /* One caller in LATENCY_REFRESH pays for the sort (128 values, a few
     * microseconds), so readers only load the cached delay. */
    uint32_t copy[LATENCY_WINDOW];
    size_t have = n + 1 < LATENCY_WINDOW ? (size_t)(n + 1) : LATENCY_WINDOW;
    for (size_t i = 0; i < have; i++)
        copy[i] = atomic_load_explicit(&w->samples_us[i], memory_order_relaxed);
    atomic_store_explicit(&w->delay_us, clamp_delay(kv_latency_percentile(copy, have, 99)),
                          memory_order_relaxed);
}

uint32_t kv_latency_window_delay_us(const latency_window *w)
{
    return atomic_load_explicit(&w->delay_us, memory_order_relaxed);
}
