/* slot.c - the current ring, published to many readers by one writer. */
#include <pthread.h>
#include <stdlib.h>

#include "ringkv/ring.h"

/* The mutex covers only "load the pointer and take a reference", so a
 * reader never holds it across work and a writer never waits on a reader
 * for longer than that. It closes the window in which a reader has loaded
 * the old pointer but not yet referenced it while the writer drops the last
 * reference. */
struct ring_slot {
    pthread_mutex_t lock;
    ring_t *ring;
};

rk_err ring_slot_alloc(ring_slot **out)
{
    ring_slot *slot = calloc(1, sizeof *slot);
    if (slot == NULL)
        return RK_ENOMEM;
    if (pthread_mutex_init(&slot->lock, NULL) != 0) {
        free(slot);
        return RK_ENOMEM;
    }
    *out = slot;
    return RK_OK;
}

void ring_slot_free(ring_slot *slot)
{
    if (slot == NULL)
        return;
    ring_unref(slot->ring);
    pthread_mutex_destroy(&slot->lock);
    free(slot);
}

ring_t *ring_slot_get(ring_slot *slot)
{
    pthread_mutex_lock(&slot->lock);
    ring_t *ring = slot->ring ? ring_ref(slot->ring) : NULL;
    pthread_mutex_unlock(&slot->lock);
    return ring;
}

void ring_slot_set(ring_slot *slot, ring_t *ring)
{
    if (ring != NULL)
        ring_ref(ring);
    pthread_mutex_lock(&slot->lock);
    ring_t *old = slot->ring;
    slot->ring = ring;
    pthread_mutex_unlock(&slot->lock);
    /* Freeing a ring takes a few frees; keep them out of the lock. */
    ring_unref(old);
}
