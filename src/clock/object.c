/* object.c - an object (VV, S): coordinator writes, merges, winners, codec. */
#include <stdlib.h>
#include <string.h>

#include "clock_internal.h"

/* Siblings are kept sorted by dot. Dots are unique, so this order is total
 * and two equal objects hold equal arrays and encode to equal bytes, which
 * anti-entropy relies on (equal objects must hash equal). */
static int dot_cmp(clock_dot a, clock_dot b)
{
    if (a.actor != b.actor)
        return a.actor < b.actor ? -1 : 1;
    if (a.counter != b.counter)
        return a.counter < b.counter ? -1 : 1;
    return 0;
}

/* The read order: (timestamp, actor, counter). The dot breaks timestamp
 * ties so every replica picks the same winner and drops the same sibling. */
static bool newer(const sibling *a, const sibling *b)
{
    if (a->timestamp_ms != b->timestamp_ms)
        return a->timestamp_ms > b->timestamp_ms;
    return dot_cmp(a->dot, b->dot) > 0;
}

static void sibling_fini(sibling *s)
{
    free(s->value);
    free(s->owner);
    s->value = NULL;
    s->owner = NULL;
}

/* A NUL-terminated copy of len bytes; p may be NULL when len is 0. */
static char *dup_bytes(const void *p, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *d = malloc(len + 1);
    if (d == NULL)
        return NULL;
    if (len > 0)
        memcpy(d, p, len);
    d[len] = '\0';
    return d;
}

/* Fills *s with copies of value and owner. A tombstone holds no value
 * (NULL, 0) whatever it was given; a missing owner becomes "". */
static rk_err sibling_fill(sibling *s, clock_dot dot, uint64_t timestamp_ms, bool tombstone,
                           const void *value, size_t value_len, const char *owner)
{
    sibling t = {.dot = dot, .timestamp_ms = timestamp_ms, .tombstone = tombstone};
    if (!tombstone) {
        t.value = dup_bytes(value, value_len);
        t.value_len = value_len;
        if (t.value == NULL)
            return RK_ENOMEM;
    }
    if (owner == NULL)
        owner = "";
    t.owner = dup_bytes(owner, strlen(owner));
    if (t.owner == NULL) {
        sibling_fini(&t);
        return RK_ENOMEM;
    }
    *s = t;
    return RK_OK;
}

static rk_err sibling_copy(sibling *dst, const sibling *src)
{
    return sibling_fill(dst, src->dot, src->timestamp_ms, src->tombstone, src->value,
                        src->value_len, src->owner);
}

/* Binary search by dot over the sorted siblings. */
static bool has_dot(const rk_object *obj, clock_dot dot)
{
    size_t lo = 0, hi = obj->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = dot_cmp(obj->siblings[mid].dot, dot);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Allocates room for n siblings; NULL with n == 0 is not a failure. */
static rk_err siblings_alloc(size_t n, sibling **out)
{
    *out = NULL;
    if (n == 0)
        return RK_OK;
    if (n > SIZE_MAX / sizeof(sibling))
        return RK_ENOMEM;
    *out = malloc(n * sizeof(sibling));
    return *out ? RK_OK : RK_ENOMEM;
}

/* Releases everything obj owns and leaves it an empty, reusable object. */
void object_free(rk_object *obj)
{
    for (size_t i = 0; i < obj->len; i++)
        sibling_fini(&obj->siblings[i]);
    free(obj->siblings);
    vclock_free(&obj->clock);
    *obj = (rk_object){0};
}

/* Makes dst a deep copy of src. dst must be zeroed or a valid object: its
 * old contents are freed on success and kept on RK_ENOMEM. The caller
 * frees dst with object_free. */
rk_err object_copy(rk_object *dst, const rk_object *src)
{
    if (dst == src)
        return RK_OK;
    rk_object t = {.siblings_dropped = src->siblings_dropped};
    rk_err err = vclock_copy(&t.clock, &src->clock);
    if (err == RK_OK)
        err = siblings_alloc(src->len, &t.siblings);
    t.cap = src->len;
    for (size_t i = 0; err == RK_OK && i < src->len; i++) {
        err = sibling_copy(&t.siblings[i], &src->siblings[i]);
        if (err == RK_OK)
            t.len++;
    }
    if (err != RK_OK) {
        object_free(&t);
        return err;
    }
    object_free(dst);
    *dst = t;
    return RK_OK;
}

/* The oldest sibling other than the one whose dot is spare (a dot with
 * counter 0 spares none). Needs obj->len >= 2 when spare is present. */
static size_t oldest_index(const rk_object *obj, clock_dot spare)
{
    size_t oldest = SIZE_MAX;
    for (size_t i = 0; i < obj->len; i++) {
        if (dot_cmp(obj->siblings[i].dot, spare) == 0)
            continue;
        if (oldest == SIZE_MAX || newer(&obj->siblings[oldest], &obj->siblings[i]))
            oldest = i;
    }
    return oldest;
}

/* The sibling cap: drops the oldest until at most max remain (0 means no
 * cap), never the sibling whose dot is spare: a write must be readable
 * after it is acknowledged, even from a coordinator whose wall clock runs
 * behind. The clock is left alone, so the dropped dots stay covered and a
 * merge with a replica that still holds them drops them there too instead
 * of bringing them back. Never allocates, so callers can run it after
 * they have committed. Returns how many it dropped. */
static size_t apply_cap(rk_object *obj, size_t max, clock_dot spare)
{
    size_t n = 0;
    while (max > 0 && obj->len > max) {
        size_t i = oldest_index(obj, spare);
        sibling_fini(&obj->siblings[i]);
        memmove(&obj->siblings[i], &obj->siblings[i + 1],
                (obj->len - i - 1) * sizeof *obj->siblings);
        obj->len--;
        n++;
    }
    obj->siblings_dropped += n;
    return n;
}

/* Installs next (len siblings, sorted) and clock in obj, freeing the old
 * array and clock. The caller has already freed or moved the siblings of
 * the old array. */
static void install(rk_object *obj, sibling *next, size_t len, vclock *clock)
{
    free(obj->siblings);
    obj->siblings = next;
    obj->len = obj->cap = len;
    vclock_free(&obj->clock);
    obj->clock = *clock;
    *clock = (vclock){0};
}

/* The coordinator's write, docs/causality.md "Write" steps 1-4. Everything
 * that can fail (the new sibling, the new clock, the new array) is built
 * first; the commit only moves pointers and frees, so obj is unchanged on
 * error. 0 for max_siblings means no cap; the cap never drops the new
 * sibling itself, even when its timestamp is the oldest.
 * *dropped and *new_dot (each may be NULL) are set on success. RK_EINVAL for a value pointer that
 * is NULL with a non-zero length, or when actor's counter would wrap. */
rk_err object_update(rk_object *obj, const vclock *ctx, rk_actor actor, const object_write *w,
                     size_t max_siblings, size_t *dropped, clock_dot *new_dot)
{
    if (!w->tombstone && w->value == NULL && w->value_len > 0)
        return RK_EINVAL;
    if (ctx == NULL)
        ctx = &obj->clock; /* a blind write follows what this replica has seen */
    uint64_t counter = vclock_get(&obj->clock, actor);
    if (counter == UINT64_MAX)
        return RK_EINVAL;
    clock_dot dot = {.actor = actor, .counter = counter + 1};

    size_t kept = 0;
    for (size_t i = 0; i < obj->len; i++)
        kept += !vclock_covers(ctx, obj->siblings[i].dot);
    sibling fresh;
    rk_err err =
        sibling_fill(&fresh, dot, w->timestamp_ms, w->tombstone, w->value, w->value_len, w->owner);
    if (err != RK_OK)
        return err;
    vclock clock = {0};
    sibling *next = NULL;
    if ((err = vclock_copy(&clock, &obj->clock)) != RK_OK ||
        (err = vclock_join(&clock, ctx)) != RK_OK ||
        (err = vclock_advance(&clock, dot.actor, dot.counter)) != RK_OK ||
        (err = siblings_alloc(kept + 1, &next)) != RK_OK) {
        vclock_free(&clock);
        sibling_fini(&fresh);
        return err;
    }

    /* Commit. The new dot is not covered by obj's clock, so no kept sibling
     * has it; it goes in at its place in dot order. */
    size_t n = 0;
    bool placed = false;
    for (size_t i = 0; i < obj->len; i++) {
        sibling *s = &obj->siblings[i];
        if (vclock_covers(ctx, s->dot)) {
            sibling_fini(s);
            continue;
        }
        if (!placed && dot_cmp(dot, s->dot) < 0) {
            next[n++] = fresh;
            placed = true;
        }
        next[n++] = *s;
    }
    if (!placed)
        next[n++] = fresh;
    install(obj, next, n, &clock);

    size_t d = apply_cap(obj, max_siblings, dot);
    if (dropped)
        *dropped = d;
    if (new_dot)
        *new_dot = dot;
    return RK_OK;
}

/* docs/causality.md "Merge": a sibling of one side survives if the other
 * side holds the same dot or has not seen it. */
static bool survives(const sibling *s, const rk_object *other)
{
    return has_dot(other, s->dot) || !vclock_covers(&other->clock, s->dot);
}

/* The siblings of the other side that obj must gain: survivors that obj
 * does not already hold. */
static bool unseen(const sibling *s, const rk_object *obj)
{
    return !has_dot(obj, s->dot) && !vclock_covers(&obj->clock, s->dot);
}

/* Deep copies, in dot order, of the siblings of other that obj must gain:
 * those obj neither holds nor has seen. The caller frees *out's payloads
 * or moves them. */
static rk_err copy_unseen(const rk_object *obj, const rk_object *other, sibling **out,
                          size_t *n_out)
{
    size_t n = 0;
    for (size_t j = 0; j < other->len; j++)
        n += unseen(&other->siblings[j], obj);
    sibling *in;
    rk_err err = siblings_alloc(n, &in);
    size_t k = 0;
    for (size_t j = 0; err == RK_OK && j < other->len; j++) {
        const sibling *s = &other->siblings[j];
        if (!unseen(s, obj))
            continue;
        if ((err = sibling_copy(&in[k], s)) == RK_OK)
            k++;
    }
    if (err != RK_OK) {
        while (k > 0)
            sibling_fini(&in[--k]);
        free(in);
        return err;
    }
    *out = in;
    *n_out = n;
    return RK_OK;
}

/* Merges other into obj. When both hold a dot, obj's copy is kept: a dot
 * names one write, so both copies are the same. siblings_dropped becomes
 * the larger of the two counts plus what this merge's cap drops: max keeps
 * the merge commutative, associative and idempotent when nothing is
 * dropped; it undercounts drops that happened independently on both sides,
 * which is acceptable for a statistic. 0 for max_siblings means no cap.
 * On error obj is unchanged; *dropped (may be NULL) is set on success.
 *
 * Note that with a cap the merge is no longer associative in every case:
 * the cap drops a sibling on one path that the other path keeps because
 * the siblings that outranked it were overwritten meanwhile. Without a cap
 * the laws hold exactly (tests/unit/test_clock.c checks them). */
rk_err object_merge(rk_object *obj, const rk_object *other, size_t max_siblings, size_t *dropped)
{
    size_t kept = 0;
    for (size_t i = 0; i < obj->len; i++)
        kept += survives(&obj->siblings[i], other);
    sibling *in = NULL, *next = NULL;
    size_t n_in = 0;
    vclock clock = {0};
    rk_err err = copy_unseen(obj, other, &in, &n_in);
    if (err != RK_OK)
        return err;
    if ((err = vclock_copy(&clock, &obj->clock)) != RK_OK ||
        (err = vclock_join(&clock, &other->clock)) != RK_OK ||
        (err = siblings_alloc(kept + n_in, &next)) != RK_OK) {
        for (size_t j = 0; j < n_in; j++)
            sibling_fini(&in[j]);
        free(in);
        vclock_free(&clock);
        return err;
    }

    /* Commit: interleave obj's survivors with the incoming copies, both in
     * dot order (their dots are disjoint). */
    size_t n = 0, j = 0;
    for (size_t i = 0; i < obj->len; i++) {
        sibling *s = &obj->siblings[i];
        if (!survives(s, other)) {
            sibling_fini(s);
            continue;
        }
        while (j < n_in && dot_cmp(in[j].dot, s->dot) < 0)
            next[n++] = in[j++];
        next[n++] = *s;
    }
    while (j < n_in)
        next[n++] = in[j++];
    free(in);
    uint64_t before = obj->siblings_dropped > other->siblings_dropped ? obj->siblings_dropped
                                                                      : other->siblings_dropped;
    install(obj, next, n, &clock);
    obj->siblings_dropped = before;

    size_t d = apply_cap(obj, max_siblings, (clock_dot){0});
    if (dropped)
        *dropped = d;
    return RK_OK;
}

const sibling *object_winner(const rk_object *obj)
{
    const sibling *best = NULL;
    for (size_t i = 0; i < obj->len; i++)
        if (best == NULL || newer(&obj->siblings[i], best))
            best = &obj->siblings[i];
    return best;
}

size_t object_live_count(const rk_object *obj)
{
    size_t n = 0;
    for (size_t i = 0; i < obj->len; i++)
        n += !obj->siblings[i].tombstone;
    return n;
}

const sibling *object_live_winner(const rk_object *obj)
{
    const sibling *best = NULL;
    for (size_t i = 0; i < obj->len; i++) {
        const sibling *s = &obj->siblings[i];
        if (!s->tombstone && (best == NULL || newer(s, best)))
            best = s;
    }
    return best;
}

/* Pruning an entry a sibling's dot needs would break "every dot is
 * covered", so such an actor is kept until its siblings are gone. */
bool object_prune_actor(rk_object *obj, rk_actor actor)
{
    if (vclock_get(&obj->clock, actor) == 0)
        return false;
    for (size_t i = 0; i < obj->len; i++)
        if (obj->siblings[i].dot.actor == actor)
            return false;
    vclock_remove(&obj->clock, actor);
    return true;
}

/* ---- protobuf encoding ------------------------------------------------- */

/* Like vclock_to_proto: one block holding the pointer array and then the
 * messages, which borrow value and owner from obj. Free with free(). */
static rk_err siblings_to_proto(const rk_object *obj, Ringkv__Sibling ***out)
{
    if (obj->len == 0) {
        *out = NULL;
        return RK_OK;
    }
    const size_t align = _Alignof(Ringkv__Sibling);
    if (obj->len > SIZE_MAX / 2 / (sizeof(Ringkv__Sibling) + sizeof(void *)))
        return RK_ENOMEM;
    size_t offset = (obj->len * sizeof(Ringkv__Sibling *) + align - 1) / align * align;
    char *block = malloc(offset + obj->len * sizeof(Ringkv__Sibling));
    if (block == NULL)
        return RK_ENOMEM;
    Ringkv__Sibling **ptrs = (Ringkv__Sibling **)(void *)block;
    Ringkv__Sibling *msgs = (Ringkv__Sibling *)(void *)(block + offset);
    for (size_t i = 0; i < obj->len; i++) {
        const sibling *s = &obj->siblings[i];
        ringkv__sibling__init(&msgs[i]);
        msgs[i].actor = s->dot.actor;
        msgs[i].counter = s->dot.counter;
        msgs[i].timestamp_ms = s->timestamp_ms;
        msgs[i].tombstone = s->tombstone;
        if (!s->tombstone) {
            msgs[i].value.data = (uint8_t *)s->value;
            msgs[i].value.len = s->value_len;
        }
        msgs[i].owner = (char *)(s->owner ? s->owner : "");
        ptrs[i] = &msgs[i];
    }
    *out = ptrs;
    return RK_OK;
}

/* Appends the ringkv.Object encoding of obj to out. Siblings are already in
 * dot order and the clock in actor order, so equal objects give equal
 * bytes. */
rk_err object_encode(const rk_object *obj, rk_buf *out)
{
    Ringkv__ClockEntry **clock = NULL;
    Ringkv__Sibling **siblings = NULL;
    rk_err err = vclock_to_proto(&obj->clock, &clock);
    if (err == RK_OK)
        err = siblings_to_proto(obj, &siblings);
    if (err == RK_OK) {
        Ringkv__Object msg = RINGKV__OBJECT__INIT;
        msg.n_clock = obj->clock.len;
        msg.clock = clock;
        msg.n_siblings = obj->len;
        msg.siblings = siblings;
        msg.siblings_dropped = obj->siblings_dropped;
        size_t size = ringkv__object__get_packed_size(&msg);
        err = rk_buf_reserve(out, size);
        if (err == RK_OK) {
            ringkv__object__pack(&msg, (uint8_t *)out->data + out->len);
            out->len += size;
            out->data[out->len] = '\0';
        }
    }
    free(siblings);
    free(clock);
    return err;
}

static int sibling_dot_cmp(const void *a, const void *b)
{
    return dot_cmp(((const sibling *)a)->dot, ((const sibling *)b)->dot);
}

/* One decoded sibling: its dot must be real (counter > 0) and covered by
 * the clock, and a tombstone carries no value. */
static rk_err sibling_from_proto(const Ringkv__Sibling *m, const vclock *clock, sibling *s)
{
    clock_dot dot = {.actor = m->actor, .counter = m->counter};
    if (dot.counter == 0 || !vclock_covers(clock, dot))
        return RK_ECORRUPT;
    if (m->tombstone && m->value.len > 0)
        return RK_ECORRUPT;
    return sibling_fill(s, dot, m->timestamp_ms, m->tombstone, m->value.data, m->value.len,
                        m->owner);
}

/* Builds o (zeroed) from msg; on error the caller frees o. Siblings are
 * sorted here rather than required sorted, so the in-memory order is the
 * canonical one whatever wrote the bytes; a duplicate dot then shows up as
 * two neighbours. */
static rk_err object_from_proto(const Ringkv__Object *msg, rk_object *o)
{
    rk_err err = vclock_from_proto(msg->clock, msg->n_clock, &o->clock);
    if (err != RK_OK)
        return err == RK_EINVAL ? RK_ECORRUPT : err;
    if ((err = siblings_alloc(msg->n_siblings, &o->siblings)) != RK_OK)
        return err;
    o->cap = msg->n_siblings;
    for (size_t i = 0; i < msg->n_siblings; i++) {
        if ((err = sibling_from_proto(msg->siblings[i], &o->clock, &o->siblings[i])) != RK_OK)
            return err;
        o->len++;
    }
    if (o->len > 1)
        qsort(o->siblings, o->len, sizeof *o->siblings, sibling_dot_cmp);
    for (size_t i = 1; i < o->len; i++)
        if (dot_cmp(o->siblings[i - 1].dot, o->siblings[i].dot) == 0)
            return RK_ECORRUPT;
    o->siblings_dropped = msg->siblings_dropped;
    return RK_OK;
}

/* Decodes data into obj (zeroed by the caller; set on success only; the
 * caller frees it with object_free). RK_ECORRUPT for bytes that are not a
 * ringkv.Object or break the invariants, RK_ENOMEM. */
rk_err object_decode(const uint8_t *data, size_t len, rk_object *obj)
{
    clock_pb_alloc alloc;
    clock_pb_alloc_init(&alloc);
    Ringkv__Object *msg = ringkv__object__unpack(&alloc.base, len, data);
    if (msg == NULL)
        return alloc.failed ? RK_ENOMEM : RK_ECORRUPT;
    rk_object o = {0};
    rk_err err = object_from_proto(msg, &o);
    ringkv__object__free_unpacked(msg, &alloc.base);
    if (err != RK_OK) {
        object_free(&o);
        return err;
    }
    *obj = o;
    return RK_OK;
}
