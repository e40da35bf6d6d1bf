/* respond.c - HTTP replies written with one call, and the rk_err -> status
 * table. */
#include <stdio.h>
#include <string.h>

#include "http_internal.h"

/* One place maps errors to statuses (STYLE.md: "one table"). */
int http_status_of(rk_err err)
{
    switch (err) {
    case RK_OK: return 200;
    case RK_ENOTFOUND: return 404;
    case RK_EINVAL: return 400;
    case RK_EPERM: return 403;
    case RK_EPRECOND: return 412;
    case RK_ETOOBIG: return 413;
    case RK_EQUORUM: return 503;
    case RK_ETIMEDOUT: return 503;
    case RK_ECLOSED: return 503;
    case RK_EUNSUPPORTED: return 501;
    case RK_EBUSY: return 409;
    case RK_EEXIST: return 409;
    default: return 500;
    }
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 300: return "Multiple Choices";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

/* Headers and body go out in one mg_write: two small writes would meet
 * Nagle and delayed ACKs on keep-alive connections (~40 ms each). JSON
 * bodies end with a newline, so curl output does not run into the prompt. */
int reply_send(struct mg_connection *conn, int status, const char *content_type,
               const char *extra_headers, const char *body, size_t body_len)
{
    bool newline = strcmp(content_type, "application/json") == 0;
    size_t total = body_len + (newline ? 1 : 0);
    rk_buf msg = {0};
    char stack[4608];
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%s\r\n",
                     status, status_text(status), content_type, total,
                     extra_headers ? extra_headers : "");
    if (n >= 0 && (size_t)n < sizeof head && (size_t)n + total <= sizeof stack) {
        /* The common case: small reply, assembled on the stack. */
        memcpy(stack, head, (size_t)n);
        if (body_len)
            memcpy(stack + n, body, body_len);
        if (newline)
            stack[(size_t)n + body_len] = '\n';
        mg_write(conn, stack, (size_t)n + total);
        return status;
    }
    if (rk_buf_appendf(&msg, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                             "Cache-Control: no-store\r\n%s\r\n",
                       status, status_text(status), content_type, total,
                       extra_headers ? extra_headers : "") == RK_OK &&
        rk_buf_append(&msg, body, body_len) == RK_OK &&
        rk_buf_append(&msg, "\n", newline ? 1 : 0) == RK_OK)
        mg_write(conn, msg.data, msg.len);
    rk_buf_free(&msg);
    return status;
}

int reply_json(struct mg_connection *conn, int status, const char *extra_headers,
               const rk_buf *body)
{
    return reply_send(conn, status, "application/json", extra_headers, body->data ? body->data : "",
                      body->len);
}

int reply_error(struct mg_connection *conn, int status, const char *code, const char *message)
{
    rk_buf b = {0};
    int rc = status;
    if (rk_buf_appends(&b, "{\"error\":") == RK_OK &&
        rk_buf_append_json_string(&b, message, strlen(message)) == RK_OK &&
        rk_buf_appends(&b, ",\"code\":") == RK_OK &&
        rk_buf_append_json_string(&b, code, strlen(code)) == RK_OK &&
        rk_buf_appends(&b, "}") == RK_OK)
        rc = reply_json(conn, status, NULL, &b);
    else
        rc = reply_send(conn, 500, "application/json", NULL,
                        "{\"error\":\"out of memory\",\"code\":\"no_memory\"}", 44);
    rk_buf_free(&b);
    return rc;
}
