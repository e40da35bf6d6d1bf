/* test_pbs.c - PBS (src/pbs): the reservoirs, the split of a round trip,
 * the per-peer table, and the WARS Monte Carlo against cases whose answer
 * is known: no delay, constant delays (a step at the right t), R + W > N,
 * exact percentiles, pooled stand-ins, repeatability. Randomized tests
 * print their seed (RINGKV_TEST_SEED replays it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inputs.h"
#include "ringkv/pbs.h"

/* ---- helpers ------------------------------------------------------------- */

/* A peer whose four kinds are each one constant delay (us). */
typedef struct const_peer {
    uint32_t us[PBS_KINDS];
    pbs_peer peer;
} const_peer;

static void const_peer_init(const_peer *c, uint64_t id, uint32_t w, uint32_t a, uint32_t r,
                            uint32_t s)
{
    c->us[PBS_W] = w;
    c->us[PBS_A] = a;
    c->us[PBS_R] = r;
    c->us[PBS_S] = s;
    c->peer.id = id;
    for (int k = 0; k < PBS_KINDS; k++)
        c->peer.kind[k] = (pbs_dist){&c->us[k], 1};
}

/* The coordinator of predict(): peer 1, whose own copy is one of the
 * replicas when it is picked; and reads that ask every replica (the WARS
 * paper's reads). test_targeted_reads changes both. */
static uint64_t predict_self = 1;
static double predict_read_all = 1.0;
static bool predict_reader_elsewhere = false;

/* Predicts over peers (copied from cs) with the given query. */
static pbs_prediction predict(const const_peer *cs, size_t count, unsigned n, unsigned r,
                              unsigned w, const double *t, size_t t_count, unsigned trials,
                              uint64_t seed)
{
    pbs_peer peers[PBS_MAX_PEERS];
    for (size_t i = 0; i < count; i++)
        peers[i] = cs[i].peer;
    pbs_query q = {.n = n,
                   .r = r,
                   .w = w,
                   .trials = trials,
                   .t_ms = t,
                   .t_count = t_count,
                   .self = predict_self,
                   .read_all_share = predict_read_all,
                   .reader_elsewhere = predict_reader_elsewhere};
    rk_rng rng;
    rk_rng_seed(&rng, seed);
    pbs_prediction p;
    assert_int_equal(pbs_predict(peers, count, &q, &rng, &p), RK_OK);
    return p;
}

static void assert_near(double got, double want, double tolerance)
{
    if (got < want - tolerance || got > want + tolerance)
        fail_msg("%.6f is not within %.4f of %.6f", got, tolerance, want);
}

/* ---- reservoirs ---------------------------------------------------------- */

static void test_reservoir_keeps_everything_until_full(void **state)
{
    (void)state;
    static pbs_reservoir r;
    pbs_reservoir_init(&r);
    rk_rng rng;
    rk_rng_seed(&rng, 1);
    assert_int_equal(pbs_reservoir_count(&r), 0);
    for (uint32_t i = 0; i < PBS_RESERVOIR_CAP; i++)
        pbs_reservoir_add(&r, i, &rng);
    assert_int_equal(pbs_reservoir_count(&r), PBS_RESERVOIR_CAP);
    for (uint32_t i = 0; i < PBS_RESERVOIR_CAP; i++)
        assert_int_equal(r.us[i], i);
}

/* 100,000 delays 0..99999 offered in order: 1024 kept, and every tenth of
 * the range holds about a tenth of them (a reservoir that favoured the
 * first or the last would fail). */
static void test_reservoir_is_bounded_and_uniform(void **state)
{
    (void)state;
    static pbs_reservoir r;
    pbs_reservoir_init(&r);
    rk_rng rng;
    rk_rng_seed(&rng, rng_seed_from_env("test_reservoir_is_bounded_and_uniform"));
    const uint32_t offered = 100000;
    for (uint32_t i = 0; i < offered; i++)
        pbs_reservoir_add(&r, i, &rng);
    assert_int_equal(r.seen, offered);
    assert_int_equal(pbs_reservoir_count(&r), PBS_RESERVOIR_CAP);
    unsigned decile[10] = {0};
    for (size_t i = 0; i < PBS_RESERVOIR_CAP; i++) {
        assert_true(r.us[i] < offered);
        decile[r.us[i] / (offered / 10)]++;
    }
    for (int d = 0; d < 10; d++) /* 102.4 expected, sd ~9.6 */
        if (decile[d] < 55 || decile[d] > 150)
            fail_msg("tenth %d of the range holds %u of 1024 kept delays", d, decile[d]);
}

/* ---- splitting a round trip ---------------------------------------------- */

static void test_split_round(void **state)
{
    (void)state;
    uint32_t out, back;
    /* one clock: cut where the replica stamped it */
    assert_false(pbs_split_round(1000000, 1000000, 1300000, 2000000, true, &out, &back));
    assert_int_equal(out, 300);
    assert_int_equal(back, 700);
    /* a write's later replica counts the wait since the write began */
    assert_false(pbs_split_round(1000000, 1500000, 1700000, 2000000, true, &out, &back));
    assert_int_equal(out, 700);
    assert_int_equal(back, 300);
    /* another machine's clock: halves of the round trip */
    assert_true(pbs_split_round(1000000, 1500000, 99, 2500000, false, &out, &back));
    assert_int_equal(out, 500 + 500);
    assert_int_equal(back, 500);
    /* "the same clock" that puts the replica outside the call: halves */
    assert_true(pbs_split_round(1000000, 1000000, 900000, 2000000, true, &out, &back));
    assert_int_equal(out, 500);
    assert_int_equal(back, 500);
    assert_true(pbs_split_round(1000000, 1000000, 2000001, 2000000, true, &out, &back));
    /* the edges of the window are inside it; zero-length delays are 0 */
    assert_false(pbs_split_round(5000, 5000, 5000, 5000, true, &out, &back));
    assert_int_equal(out, 0);
    assert_int_equal(back, 0);
    /* over UINT32_MAX us: clamped */
    assert_true(pbs_split_round(0, 0, 0, UINT64_MAX / 2, false, &out, &back));
    assert_int_equal(out, UINT32_MAX);
    assert_int_equal(back, UINT32_MAX);
}

/* ---- the peer table ------------------------------------------------------ */

static void test_samples_per_peer(void **state)
{
    (void)state;
    pbs_samples *s;
    assert_int_equal(pbs_samples_alloc(7, &s), RK_OK);
    pbs_snapshot snap;
    assert_int_equal(pbs_samples_snapshot(s, &snap), RK_OK);
    assert_int_equal(snap.peer_count, 0);
    assert_int_equal(snap.count[PBS_W], 0);
    pbs_snapshot_free(&snap);

    pbs_samples_add(s, 11, PBS_WRITE, 100, 50, false);
    pbs_samples_add(s, 11, PBS_READ, 30, 20, false);
    pbs_samples_add(s, 22, PBS_WRITE, 400, 400, true);
    pbs_samples_add(s, 0, PBS_READ, 1, 1, false); /* no peer: dropped */
    assert_int_equal(pbs_samples_snapshot(s, &snap), RK_OK);
    assert_int_equal(snap.peer_count, 2);
    assert_int_equal(snap.rounds, 3);
    assert_int_equal(snap.split_rounds, 1);
    assert_int_equal(snap.dropped, 1);
    assert_int_equal(snap.count[PBS_W], 2);
    assert_int_equal(snap.count[PBS_A], 2);
    assert_int_equal(snap.count[PBS_R], 1);
    assert_int_equal(snap.count[PBS_S], 1);
    const pbs_peer *p11 = snap.peers[0].id == 11 ? &snap.peers[0] : &snap.peers[1];
    const pbs_peer *p22 = snap.peers[0].id == 22 ? &snap.peers[0] : &snap.peers[1];
    assert_int_equal(p11->id, 11);
    assert_int_equal(p22->id, 22);
    assert_int_equal(p11->kind[PBS_W].count, 1);
    assert_int_equal(p11->kind[PBS_W].us[0], 100);
    assert_int_equal(p11->kind[PBS_A].us[0], 50);
    assert_int_equal(p11->kind[PBS_R].us[0], 30);
    assert_int_equal(p11->kind[PBS_S].us[0], 20);
    assert_int_equal(p22->kind[PBS_R].count, 0);
    pbs_snapshot_free(&snap);

    /* past PBS_MAX_PEERS peers, new ones are dropped, known ones kept */
    for (uint64_t id = 100; id < 100 + PBS_MAX_PEERS; id++)
        pbs_samples_add(s, id, PBS_READ, 1, 1, false);
    pbs_samples_add(s, 11, PBS_READ, 1, 1, false);
    assert_int_equal(pbs_samples_snapshot(s, &snap), RK_OK);
    assert_int_equal(snap.peer_count, PBS_MAX_PEERS);
    assert_int_equal(snap.dropped, 1 + 2);
    pbs_snapshot_free(&snap);
    pbs_samples_free(s);
}

typedef struct adder {
    pbs_samples *s;
    uint64_t first_peer;
} adder;

static void *add_many(void *arg)
{
    const adder *a = arg;
    for (uint32_t i = 0; i < 20000; i++)
        pbs_samples_add(a->s, a->first_peer + i % 3, i % 2 ? PBS_READ : PBS_WRITE, i, i, false);
    return NULL;
}

/* Four threads add to overlapping peers at once: every exchange is
 * counted, each peer's reservoirs stay bounded (the sanitizer build runs
 * this too). */
static void test_samples_from_many_threads(void **state)
{
    (void)state;
    pbs_samples *s;
    assert_int_equal(pbs_samples_alloc(9, &s), RK_OK);
    pthread_t th[4];
    adder a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (adder){s, 1 + (uint64_t)(i % 2)};
        assert_int_equal(pthread_create(&th[i], NULL, add_many, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    pbs_snapshot snap;
    assert_int_equal(pbs_samples_snapshot(s, &snap), RK_OK);
    assert_int_equal(snap.peer_count, 4); /* peers 1, 2, 3, 4 */
    assert_int_equal(snap.rounds, 4 * 20000);
    assert_int_equal(snap.seen[PBS_W] + snap.seen[PBS_R], 4 * 20000);
    for (size_t i = 0; i < snap.peer_count; i++)
        for (int k = 0; k < PBS_KINDS; k++)
            assert_true(snap.peers[i].kind[k].count <= PBS_RESERVOIR_CAP);
    pbs_snapshot_free(&snap);
    pbs_samples_free(s);
}

/* ---- the Monte Carlo: known answers -------------------------------------- */

static const double step_t[] = {0, 5, 9.999, 10, 20};
#define STEP_T_COUNT (sizeof step_t / sizeof step_t[0])

/* No delay anywhere: every read right after the ack sees the write, and
 * the latencies are 0. */
static void test_no_delay_is_always_consistent(void **state)
{
    (void)state;
    const_peer cs[3];
    for (int i = 0; i < 3; i++)
        const_peer_init(&cs[i], 1 + i, 0, 0, 0, 0);
    for (unsigned r = 1; r <= 3; r++)
        for (unsigned w = 1; w <= 3; w++) {
            pbs_prediction p = predict(cs, 3, 3, r, w, step_t, 1, 2000, 5);
            assert_true(p.p_consistent[0] == 1.0);
            for (int k = 0; k < PBS_K_MAX; k++)
                assert_true(p.k_staleness[k] == 1.0);
            assert_true(p.read_ms.p999 == 0.0 && p.write_ms.p999 == 0.0);
        }
}

/* N = 3, R = W = 1. The coordinator's own replica (peer 1) applies at
 * once, the other two receive it 10 ms after; acks, reads and answers take
 * no time. The write is acked at 0 by the fast replica; the read is answered
 * by one replica chosen among three equals, so it sees the write with
 * probability 1/3 until 10 ms, and always from 10 ms on: a step at 10 ms. */
static void test_constant_delays_step_at_the_right_t(void **state)
{
    (void)state;
    const_peer cs[3];
    const_peer_init(&cs[0], 1, 0, 0, 0, 0);
    const_peer_init(&cs[1], 2, 10000, 0, 0, 0);
    const_peer_init(&cs[2], 3, 10000, 0, 0, 0);
    uint64_t seed = rng_seed_from_env("test_constant_delays_step_at_the_right_t");
    pbs_prediction p = predict(cs, 3, 3, 1, 1, step_t, STEP_T_COUNT, 30000, seed);
    /* binomial(30000, 1/3): sd 0.0027 */
    assert_near(p.p_consistent[0], 1.0 / 3, 0.02);
    assert_near(p.p_consistent[1], 1.0 / 3, 0.02);
    assert_near(p.p_consistent[2], 1.0 / 3, 0.02);
    assert_true(p.p_consistent[3] == 1.0);
    assert_true(p.p_consistent[4] == 1.0);
    /* the same trials judge every t: exactly equal before the step */
    assert_true(p.p_consistent[0] == p.p_consistent[2]);
    /* k-staleness: 1 - (2/3)^k */
    assert_near(p.k_staleness[0], 1.0 / 3, 0.02);
    assert_near(p.k_staleness[1], 5.0 / 9, 0.02);
    assert_near(p.k_staleness[2], 19.0 / 27, 0.02);
    /* R = 2: two of three answer, the fast one among them 2 times in 3 */
    p = predict(cs, 3, 3, 2, 1, step_t, STEP_T_COUNT, 30000, seed + 1);
    assert_near(p.p_consistent[0], 2.0 / 3, 0.02);
    assert_true(p.p_consistent[3] == 1.0);
    /* W = 2: acked at 10 ms, when every replica has it */
    p = predict(cs, 3, 3, 1, 2, step_t, STEP_T_COUNT, 2000, seed + 2);
    assert_true(p.p_consistent[0] == 1.0);
    assert_true(p.write_ms.p50 == 10.0 && p.write_ms.p999 == 10.0);
}

/* The read's own delay counts: a read that takes 4 ms to reach a replica
 * finds a write that lands there 10 ms after the ack once t >= 6 ms. */
static void test_read_delay_moves_the_step(void **state)
{
    (void)state;
    const_peer cs[3];
    const_peer_init(&cs[0], 1, 0, 0, 4000, 1000);
    const_peer_init(&cs[1], 2, 10000, 0, 4000, 1000);
    const_peer_init(&cs[2], 3, 10000, 0, 4000, 1000);
    static const double t[] = {0, 5.999, 6, 7};
    pbs_prediction p = predict(cs, 3, 3, 1, 1, t, 4, 30000, 3);
    assert_near(p.p_consistent[0], 1.0 / 3, 0.02);
    assert_near(p.p_consistent[1], 1.0 / 3, 0.02);
    assert_true(p.p_consistent[2] == 1.0);
    assert_true(p.p_consistent[3] == 1.0);
    assert_true(p.read_ms.p50 == 5.0);
}

/* When R + W > N the read quorum meets a replica of the write quorum,
 * which had the write by the ack: 1 at t = 0 whatever the delays. Heavy
 * random delays, every N up to 5 and every such R, W. */
static void test_overlapping_quorums_always_consistent(void **state)
{
    (void)state;
    uint64_t seed = rng_seed_from_env("test_overlapping_quorums_always_consistent");
    rk_rng g;
    rk_rng_seed(&g, seed);
    enum { PEERS = 5, DELAYS = 200 };
    static uint32_t us[PEERS][PBS_KINDS][DELAYS];
    pbs_peer peers[PEERS];
    for (int i = 0; i < PEERS; i++) {
        peers[i].id = 1 + i;
        for (int k = 0; k < PBS_KINDS; k++) {
            for (int j = 0; j < DELAYS; j++) /* long tails: up to 2^20 us */
                us[i][k][j] = (uint32_t)rk_rng_below(&g, 1u << rk_rng_below(&g, 21));
            peers[i].kind[k] = (pbs_dist){us[i][k], DELAYS};
        }
    }
    static const double t0[] = {0};
    for (unsigned n = 1; n <= PEERS; n++)
        for (unsigned r = 1; r <= n; r++)
            for (unsigned w = 1; w <= n; w++) {
                pbs_query q = {.n = n, .r = r, .w = w, .trials = 3000, .t_ms = t0, .t_count = 1};
                pbs_prediction p;
                assert_int_equal(pbs_predict(peers, PEERS, &q, &g, &p), RK_OK);
                if (r + w > n && p.p_consistent[0] != 1.0)
                    fail_msg("n=%u r=%u w=%u: p=%.6f", n, r, w, p.p_consistent[0]);
                if (r + w <= n && n > 1) /* partial quorums miss sometimes */
                    assert_true(p.p_consistent[0] < 1.0);
            }
}

/* Constant distributions give exact percentiles. The coordinator (peer 1)
 * applies first and has the result at W1 + A1 = 1.5 ms; the others get it
 * then: their acks arrive at 1.5 + 3 + 1 = 5.5 and 1.5 + 6 + 2 = 9.5 ms.
 * A read is R + S of the R-th fastest. */
static void test_latency_percentiles_of_constant_delays(void **state)
{
    (void)state;
    const_peer cs[3];
    const_peer_init(&cs[0], 1, 1000, 500, 200, 100);  /* write 1.5, read 0.3 */
    const_peer_init(&cs[1], 2, 3000, 1000, 700, 300); /* write 4.0, read 1.0 */
    const_peer_init(&cs[2], 3, 6000, 2000, 900, 600); /* write 8.0, read 1.5 */
    static const double t0[] = {0};
    const double write_ms[] = {1.5, 5.5, 9.5}, read_ms[] = {0.3, 1.0, 1.5};
    for (unsigned q = 1; q <= 3; q++) {
        pbs_prediction p = predict(cs, 3, 3, q, q, t0, 1, 1000, q);
        assert_true(p.write_ms.p50 == write_ms[q - 1] && p.write_ms.p90 == write_ms[q - 1] &&
                    p.write_ms.p99 == write_ms[q - 1] && p.write_ms.p999 == write_ms[q - 1]);
        assert_true(p.read_ms.p50 == read_ms[q - 1] && p.read_ms.p90 == read_ms[q - 1] &&
                    p.read_ms.p99 == read_ms[q - 1] && p.read_ms.p999 == read_ms[q - 1]);
    }
    /* one replica whose W is 1..1000 us: nearest-rank percentiles of a
     * uniform distribution, within the sampling error */
    static uint32_t w[1000];
    static const uint32_t zero = 0;
    for (uint32_t i = 0; i < 1000; i++)
        w[i] = i + 1;
    pbs_peer one = {.id = 1, .kind = {{w, 1000}, {&zero, 1}, {&zero, 1}, {&zero, 1}}};
    pbs_query q = {.n = 1, .r = 1, .w = 1, .trials = 100000, .t_ms = t0, .t_count = 1};
    rk_rng g;
    rk_rng_seed(&g, 77);
    pbs_prediction p;
    assert_int_equal(pbs_predict(&one, 1, &q, &g, &p), RK_OK);
    assert_near(p.write_ms.p50, 0.5, 0.01);
    assert_near(p.write_ms.p90, 0.9, 0.01);
    assert_near(p.write_ms.p99, 0.99, 0.005);
    assert_true(p.read_ms.p999 == 0.0);
    assert_true(p.p_consistent[0] == 1.0); /* N = 1: R + W > N */
}

/* A coordinator that is not a replica: one replica applies the write
 * (5 ms there, 5 ms back), and only then are the other two sent it (5 ms
 * more each). With W = 1 the ack is the applier's, at 10 ms; the others
 * have it at 15 ms. A read that asks all and takes the first answer (all
 * equally fast) finds the applier 1 time in 3 until t = 5 ms, then every
 * replica. Sampling each replica's W from the write's start alone would
 * miss that: all three would have it before the ack. */
static void test_followers_wait_for_the_applier(void **state)
{
    (void)state;
    const_peer cs[3];
    for (int i = 0; i < 3; i++)
        const_peer_init(&cs[i], 2 + i, 5000, 5000, 0, 0);
    predict_self = 99; /* among no peer */
    static const double t[] = {0, 4.999, 5, 6};
    pbs_prediction p = predict(cs, 3, 3, 1, 1, t, 4, 30000, 21);
    predict_self = 1;
    assert_near(p.p_consistent[0], 1.0 / 3, 0.02);
    assert_true(p.p_consistent[0] == p.p_consistent[1]);
    assert_true(p.p_consistent[2] == 1.0);
    assert_true(p.write_ms.p50 == 10.0 && p.write_ms.p999 == 10.0);
}

/* A node's default read asks R replicas, its own copy first: with the
 * coordinator's copy applied at once, R = 1 always reads it. Asking all
 * and taking the first answer finds it 1 time in 3 (peers as in the step
 * test); half and half gives 2/3. */
static void test_targeted_reads(void **state)
{
    (void)state;
    const_peer cs[3];
    const_peer_init(&cs[0], 1, 0, 0, 0, 0);
    const_peer_init(&cs[1], 2, 10000, 0, 0, 0);
    const_peer_init(&cs[2], 3, 10000, 0, 0, 0);
    predict_read_all = 0;
    pbs_prediction p = predict(cs, 3, 3, 1, 1, step_t, STEP_T_COUNT, 30000, 31);
    assert_true(p.p_consistent[0] == 1.0);
    predict_read_all = 0.5;
    p = predict(cs, 3, 3, 1, 1, step_t, STEP_T_COUNT, 30000, 32);
    assert_near(p.p_consistent[0], 0.5 * 1 + 0.5 / 3, 0.02);
    assert_true(p.p_consistent[3] == 1.0);
    /* Read through another node (peer 2 or 3): its own copy first, which
     * gets the write only at 10 ms. */
    predict_read_all = 0;
    predict_reader_elsewhere = true;
    p = predict(cs, 3, 3, 1, 1, step_t, STEP_T_COUNT, 30000, 33);
    predict_read_all = 1.0;
    predict_reader_elsewhere = false;
    assert_true(p.p_consistent[0] == 0.0);
    assert_true(p.p_consistent[2] == 0.0);
    assert_true(p.p_consistent[3] == 1.0);
}

/* The coordinator's wake-up: a read's reply merges every answer that is
 * in when its thread wakes after the R-th, and a write is acknowledged to
 * its client only when that thread wakes for an ack another thread
 * brought. Peers as in the step test, but answers take 1, 2 and 3 ms (the
 * own copy's last): without a wake-up R = 1 hears only the 1 ms one; with
 * 5 ms of it, all three, among them the one that has the write. The
 * applier's ack (this node's own apply) is in hand at once: W = 1 is not
 * delayed, W = 2 waits for a follower's ack, then wakes. */
static void test_wake_up_merges_later_answers(void **state)
{
    (void)state;
    const_peer cs[3];
    const_peer_init(&cs[0], 1, 0, 0, 0, 3000);
    const_peer_init(&cs[1], 2, 10000, 0, 0, 1000);
    const_peer_init(&cs[2], 3, 10000, 0, 0, 2000);
    pbs_peer peers[3] = {cs[0].peer, cs[1].peer, cs[2].peer};
    static const double t[] = {0};
    pbs_query q = {.n = 3,
                   .r = 1,
                   .w = 1,
                   .trials = 2000,
                   .t_ms = t,
                   .t_count = 1,
                   .self = 1,
                   .read_all_share = 1};
    rk_rng g;
    rk_rng_seed(&g, 41);
    pbs_prediction p;
    assert_int_equal(pbs_predict(peers, 3, &q, &g, &p), RK_OK);
    assert_true(p.p_consistent[0] == 0.0);
    assert_true(p.read_ms.p50 == 1.0);
    static const uint32_t five_ms = 5000;
    q.wake[PBS_READ] = (pbs_dist){&five_ms, 1};
    q.wake[PBS_WRITE] = (pbs_dist){&five_ms, 1};
    assert_int_equal(pbs_predict(peers, 3, &q, &g, &p), RK_OK);
    assert_true(p.p_consistent[0] == 1.0);
    assert_true(p.read_ms.p50 == 6.0);
    assert_true(p.write_ms.p50 == 0.0);
    q.w = 2; /* followers have it at 10 ms, ack at 10, woken at 15 */
    assert_int_equal(pbs_predict(peers, 3, &q, &g, &p), RK_OK);
    assert_true(p.write_ms.p50 == 15.0);
}

/* Fewer peers than N: the missing replicas draw from every peer's delays.
 * Peer 1 applies at once, peer 2 after 10 ms; the third replica is either,
 * half the time each: a read (R = W = 1, all answers equal) sees the write
 * at t = 0 with 1/3 + 1/3 * 1/2 = 1/2. */
static void test_pooled_stand_ins_when_fewer_peers_than_n(void **state)
{
    (void)state;
    const_peer cs[2];
    const_peer_init(&cs[0], 1, 0, 0, 0, 0);
    const_peer_init(&cs[1], 2, 10000, 0, 0, 0);
    pbs_prediction p = predict(cs, 2, 3, 1, 1, step_t, STEP_T_COUNT, 40000, 11);
    assert_near(p.p_consistent[0], 0.5, 0.02);
    assert_true(p.p_consistent[3] == 1.0);
    /* a peer with no write delays of its own borrows the pooled ones */
    const_peer reads_only;
    const_peer_init(&reads_only, 3, 0, 0, 0, 0);
    reads_only.peer.kind[PBS_W].count = 0;
    reads_only.peer.kind[PBS_A].count = 0;
    const_peer mixed[3] = {cs[0], cs[1], reads_only}; /* (dists still point at cs) */
    p = predict(mixed, 3, 3, 1, 1, step_t, STEP_T_COUNT, 40000, 12);
    assert_near(p.p_consistent[0], 0.5, 0.02);
}

/* More peers than N: each trial's replicas are N distinct peers. Of 4
 * peers one applies at once and three after 10 ms (A, R, S take no time);
 * N = 3, R = W = 1, a coordinator that is none of them, reads that take
 * the first of three equal answers.
 * - The instant peer is a replica 3 times in 4. If it applies (1 in 3),
 *   it acks at 0 and is the only one with the write then: 1/3. If a slow
 *   one applies, it acks at 10, when the instant one has it too: 2/3.
 * - Otherwise the applier is slow and alone with the write at its ack: 1/3.
 * p = 3/4 * (1/3 * 1/3 + 2/3 * 2/3) + 1/4 * 1/3 = 1/2. */
static void test_replicas_are_distinct_peers(void **state)
{
    (void)state;
    const_peer cs[4];
    const_peer_init(&cs[0], 1, 0, 0, 0, 0);
    for (int i = 1; i < 4; i++)
        const_peer_init(&cs[i], 1 + i, 10000, 0, 0, 0);
    predict_self = 99;
    pbs_prediction p = predict(cs, 4, 3, 1, 1, step_t, STEP_T_COUNT, 40000, 13);
    predict_self = 1;
    assert_near(p.p_consistent[0], 0.5, 0.02);
    assert_true(p.p_consistent[3] == 1.0);
}

static void test_same_seed_same_prediction(void **state)
{
    (void)state;
    const_peer cs[3];
    const_peer_init(&cs[0], 1, 0, 100, 50, 20);
    const_peer_init(&cs[1], 2, 5000, 300, 70, 900);
    const_peer_init(&cs[2], 3, 12000, 40, 800, 10);
    pbs_prediction a = predict(cs, 3, 3, 1, 1, step_t, STEP_T_COUNT, 5000, 99);
    pbs_prediction b = predict(cs, 3, 3, 1, 1, step_t, STEP_T_COUNT, 5000, 99);
    assert_memory_equal(&a, &b, sizeof a);
    for (size_t i = 1; i < STEP_T_COUNT; i++)
        assert_true(a.p_consistent[i] >= a.p_consistent[i - 1]);
}

static void test_bad_queries(void **state)
{
    (void)state;
    const_peer c;
    const_peer_init(&c, 1, 1, 1, 1, 1);
    static const double good_t[] = {0, 1}, neg_t[] = {-1}, nan_t[] = {__builtin_nan("")};
    rk_rng g;
    rk_rng_seed(&g, 1);
    pbs_prediction p;
    const pbs_query bad[] = {
        {.n = 0, .r = 1, .w = 1, .trials = 10, .t_ms = good_t, .t_count = 1},
        {.n = 3, .r = 0, .w = 1, .trials = 10, .t_ms = good_t, .t_count = 1},
        {.n = 3, .r = 4, .w = 1, .trials = 10, .t_ms = good_t, .t_count = 1},
        {.n = 3, .r = 1, .w = 4, .trials = 10, .t_ms = good_t, .t_count = 1},
        {.n = PBS_MAX_N + 1, .r = 1, .w = 1, .trials = 10, .t_ms = good_t, .t_count = 1},
        {.n = 3, .r = 1, .w = 1, .trials = 0, .t_ms = good_t, .t_count = 1},
        {.n = 3, .r = 1, .w = 1, .trials = PBS_MAX_TRIALS + 1, .t_ms = good_t, .t_count = 1},
        {.n = 3, .r = 1, .w = 1, .trials = 10, .t_ms = good_t, .t_count = 0},
        {.n = 3, .r = 1, .w = 1, .trials = 10, .t_ms = good_t, .t_count = PBS_MAX_T + 1},
        {.n = 3, .r = 1, .w = 1, .trials = 10, .t_ms = neg_t, .t_count = 1},
        {.n = 3, .r = 1, .w = 1, .trials = 10, .t_ms = nan_t, .t_count = 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (pbs_predict(&c.peer, 1, &bad[i], &g, &p) != RK_EINVAL)
            fail_msg("query %zu was accepted", i);
    /* no delay of one kind at all: nothing to draw from */
    c.peer.kind[PBS_S].count = 0;
    pbs_query q = {.n = 1, .r = 1, .w = 1, .trials = 10, .t_ms = good_t, .t_count = 2};
    assert_int_equal(pbs_predict(&c.peer, 1, &q, &g, &p), RK_ENOTFOUND);
    assert_int_equal(pbs_predict(NULL, 0, &q, &g, &p), RK_ENOTFOUND);
}

/* 10,000 trials over three full reservoirs, N = 3: printed, not asserted
 * (the brief: under 50 ms; timing assertions flake on a shared machine). */
static void test_ten_thousand_trials_time(void **state)
{
    (void)state;
    static uint32_t us[3][PBS_KINDS][PBS_RESERVOIR_CAP];
    pbs_peer peers[3];
    rk_rng g;
    rk_rng_seed(&g, 5);
    for (int i = 0; i < 3; i++) {
        peers[i].id = 1 + i;
        for (int k = 0; k < PBS_KINDS; k++) {
            for (int j = 0; j < PBS_RESERVOIR_CAP; j++)
                us[i][k][j] = (uint32_t)rk_rng_below(&g, 2000);
            peers[i].kind[k] = (pbs_dist){us[i][k], PBS_RESERVOIR_CAP};
        }
    }
    static const double t[] = {0, 1, 2, 5, 10, 20, 50, 100};
    pbs_query q = {.n = 3, .r = 1, .w = 1, .trials = 10000, .t_ms = t, .t_count = 8};
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pbs_prediction p;
    assert_int_equal(pbs_predict(peers, 3, &q, &g, &p), RK_OK);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    printf("pbs: 10000 trials, N=3, 8 times: %.2f ms (p0=%.4f)\n", ms, p.p_consistent[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reservoir_keeps_everything_until_full),
        cmocka_unit_test(test_reservoir_is_bounded_and_uniform),
        cmocka_unit_test(test_split_round),
        cmocka_unit_test(test_samples_per_peer),
        cmocka_unit_test(test_samples_from_many_threads),
        cmocka_unit_test(test_no_delay_is_always_consistent),
        cmocka_unit_test(test_constant_delays_step_at_the_right_t),
        cmocka_unit_test(test_read_delay_moves_the_step),
        cmocka_unit_test(test_overlapping_quorums_always_consistent),
        cmocka_unit_test(test_latency_percentiles_of_constant_delays),
        cmocka_unit_test(test_pooled_stand_ins_when_fewer_peers_than_n),
        cmocka_unit_test(test_followers_wait_for_the_applier),
        cmocka_unit_test(test_targeted_reads),
        cmocka_unit_test(test_wake_up_merges_later_answers),
        cmocka_unit_test(test_replicas_are_distinct_peers),
        cmocka_unit_test(test_same_seed_same_prediction),
        cmocka_unit_test(test_bad_queries),
        cmocka_unit_test(test_ten_thousand_trials_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
