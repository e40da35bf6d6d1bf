/* test_cli.c - unit tests of the CLI's HTTP layer (src/cli/http.c): node
 * addresses, header lookup, and requests through libcurl against a
 * scripted HTTP server on 127.0.0.1 that runs in a thread; and of the
 * watch command: its SSE parser (src/cli/sse.c) on every split of a
 * stream, the lines it prints (watch_line.c), and its fail-over between
 * scripted nodes (watch.c); and of the cluster commands' pure parts: the
 * order of cluster status's rows and the members a change is followed on
 * (members.c), and how far a leave or remove has got, with the lines that
 * say so (change.c).
 *
 * The server never sleeps: each step waits for bytes or a connection with
 * a 5 s deadline, so that a broken client fails the test instead of
 * hanging it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/change.h"
#include "cli/cli_internal.h"
#include "cli/sse.h"

#define STEP_MS 5000 /* deadline of one server step */

/* ---- a scripted server ----------------------------------------------------- */

struct server {
    int listen_fd;
    int port;
    pthread_t thread;
    void (*script)(struct server *s);
    const char *canned; /* the response of script_canned */
    int accepts;        /* connections accepted */
    int progress[2];    /* pipe: the client's on_body writes one byte per piece */
    char request[8192]; /* the last request read, head and body, NUL-terminated */
    size_t request_len;
};

static bool wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, STEP_MS) == 1;
}

static int accept_conn(struct server *s)
{
    if (!wait_readable(s->listen_fd))
        return -1;
    int fd = accept(s->listen_fd, NULL, NULL);
    if (fd >= 0)
        s->accepts++;
    return fd;
}

/* Reads one request (head, then Content-Length bytes of body) into
 * s->request. False on EOF, error or deadline. */
static bool read_request(struct server *s, int fd)
{
    s->request_len = 0;
    size_t want = 0; /* total length, known once the head is complete */
    for (;;) {
        char *end = strstr(s->request, "\r\n\r\n");
        if (want == 0 && end != NULL) {
            const char *cl = strcasestr(s->request, "\r\nContent-Length:");
            want = (size_t)(end + 4 - s->request) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
        }
        if (want != 0 && s->request_len >= want)
            return true;
        if (s->request_len + 1 >= sizeof s->request || !wait_readable(fd))
            return false;
        ssize_t n = read(fd, s->request + s->request_len, sizeof s->request - 1 - s->request_len);
        if (n <= 0)
            return false;
        s->request_len += (size_t)n;
        s->request[s->request_len] = '\0';
    }
}

static void send_text(int fd, const char *text)
{
    size_t len = strlen(text);
    while (len > 0) {
        ssize_t n = send(fd, text, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        text += n;
        len -= (size_t)n;
    }
}

/* Waits until the client closes fd (or the deadline passes), then closes it. */
static void wait_close(int fd)
{
    char buf[512];
    while (wait_readable(fd) && read(fd, buf, sizeof buf) > 0)
        continue;
    close(fd);
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    s->script(s);
    return NULL;
}

static void server_start(struct server *s, void (*script)(struct server *), const char *canned)
{
    memset(s, 0, sizeof *s);
    s->script = script;
    s->canned = canned;
    assert_int_equal(pipe(s->progress), 0);
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->listen_fd, 8), 0);
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    close(s->progress[0]);
    close(s->progress[1]);
}

static void url_of(const struct server *s, const char *target, char *out, size_t out_len)
{
    snprintf(out, out_len, "http://127.0.0.1:%d%s", s->port, target);
}

/* ---- scripts --------------------------------------------------------------- */

/* Answers every request on the first connection until the client closes
 * it; a second connection is never accepted, so a client that does not
 * keep the connection alive times out. */
static void script_keep_alive(struct server *s)
{
    int fd = accept_conn(s);
    if (fd < 0)
        return;
    for (int i = 0; read_request(s, fd); i++) {
        char resp[128];
        snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr%d", i);
        send_text(fd, resp);
    }
    close(fd);
}

/* Answers 201 with the request it read as the body. */
static void script_echo(struct server *s)
{
    int fd = accept_conn(s);
    if (fd < 0)
        return;
    if (read_request(s, fd)) {
        char head[256];
        snprintf(head, sizeof head,
                 "HTTP/1.1 201 Created\r\nX-Echo:  yes \r\nContent-Length: %zu\r\n\r\n",
                 s->request_len);
        send_text(fd, head);
        send_text(fd, s->request);
    }
    wait_close(fd);
}

/* Sends three chunks of an event stream, each only after the client's
 * on_body has reported the one before: the body must arrive piece by piece,
 * not once the response is complete. */
static void script_stream(struct server *s)
{
    int fd = accept_conn(s);
    if (fd < 0)
        return;
    if (read_request(s, fd)) {
        send_text(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n");
        for (int i = 0; i < 3; i++) {
            char chunk[64];
            snprintf(chunk, sizeof chunk, "9\r\ndata: %d\n\n\r\n", i); /* 9 bytes */
            send_text(fd, chunk);
            char b;
            if (!wait_readable(s->progress[0]) || read(s->progress[0], &b, 1) != 1)
                break;
        }
        send_text(fd, "0\r\n\r\n");
    }
    wait_close(fd);
}

/* Accepts and never answers. */
static void script_silent(struct server *s)
{
    int fd = accept_conn(s);
    if (fd >= 0)
        wait_close(fd);
}

/* Answers one request with s->canned, then ends the connection: a stream
 * that the node closes. */
static void script_canned_eof(struct server *s)
{
    int fd = accept_conn(s);
    if (fd < 0)
        return;
    if (read_request(s, fd))
        send_text(fd, s->canned);
    shutdown(fd, SHUT_WR);
    wait_close(fd);
}

/* Answers one request with s->canned. */
static void script_canned(struct server *s)
{
    int fd = accept_conn(s);
    if (fd < 0)
        return;
    if (read_request(s, fd))
        send_text(fd, s->canned);
    wait_close(fd);
}

/* ---- node addresses and headers ---------------------------------------------- */

static void test_node_url(void **state)
{
    (void)state;
    static const struct {
        const char *address, *url;
    } good[] = {
        {"127.0.0.1:8001", "http://127.0.0.1:8001"},
        {"localhost:1", "http://localhost:1"},
        {"node-2.example_x:65535", "http://node-2.example_x:65535"},
        {"[::1]:8001", "http://[::1]:8001"},
        {"[fe80::1%eth0]:80", "http://[fe80::1%25eth0]:80"},
        {"h:080", "http://h:80"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char *url = NULL;
        assert_int_equal(cli_http_node_url(good[i].address, &url), RK_OK);
        assert_string_equal(url, good[i].url);
        free(url);
    }
    static const char *const bad[] = {
        "",     "no-port", ":80",   "h:",    "h:0",   "h:65536", "h:x",   "::1:80", "[::1]80",
        "[::1", "[]:80",   "a?b:1", "a/b:1", "u@h:1", "a b:1",   "a#b:1", "h%20:1", "[::1/x]:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *url = (char *)"untouched";
        assert_int_equal(cli_http_node_url(bad[i], &url), RK_EINVAL);
        assert_string_equal(url, "untouched");
    }
}

static void test_header_lookup(void **state)
{
    (void)state;
    cli_http_response r = {0};
    assert_null(cli_http_header(&r, "Content-Type", &(size_t){0}));
    assert_int_equal(rk_buf_appends(&r.head, "HTTP/1.1 200 OK\r\n"
                                             "Content-Type:  application/json \r\n"
                                             "X-Empty:\r\n"
                                             "X-Long-Name: 1\r\n\r\n"),
                     RK_OK);
    size_t len = 0;
    const char *v = cli_http_header(&r, "content-type", &len);
    assert_non_null(v);
    assert_int_equal(len, strlen("application/json"));
    assert_memory_equal(v, "application/json", len);
    v = cli_http_header(&r, "X-Empty", &len);
    assert_non_null(v);
    assert_int_equal(len, 0);
    assert_null(cli_http_header(&r, "X-Long", &len)); /* a prefix is not the name */
    assert_null(cli_http_header(&r, "HTTP/1.1 200 OK", &len));
    cli_http_response_free(&r);
}

/* ---- requests ------------------------------------------------------------- */

static cli_http *open_http(void)
{
    cli_http *h = NULL;
    char why[256] = "";
    assert_int_equal(cli_http_open(&h, why, sizeof why), RK_OK);
    assert_non_null(h);
    return h;
}

static void test_requests_share_one_connection(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, script_keep_alive, NULL);
    cli_http *h = open_http();
    char url[128];
    url_of(&s, "/t/keys", url, sizeof url);
    for (int i = 0; i < 3; i++) {
        cli_http_request req = {.method = "GET", .url = url, .timeout_ms = 2000};
        cli_http_response r = {0};
        char why[256] = "";
        assert_int_equal(cli_http_request_do(h, &req, &r, why, sizeof why), RK_OK);
        assert_int_equal(r.status, 200);
        char want[8];
        snprintf(want, sizeof want, "r%d", i);
        assert_string_equal(r.body.data, want);
        cli_http_response_free(&r);
    }
    cli_http_close(h); /* closes the connection: the server's loop ends */
    server_stop(&s);
    assert_int_equal(s.accepts, 1);
}

static void test_request_with_body_and_headers(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, script_echo, NULL);
    cli_http *h = open_http();
    char url[128];
    url_of(&s, "/t/key/a%2Fb?w=2", url, sizeof url);
    /* Over 1 KiB: libcurl 7.88 would ask "Expect: 100-continue" and wait. */
    char body[2000];
    memset(body, 'v', sizeof body);
    const char *const headers[] = {"Content-Type: application/json", "If-Match: \"ctx\"", NULL};
    cli_http_request req = {.method = "PUT",
                            .url = url,
                            .headers = headers,
                            .body = body,
                            .body_len = sizeof body,
                            .timeout_ms = 2000};
    cli_http_response r = {0};
    char why[256] = "";
    assert_int_equal(cli_http_request_do(h, &req, &r, why, sizeof why), RK_OK);
    assert_int_equal(r.status, 201);
    size_t len = 0;
    const char *v = cli_http_header(&r, "x-echo", &len);
    assert_non_null(v);
    assert_int_equal(len, 3);
    assert_memory_equal(v, "yes", 3);
    const char *echo = r.body.data;
    assert_non_null(echo);
    assert_true(strncmp(echo, "PUT /t/key/a%2Fb?w=2 HTTP/1.1\r\n", 31) == 0);
    assert_non_null(strstr(echo, "\r\nContent-Length: 2000\r\n"));
    assert_non_null(strstr(echo, "\r\nIf-Match: \"ctx\"\r\n"));
    assert_null(strcasestr(echo, "\r\nExpect:"));
    assert_int_equal(r.body.len - (size_t)(strstr(echo, "\r\n\r\n") + 4 - echo), sizeof body);
    cli_http_response_free(&r);
    cli_http_close(h);
    server_stop(&s);
}

struct stream_seen {
    int pieces;
    int progress_fd;
    rk_buf text;
};

static rk_err stream_cb(const cli_http_response *resp, const char *data, size_t len, void *arg)
{
    struct stream_seen *seen = arg;
    size_t n = 0;
    const char *ct = cli_http_header(resp, "Content-Type", &n);
    if (resp->status != 200 || ct == NULL || n != strlen("text/event-stream"))
        return RK_EINVAL; /* the status and headers come before the body */
    seen->pieces++;
    if (rk_buf_append(&seen->text, data, len) != RK_OK)
        return RK_ENOMEM;
    return write(seen->progress_fd, "+", 1) == 1 ? RK_OK : RK_EIO;
}

static void test_body_streams_through_callback(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, script_stream, NULL);
    cli_http *h = open_http();
    char url[128];
    url_of(&s, "/events", url, sizeof url);
    struct stream_seen seen = {.progress_fd = s.progress[1]};
    const char *const headers[] = {"Accept: text/event-stream", NULL};
    cli_http_request req = {.method = "GET",
                            .url = url,
                            .headers = headers,
                            .timeout_ms = 0,
                            .connect_timeout_ms = 2000,
                            .on_body = stream_cb,
                            .on_body_arg = &seen};
    cli_http_response r = {0};
    char why[256] = "";
    assert_int_equal(cli_http_request_do(h, &req, &r, why, sizeof why), RK_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0); /* streamed, not collected */
    assert_true(seen.pieces >= 3);
    assert_string_equal(seen.text.data, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
    rk_buf_free(&seen.text);
    cli_http_response_free(&r);
    cli_http_close(h);
    server_stop(&s);
}

static rk_err refuse_cb(const cli_http_response *resp, const char *data, size_t len, void *arg)
{
    (void)resp, (void)data, (void)len, (void)arg;
    return RK_EBUSY;
}

static void test_callback_error_stops_the_transfer(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, script_canned, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    cli_http *h = open_http();
    char url[128];
    url_of(&s, "/", url, sizeof url);
    cli_http_request req = {.method = "GET", .url = url, .timeout_ms = 2000, .on_body = refuse_cb};
    cli_http_response r = {.status = -7};
    char why[256] = "";
    assert_int_equal(cli_http_request_do(h, &req, &r, why, sizeof why), RK_EBUSY);
    assert_int_equal(r.status, -7); /* untouched on failure */
    cli_http_close(h);
    server_stop(&s);
}

/* The limit holds whether the server announces the size or not. */
static void test_body_over_the_limit(void **state)
{
    (void)state;
    static const char *const answers[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < 2; i++) {
        struct server s;
        server_start(&s, script_canned, answers[i]);
        cli_http *h = open_http();
        char url[128];
        url_of(&s, "/", url, sizeof url);
        cli_http_request req = {.method = "GET", .url = url, .timeout_ms = 2000, .max_body = 10};
        cli_http_response r = {0};
        char why[256] = "";
        assert_int_equal(cli_http_request_do(h, &req, &r, why, sizeof why), RK_ETOOBIG);
        cli_http_close(h);
        server_stop(&s);
    }
}

static void test_silent_server_times_out(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, script_silent, NULL);
    cli_http *h = open_http();
    char url[128];
    url_of(&s, "/", url, sizeof url);
    cli_http_request req = {.method = "GET", .url = url, .timeout_ms = 200};
    cli_http_response r = {0};
    char why[256] = "";
    assert_int_equal(cli_http_request_do(h, &req, &r, why, sizeof why), RK_ETIMEDOUT);
    assert_non_null(strstr(why, "timed out"));
    assert_int_equal(r.status, 0);
    assert_null(r.body.data);
    cli_http_close(h);
    server_stop(&s);
}

static void test_refused_connection_says_so(void **state)
{
    (void)state;
    /* A port that was just free: bound, then closed without listening. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    cli_http *h = open_http();
    cli_http_request req = {.method = "GET", .url = url, .timeout_ms = 2000};
    cli_http_response r = {0};
    char why[256] = "";
    assert_int_equal(cli_http_request_do(h, &req, &r, why, sizeof why), RK_EIO);
    assert_non_null(strstr(why, "connection refused"));
    cli_http_close(h);
}

static void test_malformed_requests_are_refused(void **state)
{
    (void)state;
    cli_http *h = open_http();
    const char *const injected[] = {"X-A: 1\r\nX-B: 2", NULL};
    const cli_http_request reqs[] = {
        {.method = "GET", .url = "http://127.0.0.1:1/", .headers = injected, .timeout_ms = 100},
        {.method = "GET", .url = "http://127.0.0.1:1/\r\nX: y", .timeout_ms = 100},
        {.method = "GET", .url = "file:///etc/passwd", .timeout_ms = 100},
        {.method = "GET", .url = "http://127.0.0.1:1/", .timeout_ms = -1},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        cli_http_response r = {0};
        char why[256] = "";
        assert_int_equal(cli_http_request_do(h, &reqs[i], &r, why, sizeof why), RK_EINVAL);
        assert_true(why[0] != '\0');
    }
    cli_http_close(h);
}

/* ---- the SSE parser ---------------------------------------------------------- */

/* Each event as "type|id|data;" */
static rk_err collect_cb(const cli_sse_event *ev, void *arg)
{
    rk_buf *out = arg;
    assert_int_equal(strlen(ev->data), ev->data_len);
    return rk_buf_appendf(out, "%s|%s|%s;", ev->type, ev->id, ev->data);
}

/* A stream with everything the parser must handle: a BOM, comments (the
 * node's ": subscribed" and ": ping"), CRLF, LF and lone CR line ends,
 * multi-line data, an id that later events inherit, an id with a NUL
 * (ignored), an empty id (clears it), unknown fields, a field without a
 * colon, no space after the colon, and an event cut off at the end. */
static const char sse_stream[] =
    "\xEF\xBB\xBF: subscribed\n\n"
    "id: 1\nevent: updated\ndata: {\"a\":1}\n\n"
    ": ping\r\n\r\n"
    "data:no space\r\ndata:  two spaces\r\n\r\n"
    "id: 2\revent: reset\rretry: 100\rcolour: red\rdata: {}\r\r"
    "id: bad\0id\ndata: x\n\n"
    "data\n\n"
    "id\ndata: y\n\n"
    "event: deleted\n\n" /* no data: no event, and the type does not stick */
    "data: z\n\n"
    "id: 9\ndata: cut off";
static const char sse_expected[] = "updated|1|{\"a\":1};"
                                   "message|1|no space\n two spaces;"
                                   "reset|2|{};"
                                   "message|2|x;"
                                   "message|2|;"
                                   "message||y;"
                                   "message||z;";

static void feed_ok(cli_sse_parser *p, const char *data, size_t len, rk_buf *out)
{
    assert_int_equal(cli_sse_parser_feed(p, data, len, collect_cb, out), RK_OK);
}

/* Every split into three pieces gives the same events: curl hands the body
 * over in pieces cut anywhere, between CR and LF too. */
static void test_sse_parser_any_split(void **state)
{
    (void)state;
    size_t len = sizeof sse_stream - 1;
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            cli_sse_parser p;
            rk_buf out = {0};
            cli_sse_parser_init(&p, 0);
            feed_ok(&p, sse_stream, i, &out);
            feed_ok(&p, sse_stream + i, j - i, &out);
            feed_ok(&p, sse_stream + j, len - j, &out);
            if (out.data == NULL || strcmp(out.data, sse_expected) != 0)
                fail_msg("split at %zu and %zu: got %s", i, j, out.data ? out.data : "nothing");
            /* The cut-off event's id 9 is not the client's yet. */
            assert_string_equal(cli_sse_parser_last_id(&p), "");
            rk_buf_free(&out);
            cli_sse_parser_fini(&p);
        }
    }
    /* And byte by byte. */
    cli_sse_parser p;
    rk_buf out = {0};
    cli_sse_parser_init(&p, 0);
    for (size_t i = 0; i < len; i++)
        feed_ok(&p, sse_stream + i, 1, &out);
    assert_string_equal(out.data, sse_expected);
    rk_buf_free(&out);
    cli_sse_parser_fini(&p);
}

/* What a reconnect sends: the id of the last complete event, not that of
 * an event the broken connection cut off; and after a restart, events
 * without an id of their own carry it. Pings keep it. */
static void test_sse_parser_last_id_and_restart(void **state)
{
    (void)state;
    cli_sse_parser p;
    rk_buf out = {0};
    cli_sse_parser_init(&p, 0);
    const char *s1 = ": subscribed\n\nid: e-1\nevent: updated\ndata: {}\n\n: ping\n\nid: e-2\nda";
    feed_ok(&p, s1, strlen(s1), &out);
    assert_string_equal(cli_sse_parser_last_id(&p), "e-1");
    cli_sse_parser_restart(&p);    /* the connection broke mid-event */
    const char *s2 = "ta: {}\n\n"; /* the start of the new stream, not the old line's end */
    feed_ok(&p, s2, strlen(s2), &out);
    const char *s3 = ": subscribed\r\n\r\nevent: reset\r\ndata: {\"table\":\"t\"}\r\n";
    feed_ok(&p, s3, strlen(s3), &out);
    cli_sse_parser_restart(&p); /* a CR at the end, then a new stream */
    feed_ok(&p, "data: a\r", 8, &out);
    cli_sse_parser_restart(&p);
    feed_ok(&p, "\ndata: b\n\n", 10, &out);
    /* "ta: {}" is an unknown field; the reset was cut off; "data: a" was
     * cut off; the LF after the restart is a blank line, not a CRLF's end. */
    assert_string_equal(out.data, "updated|e-1|{};message|e-1|b;");
    assert_string_equal(cli_sse_parser_last_id(&p), "e-1");
    rk_buf_free(&out);
    cli_sse_parser_fini(&p);
}

static rk_err stop_cb(const cli_sse_event *ev, void *arg)
{
    (void)ev;
    ++*(int *)arg;
    return RK_ECLOSED;
}

static void test_sse_parser_limits_and_stops(void **state)
{
    (void)state;
    cli_sse_parser p;
    rk_buf out = {0};
    /* One line over the limit, even in pieces. */
    cli_sse_parser_init(&p, 16);
    feed_ok(&p, "data: 0123456", 12, &out);
    assert_int_equal(cli_sse_parser_feed(&p, "789abcdef", 9, collect_cb, &out), RK_ETOOBIG);
    cli_sse_parser_fini(&p);
    /* Data over the limit across lines. */
    cli_sse_parser_init(&p, 16);
    assert_int_equal(
        cli_sse_parser_feed(&p, "data: 01234567\ndata: 01234567\n", 30, collect_cb, &out),
        RK_ETOOBIG);
    cli_sse_parser_fini(&p);
    assert_null(out.data);
    /* The callback's error stops the feed at once. */
    int calls = 0;
    cli_sse_parser_init(&p, 0);
    assert_int_equal(cli_sse_parser_feed(&p, "data: 1\n\ndata: 2\n\n", 18, stop_cb, &calls),
                     RK_ECLOSED);
    assert_int_equal(calls, 1);
    cli_sse_parser_fini(&p);
}

/* ---- the lines watch prints -------------------------------------------------- */

static void check_line(const char *type, const char *id, const char *data, bool json,
                       const char *expected)
{
    cli_sse_event ev = {.type = type, .id = id, .data = data, .data_len = strlen(data)};
    rk_buf out = {0};
    assert_int_equal(cli_watch_line(&ev, json, &out), RK_OK);
    assert_string_equal(out.data, expected);
    rk_buf_free(&out);
}

static void test_watch_lines(void **state)
{
    (void)state;
    const char *upd =
        "{\"table\":\"t\",\"key\":\"k\",\"value\":{\"n\": 12345678901234567890,\n"
        "\"s\":\"x\"},\"context\":\"c1\",\"timestamp\":5,\"owner\":\"\",\"siblings\":1}";
    check_line("updated", "c1", upd, false,
               "updated t/k {\"n\": 12345678901234567890, \"s\":\"x\"} context=c1\n");
    check_line("updated", "c1", upd, true,
               "{\"event\":\"updated\",\"id\":\"c1\",\"data\":{\"table\":\"t\",\"key\":\"k\","
               "\"value\":{\"n\": 12345678901234567890, \"s\":\"x\"},\"context\":\"c1\","
               "\"timestamp\":5,\"owner\":\"\",\"siblings\":1}}\n");
    check_line("updated", "",
               "{\"table\":\"t\",\"key\":\"k\",\"value\":\"v\",\"context\":\"c2\","
               "\"siblings\":2}",
               false, "updated t/k \"v\" context=c2 siblings=2\n");
    check_line("deleted", "00000000000000ab-7",
               "{\"table\":\"t\",\"key\":\"two\\nlines\\u001b\",\"deleted\":true,"
               "\"context\":\"c3\",\"timestamp\":6}",
               false, "deleted t/two\\nlines\\x1b context=c3\n");
    check_line("reset", "", "{\"table\":\"t\",\"reason\":\"change log does not cover the id\"}",
               false, "reset t: change log does not cover the id\n");
    check_line("reset", "", "{\"table\":\"t\",\"key\":\"k\",\"reason\":\"node restarted\"}", false,
               "reset t/k: node restarted\n");
    check_line("reset", "", "{\"table\":\"t\",\"reason\":\"r\"}", true,
               "{\"event\":\"reset\",\"id\":null,\"data\":{\"table\":\"t\",\"reason\":\"r\"}}\n");
    /* What this client does not know is shown as it came. */
    check_line("moved", "", "{\"table\":\"t\"}", false, "moved {\"table\":\"t\"}\n");
    check_line("updated", "", "{\"table\":\"t\",\"key\":\"k\"}", false,
               "updated {\"table\":\"t\",\"key\":\"k\"}\n");
    check_line("message", "", "not\njson\x1b", false, "message not\\njson\\x1b\n");
    check_line("message", "", "not json", true,
               "{\"event\":\"message\",\"id\":null,\"data\":\"not json\"}\n");
}

/* ---- watch against scripted nodes -------------------------------------------- */

#define SSE_HEAD                                                                                   \
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"              \
    ": subscribed\n\n"
#define SSE_EVENT(id, key)                                                                         \
    "id: " id "\nevent: updated\ndata: {\"table\":\"t\",\"key\":\"" key                            \
    "\",\"value\":1,\"context\":\"c\"}\n\n: ping\n\n"

/* A port on which nothing listens: bound, then closed. */
static int refused_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

struct watch_run {
    cli_node nodes[3];
    char addr[3][32], url[3][64];
    char *text; /* what watch printed */
    size_t text_len;
    int status;
};

/* Runs watch over the nodes at ports[0..n) for count events. */
static void run_watch(struct watch_run *w, const int *ports, size_t n, uint64_t count)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(w->addr[i], sizeof w->addr[i], "127.0.0.1:%d", ports[i]);
        snprintf(w->url[i], sizeof w->url[i], "http://127.0.0.1:%d", ports[i]);
        w->nodes[i] = (cli_node){.address = w->addr[i], .url = w->url[i]};
    }
    FILE *out = open_memstream(&w->text, &w->text_len);
    assert_non_null(out);
    cli_http *h = open_http();
    cli_watch_options o = {.nodes = w->nodes,
                           .n_nodes = n,
                           .target = "/t/subscribe",
                           .connect_timeout_ms = 2000,
                           .idle_timeout_ms = 3000,
                           .backoff_min_ms = 10,
                           .backoff_max_ms = 40,
                           .count = count,
                           .out = out};
    w->status = cli_watch_run(h, &o);
    cli_http_close(h);
    fclose(out);
}

/* Streams s->canned and closes; then, on a second connection, streams one
 * more event, keeping the second request in s->request. */
static void script_two_streams(struct server *s)
{
    script_canned_eof(s);
    int fd = accept_conn(s);
    if (fd < 0)
        return;
    if (read_request(s, fd))
        send_text(fd, SSE_HEAD SSE_EVENT("e-3", "k3"));
    wait_close(fd);
}

/* The first node streams two events and closes; the second is refused;
 * the third answers 503; the first, asked again, must get the last id. */
static void test_watch_resumes_on_the_next_node(void **state)
{
    (void)state;
    struct server a, busy;
    server_start(&a, script_two_streams, SSE_HEAD SSE_EVENT("e-1", "k1") SSE_EVENT("e-2", "k2"));
    server_start(&busy, script_canned_eof,
                 "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 58\r\n\r\n"
                 "{\"error\":\"too many streams\",\"code\":\"too_many_subscribers\"}");
    struct watch_run w = {0};
    int ports[3] = {a.port, refused_port(), busy.port};
    run_watch(&w, ports, 3, 3);
    server_stop(&a);
    server_stop(&busy);
    assert_int_equal(w.status, EXIT_OK);
    assert_string_equal(w.text, "updated t/k1 1 context=c\n"
                                "updated t/k2 1 context=c\n"
                                "updated t/k3 1 context=c\n");
    assert_int_equal(a.accepts, 2);
    assert_non_null(strstr(a.request, "GET /t/subscribe HTTP/1.1\r\n"));
    assert_non_null(strcasestr(a.request, "\r\nLast-Event-ID: e-2\r\n"));
    assert_non_null(strcasestr(a.request, "\r\nAccept: text/event-stream\r\n"));
    free(w.text);
}

/* A 4xx is final: the other node, which would refuse, is not tried (the
 * exit status would then be 3). */
static void test_watch_stops_on_a_client_error(void **state)
{
    (void)state;
    struct server bad;
    server_start(&bad, script_canned_eof,
                 "HTTP/1.1 400 Bad Request\r\nContent-Length: 40\r\n\r\n"
                 "{\"error\":\"bad table\",\"code\":\"bad_table\"}");
    struct watch_run w = {0};
    int ports[2] = {bad.port, refused_port()};
    run_watch(&w, ports, 2, 0);
    server_stop(&bad);
    assert_int_equal(w.status, EXIT_SERVER);
    assert_int_equal(w.text_len, 0);
    free(w.text);
}

/* Before any stream was open, one round of the nodes is all it tries. */
static void test_watch_gives_up_when_no_node_answers(void **state)
{
    (void)state;
    struct watch_run w = {0};
    int ports[2] = {refused_port(), refused_port()};
    run_watch(&w, ports, 2, 0);
    assert_int_equal(w.status, EXIT_UNREACHABLE);
    free(w.text);
}

/* ---- cluster commands: members ----------------------------------------------- */

static cJSON *parse(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    return j;
}

static void test_members_sorted_by_name_then_id(void **state)
{
    (void)state;
    cJSON *view = parse("{\"members\":["
                        "{\"name\":\"node3\",\"id\":\"03\"},"
                        "{\"id\":\"ff\"},"
                        "{\"name\":\"node10\",\"id\":\"10\"},"
                        "{\"name\":\"node1\",\"id\":\"0b\",\"self\":true},"
                        "{\"name\":\"node1\",\"id\":\"0a\"},"
                        "{\"name\":\"Node2\",\"id\":\"02\"}]}");
    const cJSON **rows = NULL;
    size_t n = 0;
    assert_int_equal(cli_members_sorted(view, &rows, &n), RK_OK);
    assert_int_equal(n, 6);
    /* Byte order: "Node2" before "node1", "node10" before "node3"; equal
     * names by id; a member without a name last. */
    const char *ids[] = {"02", "0a", "0b", "10", "03", "ff"};
    for (size_t i = 0; i < n; i++)
        assert_string_equal(cJSON_GetObjectItem(rows[i], "id")->valuestring, ids[i]);
    free(rows);
    cJSON_Delete(view);

    view = parse("{\"members\":[]}");
    assert_int_equal(cli_members_sorted(view, &rows, &n), RK_OK);
    assert_int_equal(n, 0);
    free(rows);
    cJSON_Delete(view);
    view = parse("{\"error\":\"x\"}");
    assert_int_equal(cli_members_sorted(view, &rows, &n), RK_EINVAL);
    cJSON_Delete(view);
}

static void test_members_to_follow(void **state)
{
    (void)state;
    cJSON *view = parse(
        "{\"members\":["
        "{\"name\":\"a\",\"id\":\"00000000000000AA\",\"http\":\"127.0.0.1:8001\",\"status\":"
        "\"member\"},"
        "{\"name\":\"b\",\"id\":\"00000000000000bb\",\"http\":\"0.0.0.0:8002\",\"status\":"
        "\"leaving\",\"self\":true},"
        "{\"name\":\"c\",\"id\":\"00000000000000cc\",\"http\":\"127.0.0.1:8003\",\"status\":"
        "\"removed\"},"
        "{\"name\":\"d\",\"id\":\"00000000000000dd\",\"http\":\"nowhere\",\"status\":\"joining\"},"
        "{\"name\":\"e\",\"id\":\"00000000000000ee\",\"http\":\"127.0.0.1:8005\",\"status\":"
        "\"member\",\"liveness\":\"down\"}"
        "]}");
    cli_member *m = NULL;
    size_t n = 0;
    assert_int_equal(cli_members_to_follow(view, "localhost:9002", &m, &n), RK_OK);
    assert_int_equal(n, 4); /* c is removed: nothing to ask it */
    assert_string_equal(m[0].name, "a");
    assert_string_equal(m[0].url, "http://127.0.0.1:8001");
    assert_false(m[0].self);
    /* The node that answered is asked where the user reached it. */
    assert_string_equal(m[1].name, "b");
    assert_true(m[1].self);
    assert_string_equal(m[1].address, "localhost:9002");
    assert_string_equal(m[1].url, "http://localhost:9002");
    /* An address the CLI cannot use is kept, without a URL. */
    assert_string_equal(m[2].name, "d");
    assert_string_equal(m[2].address, "nowhere");
    assert_null(m[2].url);
    assert_false(m[2].down);
    assert_string_equal(m[3].name, "e");
    assert_true(m[3].down); /* as the node that answered sees it */
    assert_int_equal(cli_members_find(m, n, "00000000000000aa"), 0);
    assert_int_equal(cli_members_find(m, n, "00000000000000BB"), 1);
    assert_int_equal(cli_members_find(m, n, "00000000000000cc"), n);
    assert_int_equal(cli_members_find(m, n, ""), n);
    assert_int_equal(cli_members_find(m, n, NULL), n);
    cli_members_free(m, n);
    cJSON_Delete(view);
}

/* ---- cluster commands: following a change -------------------------------------- */

static void test_change_sample_of(void **state)
{
    (void)state;
    cJSON *view = parse("{\"node\":\"b\",\"partitions\":65536,\"ring_version\":\"00ff\","
                        "\"members\":[{\"id\":\"aa\",\"status\":\"member\"},"
                        "{\"id\":\"BB\",\"status\":\"leaving\"}],"
                        "\"sync\":{\"ranges_pending\":1200,\"handoff_keys_sent\":77,"
                        "\"keys_received\":5,\"leaving\":true}}");
    cli_change_sample s;
    assert_int_equal(cli_change_sample_of(view, "bb", &s), RK_OK);
    assert_true(s.answered);
    assert_string_equal(s.target_status, "leaving");
    assert_string_equal(s.ring_version, "00ff");
    assert_int_equal(s.partitions, 65536);
    assert_int_equal(s.ranges_pending, 1200);
    assert_int_equal(s.handoff_keys_sent, 77);
    assert_int_equal(s.keys_received, 5);
    /* Before the target is known, and for one the view does not list. */
    assert_int_equal(cli_change_sample_of(view, NULL, &s), RK_OK);
    assert_string_equal(s.target_status, "");
    assert_int_equal(cli_change_sample_of(view, "cc", &s), RK_OK);
    assert_string_equal(s.target_status, "");
    cJSON_Delete(view);

    /* No sync object, or odd counters: none counted. */
    view = parse("{\"members\":[],\"sync\":{\"ranges_pending\":-3,\"keys_received\":\"9\"}}");
    assert_int_equal(cli_change_sample_of(view, "aa", &s), RK_OK);
    assert_int_equal(s.ranges_pending, 0);
    assert_int_equal(s.keys_received, 0);
    assert_string_equal(s.ring_version, "");
    cJSON_Delete(view);
    view = parse("{\"error\":\"no\"}");
    assert_int_equal(cli_change_sample_of(view, "aa", &s), RK_EINVAL);
    cJSON_Delete(view);
}

static cli_change_sample sample(const char *target_status, const char *version, uint64_t pending,
                                uint64_t sent, uint64_t received)
{
    cli_change_sample s = {.answered = true,
                           .partitions = 65536,
                           .ranges_pending = pending,
                           .handoff_keys_sent = sent,
                           .keys_received = received};
    snprintf(s.target_status, sizeof s.target_status, "%s", target_status);
    snprintf(s.ring_version, sizeof s.ring_version, "%s", version);
    return s;
}

static const cli_change_sample no_answer = {.answered = false};

/* One round: samples[i] for member i. */
static void round_with(cli_change *c, const cli_change_sample *samples, cli_change_progress *p)
{
    cli_change_begin_round(c);
    for (size_t i = 0; i < c->n; i++)
        cli_change_observe(c, i, &samples[i]);
    cli_change_progress_of(c, p);
}

static void assert_line(const cli_change *c, const cli_change_progress *p, uint64_t ms,
                        const char *expected)
{
    rk_buf b = {0};
    assert_int_equal(cli_change_line(c, p, ms, &b), RK_OK);
    assert_string_equal(b.data, expected);
    rk_buf_free(&b);
}

/* node2 of three leaves: from the counters before, through the handoff
 * and the news spreading, to the members agreeing on the ring. */
static void test_change_leave(void **state)
{
    (void)state;
    cli_change c;
    cli_change_progress p;
    assert_int_equal(cli_change_init(&c, CLI_CHANGE_LEAVE, NULL, 3), RK_OK);
    /* Before the POST: member 0 answered the view; nobody is the target yet. */
    cli_change_sample before[] = {sample("", "v1", 0, 1000, 50), sample("", "v1", 0, 7, 10),
                                  sample("", "v1", 0, 0, 20)};
    round_with(&c, before, &p);
    snprintf(c.target, sizeof c.target, "node2");
    cli_change_set_target(&c, 0);

    /* Accepted, before its first pass counted the ranges: all are owed. */
    cli_change_sample r1[] = {sample("leaving", "v1", 0, 1000, 50),
                              sample("leaving", "v1", 0, 7, 10), sample("member", "v1", 0, 0, 20)};
    round_with(&c, r1, &p);
    assert_int_equal(p.phase, CLI_CHANGE_HANDOFF);
    assert_int_equal(p.ranges_total, 65536);
    assert_int_equal(p.ranges_pending, 65536);
    assert_int_equal(p.ranges_done, 0);
    assert_int_equal(p.keys_moved, 0);
    assert_line(&c, &p, 40,
                "node2 leaving: 65536 ranges pending (0 of 65536 done), 0 keys moved, 0.0 s");

    /* Handing off: 100 keys sent, 90 of them new to the others. */
    cli_change_sample r2[] = {sample("leaving", "v1", 41234, 1100, 50),
                              sample("leaving", "v1", 0, 7, 70), sample("leaving", "v1", 0, 0, 50)};
    round_with(&c, r2, &p);
    assert_int_equal(p.phase, CLI_CHANGE_HANDOFF);
    assert_int_equal(p.ranges_pending, 41234);
    assert_int_equal(p.ranges_done, 65536 - 41234);
    assert_int_equal(p.keys_moved, 100);
    assert_int_equal(p.answering, 2);
    assert_int_equal(p.knowing, 0);
    assert_line(&c, &p, 1234,
                "node2 leaving: 41234 ranges pending (24302 of 65536 done), 100 keys moved, 1.2 s");

    /* Done in its own view; the others do not know yet. Anti-entropy
     * makes the receivers count more than was sent. */
    cli_change_sample r3[] = {sample("removed", "v2", 0, 1100, 50),
                              sample("leaving", "v1", 0, 7, 90), sample("leaving", "v1", 0, 0, 60)};
    round_with(&c, r3, &p);
    assert_int_equal(p.phase, CLI_CHANGE_SPREADING);
    assert_int_equal(p.ranges_done, 65536);
    assert_int_equal(p.ranges_pending, 0);
    assert_int_equal(p.keys_moved, 120);
    assert_line(&c, &p, 2000,
                "node2 removed, 0 of 2 members know: 0 ranges pending (65536 of 65536 done), "
                "120 keys moved, 2.0 s");

    /* It has stopped; one other knows. */
    cli_change_sample r4[] = {no_answer, sample("removed", "v2", 0, 7, 90),
                              sample("leaving", "v1", 0, 0, 60)};
    round_with(&c, r4, &p);
    assert_int_equal(p.phase, CLI_CHANGE_SPREADING);
    assert_int_equal(p.knowing, 1);
    assert_int_equal(p.keys_moved, 120); /* its last counters still count */

    /* Both know, but one still builds the old ring: not settled. */
    cli_change_sample r5[] = {no_answer, sample("removed", "v2", 0, 7, 90),
                              sample("removed", "v1", 0, 0, 60)};
    round_with(&c, r5, &p);
    assert_int_equal(p.phase, CLI_CHANGE_SETTLING);
    assert_line(&c, &p, 3000,
                "node2 removed, waiting for 2 members to agree: 0 ranges pending "
                "(65536 of 65536 done), 120 keys moved, 3.0 s");
    /* ... or has ranges left to send. */
    cli_change_sample r6[] = {no_answer, sample("removed", "v2", 0, 7, 90),
                              sample("removed", "v2", 3, 0, 60)};
    round_with(&c, r6, &p);
    assert_int_equal(p.phase, CLI_CHANGE_SETTLING);
    assert_int_equal(p.ranges_pending, 3);

    cli_change_sample r7[] = {no_answer, sample("removed", "v2", 0, 7, 90),
                              sample("removed", "v2", 0, 0, 60)};
    round_with(&c, r7, &p);
    assert_int_equal(p.phase, CLI_CHANGE_DONE);
    assert_int_equal(cli_change_percent(&p), 100);
    rk_buf b = {0};
    assert_int_equal(cli_change_summary(&c, &p, 4200, &b), RK_OK);
    assert_string_equal(b.data, "node2 left: 65536 ranges handed off, 120 keys moved in 4.2 s");
    rk_buf_free(&b);
    cli_change_fini(&c);
}

/* A leave so quick that no round saw a range pending still ends with
 * every range handed off; with nobody else answering it never settles. */
static void test_change_leave_unseen_handoff_and_no_witness(void **state)
{
    (void)state;
    cli_change c;
    cli_change_progress p;
    assert_int_equal(cli_change_init(&c, CLI_CHANGE_LEAVE, "n2", 2), RK_OK);
    cli_change_set_target(&c, 1);
    cli_change_sample r1[] = {no_answer, sample("removed", "v2", 0, 0, 0)};
    round_with(&c, r1, &p);
    assert_int_equal(p.phase, CLI_CHANGE_SPREADING);
    assert_int_equal(p.answering, 0);
    assert_int_equal(p.ranges_done, 65536);
    assert_line(&c, &p, 100,
                "n2 removed, no other member answers: 0 ranges pending (65536 of 65536 done), "
                "0 keys moved, 0.1 s");
    cli_change_sample r2[] = {no_answer, no_answer};
    round_with(&c, r2, &p);
    assert_int_not_equal(p.phase, CLI_CHANGE_DONE);
    cli_change_sample r3[] = {sample("removed", "v2", 0, 0, 0), no_answer};
    round_with(&c, r3, &p);
    assert_int_equal(p.phase, CLI_CHANGE_DONE);
    cli_change_fini(&c);
}

/* Other members hand ranges on too while a node leaves: their pending
 * ranges keep the change from settling but are not the leaving node's
 * work. Its progress stays out of the ring's 65536 ranges (it once read
 * "37253 of 67525 done", the others' pending added to the total). */
static void test_change_leave_with_others_pending(void **state)
{
    (void)state;
    cli_change c;
    cli_change_progress p;
    assert_int_equal(cli_change_init(&c, CLI_CHANGE_LEAVE, "n2", 3), RK_OK);
    cli_change_set_target(&c, 1);
    cli_change_sample r1[] = {sample("leaving", "v1", 0, 0, 0),
                              sample("leaving", "v1", 65536, 0, 0),
                              sample("leaving", "v1", 0, 0, 0)};
    round_with(&c, r1, &p);
    cli_change_sample r2[] = {sample("leaving", "v1", 1989, 0, 10),
                              sample("leaving", "v1", 30272, 500, 0),
                              sample("leaving", "v1", 0, 0, 20)};
    round_with(&c, r2, &p);
    assert_int_equal(p.ranges_total, 65536);
    assert_int_equal(p.ranges_pending, 30272 + 1989);
    assert_int_equal(p.ranges_done, 65536 - 30272);
    assert_line(&c, &p, 1000,
                "n2 leaving: 32261 ranges pending (35264 of 65536 done), 500 keys moved, 1.0 s");
    cli_change_fini(&c);
}

/* A dead node3 is removed: the survivors hand off what the new ring
 * needs, and keys moved counts what they sent or received. */
static void test_change_remove(void **state)
{
    (void)state;
    cli_change c;
    cli_change_progress p;
    assert_int_equal(cli_change_init(&c, CLI_CHANGE_REMOVE, NULL, 3), RK_OK);
    cli_change_sample before[] = {sample("member", "v1", 0, 0, 500), no_answer,
                                  sample("member", "v1", 0, 40, 0)};
    round_with(&c, before, &p);
    snprintf(c.target, sizeof c.target, "node3");
    cli_change_set_target(&c, 1);

    cli_change_sample r1[] = {sample("removed", "v2", 300, 0, 500), no_answer,
                              sample("member", "v1", 0, 40, 0)};
    round_with(&c, r1, &p);
    assert_int_equal(p.phase, CLI_CHANGE_SPREADING);
    assert_int_equal(p.answering, 2);
    assert_int_equal(p.knowing, 1);
    assert_int_equal(p.ranges_total, 300);
    assert_int_equal(p.ranges_done, 0);
    assert_line(&c, &p, 200,
                "node3 removed, 1 of 2 members know: 300 ranges pending (0 of 300 done), "
                "0 keys moved, 0.2 s");

    cli_change_sample r2[] = {sample("removed", "v2", 100, 0, 520), no_answer,
                              sample("removed", "v2", 50, 40, 10)};
    round_with(&c, r2, &p);
    assert_int_equal(p.phase, CLI_CHANGE_SETTLING);
    assert_int_equal(p.ranges_total, 350); /* each member's most */
    assert_int_equal(p.ranges_pending, 150);
    assert_int_equal(p.ranges_done, 200);
    assert_int_equal(p.keys_moved, 30);

    cli_change_sample r3[] = {sample("removed", "v2", 0, 0, 530), no_answer,
                              sample("removed", "v2", 0, 40, 10)};
    round_with(&c, r3, &p);
    assert_int_equal(p.phase, CLI_CHANGE_DONE);
    rk_buf b = {0};
    assert_int_equal(cli_change_summary(&c, &p, 900, &b), RK_OK);
    assert_string_equal(b.data, "node3 removed: 2 members agree on the ring, 350 ranges handed "
                                "off, 40 keys moved in 0.9 s");
    rk_buf_free(&b);

    /* A member that restarted (its counters from 0 again) adds nothing. */
    cli_change_sample r4[] = {sample("removed", "v2", 0, 0, 3), no_answer,
                              sample("removed", "v2", 0, 40, 10)};
    round_with(&c, r4, &p);
    assert_int_equal(p.keys_moved, 10);
    cli_change_fini(&c);
}

static void assert_bar(const cli_change *c, const cli_change_progress *p, int width,
                       const char *expected)
{
    rk_buf b = {0};
    assert_int_equal(cli_change_bar(c, p, 1500, width, &b), RK_OK);
    assert_string_equal(b.data, expected);
    rk_buf_free(&b);
}

static void test_change_bar(void **state)
{
    (void)state;
    cli_change c = {.kind = CLI_CHANGE_LEAVE, .target = "node2"};
    cli_change_progress p = {.phase = CLI_CHANGE_HANDOFF,
                             .ranges_total = 65536,
                             .ranges_pending = 65536,
                             .answering = 3};
    assert_bar(&c, &p, 10,
               "node2 leaving [----------]   0% 65536 ranges pending, 0 keys moved, 1.5 s");
    p.ranges_done = 29492; /* 45.0006%: shown as 45 */
    p.ranges_pending = 65536 - 29492;
    p.keys_moved = 5120;
    assert_bar(&c, &p, 20,
               "node2 leaving [#########-----------]  45% 36044 ranges pending, 5120 keys moved, "
               "1.5 s");
    /* Every range handed off, but not settled: short of 100%. */
    p.phase = CLI_CHANGE_SPREADING;
    p.ranges_done = 65536;
    p.ranges_pending = 0;
    p.knowing = 1;
    assert_int_equal(cli_change_percent(&p), 99);
    assert_bar(&c, &p, 4,
               "node2 removed, 1 of 3 members know [###-]  99% 0 ranges pending, 5120 keys "
               "moved, 1.5 s");
    p.phase = CLI_CHANGE_DONE;
    assert_bar(&c, &p, 4, "node2 left [####] 100% 0 ranges pending, 5120 keys moved, 1.5 s");
    assert_bar(&c, &p, 0, "node2 left [#] 100% 0 ranges pending, 5120 keys moved, 1.5 s");

    /* Nothing to hand off (a remove): the share of members that know. */
    cli_change r = {.kind = CLI_CHANGE_REMOVE, .target = "node3"};
    cli_change_progress q = {.phase = CLI_CHANGE_SPREADING, .answering = 4, .knowing = 1};
    assert_int_equal(cli_change_percent(&q), 25);
    q.answering = 0;
    q.knowing = 0;
    assert_int_equal(cli_change_percent(&q), 0);
    q.phase = CLI_CHANGE_DONE;
    assert_int_equal(cli_change_percent(&q), 100);
    assert_bar(&r, &q, 2, "node3 removed [##] 100% 0 ranges pending, 0 keys moved, 1.5 s");
}

static void test_change_worth_a_line(void **state)
{
    (void)state;
    cli_change_progress last = {
        .phase = CLI_CHANGE_HANDOFF, .ranges_pending = 100, .ranges_done = 10, .answering = 3};
    cli_change_progress now = last;
    assert_true(cli_change_worth_a_line(NULL, &now, 0)); /* the first */
    /* Nothing changed: no line, however long ago the last was. */
    assert_false(cli_change_worth_a_line(&last, &now, 0));
    assert_false(cli_change_worth_a_line(&last, &now, 60000));
    /* Only the numbers moved: a line at most every second. */
    now.ranges_pending = 90;
    now.ranges_done = 20;
    assert_false(cli_change_worth_a_line(&last, &now, CLI_CHANGE_LINE_EVERY_MS - 1));
    assert_true(cli_change_worth_a_line(&last, &now, CLI_CHANGE_LINE_EVERY_MS));
    now = last;
    now.keys_moved = 1;
    assert_true(cli_change_worth_a_line(&last, &now, CLI_CHANGE_LINE_EVERY_MS));
    /* A new phase, or another member that knows: at once. */
    now = last;
    now.phase = CLI_CHANGE_SPREADING;
    assert_true(cli_change_worth_a_line(&last, &now, 0));
    now = last;
    now.knowing = 1;
    assert_true(cli_change_worth_a_line(&last, &now, 0));
    now = last;
    now.answering = 2;
    assert_true(cli_change_worth_a_line(&last, &now, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_url),
        cmocka_unit_test(test_header_lookup),
        cmocka_unit_test(test_requests_share_one_connection),
        cmocka_unit_test(test_request_with_body_and_headers),
        cmocka_unit_test(test_body_streams_through_callback),
        cmocka_unit_test(test_callback_error_stops_the_transfer),
        cmocka_unit_test(test_body_over_the_limit),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_refused_connection_says_so),
        cmocka_unit_test(test_malformed_requests_are_refused),
        cmocka_unit_test(test_sse_parser_any_split),
        cmocka_unit_test(test_sse_parser_last_id_and_restart),
        cmocka_unit_test(test_sse_parser_limits_and_stops),
        cmocka_unit_test(test_watch_lines),
        cmocka_unit_test(test_watch_resumes_on_the_next_node),
        cmocka_unit_test(test_watch_stops_on_a_client_error),
        cmocka_unit_test(test_watch_gives_up_when_no_node_answers),
        cmocka_unit_test(test_members_sorted_by_name_then_id),
        cmocka_unit_test(test_members_to_follow),
        cmocka_unit_test(test_change_sample_of),
        cmocka_unit_test(test_change_leave),
        cmocka_unit_test(test_change_leave_unseen_handoff_and_no_witness),
        cmocka_unit_test(test_change_leave_with_others_pending),
        cmocka_unit_test(test_change_remove),
        cmocka_unit_test(test_change_bar),
        cmocka_unit_test(test_change_worth_a_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
