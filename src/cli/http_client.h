/* http_client.h - a small blocking HTTP/1.1 client, private to the ringkv CLI. */
#ifndef RINGKV_CLI_HTTP_CLIENT_H
#define RINGKV_CLI_HTTP_CLIENT_H

#include <stddef.h>

#include "ringkv/common.h"

/* Responses larger than this are refused unless the request raises it. A
 * full page of 10000 keys of 1024 bytes, JSON-escaped, fits comfortably. */
#define HTTP_CLIENT_DEFAULT_MAX_BODY ((size_t)64 << 20)

typedef struct http_client_request {
    const char *method;          /* "GET", "PUT", ... */
    const char *host;            /* name or address, IPv6 without brackets */
    const char *port;            /* decimal */
    const char *target;          /* path and query, already URL-encoded */
    const char *const *headers;  /* extra "Name: value" lines, NULL-terminated; may be NULL */
    const char *body;            /* NULL: no body and no Content-Length */
    size_t body_len;
    int timeout_ms;              /* deadline for the whole exchange */
    size_t max_body;             /* 0: HTTP_CLIENT_DEFAULT_MAX_BODY */
} http_client_request;

typedef struct http_client_response {
    int status;
    rk_buf head; /* status line and header lines as received, NUL-terminated */
    rk_buf body; /* the body with any chunked framing removed */
} http_client_response;

/* Sends one request on a fresh connection (Connection: close) and reads the
 * whole response, all within req->timeout_ms.
 *
 * Returns RK_OK and fills *resp (free with http_client_response_free) when
 * the server answered with any status. On failure *resp is untouched, and a
 * one-line reason ("connection refused", "no response within 5000 ms", ...)
 * is written to why[why_len]:
 *   RK_EIO        could not resolve, connect, or the connection broke
 *   RK_ETIMEDOUT  the deadline passed (connecting, sending or reading)
 *   RK_ECORRUPT   the peer did not answer with well-formed HTTP
 *   RK_ETOOBIG    the response was larger than max_body
 *   RK_ENOMEM     out of memory
 *   RK_EINVAL     the request itself is malformed (a bug in the caller) */
rk_err http_client_do(const http_client_request *req, http_client_response *resp, char *why,
                      size_t why_len);

/* Frees what http_client_do put in resp; resp may then be reused. */
void http_client_response_free(http_client_response *resp);

/* Finds header `name` (case-insensitive) in resp. Returns a pointer into
 * resp->head and its length in *len, with surrounding spaces trimmed, or
 * NULL when the header is absent. */
const char *http_client_header(const http_client_response *resp, const char *name, size_t *len);

/* Splits "HOST:PORT" or "[V6ADDR]:PORT" into malloc'd host and port strings
 * (free both with free()). RK_EINVAL when the text is not of that form or
 * the port is not 1..65535; the out-parameters are then untouched. */
rk_err http_client_split_address(const char *address, char **host, char **port);

/* Appends s[0..len) to out percent-encoded: every byte outside the URI
 * unreserved set [A-Za-z0-9-._~] becomes %XX. */
rk_err http_client_url_encode(rk_buf *out, const char *s, size_t len);

#endif
