/* cli_internal.h - what the ringkv CLI's files share: HTTP requests through
 * libcurl (http.c), the exit statuses, and the watch command (watch.c). */
#ifndef RINGKV_CLI_INTERNAL_H
#define RINGKV_CLI_INTERNAL_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include "ringkv/common.h"

/* Collected responses larger than this are refused unless the request
 * raises it. A full page of 10000 keys of 1024 bytes, JSON-escaped, fits
 * comfortably. A streamed body (on_body set) has no limit. */
#define CLI_HTTP_DEFAULT_MAX_BODY ((size_t)64 << 20)

/* One connection cache: a libcurl easy handle reused for every request of a
 * CLI run, so that requests to the same node share one keep-alive
 * connection. Not for use by two threads at once. */
typedef struct cli_http cli_http;

typedef struct cli_http_response {
    int status;
    rk_buf head; /* the final response's status line and header lines, NUL-terminated */
    rk_buf body; /* the body, chunked framing removed; empty when streamed */
} cli_http_response;

/* Receives the body as it arrives, piece by piece (a Server-Sent Events
 * stream, say). resp has the status and headers already; its body stays
 * empty. Returning anything but RK_OK stops the transfer, and
 * cli_http_request_do returns that error. */
typedef rk_err (*cli_http_body_cb)(const cli_http_response *resp, const char *data, size_t len,
                                   void *arg);

typedef struct cli_http_request {
    const char *method;         /* "GET", "PUT", ... */
    const char *url;            /* "http://host:port/path?query", already URL-encoded */
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated; may be NULL */
    const char *body;           /* NULL: no body and no Content-Length */
    size_t body_len;
    int timeout_ms;           /* deadline of the whole exchange; 0: none (a stream) */
    int connect_timeout_ms;   /* 0: timeout_ms, or 10 s if that is 0 too */
    size_t max_body;          /* 0: CLI_HTTP_DEFAULT_MAX_BODY */
    cli_http_body_cb on_body; /* NULL: collect the body into resp->body */
    void *on_body_arg;
    /* For a long-lived stream, whose whole exchange has no deadline: fail
     * with RK_ETIMEDOUT once no byte has come for this long (0: never).
     * Also turns TCP keep-alive probes on. */
    int idle_timeout_ms;
    /* NULL, or a flag a signal handler sets: once it is non-zero the
     * transfer stops with RK_ECLOSED (within about a second, at once when
     * the signal interrupts the wait). */
    const volatile sig_atomic_t *cancel;
} cli_http_request;

/* Makes the handle (initialising libcurl on first use). Returns RK_OK with
 * *out set (free with cli_http_close), RK_ENOMEM, or RK_EIO when libcurl
 * cannot start; the reason goes to why[why_len]. */
rk_err cli_http_open(cli_http **out, char *why, size_t why_len);

/* Frees the handle and closes its connections. NULL is allowed. */
void cli_http_close(cli_http *h);

/* Sends one request and reads the response, reusing an open connection to
 * the same host when there is one.
 *
 * Returns RK_OK and fills *resp (free with cli_http_response_free) when
 * the server answered with any status. On failure *resp is untouched, and
 * libcurl's one-line reason ("failed to connect to 127.0.0.1 port 9 after
 * 0 ms: couldn't connect to server", "operation timed out after 300
 * milliseconds with 0 bytes received", ...) is written to why[why_len]:
 *   RK_EIO        could not resolve, connect, or the connection broke
 *   RK_ETIMEDOUT  the deadline passed (connecting, sending or reading)
 *   RK_ECORRUPT   the peer did not answer with well-formed HTTP
 *   RK_ETOOBIG    a collected response was larger than max_body
 *   RK_ENOMEM     out of memory
 *   RK_EINVAL     the request itself is malformed (a bug in the caller)
 *   anything else that on_body returned. */
rk_err cli_http_request_do(cli_http *h, const cli_http_request *req, cli_http_response *resp,
                           char *why, size_t why_len);

/* Frees what cli_http_request_do put in resp; resp may then be reused. */
void cli_http_response_free(cli_http_response *resp);

/* Finds header `name` (case-insensitive) in resp. Returns a pointer into
 * resp->head and its length in *len, with surrounding spaces trimmed, or
 * NULL when the header is absent. */
const char *cli_http_header(const cli_http_response *resp, const char *name, size_t *len);

/* A one-line summary of an error answer's {"error": ..., "code": ...}
 * body: "message (code)", plus ": A of N replicas acknowledged" when the
 * body says so; or the start of a body that is not JSON (a proxy's), or
 * "(no error message)". Written to out[out_len]. */
void cli_http_error_summary(const cli_http_response *r, char *out, size_t out_len);

/* Turns a node address, "HOST:PORT" or "[V6ADDR]:PORT", into the URL of
 * its root, "http://HOST:PORT", malloc'd in *url (free with free()).
 * RK_EINVAL when the text is not of that form or the port is not 1..65535
 * (*url is then untouched); RK_ENOMEM. */
rk_err cli_http_node_url(const char *address, char **url);

/* ---- the CLI's commands ----------------------------------------------- */

/* Exit statuses; the global help documents them. */
enum {
    EXIT_OK = 0,
    EXIT_NOT_FOUND = 1,
    EXIT_USAGE = 2,
    EXIT_UNREACHABLE = 3,
    EXIT_SERVER = 4,
    EXIT_NOT_SETTLED = 5,   /* cluster leave/remove: not settled within --timeout */
    EXIT_INTERRUPTED = 130, /* ... or SIGINT/SIGTERM while waiting (128 + SIGINT) */
};

/* A node of --nodes. */
typedef struct cli_node {
    char *address; /* as given, for messages */
    char *url;     /* "http://HOST:PORT", to which a request's target is appended */
} cli_node;

/* What `ringkv watch` asks for; see cli_watch_run. */
typedef struct cli_watch_options {
    const cli_node *nodes; /* tried in turn, from the first */
    size_t n_nodes;
    const char *target;         /* "/t/subscribe...", already URL-encoded */
    const char *const *headers; /* User-Agent, Authorization...; NULL-terminated, may be NULL */
    int connect_timeout_ms;     /* to connect to one node */
    int idle_timeout_ms;        /* no byte for this long: the node is gone */
    int backoff_min_ms, backoff_max_ms; /* between attempts, doubling */
    uint64_t count;                     /* stop after this many events; 0: never */
    bool json;                          /* print the --json form */
    bool verbose;                       /* say on stderr which node serves the stream */
    FILE *out;                          /* where events go (stdout) */
} cli_watch_options;

/* Subscribes to o->target and prints each event on o->out as one line,
 * flushed at once, until o->count events were printed or SIGINT or
 * SIGTERM comes (both: EXIT_OK). A stream that ends or breaks, and a
 * node that is unreachable or answers 5xx, make it resume on the next
 * node after a backoff, sending Last-Event-ID. Before the first stream is
 * open, one round of the nodes without one ends it (EXIT_UNREACHABLE, or
 * EXIT_SERVER with the last 5xx); once a stream was open, it keeps trying.
 * Any other answer (4xx) is final: EXIT_SERVER, message on stderr.
 * Installs handlers of SIGINT and SIGTERM while it runs. */
int cli_watch_run(cli_http *h, const cli_watch_options *o);

/* ---- watch_line.c: how an event is printed ---------------------------- */

struct cli_sse_event;

/* Appends the line that `ringkv watch` prints for ev, newline included:
 *   json:  {"event":TYPE,"id":ID or null,"data":DATA}, DATA being the
 *          event's JSON as sent (line breaks made spaces), or a JSON string
 *          of its text when it is not JSON;
 *   else:  updated TABLE/KEY VALUE context=CTX [siblings=N]
 *          deleted TABLE/KEY context=CTX
 *          reset TABLE[/KEY]: REASON
 *          TYPE DATA  (any other event, or one whose data lacks a field)
 * Control bytes in table, key, context and reason are written as \n, \t,
 * \xNN so that one event stays one line. RK_ENOMEM (out keeps a partial
 * line: reset it). */
rk_err cli_watch_line(const struct cli_sse_event *ev, bool json, rk_buf *out);

#endif
