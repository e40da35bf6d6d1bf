/* sse.h - an incremental parser of Server-Sent Events streams, private to
 * the ringkv CLI. Pure: it turns bytes into events and does no I/O, so the
 * unit tests feed it any split of a stream. */
#ifndef RINGKV_CLI_SSE_H
#define RINGKV_CLI_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "ringkv/common.h"

/* One event, as the EventSource algorithm of the HTML standard dispatches
 * it. The pointers are into the parser and live until the callback
 * returns. */
typedef struct cli_sse_event {
    const char *type; /* the "event:" field; "message" when there was none */
    const char *data; /* the "data:" lines joined with '\n', NUL-terminated */
    size_t data_len;
    const char *id; /* the last event id as of this event; "" when none */
} cli_sse_event;

/* Runs once per event. Anything but RK_OK stops cli_sse_parser_feed, which
 * returns it. */
typedef rk_err (*cli_sse_event_cb)(const cli_sse_event *ev, void *arg);

/* The parser's state between pieces of a stream. Read it only through the
 * functions below. */
typedef struct cli_sse_parser {
    rk_buf line;     /* the line being read, without its end */
    rk_buf data;     /* the event's data lines, each followed by '\n' */
    rk_buf type;     /* the event's "event:" field */
    rk_buf id;       /* the "id:" field last read (the "last event ID buffer") */
    rk_buf last_id;  /* id as of the last blank line: what a reconnect sends */
    bool skip_lf;    /* the previous piece ended with CR: a leading LF ends no line */
    bool first_line; /* a byte-order mark is skipped only at the start */
    size_t max_len;  /* bytes of one line or one event's data beyond which feed fails */
} cli_sse_parser;

/* Readies p for a stream (free with cli_sse_parser_fini). max_len bounds
 * one line and one event's data: 0 means CLI_SSE_DEFAULT_MAX. */
#define CLI_SSE_DEFAULT_MAX ((size_t)64 << 20)
void cli_sse_parser_init(cli_sse_parser *p, size_t max_len);

/* Frees what the parser holds; p may then be initialised again. */
void cli_sse_parser_fini(cli_sse_parser *p);

/* Forgets a partly read line or event, for a new connection; keeps the
 * last event id, which the new connection sends as Last-Event-ID. */
void cli_sse_parser_restart(cli_sse_parser *p);

/* Parses data[0..len), the next piece of the stream, split anywhere (even
 * between CR and LF), running cb for each complete event. Lines end with
 * CRLF, LF or CR; lines that start with ':' (comments: ": ping") and
 * unknown fields are ignored; an "id:" containing NUL is ignored, as the
 * standard says. Returns RK_OK; RK_ETOOBIG when a line or an event's data
 * grows past max_len; RK_ENOMEM; or what cb returned. After an error the
 * stream cannot go on: restart or fini. */
rk_err cli_sse_parser_feed(cli_sse_parser *p, const char *data, size_t len, cli_sse_event_cb cb,
                           void *arg);

/* The last event id ("" when none): the id field as of the last complete
 * event or blank line, never one of an event cut off by a broken
 * connection. Valid until the next feed, restart or fini. */
const char *cli_sse_parser_last_id(const cli_sse_parser *p);

#endif
