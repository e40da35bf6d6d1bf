/* hub.c - this node's streams: the keys and tables they watch, the events
 * made from the changes replicas report (one per new version, however many
 * replicas report it), the change log that resuming clients read, and the
 * bounded queue of each stream. Everything here is under w->mu, and a
 * stream's queue under its own mu (taken inside w->mu, never the other way
 * round). Nothing here waits on the network. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watch_internal.h"

size_t watch_key_name(const char *table, size_t table_len, const char *key, size_t key_len,
                      char *out)
{
    memcpy(out, table, table_len);
    out[table_len] = '\0';
    memcpy(out + table_len + 1, key, key_len);
    return table_len + 1 + key_len;
}

/* ---- events ---------------------------------------------------------------- */

static watch_event *event_new(watch_event_kind kind, const char *table, size_t table_len,
                              const char *key, size_t key_len)
{
    watch_event *ev = calloc(1, sizeof *ev + table_len + 1 + (key ? key_len + 1 : 0));
    if (ev == NULL)
        return NULL;
    atomic_init(&ev->refs, 1);
    ev->kind = kind;
    ev->table = (char *)(ev + 1);
    memcpy(ev->table, table, table_len);
    ev->table_len = table_len;
    if (key != NULL) {
        ev->key = ev->table + table_len + 1;
        memcpy(ev->key, key, key_len);
        ev->key_len = key_len;
    }
    pthread_mutex_init(&ev->text_mu, NULL);
    return ev;
}

static watch_event *event_ref(watch_event *ev)
{
    atomic_fetch_add_explicit(&ev->refs, 1, memory_order_relaxed);
    return ev;
}

void watch_event_unref(watch_event *ev)
{
    if (ev == NULL || atomic_fetch_sub_explicit(&ev->refs, 1, memory_order_acq_rel) != 1)
        return;
    object_free(&ev->obj);
    rk_buf_free(&ev->text);
    pthread_mutex_destroy(&ev->text_mu);
    free(ev);
}

void watch_event_get(const watch_event *ev, watch_event_info *out)
{
    *out = (watch_event_info){
        .kind = ev->kind,
        .seq = ev->seq,
        .table = ev->table,
        .table_len = ev->table_len,
        .key = ev->key,
        .key_len = ev->key_len,
        .obj = ev->kind == WATCH_RESET ? NULL : &ev->obj,
        .reason = ev->reason,
    };
}

const rk_buf *watch_event_text(watch_event *ev, watch_render_cb render, void *arg)
{
    /* Every stream of a key asks at once when its event arrives: 10,000
     * workers queueing on one mutex cost more than the writes (a futex with
     * 10,000 waiters). So the mutex is only for making the text; once made
     * it never changes, and the flag says so without a lock. */
    if (atomic_load_explicit(&ev->rendered, memory_order_acquire))
        return &ev->text;
    pthread_mutex_lock(&ev->text_mu);
    if (!atomic_load_explicit(&ev->rendered, memory_order_relaxed)) {
        watch_event_info info;
        watch_event_get(ev, &info);
        if (render(arg, &info, &ev->text) == RK_OK)
            atomic_store_explicit(&ev->rendered, true, memory_order_release);
        else
            rk_buf_reset(&ev->text);
    }
    pthread_mutex_unlock(&ev->text_mu);
    return atomic_load_explicit(&ev->rendered, memory_order_acquire) ? &ev->text : NULL;
}

void watch_set_renderer(watch *w, watch_render_cb render, void *arg)
{
    pthread_mutex_lock(&w->mu);
    w->render = render;
    w->render_arg = arg;
    pthread_mutex_unlock(&w->mu);
}

/* ---- stream queues --------------------------------------------------------- */

/* Queues ev to s; a stream whose queue is full is dropped (its reader is
 * told at its next wait), never waited for. Called under w->mu, which
 * keeps s alive after its own mutex is released.
 *
 * The reader is woken after the unlock, and only when it waits: woken
 * under the lock it would at once block on the mutex still held here, and
 * a mutex once contended costs a futex wake at every unlock after. With
 * 10,000 streams of one key that was most of a broadcast's time. */
static void stream_push(watch *w, watch_stream *s, watch_event *ev)
{
    bool wake = false;
    pthread_mutex_lock(&s->mu);
    if (!s->dropped && !s->closed) {
        if (s->len == s->cap && s->cap < w->cfg.stream_queue) {
            /* Grow the ring, unrolling it from head. */
            size_t cap = s->cap * 2 < w->cfg.stream_queue ? s->cap * 2 : w->cfg.stream_queue;
            watch_event **q = malloc(cap * sizeof *q);
            if (q != NULL) {
                for (size_t i = 0; i < s->len; i++)
                    q[i] = s->queue[(s->head + i) % s->cap];
                free(s->queue);
                s->queue = q;
                s->head = 0;
                s->cap = cap;
            }
        }
        if (s->len == s->cap) {
            s->dropped = true;
            atomic_fetch_add_explicit(&w->streams_dropped, 1, memory_order_relaxed);
        } else {
            s->queue[(s->head + s->len++) % s->cap] = event_ref(ev);
            atomic_fetch_add_explicit(&w->events_queued, 1, memory_order_relaxed);
        }
        wake = s->waiting;
    }
    pthread_mutex_unlock(&s->mu);
    if (wake)
        pthread_cond_signal(&s->cv);
}

static void push_all(watch *w, watch_link *head, watch_event *ev)
{
    for (watch_link *l = head; l != NULL; l = l->next)
        stream_push(w, l->stream, ev);
}

static void link_add(watch_link **head, watch_link *l)
{
    l->prev = NULL;
    l->next = *head;
    if (*head != NULL)
        (*head)->prev = l;
    *head = l;
}

static void link_remove(watch_link **head, watch_link *l)
{
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        *head = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
}

/* ---- the change log -------------------------------------------------------- */

static void log_append(watch *w, watch_event *ev)
{
    size_t cap = w->cfg.log_events;
    ev->seq = w->next_seq++;
    watch_event **slot = &w->log[ev->seq % cap];
    watch_event_unref(*slot);
    *slot = event_ref(ev);
    if (ev->seq >= cap)
        w->first_seq = ev->seq - cap + 1;
}

/* ---- changes --------------------------------------------------------------- */

/* Forgets some keystates that only table streams made, once there are more
 * than cfg.table_keys: they only serve to send each version once. */
static bool evict_cb(void *arg, const char *key, size_t key_len, void *value)
{
    (void)key, (void)key_len;
    size_t *left = arg;
    keystate *ks = value;
    if (*left == 0 || ks->n_streams > 0 || ks->linger_until != 0)
        return false;
    watch_event_unref(ks->last);
    free(ks);
    (*left)--;
    return true;
}

static keystate *table_keystate(watch *w, const char *name, size_t name_len, size_t table_len)
{
    if (w->table_only_keys >= w->cfg.table_keys) {
        size_t left = w->cfg.table_keys / 8 + 1;
        size_t before = left;
        rk_map_visit(&w->keys, evict_cb, &left);
        w->table_only_keys -= before - left;
    }
    keystate *ks = calloc(1, sizeof *ks);
    if (ks == NULL)
        return NULL;
    ks->table_len = table_len;
    if (rk_map_put(&w->keys, name, name_len, ks) != RK_OK) {
        free(ks);
        return NULL;
    }
    w->table_only_keys++;
    return ks;
}

/* The event for obj when it is news for ks (NULL when not, or out of
 * memory): obj itself when newer than what ks has, else the merge of both. */
static watch_event *event_for(keystate *ks, const char *table, size_t table_len, const char *key,
                              size_t key_len, const rk_object *obj)
{
    const rk_object *base = NULL;
    if (ks->last != NULL) {
        vclock_order o = vclock_compare(&obj->clock, &ks->last->obj.clock);
        if (o == VCLOCK_BEFORE || o == VCLOCK_EQUAL)
            return NULL;
        if (o == VCLOCK_CONCURRENT)
            base = &ks->last->obj;
    }
    watch_event *ev = event_new(WATCH_UPDATED, table, table_len, key, key_len);
    if (ev == NULL)
        return NULL;
    rk_err err = object_copy(&ev->obj, base != NULL ? base : obj);
    if (err == RK_OK && base != NULL)
        err = object_merge(&ev->obj, obj, 0, NULL);
    if (err != RK_OK) {
        watch_event_unref(ev);
        return NULL;
    }
    ev->kind = object_live_count(&ev->obj) > 0 ? WATCH_UPDATED : WATCH_DELETED;
    return ev;
}

/* Applies a change under w->mu; true when it made an event. */
static bool apply_locked(watch *w, const char *table, size_t table_len, const char *key,
                         size_t key_len, const rk_object *obj)
{
    char name[REPLICA_TABLE_MAX + 1 + REPLICA_KEY_MAX];
    if (table_len > REPLICA_TABLE_MAX || key_len > REPLICA_KEY_MAX)
        return false;
    size_t name_len = watch_key_name(table, table_len, key, key_len, name);
    keystate *ks = rk_map_get(&w->keys, name, name_len);
    tablestate *ts = rk_map_get(&w->tables, table, table_len);
    if (ks == NULL && ts == NULL)
        return false; /* a lease that outlived its streams */
    if (ks == NULL && (ks = table_keystate(w, name, name_len, table_len)) == NULL)
        return false;
    watch_event *ev = event_for(ks, table, table_len, key, key_len, obj);
    if (ev == NULL)
        return false;
    atomic_fetch_add_explicit(&w->events, 1, memory_order_relaxed);
    if (w->render != NULL)
        watch_event_text(ev, w->render, w->render_arg);
    log_append(w, ev);
    watch_event_unref(ks->last);
    ks->last = event_ref(ev);
    push_all(w, ks->streams, ev);
    if (ts != NULL)
        push_all(w, ts->streams, ev);
    watch_event_unref(ev);
    return true;
}

void watch_hub_apply(watch *w, const char *table, size_t table_len, const char *key, size_t key_len,
                     const rk_object *obj)
{
    pthread_mutex_lock(&w->mu);
    apply_locked(w, table, table_len, key, key_len, obj);
    pthread_mutex_unlock(&w->mu);
}

/* ---- streams --------------------------------------------------------------- */

static void stream_free(watch_stream *s)
{
    for (size_t i = 0; i < s->len; i++)
        watch_event_unref(s->queue[(s->head + i) % s->cap]);
    for (size_t i = 0; i < s->n_keys; i++)
        free(s->key_names[i]);
    free(s->key_names);
    free(s->key_name_lens);
    free(s->keys);
    free(s->links);
    free(s->queue);
    free(s->table);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static watch_stream *stream_new(watch *w, const watch_spec *spec)
{
    watch_stream *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->w = w;
    pthread_mutex_init(&s->mu, NULL);
    rk_cond_init_monotonic(&s->cv);
    s->n_keys = spec->n_keys;
    s->table_len = spec->table_len;
    s->cap = 8;
    bool ok = (s->table = malloc(spec->table_len + 1)) != NULL &&
              (s->queue = calloc(s->cap, sizeof *s->queue)) != NULL &&
              (s->links = calloc(s->n_keys ? s->n_keys : 1, sizeof *s->links)) != NULL &&
              (s->keys = calloc(s->n_keys ? s->n_keys : 1, sizeof *s->keys)) != NULL &&
              (s->key_names = calloc(s->n_keys ? s->n_keys : 1, sizeof *s->key_names)) != NULL &&
              (s->key_name_lens = calloc(s->n_keys ? s->n_keys : 1, sizeof(size_t))) != NULL;
    if (ok) {
        memcpy(s->table, spec->table, spec->table_len);
        s->table[spec->table_len] = '\0';
    }
    for (size_t i = 0; ok && i < s->n_keys; i++) {
        s->key_name_lens[i] = spec->table_len + 1 + spec->key_lens[i];
        ok = (s->key_names[i] = malloc(s->key_name_lens[i])) != NULL;
        if (ok)
            watch_key_name(spec->table, spec->table_len, spec->keys[i], spec->key_lens[i],
                           s->key_names[i]);
    }
    if (!ok) {
        stream_free(s);
        return NULL;
    }
    return s;
}

static bool spec_valid(const watch_spec *spec)
{
    if (!replica_table_valid(spec->table, spec->table_len))
        return false;
    for (size_t i = 0; i < spec->n_keys; i++)
        if (!replica_key_valid(spec->keys[i], spec->key_lens[i]))
            return false;
    return true;
}

/* Links s into the states it watches (made as needed); under w->mu. The
 * states made here are marked with since_seq 0 until their leases hold. */
static rk_err stream_attach(watch *w, watch_stream *s)
{
    for (size_t i = 0; i < s->n_keys; i++) {
        keystate *ks = rk_map_get(&w->keys, s->key_names[i], s->key_name_lens[i]);
        if (ks == NULL) {
            if ((ks = calloc(1, sizeof *ks)) == NULL)
                return RK_ENOMEM;
            ks->table_len = s->table_len;
            if (rk_map_put(&w->keys, s->key_names[i], s->key_name_lens[i], ks) != RK_OK) {
                free(ks);
                return RK_ENOMEM;
            }
        } else if (ks->n_streams == 0 && ks->linger_until == 0) {
            w->table_only_keys--; /* a table stream's keystate, now watched */
        }
        if (ks->n_streams == 0 && ks->linger_until == 0)
            ks->since_seq = 0;
        ks->linger_until = 0;
        s->keys[i] = ks;
        s->links[i].stream = s;
        link_add(&ks->streams, &s->links[i]);
        ks->n_streams++;
    }
    if (s->n_keys == 0) {
        tablestate *ts = rk_map_get(&w->tables, s->table, s->table_len);
        if (ts == NULL) {
            if ((ts = calloc(1, sizeof *ts)) == NULL)
                return RK_ENOMEM;
            if (rk_map_put(&w->tables, s->table, s->table_len, ts) != RK_OK) {
                free(ts);
                return RK_ENOMEM;
            }
        }
        ts->linger_until = 0;
        s->links[0].stream = s;
        link_add(&ts->streams, &s->links[0]);
        ts->n_streams++;
    }
    return RK_OK;
}

/* Unlinks s; states left without streams linger (leased, logged) for
 * linger_ms, so that a client that reconnects misses nothing. Not after a
 * stream dropped for falling behind: its client has a reset coming
 * anyway, and a stalled client must not keep every replica notifying
 * (the lease thread releases the leases at its next round). */
static void stream_detach(watch *w, watch_stream *s)
{
    uint64_t until = rk_monotonic_ms() + (s->dropped ? 0 : w->cfg.linger_ms);
    for (size_t i = 0; i < s->n_keys; i++) {
        keystate *ks = s->keys[i];
        if (ks == NULL)
            continue;
        link_remove(&ks->streams, &s->links[i]);
        if (--ks->n_streams == 0)
            ks->linger_until = until;
        s->keys[i] = NULL;
    }
    if (s->n_keys == 0 && s->links[0].stream != NULL) {
        tablestate *ts = rk_map_get(&w->tables, s->table, s->table_len);
        if (ts != NULL) {
            link_remove(&ts->streams, &s->links[0]);
            if (--ts->n_streams == 0)
                ts->linger_until = until;
        }
        s->links[0].stream = NULL;
    }
}

void watch_hub_leased(watch_stream *s)
{
    watch *w = s->w;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < s->n_keys; i++)
        if (s->keys[i]->since_seq == 0)
            s->keys[i]->since_seq = w->next_seq;
    if (s->n_keys == 0) {
        tablestate *ts = rk_map_get(&w->tables, s->table, s->table_len);
        if (ts->since_seq == 0)
            ts->since_seq = w->next_seq;
    }
    pthread_mutex_unlock(&w->mu);
}

rk_err watch_hub_attach(watch *w, const watch_spec *spec, watch_stream **out)
{
    if (!spec_valid(spec))
        return RK_EINVAL;
    watch_stream *s = stream_new(w, spec);
    if (s == NULL)
        return RK_ENOMEM;
    pthread_mutex_lock(&w->mu);
    rk_err err = w->shutting_down                     ? RK_ECLOSED
                 : w->n_streams >= w->cfg.max_streams ? RK_EBUSY
                                                      : stream_attach(w, s);
    if (err != RK_OK) {
        stream_detach(w, s);
        pthread_mutex_unlock(&w->mu);
        if (err == RK_EBUSY)
            atomic_fetch_add_explicit(&w->streams_rejected, 1, memory_order_relaxed);
        stream_free(s);
        return err;
    }
    s->next_all = w->streams;
    if (w->streams != NULL)
        w->streams->prev_all = s;
    w->streams = s;
    w->n_streams++;
    pthread_mutex_unlock(&w->mu);
    atomic_fetch_add_explicit(&w->streams_opened, 1, memory_order_relaxed);
    *out = s;
    return RK_OK;
}

void watch_stream_close(watch_stream *s)
{
    if (s == NULL)
        return;
    watch *w = s->w;
    pthread_mutex_lock(&w->mu);
    stream_detach(w, s);
    if (s->prev_all != NULL)
        s->prev_all->next_all = s->next_all;
    else
        w->streams = s->next_all;
    if (s->next_all != NULL)
        s->next_all->prev_all = s->prev_all;
    w->n_streams--;
    pthread_mutex_unlock(&w->mu);
    stream_free(s);
}

bool watch_stream_one_key(const watch_stream *s)
{
    return s->n_keys == 1;
}

rk_err watch_stream_next(watch_stream *s, uint64_t deadline_ms, watch_event **ev)
{
    rk_err err = RK_OK;
    pthread_mutex_lock(&s->mu);
    while (s->len == 0 && !s->dropped && !s->closed && err == RK_OK) {
        s->waiting = true;
        if (rk_cond_wait_until(&s->cv, &s->mu, deadline_ms) != 0)
            err = RK_ETIMEDOUT;
        s->waiting = false;
    }
    if (s->dropped) {
        err = RK_EBUSY;
    } else if (s->closed) {
        err = RK_ECLOSED;
    } else if (s->len > 0) {
        *ev = s->queue[s->head];
        s->head = (s->head + 1) % s->cap;
        s->len--;
        err = RK_OK;
    }
    pthread_mutex_unlock(&s->mu);
    return err;
}

/* ---- resuming -------------------------------------------------------------- */

void watch_format_id(const watch *w, uint64_t seq, char *buf, size_t cap)
{
    snprintf(buf, cap, "%016" PRIx64 "-%" PRIu64, w->epoch, seq);
}

static bool parse_id(const char *id, size_t len, uint64_t *epoch, uint64_t *seq)
{
    char text[48];
    if (len == 0 || len >= sizeof text)
        return false;
    memcpy(text, id, len);
    text[len] = '\0';
    char *end;
    if (len < 18 || text[16] != '-')
        return false;
    text[16] = '\0';
    *epoch = strtoull(text, &end, 16);
    if (*end != '\0')
        return false;
    *seq = strtoull(text + 17, &end, 10);
    return *end == '\0' && text[17] >= '0' && text[17] <= '9';
}

static void push_reset(watch *w, watch_stream *s, const char *reason)
{
    watch_event *ev = event_new(WATCH_RESET, s->table, s->table_len,
                                s->n_keys == 1 ? s->key_names[0] + s->table_len + 1 : NULL,
                                s->n_keys == 1 ? s->key_name_lens[0] - s->table_len - 1 : 0);
    if (ev == NULL)
        return;
    ev->reason = reason;
    ev->seq = w->next_seq - 1; /* the stream misses nothing after this */
    atomic_fetch_add_explicit(&w->resets, 1, memory_order_relaxed);
    stream_push(w, s, ev);
    watch_event_unref(ev);
}

/* Whether ev is one of the changes s watches. */
static bool stream_wants(const watch_stream *s, const watch_event *ev)
{
    if (ev->table_len != s->table_len || memcmp(ev->table, s->table, s->table_len) != 0)
        return false;
    if (s->n_keys == 0)
        return true;
    for (size_t i = 0; i < s->n_keys; i++)
        if (s->key_name_lens[i] == s->table_len + 1 + ev->key_len &&
            memcmp(s->key_names[i] + s->table_len + 1, ev->key, ev->key_len) == 0)
            return true;
    return false;
}

/* Why the log cannot replay everything after seq to s, or NULL. */
static const char *gap_of(const watch *w, const watch_stream *s, uint64_t epoch, uint64_t seq)
{
    if (epoch != w->epoch)
        return "the id is from another node or an earlier run of this one";
    if (seq >= w->next_seq)
        return "the id is not one this node gave out";
    if (seq + 1 < w->first_seq)
        return "the change log no longer reaches back that far";
    /* Every state of the stream must have been leased since before seq. */
    uint64_t since = 0;
    if (s->n_keys == 0) {
        const tablestate *ts = rk_map_get(&w->tables, s->table, s->table_len);
        since = ts != NULL && ts->since_seq != 0 ? ts->since_seq : UINT64_MAX;
    }
    for (size_t i = 0; i < s->n_keys; i++) {
        uint64_t ks_since = s->keys[i]->since_seq != 0 ? s->keys[i]->since_seq : UINT64_MAX;
        since = ks_since > since ? ks_since : since;
    }
    if (since > seq + 1)
        return "this node was not watching all of it for that whole time";
    return NULL;
}

void watch_stream_resume(watch_stream *s, const char *id, size_t id_len)
{
    watch *w = s->w;
    uint64_t epoch = 0, seq = 0;
    bool parsed = parse_id(id, id_len, &epoch, &seq);
    pthread_mutex_lock(&w->mu);
    const char *gap = parsed ? gap_of(w, s, epoch, seq) : "the id is not a change-log id";
    size_t wanted = 0;
    for (uint64_t q = seq + 1; gap == NULL && q < w->next_seq; q++)
        wanted += stream_wants(s, w->log[q % w->cfg.log_events]);
    if (gap == NULL && wanted > w->cfg.stream_queue)
        gap = "more changes were missed than a stream may queue";
    if (gap != NULL) {
        push_reset(w, s, gap);
    } else {
        for (uint64_t q = seq + 1; q < w->next_seq; q++) {
            watch_event *ev = w->log[q % w->cfg.log_events];
            if (stream_wants(s, ev))
                stream_push(w, s, ev);
        }
    }
    pthread_mutex_unlock(&w->mu);
}

void watch_stream_reset(watch_stream *s, const char *reason)
{
    pthread_mutex_lock(&s->w->mu);
    push_reset(s->w, s, reason);
    pthread_mutex_unlock(&s->w->mu);
}

rk_err watch_stream_offer(watch_stream *s, const rk_object *obj)
{
    if (s->n_keys != 1)
        return RK_EINVAL;
    watch *w = s->w;
    const char *table = s->table, *key = s->key_names[0] + s->table_len + 1;
    size_t key_len = s->key_name_lens[0] - s->table_len - 1;
    pthread_mutex_lock(&w->mu);
    /* News to the hub goes to every stream of the key, this one included;
     * else this stream alone gets the newest event the hub made. */
    if (!apply_locked(w, table, s->table_len, key, key_len, obj) && s->keys[0]->last != NULL)
        stream_push(w, s, s->keys[0]->last);
    pthread_mutex_unlock(&w->mu);
    return RK_OK;
}

/* ---- lifetime -------------------------------------------------------------- */

static bool free_keystate_cb(void *arg, const char *key, size_t key_len, void *value)
{
    (void)arg, (void)key, (void)key_len;
    keystate *ks = value;
    watch_event_unref(ks->last);
    free(ks);
    return false;
}

static bool free_tablestate_cb(void *arg, const char *key, size_t key_len, void *value)
{
    (void)arg, (void)key, (void)key_len;
    free(value);
    return false;
}

void watch_hub_free(watch *w)
{
    rk_map_visit(&w->keys, free_keystate_cb, NULL);
    rk_map_visit(&w->tables, free_tablestate_cb, NULL);
    rk_map_free(&w->keys);
    rk_map_free(&w->tables);
    for (size_t i = 0; w->log != NULL && i < w->cfg.log_events; i++)
        watch_event_unref(w->log[i]);
    free(w->log);
}
