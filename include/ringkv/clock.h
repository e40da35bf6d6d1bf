/* clock.h - dotted version vectors and the objects they order.
 *
 * The model (docs/causality.md): an object at a replica is (VV, S). VV maps
 * actor -> highest counter incorporated; each sibling in S carries one dot
 * (actor, counter) that VV covers. A write with context C removes exactly
 * the siblings whose dots C covers; a merge keeps every sibling the other
 * side has not seen. Actors are replica node ids (64-bit). */
#ifndef RINGKV_CLOCK_H
#define RINGKV_CLOCK_H

#include "ringkv/common.h"

typedef uint64_t rk_actor;

typedef struct clock_dot {
    rk_actor actor;
    uint64_t counter;
} clock_dot;

/* A version vector: entries sorted by actor, no duplicate actors, no zero
 * counters. Zero-initialise; free with vclock_free. */
typedef struct vclock {
    clock_dot *entries;
    size_t len;
    size_t cap;
} vclock;

typedef enum vclock_order {
    VCLOCK_EQUAL,
    VCLOCK_BEFORE, /* a < b: b has seen everything a has, and more */
    VCLOCK_AFTER,  /* a > b */
    VCLOCK_CONCURRENT,
} vclock_order;

void vclock_free(vclock *c);
rk_err vclock_copy(vclock *dst, const vclock *src);   /* dst is overwritten */
uint64_t vclock_get(const vclock *c, rk_actor actor); /* 0 when absent */
/* Sets actor's counter to max(current, counter). */
rk_err vclock_advance(vclock *c, rk_actor actor, uint64_t counter);
/* Increments actor's counter by one and returns the new value in *out. */
rk_err vclock_increment(vclock *c, rk_actor actor, uint64_t *out);
rk_err vclock_join(vclock *dst, const vclock *src); /* pointwise max */
vclock_order vclock_compare(const vclock *a, const vclock *b);
bool vclock_covers(const vclock *c, clock_dot dot); /* c[dot.actor] >= dot.counter */
void vclock_remove(vclock *c, rk_actor actor);

/* One concurrent version of a key. The object owns value and owner. */
typedef struct sibling {
    clock_dot dot;
    uint64_t timestamp_ms;
    bool tombstone;
    char *value; /* JSON text, NUL-terminated; NULL for a tombstone */
    size_t value_len;
    char *owner; /* NUL-terminated, "" when unknown */
} sibling;

typedef struct rk_object {
    vclock clock;
    sibling *siblings;
    size_t len;
    size_t cap;
    uint64_t siblings_dropped; /* total dropped by the cap, ever */
} rk_object;

/* What a write puts into an object. value is JSON text (ignored for a
 * tombstone). Nothing here is owned: object_update copies. */
typedef struct object_write {
    const char *value;
    size_t value_len;
    bool tombstone;
    const char *owner;
    uint64_t timestamp_ms;
} object_write;

void object_free(rk_object *obj);
rk_err object_copy(rk_object *dst, const rk_object *src);

/* The coordinator's write (docs/causality.md, "Write"): with ctx NULL the
 * write follows obj's own clock (a blind write). Issues the dot
 * (actor, obj.clock[actor] + 1), removes the siblings ctx covers, adds the
 * new sibling, joins ctx and the dot into the clock, applies the cap
 * (max_siblings; oldest by timestamp dropped, counted in
 * obj->siblings_dropped and *dropped if not NULL). On error obj is
 * unchanged. */
rk_err object_update(rk_object *obj, const vclock *ctx, rk_actor actor, const object_write *w,
                     size_t max_siblings, size_t *dropped, clock_dot *new_dot);

/* Merges other into obj (replicas, read repair, handoff, anti-entropy).
 * Commutative, associative, idempotent; then applies the cap. */
rk_err object_merge(rk_object *obj, const rk_object *other, size_t max_siblings, size_t *dropped);

/* The default read's winner: greatest (timestamp, actor, counter) among
 * all siblings, tombstones included. NULL if obj has no sibling. */
const sibling *object_winner(const rk_object *obj);
/* Number of siblings that are not tombstones. */
size_t object_live_count(const rk_object *obj);
/* The newest live sibling by the same order, or NULL when every sibling is
 * a tombstone (the key reads as not found). */
const sibling *object_live_winner(const rk_object *obj);

/* Drops clock entries of actor only if no sibling carries one of its dots
 * (for a node that left the cluster). Returns true if it pruned. */
bool object_prune_actor(rk_object *obj, rk_actor actor);

/* Protobuf (ringkv.Object) encoding. encode appends to out; decode fills a
 * zeroed obj, which the caller frees with object_free. RK_ECORRUPT on bytes
 * that do not decode or break the invariants (a dot the clock does not
 * cover, duplicate dots, unsorted clock). */
rk_err object_encode(const rk_object *obj, rk_buf *out);
rk_err object_decode(const uint8_t *data, size_t len, rk_object *obj);

/* Causal context: base64url(protobuf ringkv.Context). encode appends text to
 * out; decode fills a zeroed clock (free with vclock_free) and returns
 * RK_EINVAL for text that is not a valid context. */
rk_err context_encode(const vclock *clock, rk_buf *out);
rk_err context_decode(const char *text, size_t len, vclock *clock);

#endif
