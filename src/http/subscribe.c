/* subscribe.c - GET /{table}/subscribe[/{key}]: live updates as
 * Server-Sent Events.
 *
 * civetweb keeps a connection exactly as long as its handler runs, so a
 * stream holds its worker for its whole life, parked on its watch stream
 * and woken for each event; the worker is the only writer of its
 * connection, so a client that stops reading blocks nobody else. Workers
 * for streams come on top of the ones REST requests use (server.c starts
 * --http-threads + --max-subscribers), and the watch module refuses a
 * stream over --max-subscribers: streams never take the workers REST needs.
 * A stream that falls a full queue behind is dropped (the client resumes
 * with Last-Event-ID). docs/live-updates.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

/* A comment every 5 s of quiet: proxies keep an idle stream open (they
 * need one at least every 15 s or so), and a client that went away is
 * noticed, which frees its worker and its place under --max-subscribers.
 * The ping goes out in two writes: after a client closed, the first write
 * still succeeds and only draws its reset, and the second then fails; on
 * loopback, and on any link once the reset is back, that is at the first
 * ping (else the next). */
#define PING_MS 5000u
/* Keys one multi-key stream may name. */
#define MAX_KEYS 10000u

/* ---- rendering --------------------------------------------------------------- */

/* The data line of an event: the record a GET returns with the table (and
 * key) in front, or what a delete left, or why a reset. Made once per event
 * and shared by every stream (watch_event_text). */
rk_err http_render_event(void *arg, const watch_event_info *ev, rk_buf *out)
{
    (void)arg;
    reply_buf r = {0};
    http_reply_add_str(&r, "{\"table\":");
    http_reply_add_json_string(&r, ev->table, ev->table_len);
    if (ev->kind == WATCH_UPDATED) {
        reply_buf rec = {0};
        http_reply_add_record(&rec, ev->obj, object_live_winner(ev->obj), ev->key, ev->key_len);
        http_reply_add_str(&r, ",");
        if (rec.err == RK_OK)
            http_reply_add(&r, rec.buf.data + 1, rec.buf.len - 1); /* past its '{' */
        else
            r.err = rec.err;
        http_reply_buf_free(&rec);
    } else if (ev->kind == WATCH_DELETED) {
        const sibling *s = object_winner(ev->obj);
        http_reply_add_str(&r, ",\"key\":");
        http_reply_add_json_string(&r, ev->key, ev->key_len);
        http_reply_add_str(&r, ",\"deleted\":true,\"context\":\"");
        http_reply_add_context(&r, &ev->obj->clock);
        http_reply_addf(&r, "\",\"timestamp\":%llu}",
                        (unsigned long long)(s != NULL ? s->timestamp_ms : 0));
    } else {
        if (ev->key != NULL) {
            http_reply_add_str(&r, ",\"key\":");
            http_reply_add_json_string(&r, ev->key, ev->key_len);
        }
        http_reply_add_str(&r, ",\"reason\":");
        http_reply_add_json_cstr(&r, ev->reason);
        http_reply_add_str(&r, "}");
    }
    rk_err err = r.err;
    if (err == RK_OK)
        *out = r.buf; /* out takes the bytes */
    else
        http_reply_buf_free(&r);
    return err;
}

static const char *event_name(watch_event_kind kind)
{
    return kind == WATCH_UPDATED ? "updated" : kind == WATCH_DELETED ? "deleted" : "reset";
}

/* One SSE frame into frame: id, event, data. A one-key stream's ids are
 * contexts (a client resumes from the version it has, on any node); the
 * others' are change-log ids of this node. A one-key stream's reset keeps
 * the id the client came with. */
static void frame_of(const http_server *srv, watch_stream *s, watch_event *ev, const char *last_id,
                     reply_buf *frame)
{
    watch_event_info info;
    watch_event_get(ev, &info);
    const rk_buf *text = watch_event_text(ev, http_render_event, NULL);
    if (text == NULL) {
        frame->err = RK_ENOMEM;
        return;
    }
    http_reply_add_str(frame, "id: ");
    if (!watch_stream_one_key(s)) {
        char id[48];
        watch_format_id(srv->watch, info.seq, id, sizeof id);
        http_reply_add_str(frame, id);
    } else if (info.kind != WATCH_RESET) {
        http_reply_add_context(frame, &info.obj->clock);
    } else {
        http_reply_add_str(frame, last_id);
    }
    http_reply_addf(frame, "\nevent: %s\ndata: ", event_name(info.kind));
    http_reply_add(frame, text->data, text->len);
    http_reply_add_str(frame, "\n\n");
}

/* ---- the request ------------------------------------------------------------- */

/* The keys of ?key=a&key=b..., decoded and without repeats, into keys
 * (owned by names, one NUL-separated buffer). Replies 400 and returns
 * RK_EINVAL on a bad key or too many. */
typedef struct key_list {
    rk_buf names;      /* the keys, each NUL-terminated */
    size_t *offsets;   /* where each starts in names (which moves as it grows) */
    const char **keys; /* made from offsets once names is whole */
    size_t *lens;
    size_t n, cap_offsets, cap_lens;
    rk_map seen;
} key_list;

static void key_list_free(key_list *kl)
{
    rk_buf_free(&kl->names);
    free(kl->offsets);
    free(kl->keys);
    free(kl->lens);
    rk_map_free(&kl->seen);
}

static rk_err add_decoded(request *rq, key_list *kl, const char *key, size_t key_len)
{
    if (rk_map_get(&kl->seen, key, key_len) != NULL)
        return RK_OK;
    if (kl->n == MAX_KEYS) {
        http_reply_error(rq, 400, "too_many_keys", "one stream watches at most 10000 keys");
        return RK_EINVAL;
    }
    size_t offset = kl->names.len;
    rk_err err = rk_buf_append(&kl->names, key, key_len);
    if (err == RK_OK)
        err = rk_buf_append(&kl->names, "", 1);
    if (err == RK_OK)
        err = rk_map_put(&kl->seen, key, key_len, (void *)1);
    if (err == RK_OK)
        err =
            rk_array_grow((void **)&kl->offsets, &kl->cap_offsets, kl->n + 1, sizeof *kl->offsets);
    if (err == RK_OK)
        err = rk_array_grow((void **)&kl->lens, &kl->cap_lens, kl->n + 1, sizeof *kl->lens);
    if (err != RK_OK) {
        http_reply_err(rq, err);
        return err;
    }
    kl->offsets[kl->n] = offset;
    kl->lens[kl->n++] = key_len;
    return RK_OK;
}

static rk_err add_raw(request *rq, key_list *kl, const char *raw, size_t len)
{
    char key[KV_KEY_MAX + 1];
    size_t key_len;
    if (http_percent_decode(raw, len, key, sizeof key, &key_len) != RK_OK ||
        !replica_key_valid(key, key_len)) {
        http_reply_error(rq, 400, "invalid_key", "a key= is not a valid key");
        return RK_EINVAL;
    }
    return add_decoded(rq, kl, key, key_len);
}

/* /{table}/subscribe/{key} names one key; /{table}/subscribe?key=..
 * several; /{table}/subscribe none (the whole table). */
static rk_err parse_keys(request *rq, key_list *kl)
{
    rk_err err = RK_OK;
    if (rq->m.key_len > 0) {
        err = add_decoded(rq, kl, rq->m.key, rq->m.key_len);
    } else {
        const char *qs = rq->ri->query_string ? rq->ri->query_string : "";
        while (*qs != '\0' && err == RK_OK) {
            const char *end = strchr(qs, '&');
            size_t len = end ? (size_t)(end - qs) : strlen(qs);
            if (len >= 4 && memcmp(qs, "key=", 4) == 0)
                err = add_raw(rq, kl, qs + 4, len - 4);
            qs += len + (end != NULL);
        }
    }
    if (err == RK_OK && kl->n > 0 && (kl->keys = malloc(kl->n * sizeof *kl->keys)) == NULL) {
        err = RK_ENOMEM;
        http_reply_err(rq, err);
    }
    for (size_t i = 0; err == RK_OK && i < kl->n; i++)
        kl->keys[i] = kl->names.data + kl->offsets[i];
    return err;
}

/* The id the client resumes from: Last-Event-ID, or ?last_event_id= (a
 * browser cannot set the header on its first connect). */
static size_t last_event_id(const request *rq, char *dst, size_t cap)
{
    const char *h = mg_get_header(rq->conn, "Last-Event-ID");
    if (h != NULL) {
        snprintf(dst, cap, "%s", h);
        return strlen(dst);
    }
    int n = http_request_param(rq, "last_event_id", dst, cap);
    dst[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

/* A one-key stream resuming from a context: the key's version now, sent if
 * the client has not seen it. */
static void resume_key(request *rq, watch_stream *s, const char *id, size_t id_len)
{
    vclock seen = {0};
    if (context_decode(id, id_len, &seen) != RK_OK) {
        watch_stream_resume(s, id, id_len); /* perhaps a change-log id */
        return;
    }
    kv_key key = {rq->m.table, rq->m.table_len, rq->m.key, rq->m.key_len};
    kv_read_opts opts = {0};
    kv_result res;
    rk_err err = kv_get(rq->srv->k, &key, &opts, &res);
    if (err == RK_OK || (err == RK_ENOTFOUND && res.obj.clock.len > 0)) {
        vclock_order o = vclock_compare(&res.obj.clock, &seen);
        if (o != VCLOCK_BEFORE && o != VCLOCK_EQUAL)
            watch_stream_offer(s, &res.obj);
    } else if (err != RK_ENOTFOUND) {
        watch_stream_reset(s, "the key could not be read to resume: re-read it");
    }
    if (err == RK_OK || err == RK_ENOTFOUND)
        kv_result_free(&res);
    vclock_free(&seen);
}

/* Writes the stream's events until the client goes, the stream is dropped
 * for falling behind, or the node stops. */
static void pump(request *rq, watch_stream *s, const char *last_id)
{
    http_server *srv = rq->srv;
    reply_buf frame = {0};
    for (;;) {
        watch_event *ev = NULL;
        rk_err err = watch_stream_next(s, rk_deadline_after_ms(PING_MS), &ev);
        rk_buf_reset(&frame.buf);
        if (err == RK_ETIMEDOUT) {
            if (mg_write(rq->conn, ":", 1) <= 0)
                break;
            http_reply_add_str(&frame, " ping\n\n");
        } else if (err == RK_OK) {
            frame_of(srv, s, ev, last_id, &frame);
            watch_event_unref(ev);
        } else {
            if (err == RK_EBUSY)
                RK_INFO("http", "a subscriber of table %s fell a full queue behind: dropped",
                        rq->m.table);
            break;
        }
        if (frame.err != RK_OK || mg_write(rq->conn, frame.buf.data, frame.buf.len) <= 0)
            break;
        if (err == RK_OK)
            atomic_fetch_add_explicit(&srv->events_sent, 1, memory_order_relaxed);
    }
    http_reply_buf_free(&frame);
}

void http_handle_subscribe(request *rq)
{
    key_list kl = {0};
    if (parse_keys(rq, &kl) != RK_OK) {
        key_list_free(&kl);
        return;
    }
    watch_spec spec = {rq->m.table, rq->m.table_len, kl.keys, kl.lens, kl.n};
    watch_stream *s = NULL;
    rk_err err = watch_stream_open(rq->srv->watch, &spec, &s);
    key_list_free(&kl);
    if (err == RK_EBUSY) {
        http_reply_error(rq, 503, "too_many_subscribers",
                         "this node holds as many streams as --max-subscribers allows");
        return;
    }
    if (err != RK_OK) {
        http_reply_err(rq, err);
        return;
    }
    char id[256];
    size_t id_len = last_event_id(rq, id, sizeof id);
    if (id_len > 0 && watch_stream_one_key(s))
        resume_key(rq, s, id, id_len);
    else if (id_len > 0)
        watch_stream_resume(s, id, id_len);
    if (http_reply_stream_start(rq, "text/event-stream", ": subscribed\n\n"))
        pump(rq, s, id);
    watch_stream_close(s);
}
