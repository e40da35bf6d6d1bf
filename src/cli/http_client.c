/* http_client.c - one blocking HTTP/1.1 exchange over a POSIX socket, with a deadline. */
#include "http_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_HEAD_BYTES (64 * 1024) /* status line plus headers */
#define MAX_LINE_BYTES (8 * 1024)  /* one chunk-size or trailer line */
#define READ_CHUNK 16384

static void set_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t why_len, const char *fmt, ...)
{
    if (why == NULL || why_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    /* strerror says "Connection refused"; the reason goes mid-sentence. */
    if (why[0] >= 'A' && why[0] <= 'Z' && why[1] >= 'a' && why[1] <= 'z')
        why[0] = (char)(why[0] - 'A' + 'a');
}

/* Milliseconds left before deadline_ns (monotonic), 0 when it has passed.
 * Rounded up so that poll() never wakes a hair early and spins. */
static int remaining_ms(uint64_t deadline_ns)
{
    uint64_t now = rk_mono_ns();
    if (now >= deadline_ns)
        return 0;
    uint64_t ms = (deadline_ns - now + 999999u) / 1000000u;
    return ms > (uint64_t)INT32_MAX ? INT32_MAX : (int)ms;
}

/* Waits until fd is ready for `events` or the deadline passes. Returns 1
 * when ready (including error/hangup, which the next call will report),
 * 0 on timeout, -1 with errno set on a poll failure. Restarts on EINTR. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
    for (;;) {
        int ms = remaining_ms(deadline_ns);
        if (ms == 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, ms);
        if (n > 0)
            return 1;
        if (n == 0)
            continue; /* re-check the clock: poll may round down */
        if (errno != EINTR)
            return -1;
    }
}

/* ---- connecting ---------------------------------------------------------- */

/* Non-blocking connect to one address, finished with poll() so that the
 * deadline bounds it (a blocking connect to a black-holed address would
 * wait for the kernel's SYN retries, minutes). Returns the connected fd. */
static rk_err connect_addr(const struct addrinfo *ai, uint64_t deadline_ns, int timeout_ms,
                           int *out_fd, char *why, size_t why_len)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0) {
        set_why(why, why_len, "socket: %s", strerror(errno));
        return RK_EIO;
    }
    /* EINTR from a non-blocking connect means the attempt carries on in the
     * background, exactly like EINPROGRESS. */
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS &&
        errno != EINTR) {
        set_why(why, why_len, "%s", strerror(errno));
        close(fd);
        return RK_EIO;
    }
    int ready = wait_fd(fd, POLLOUT, deadline_ns);
    if (ready <= 0) {
        if (ready == 0)
            set_why(why, why_len, "connect timed out after %d ms", timeout_ms);
        else
            set_why(why, why_len, "poll: %s", strerror(errno));
        close(fd);
        return ready == 0 ? RK_ETIMEDOUT : RK_EIO;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        soerr = errno;
    if (soerr != 0) {
        set_why(why, why_len, "%s", strerror(soerr));
        close(fd);
        return soerr == ETIMEDOUT ? RK_ETIMEDOUT : RK_EIO;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* latency only */
    *out_fd = fd;
    return RK_OK;
}

/* Resolves host:port and tries each address in turn until one connects,
 * all under the same deadline. The reason reported is the last address's. */
static rk_err connect_host(const char *host, const char *port, uint64_t deadline_ns,
                           int timeout_ms, int *out_fd, char *why, size_t why_len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *list = NULL;
    int gai = getaddrinfo(host, port, &hints, &list);
    if (gai != 0) {
        if (gai == EAI_SYSTEM)
            set_why(why, why_len, "cannot resolve %s: %s", host, strerror(errno));
        else
            set_why(why, why_len, "cannot resolve %s: %s", host, gai_strerror(gai));
        return gai == EAI_MEMORY ? RK_ENOMEM : RK_EIO;
    }
    rk_err err = RK_EIO;
    set_why(why, why_len, "no address for %s", host);
    for (const struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        err = connect_addr(ai, deadline_ns, timeout_ms, out_fd, why, why_len);
        if (err == RK_OK || err == RK_ETIMEDOUT)
            break; /* a timeout has used up the whole deadline */
    }
    freeaddrinfo(list);
    return err;
}

/* ---- sending ------------------------------------------------------------- */

static rk_err send_all(int fd, const char *data, size_t len, uint64_t deadline_ns,
                       int timeout_ms, char *why, size_t why_len)
{
    size_t off = 0;
    while (off < len) {
        /* MSG_NOSIGNAL: a peer that hung up gives EPIPE, not a fatal SIGPIPE. */
        ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int ready = wait_fd(fd, POLLOUT, deadline_ns);
            if (ready == 0) {
                set_why(why, why_len, "request not sent within %d ms", timeout_ms);
                return RK_ETIMEDOUT;
            }
            if (ready < 0) {
                set_why(why, why_len, "poll: %s", strerror(errno));
                return RK_EIO;
            }
            continue;
        }
        set_why(why, why_len, "connection broken while sending: %s",
                n < 0 ? strerror(errno) : "no progress");
        return RK_EIO;
    }
    return RK_OK;
}

static rk_err build_request(const http_client_request *req, rk_buf *out)
{
    bool v6 = strchr(req->host, ':') != NULL;
    rk_err err = rk_buf_appendf(out, "%s %s HTTP/1.1\r\nHost: %s%s%s:%s\r\n", req->method,
                                req->target, v6 ? "[" : "", req->host, v6 ? "]" : "", req->port);
    if (err == RK_OK)
        err = rk_buf_appends(out, "Connection: close\r\n");
    for (const char *const *h = req->headers; err == RK_OK && h != NULL && *h != NULL; h++)
        err = rk_buf_appendf(out, "%s\r\n", *h);
    if (err == RK_OK && req->body != NULL)
        err = rk_buf_appendf(out, "Content-Length: %zu\r\n", req->body_len);
    if (err == RK_OK)
        err = rk_buf_appends(out, "\r\n");
    if (err == RK_OK && req->body != NULL)
        err = rk_buf_append(out, req->body, req->body_len);
    return err;
}

/* A header line or request target with CR, LF or NUL would let a caller's
 * string inject headers; such a request is refused outright. */
static bool safe_text(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") == NULL;
}

/* ---- reading and parsing --------------------------------------------------
 *
 * The parser consumes raw bytes in place and never needs more than what has
 * arrived; each phase either advances or asks for more bytes:
 *
 *   HEAD --(1xx)--> HEAD
 *   HEAD --> LENGTH ------------------------------> DONE
 *   HEAD --> CHUNK_SIZE --> CHUNK_DATA --> CHUNK_END --> CHUNK_SIZE ...
 *              \--(size 0)--> TRAILER --(empty line)--> DONE
 *   HEAD --> TO_CLOSE --(peer closes)--> DONE
 *   HEAD --(HEAD request, 204, 304)--> DONE
 */
enum phase { HEAD, LENGTH, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILER, TO_CLOSE, DONE };

struct parser {
    enum phase phase;
    rk_buf raw;       /* bytes received and not yet discarded */
    size_t pos;       /* first unconsumed byte of raw */
    size_t remaining; /* body bytes left in LENGTH or CHUNK_DATA */
    size_t max_body;
    bool head_request;
    http_client_response resp;
    const char *error; /* static text, set when a step fails */
};

/* Finds the end of the header block in raw from pos: returns the length of
 * the block including its terminating empty line, or 0 if not complete. */
static size_t head_length(const struct parser *p)
{
    const char *s = p->raw.data + p->pos;
    size_t n = p->raw.len - p->pos;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\n')
            continue;
        if (s[i + 1] == '\n')
            return i + 2;
        if (s[i + 1] == '\r' && i + 2 < n && s[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Returns the next line (without CR LF) from raw at pos, advancing pos, or
 * NULL if no complete line has arrived. */
static const char *next_line(struct parser *p, size_t *len)
{
    const char *s = p->raw.data + p->pos;
    const char *nl = memchr(s, '\n', p->raw.len - p->pos);
    if (nl == NULL)
        return NULL;
    size_t n = (size_t)(nl - s);
    p->pos += n + 1;
    if (n > 0 && s[n - 1] == '\r')
        n--;
    *len = n;
    return s;
}

static bool header_has_token(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i + tl <= len; i++)
        if (strncasecmp(v + i, token, tl) == 0)
            return true;
    return false;
}

/* Parses the status line and picks the body framing. */
static bool parse_head(struct parser *p, size_t len)
{
    http_client_response *r = &p->resp;
    rk_buf_reset(&r->head);
    if (rk_buf_append(&r->head, p->raw.data + p->pos, len) != RK_OK) {
        p->error = "out of memory";
        return false;
    }
    p->pos += len;

    const char *h = r->head.data;
    if (strncmp(h, "HTTP/1.", 7) != 0 || (h[7] != '0' && h[7] != '1') || h[8] != ' ' ||
        h[9] < '1' || h[9] > '5' || h[10] < '0' || h[10] > '9' || h[11] < '0' ||
        h[11] > '9' || (h[12] != ' ' && h[12] != '\r' && h[12] != '\n')) {
        p->error = "not an HTTP/1.x status line";
        return false;
    }
    r->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');

    if (r->status >= 100 && r->status < 200) {
        p->phase = HEAD; /* an interim response; the real one follows */
        return true;
    }
    if (p->head_request || r->status == 204 || r->status == 304) {
        p->phase = DONE;
        return true;
    }
    size_t vl;
    const char *te = http_client_header(r, "Transfer-Encoding", &vl);
    if (te != NULL && header_has_token(te, vl, "chunked")) {
        p->phase = CHUNK_SIZE;
        return true;
    }
    const char *cl = http_client_header(r, "Content-Length", &vl);
    if (cl != NULL) {
        uint64_t n;
        if (rk_parse_u64(cl, vl, &n) != RK_OK) {
            p->error = "bad Content-Length";
            return false;
        }
        if (n > p->max_body) {
            p->error = "response body too large";
            return false;
        }
        p->remaining = (size_t)n;
        p->phase = n == 0 ? DONE : LENGTH;
        if (rk_buf_reserve(&r->body, (size_t)n) != RK_OK) {
            p->error = "out of memory";
            return false;
        }
        return true;
    }
    p->phase = TO_CLOSE;
    return true;
}

static bool take_body(struct parser *p, size_t n)
{
    if (p->resp.body.len + n > p->max_body) {
        p->error = "response body too large";
        return false;
    }
    if (rk_buf_append(&p->resp.body, p->raw.data + p->pos, n) != RK_OK) {
        p->error = "out of memory";
        return false;
    }
    p->pos += n;
    return true;
}

/* Advances the parser over what has arrived. Returns 1 when the response
 * is complete, 0 when more bytes are needed, -1 on malformed input (or a
 * limit hit) with p->error set. */
static int parse_step(struct parser *p)
{
    for (;;) {
        size_t avail = p->raw.len - p->pos;
        size_t len;
        const char *line;
        switch (p->phase) {
        case HEAD:
            len = head_length(p);
            if (len == 0) {
                if (avail > MAX_HEAD_BYTES) {
                    p->error = "response headers too large";
                    return -1;
                }
                return 0;
            }
            if (!parse_head(p, len))
                return -1;
            break;
        case LENGTH:
            if (avail == 0)
                return 0;
            len = avail < p->remaining ? avail : p->remaining;
            if (!take_body(p, len))
                return -1;
            p->remaining -= len;
            if (p->remaining == 0)
                p->phase = DONE;
            break;
        case CHUNK_SIZE: {
            line = next_line(p, &len);
            if (line == NULL) {
                if (avail > MAX_LINE_BYTES) {
                    p->error = "chunk size line too long";
                    return -1;
                }
                return 0;
            }
            size_t size = 0, i = 0;
            for (; i < len; i++) {
                char c = line[i];
                int d = rk_hex_value(c);
                if (d < 0)
                    break;
                if (size > (p->max_body >> 4)) {
                    p->error = "response body too large";
                    return -1;
                }
                size = size * 16 + (size_t)d;
            }
            /* At least one digit, then optionally ";extension" or spaces. */
            if (i == 0 || (i < len && line[i] != ';' && line[i] != ' ' && line[i] != '\t')) {
                p->error = "bad chunk size";
                return -1;
            }
            p->remaining = size;
            p->phase = size == 0 ? TRAILER : CHUNK_DATA;
            break;
        }
        case CHUNK_DATA:
            if (avail == 0)
                return 0;
            len = avail < p->remaining ? avail : p->remaining;
            if (!take_body(p, len))
                return -1;
            p->remaining -= len;
            if (p->remaining == 0)
                p->phase = CHUNK_END;
            break;
        case CHUNK_END:
            line = next_line(p, &len);
            if (line == NULL && avail < 2)
                return 0;
            if (line == NULL || len != 0) {
                p->error = "bad chunk terminator";
                return -1;
            }
            p->phase = CHUNK_SIZE;
            break;
        case TRAILER:
            line = next_line(p, &len);
            if (line == NULL) {
                if (avail > MAX_LINE_BYTES) {
                    p->error = "trailer line too long";
                    return -1;
                }
                return 0;
            }
            if (len == 0)
                p->phase = DONE;
            break;
        case TO_CLOSE:
            if (avail == 0)
                return 0;
            if (!take_body(p, avail))
                return -1;
            break;
        case DONE:
            return 1;
        }
        /* Drop consumed bytes once in a while so raw does not keep the
         * whole body a second time. */
        if (p->pos > READ_CHUNK && p->pos * 2 > p->raw.len) {
            memmove(p->raw.data, p->raw.data + p->pos, p->raw.len - p->pos);
            p->raw.len -= p->pos;
            p->raw.data[p->raw.len] = '\0';
            p->pos = 0;
        }
    }
}

/* Reads from fd into the parser until the response is complete. */
static rk_err read_response(int fd, struct parser *p, uint64_t deadline_ns, int timeout_ms,
                            char *why, size_t why_len)
{
    for (;;) {
        int st = parse_step(p);
        if (st == 1)
            return RK_OK;
        if (st < 0) {
            set_why(why, why_len, "bad response: %s", p->error);
            if (strcmp(p->error, "out of memory") == 0)
                return RK_ENOMEM;
            if (strcmp(p->error, "response body too large") == 0)
                return RK_ETOOBIG;
            return RK_ECORRUPT;
        }
        rk_err err = rk_buf_reserve(&p->raw, READ_CHUNK);
        if (err != RK_OK) {
            set_why(why, why_len, "out of memory");
            return err;
        }
        ssize_t n = recv(fd, p->raw.data + p->raw.len, READ_CHUNK, 0);
        if (n > 0) {
            p->raw.len += (size_t)n;
            p->raw.data[p->raw.len] = '\0';
            continue;
        }
        if (n == 0) {
            if (p->phase == TO_CLOSE) {
                p->phase = DONE;
                continue;
            }
            if (p->phase == HEAD && p->raw.len == 0)
                set_why(why, why_len, "connection closed before a response");
            else
                set_why(why, why_len, "connection closed in the middle of the response");
            return RK_EIO;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int ready = wait_fd(fd, POLLIN, deadline_ns);
            if (ready == 0) {
                if (p->phase == HEAD && p->raw.len == 0)
                    set_why(why, why_len, "no response within %d ms", timeout_ms);
                else
                    set_why(why, why_len, "response incomplete after %d ms", timeout_ms);
                return RK_ETIMEDOUT;
            }
            if (ready < 0) {
                set_why(why, why_len, "poll: %s", strerror(errno));
                return RK_EIO;
            }
            continue;
        }
        set_why(why, why_len, "connection broken while reading: %s", strerror(errno));
        return RK_EIO;
    }
}

/* ---- public -------------------------------------------------------------- */

rk_err http_client_do(const http_client_request *req, http_client_response *resp, char *why,
                      size_t why_len)
{
    if (req == NULL || resp == NULL || !safe_text(req->method) || !safe_text(req->host) ||
        !safe_text(req->port) || !safe_text(req->target) || req->timeout_ms <= 0) {
        set_why(why, why_len, "invalid request");
        return RK_EINVAL;
    }
    for (const char *const *h = req->headers; h != NULL && *h != NULL; h++) {
        if (!safe_text(*h)) {
            set_why(why, why_len, "invalid header");
            return RK_EINVAL;
        }
    }
    uint64_t deadline_ns = rk_mono_ns() + (uint64_t)req->timeout_ms * 1000000u;

    rk_buf out = {0};
    rk_err err = build_request(req, &out);
    if (err != RK_OK) {
        set_why(why, why_len, "out of memory");
        rk_buf_free(&out);
        return err;
    }

    int fd = -1;
    err = connect_host(req->host, req->port, deadline_ns, req->timeout_ms, &fd, why, why_len);
    if (err == RK_OK)
        err = send_all(fd, out.data, out.len, deadline_ns, req->timeout_ms, why, why_len);
    rk_buf_free(&out);

    struct parser p = {.phase = HEAD,
                       .max_body = req->max_body ? req->max_body : HTTP_CLIENT_DEFAULT_MAX_BODY,
                       .head_request = strcmp(req->method, "HEAD") == 0};
    if (err == RK_OK)
        err = read_response(fd, &p, deadline_ns, req->timeout_ms, why, why_len);
    if (fd >= 0)
        close(fd);
    rk_buf_free(&p.raw);
    if (err != RK_OK) {
        http_client_response_free(&p.resp);
        return err;
    }
    *resp = p.resp;
    return RK_OK;
}

void http_client_response_free(http_client_response *resp)
{
    rk_buf_free(&resp->head);
    rk_buf_free(&resp->body);
    resp->status = 0;
}

const char *http_client_header(const http_client_response *resp, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *s = resp->head.data;
    if (s == NULL)
        return NULL;
    const char *line = strchr(s, '\n'); /* skip the status line */
    while (line != NULL) {
        line++;
        const char *eol = strchr(line, '\n');
        const char *end = eol ? eol : line + strlen(line);
        if (end > line && end[-1] == '\r')
            end--;
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            *len = (size_t)(end - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

rk_err http_client_split_address(const char *address, char **host, char **port)
{
    const char *h, *he, *colon;
    if (address[0] == '[') {
        h = address + 1;
        he = strchr(h, ']');
        if (he == NULL || he[1] != ':')
            return RK_EINVAL;
        colon = he + 1;
    } else {
        h = address;
        colon = strrchr(address, ':');
        if (colon == NULL || memchr(address, ':', (size_t)(colon - address)) != NULL)
            return RK_EINVAL; /* a bare IPv6 address needs brackets */
        he = colon;
    }
    const char *p = colon + 1;
    uint64_t n;
    if (he == h || rk_parse_u64(p, strlen(p), &n) != RK_OK || n == 0 || n > 65535)
        return RK_EINVAL;
    for (const char *c = h; c < he; c++)
        if (*c <= ' ' || *c == '/' || *c == '@' || *c == 0x7f)
            return RK_EINVAL;
    char *hs = strndup(h, (size_t)(he - h));
    char *ps = strdup(p);
    if (hs == NULL || ps == NULL) {
        free(hs);
        free(ps);
        return RK_ENOMEM;
    }
    *host = hs;
    *port = ps;
    return RK_OK;
}

rk_err http_client_url_encode(rk_buf *out, const char *s, size_t len)
{
    rk_err err = rk_buf_reserve(out, len * 3);
    if (err != RK_OK)
        return err;
    char *o = out->data + out->len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            rk_hex_encode(&c, 1, true, o);
            o += 2;
        }
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
    return RK_OK;
}
