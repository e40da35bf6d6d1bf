/* rpc_internal.h - private to src/rpc: frame sealing, the replay cache, shared helpers.
 *
 * Frame layout (all integers big-endian; docs/rpc.md):
 *
 *   0   2  magic "RK"
 *   2   1  version (1)
 *   3   1  flags: bit 0 = sealed
 *   4   8  sender node id
 *  12  24  nonce                              (sealed frames only)
 *   .   4  header length H                   \
 *   .   H  FrameHeader (protobuf)             } encrypted when sealed
 *   .   *  payload: the method's message      /
 *   .  16  Poly1305 tag                       (sealed frames only)
 *
 * Bytes 0..12 are the associated data: the sender id and the flags are
 * authenticated but readable.
 *
 * A batch carries several frames to one peer in one NNG message (and their
 * replies back in one message):
 *
 *   0   2  magic "RB"
 *   2   1  batch version (1)
 *   3   1  reserved (0)
 *   4   4  count N (1 .. RPC_BATCH_MAX_MEMBERS)
 *   8   .  N times: 4 length L, then L bytes: one whole frame as above
 *
 * The wrapper itself is not sealed: each member is a normal frame with its
 * own call id, nonce, timestamp and timeout, checked as if it had come
 * alone, so all a forger can do to a batch is what he can do to separate
 * messages (drop, reorder, duplicate), which the checks already handle. */
#ifndef RINGKV_RPC_INTERNAL_H
#define RINGKV_RPC_INTERNAL_H

#include <stdatomic.h>

#include <nng/nng.h>
#include <sodium.h>

#include "ringkv.pb-c.h"
#include "ringkv/failpoint.h"
#include "ringkv/rpc.h"

#define FRAME_AD_BYTES 12u
#define FRAME_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES /* 24 */
#define FRAME_TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES      /* 16 */
#define FRAME_KEY_BYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES    /* 32 */
#define FRAME_VERSION 1u
#define FRAME_FLAG_SEALED 0x01u

/* The frame key: derived from the cluster secret, or none (insecure). */
typedef struct frame_key {
    bool sealed;
    uint8_t key[FRAME_KEY_BYTES];
} frame_key;

/* key = crypto_kdf(BLAKE2b-256(secret), id 1, context "rkv_rpc1").
 * RK_EINVAL for an empty secret. */
rk_err rpc_frame_key_derive(const void *secret, size_t secret_len, frame_key *out);
void rpc_frame_key_insecure(frame_key *out);
/* From rpc_options: derive, or insecure if asked. RK_EINVAL if neither. */
rk_err rpc_frame_key_from_options(const rpc_options *opts, frame_key *out);
void rpc_frame_key_wipe(frame_key *k);

/* Bytes before the plaintext (12, or 36 sealed) and after it (0, or 16). */
size_t rpc_frame_prefix_bytes(const frame_key *k);
size_t rpc_frame_suffix_bytes(const frame_key *k);

/* Seals in place. buf holds rpc_frame_prefix_bytes(k) bytes of room, then
 * plain_len bytes of plaintext, then rpc_frame_suffix_bytes(k) bytes of room;
 * writes the prefix (fresh random nonce) and the tag. */
void rpc_frame_seal(const frame_key *k, uint64_t sender, uint8_t *buf, size_t plain_len);

/* Opens in place. On RK_OK *plain (inside buf) and *plain_len hold the
 * plaintext, *sender the sender id, and *nonce (inside buf) the nonce, or
 * NULL for a clear frame. RK_ECORRUPT for anything that is not a frame
 * sealed under k (wrong key, tampered, truncated, clear vs sealed); buf is
 * then garbage. */
rk_err rpc_frame_open(const frame_key *k, uint8_t *buf, size_t len, uint64_t *sender,
                      uint8_t **plain, size_t *plain_len, const uint8_t **nonce);

/* Builds a whole frame: hdr, then payload (NULL = empty), sealed by k, in a
 * new NNG message the caller owns (nng_msg_free, or hand it to a send).
 * RK_ETOOBIG over max_frame_bytes, RK_ENOMEM. */
rk_err rpc_frame_encode(const frame_key *k, uint64_t sender, const Ringkv__FrameHeader *hdr,
                        const ProtobufCMessage *payload, size_t max_frame_bytes, nng_msg **out);

/* A decoded frame; pointers into the buffer given to rpc_frame_decode. */
typedef struct frame_view {
    uint64_t sender;
    Ringkv__FrameHeader *hdr; /* free with rpc_frame_view_fini */
    const uint8_t *payload;
    size_t payload_len;
    const uint8_t *nonce; /* NULL for a clear frame */
} frame_view;

/* rpc_frame_open, then unpacks the header. RK_ECORRUPT: did not open;
 * RK_EINVAL: opened but the header is malformed. */
rk_err rpc_frame_decode(const frame_key *k, uint8_t *buf, size_t len, frame_view *out);
void rpc_frame_view_fini(frame_view *v);

/* RK_OK if ts_ms is within +-window_ms of now_ms, else RK_ETIMEDOUT. */
rk_err rpc_frame_check_time(uint64_t ts_ms, uint64_t now_ms, uint32_t window_ms);

/* ---- batches ----------------------------------------------------------------- */

#define RPC_BATCH_HEADER_BYTES 8u
#define RPC_BATCH_LEN_BYTES 4u
#define RPC_BATCH_VERSION 1u
/* Most members a server accepts in one batch (a client sends at most its
 * cap, 32 by default); more is a malformed batch. */
#define RPC_BATCH_MAX_MEMBERS 256u

/* One member of a parsed batch: a frame inside the batch's buffer. */
typedef struct batch_span {
    uint8_t *frame;
    size_t len;
} batch_span;

/* True if buf starts like a batch ("RB"): not a single frame. */
bool rpc_batch_is(const uint8_t *buf, size_t len);
/* The sender id written in the message buf[len] (a frame, or a batch's
 * first member), read without opening anything: for failpoints, which
 * pick a rule by peer before the frame is checked. False when buf does not
 * look like either. Never trust it for anything else. */
bool rpc_message_sender(const uint8_t *buf, size_t len, uint64_t *out);
/* Bytes of a batch of n members whose frames total frame_bytes. */
size_t rpc_batch_bytes(size_t n, size_t frame_bytes);
/* Writes the batch header for n members at buf; returns where the first
 * member goes. */
uint8_t *rpc_batch_begin(uint8_t *buf, uint32_t n);
/* Writes one member (length, frame) at at; returns where the next goes. */
uint8_t *rpc_batch_add(uint8_t *at, const void *frame, size_t len);
/* Splits a batch into its members (pointers into buf). RK_ECORRUPT for a
 * bad magic or version, a count of 0 or over cap, a length past the end,
 * or bytes after the last member; out is then garbage. */
rk_err rpc_batch_parse(uint8_t *buf, size_t len, batch_span *out, size_t cap, size_t *n);

/* Coalescing of a client's calls (client.c): a call goes out alone while
 * fewer than threshold calls to its peer are on the wire; otherwise it
 * waits in its peer's queue, sent at the next completion or when the
 * queue holds max_calls calls or max_bytes, as batches of calls whose
 * deadlines lie within slack_ms. threshold 0 is taken as 1; max_calls 1
 * turns batching off. Call while no call is in flight (tests and
 * measurements; the defaults are in client.c). */
void rpc_client_set_batching(rpc_client *c, size_t threshold, size_t max_calls, size_t max_bytes,
                             uint64_t slack_ms);

/* ---- replay cache ------------------------------------------------------------
 * Remembers the nonces of accepted requests. Entries leave in insertion
 * order: by age (timestamp older than the window) or when the cache is full.
 * The horizon is the newest timestamp that has left; a frame at or before it
 * is refused, so a replay of a forgotten frame is always caught, at the cost
 * of refusing late frames when the cache overflows. Thread-safe. */
typedef struct replay_cache replay_cache;

/* capacity is rounded up to a power of two. Free with rpc_replay_cache_free. */
rk_err rpc_replay_cache_alloc(size_t capacity, replay_cache **out);
void rpc_replay_cache_free(replay_cache *rc);
/* RK_OK: fresh, now remembered. RK_EEXIST: seen before. RK_ETIMEDOUT: at or
 * before the horizon. */
rk_err rpc_replay_cache_check(replay_cache *rc, const uint8_t *nonce, uint64_t ts_ms,
                              uint64_t now_ms, uint32_t window_ms);

/* ---- helpers shared by server.c and client.c ------------------------------ */

/* NNG 1.5.2 crashes (a mutex of the freed socket) when a context operation
 * starts while nng_close runs on its socket. Every start of an NNG operation
 * therefore goes through this gate, and close shuts it first: after
 * rpc_gate_close returns, no thread is starting an operation and none will.
 * The two sequentially consistent atomics make sure a starter either sees
 * the gate closed or is seen (and waited for) by the closer. */
typedef struct rpc_gate {
    _Atomic bool closed;
    _Atomic unsigned active;
} rpc_gate;

/* True: go ahead, then rpc_gate_exit. False: closed, start nothing. */
bool rpc_gate_enter(rpc_gate *g);
void rpc_gate_exit(rpc_gate *g);
/* Closes the gate and waits (briefly: starting is non-blocking) for the
 * starters inside it. */
void rpc_gate_close(rpc_gate *g);

/* NNG error -> rk_err, logged at debug with what. */
rk_err rpc_from_nng(int rv, const char *what);
/* "HOST:PORT" -> "tcp://HOST:PORT" (kept as is if it has a scheme). Free
 * with free(). NULL on ENOMEM or an empty address. */
char *rpc_url(const char *addr);
/* The method of service named name, or NULL. */
const ProtobufCMethodDescriptor *rpc_find_method(const ProtobufCServiceDescriptor *service,
                                                 const char *name);
/* Fills opts' zero fields with the defaults. */
void rpc_options_fill(rpc_options *opts);

/* Microseconds from now until deadline_ms (rk_monotonic_ms's clock); 0 if
 * it has passed. A failpoint's delay is compared with it: a message held
 * past its caller's deadline is as good as lost. */
uint64_t rpc_us_until(uint64_t deadline_ms);

#endif
