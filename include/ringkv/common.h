/* common.h - errors, logging, byte buffers, time, encodings and JSON
 * scanning shared by every module. */
#ifndef RINGKV_COMMON_H
#define RINGKV_COMMON_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every function that can fail returns an rk_err and gives its results
 * through out-parameters, which it sets on success only. */
typedef enum rk_err {
    RK_OK = 0,
    RK_ENOTFOUND, /* no such key, or only tombstones */
    RK_EINVAL,    /* bad input from a caller or client */
    RK_ENOMEM,
    RK_EIO, /* storage or file system failure */
    RK_ETIMEDOUT,
    RK_EQUORUM,  /* fewer replicas answered than R or W asked for */
    RK_EPRECOND, /* If-Match / If-None-Match did not hold */
    RK_ETOOBIG,  /* value or request over a configured limit */
    RK_ECORRUPT, /* stored or received bytes do not decode */
    RK_ECLOSED,  /* the component is shutting down */
    RK_EEXIST,
    RK_EPERM,
    RK_EUNSUPPORTED,
    RK_EBUSY, /* not now: the state does not allow it (a conflict) */
    RK_ERR_COUNT
} rk_err;

/* Static, never NULL. */
const char *rk_strerror(rk_err err);
/* Short machine-readable name ("not_found", "invalid", ...). Static. */
const char *rk_errcode(rk_err err);

/* ---- logging ---------------------------------------------------------- */

typedef enum rk_log_level {
    RK_LOG_DEBUG = 0,
    RK_LOG_INFO,
    RK_LOG_WARN,
    RK_LOG_ERROR,
} rk_log_level;

/* Reads RINGKV_LOG (debug|info|warn|error); default info. */
void rk_log_init(void);
void rk_log_set_level(rk_log_level level);
bool rk_log_enabled(rk_log_level level);
/* One line to stderr: time, level, module, message. Thread-safe. */
void rk_log(rk_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define RK_DEBUG(mod, ...)                                                                         \
    do {                                                                                           \
        if (rk_log_enabled(RK_LOG_DEBUG))                                                          \
            rk_log(RK_LOG_DEBUG, mod, __VA_ARGS__);                                                \
    } while (0)
#define RK_INFO(mod, ...) rk_log(RK_LOG_INFO, mod, __VA_ARGS__)
#define RK_WARN(mod, ...) rk_log(RK_LOG_WARN, mod, __VA_ARGS__)
#define RK_ERROR(mod, ...) rk_log(RK_LOG_ERROR, mod, __VA_ARGS__)

/* ---- time ------------------------------------------------------------- */

uint64_t rk_now_ms(void);  /* wall clock, ms since the epoch */
uint64_t rk_mono_ns(void); /* monotonic, for durations */
/* Monotonic (CLOCK_MONOTONIC), in ms: the one clock of every timeout and
 * deadline in the project, so that a step of the wall clock moves none. */
uint64_t rk_monotonic_ms(void);
/* rk_monotonic_ms() + timeout_ms: a deadline on that clock. */
uint64_t rk_deadline_after_ms(uint32_t timeout_ms);
void rk_sleep_ms(unsigned ms);

/* A condition variable whose timed waits use the monotonic clock, so a
 * deadline (ms on rk_monotonic_ms's clock) is not moved by a step of the
 * wall clock. 0 or an errno value, as pthread_cond_init. */
int rk_cond_init_monotonic(pthread_cond_t *cond);
/* Waits on cond (made by rk_cond_init_monotonic) until deadline_ms at the
 * latest; pthread_cond_timedwait's result (ETIMEDOUT at the deadline). */
int rk_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex, uint64_t deadline_ms);

/* ---- growable byte buffer ---------------------------------------------- */

/* A buffer owns data (malloc'd) and keeps it NUL-terminated past len, so
 * text can be used as a C string. Zero-initialise, then append; free with
 * rk_buf_free. */
typedef struct rk_buf {
    char *data;
    size_t len;
    size_t cap;
} rk_buf;

rk_err rk_buf_reserve(rk_buf *b, size_t extra);
rk_err rk_buf_append(rk_buf *b, const void *data, size_t len);
rk_err rk_buf_appends(rk_buf *b, const char *s);
rk_err rk_buf_appendf(rk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
rk_err rk_buf_append_json_string(rk_buf *b, const char *s, size_t len);
void rk_buf_reset(rk_buf *b); /* len = 0, keeps the memory */
void rk_buf_free(rk_buf *b);

/* ---- dynamic arrays ------------------------------------------------------ */

/* Grows the malloc'd array *items (of *cap elements of item_size bytes) to
 * hold at least need elements, doubling its capacity (from 8 when empty) so
 * that n appends cost O(n). *items is any T ** cast to void **; the caller
 * frees it with free(). RK_ENOMEM on overflow or when realloc fails, and
 * then *items and *cap are unchanged, so a caller can promise "unchanged
 * on error". */
rk_err rk_array_grow(void **items, size_t *cap, size_t need, size_t item_size);

/* ---- hash map ----------------------------------------------------------- */

/* Byte-string keys to pointers, open addressing with linear probing. The
 * map copies each key; values are the caller's. Not thread-safe. Zero-
 * initialise; free with rk_map_free (which frees the keys, not the values). */
typedef struct rk_map_slot {
    char *key; /* NULL: empty */
    size_t key_len;
    uint64_t hash;
    void *value;
} rk_map_slot;

typedef struct rk_map {
    rk_map_slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t len;
} rk_map;

/* The value of key, or NULL. */
void *rk_map_get(const rk_map *m, const void *key, size_t key_len);
/* Sets key to value (value not NULL), replacing any. RK_ENOMEM. */
rk_err rk_map_put(rk_map *m, const void *key, size_t key_len, void *value);
/* Removes key; returns its value or NULL. */
void *rk_map_remove(rk_map *m, const void *key, size_t key_len);
/* Visits every entry (no change to the map meanwhile, except removing the
 * visited entry through the return value: true removes it). */
typedef bool (*rk_map_visit_cb)(void *arg, const char *key, size_t key_len, void *value);
void rk_map_visit(rk_map *m, rk_map_visit_cb cb, void *arg);
void rk_map_free(rk_map *m);

/* ---- encoding helpers ---------------------------------------------------- */

/* Big-endian (network order) integers in byte buffers: the order of every
 * stored key, hash input and wire field, so that byte order sorts as
 * number order. p needs no alignment. */
static inline void rk_store_be64(void *p, uint64_t v)
{
    unsigned char *b = p;
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (unsigned char)v;
}

static inline uint64_t rk_load_be64(const void *p)
{
    const unsigned char *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static inline void rk_store_be32(void *p, uint32_t v)
{
    unsigned char *b = p;
    for (int i = 3; i >= 0; i--, v >>= 8)
        b[i] = (unsigned char)v;
}

static inline uint32_t rk_load_be32(const void *p)
{
    const unsigned char *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* The value of one hex digit (either case), or -1 if c is not one. */
int rk_hex_value(char c);
/* Writes 2 * len hex digits for bin[0..len) to out (no NUL): lowercase,
 * or uppercase when upper (RFC 3986 asks for it in percent-encoding). */
void rk_hex_encode(const void *bin, size_t len, bool upper, char *out);
/* Decodes the even number len of hex digits in text (either case) into
 * len / 2 bytes at out. RK_EINVAL, with out unspecified, on an odd len or
 * a byte that is not a hex digit. */
rk_err rk_hex_decode(const char *text, size_t len, void *out);
/* Parses 1 to 16 hex digits (either case) filling text[0..len) as a
 * number. RK_EINVAL on anything else. */
rk_err rk_hex_parse_u64(const char *text, size_t len, uint64_t *out);

/* base64url without padding. rk_b64url_encode appends to out. */
rk_err rk_b64url_encode(const uint8_t *bin, size_t len, rk_buf *out);
/* Decodes into out (appended). RK_EINVAL on anything that is not base64url. */
rk_err rk_b64url_decode(const char *text, size_t len, rk_buf *out);

/* Appends s[0..len) to out percent-encoded for one URL path segment or
 * query value: every byte outside the URI unreserved set [A-Za-z0-9-._~]
 * becomes %XX, so '/', '?', '&' and '%' in a key cannot change the route. */
rk_err rk_url_encode(rk_buf *out, const char *s, size_t len);

/* True if s[0..len) is valid UTF-8 with no NUL byte. */
bool rk_utf8_valid(const char *s, size_t len);

/* Parses a decimal unsigned integer that fills the whole string.
 * RK_EINVAL on anything else, or on overflow. */
rk_err rk_parse_u64(const char *s, size_t len, uint64_t *out);

/* ---- seeded random numbers (rng.c) ------------------------------------------ */

/* xoshiro256** seeded through splitmix64: fast, small, and repeatable from
 * one 64-bit seed, so a test, a prediction or an injected fault can be
 * replayed. Not for secrets (libsodium's randombytes is). Not
 * thread-safe: one generator per thread or per lock. */
typedef struct rk_rng {
    uint64_t s[4];
} rk_rng;

void rk_rng_seed(rk_rng *g, uint64_t seed);
uint64_t rk_rng_next(rk_rng *g);
/* Uniform in [0, bound); 0 for bound 0. Unbiased. */
uint64_t rk_rng_below(rk_rng *g, uint64_t bound);
/* Uniform in [0, 1). */
double rk_rng_unit(rk_rng *g);

/* ---- addresses (addr.c) -------------------------------------------------- */

/* Where a node's HTTP gateway is reached from outside it: its HTTP address
 * ("host:port" as /cluster lists it), with the host of its RPC address
 * when it listens on a wildcard (0.0.0.0:8001 or [::]:8001 in a container
 * says nothing about where the container is). Writes a NUL-terminated
 * "host:port" to dst[0..cap). Pure. */
void rk_reachable_http_addr(const char *http_addr, const char *rpc_addr, char *dst, size_t cap);

/* ---- JSON scanning (json.c) ----------------------------------------------- */

/* Strict RFC 8259 JSON (strings must be UTF-8, no NUL byte outside escapes)
 * scanned without allocating or building a tree: these find spans, pointers
 * into the caller's text, so a value such as 12345678901234567890 can be
 * kept and given back exactly as written. At most 128 arrays and objects
 * may be open at once, counting the ones being iterated. Member names are
 * compared and returned as raw text, between the quotes: a name written
 * with escapes never equals its unescaped form. */

/* True if s[0..len) is one JSON value with optional white space around it;
 * then [*start, *end) is the value without that white space. */
bool rk_json_valid(const char *s, size_t len, size_t *start, size_t *end);

/* The value of the top-level member `name` of the object obj[0..len) (with
 * optional white space around it): *value points into obj, without white
 * space. The last one wins when the name is repeated. RK_ENOTFOUND when
 * there is none; RK_EINVAL when obj is not a valid JSON object. */
rk_err rk_json_member(const char *obj, size_t len, const char *name, const char **value,
                      size_t *value_len);

/* Iterates the elements of the array arr[0..len): set *pos = 0, then call
 * until it returns RK_ENOTFOUND (after the last element, once the closing
 * bracket and nothing but white space after it were seen). Each RK_OK gives
 * one complete, valid element (a nested array is one element) and moves
 * *pos on. RK_EINVAL when arr is not an array, or at the first byte that
 * breaks it: elements before that were valid, so a caller that must not act
 * on part of a broken array checks it with rk_json_valid first. */
rk_err rk_json_array_next(const char *arr, size_t len, size_t *pos, const char **item,
                          size_t *item_len);

/* The same for the members of the object obj[0..len), in their order,
 * duplicates included: *name is the raw text between the name's quotes. */
rk_err rk_json_object_next(const char *obj, size_t len, size_t *pos, const char **name,
                           size_t *name_len, const char **value, size_t *value_len);

#endif
