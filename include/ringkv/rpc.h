/* rpc.h - node-to-node calls: protobuf-c services over sealed NNG frames.
 *
 * The services are declared in proto/ringkv.proto (`service Kv`,
 * `service Membership`, ...); protoc-c makes a ProtobufCServiceDescriptor for
 * each (ringkv__kv__descriptor, ...). A server registers one handler per
 * (service, method); the layer unpacks the method's input message, calls the
 * handler and packs its output. A client calls (peer, service, method,
 * input) and gets the output message back in a callback.
 *
 * Every frame is sealed with XChaCha20-Poly1305 under a key derived from the
 * cluster secret and carries a timestamp checked against a replay window;
 * frames that fail are dropped and counted (docs/rpc.md).
 *
 * Threads: handlers run on the server's worker threads; reply callbacks run
 * on NNG's threads and must not block. No lock is held while either runs.
 *
 * Failpoints (docs/failpoints.md): with rules for rpc.send or rpc.recv, a
 * message may be held, lost or failed on its way; a call whose message was
 * held ends on the failpoint timer thread, under the same rules as NNG's. */
#ifndef RINGKV_RPC_H
#define RINGKV_RPC_H

#include <protobuf-c/protobuf-c.h>

#include "ringkv/common.h"

#define RPC_DEFAULT_WINDOW_MS 30000u
#define RPC_DEFAULT_MAX_FRAME (64u << 20)
#define RPC_DEFAULT_WORKERS 8u
#define RPC_DEFAULT_CONTEXTS 256u
#define RPC_DEFAULT_REPLAY_ENTRIES (1u << 18)

/* Options shared by servers and clients. Zero fields take the defaults. */
typedef struct rpc_options {
    /* The cluster secret (any bytes; use 32 random ones). Required unless
     * insecure is set; it is copied into a derived key and not kept. */
    const void *secret;
    size_t secret_len;
    /* Frames are sent in the clear and nothing is authenticated. Only for
     * experiments, and only when explicitly configured (--insecure). Both
     * ends must agree: a sealed end drops clear frames and vice versa. */
    bool insecure;
    uint64_t node_id;       /* the sender id stamped on every frame */
    uint32_t window_ms;     /* replay window, +- around now; 30 s */
    size_t max_frame_bytes; /* largest frame sent or received; 64 MiB */
    /* server only */
    /* Run handlers on the NNG thread that received the request instead of
     * handing them to a worker: one thread handoff (a futex wake and a
     * context switch) less per call, for handlers that answer at once and
     * block only briefly (a RocksDB read or write). A handler that waits
     * long would hold one of NNG's few threads: leave this off for those. */
    bool inline_handlers;
    unsigned workers;      /* threads running handlers; 8 */
    unsigned contexts;     /* requests received or in a handler at once; 256 */
    size_t replay_entries; /* nonces remembered against replay; 2^18 */
} rpc_options;

/* ---- server ---------------------------------------------------------------- */

typedef struct rpc_server rpc_server;
typedef struct rpc_request rpc_request;

/* Runs on a server worker thread with the unpacked input message (of the
 * method's input type). The handler must answer with rpc_respond exactly
 * once: before it returns, or later from any thread. req and input stay
 * valid until then and are freed by rpc_respond. A handler may block (a
 * RocksDB call), but a blocked handler holds a worker. */
typedef void (*rpc_handler_cb)(rpc_request *req, const ProtobufCMessage *input, void *arg);

/* One (service, method) -> handler binding. The method is named by method
 * (as in the .proto, "Get"), or, when method is NULL, by method_index into
 * service->methods. */
typedef struct rpc_handler {
    const ProtobufCServiceDescriptor *service;
    const char *method;
    unsigned method_index;
    rpc_handler_cb handler_cb;
    void *arg;
} rpc_handler;

/* Copies a module's handler table (table[0..n)) to out, up to cap, and
 * returns n: what every module's *_rpc_handlers function does, so that the
 * caller can gather all handlers for rpc_server_open into one array. */
size_t rpc_handlers_copy(const rpc_handler *table, size_t n, rpc_handler *out, size_t cap);

/* What a server dropped or served, for /metrics. Counters only grow. */
typedef struct rpc_server_stats {
    uint64_t requests;       /* handed to a handler */
    uint64_t handler_errors; /* answered with a status other than RK_OK */
    uint64_t unknown_method; /* authentic, but no handler (answered RK_EUNSUPPORTED) */
    uint64_t bad_input;      /* authentic, but the input did not decode (RK_ECORRUPT) */
    uint64_t expired;        /* deadline passed before a worker got to it; dropped */
    /* dropped without an answer: */
    uint64_t bad_frames;  /* did not open: wrong key, tampered, truncated, not ours */
    uint64_t malformed;   /* opened, but the header did not decode or is not a request */
    uint64_t stale;       /* timestamp outside the replay window */
    uint64_t replayed;    /* nonce seen before */
    uint64_t send_errors; /* a reply NNG could not send (peer gone) */
    uint64_t batches;     /* batch messages received (their members count above too) */
} rpc_server_stats;

/* Listens on listen_addr ("HOST:PORT" or "tcp://HOST:PORT"; port 0 picks a
 * free one, see rpc_server_port) and serves the n handlers, which are
 * copied. RK_EINVAL for a handler naming no method of its service, a
 * duplicate, or a missing secret; RK_EIO (NNG's message logged) when the
 * address cannot be bound. Free with rpc_server_close. */
rk_err rpc_server_open(const char *listen_addr, const rpc_options *opts,
                       const rpc_handler *handlers, size_t n, rpc_server **out);
/* Stops handing requests to handlers, waits for running handlers and for
 * every deferred request to be answered (those answers are still sent),
 * then stops listening and frees. rpc_respond must not be called after
 * this returns. Must not be called from a handler. NULL is ok. */
void rpc_server_close(rpc_server *srv);
/* The TCP port the server is bound to. */
int rpc_server_port(const rpc_server *srv);
void rpc_server_get_stats(const rpc_server *srv, rpc_server_stats *out);

/* Answers req. When err is RK_OK, reply is an instance of the method's output
 * type; otherwise reply is ignored (may be NULL) and the caller gets err.
 * reply is packed before this returns: the caller keeps ownership of it. req
 * and the input message are freed here. Never fails: an answer that cannot
 * be built is replaced by an RK_ENOMEM / RK_ETOOBIG status. */
void rpc_respond(rpc_request *req, rk_err err, const ProtobufCMessage *reply);
/* The node id the request was sealed by (authenticated when sealed). */
uint64_t rpc_request_sender(const rpc_request *req);
/* When the caller stops waiting, on rk_monotonic_ms's clock; UINT64_MAX if never. */
uint64_t rpc_request_deadline(const rpc_request *req);
const ProtobufCMethodDescriptor *rpc_request_method(const rpc_request *req);

/* ---- client ------------------------------------------------------------------ */

typedef struct rpc_client rpc_client;

/* The outcome of one call. On RK_OK, reply is the unpacked output message
 * and the callback owns it: free it with rpc_reply_free. Otherwise reply is
 * NULL and err is the handler's status, RK_ETIMEDOUT (deadline passed, peer
 * down or dropping our frames), RK_EIO (connection lost after the request
 * went out; it may have run), RK_ECORRUPT (reply did not open or decode) or
 * RK_ECLOSED (client closed). Runs on an NNG thread (or the failpoint
 * timer thread): do not block, do not call rpc_call or rpc_client_close
 * from it; rpc_call_async is fine. */
typedef void (*rpc_reply_cb)(rk_err err, ProtobufCMessage *reply, void *arg);

typedef struct rpc_client_stats {
    uint64_t calls; /* started */
    uint64_t ok;
    uint64_t errors; /* handler statuses */
    uint64_t timeouts;
    uint64_t failures;    /* transport errors, bad replies, closed */
    uint64_t bad_replies; /* replies that did not open, decode or match */
    /* Calls to a peer that already has calls in flight wait for the next
     * completion and go out together, several sealed frames in one message
     * (docs/rpc.md, "Batches"): */
    uint64_t batches;       /* batch messages sent */
    uint64_t batched_calls; /* calls that went in them */
} rpc_client_stats;

/* One client serves calls to any number of peers; a connection per peer is
 * made on first use and re-made after the peer restarts. Free with
 * rpc_client_close. */
rk_err rpc_client_open(const rpc_options *opts, rpc_client **out);
/* Fails the calls in flight (their callbacks run with RK_ECLOSED), waits
 * for those callbacks to return, closes connections, frees. Must not be
 * called from a reply callback. NULL is ok. */
void rpc_client_close(rpc_client *c);
void rpc_client_get_stats(const rpc_client *c, rpc_client_stats *out);

/* Calls service.method on peer ("HOST:PORT" or "tcp://HOST:PORT") with
 * request (an instance of the method's input type), waiting until deadline_ms
 * (rk_deadline_after_ms). request is packed before this returns: the caller
 * keeps ownership. Returns RK_OK if the call started: reply_cb then runs
 * exactly once. Otherwise returns the error (RK_EINVAL: unknown method or
 * wrong input type; RK_ETIMEDOUT: deadline already past; RK_ETOOBIG,
 * RK_ENOMEM, RK_EIO, RK_ECLOSED) and reply_cb never runs.
 * A request is sent at most once: NNG's resend is off. */
rk_err rpc_call_async(rpc_client *c, const char *peer, const ProtobufCServiceDescriptor *service,
                      const char *method, const ProtobufCMessage *request, uint64_t deadline_ms,
                      rpc_reply_cb reply_cb, void *arg);

/* rpc_call_async and wait. On RK_OK *reply is the output message; free it
 * with rpc_reply_free. For tests and tools; never call it from a reply
 * callback or a handler on the server it calls. */
rk_err rpc_call(rpc_client *c, const char *peer, const ProtobufCServiceDescriptor *service,
                const char *method, const ProtobufCMessage *request, uint64_t deadline_ms,
                ProtobufCMessage **reply);

/* Frees a reply message. NULL is ok. */
void rpc_reply_free(ProtobufCMessage *reply);

#endif
