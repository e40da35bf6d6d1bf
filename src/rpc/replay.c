/* replay.c - the nonces of recently accepted frames, against replay.
 *
 * A ring keeps the entries in insertion order (oldest at head) and an
 * open-addressing table (linear probing, twice the ring's size, deletion
 * by backward shift) finds a nonce. Nonces are random, so their first 8
 * bytes are the hash. Memory: capacity * (24 + 8) bytes. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_internal.h"

/* 16 of the nonce's 24 bytes: a collision among random 128-bit values is
 * as unlikely as among 192-bit ones, for our purposes. */
#define KEY_BYTES 16u

typedef struct entry {
    uint8_t nonce[KEY_BYTES];
    uint64_t ts_ms;
} entry;

struct replay_cache {
    pthread_mutex_t mu;
    entry *ring;
    size_t cap;  /* ring size, a power of two */
    size_t head; /* oldest entry */
    size_t count;
    uint32_t *slots;  /* 0 = empty, else ring index + 1 */
    size_t slot_mask; /* 2 * cap - 1 */
    uint64_t horizon; /* newest timestamp that has left the cache */
};

static size_t slot_of(const replay_cache *rc, const uint8_t *nonce)
{
    uint64_t h;
    memcpy(&h, nonce, sizeof h);
    return (size_t)h & rc->slot_mask;
}

rk_err rpc_replay_cache_alloc(size_t capacity, replay_cache **out)
{
    if (capacity == 0 || capacity > (1u << 30))
        return RK_EINVAL;
    size_t cap = 1;
    while (cap < capacity)
        cap <<= 1;
    replay_cache *rc = calloc(1, sizeof *rc);
    if (rc == NULL)
        return RK_ENOMEM;
    rc->ring = calloc(cap, sizeof *rc->ring);
    rc->slots = calloc(2 * cap, sizeof *rc->slots);
    if (rc->ring == NULL || rc->slots == NULL) {
        free(rc->ring);
        free(rc->slots);
        free(rc);
        return RK_ENOMEM;
    }
    rc->cap = cap;
    rc->slot_mask = 2 * cap - 1;
    pthread_mutex_init(&rc->mu, NULL);
    *out = rc;
    return RK_OK;
}

void rpc_replay_cache_free(replay_cache *rc)
{
    if (rc == NULL)
        return;
    pthread_mutex_destroy(&rc->mu);
    free(rc->ring);
    free(rc->slots);
    free(rc);
}

static bool contains(const replay_cache *rc, const uint8_t *nonce)
{
    for (size_t i = slot_of(rc, nonce); rc->slots[i] != 0; i = (i + 1) & rc->slot_mask)
        if (memcmp(rc->ring[rc->slots[i] - 1].nonce, nonce, KEY_BYTES) == 0)
            return true;
    return false;
}

/* Removes the oldest entry and moves the horizon past it. */
static void evict_head(replay_cache *rc)
{
    const entry *e = &rc->ring[rc->head];
    size_t i = slot_of(rc, e->nonce);
    while (rc->slots[i] != rc->head + 1)
        i = (i + 1) & rc->slot_mask;
    /* Backward shift: pull later entries of the probe run into the hole
     * unless their home slot lies cyclically in (hole, their slot]. */
    for (size_t j = (i + 1) & rc->slot_mask; rc->slots[j] != 0; j = (j + 1) & rc->slot_mask) {
        size_t home = slot_of(rc, rc->ring[rc->slots[j] - 1].nonce);
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            rc->slots[i] = rc->slots[j];
            i = j;
        }
    }
    rc->slots[i] = 0;
    if (e->ts_ms > rc->horizon)
        rc->horizon = e->ts_ms;
    rc->head = (rc->head + 1) & (rc->cap - 1);
    rc->count--;
}

rk_err rpc_replay_cache_check(replay_cache *rc, const uint8_t *nonce, uint64_t ts_ms,
                              uint64_t now_ms, uint32_t window_ms)
{
    pthread_mutex_lock(&rc->mu);
    /* Entries older than the window would be refused as stale anyway; the
     * horizon keeps refusing them if the clock steps back. */
    while (rc->count > 0 && rc->ring[rc->head].ts_ms + window_ms < now_ms)
        evict_head(rc);
    rk_err err = RK_OK;
    if (ts_ms <= rc->horizon) {
        err = RK_ETIMEDOUT;
    } else if (contains(rc, nonce)) {
        err = RK_EEXIST;
    } else {
        if (rc->count == rc->cap)
            evict_head(rc);
        size_t idx = (rc->head + rc->count) & (rc->cap - 1);
        memcpy(rc->ring[idx].nonce, nonce, KEY_BYTES);
        rc->ring[idx].ts_ms = ts_ms;
        size_t i = slot_of(rc, nonce);
        while (rc->slots[i] != 0)
            i = (i + 1) & rc->slot_mask;
        rc->slots[i] = (uint32_t)idx + 1;
        rc->count++;
    }
    pthread_mutex_unlock(&rc->mu);
    return err;
}
