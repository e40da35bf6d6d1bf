/* test_cluster.c - unit tests of cluster membership: the table, the gossip
 * merge and its convergence, the failure detector on a fake clock, peer
 * selection, the ring member set, persistence and the join check. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringkv/cluster.h"

#include "inputs.h"

/* ---- helpers --------------------------------------------------------------- */

static uint64_t rng_cb(void *arg)
{
    (void)arg;
    return rng_next();
}

static cluster_entry make_entry(uint64_t id, cluster_status status, uint64_t inc, uint64_t hb)
{
    char name[32], http[32], rpc[32];
    snprintf(name, sizeof name, "n%" PRIu64, id);
    snprintf(http, sizeof http, "127.0.0.1:%" PRIu64, 8000 + id % 1000);
    snprintf(rpc, sizeof rpc, "127.0.0.1:%" PRIu64, 9000 + id % 1000);
    cluster_entry e;
    assert_int_equal(cluster_entry_init(&e, id, name, http, rpc, status), RK_OK);
    e.incarnation = inc;
    e.heartbeat = hb;
    return e;
}

static cluster_table *make_table(uint64_t self_id, cluster_status status, uint64_t now)
{
    cluster_entry self = make_entry(self_id, status, 0, 0);
    cluster_table *t = NULL;
    assert_int_equal(cluster_table_alloc(&self, NULL, now, &t), RK_OK);
    return t;
}

static bool entry_equal(const cluster_entry *a, const cluster_entry *b)
{
    return a->id == b->id && a->status == b->status && a->incarnation == b->incarnation &&
           a->heartbeat == b->heartbeat && strcmp(a->name, b->name) == 0 &&
           strcmp(a->http_addr, b->http_addr) == 0 && strcmp(a->rpc_addr, b->rpc_addr) == 0;
}

/* Same rows (gossiped parts) in both tables. */
static bool tables_equal(const cluster_table *a, const cluster_table *b)
{
    if (cluster_member_count(a) != cluster_member_count(b))
        return false;
    for (size_t i = 0; i < cluster_member_count(a); i++)
        if (!entry_equal(&cluster_member_at(a, i)->entry, &cluster_member_at(b, i)->entry))
            return false;
    return true;
}

#define MAX_EVENTS 64
typedef struct event_log {
    cluster_event ev[MAX_EVENTS];
    size_t n;
} event_log;

static void log_cb(void *arg, const cluster_event *ev)
{
    event_log *log = arg;
    if (log->n < MAX_EVENTS)
        log->ev[log->n] = *ev;
    log->n++;
}

/* One push-pull exchange: a pushes its rows to b, b answers with its delta. */
static void push_pull(cluster_table *a, cluster_table *b, uint64_t now)
{
    static cluster_entry push[CLUSTER_MAX_MEMBERS], pull[CLUSTER_MAX_MEMBERS];
    size_t n = cluster_export(a, push, CLUSTER_MAX_MEMBERS);
    assert_true(n <= CLUSTER_MAX_MEMBERS);
    assert_int_equal(cluster_merge(b, push, n, now, NULL, NULL, NULL), RK_OK);
    size_t d = cluster_delta(b, push, n, pull, CLUSTER_MAX_MEMBERS);
    assert_int_equal(cluster_merge(a, pull, d, now, NULL, NULL, NULL), RK_OK);
}

/* ---- entries and the table -------------------------------------------------- */

static void test_entry_init(void **state)
{
    (void)state;
    cluster_entry e;
    char long_name[CLUSTER_NAME_MAX + 2];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(cluster_entry_init(&e, 0, "a", "h:1", "r:1", CLUSTER_MEMBER), RK_EINVAL);
    assert_int_equal(cluster_entry_init(&e, 1, long_name, "h:1", "r:1", CLUSTER_MEMBER), RK_EINVAL);
    assert_int_equal(cluster_entry_init(&e, 1, NULL, "h:1", "r:1", CLUSTER_MEMBER), RK_EINVAL);
    assert_int_equal(cluster_entry_init(&e, 1, "a", "h:1", "r:1", (cluster_status)7), RK_EINVAL);
    long_name[CLUSTER_NAME_MAX] = '\0'; /* exactly the maximum */
    assert_int_equal(cluster_entry_init(&e, 1, long_name, "h:1", "r:1", CLUSTER_MEMBER), RK_OK);
    assert_int_equal(e.incarnation, 0);
    assert_int_equal(e.heartbeat, 0);
    assert_string_equal(cluster_status_name(CLUSTER_LEAVING), "leaving");
    assert_string_equal(cluster_liveness_name(CLUSTER_SUSPECT), "suspect");
    assert_string_equal(cluster_status_name((cluster_status)9), "?");
}

static void test_table_basics(void **state)
{
    (void)state;
    cluster_table *t = make_table(50, CLUSTER_MEMBER, 0);
    assert_int_equal(cluster_self_id(t), 50);
    assert_int_equal(cluster_member_count(t), 1);
    assert_int_equal(cluster_self(t)->liveness, CLUSTER_ALIVE);
    cluster_heartbeat(t);
    cluster_heartbeat(t);
    assert_int_equal(cluster_self(t)->entry.heartbeat, 2);
    assert_null(cluster_find(t, 7));

    cluster_config bad = {.suspect_after_ms = 10, .down_after_ms = 5};
    cluster_entry self = make_entry(1, CLUSTER_MEMBER, 0, 0);
    cluster_table *t2 = NULL;
    assert_int_equal(cluster_table_alloc(&self, &bad, 0, &t2), RK_EINVAL);
    self.id = 0;
    assert_int_equal(cluster_table_alloc(&self, NULL, 0, &t2), RK_EINVAL);
    assert_null(t2);

    cluster_entry in[2] = {make_entry(70, CLUSTER_MEMBER, 1, 1),
                           make_entry(10, CLUSTER_JOINING, 0, 4)};
    assert_int_equal(cluster_merge(t, in, 2, 5, NULL, NULL, NULL), RK_OK);
    cluster_table *copy = NULL;
    assert_int_equal(cluster_table_clone(t, &copy), RK_OK);
    assert_true(tables_equal(t, copy));
    cluster_heartbeat(t);
    assert_false(tables_equal(t, copy)); /* a deep copy */
    cluster_entry out[3];
    assert_int_equal(cluster_export(copy, out, 1), 3); /* as snprintf */
    assert_int_equal(out[0].id, 10);
    assert_int_equal(cluster_export(copy, out, 3), 3);
    assert_int_equal(out[1].id, 50);
    assert_int_equal(out[2].id, 70);
    cluster_table_free(copy);
    cluster_table_free(t);
    cluster_table_free(NULL);
}

static void test_set_status(void **state)
{
    (void)state;
    cluster_table *t = make_table(5, CLUSTER_JOINING, 0);
    bool changed = true;
    assert_int_equal(cluster_set_status(t, 5, CLUSTER_MEMBER, &changed), RK_OK);
    assert_false(changed); /* joining and member are both in the ring */
    assert_int_equal(cluster_set_status(t, 5, CLUSTER_JOINING, &changed), RK_EINVAL);
    assert_int_equal(cluster_set_status(t, 6, CLUSTER_REMOVED, &changed), RK_ENOTFOUND);
    assert_int_equal(cluster_set_status(t, 5, CLUSTER_LEAVING, &changed), RK_OK);
    assert_false(changed);
    assert_int_equal(cluster_set_status(t, 5, CLUSTER_REMOVED, &changed), RK_OK);
    assert_true(changed);
    assert_int_equal(cluster_set_status(t, 5, CLUSTER_MEMBER, NULL), RK_EINVAL);
    assert_int_equal(cluster_set_status(t, 5, CLUSTER_REMOVED, &changed), RK_OK);
    assert_false(changed);
    assert_int_equal(cluster_self(t)->entry.status, CLUSTER_REMOVED);
    cluster_table_free(t);
}

/* ---- merge ----------------------------------------------------------------- */

static void test_merge_rules(void **state)
{
    (void)state;
    cluster_table *t = make_table(1, CLUSTER_MEMBER, 0);
    event_log log = {0};
    cluster_merge_result res;

    /* Unknown ids are added, alive, heard now, in id order. */
    cluster_entry in[2] = {make_entry(3, CLUSTER_MEMBER, 2, 10),
                           make_entry(2, CLUSTER_REMOVED, 0, 0)};
    assert_int_equal(cluster_merge(t, in, 2, 100, log_cb, &log, &res), RK_OK);
    assert_int_equal(res.added, 2);
    assert_true(res.ring_changed);
    assert_false(res.refuted);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.ev[0].kind, CLUSTER_EVENT_ADDED);
    assert_int_equal(log.ev[0].node_id, 2);
    assert_int_equal(log.ev[1].node_id, 3);
    assert_int_equal(cluster_find(t, 3)->last_heard_ms, 100);

    /* An older or equal version changes nothing. */
    log.n = 0;
    cluster_entry old = make_entry(3, CLUSTER_MEMBER, 1, 99);
    assert_int_equal(cluster_merge(t, &old, 1, 200, log_cb, &log, &res), RK_OK);
    assert_int_equal(res.updated, 0);
    assert_int_equal(log.n, 0);
    assert_int_equal(cluster_find(t, 3)->entry.heartbeat, 10);
    assert_int_equal(cluster_find(t, 3)->last_heard_ms, 100);
    assert_int_equal(cluster_merge(t, &in[0], 1, 200, log_cb, &log, &res), RK_OK);
    assert_int_equal(cluster_find(t, 3)->last_heard_ms, 100);

    /* A newer version wins, addresses with it; heard now. */
    cluster_entry newer = make_entry(3, CLUSTER_MEMBER, 3, 0);
    strcpy(newer.http_addr, "10.0.0.3:80");
    assert_int_equal(cluster_merge(t, &newer, 1, 300, log_cb, &log, &res), RK_OK);
    assert_int_equal(res.updated, 1);
    assert_false(res.ring_changed);
    assert_string_equal(cluster_find(t, 3)->entry.http_addr, "10.0.0.3:80");
    assert_int_equal(cluster_find(t, 3)->last_heard_ms, 300);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.ev[0].kind, CLUSTER_EVENT_ADDRESS);

    /* The status moves forward with an older version, and never back. */
    log.n = 0;
    cluster_entry leaving = make_entry(3, CLUSTER_LEAVING, 0, 0);
    assert_int_equal(cluster_merge(t, &leaving, 1, 400, log_cb, &log, &res), RK_OK);
    assert_int_equal(cluster_find(t, 3)->entry.status, CLUSTER_LEAVING);
    assert_int_equal(cluster_find(t, 3)->entry.incarnation, 3); /* version kept */
    assert_int_equal(cluster_find(t, 3)->last_heard_ms, 300);   /* not news of life */
    assert_false(res.ring_changed);                             /* leaving is still in the ring */
    assert_int_equal(log.ev[0].kind, CLUSTER_EVENT_STATUS);
    assert_int_equal(log.ev[0].old_value, CLUSTER_MEMBER);
    assert_int_equal(log.ev[0].new_value, CLUSTER_LEAVING);
    cluster_entry back = make_entry(3, CLUSTER_MEMBER, 9, 9);
    assert_int_equal(cluster_merge(t, &back, 1, 500, NULL, NULL, &res), RK_OK);
    assert_int_equal(cluster_find(t, 3)->entry.status, CLUSTER_LEAVING);
    assert_int_equal(cluster_find(t, 3)->entry.incarnation, 9);
    cluster_entry gone = make_entry(3, CLUSTER_REMOVED, 0, 0);
    assert_int_equal(cluster_merge(t, &gone, 1, 500, NULL, NULL, &res), RK_OK);
    assert_true(res.ring_changed);
    /* Removed is final: a stale joining entry cannot bring 2 or 3 back. */
    cluster_entry again[2] = {make_entry(2, CLUSTER_JOINING, 50, 0),
                              make_entry(3, CLUSTER_MEMBER, 50, 0)};
    assert_int_equal(cluster_merge(t, again, 2, 600, NULL, NULL, &res), RK_OK);
    assert_false(res.ring_changed);
    uint64_t ids[4];
    assert_int_equal(cluster_ring_members(t, ids, 4), 1);
    assert_int_equal(ids[0], 1);
    cluster_table_free(t);
}

static void test_merge_rejects_bad_input(void **state)
{
    (void)state;
    cluster_table *t = make_table(1, CLUSTER_MEMBER, 0);
    event_log log = {0};
    cluster_entry in[3] = {make_entry(2, CLUSTER_MEMBER, 0, 1), make_entry(3, CLUSTER_MEMBER, 0, 1),
                           make_entry(4, CLUSTER_MEMBER, 0, 1)};
    uint64_t before = cluster_membership_version(t);

    in[2].id = 0;
    assert_int_equal(cluster_merge(t, in, 3, 1, log_cb, &log, NULL), RK_EINVAL);
    in[2].id = 4;
    in[2].status = (cluster_status)4;
    assert_int_equal(cluster_merge(t, in, 3, 1, log_cb, &log, NULL), RK_EINVAL);
    in[2].status = CLUSTER_MEMBER;
    memset(in[2].rpc_addr, 'a', sizeof in[2].rpc_addr); /* unterminated */
    assert_int_equal(cluster_merge(t, in, 3, 1, log_cb, &log, NULL), RK_EINVAL);
    in[2] = make_entry(2, CLUSTER_MEMBER, 5, 5); /* the same id twice */
    assert_int_equal(cluster_merge(t, in, 3, 1, log_cb, &log, NULL), RK_EINVAL);

    /* Nothing changed and no callback ran. */
    assert_int_equal(log.n, 0);
    assert_int_equal(cluster_member_count(t), 1);
    assert_int_equal(cluster_membership_version(t), before);
    assert_int_equal(cluster_merge(t, NULL, 0, 1, log_cb, &log, NULL), RK_OK);
    cluster_table_free(t);
}

static void test_merge_too_many_members(void **state)
{
    (void)state;
    cluster_table *t = make_table(1, CLUSTER_MEMBER, 0);
    cluster_entry *in = malloc(CLUSTER_MAX_MEMBERS * sizeof *in);
    assert_non_null(in);
    for (size_t i = 0; i < CLUSTER_MAX_MEMBERS; i++)
        in[i] = make_entry(1000 + i, CLUSTER_MEMBER, 0, 0);
    /* 4096 new ones plus the local node would be 4097. */
    assert_int_equal(cluster_merge(t, in, CLUSTER_MAX_MEMBERS, 0, NULL, NULL, NULL), RK_EINVAL);
    assert_int_equal(cluster_member_count(t), 1);
    assert_int_equal(cluster_merge(t, in, CLUSTER_MAX_MEMBERS - 1, 0, NULL, NULL, NULL), RK_OK);
    assert_int_equal(cluster_member_count(t), CLUSTER_MAX_MEMBERS);
    free(in);
    cluster_table_free(t);
}

static void test_refutation(void **state)
{
    (void)state;
    cluster_table *t = make_table(1, CLUSTER_MEMBER, 0);
    for (int i = 0; i < 5; i++)
        cluster_heartbeat(t); /* (0, 5) */
    event_log log = {0};
    cluster_merge_result res;

    /* Our own entry echoed back, or an older one: nothing to refute. */
    cluster_entry echo = cluster_self(t)->entry;
    assert_int_equal(cluster_merge(t, &echo, 1, 10, log_cb, &log, &res), RK_OK);
    assert_false(res.refuted);
    echo.heartbeat = 3;
    assert_int_equal(cluster_merge(t, &echo, 1, 10, log_cb, &log, &res), RK_OK);
    assert_false(res.refuted);
    assert_int_equal(log.n, 0);

    /* A claim newer than us (a previous life's heartbeat): overtake it. */
    cluster_entry claim = make_entry(1, CLUSTER_MEMBER, 4, 1000);
    strcpy(claim.http_addr, "old:1");
    assert_int_equal(cluster_merge(t, &claim, 1, 10, log_cb, &log, &res), RK_OK);
    assert_true(res.refuted);
    assert_int_equal(cluster_self(t)->entry.incarnation, 5);
    assert_string_not_equal(cluster_self(t)->entry.http_addr, "old:1");
    assert_int_equal(log.n, 1);
    assert_int_equal(log.ev[0].kind, CLUSTER_EVENT_REFUTED);
    assert_int_equal(log.ev[0].old_value, 0);
    assert_int_equal(log.ev[0].new_value, 5);
    assert_int_equal(cluster_self(t)->liveness, CLUSTER_ALIVE);

    /* Equal counters, different contents: the tie-break decides. A claim
     * that loses it loses everywhere, so it needs no answer; one that wins
     * it is refuted. */
    claim = cluster_self(t)->entry;
    strcpy(claim.name, "a-impostor"); /* < "n1" */
    assert_int_equal(cluster_merge(t, &claim, 1, 10, NULL, NULL, &res), RK_OK);
    assert_false(res.refuted);
    strcpy(claim.name, "z-impostor"); /* > "n1" */
    assert_int_equal(cluster_merge(t, &claim, 1, 10, NULL, NULL, &res), RK_OK);
    assert_true(res.refuted);
    assert_int_equal(cluster_self(t)->entry.incarnation, 6);

    /* The refuted version wins at a peer that believed the claim. */
    cluster_table *peer = make_table(2, CLUSTER_MEMBER, 0);
    claim = make_entry(1, CLUSTER_MEMBER, 5, 2000);
    assert_int_equal(cluster_merge(peer, &claim, 1, 10, NULL, NULL, NULL), RK_OK);
    push_pull(t, peer, 20);
    assert_true(entry_equal(&cluster_find(peer, 1)->entry, &cluster_self(t)->entry));

    /* A broken peer's maximal incarnation is still outranked. */
    claim = make_entry(1, CLUSTER_MEMBER, UINT64_MAX, 7);
    assert_int_equal(cluster_merge(t, &claim, 1, 25, NULL, NULL, &res), RK_OK);
    assert_true(res.refuted);
    assert_true(cluster_self(t)->entry.incarnation == UINT64_MAX);
    assert_true(cluster_self(t)->entry.heartbeat > 7);

    /* A status about ourselves is accepted: someone removed us. */
    cluster_entry removed = make_entry(1, CLUSTER_REMOVED, 0, 0);
    assert_int_equal(cluster_merge(t, &removed, 1, 30, NULL, NULL, &res), RK_OK);
    assert_true(res.ring_changed);
    assert_false(res.refuted);
    assert_int_equal(cluster_self(t)->entry.status, CLUSTER_REMOVED);
    cluster_table_free(peer);
    cluster_table_free(t);
}

static void test_delta(void **state)
{
    (void)state;
    cluster_table *a = make_table(1, CLUSTER_MEMBER, 0);
    cluster_table *b = make_table(2, CLUSTER_MEMBER, 0);
    cluster_entry ea[3] = {make_entry(3, CLUSTER_MEMBER, 1, 1),
                           make_entry(4, CLUSTER_LEAVING, 0, 0),
                           make_entry(5, CLUSTER_MEMBER, 0, 7)};
    cluster_entry eb[3] = {make_entry(3, CLUSTER_MEMBER, 1, 2), make_entry(4, CLUSTER_MEMBER, 0, 9),
                           make_entry(5, CLUSTER_MEMBER, 0, 7)};
    assert_int_equal(cluster_merge(a, ea, 3, 0, NULL, NULL, NULL), RK_OK);
    assert_int_equal(cluster_merge(b, eb, 3, 0, NULL, NULL, NULL), RK_OK);
    cluster_entry push[8], pull[8];
    size_t n = cluster_export(a, push, 8);
    /* b has: itself (unknown to a), 3 newer, 4 with a newer version (a has
     * the greater status). 5 is equal and 1 is a's own: not sent. */
    size_t d = cluster_delta(b, push, n, pull, 8);
    assert_int_equal(d, 3);
    assert_int_equal(pull[0].id, 2);
    assert_int_equal(pull[1].id, 3);
    assert_int_equal(pull[2].id, 4);
    assert_int_equal(cluster_delta(b, push, n, pull, 1), 3); /* as snprintf */
    /* Unsorted input gives the same answer. */
    cluster_entry rev[8];
    for (size_t i = 0; i < n; i++)
        rev[i] = push[n - 1 - i];
    assert_int_equal(cluster_delta(b, rev, n, pull, 8), 3);

    push_pull(a, b, 10);
    assert_true(tables_equal(a, b));
    assert_int_equal(cluster_find(a, 4)->entry.status, CLUSTER_LEAVING);
    assert_int_equal(cluster_find(a, 4)->entry.heartbeat, 9);
    /* Once equal, nothing more to send. */
    n = cluster_export(a, push, 8);
    assert_int_equal(cluster_delta(b, push, n, pull, 8), 0);
    cluster_table_free(a);
    cluster_table_free(b);
}

/* Random entries over a small id space, so they collide often. */
static size_t random_entries(cluster_entry *out, size_t max)
{
    size_t n = 0;
    for (uint64_t id = 2; id < 2 + max; id++) {
        if (rng_below(3) == 0)
            continue;
        out[n] = make_entry(id, (cluster_status)rng_below(CLUSTER_STATUS_COUNT), rng_below(3),
                            rng_below(4));
        if (rng_below(4) == 0)
            snprintf(out[n].name, sizeof out[n].name, "alt%u", rng_below(3));
        n++;
    }
    return n;
}

/* The merge is a join: order and repetition of deliveries do not matter. */
static void test_merge_is_a_join(void **state)
{
    (void)state;
    rng_seed_from_env("merge_is_a_join");
    for (int round = 0; round < 300; round++) {
        cluster_entry x[12], y[12], z[12];
        size_t nx = random_entries(x, 12), ny = random_entries(y, 12), nz = random_entries(z, 12);
        cluster_table *t1 = make_table(1, CLUSTER_MEMBER, 0);
        cluster_table *t2 = make_table(1, CLUSTER_MEMBER, 0);
        cluster_table *t3 = make_table(1, CLUSTER_MEMBER, 0);
        /* t1: x y z;  t2: z y x x;  t3: y, then x z y again */
        assert_int_equal(cluster_merge(t1, x, nx, 0, NULL, NULL, NULL), RK_OK);
        assert_int_equal(cluster_merge(t1, y, ny, 0, NULL, NULL, NULL), RK_OK);
        assert_int_equal(cluster_merge(t1, z, nz, 0, NULL, NULL, NULL), RK_OK);
        assert_int_equal(cluster_merge(t2, z, nz, 0, NULL, NULL, NULL), RK_OK);
        assert_int_equal(cluster_merge(t2, y, ny, 0, NULL, NULL, NULL), RK_OK);
        assert_int_equal(cluster_merge(t2, x, nx, 0, NULL, NULL, NULL), RK_OK);
        assert_int_equal(cluster_merge(t2, x, nx, 0, NULL, NULL, NULL), RK_OK);
        assert_int_equal(cluster_merge(t3, y, ny, 0, NULL, NULL, NULL), RK_OK);
        /* Associativity: x and z merged elsewhere first, then delivered. */
        cluster_table *u = make_table(99, CLUSTER_MEMBER, 0);
        assert_int_equal(cluster_merge(u, x, nx, 0, NULL, NULL, NULL), RK_OK);
        assert_int_equal(cluster_merge(u, z, nz, 0, NULL, NULL, NULL), RK_OK);
        cluster_entry ux[16];
        size_t nu = cluster_export(u, ux, 16);
        size_t w = 0;
        for (size_t i = 0; i < nu; i++)
            if (ux[i].id != 99)
                ux[w++] = ux[i];
        assert_int_equal(cluster_merge(t3, ux, w, 0, NULL, NULL, NULL), RK_OK);
        assert_int_equal(cluster_merge(t3, y, ny, 0, NULL, NULL, NULL), RK_OK);
        assert_true(tables_equal(t1, t2));
        assert_true(tables_equal(t1, t3));
        assert_int_equal(cluster_membership_version(t1), cluster_membership_version(t2));
        cluster_table_free(u);
        cluster_table_free(t1);
        cluster_table_free(t2);
        cluster_table_free(t3);
    }
}

/* ---- convergence by gossip ------------------------------------------------- */

#define SIM_NODES 8

/* Nodes join, leave and get removed while random pairs gossip; once the
 * changes stop, gossip makes every table hold the same rows, whatever the
 * order, and each status is the greatest any node set. Run twice with
 * different gossip orders over the same changes: same final member set. */
static uint64_t converge_once(const uint8_t final_status[SIM_NODES], uint64_t order_seed,
                              size_t *rounds_out)
{
    uint64_t saved = rng_state_get();
    rng_state_set(order_seed);
    cluster_table *t[SIM_NODES];
    t[0] = make_table(100, CLUSTER_MEMBER, 0);
    for (int i = 1; i < SIM_NODES; i++)
        t[i] = make_table(100 + (uint64_t)i, CLUSTER_JOINING, 0);
    /* Each node moves its own status (and one other node removes some)
     * forward step by step to final_status, interleaved with gossip. */
    for (int step = 0; step < 200; step++) {
        int i = (int)rng_below(SIM_NODES), j = (int)rng_below(SIM_NODES);
        uint64_t now = (uint64_t)step;
        int who = (int)rng_below(SIM_NODES);
        const cluster_member *m = cluster_find(t[who], 100 + (uint64_t)who);
        if (m->entry.status < final_status[who] && rng_below(4) == 0)
            assert_int_equal(
                cluster_set_status(t[who], 100 + (uint64_t)who, m->entry.status + 1, NULL), RK_OK);
        if (final_status[who] == CLUSTER_REMOVED && rng_below(10) == 0) {
            /* An operator removes it from another node. */
            int at = (who + 1) % SIM_NODES;
            cluster_entry e = make_entry(100 + (uint64_t)who, CLUSTER_REMOVED, 0, 0);
            assert_int_equal(cluster_merge(t[at], &e, 1, now, NULL, NULL, NULL), RK_OK);
        }
        cluster_heartbeat(t[i]);
        if (i != j)
            push_pull(t[i], t[j], now);
    }
    /* Let every node finish its changes, then gossip until all agree. */
    for (int i = 0; i < SIM_NODES; i++) {
        uint64_t id = 100 + (uint64_t)i;
        if (cluster_self(t[i])->entry.status < final_status[i])
            assert_int_equal(cluster_set_status(t[i], id, (cluster_status)final_status[i], NULL),
                             RK_OK);
    }
    size_t rounds = 0;
    for (;;) {
        bool same = true;
        for (int i = 1; i < SIM_NODES && same; i++)
            same = tables_equal(t[0], t[i]);
        if (same)
            break;
        assert_true(rounds < 10000);
        int i = (int)rng_below(SIM_NODES), j = (int)rng_below(SIM_NODES);
        if (i != j)
            push_pull(t[i], t[j], 1000 + rounds);
        rounds++;
    }
    for (int i = 0; i < SIM_NODES; i++)
        assert_int_equal(cluster_find(t[0], 100 + (uint64_t)i)->entry.status, final_status[i]);
    uint64_t version = cluster_membership_version(t[0]);
    for (int i = 0; i < SIM_NODES; i++) {
        assert_int_equal(cluster_membership_version(t[i]), version);
        cluster_table_free(t[i]);
    }
    *rounds_out = rounds;
    rng_state_set(saved);
    return version;
}

static void test_gossip_converges(void **state)
{
    (void)state;
    rng_seed_from_env("gossip_converges");
    for (int trial = 0; trial < 40; trial++) {
        uint8_t final_status[SIM_NODES];
        final_status[0] = CLUSTER_MEMBER;
        for (int i = 1; i < SIM_NODES; i++)
            final_status[i] = (uint8_t)rng_below(CLUSTER_STATUS_COUNT);
        size_t r1, r2;
        uint64_t v1 = converge_once(final_status, rng_next(), &r1);
        uint64_t v2 = converge_once(final_status, rng_next(), &r2);
        assert_int_equal(v1, v2);
    }
}

/* ---- the failure detector --------------------------------------------------- */

static void test_detector_timings(void **state)
{
    (void)state;
    cluster_config cfg = {.suspect_after_ms = 2000, .down_after_ms = 5000};
    cluster_entry self = make_entry(1, CLUSTER_MEMBER, 0, 0);
    cluster_table *t = NULL;
    assert_int_equal(cluster_table_alloc(&self, &cfg, 0, &t), RK_OK);
    cluster_entry peer[2] = {make_entry(2, CLUSTER_MEMBER, 0, 1),
                             make_entry(3, CLUSTER_MEMBER, 0, 1)};
    assert_int_equal(cluster_merge(t, peer, 2, 1000, NULL, NULL, NULL), RK_OK);
    uint64_t ring_before[4], ring_after[4];
    size_t nb = cluster_ring_members(t, ring_before, 4);
    uint64_t version_before = cluster_membership_version(t);
    event_log log = {0};

    assert_int_equal(cluster_tick(t, 2999, log_cb, &log), 0);
    assert_int_equal(cluster_find(t, 2)->liveness, CLUSTER_ALIVE);
    assert_int_equal(cluster_tick(t, 3000, log_cb, &log), 2);
    assert_int_equal(cluster_find(t, 2)->liveness, CLUSTER_SUSPECT);
    assert_int_equal(log.ev[0].kind, CLUSTER_EVENT_LIVENESS);
    assert_int_equal(log.ev[0].node_id, 2);
    assert_int_equal(log.ev[0].old_value, CLUSTER_ALIVE);
    assert_int_equal(log.ev[0].new_value, CLUSTER_SUSPECT);
    assert_int_equal(cluster_tick(t, 3001, log_cb, &log), 0); /* reported once */

    /* 3 sends a heartbeat (relayed by anyone): alive again, clock restarts. */
    peer[1].heartbeat = 2;
    log.n = 0;
    assert_int_equal(cluster_merge(t, &peer[1], 1, 4000, log_cb, &log, NULL), RK_OK);
    assert_int_equal(cluster_find(t, 3)->liveness, CLUSTER_ALIVE);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.ev[0].old_value, CLUSTER_SUSPECT);
    assert_int_equal(log.ev[0].new_value, CLUSTER_ALIVE);

    assert_int_equal(cluster_tick(t, 5999, NULL, NULL), 0);
    assert_int_equal(cluster_tick(t, 6000, NULL, NULL), 2); /* 2 down, 3 suspect */
    assert_int_equal(cluster_find(t, 2)->liveness, CLUSTER_DOWN);
    assert_int_equal(cluster_find(t, 3)->liveness, CLUSTER_SUSPECT);
    assert_int_equal(cluster_find(t, 1)->liveness, CLUSTER_ALIVE); /* never ourselves */

    /* Down is not removal: the ring and the membership version stand. */
    assert_int_equal(cluster_ring_members(t, ring_after, 4), nb);
    assert_memory_equal(ring_before, ring_after, nb * sizeof *ring_after);
    assert_int_equal(cluster_membership_version(t), version_before);

    /* Old news does not revive; a newer incarnation (a restart) does. */
    assert_int_equal(cluster_merge(t, &peer[0], 1, 7000, NULL, NULL, NULL), RK_OK);
    assert_int_equal(cluster_find(t, 2)->liveness, CLUSTER_DOWN);
    peer[0].incarnation = 1;
    peer[0].heartbeat = 0;
    assert_int_equal(cluster_merge(t, &peer[0], 1, 7000, NULL, NULL, NULL), RK_OK);
    assert_int_equal(cluster_find(t, 2)->liveness, CLUSTER_ALIVE);

    /* Sparse ticks jump straight from alive to down; a clock that seems to
     * go back counts as no time. */
    log.n = 0;
    assert_int_equal(cluster_tick(t, 100, log_cb, &log), 0);
    assert_int_equal(cluster_tick(t, 20000, log_cb, &log), 2);
    assert_int_equal(log.ev[0].node_id, 2);
    assert_int_equal(log.ev[0].old_value, CLUSTER_ALIVE);
    assert_int_equal(log.ev[0].new_value, CLUSTER_DOWN);
    assert_int_equal(log.ev[1].old_value, CLUSTER_SUSPECT);

    /* Removed members are not watched. */
    cluster_entry gone = make_entry(4, CLUSTER_REMOVED, 0, 0);
    assert_int_equal(cluster_merge(t, &gone, 1, 20000, NULL, NULL, NULL), RK_OK);
    assert_int_equal(cluster_tick(t, 90000, NULL, NULL), 0);
    assert_int_equal(cluster_find(t, 4)->liveness, CLUSTER_ALIVE);
    cluster_table_free(t);
}

/* ---- gossip loop on a fake clock: the timing claims of docs/membership.md -- */

#define LOOP_NODES 5
#define LOOP_STEP_MS 10
#define SIM_LOSS_PERCENT 10

typedef struct sim_node {
    cluster_table *table; /* NULL: not started yet */
    bool dead;
    uint64_t phase_ms; /* when in each interval this node's round fires */
} sim_node;

static int sim_index(uint64_t id)
{
    return (int)(id - 1);
}

/* One step of the gossip loop for every running node at time now: on its
 * round, a node raises its heartbeat and push-pulls with FANOUT alive or
 * suspect peers (a dead peer does not answer, SIM_LOSS_PERCENT of the
 * exchanges are lost); every node ticks. Exchanges take no time: a real
 * round trip of a few ms is small against the 250 ms interval. */
static void sim_step(sim_node *nodes, int count, uint64_t now)
{
    for (int i = 0; i < count; i++) {
        sim_node *n = &nodes[i];
        if (n->table == NULL || n->dead || now % CLUSTER_DEFAULT_GOSSIP_INTERVAL_MS != n->phase_ms)
            continue;
        cluster_heartbeat(n->table);
        uint64_t peers[CLUSTER_DEFAULT_FANOUT];
        size_t k = cluster_pick_peers(
            n->table, CLUSTER_LIVENESS_BIT(CLUSTER_ALIVE) | CLUSTER_LIVENESS_BIT(CLUSTER_SUSPECT),
            CLUSTER_DEFAULT_FANOUT, rng_cb, NULL, peers);
        for (size_t p = 0; p < k; p++) {
            sim_node *peer = &nodes[sim_index(peers[p])];
            /* One exchange in ten is lost, as on a congested network. */
            if (peer->table != NULL && !peer->dead && rng_below(100) >= SIM_LOSS_PERCENT)
                push_pull(n->table, peer->table, now);
        }
    }
    for (int i = 0; i < count; i++)
        if (nodes[i].table != NULL && !nodes[i].dead)
            cluster_tick(nodes[i].table, now, NULL, NULL);
}

static void sim_start(sim_node *n, uint64_t id, cluster_status status, uint64_t now)
{
    n->table = make_table(id, status, now);
    n->dead = false;
    n->phase_ms = rng_below(CLUSTER_DEFAULT_GOSSIP_INTERVAL_MS / LOOP_STEP_MS) * LOOP_STEP_MS;
}

/* A new node knows its seed: the first push-pull brings it the members. */
static void sim_join(sim_node *nodes, int i, uint64_t now)
{
    sim_start(&nodes[i], (uint64_t)i + 1, CLUSTER_JOINING, now);
    push_pull(nodes[i].table, nodes[0].table, now);
}

static bool sim_converged(sim_node *nodes, int count)
{
    for (int i = 0; i < count; i++) {
        if (nodes[i].table == NULL || cluster_member_count(nodes[i].table) != (size_t)count)
            return false;
        if (cluster_membership_version(nodes[i].table) !=
            cluster_membership_version(nodes[0].table))
            return false;
    }
    return true;
}

static void sim_free(sim_node *nodes, int count)
{
    for (int i = 0; i < count; i++)
        cluster_table_free(nodes[i].table);
}

static void test_join_converges_within_5s(void **state)
{
    (void)state;
    rng_seed_from_env("join_converges_within_5s");
    uint64_t worst = 0;
    for (int trial = 0; trial < 200; trial++) {
        sim_node nodes[LOOP_NODES] = {0};
        sim_start(&nodes[0], 1, CLUSTER_MEMBER, 0);
        /* The others join through node 1 at random times within 2 s. */
        uint64_t join_at[LOOP_NODES] = {0}, last_join = 0;
        for (int i = 1; i < LOOP_NODES; i++) {
            join_at[i] = LOOP_STEP_MS * (1 + rng_below(200));
            if (join_at[i] > last_join)
                last_join = join_at[i];
        }
        uint64_t now = 0;
        for (;; now += LOOP_STEP_MS) {
            for (int i = 1; i < LOOP_NODES; i++)
                if (join_at[i] == now)
                    sim_join(nodes, i, now);
            sim_step(nodes, LOOP_NODES, now);
            if (now >= last_join && sim_converged(nodes, LOOP_NODES))
                break;
            assert_true(now < last_join + 5000);
        }
        if (now - last_join > worst)
            worst = now - last_join;
        /* Nobody was taken for dead on the way. */
        for (int i = 0; i < LOOP_NODES; i++)
            for (size_t m = 0; m < cluster_member_count(nodes[i].table); m++)
                assert_int_not_equal(cluster_member_at(nodes[i].table, m)->liveness, CLUSTER_DOWN);
        sim_free(nodes, LOOP_NODES);
    }
    printf("# join_converges_within_5s: worst %" PRIu64 " ms after the last join\n", worst);
}

static void test_killed_node_down_within_10s(void **state)
{
    (void)state;
    rng_seed_from_env("killed_node_down_within_10s");
    uint64_t worst = 0, best = UINT64_MAX;
    for (int trial = 0; trial < 100; trial++) {
        sim_node nodes[LOOP_NODES] = {0};
        sim_start(&nodes[0], 1, CLUSTER_MEMBER, 0);
        for (int i = 1; i < LOOP_NODES; i++)
            sim_join(nodes, i, 0);
        /* Run 20 s: nobody is ever suspected of being down. */
        uint64_t now = 0;
        for (; now < 20000; now += LOOP_STEP_MS) {
            sim_step(nodes, LOOP_NODES, now);
            for (int i = 0; i < LOOP_NODES; i++)
                for (size_t m = 0; m < cluster_member_count(nodes[i].table); m++)
                    assert_int_not_equal(cluster_member_at(nodes[i].table, m)->liveness,
                                         CLUSTER_DOWN);
        }
        /* SIGKILL one at a random moment. */
        now += LOOP_STEP_MS * rng_below(CLUSTER_DEFAULT_GOSSIP_INTERVAL_MS / LOOP_STEP_MS);
        int victim = (int)rng_below(LOOP_NODES);
        uint64_t victim_id = (uint64_t)victim + 1, killed_at = now;
        nodes[victim].dead = true;
        uint64_t ring_before = cluster_membership_version(nodes[(victim + 1) % LOOP_NODES].table);
        for (;; now += LOOP_STEP_MS) {
            sim_step(nodes, LOOP_NODES, now);
            bool all_down = true;
            for (int i = 0; i < LOOP_NODES; i++)
                if (i != victim &&
                    cluster_find(nodes[i].table, victim_id)->liveness != CLUSTER_DOWN)
                    all_down = false;
            if (all_down)
                break;
            assert_true(now - killed_at < 10000);
        }
        uint64_t took = now - killed_at;
        worst = took > worst ? took : worst;
        best = took < best ? took : best;
        /* Down everywhere, yet still a ring member everywhere; and no live
         * node is down. */
        for (int i = 0; i < LOOP_NODES; i++) {
            if (i == victim)
                continue;
            assert_int_equal(cluster_membership_version(nodes[i].table), ring_before);
            for (int j = 0; j < LOOP_NODES; j++)
                if (j != victim)
                    assert_int_not_equal(cluster_find(nodes[i].table, (uint64_t)j + 1)->liveness,
                                         CLUSTER_DOWN);
        }
        sim_free(nodes, LOOP_NODES);
    }
    printf("# killed_node_down_within_10s: seen down by all in %" PRIu64 "..%" PRIu64 " ms\n", best,
           worst);
}

/* ---- peer selection and the ring member set ---------------------------------- */

static void test_pick_peers(void **state)
{
    (void)state;
    rng_seed_from_env("pick_peers");
    cluster_config cfg = {.suspect_after_ms = 100, .down_after_ms = 200};
    cluster_entry self = make_entry(1, CLUSTER_MEMBER, 0, 0);
    cluster_table *t = NULL;
    assert_int_equal(cluster_table_alloc(&self, &cfg, 0, &t), RK_OK);
    uint64_t out[16];
    unsigned live = CLUSTER_LIVENESS_BIT(CLUSTER_ALIVE) | CLUSTER_LIVENESS_BIT(CLUSTER_SUSPECT);
    assert_int_equal(cluster_pick_peers(t, live, 3, rng_cb, NULL, out), 0); /* alone */

    /* 2..9 members; 10 removed; 11 and 12 go down. */
    cluster_entry in[11];
    for (int i = 0; i < 11; i++)
        in[i] = make_entry(2 + (uint64_t)i, i == 8 ? CLUSTER_REMOVED : CLUSTER_MEMBER, 0, 0);
    assert_int_equal(cluster_merge(t, in, 11, 0, NULL, NULL, NULL), RK_OK);
    cluster_tick(t, 300, NULL, NULL);
    for (int i = 0; i < 8; i++)
        in[i].heartbeat = 1;
    assert_int_equal(cluster_merge(t, in, 8, 300, NULL, NULL, NULL), RK_OK);

    size_t counts[16] = {0};
    const int draws = 20000;
    for (int d = 0; d < draws; d++) {
        size_t k = cluster_pick_peers(t, live, 3, rng_cb, NULL, out);
        assert_int_equal(k, 3);
        for (size_t a = 0; a < k; a++) {
            assert_true(out[a] >= 2 && out[a] <= 9);
            for (size_t b = 0; b < a; b++)
                assert_int_not_equal(out[a], out[b]);
            counts[out[a]]++;
        }
    }
    /* Each of 8 candidates: expected 3/8 of draws, sd ~ 68. */
    for (int id = 2; id <= 9; id++)
        assert_true(counts[id] > 7500 - 500 && counts[id] < 7500 + 500);
    /* More asked than there are: all of them. */
    assert_int_equal(cluster_pick_peers(t, live, 16, rng_cb, NULL, out), 8);
    /* The probe of down peers sees only 11 and 12. */
    assert_int_equal(
        cluster_pick_peers(t, CLUSTER_LIVENESS_BIT(CLUSTER_DOWN), 5, rng_cb, NULL, out), 2);
    assert_true((out[0] == 11 && out[1] == 12) || (out[0] == 12 && out[1] == 11));
    assert_int_equal(cluster_pick_peers(t, live, 0, rng_cb, NULL, out), 0);
    cluster_table_free(t);
}

static void test_ring_members_and_version(void **state)
{
    (void)state;
    cluster_table *a = make_table(40, CLUSTER_MEMBER, 0);
    cluster_table *b = make_table(20, CLUSTER_JOINING, 0);
    cluster_entry ea[3] = {make_entry(30, CLUSTER_LEAVING, 0, 0),
                           make_entry(20, CLUSTER_JOINING, 0, 0),
                           make_entry(10, CLUSTER_REMOVED, 0, 0)};
    cluster_entry eb[3] = {make_entry(10, CLUSTER_REMOVED, 3, 3),
                           make_entry(40, CLUSTER_MEMBER, 2, 2),
                           make_entry(30, CLUSTER_LEAVING, 1, 1)};
    assert_int_equal(cluster_merge(a, ea, 3, 0, NULL, NULL, NULL), RK_OK);
    assert_int_equal(cluster_merge(b, eb, 3, 0, NULL, NULL, NULL), RK_OK);
    uint64_t ids[8];
    size_t n = cluster_ring_members(a, ids, 8);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 20);
    assert_int_equal(ids[1], 30);
    assert_int_equal(ids[2], 40);
    assert_int_equal(cluster_ring_members(a, ids, 1), 3); /* as snprintf */
    assert_int_equal(cluster_ring_members(a, NULL, 0), 3);
    /* Same ids and statuses, different versions and insertion order. */
    assert_int_equal(cluster_membership_version(a), cluster_membership_version(b));
    cluster_heartbeat(a);
    assert_int_equal(cluster_membership_version(a), cluster_membership_version(b));
    assert_int_equal(cluster_set_status(b, 20, CLUSTER_MEMBER, NULL), RK_OK);
    assert_int_not_equal(cluster_membership_version(a), cluster_membership_version(b));
    /* Pinned: the hash is part of the protocol. */
    cluster_table *one = make_table(1, CLUSTER_MEMBER, 0);
    assert_int_equal(cluster_membership_version(one), 0xe6011d3a248d4849u);
    cluster_table_free(one);
    cluster_table_free(a);
    cluster_table_free(b);
}

/* ---- persistence --------------------------------------------------------------- */

static void test_codec_roundtrip(void **state)
{
    (void)state;
    cluster_table *t = make_table(7, CLUSTER_MEMBER, 0);
    for (int i = 0; i < 12; i++)
        cluster_heartbeat(t);
    cluster_entry in[3] = {make_entry(3, CLUSTER_LEAVING, 2, 99),
                           make_entry(9, CLUSTER_REMOVED, 0, 1),
                           make_entry(UINT64_MAX, CLUSTER_JOINING, 1, 0)};
    memset(in[0].name, 'n', CLUSTER_NAME_MAX);
    in[0].name[CLUSTER_NAME_MAX] = '\0';
    memset(in[0].http_addr, 'h', CLUSTER_ADDR_MAX);
    in[0].http_addr[CLUSTER_ADDR_MAX] = '\0';
    in[1].rpc_addr[0] = '\0';
    assert_int_equal(cluster_merge(t, in, 3, 0, NULL, NULL, NULL), RK_OK);
    cluster_tick(t, 1000000, NULL, NULL); /* all down: not kept */

    rk_buf buf = {0};
    assert_int_equal(cluster_table_encode(t, &buf), RK_OK);

    /* Restart with a new http address. */
    cluster_entry me = make_entry(7, CLUSTER_JOINING, 0, 0);
    strcpy(me.http_addr, "0.0.0.0:8080");
    cluster_table *r = NULL;
    assert_int_equal(cluster_table_decode(buf.data, buf.len, &me, NULL, 5000, &r), RK_OK);
    assert_int_equal(cluster_member_count(r), 4);
    for (size_t i = 0; i < cluster_member_count(r); i++) {
        const cluster_member *m = cluster_member_at(r, i);
        assert_int_equal(m->liveness, CLUSTER_ALIVE);
        assert_int_equal(m->last_heard_ms, 5000);
        if (m->entry.id != 7)
            assert_true(entry_equal(&m->entry, &cluster_find(t, m->entry.id)->entry));
    }
    const cluster_member *s = cluster_self(r);
    assert_int_equal(s->entry.status, CLUSTER_MEMBER); /* stored, not the flag's */
    assert_int_equal(s->entry.incarnation, 1);
    assert_int_equal(s->entry.heartbeat, 0);
    assert_string_equal(s->entry.http_addr, "0.0.0.0:8080");
    /* The restarted node's first gossip overrides its previous life. */
    cluster_table *peer = make_table(3, CLUSTER_LEAVING, 0);
    cluster_entry old_me = cluster_self(t)->entry;
    assert_int_equal(cluster_merge(peer, &old_me, 1, 0, NULL, NULL, NULL), RK_OK);
    push_pull(r, peer, 6000);
    assert_string_equal(cluster_find(peer, 7)->entry.http_addr, "0.0.0.0:8080");
    cluster_table_free(peer);

    /* Encoding is deterministic: decode then encode gives the same rows. */
    cluster_table *r2 = NULL;
    rk_buf buf2 = {0};
    assert_int_equal(cluster_table_encode(r, &buf2), RK_OK);
    assert_int_equal(cluster_table_decode(buf2.data, buf2.len, &me, NULL, 0, &r2), RK_OK);
    assert_int_equal(cluster_self(r2)->entry.incarnation, 2);
    assert_int_equal(cluster_membership_version(r2), cluster_membership_version(t));

    /* Another node's data dir. */
    cluster_entry other = make_entry(8, CLUSTER_MEMBER, 0, 0);
    cluster_table *x = NULL;
    assert_int_equal(cluster_table_decode(buf.data, buf.len, &other, NULL, 0, &x), RK_EINVAL);
    assert_null(x);
    rk_buf_free(&buf);
    rk_buf_free(&buf2);
    cluster_table_free(r);
    cluster_table_free(r2);
    cluster_table_free(t);
}

static void test_codec_rejects_corruption(void **state)
{
    (void)state;
    rng_seed_from_env("codec_rejects_corruption");
    cluster_table *t = make_table(7, CLUSTER_MEMBER, 0);
    cluster_entry in[2] = {make_entry(3, CLUSTER_LEAVING, 2, 99),
                           make_entry(9, CLUSTER_MEMBER, 0, 1)};
    assert_int_equal(cluster_merge(t, in, 2, 0, NULL, NULL, NULL), RK_OK);
    rk_buf buf = {0};
    assert_int_equal(cluster_table_encode(t, &buf), RK_OK);
    cluster_entry me = make_entry(7, CLUSTER_MEMBER, 0, 0);
    cluster_table *r = NULL;

    /* Every truncation and one byte too many. */
    for (size_t len = 0; len < buf.len; len++)
        assert_int_equal(cluster_table_decode(buf.data, len, &me, NULL, 0, &r), RK_ECORRUPT);
    assert_int_equal(rk_buf_append(&buf, "", 1), RK_OK);
    assert_int_equal(cluster_table_decode(buf.data, buf.len, &me, NULL, 0, &r), RK_ECORRUPT);
    buf.len--;

    /* Specific damage: bad magic, format, a status, ids out of order, a NUL
     * inside a string. Offsets: header 17 bytes, then row 3. */
    uint8_t *p = (uint8_t *)buf.data;
    struct {
        size_t at;
        uint8_t value;
    } damage[] = {{0, 'X'}, {4, 2}, {17 + 8, 4}, {17 + 7, 10}, {17 + 26, 0}};
    for (size_t d = 0; d < sizeof damage / sizeof *damage; d++) {
        uint8_t saved = p[damage[d].at];
        p[damage[d].at] = damage[d].value;
        assert_int_equal(cluster_table_decode(buf.data, buf.len, &me, NULL, 0, &r), RK_ECORRUPT);
        p[damage[d].at] = saved;
    }
    assert_int_equal(cluster_table_decode(buf.data, buf.len, &me, NULL, 0, &r), RK_OK);
    cluster_table_free(r);

    /* Random byte flips: a clean error or a valid table, never a crash
     * (the sanitizer run checks the reads). */
    for (int round = 0; round < 2000; round++) {
        rk_buf copy = {0};
        assert_int_equal(rk_buf_append(&copy, buf.data, buf.len), RK_OK);
        int flips = 1 + (int)rng_below(3);
        for (int f = 0; f < flips; f++)
            copy.data[rng_below(copy.len)] ^= (char)(1u << rng_below(8));
        r = NULL;
        rk_err err = cluster_table_decode(copy.data, copy.len, &me, NULL, 0, &r);
        assert_true(err == RK_OK || err == RK_ECORRUPT || err == RK_EINVAL);
        if (err == RK_OK) {
            assert_non_null(cluster_self(r));
            cluster_table_free(r);
        }
        rk_buf_free(&copy);
    }
    rk_buf_free(&buf);
    cluster_table_free(t);
}

/* ---- the join check ------------------------------------------------------------ */

static void test_check_join(void **state)
{
    (void)state;
    cluster_params cluster = {.cluster_id = 0xabcdef, .n = 3, .partitions = 65536};
    cluster_params fresh = {.cluster_id = 0, .n = 3, .partitions = 65536};
    char reason[256];
    assert_int_equal(cluster_check_join(&fresh, &cluster, reason, sizeof reason), RK_OK);
    assert_int_equal(cluster_check_join(&cluster, &cluster, NULL, 0), RK_OK);

    cluster_params other = cluster;
    other.cluster_id = 0x1234;
    assert_int_equal(cluster_check_join(&other, &cluster, reason, sizeof reason), RK_EINVAL);
    assert_non_null(strstr(reason, "cluster 0000000000001234"));
    assert_non_null(strstr(reason, "0000000000abcdef"));

    cluster_params n5 = fresh;
    n5.n = 5;
    assert_int_equal(cluster_check_join(&n5, &cluster, reason, sizeof reason), RK_EINVAL);
    assert_non_null(strstr(reason, "n=5"));
    assert_non_null(strstr(reason, "--n 3"));

    cluster_params q = cluster;
    q.partitions = 1024;
    assert_int_equal(cluster_check_join(&q, &cluster, reason, sizeof reason), RK_EINVAL);
    assert_non_null(strstr(reason, "--partitions 65536"));
    char tiny[8];
    assert_int_equal(cluster_check_join(&q, &cluster, tiny, sizeof tiny), RK_EINVAL);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    assert_int_equal(cluster_check_join(&q, &cluster, NULL, 0), RK_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entry_init),
        cmocka_unit_test(test_table_basics),
        cmocka_unit_test(test_set_status),
        cmocka_unit_test(test_merge_rules),
        cmocka_unit_test(test_merge_rejects_bad_input),
        cmocka_unit_test(test_merge_too_many_members),
        cmocka_unit_test(test_refutation),
        cmocka_unit_test(test_delta),
        cmocka_unit_test(test_merge_is_a_join),
        cmocka_unit_test(test_gossip_converges),
        cmocka_unit_test(test_detector_timings),
        cmocka_unit_test(test_join_converges_within_5s),
        cmocka_unit_test(test_killed_node_down_within_10s),
        cmocka_unit_test(test_pick_peers),
        cmocka_unit_test(test_ring_members_and_version),
        cmocka_unit_test(test_codec_roundtrip),
        cmocka_unit_test(test_codec_rejects_corruption),
        cmocka_unit_test(test_check_join),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
