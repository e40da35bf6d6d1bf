/* watch.c - `ringkv watch`: one Server-Sent Events stream kept open across
 * the nodes of --nodes, resumed with Last-Event-ID wherever it breaks.
 *
 * The attempts, one node at a time:
 *
 *        start ──> CONNECTING ──200 event stream──> STREAMING
 *                   │    ^  │                          │
 *   unreachable, 5xx│    │  │4xx, other answer         │EOF, reset, idle
 *                   v    │  v                          v
 *                 PAUSE ─┘  FINAL (exit 4)           PAUSE ──> CONNECTING
 *                   │                                           (next node)
 *                   └─ a whole round failed before any stream ─> exit 3 or 4
 *
 * Transitions: CONNECTING -> STREAMING in body_cb (first piece of a 200
 * text/event-stream); STREAMING -> PAUSE and CONNECTING -> PAUSE|FINAL in
 * attempt(); PAUSE -> CONNECTING in cli_watch_run (pause_ms, the next
 * node). From any state: --count events printed (event_cb) or SIGINT or
 * SIGTERM (on_signal, seen by libcurl's progress callback or pause_ms) ->
 * exit 0. */
#include "cli_internal.h"
#include "sse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ERROR_BODY_MAX 4096 /* of an error answer, for its message */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct watch {
    const cli_watch_options *o;
    const cli_node *node; /* of the current attempt */
    cli_sse_parser parser;
    rk_buf line;       /* the line being printed */
    rk_buf error_body; /* the start of an error answer's body */
    uint64_t printed;  /* events printed, all attempts */
    uint64_t events;   /* events printed in this attempt */
    bool streaming;    /* this attempt has a 200 event stream */
    bool not_stream;   /* this attempt was answered 200, not with an event stream */
    bool done;         /* --count events printed */
    bool out_failed;   /* o->out refused a line */
    rk_err parse_err;  /* why the parser refused the stream, or RK_OK */
};

static rk_err event_cb(const cli_sse_event *ev, void *arg)
{
    struct watch *w = arg;
    rk_buf_reset(&w->line);
    rk_err err = cli_watch_line(ev, w->o->json, &w->line);
    if (err != RK_OK)
        return err;
    /* Flushed line by line: stdout is often a pipe to a script that acts
     * on each change, and would otherwise see them 4 KiB at a time. */
    if (fwrite(w->line.data, 1, w->line.len, w->o->out) != w->line.len || fflush(w->o->out) != 0) {
        w->out_failed = true;
        return RK_EIO;
    }
    w->printed++;
    w->events++;
    if (w->o->count != 0 && w->printed >= w->o->count) {
        w->done = true;
        return RK_ECLOSED;
    }
    return RK_OK;
}

static rk_err body_cb(const cli_http_response *resp, const char *data, size_t len, void *arg)
{
    struct watch *w = arg;
    if (resp->status != 200) {
        size_t room = ERROR_BODY_MAX - w->error_body.len;
        return rk_buf_append(&w->error_body, data, len < room ? len : room);
    }
    if (!w->streaming) {
        size_t ct_len = 0;
        const char *ct = cli_http_header(resp, "Content-Type", &ct_len);
        if (ct == NULL || ct_len < 17 || strncasecmp(ct, "text/event-stream", 17) != 0) {
            w->not_stream = true;
            return RK_EUNSUPPORTED;
        }
        w->streaming = true;
        if (w->o->verbose) {
            const char *id = cli_sse_parser_last_id(&w->parser);
            fprintf(stderr, "ringkv: watching via node %s%s%s%s\n", w->node->address,
                    id[0] ? " (Last-Event-ID: " : "", id, id[0] ? ")" : "");
        }
    }
    rk_err err = cli_sse_parser_feed(&w->parser, data, len, event_cb, w);
    if (err != RK_OK && !w->done && !w->out_failed)
        w->parse_err = err;
    return err;
}

/* Sleeps ms, or less when SIGINT or SIGTERM comes. False if one came. */
static bool pause_ms(int ms)
{
    struct timespec left = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (!stop_requested && nanosleep(&left, &left) != 0 && errno == EINTR)
        continue;
    return !stop_requested;
}

enum attempt_result {
    ATTEMPT_STOP,   /* done: exit with *status */
    ATTEMPT_STREAM, /* a stream was open and ended: resume */
    ATTEMPT_FAILED, /* no stream: try the next node */
};

/* One request to w->node. Messages name `next`, the node tried after it;
 * `last` says no node is tried after a failure (the round is over). */
static enum attempt_result attempt(struct watch *w, cli_http *h, const char *const *headers,
                                   const char *next, bool last, int *status)
{
    const cli_watch_options *o = w->o;
    const char *addr = w->node->address;
    rk_buf url = {0};
    cli_http_response r = {0};
    char why[256] = "";
    enum attempt_result result = ATTEMPT_FAILED;
    w->streaming = w->not_stream = false;
    w->events = 0;
    w->parse_err = RK_OK;
    rk_buf_reset(&w->error_body);
    cli_sse_parser_restart(&w->parser);

    rk_err err = rk_buf_appendf(&url, "%s%s", w->node->url, o->target);
    if (err == RK_OK) {
        cli_http_request req = {
            .method = "GET",
            .url = url.data,
            .headers = headers,
            .timeout_ms = 0, /* a stream has no deadline; idle_timeout_ms watches it */
            .connect_timeout_ms = o->connect_timeout_ms,
            .idle_timeout_ms = o->idle_timeout_ms,
            .on_body = body_cb,
            .on_body_arg = w,
            .cancel = &stop_requested,
        };
        err = cli_http_request_do(h, &req, &r, why, sizeof why);
    } else {
        snprintf(why, sizeof why, "out of memory");
    }
    rk_buf_free(&url);

    *status = EXIT_SERVER;
    if (w->done || (err == RK_ECLOSED && stop_requested)) {
        *status = EXIT_OK;
        result = ATTEMPT_STOP;
    } else if (w->out_failed) {
        result = ATTEMPT_STOP; /* main reports that stdout failed */
    } else if (w->parse_err == RK_ETOOBIG) {
        fprintf(stderr, "ringkv: node %s sent an event over %zu bytes\n", addr, w->parser.max_len);
        result = ATTEMPT_STOP;
    } else if (w->parse_err != RK_OK || err == RK_ENOMEM || err == RK_EINVAL) {
        fprintf(stderr, "ringkv: %s\n", w->parse_err == RK_ENOMEM ? "out of memory" : why);
        result = ATTEMPT_STOP;
    } else if (w->not_stream) {
        fprintf(stderr, "ringkv: node %s answered 200 but not with an event stream\n", addr);
        result = ATTEMPT_STOP;
    } else if (err == RK_OK && r.status != 200 && !(r.status >= 500 && r.status <= 599)) {
        /* 4xx: the request is wrong, and would be on every node. */
        cli_http_response answer = {.status = r.status, .body = w->error_body};
        char msg[512];
        cli_http_error_summary(&answer, msg, sizeof msg);
        fprintf(stderr, "ringkv: node %s answered %d: %s\n", addr, r.status, msg);
        result = ATTEMPT_STOP;
    } else if (err == RK_OK && r.status != 200) {
        /* 503 too_many_subscribers, or a node shutting down: another may serve. */
        cli_http_response answer = {.status = r.status, .body = w->error_body};
        char msg[512];
        cli_http_error_summary(&answer, msg, sizeof msg);
        fprintf(stderr, "ringkv: node %s answered %d: %s%s%s\n", addr, r.status, msg,
                last ? "" : ", trying ", last ? "" : next);
        result = last ? ATTEMPT_STOP : ATTEMPT_FAILED;
    } else if (w->streaming && err == RK_OK) {
        fprintf(stderr, "ringkv: node %s closed the stream; resuming from %s\n", addr, next);
        result = ATTEMPT_STREAM;
    } else if (w->streaming) {
        fprintf(stderr, "ringkv: node %s broke the stream (%s); resuming from %s\n", addr, why,
                next);
        result = ATTEMPT_STREAM;
    } else {
        if (err == RK_OK) /* a 200 with an empty body: no subscription */
            snprintf(why, sizeof why, "empty answer");
        fprintf(stderr, "ringkv: node %s unreachable: %s%s%s\n", addr, why, last ? "" : ", trying ",
                last ? "" : next);
        result = ATTEMPT_FAILED;
        *status = EXIT_UNREACHABLE;
    }
    cli_http_response_free(&r);
    return result;
}

/* Sets on_signal for SIGINT and SIGTERM, keeping the old actions in old[2].
 * SA_RESTART keeps a write to stdout from failing with EINTR; poll (inside
 * libcurl) and nanosleep return early whatever it says, which is what
 * makes a stop quick. */
static void catch_signals(struct sigaction old[2])
{
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old[0]);
    sigaction(SIGTERM, &sa, &old[1]);
}

/* The request's headers, NULL-terminated, malloc'd (free() the array; the
 * strings are o's, and last_event_id's). NULL when out of memory. */
static const char **make_headers(const cli_watch_options *o, const char *last_event_id)
{
    size_t n = 0;
    while (o->headers != NULL && o->headers[n] != NULL)
        n++;
    const char **list = calloc(n + 4, sizeof *list);
    if (list == NULL)
        return NULL;
    size_t k = 0;
    list[k++] = "Accept: text/event-stream";
    list[k++] = "Cache-Control: no-cache";
    for (size_t i = 0; i < n; i++)
        list[k++] = o->headers[i];
    if (last_event_id != NULL)
        list[k++] = last_event_id;
    list[k] = NULL;
    return list;
}

int cli_watch_run(cli_http *h, const cli_watch_options *o)
{
    struct watch w = {.o = o};
    cli_sse_parser_init(&w.parser, 0);
    struct sigaction old[2];
    stop_requested = 0;
    catch_signals(old);

    int status = EXIT_OK, delay = 0;
    bool ever_streamed = false, busy = false;
    size_t failed = 0; /* attempts in a row without a stream */
    rk_buf id_header = {0};
    for (size_t i = 0;; i = (i + 1) % o->n_nodes) {
        if ((delay > 0 && !pause_ms(delay)) || stop_requested) {
            status = EXIT_OK;
            break;
        }
        const char *id = cli_sse_parser_last_id(&w.parser);
        rk_buf_reset(&id_header);
        const char **headers = NULL;
        if ((id[0] == '\0' || rk_buf_appendf(&id_header, "Last-Event-ID: %s", id) == RK_OK))
            headers = make_headers(o, id[0] ? id_header.data : NULL);
        if (headers == NULL) {
            fputs("ringkv: out of memory\n", stderr);
            status = EXIT_SERVER;
            break;
        }
        w.node = &o->nodes[i];
        const char *next = o->nodes[(i + 1) % o->n_nodes].address;
        bool last = !ever_streamed && failed + 1 >= o->n_nodes;
        uint64_t started = rk_monotonic_ms();
        enum attempt_result res = attempt(&w, h, headers, next, last, &status);
        free(headers);
        if (res == ATTEMPT_STOP)
            break;
        busy |= res == ATTEMPT_FAILED && status == EXIT_SERVER; /* a 5xx */
        if (res == ATTEMPT_STREAM) {
            ever_streamed = true;
            failed = 0;
        } else if (last) {
            /* A whole round of nodes and no stream: give up, as the other
             * commands do, rather than retry a typo in --nodes forever. */
            fprintf(stderr, "ringkv: no node reachable (tried %zu: ", o->n_nodes);
            for (size_t k = 0; k < o->n_nodes; k++)
                fprintf(stderr, "%s%s", k ? ", " : "", o->nodes[k].address);
            fputs(")\n", stderr);
            status = busy ? EXIT_SERVER : EXIT_UNREACHABLE;
            break;
        } else {
            failed++;
        }
        /* Back off while attempts keep failing; a stream that delivered
         * an event or stayed open a while starts the backoff over. */
        bool healthy = w.events > 0 ||
                       (w.streaming && rk_monotonic_ms() - started >= (uint64_t)o->backoff_max_ms);
        if (healthy || delay == 0)
            delay = o->backoff_min_ms;
        else
            delay = delay * 2 < o->backoff_max_ms ? delay * 2 : o->backoff_max_ms;
    }
    sigaction(SIGINT, &old[0], NULL);
    sigaction(SIGTERM, &old[1], NULL);
    rk_buf_free(&id_header);
    rk_buf_free(&w.line);
    rk_buf_free(&w.error_body);
    cli_sse_parser_fini(&w.parser);
    return status;
}
