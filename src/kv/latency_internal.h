/* latency_internal.h - a window of recent replica latencies, and the speculative
 * delay drawn from it (private to src/kv).
 *
 * A targeted read asks R replicas; when one of them has not answered
 * within the speculative delay, the coordinator asks the others
 * (Cassandra's speculative retry). The delay is a high percentile of the
 * replicas' recent answer times, so a healthy replica is almost never
 * second-guessed and a slow one costs a read about that much.
 *
 * Threads: kv_latency_window_add and kv_latency_window_delay_us may be called
 * from any thread without a lock. Samples are stored with relaxed atomics;
 * a percentile computed while another thread writes may mix two
 * generations of samples, which only moves the estimate by one sample. */
#ifndef RINGKV_KV_LATENCY_INTERNAL_H
#define RINGKV_KV_LATENCY_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define LATENCY_WINDOW 128 /* samples kept */
#define LATENCY_REFRESH 32 /* the delay is recomputed every this many samples */

typedef struct latency_window {
    _Atomic uint32_t samples_us[LATENCY_WINDOW];
    _Atomic uint64_t count;    /* samples ever added */
    _Atomic uint32_t delay_us; /* the cached speculative delay */
} latency_window;

/* Bounds of the speculative delay: below the floor a busy machine's
 * scheduling noise alone would trigger extra reads; above the ceiling a
 * read waits too long for a replica that may be gone. */
#define LATENCY_DELAY_FLOOR_US 2000u
#define LATENCY_DELAY_CEIL_US 50000u

void kv_latency_window_init(latency_window *w);

/* Records one replica's answer time. */
void kv_latency_window_add(latency_window *w, uint32_t us);

/* The speculative delay in microseconds: the 99th percentile of the
 * window, clamped to [LATENCY_DELAY_FLOOR_US, LATENCY_DELAY_CEIL_US]; the
 * floor until LATENCY_REFRESH samples have been seen. */
uint32_t kv_latency_window_delay_us(const latency_window *w);

/* The p-th percentile (0..100) of values[0..count), nearest rank; sorts
 * values in place. 0 when count is 0. Pure: what the window uses. */
uint32_t kv_latency_percentile(uint32_t *values, size_t count, unsigned p);

#endif
