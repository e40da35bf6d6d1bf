/* clock_internal.h - what vclock.c, object.c and context.c share: the
 * protobuf form of a version vector and a protobuf-c allocator that tells
 * an allocation failure apart from bytes that do not decode. */
#ifndef RINGKV_CLOCK_INTERNAL_H
#define RINGKV_CLOCK_INTERNAL_H

#include <protobuf-c/protobuf-c.h>

#include "ringkv.pb-c.h"
#include "ringkv/clock.h"

/* Builds the repeated ClockEntry field for c: *out is an array of c->len
 * pointers into the same allocation, which borrows nothing from c. Free
 * *out with free() (one block). *out is NULL for an empty clock. */
rk_err vclock_to_proto(const vclock *c, Ringkv__ClockEntry ***out);

/* Fills a zeroed clock from a decoded repeated ClockEntry field. RK_EINVAL
 * when the entries break the invariants (actors not strictly increasing, a
 * zero counter); RK_ENOMEM; on error *out is untouched. */
rk_err vclock_from_proto(Ringkv__ClockEntry *const *entries, size_t n, vclock *out);

/* protobuf-c's unpack returns NULL both for bad bytes and for a failed
 * malloc; this allocator remembers the second so decoders can answer
 * RK_ENOMEM instead of calling good bytes corrupt. */
typedef struct clock_pb_alloc {
    ProtobufCAllocator base;
    bool failed;
} clock_pb_alloc;

void clock_pb_alloc_init(clock_pb_alloc *a);

#endif
