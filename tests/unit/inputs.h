/* inputs.h - inputs for the unit tests: exact-length copies, a replayable
 * random source and random JSON. Shared by test_common (the JSON scanner)
 * and test_http (write bodies), which feed both the same documents. */
#ifndef RINGKV_TEST_INPUTS_H
#define RINGKV_TEST_INPUTS_H

#include <stdint.h>

#include "ringkv/common.h"

/* An exact-length heap copy, no NUL after it, so that a read past the end
 * shows up under the address sanitizer. Free with free(). */
char *exact_copy(const char *s, size_t len);

/* Seeds the random source from RINGKV_TEST_SEED, or from the clock, and
 * prints the seed with the test's name so that a failure can be replayed.
 * Returns the seed. */
uint64_t rng_seed_from_env(const char *test);
/* The source's state, for a test that replays a sub-stream of its own and
 * then goes on with the main one. */
uint64_t rng_state_get(void);
void rng_state_set(uint64_t state);
/* splitmix64: the same stream on every libc, so a printed seed replays. */
uint64_t rng_next(void);
unsigned rng_below(unsigned n); /* in [0, n) */

/* Appends white space, most often none. */
void gen_ws(rk_buf *b);
/* Appends one random valid JSON value, nested less the deeper depth is:
 * every kind, big integers, escapes and multi-byte characters included. */
void gen_value(rk_buf *b, int depth);
/* Replaces b with a random valid document inside an array: "[" ws value ws
 * "]", so that no proper prefix of it is valid. */
void gen_document(rk_buf *b);
/* Replaces mut with doc after 1 to 4 random edits (replace, insert, delete,
 * truncate, duplicate a slice), biased to bytes that matter to JSON. */
void gen_mutation(const rk_buf *doc, rk_buf *mut);

#endif
