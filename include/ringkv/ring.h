/* ring.h - placement of records on the 64-bit consistent-hash ring. */
#ifndef RINGKV_RING_H
#define RINGKV_RING_H

#include "ringkv/common.h"

/* Position of (table, key) on the ring: the first 8 bytes, big-endian, of a
 * keyed hash of `table \0 key`. The hash key is a fixed constant, not a
 * secret: every node of every cluster must compute the same positions. */
uint64_t ring_position(const char *table, size_t table_len,
                       const char *key, size_t key_len);

#endif
