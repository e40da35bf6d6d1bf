/* respond.c - HTTP replies written with one call, each request's one
 * reply, and the rk_err -> status table. */
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

/* Every reply passes here, so "exactly once" is checked in one place. */
static bool first_reply(request *rq, int status)
{
    if (rq->status != 0) {
        RK_ERROR("http", "%s %s: a second reply (%d after %d) was not sent", rq->method,
                 rq->ri->local_uri, status, rq->status);
        return false;
    }
    rq->status = status;
    return true;
}

bool http_reply_stream_start(request *rq, const char *content_type, const char *first)
{
    if (!first_reply(rq, 200))
        return false;
    /* No length: the body ends when the stream does, with the connection. */
    mg_disable_connection_keep_alive(rq->conn);
    reply_buf msg = {0};
    http_reply_addf(&msg,
                    "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-store\r\n"
                    "X-Accel-Buffering: no\r\nConnection: close\r\n\r\n%s",
                    content_type, first);
    bool sent = msg.err == RK_OK && mg_write(rq->conn, msg.buf.data, msg.buf.len) > 0;
    http_reply_buf_free(&msg);
    return sent;
}

/* Headers and body go out in one mg_write: two small writes would meet
 * Nagle and delayed ACKs on keep-alive connections (~40 ms each). JSON
 * bodies end with a newline, so curl output does not run into the prompt. */
void http_reply_send(request *rq, int status, const char *content_type, const char *extra_headers,
                     const char *body, size_t body_len)
{
    if (!first_reply(rq, status))
        return;
    bool newline = strcmp(content_type, "application/json") == 0;
    size_t total = body_len + (newline ? 1 : 0);
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
        mg_write(rq->conn, stack, (size_t)n + total);
        return;
    }
    reply_buf msg = {0};
    http_reply_addf(&msg,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Cache-Control: no-store\r\n%s\r\n",
                    status, status_text(status), content_type, total,
                    extra_headers ? extra_headers : "");
    http_reply_add(&msg, body, body_len);
    http_reply_add(&msg, "\n", newline ? 1 : 0);
    if (msg.err == RK_OK)
        mg_write(rq->conn, msg.buf.data, msg.buf.len);
    http_reply_buf_free(&msg);
}

void http_reply_json(request *rq, int status, const reply_buf *headers, const reply_buf *body)
{
    rk_err err = headers != NULL && headers->err != RK_OK ? headers->err : body->err;
    if (err != RK_OK) {
        /* Building the reply failed (out of memory, most likely): whatever
         * the error, the fault is ours, so 500. */
        RK_ERROR("http", "%s %s: reply not built: %s", rq->method, rq->ri->local_uri,
                 rk_strerror(err));
        http_reply_error(rq, 500, rk_errcode(err), rk_strerror(err));
        return;
    }
    http_reply_send(rq, status, "application/json", headers ? headers->buf.data : NULL,
                    body->buf.data ? body->buf.data : "", body->buf.len);
}

void http_reply_error(request *rq, int status, const char *code, const char *message)
{
    reply_buf b = {0};
    http_reply_add_str(&b, "{\"error\":");
    http_reply_add_json_cstr(&b, message);
    http_reply_add_str(&b, ",\"code\":");
    http_reply_add_json_cstr(&b, code);
    http_reply_add_str(&b, "}");
    if (b.err == RK_OK)
        http_reply_send(rq, status, "application/json", NULL, b.buf.data, b.buf.len);
    else
        http_reply_send(rq, 500, "application/json", NULL,
                        "{\"error\":\"out of memory\",\"code\":\"no_memory\"}", 44);
    http_reply_buf_free(&b);
}

void http_reply_err(request *rq, rk_err err)
{
    int status = http_status_of(err);
    if (status >= 500)
        RK_ERROR("http", "%s %s failed: %s", rq->method, rq->ri->local_uri, rk_strerror(err));
    http_reply_error(rq, status, rk_errcode(err), rk_strerror(err));
}

void http_reply_kv_error(request *rq, rk_err err, const kv_result *res)
{
    if (err != RK_EQUORUM) {
        http_reply_err(rq, err);
        return;
    }
    char body[192];
    int n = snprintf(body, sizeof body,
                     "{\"error\":\"quorum not reached: %u of %u replicas answered\","
                     "\"code\":\"quorum\",\"acks\":%u,\"needed\":%u}",
                     res->acks, res->needed, res->acks, res->needed);
    http_reply_send(rq, 503, "application/json", NULL, body, (size_t)n);
}

void http_reply_method_not_allowed(request *rq, const char *allow)
{
    char headers[128];
    snprintf(headers, sizeof headers, "Allow: %s\r\n", allow);
    static const char body[] =
        "{\"error\":\"method not allowed on this route\",\"code\":\"method_not_allowed\"}";
    http_reply_send(rq, 405, "application/json", headers, body, sizeof body - 1);
}

void http_reply_file(request *rq, const char *path)
{
    if (first_reply(rq, 200))
        mg_send_mime_file(rq->conn, path, NULL);
}

void http_reply_gone(request *rq)
{
    first_reply(rq, 400);
}

void http_reply_built(request *rq, reply_buf *body)
{
    http_reply_json(rq, 200, NULL, body);
    http_reply_buf_free(body);
}
