/* map.c - the byte-string hash map (common.h): open addressing, linear
 * probing, backward-shift deletion (no tombstones), kept under 3/4 full. */
#include <stdlib.h>
#include <string.h>

#include "ringkv/common.h"

/* FNV-1a, 64 bit: keys here are table and key names a client chose, and a
 * map is per node and in memory, so a fast hash is enough. */
static uint64_t hash_of(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find(const rk_map *m, const void *key, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const rk_map_slot *s = &m->slots[i];
        if (s->key == NULL || (s->hash == h && s->key_len == len && memcmp(s->key, key, len) == 0))
            return i;
    }
}

void *rk_map_get(const rk_map *m, const void *key, size_t key_len)
{
    if (m->len == 0)
        return NULL;
    const rk_map_slot *s = &m->slots[find(m, key, key_len, hash_of(key, key_len))];
    return s->key != NULL ? s->value : NULL;
}

static rk_err resize(rk_map *m, size_t cap)
{
    rk_map_slot *slots = calloc(cap, sizeof *slots);
    if (slots == NULL)
        return RK_ENOMEM;
    rk_map old = *m;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].key != NULL)
            m->slots[find(m, old.slots[i].key, old.slots[i].key_len, old.slots[i].hash)] =
                old.slots[i];
    free(old.slots);
    return RK_OK;
}

rk_err rk_map_put(rk_map *m, const void *key, size_t key_len, void *value)
{
    if ((m->len + 1) * 4 > m->cap * 3) {
        rk_err err = resize(m, m->cap ? m->cap * 2 : 16);
        if (err != RK_OK)
            return err;
    }
    uint64_t h = hash_of(key, key_len);
    rk_map_slot *s = &m->slots[find(m, key, key_len, h)];
    if (s->key == NULL) {
        char *copy = malloc(key_len + 1);
        if (copy == NULL)
            return RK_ENOMEM;
        memcpy(copy, key, key_len);
        copy[key_len] = '\0';
        *s = (rk_map_slot){.key = copy, .key_len = key_len, .hash = h};
        m->len++;
    }
    s->value = value;
    return RK_OK;
}

/* Empties slot i and moves later entries of its probe run back, so that
 * every entry stays reachable from its home slot. */
static void remove_at(rk_map *m, size_t i)
{
    size_t mask = m->cap - 1;
    free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->len--;
    for (size_t j = (i + 1) & mask; m->slots[j].key != NULL; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        /* j may move to the hole at i unless its home lies in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        m->slots[i] = m->slots[j];
        m->slots[j].key = NULL;
        i = j;
    }
}

void *rk_map_remove(rk_map *m, const void *key, size_t key_len)
{
    if (m->len == 0)
        return NULL;
    size_t i = find(m, key, key_len, hash_of(key, key_len));
    if (m->slots[i].key == NULL)
        return NULL;
    void *value = m->slots[i].value;
    remove_at(m, i);
    return value;
}

void rk_map_visit(rk_map *m, rk_map_visit_cb cb, void *arg)
{
    /* A removal shifts later entries back into the current slot, so the
     * slot is looked at again; an entry shifted across the end of the table
     * (from slot 0 to the last) may be seen twice, which the callers here
     * (sweeps that remove what has expired) do not mind. */
    for (size_t i = 0; i < m->cap;) {
        rk_map_slot *s = &m->slots[i];
        if (s->key != NULL && cb(arg, s->key, s->key_len, s->value)) {
            remove_at(m, i);
            continue;
        }
        i++;
    }
}

void rk_map_free(rk_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    *m = (rk_map){0};
}
