/* fetch.c - one small HTTP/1.0 GET from this node to a peer's gateway,
 * with a deadline on everything (resolve aside), for /cluster/metrics/:
 * the web client talks to the node that served it only, and that node
 * asks its peers. A blocking socket polled against the deadline: the
 * caller is a civetweb worker that has nothing else to do meanwhile. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_internal.h"

/* Milliseconds left until deadline_ms (monotonic), at least 0. */
static int left_ms(uint64_t deadline_ms)
{
    uint64_t now = rk_monotonic_ms();
    return now >= deadline_ms ? 0 : (int)(deadline_ms - now);
}

static bool wait_ready(int fd, short events, uint64_t deadline_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    int r;
    do
        r = poll(&p, 1, left_ms(deadline_ms));
    while (r < 0 && errno == EINTR);
    return r > 0;
}

/* A non-blocking socket connected to host:port by the deadline, or -1
 * with err filled. */
static int connect_by(const char *host, const char *port, uint64_t deadline_ms, char *err,
                      size_t errcap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errcap, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(err, errcap, "cannot connect to %s:%s", host, port);
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS && wait_ready(fd, POLLOUT, deadline_ms) &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0)
            break;
        snprintf(err, errcap, "cannot connect to %s:%s: %s", host, port,
                 soerr                  ? strerror(soerr)
                 : left_ms(deadline_ms) ? strerror(errno)
                                        : "timed out");
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static bool send_all(int fd, const char *p, size_t len, uint64_t deadline_ms)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n, len -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return false;
        } else if (!wait_ready(fd, POLLOUT, deadline_ms)) {
            return false;
        }
    }
    return true;
}

/* Reads until the peer closes (HTTP/1.0), at most max bytes. */
static rk_err recv_all(int fd, rk_buf *out, size_t max, uint64_t deadline_ms, char *err,
                       size_t errcap)
{
    for (;;) {
        if (out->len >= max) {
            snprintf(err, errcap, "answer longer than %zu bytes", max);
            return RK_ETOOBIG;
        }
        if (rk_buf_reserve(out, 16384) != RK_OK)
            return RK_ENOMEM;
        size_t room = out->cap - out->len < max - out->len ? out->cap - out->len : max - out->len;
        ssize_t n = recv(fd, out->data + out->len, room, 0);
        if (n > 0) {
            out->len += (size_t)n;
        } else if (n == 0) {
            return RK_OK;
        } else if (errno != EAGAIN && errno != EINTR) {
            snprintf(err, errcap, "read failed: %s", strerror(errno));
            return RK_EIO;
        } else if (!wait_ready(fd, POLLIN, deadline_ms)) {
            snprintf(err, errcap, "no answer within the deadline");
            return RK_ETIMEDOUT;
        }
    }
}

/* Splits "HTTP/1.x NNN ...\r\n...\r\n\r\nbody": *status and the body's
 * offset. Pure. */
rk_err http_fetch_parse(const char *text, size_t len, int *status, size_t *body_at)
{
    if (len < 12 || memcmp(text, "HTTP/1.", 7) != 0 || text[8] != ' ')
        return RK_EINVAL;
    int code = 0;
    for (size_t i = 9; i < 12; i++) {
        if (text[i] < '0' || text[i] > '9')
            return RK_EINVAL;
        code = code * 10 + (text[i] - '0');
    }
    for (size_t i = 12; i + 3 < len; i++) {
        if (memcmp(text + i, "\r\n\r\n", 4) == 0) {
            *status = code;
            *body_at = i + 4;
            return RK_OK;
        }
    }
    return RK_EINVAL;
}

rk_err http_fetch_get(const char *hostport, const char *path, unsigned timeout_ms, size_t max,
                      int *status, rk_buf *body, char *err, size_t errcap)
{
    char host[256], port[16];
    const char *colon = strrchr(hostport, ':');
    size_t hl = colon ? (size_t)(colon - hostport) : 0;
    if (colon == NULL || hl == 0 || hl >= sizeof host || strlen(colon + 1) >= sizeof port) {
        snprintf(err, errcap, "bad address %s", hostport);
        return RK_EINVAL;
    }
    memcpy(host, hostport, hl);
    host[hl] = '\0';
    snprintf(port, sizeof port, "%s", colon + 1);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') { /* [v6]:port */
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    uint64_t deadline = rk_monotonic_ms() + timeout_ms;
    int fd = connect_by(host, port, deadline, err, errcap);
    if (fd < 0)
        return RK_EIO;
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, hostport);
    rk_buf raw = {0};
    rk_err e = RK_OK;
    if (n < 0 || (size_t)n >= sizeof req) {
        snprintf(err, errcap, "path too long");
        e = RK_EINVAL;
    } else if (!send_all(fd, req, (size_t)n, deadline)) {
        snprintf(err, errcap, "cannot send the request to %s", hostport);
        e = RK_EIO;
    }
    if (e == RK_OK)
        e = recv_all(fd, &raw, max, deadline, err, errcap);
    close(fd);
    size_t at = 0;
    if (e == RK_OK && http_fetch_parse(raw.data, raw.len, status, &at) != RK_OK) {
        snprintf(err, errcap, "%s answered something that is not HTTP", hostport);
        e = RK_EIO;
    }
    if (e == RK_OK)
        e = rk_buf_append(body, raw.data + at, raw.len - at);
    rk_buf_free(&raw);
    return e;
}
