/* test_watch.c - live updates (src/watch) with real nodes in this process
 * (node_fixture): one event per version however many replicas report it,
 * leases over RPC between nodes, resuming from the change log (and the
 * reset when it cannot), the bounded queue that drops a slow stream, the
 * cap on streams, and leases that lapse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_fixture.h"
#include "support.h"
#include "watch/watch_internal.h" /* cfg tweaks, watch_hub_apply, the registry */

#define WAIT_MS 5000u

/* As in test_coord.c: NNG 1.5.2 can leak a request frame when a peer's
 * connection closes while the request is handed to it. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:rpc_frame_encode\nleak:libnng.so\n";
}

typedef struct nodes {
    test_node n[3];
    size_t count;
} nodes;

static nodes *nodes_up(size_t count)
{
    nodes *ns = calloc(1, sizeof *ns);
    assert_non_null(ns);
    ns->count = count;
    kv_config kc;
    kv_config_default(&kc);
    kc.timeout_ms = 1000;
    for (size_t i = 0; i < count; i++)
        test_node_up(&ns->n[i], i, &kc, NULL, i == 0 ? NULL : ns->n[0].rpc_addr);
    return ns;
}

static void nodes_down(nodes *ns)
{
    for (size_t i = 0; i < ns->count; i++)
        test_node_destroy(&ns->n[i]);
    free(ns);
}

static void put(test_node *tn, const char *key, const char *value)
{
    kv_write wr = {.key = {"t", 1, key, strlen(key)}, .value = value, .value_len = strlen(value)};
    kv_result res;
    assert_int_equal(kv_put(tn->k, &wr, &res), RK_OK);
    kv_result_free(&res);
}

static watch_stream *open_keys(test_node *tn, const char *const *keys, size_t n)
{
    size_t lens[8];
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(keys[i]);
    watch_spec spec = {"t", 1, keys, lens, n};
    watch_stream *s = NULL;
    assert_int_equal(watch_stream_open(tn->watch, &spec, &s), RK_OK);
    return s;
}

/* The next event's kind and live value ("" for a delete or reset). */
static watch_event_kind next(watch_stream *s, char *value, size_t cap, uint64_t *seq)
{
    watch_event *ev = NULL;
    rk_err err = watch_stream_next(s, rk_deadline_after_ms(WAIT_MS), &ev);
    if (err != RK_OK)
        print_error("watch_stream_next: %s\n", rk_strerror(err));
    assert_int_equal(err, RK_OK);
    watch_event_info info;
    watch_event_get(ev, &info);
    const sibling *live = info.obj ? object_live_winner(info.obj) : NULL;
    snprintf(value, cap, "%.*s", live ? (int)live->value_len : 0, live ? live->value : "");
    if (seq != NULL)
        *seq = info.seq;
    watch_event_kind kind = info.kind;
    watch_event_unref(ev);
    return kind;
}

static void expect_nothing(watch_stream *s)
{
    watch_event *ev = NULL;
    assert_int_equal(watch_stream_next(s, rk_deadline_after_ms(200), &ev), RK_ETIMEDOUT);
}

/* The object of key as this node's replica holds it. */
static void local_object(test_node *tn, const char *key, rk_object *out)
{
    kv_read_opts o = {.local = true};
    kv_result res;
    assert_int_equal(kv_get(tn->k, &(kv_key){"t", 1, key, strlen(key)}, &o, &res), RK_OK);
    assert_int_equal(object_copy(out, &res.obj), RK_OK);
    kv_result_free(&res);
}

/* A write makes one event; the same version reported again (as the other
 * replicas would) and an older one make none; a concurrent one makes an
 * event with both versions. */
static void test_one_event_per_version(void **state)
{
    (void)state;
    nodes *ns = nodes_up(1);
    test_node *tn = &ns->n[0];
    const char *keys[] = {"k"};
    watch_stream *s = open_keys(tn, keys, 1);
    char value[64];
    put(tn, "k", "\"v1\"");
    assert_int_equal(next(s, value, sizeof value, NULL), WATCH_UPDATED);
    assert_string_equal(value, "\"v1\"");
    rk_object v1 = {0};
    local_object(tn, "k", &v1);
    put(tn, "k", "\"v2\"");
    assert_int_equal(next(s, value, sizeof value, NULL), WATCH_UPDATED);
    assert_string_equal(value, "\"v2\"");
    rk_object v2 = {0};
    local_object(tn, "k", &v2);

    watch_hub_apply(tn->watch, "t", 1, "k", 1, &v2); /* a second replica's report */
    watch_hub_apply(tn->watch, "t", 1, "k", 1, &v1); /* a late, older one */
    expect_nothing(s);

    /* A version written by another actor on v1: concurrent with v2. */
    rk_object other = {0};
    assert_int_equal(object_copy(&other, &v1), RK_OK);
    object_write ow = {.value = "\"x\"", .value_len = 3, .owner = "", .timestamp_ms = 1};
    assert_int_equal(object_update(&other, &v1.clock, 0xabcdef, &ow, 16, NULL, NULL), RK_OK);
    watch_hub_apply(tn->watch, "t", 1, "k", 1, &other);
    watch_event *ev = NULL;
    assert_int_equal(watch_stream_next(s, rk_deadline_after_ms(WAIT_MS), &ev), RK_OK);
    watch_event_info info;
    watch_event_get(ev, &info);
    assert_int_equal(object_live_count(info.obj), 2); /* both versions, as a GET shows */
    watch_event_unref(ev);
    expect_nothing(s);

    object_free(&v1);
    object_free(&v2);
    object_free(&other);
    watch_stream_close(s);
    nodes_down(ns);
}

/* A stream on one node gets the writes made through another: the lease
 * went over RPC to the key's replicas, and they notify. Deletes too. */
static void test_write_through_another_node(void **state)
{
    (void)state;
    nodes *ns = nodes_up(3);
    const char *keys[] = {"far"};
    watch_stream *s = open_keys(&ns->n[2], keys, 1);
    char value[64];
    put(&ns->n[0], "far", "42");
    assert_int_equal(next(s, value, sizeof value, NULL), WATCH_UPDATED);
    assert_string_equal(value, "42");
    kv_write del = {.key = {"t", 1, "far", 3}, .tombstone = true};
    kv_result res;
    assert_int_equal(kv_put(ns->n[1].k, &del, &res), RK_OK);
    kv_result_free(&res);
    assert_int_equal(next(s, value, sizeof value, NULL), WATCH_DELETED);
    expect_nothing(s); /* three replicas reported each version: one event each */
    watch_stats st;
    watch_get_stats(ns->n[2].watch, &st);
    assert_true(st.notifications_in >= 2);
    assert_int_equal(st.events, 2);
    watch_stream_close(s);
    nodes_down(ns);
}

/* A table stream resumes from a change-log id: the events since, and only
 * those of its table; an id the log does not cover gets a reset. */
static void test_resume_from_the_log(void **state)
{
    (void)state;
    nodes *ns = nodes_up(1);
    test_node *tn = &ns->n[0];
    watch_spec table = {"t", 1, NULL, NULL, 0};
    watch_stream *s = NULL;
    assert_int_equal(watch_stream_open(tn->watch, &table, &s), RK_OK);
    char value[64];
    uint64_t seq;
    put(tn, "a", "1");
    assert_int_equal(next(s, value, sizeof value, &seq), WATCH_UPDATED);
    watch_stream_close(s); /* the table's lease lingers: the log keeps going */
    put(tn, "a", "2");
    put(tn, "b", "3");
    kv_write other = {.key = {"u", 1, "x", 1}, .value = "9", .value_len = 1};
    kv_result res;
    assert_int_equal(kv_put(tn->k, &other, &res), RK_OK);
    kv_result_free(&res);

    assert_int_equal(watch_stream_open(tn->watch, &table, &s), RK_OK);
    char id[48];
    watch_format_id(tn->watch, seq, id, sizeof id);
    watch_stream_resume(s, id, strlen(id));
    assert_int_equal(next(s, value, sizeof value, NULL), WATCH_UPDATED);
    assert_string_equal(value, "2");
    assert_int_equal(next(s, value, sizeof value, NULL), WATCH_UPDATED);
    assert_string_equal(value, "3");
    expect_nothing(s);
    watch_stream_close(s);

    const char *bad[] = {"0000000000000000-1", "nonsense", ""};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(watch_stream_open(tn->watch, &table, &s), RK_OK);
        watch_stream_resume(s, bad[i], strlen(bad[i]));
        assert_int_equal(next(s, value, sizeof value, NULL), WATCH_RESET);
        watch_stream_close(s);
    }
    nodes_down(ns);
}

/* The log keeps log_events: an id older than that gets a reset, never a
 * silent gap. */
static void test_resume_past_the_log_is_a_reset(void **state)
{
    (void)state;
    nodes *ns = nodes_up(1);
    test_node *tn = &ns->n[0];
    const char *keys[] = {"k"};
    watch_stream *s = open_keys(tn, keys, 1);
    char value[64];
    uint64_t first;
    put(tn, "k", "0");
    assert_int_equal(next(s, value, sizeof value, &first), WATCH_UPDATED);
    /* Newer and newer versions of k, straight into the hub (the path a
     * replica's report takes): quicker than log_events writes. The stream
     * falls behind and is dropped meanwhile; it is reopened below. */
    rk_object obj = {0};
    local_object(tn, "k", &obj);
    for (unsigned i = 1; i <= tn->watch->cfg.log_events; i++) {
        object_write ow = {.value = "1", .value_len = 1, .owner = "", .timestamp_ms = i};
        assert_int_equal(object_update(&obj, &obj.clock, 7, &ow, 16, NULL, NULL), RK_OK);
        watch_hub_apply(tn->watch, "t", 1, "k", 1, &obj);
    }
    object_free(&obj);
    char id[48];
    watch_format_id(tn->watch, first, id, sizeof id);
    watch_stream_close(s);
    s = open_keys(tn, keys, 1);
    watch_stream_resume(s, id, strlen(id));
    assert_int_equal(next(s, value, sizeof value, NULL), WATCH_RESET);
    watch_stream_close(s);
    nodes_down(ns);
}

/* A stream that nobody reads is dropped once its queue is full; the
 * writes never wait for it. */
static void test_slow_stream_is_dropped(void **state)
{
    (void)state;
    nodes *ns = nodes_up(1);
    test_node *tn = &ns->n[0];
    tn->watch->cfg.stream_queue = 16;
    const char *keys[] = {"k"};
    watch_stream *s = open_keys(tn, keys, 1);
    for (int i = 0; i < 40; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        put(tn, "k", v);
    }
    watch_event *ev = NULL;
    assert_int_equal(watch_stream_next(s, rk_deadline_after_ms(WAIT_MS), &ev), RK_EBUSY);
    watch_stats st;
    watch_get_stats(tn->watch, &st);
    assert_int_equal(st.streams_dropped, 1);
    watch_stream_close(s);
    nodes_down(ns);
}

/* Over max_streams a stream is refused; after one closes, one opens. And
 * watch_shutdown ends the streams that wait. */
static void test_stream_cap_and_shutdown(void **state)
{
    (void)state;
    nodes *ns = nodes_up(1);
    test_node *tn = &ns->n[0];
    tn->watch->cfg.max_streams = 2;
    const char *keys[] = {"k"};
    watch_spec spec = {"t", 1, keys, (size_t[]){1}, 1};
    watch_stream *a, *b, *c = NULL;
    assert_int_equal(watch_stream_open(tn->watch, &spec, &a), RK_OK);
    assert_int_equal(watch_stream_open(tn->watch, &spec, &b), RK_OK);
    assert_int_equal(watch_stream_open(tn->watch, &spec, &c), RK_EBUSY);
    watch_stream_close(b);
    assert_int_equal(watch_stream_open(tn->watch, &spec, &c), RK_OK);
    watch_shutdown(tn->watch);
    watch_event *ev = NULL;
    assert_int_equal(watch_stream_next(a, rk_deadline_after_ms(WAIT_MS), &ev), RK_ECLOSED);
    assert_int_equal(watch_stream_open(tn->watch, &spec, &b), RK_ECLOSED);
    watch_stream_close(a);
    watch_stream_close(c);
    watch_stats st;
    watch_get_stats(tn->watch, &st);
    assert_int_equal(st.streams_rejected, 1);
    nodes_down(ns);
}

/* A lease lapses unless renewed: once its stream is gone and the linger is
 * over, the replica stops copying changes for it. */
static bool no_leases(void *arg)
{
    watch *w = arg;
    watch_registry_sweep(w);
    return watch_registry_leases(w) == 0;
}

static void test_leases_lapse(void **state)
{
    (void)state;
    nodes *ns = nodes_up(1);
    test_node *tn = &ns->n[0];
    tn->watch->cfg.linger_ms = 0;
    const char *keys[] = {"k"};
    watch_stream *s = open_keys(tn, keys, 1);
    assert_true(watch_registry_leases(tn->watch) >= 1);
    watch_stream_close(s);
    assert_true(wait_for(no_leases, tn->watch, WAIT_MS));
    put(tn, "k", "1"); /* nobody watches: nothing to do, nothing breaks */
    nodes_down(ns);
}

/* A stream dropped for falling behind leaves no lingering interest: the
 * hub releases its leases at its next round, so a stalled client does not
 * keep every replica notifying (a closed stream's keys linger, for its
 * client's resume). */
static void test_dropped_stream_leaves_no_lease(void **state)
{
    (void)state;
    nodes *ns = nodes_up(1);
    test_node *tn = &ns->n[0];
    tn->watch->cfg.stream_queue = 16;
    tn->watch->cfg.linger_ms = 600000;
    const char *keys[] = {"k"};
    watch_stream *s = open_keys(tn, keys, 1);
    for (int i = 0; i < 40; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        put(tn, "k", v);
    }
    watch_event *ev = NULL;
    assert_int_equal(watch_stream_next(s, rk_deadline_after_ms(WAIT_MS), &ev), RK_EBUSY);
    watch_stream_close(s);
    assert_true(wait_for(no_leases, tn->watch, WAIT_MS));
    nodes_down(ns);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_event_per_version),
        cmocka_unit_test(test_write_through_another_node),
        cmocka_unit_test(test_resume_from_the_log),
        cmocka_unit_test(test_resume_past_the_log_is_a_reset),
        cmocka_unit_test(test_slow_stream_is_dropped),
        cmocka_unit_test(test_stream_cap_and_shutdown),
        cmocka_unit_test(test_leases_lapse),
        cmocka_unit_test(test_dropped_stream_leaves_no_lease),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
