/* vclock.c - version vectors: sorted (actor, counter) arrays, no zeros. */
#include <stdlib.h>
#include <string.h>

#include "clock_internal.h"

/* Grows c->entries to hold at least need entries. On failure c is intact,
 * which is what lets every mutator below promise "unchanged on error". */
static rk_err reserve(vclock *c, size_t need)
{
    return rk_array_grow((void **)&c->entries, &c->cap, need, sizeof *c->entries);
}

/* Index of actor in c, or of the first entry past it when absent. */
static size_t lower_bound(const vclock *c, rk_actor actor)
{
    size_t lo = 0, hi = c->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->entries[mid].actor < actor)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool has_at(const vclock *c, size_t i, rk_actor actor)
{
    return i < c->len && c->entries[i].actor == actor;
}

/* Releases c's memory and leaves it an empty, reusable clock. */
void vclock_free(vclock *c)
{
    free(c->entries);
    c->entries = NULL;
    c->len = c->cap = 0;
}

/* Makes dst an independent copy of src. dst must be zeroed or a valid
 * clock: its old entries are freed on success (and kept on RK_ENOMEM).
 * The caller frees dst with vclock_free. */
rk_err vclock_copy(vclock *dst, const vclock *src)
{
    if (dst == src)
        return RK_OK;
    clock_dot *p = NULL;
    if (src->len > 0) {
        p = malloc(src->len * sizeof *p);
        if (p == NULL)
            return RK_ENOMEM;
        memcpy(p, src->entries, src->len * sizeof *p);
    }
    free(dst->entries);
    dst->entries = p;
    dst->len = dst->cap = src->len;
    return RK_OK;
}

uint64_t vclock_get(const vclock *c, rk_actor actor)
{
    size_t i = lower_bound(c, actor);
    return has_at(c, i, actor) ? c->entries[i].counter : 0;
}

/* Raises actor's counter to counter. A zero counter is a no-op, since a
 * clock holds no zero entries. May grow c (still freed by vclock_free);
 * RK_ENOMEM leaves c unchanged. */
rk_err vclock_advance(vclock *c, rk_actor actor, uint64_t counter)
{
    if (counter == 0)
        return RK_OK;
    size_t i = lower_bound(c, actor);
    if (has_at(c, i, actor)) {
        if (c->entries[i].counter < counter)
            c->entries[i].counter = counter;
        return RK_OK;
    }
    rk_err err = reserve(c, c->len + 1);
    if (err != RK_OK)
        return err;
    memmove(&c->entries[i + 1], &c->entries[i], (c->len - i) * sizeof *c->entries);
    c->entries[i] = (clock_dot){.actor = actor, .counter = counter};
    c->len++;
    return RK_OK;
}

/* RK_EINVAL when the counter would wrap: a wrapped counter would reissue
 * dot 1, which could name a sibling that already exists elsewhere. c is
 * unchanged on error and *out set on success only. */
rk_err vclock_increment(vclock *c, rk_actor actor, uint64_t *out)
{
    uint64_t next = vclock_get(c, actor);
    if (next == UINT64_MAX)
        return RK_EINVAL;
    next++;
    rk_err err = vclock_advance(c, actor, next);
    if (err != RK_OK)
        return err;
    *out = next;
    return RK_OK;
}

/* How many actors src has that dst lacks. */
static size_t count_missing(const vclock *dst, const vclock *src)
{
    size_t i = 0, j = 0, missing = 0;
    while (j < src->len) {
        if (i < dst->len && dst->entries[i].actor < src->entries[j].actor) {
            i++;
        } else {
            if (i >= dst->len || dst->entries[i].actor != src->entries[j].actor)
                missing++;
            else
                i++;
            j++;
        }
    }
    return missing;
}

/* dst := dst join src (pointwise max). Grows dst once, then merges from the
 * back in place so no second buffer is needed; dst is unchanged on
 * RK_ENOMEM. */
rk_err vclock_join(vclock *dst, const vclock *src)
{
    if (dst == src || src->len == 0)
        return RK_OK;
    size_t total = dst->len + count_missing(dst, src);
    rk_err err = reserve(dst, total);
    if (err != RK_OK)
        return err;
    size_t i = dst->len, j = src->len, k = total;
    while (j > 0) {
        const clock_dot *s = &src->entries[j - 1];
        if (i > 0 && dst->entries[i - 1].actor > s->actor) {
            dst->entries[--k] = dst->entries[--i];
        } else if (i > 0 && dst->entries[i - 1].actor == s->actor) {
            clock_dot d = dst->entries[--i];
            if (d.counter < s->counter)
                d.counter = s->counter;
            dst->entries[--k] = d;
            j--;
        } else {
            dst->entries[--k] = *s;
            j--;
        }
    }
    /* What is left of dst (i entries) is already in place: k == i. */
    dst->len = total;
    return RK_OK;
}

/* Walks both sorted arrays once; an actor missing on one side counts as
 * zero there. */
vclock_order vclock_compare(const vclock *a, const vclock *b)
{
    bool a_ahead = false, b_ahead = false;
    size_t i = 0, j = 0;
    while (i < a->len || j < b->len) {
        if (j >= b->len || (i < a->len && a->entries[i].actor < b->entries[j].actor)) {
            a_ahead = true;
            i++;
        } else if (i >= a->len || b->entries[j].actor < a->entries[i].actor) {
            b_ahead = true;
            j++;
        } else {
            uint64_t x = a->entries[i++].counter, y = b->entries[j++].counter;
            a_ahead |= x > y;
            b_ahead |= y > x;
        }
        if (a_ahead && b_ahead)
            return VCLOCK_CONCURRENT;
    }
    if (a_ahead)
        return VCLOCK_AFTER;
    return b_ahead ? VCLOCK_BEFORE : VCLOCK_EQUAL;
}

bool vclock_covers(const vclock *c, clock_dot dot)
{
    return vclock_get(c, dot.actor) >= dot.counter;
}

/* Drops actor's entry; callers make sure no sibling still needs it (see
 * object_prune_actor). Never allocates. */
void vclock_remove(vclock *c, rk_actor actor)
{
    size_t i = lower_bound(c, actor);
    if (!has_at(c, i, actor))
        return;
    memmove(&c->entries[i], &c->entries[i + 1], (c->len - i - 1) * sizeof *c->entries);
    c->len--;
}

/* One block: the pointer array protobuf-c wants for a repeated message
 * field, then (aligned) the messages it points at, so free(*out) releases
 * everything. */
rk_err vclock_to_proto(const vclock *c, Ringkv__ClockEntry ***out)
{
    if (c->len == 0) {
        *out = NULL;
        return RK_OK;
    }
    const size_t align = _Alignof(Ringkv__ClockEntry);
    if (c->len > SIZE_MAX / 2 / (sizeof(Ringkv__ClockEntry) + sizeof(void *)))
        return RK_ENOMEM;
    size_t offset = (c->len * sizeof(Ringkv__ClockEntry *) + align - 1) / align * align;
    char *block = malloc(offset + c->len * sizeof(Ringkv__ClockEntry));
    if (block == NULL)
        return RK_ENOMEM;
    Ringkv__ClockEntry **ptrs = (Ringkv__ClockEntry **)(void *)block;
    Ringkv__ClockEntry *msgs = (Ringkv__ClockEntry *)(void *)(block + offset);
    for (size_t i = 0; i < c->len; i++) {
        ringkv__clock_entry__init(&msgs[i]);
        msgs[i].actor = c->entries[i].actor;
        msgs[i].counter = c->entries[i].counter;
        ptrs[i] = &msgs[i];
    }
    *out = ptrs;
    return RK_OK;
}

/* Validation runs before any allocation so a bad clock costs nothing. */
rk_err vclock_from_proto(Ringkv__ClockEntry *const *entries, size_t n, vclock *out)
{
    for (size_t i = 0; i < n; i++) {
        if (entries[i]->counter == 0)
            return RK_EINVAL;
        if (i > 0 && entries[i - 1]->actor >= entries[i]->actor)
            return RK_EINVAL;
    }
    vclock c = {0};
    rk_err err = reserve(&c, n);
    if (err != RK_OK)
        return err;
    for (size_t i = 0; i < n; i++)
        c.entries[i] = (clock_dot){.actor = entries[i]->actor, .counter = entries[i]->counter};
    c.len = n;
    *out = c;
    return RK_OK;
}

static void *pb_alloc(void *data, size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        ((clock_pb_alloc *)data)->failed = true;
    return p;
}

static void pb_free(void *data, void *p)
{
    (void)data;
    free(p);
}

void clock_pb_alloc_init(clock_pb_alloc *a)
{
    a->base = (ProtobufCAllocator){.alloc = pb_alloc, .free = pb_free, .allocator_data = a};
    a->failed = false;
}
