/* test_coord.c - the coordinator (src/kv/coord.c) and the hints it keeps,
 * delivered by the sync service (src/sync/hints.c), with real nodes in one
 * process: a RocksDB store, a kv service, the membership, sealed RPC on
 * 127.0.0.1 and (where a test needs it) the sync service per node, short
 * timings. This is
 * where the coordinator's threads, callbacks and reference counts run under
 * ASan and UBSan (the integration tests run the normal build). Every wait
 * polls with a generous deadline; no timing is asserted. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ringkv/kv.h"
#include "node_fixture.h"
#include "support.h"
#include "sync/sync_internal.h" /* sync_hint_pass, sync_push_hints */

#define MAX_NODES 4
#define WAIT_MS 15000u

/* As in test_cluster_node.c: NNG 1.5.2 can leak a request frame when a
 * peer's connection closes while the request is handed to it, and these
 * tests stop nodes others are talking to. Only the RPC layer's frames are
 * excused. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:rpc_frame_encode\nleak:libnng.so\n";
}

typedef test_node tnode;

typedef struct fixture {
    tnode nodes[MAX_NODES];
    size_t count;
    bool handoff;
    /* Each node runs its sync service: hints are delivered (and a node
     * that comes back starts anti-entropy, so tests of read repair alone
     * run without it). */
    bool sync;
    bool refuses_hints[MAX_NODES]; /* started with handoff off, whatever handoff says */
} fixture;

/* Starts (or restarts from its dir) node i; seed is the node to join
 * through on first start, or -1. */
static void node_up(fixture *f, size_t i, int seed)
{
    kv_config kc;
    kv_config_default(&kc);
    kc.timeout_ms = 500;
    kc.handoff = f->handoff && !f->refuses_hints[i];
    sync_config sc;
    sync_config_default(&sc);
    sc.anti_entropy_interval_ms = 0; /* only when a peer returns */
    sc.deliver_hints = kc.handoff;   /* as ringkvd's --handoff */
    sc.hint_interval_ms = 50;
    test_node_up(&f->nodes[i], i, &kc, f->sync ? &sc : NULL,
                 seed >= 0 ? f->nodes[seed].rpc_addr : NULL);
}

static void node_down(fixture *f, size_t i)
{
    test_node_down(&f->nodes[i]);
}

/* Every running node sees count members, each alive (or, for a stopped
 * node, down). */
static bool converged(void *arg)
{
    fixture *f = arg;
    for (size_t i = 0; i < f->count; i++) {
        if (!f->nodes[i].up)
            continue;
        cluster_view *v = cluster_node_view(f->nodes[i].cn);
        bool ok = v->count == f->count;
        for (size_t j = 0; ok && j < f->count; j++)
            ok = cluster_view_alive(v, f->nodes[j].id) == f->nodes[j].up;
        cluster_view_unref(v);
        if (!ok)
            return false;
    }
    return true;
}

static fixture *cluster_up_with(size_t count, bool handoff, bool sync)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->count = count;
    f->handoff = handoff;
    f->sync = sync;
    for (size_t i = 0; i < count; i++)
        node_up(f, i, i == 0 ? -1 : 0);
    assert_true(wait_for(converged, f, WAIT_MS));
    return f;
}

/* No sync service: hints are stored, never delivered. */
static fixture *cluster_up(size_t count, bool handoff)
{
    return cluster_up_with(count, handoff, false);
}

static void cluster_down(fixture *f)
{
    for (size_t i = 0; i < f->count; i++)
        test_node_destroy(&f->nodes[i]);
    free(f);
}

static kv_key key_of(const char *key)
{
    return (kv_key){"t", 1, key, strlen(key)};
}

static rk_err put(tnode *tn, const char *key, const char *value, unsigned w, bool strict,
                  kv_result *res)
{
    kv_write wr = {
        .key = key_of(key), .value = value, .value_len = strlen(value), .w = w, .strict = strict};
    return kv_put(tn->k, &wr, res);
}

/* The live winner of key through node tn (local or quorum), or NULL. The
 * returned text is valid until the next call. */
static const char *read_value(tnode *tn, const char *key, bool local, unsigned r)
{
    static char text[256];
    kv_read_opts o = {.local = local, .r = r};
    kv_result res;
    rk_err err = kv_get(tn->k, &(kv_key){"t", 1, key, strlen(key)}, &o, &res);
    const sibling *s = err == RK_OK ? object_live_winner(&res.obj) : NULL;
    if (s != NULL)
        snprintf(text, sizeof text, "%s", s->value);
    kv_result_free(&res);
    return s != NULL ? text : NULL;
}

typedef struct local_want {
    fixture *f;
    size_t node;
    const char *key, *value;
} local_want;

static bool holds_locally(void *arg)
{
    const local_want *w = arg;
    const char *v = read_value(&w->f->nodes[w->node], w->key, true, 0);
    return v != NULL && strcmp(v, w->value) == 0;
}

/* Node 0 has kept at least 1 hint. */
static bool one_hint_kept(void *arg)
{
    fixture *f = arg;
    kv_stats ks;
    kv_get_stats(f->nodes[0].k, &ks);
    return ks.hints_stored >= 1;
}

/* Node 0 has kept at least 2 hints. */
static bool two_hints_kept(void *arg)
{
    fixture *f = arg;
    kv_stats ks;
    kv_get_stats(f->nodes[0].k, &ks);
    return ks.hints_stored >= 2;
}

/* A key of table "t" (prefix and a number) whose N=3 replicas do not
 * include node `outside`; their ids go to pref. */
static void key_not_on(fixture *f, size_t outside, const char *prefix, char key[32],
                       uint64_t pref[3])
{
    cluster_view *v = cluster_node_view(f->nodes[outside].cn);
    uint64_t id = f->nodes[outside].id;
    for (int i = 0;; i++) {
        snprintf(key, 32, "%s%d", prefix, i);
        ring_preference_list(v->ring, ring_position("t", 1, key, strlen(key)), pref, 3);
        if (pref[0] != id && pref[1] != id && pref[2] != id)
            break;
    }
    cluster_view_unref(v);
}

/* ---- tests ---------------------------------------------------------------- */

/* Written through one node, read through another; every node of three holds
 * it (N = 3) without any read repair. */
static void test_write_one_read_another(void **state)
{
    (void)state;
    fixture *f = cluster_up(3, true);
    kv_result res;
    assert_int_equal(put(&f->nodes[0], "a", "\"one\"", 3, false, &res), RK_OK);
    assert_int_equal(res.acks, 3);
    assert_int_equal(res.answered_count, 3);
    assert_int_equal(res.obj.siblings[0].dot.actor, f->nodes[0].id);
    kv_result_free(&res);
    assert_string_equal(read_value(&f->nodes[2], "a", false, 3), "\"one\"");
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(read_value(&f->nodes[i], "a", true, 0), "\"one\"");
    kv_read_opts o = {.r = 2};
    kv_result missing;
    assert_int_equal(kv_get(f->nodes[1].k, &(kv_key){"t", 1, "nope", 4}, &o, &missing),
                     RK_ENOTFOUND);
    assert_true(missing.acks >= 2);
    kv_result_free(&missing);
    cluster_down(f);
}

/* A key whose replicas exclude node 3 of four: the write is applied by a
 * replica over Kv.Apply, so the dot names a replica, never node 3. */
static void test_write_from_a_non_replica_is_applied_by_a_replica(void **state)
{
    (void)state;
    fixture *f = cluster_up(4, true);
    char key[32];
    uint64_t pref[3];
    key_not_on(f, 3, "k", key, pref);
    kv_result res;
    assert_int_equal(put(&f->nodes[3], key, "{\"x\":1}", 3, false, &res), RK_OK);
    rk_actor actor = res.obj.siblings[0].dot.actor;
    assert_true(actor == pref[0] || actor == pref[1] || actor == pref[2]);
    assert_int_equal(res.acks, 3);
    kv_result_free(&res);
    kv_stats ks;
    kv_get_stats(f->nodes[3].k, &ks);
    assert_int_equal(ks.forwarded_writes, 1);
    assert_null(read_value(&f->nodes[3], key, true, 0)); /* not a replica: no copy */
    assert_string_equal(read_value(&f->nodes[3], key, false, 3), "{\"x\":1}");
    cluster_down(f);
}

/* The first replica of a key dies and the others do not know yet: a write
 * coordinated by a non-replica still gets applied by the next replica
 * within the request's time, instead of waiting it all out on the dead one. */
static void test_non_replica_fails_over_to_the_next_replica(void **state)
{
    (void)state;
    fixture *f = cluster_up(4, true);
    char key[32];
    uint64_t pref[3];
    key_not_on(f, 3, "f", key, pref);
    size_t first = 0;
    while (f->nodes[first].id != pref[0])
        first++;
    node_down(f, first); /* no wait: nobody calls it down yet */
    kv_result res;
    kv_write wr = {.key = key_of(key), .value = "7", .value_len = 1, .w = 1};
    assert_int_equal(kv_put(f->nodes[3].k, &wr, &res), RK_OK);
    assert_true(res.obj.siblings[0].dot.actor == pref[1] ||
                res.obj.siblings[0].dot.actor == pref[2]);
    kv_result_free(&res);
    cluster_down(f);
}

/* Node 2 took at least 3 hints and nodes 0 and 1 delivered at least 3. */
static bool three_hints_delivered(void *arg)
{
    fixture *f = arg;
    kv_stats ks;
    kv_get_stats(f->nodes[2].k, &ks);
    sync_stats a, b;
    sync_get_stats(f->nodes[0].sync, &a);
    sync_get_stats(f->nodes[1].sync, &b);
    return ks.hints_received >= 3 && a.hints_delivered + b.hints_delivered >= 3;
}

/* A sync call to a peer whose RPC server is gone waits in NNG until its
 * deadline (SYNC_CALL_TIMEOUT_MS); sync_stop must not wait for it. Found
 * when a node of a cluster stopped all at once took 10 s to exit: its sync
 * thread was calling a peer that had just closed. */
typedef struct stuck_call {
    fixture *f;
    rk_err err;
} stuck_call;

static void *call_gone_peer(void *arg)
{
    stuck_call *sc = arg;
    sync_service *s = sc->f->nodes[0].sync;
    sync_rings r;
    assert_int_equal(sync_rings_take(s, &r), RK_OK);
    Ringkv__SyncRings rings;
    sync_rings_to_pb(s, &r, &rings);
    Ringkv__SyncStatusRequest req = RINGKV__SYNC_STATUS_REQUEST__INIT;
    req.rings = &rings;
    ProtobufCMessage *reply = NULL;
    sc->err = sync_call(s, &r, sc->f->nodes[1].id, "Status", &req.base, &reply, NULL);
    rpc_reply_free(reply);
    sync_rings_release(&r);
    return NULL;
}

static bool call_waiting(void *arg)
{
    return sync_calls_waiting(((fixture *)arg)->nodes[0].sync) > 0;
}

static void test_sync_stop_does_not_wait_for_a_gone_peer(void **state)
{
    (void)state;
    fixture *f = cluster_up_with(2, true, true);
    rpc_server_close(f->nodes[1].srv); /* c2 still in c1's view, answering nothing */
    f->nodes[1].srv = NULL;
    stuck_call sc = {.f = f, .err = RK_OK};
    pthread_t caller;
    assert_int_equal(pthread_create(&caller, NULL, call_gone_peer, &sc), 0);
    assert_true(wait_for(call_waiting, f, WAIT_MS));
    uint64_t start = rk_monotonic_ms();
    sync_stop(f->nodes[0].sync);
    pthread_join(caller, NULL);
    uint64_t took = rk_monotonic_ms() - start;
    assert_int_equal(sc.err, RK_ECLOSED);
    /* Not a speed figure: waiting out the call would take SYNC_CALL_TIMEOUT_MS. */
    assert_true(took < SYNC_CALL_TIMEOUT_MS / 2);
    cluster_down(f);
}

/* One replica down: W=2 writes succeed and leave a hint on the
 * coordinator, a strict W=3 fails with 2 acks, and the restarted replica
 * gets the writes by handoff alone: the coordinators' sync services hand
 * them over, without any read. */
static void test_down_replica_gets_its_hints(void **state)
{
    (void)state;
    fixture *f = cluster_up_with(3, true, true);
    node_down(f, 2);
    assert_true(wait_for(converged, f, WAIT_MS));
    kv_result res;
    assert_int_equal(put(&f->nodes[0], "h1", "1", 2, false, &res), RK_OK);
    assert_int_equal(res.acks, 2);
    kv_result_free(&res);
    assert_int_equal(put(&f->nodes[1], "h2", "2", 2, true, &res), RK_OK);
    kv_result_free(&res);
    assert_int_equal(put(&f->nodes[0], "h3", "3", 3, true, &res), RK_EQUORUM);
    assert_int_equal(res.acks, 2);
    assert_int_equal(res.needed, 3);
    kv_result_free(&res);
    /* hints are kept once every target answered, which may be just after
     * the put returned */
    assert_true(wait_for(two_hints_kept, f, WAIT_MS));

    node_up(f, 2, -1);
    local_want wants[] = {{f, 2, "h1", "1"}, {f, 2, "h2", "2"}, {f, 2, "h3", "3"}};
    for (size_t i = 0; i < 3; i++)
        assert_true(wait_for(holds_locally, &wants[i], WAIT_MS));
    /* by hints, not only by the anti-entropy its return starts */
    assert_true(wait_for(three_hints_delivered, f, WAIT_MS));
    cluster_down(f);
}

static bool collect_hint_cb(void *arg, const char *dbkey, size_t dbkey_len, const char *val,
                            size_t val_len)
{
    return sync_records_add(arg, dbkey, dbkey_len, val, val_len) == RK_OK;
}

typedef struct hint_gone {
    fixture *f;
    const replica_key *key;
} hint_gone;

/* Node 0 no longer holds the hint for node 2, and node 2 took it. */
static bool hint_handed_over(void *arg)
{
    const hint_gone *g = arg;
    rk_buf held = {0};
    rk_err err =
        replica_read(g->f->nodes[0].rp, g->key->dbkey, g->key->dbkey_len, g->f->nodes[2].id, &held);
    rk_buf_free(&held);
    kv_stats ks;
    kv_get_stats(g->f->nodes[2].k, &ks);
    return err == RK_ENOTFOUND && ks.hints_received >= 1;
}

/* A node started with handoff off (--handoff off) refuses hints pushed to
 * it, and the node that holds them keeps them; once it takes hints again,
 * it gets them. */
static void test_handoff_off_refuses_hints_and_the_sender_keeps_them(void **state)
{
    (void)state;
    fixture *f = cluster_up_with(3, true, true);
    node_down(f, 2);
    assert_true(wait_for(converged, f, WAIT_MS));
    kv_result res;
    assert_int_equal(put(&f->nodes[0], "k", "1", 2, false, &res), RK_OK);
    kv_result_free(&res);
    assert_true(wait_for(one_hint_kept, f, WAIT_MS));

    f->refuses_hints[2] = true;
    node_up(f, 2, -1);
    assert_true(wait_for(converged, f, WAIT_MS));
    tnode *sender = &f->nodes[0], *refuser = &f->nodes[2];
    replica_key key;
    assert_int_equal(replica_key_init(&key, "t", 1, "k", 1), RK_OK);

    /* The push itself is refused, as unsupported... */
    sync_records held = {0};
    assert_int_equal(replica_hint_scan(sender->rp, refuser->id, NULL, 0, collect_hint_cb, &held),
                     RK_OK);
    assert_int_equal(held.count, 1);
    sync_rings r;
    assert_int_equal(sync_rings_take(sender->sync, &r), RK_OK);
    assert_int_equal(sync_push_hints(sender->sync, &r, refuser->id, &held), RK_EUNSUPPORTED);
    /* ...and a whole pass (the one the sync thread runs) keeps the hint. */
    assert_int_equal(sync_hint_pass(sender->sync, &r), RK_OK);
    sync_rings_release(&r);
    sync_records_free(&held);
    rk_buf still = {0};
    assert_int_equal(replica_read(sender->rp, key.dbkey, key.dbkey_len, refuser->id, &still),
                     RK_OK);
    rk_buf_free(&still);
    kv_stats ks;
    kv_get_stats(refuser->k, &ks);
    assert_int_equal(ks.hints_received, 0);
    sync_stats ss;
    sync_get_stats(sender->sync, &ss);
    assert_int_equal(ss.hints_delivered, 0);

    /* Back with hints on: the kept hint is handed over and deleted. */
    node_down(f, 2);
    f->refuses_hints[2] = false;
    node_up(f, 2, -1);
    hint_gone g = {f, &key};
    assert_true(wait_for(hint_handed_over, &g, WAIT_MS));
    cluster_down(f);
}

/* No handoff: a replica that missed a write is brought up to date by an
 * R=3 read, which answers with the newest value first. */
static void test_read_repair_fixes_a_stale_replica(void **state)
{
    (void)state;
    fixture *f = cluster_up(3, false);
    kv_result res;
    assert_int_equal(put(&f->nodes[0], "r", "\"old\"", 3, false, &res), RK_OK);
    kv_result_free(&res);
    node_down(f, 2);
    assert_true(wait_for(converged, f, WAIT_MS));
    assert_int_equal(put(&f->nodes[0], "r", "\"new\"", 2, false, &res), RK_OK);
    kv_result_free(&res);
    node_up(f, 2, -1);
    assert_true(wait_for(converged, f, WAIT_MS));
    assert_string_equal(read_value(&f->nodes[2], "r", true, 0), "\"old\"");
    assert_string_equal(read_value(&f->nodes[1], "r", false, 3), "\"new\"");
    local_want want = {f, 2, "r", "\"new\""};
    assert_true(wait_for(holds_locally, &want, WAIT_MS));
    kv_stats ks;
    kv_get_stats(f->nodes[1].k, &ks);
    assert_true(ks.read_repairs >= 1);
    cluster_down(f);
}

/* A replica that missed a write (no handoff) coordinates a delete of that
 * key: the delete first reads a quorum, so it finds the value and removes
 * it, instead of answering 404 from its own stale copy and leaving the
 * value alive. The same for a create-only write. */
static void test_delete_through_a_stale_replica(void **state)
{
    (void)state;
    fixture *f = cluster_up(3, false);
    node_down(f, 0);
    assert_true(wait_for(converged, f, WAIT_MS));
    kv_result res;
    assert_int_equal(put(&f->nodes[1], "d", "{\"x\":1}", 2, false, &res), RK_OK);
    kv_result_free(&res);
    assert_int_equal(put(&f->nodes[1], "c", "1", 2, false, &res), RK_OK);
    kv_result_free(&res);
    node_up(f, 0, -1);
    assert_true(wait_for(converged, f, WAIT_MS));
    assert_null(read_value(&f->nodes[0], "d", true, 0)); /* stale: never got it */

    kv_write del = {.key = key_of("d"), .tombstone = true, .w = 2};
    assert_int_equal(kv_put(f->nodes[0].k, &del, &res), RK_OK);
    kv_result_free(&res);
    kv_read_opts o = {.r = 3};
    kv_key d = key_of("d");
    kv_result after;
    rk_err err = kv_get(f->nodes[1].k, &d, &o, &after);
    assert_true(err == RK_ENOTFOUND || (err == RK_OK && object_live_count(&after.obj) == 0));
    kv_result_free(&after);

    kv_write create = {
        .key = key_of("c"), .value = "2", .value_len = 1, .if_none_match = true, .w = 2};
    assert_int_equal(kv_put(f->nodes[0].k, &create, &res), RK_EPRECOND);
    kv_result_free(&res);
    assert_string_equal(read_value(&f->nodes[2], "c", false, 3), "1");
    cluster_down(f);
}

/* Two writes with the same context through two coordinators keep both
 * values; a write with the merged context resolves them. */
static void test_same_context_through_two_nodes_makes_siblings(void **state)
{
    (void)state;
    fixture *f = cluster_up(3, true);
    kv_result base, a, b, both, resolved;
    assert_int_equal(put(&f->nodes[0], "s", "0", 3, false, &base), RK_OK);
    kv_write wa = {
        .key = key_of("s"), .value = "\"A\"", .value_len = 3, .context = &base.obj.clock, .w = 3};
    kv_write wb = wa;
    wb.value = "\"B\"";
    assert_int_equal(kv_put(f->nodes[0].k, &wa, &a), RK_OK);
    assert_int_equal(kv_put(f->nodes[1].k, &wb, &b), RK_OK);
    kv_read_opts o = {.r = 3};
    kv_key s = key_of("s");
    assert_int_equal(kv_get(f->nodes[2].k, &s, &o, &both), RK_OK);
    assert_int_equal(object_live_count(&both.obj), 2);
    kv_write wr = {
        .key = key_of("s"), .value = "\"AB\"", .value_len = 4, .context = &both.obj.clock, .w = 3};
    assert_int_equal(kv_put(f->nodes[2].k, &wr, &resolved), RK_OK);
    assert_int_equal(object_live_count(&resolved.obj), 1);
    assert_string_equal(read_value(&f->nodes[0], "s", false, 3), "\"AB\"");
    kv_result *all[] = {&base, &a, &b, &both, &resolved};
    for (size_t i = 0; i < 5; i++)
        kv_result_free(all[i]);
    cluster_down(f);
}

/* The delays of peer id in snap (NULL when it has none). */
static const pbs_peer *pbs_peer_of(const pbs_snapshot *snap, uint64_t id)
{
    for (size_t i = 0; i < snap->peer_count; i++)
        if (snap->peers[i].id == id)
            return &snap->peers[i];
    return NULL;
}

static void assert_exchanges(const pbs_peer *p, size_t writes, size_t reads)
{
    assert_non_null(p);
    assert_int_equal(p->kind[PBS_W].count, writes);
    assert_int_equal(p->kind[PBS_A].count, writes);
    assert_int_equal(p->kind[PBS_R].count, reads);
    assert_int_equal(p->kind[PBS_S].count, reads);
}

/* PBS (docs/pbs.md): a write with W = 3 and a read with R = 3 through
 * node 0 leave one write and one read exchange for each of the key's three
 * replicas, node 0's own copy included, all on one clock (one process,
 * one boot id). Node 1 coordinated nothing and has no delays. */
static void test_coordinator_samples_replica_delays(void **state)
{
    (void)state;
    fixture *f = cluster_up(3, true);
    kv_result res;
    assert_int_equal(put(&f->nodes[0], "p", "1", 3, false, &res), RK_OK);
    kv_result_free(&res);
    assert_string_equal(read_value(&f->nodes[0], "p", false, 3), "1");
    pbs_snapshot snap;
    assert_int_equal(kv_pbs_snapshot(f->nodes[0].k, &snap), RK_OK);
    assert_int_equal(snap.peer_count, 3);
    for (size_t i = 0; i < 3; i++)
        assert_exchanges(pbs_peer_of(&snap, f->nodes[i].id), 1, 1);
    assert_int_equal(snap.rounds, 6);
    assert_int_equal(snap.split_rounds, 0);
    pbs_snapshot_free(&snap);
    assert_int_equal(kv_pbs_snapshot(f->nodes[1].k, &snap), RK_OK);
    assert_int_equal(snap.peer_count, 0);
    pbs_snapshot_free(&snap);
    cluster_down(f);
}

/* A coordinator outside the key's replicas samples the replicas it asks:
 * the one that applies the write (Kv.Apply), the ones it sends the result
 * to, and the ones it reads; never itself. */
static void test_non_replica_coordinator_samples_the_replicas(void **state)
{
    (void)state;
    fixture *f = cluster_up(4, true);
    char key[32];
    uint64_t pref[3];
    key_not_on(f, 3, "s", key, pref);
    kv_result res;
    assert_int_equal(put(&f->nodes[3], key, "2", 3, false, &res), RK_OK);
    kv_result_free(&res);
    assert_string_equal(read_value(&f->nodes[3], key, false, 3), "2");
    pbs_snapshot snap;
    assert_int_equal(kv_pbs_snapshot(f->nodes[3].k, &snap), RK_OK);
    assert_int_equal(snap.peer_count, 3);
    for (size_t i = 0; i < 3; i++)
        assert_exchanges(pbs_peer_of(&snap, pref[i]), 1, 1);
    assert_null(pbs_peer_of(&snap, f->nodes[3].id));
    assert_int_equal(snap.split_rounds, 0);
    pbs_snapshot_free(&snap);
    cluster_down(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_one_read_another),
        cmocka_unit_test(test_write_from_a_non_replica_is_applied_by_a_replica),
        cmocka_unit_test(test_non_replica_fails_over_to_the_next_replica),
        cmocka_unit_test(test_sync_stop_does_not_wait_for_a_gone_peer),
        cmocka_unit_test(test_down_replica_gets_its_hints),
        cmocka_unit_test(test_handoff_off_refuses_hints_and_the_sender_keeps_them),
        cmocka_unit_test(test_read_repair_fixes_a_stale_replica),
        cmocka_unit_test(test_same_context_through_two_nodes_makes_siblings),
        cmocka_unit_test(test_delete_through_a_stale_replica),
        cmocka_unit_test(test_coordinator_samples_replica_delays),
        cmocka_unit_test(test_non_replica_coordinator_samples_the_replicas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
