/* cli_internal.h - HTTP requests through libcurl, private to the ringkv CLI. */
#ifndef RINGKV_CLI_INTERNAL_H
#define RINGKV_CLI_INTERNAL_H

#include <stddef.h>

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

/* Turns a node address, "HOST:PORT" or "[V6ADDR]:PORT", into the URL of
 * its root, "http://HOST:PORT", malloc'd in *url (free with free()).
 * RK_EINVAL when the text is not of that form or the port is not 1..65535
 * (*url is then untouched); RK_ENOMEM. */
rk_err cli_http_node_url(const char *address, char **url);

#endif
