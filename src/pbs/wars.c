/* wars.c - the WARS Monte Carlo of PBS (Bailis et al. 2012, section 5):
 * simulated writes and reads over sampled replica delays, counted into the
 * probability of a consistent read t after the ack, k-staleness and the
 * predicted latencies (pbs.h says the model; docs/pbs.md why).
 *
 * One trial draws every replica's four delays once and reduces them to
 * three numbers: the write latency, the read latency, and the threshold:
 * the smallest t at which the read sees the write. A trial is consistent at
 * t exactly when t >= threshold, so every t is judged on the same trials
 * and the curve cannot go down. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ringkv/pbs.h"

#define NO_PEER SIZE_MAX /* a replica that draws from the pooled delays */

typedef struct sim {
    const pbs_peer *peers;
    size_t peer_count;
    /* pooled draws: cum[k][i] = delays of kind k held by peers 0..i */
    size_t cum[PBS_KINDS][PBS_MAX_PEERS];
    size_t total[PBS_KINDS];
    size_t order[PBS_MAX_PEERS]; /* peer indices, shuffled in place */
    size_t self;                 /* the coordinator's peer index, or NO_PEER */
} sim;

/* One trial's outcome, in microseconds. */
typedef struct trial {
    int64_t threshold; /* consistent for t >= threshold */
    uint64_t write_us, read_us;
} trial;

static rk_err check_query(const pbs_query *q, size_t peer_count)
{
    if (q->n == 0 || q->n > PBS_MAX_N || q->r == 0 || q->r > q->n || q->w == 0 || q->w > q->n ||
        q->trials == 0 || q->trials > PBS_MAX_TRIALS || q->t_count == 0 || q->t_count > PBS_MAX_T ||
        q->t_ms == NULL || peer_count > PBS_MAX_PEERS || !(q->read_all_share >= 0) ||
        q->read_all_share > 1)
        return RK_EINVAL;
    for (size_t i = 0; i < q->t_count; i++)
        if (!isfinite(q->t_ms[i]) || q->t_ms[i] < 0)
            return RK_EINVAL;
    return RK_OK;
}

static rk_err sim_init(sim *s, const pbs_peer *peers, size_t peer_count, uint64_t self)
{
    memset(s, 0, sizeof *s);
    s->peers = peers;
    s->peer_count = peer_count;
    s->self = NO_PEER;
    for (size_t i = 0; i < peer_count; i++) {
        s->order[i] = i;
        if (self != 0 && peers[i].id == self)
            s->self = i;
        for (int k = 0; k < PBS_KINDS; k++) {
            s->total[k] += peers[i].kind[k].count;
            s->cum[k][i] = s->total[k];
        }
    }
    for (int k = 0; k < PBS_KINDS; k++)
        if (s->total[k] == 0)
            return RK_ENOTFOUND;
    return RK_OK;
}

/* A delay of kind k for a replica on peer p: from its own reservoir, or
 * from all peers' delays of that kind, each delay as likely as any other. */
static uint64_t draw(const sim *s, size_t p, pbs_kind k, rk_rng *rng)
{
    if (p != NO_PEER && s->peers[p].kind[k].count > 0) {
        const pbs_dist *d = &s->peers[p].kind[k];
        return d->us[rk_rng_below(rng, d->count)];
    }
    size_t x = rk_rng_below(rng, s->total[k]);
    size_t lo = 0, hi = s->peer_count - 1;
    while (lo < hi) { /* the first peer whose cumulative count passes x */
        size_t mid = lo + (hi - lo) / 2;
        if (s->cum[k][mid] > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    const pbs_dist *d = &s->peers[lo].kind[k];
    return d->us[x - (s->cum[k][lo] - d->count)];
}

/* The peers of this trial's n replicas into rep: n distinct peers chosen
 * uniformly (a partial Fisher-Yates over order, which any permutation
 * left by the last trial serves as well as a fresh one), or every peer
 * and pooled stand-ins when there are fewer than n. */
static void pick_replicas(sim *s, unsigned n, rk_rng *rng, size_t *rep)
{
    if (s->peer_count < n) {
        for (size_t i = 0; i < n; i++)
            rep[i] = i < s->peer_count ? i : NO_PEER;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t j = i + rk_rng_below(rng, s->peer_count - i);
        size_t tmp = s->order[i];
        s->order[i] = s->order[j];
        s->order[j] = tmp;
        rep[i] = s->order[i];
    }
}

/* The k-th smallest (1-based) of v[0..n), n <= PBS_MAX_N; v is reordered. */
static uint64_t kth_smallest(uint64_t *v, size_t n, size_t k)
{
    for (size_t i = 1; i < n; i++) /* insertion sort: n is at most 16 */
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint64_t tmp = v[j];
            v[j] = v[j - 1];
            v[j - 1] = tmp;
        }
    return v[k - 1];
}

/* The read's answer order: R + S, with a random tiebreak below it, so
 * replicas with equal delays answer first equally often. */
typedef struct answer_slot {
    uint64_t rs, tiebreak;
    size_t replica;
} answer_slot;

/* Sorts answer[0..n) by R + S, the random tiebreak below it. */
static void sort_answers(answer_slot *answer, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0; j--) {
            bool before =
                answer[j].rs < answer[j - 1].rs ||
                (answer[j].rs == answer[j - 1].rs && answer[j].tiebreak < answer[j - 1].tiebreak);
            if (!before)
                break;
            answer_slot tmp = answer[j];
            answer[j] = answer[j - 1];
            answer[j - 1] = tmp;
        }
}

/* A targeted read's r replicas into answer[0..r): the coordinator's own
 * copy first when it is a replica, then others in random order (a random
 * key's preference order); the read waits for all of them, so the last
 * (answer[r - 1] after sorting) sets its latency. */
static void target_answers(const size_t *rep, size_t n, size_t self, unsigned r,
                           answer_slot *answer, rk_rng *rng)
{
    size_t order[PBS_MAX_N], count = 0;
    for (size_t i = 0; i < n; i++)
        if (rep[i] == self && self != NO_PEER)
            order[count++] = i;
    size_t first_other = count;
    for (size_t i = 0; i < n; i++)
        if (!(rep[i] == self && self != NO_PEER))
            order[count++] = i;
    for (size_t i = first_other; i + 1 < count; i++) { /* shuffle the others */
        size_t j = i + rk_rng_below(rng, count - i);
        size_t tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    answer_slot picked[PBS_MAX_N];
    for (unsigned j = 0; j < r; j++)
        for (size_t i = 0; i < n; i++)
            if (answer[i].replica == order[j])
                picked[j] = answer[i];
    memcpy(answer, picked, r * sizeof *answer);
    sort_answers(answer, r);
}

/* A wake-up delay of the coordinator (0 when none was sampled). */
static uint64_t draw_wake(const pbs_dist *d, rk_rng *rng)
{
    return d->count > 0 && d->us != NULL ? d->us[rk_rng_below(rng, d->count)] : 0;
}

/* The wake-up after a read's last awaited answer: none when that answer
 * is this node's own copy, read by the waiting thread itself. */
static uint64_t wake_after(size_t reader, const size_t *rep, const answer_slot *last,
                           const pbs_dist *wake, rk_rng *rng)
{
    bool own = reader != NO_PEER && rep[last->replica] == reader;
    return own ? 0 : draw_wake(wake, rng);
}

/* The node a read goes through: this one, or with reader_elsewhere any
 * other peer (a client that reads through another node than it wrote
 * through), or NO_PEER when there is none to pick. */
static size_t pick_reader(const sim *s, const pbs_query *q, rk_rng *rng)
{
    if (!q->reader_elsewhere)
        return s->self;
    size_t others = s->peer_count - (s->self != NO_PEER);
    if (others == 0)
        return NO_PEER;
    size_t k = rk_rng_below(rng, others);
    for (size_t i = 0; i < s->peer_count; i++)
        if (i != s->self && k-- == 0)
            return i;
    return NO_PEER;
}

/* A read's R and S at the replica on peer p, seen from the reader. The
 * samples are this node's: the reader's own copy is read locally (this
 * node's own read delays), this node's copy is across the link to the
 * reader (the reader's delays), and any other replica's link to the
 * reader is taken to be like its link to this node. */
static void draw_read(const sim *s, size_t p, size_t reader, rk_rng *rng, uint64_t *r, uint64_t *rs)
{
    size_t from = p;
    if (reader != s->self && p == reader)
        from = s->self; /* local: may be NO_PEER, then pooled */
    else if (reader != s->self && p == s->self)
        from = reader;
    *r = draw(s, from, PBS_R, rng);
    *rs = *r + draw(s, from, PBS_S, rng);
}

static void run_trial(sim *s, const pbs_query *q, rk_rng *rng, trial *out)
{
    size_t rep[PBS_MAX_N];
    uint64_t have[PBS_MAX_N], r[PBS_MAX_N], acks[PBS_MAX_N];
    answer_slot answer[PBS_MAX_N];
    pick_replicas(s, q->n, rng, rep);
    /* the applier: this coordinator when it is a replica, else the key's
     * first replica, which is any of them as likely */
    size_t applier = rk_rng_below(rng, q->n);
    for (size_t i = 0; i < q->n; i++)
        if (s->self != NO_PEER && rep[i] == s->self)
            applier = i;
    size_t reader = pick_reader(s, q, rng);
    uint64_t wa = draw(s, rep[applier], PBS_W, rng);
    uint64_t result = wa + draw(s, rep[applier], PBS_A, rng); /* back at the coordinator */
    for (size_t i = 0; i < q->n; i++) {
        if (i == applier) {
            have[i] = wa;
            acks[i] = result;
        } else {
            have[i] = result + draw(s, rep[i], PBS_W, rng);
            acks[i] = have[i] + draw(s, rep[i], PBS_A, rng);
        }
        draw_read(s, rep[i], reader, rng, &r[i], &answer[i].rs);
        answer[i].tiebreak = rk_rng_next(rng);
        answer[i].replica = i;
    }
    /* The coordinator's thread waits, and wakes late, only for acks other
     * threads bring: the followers'. The applier's (this node's apply, or
     * the Kv.Apply it called) is in hand at once. */
    uint64_t ack = kth_smallest(acks, q->n, q->w);
    if (ack != result)
        ack += draw_wake(&q->wake[PBS_WRITE], rng);
    bool ask_all =
        q->read_all_share >= 1 || (q->read_all_share > 0 && rk_rng_unit(rng) < q->read_all_share);
    size_t answered = q->r;
    uint64_t read_us;
    if (ask_all) {
        /* every answer in by the time the coordinator wakes after the r-th
         * (with no wake-up, the first r: equal times are ordered) */
        sort_answers(answer, q->n);
        uint64_t wake = wake_after(reader, rep, &answer[q->r - 1], &q->wake[PBS_READ], rng);
        read_us = answer[q->r - 1].rs + wake;
        while (wake > 0 && answered < q->n && answer[answered].rs <= read_us)
            answered++;
    } else {
        target_answers(rep, q->n, reader, q->r, answer, rng);
        read_us = answer[q->r - 1].rs +
                  wake_after(reader, rep, &answer[q->r - 1], &q->wake[PBS_READ], rng);
    }
    /* replica i, reached at ack + t + R_i, has the write when
     * have_i <= ack + t + R_i, i.e. t >= have_i - ack - R_i */
    int64_t threshold = INT64_MAX;
    for (size_t j = 0; j < answered; j++) {
        size_t i = answer[j].replica;
        int64_t need = (int64_t)have[i] - (int64_t)ack - (int64_t)r[i];
        if (need < threshold)
            threshold = need;
    }
    *out = (trial){threshold, ack, read_us};
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentiles of v[0..n) (sorted here), in ms. */
static pbs_percentiles percentiles_ms(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_u64);
    static const unsigned permille[4] = {500, 900, 990, 999};
    double out[4];
    for (int i = 0; i < 4; i++) {
        size_t rank = (n * permille[i] + 999) / 1000;
        out[i] = (double)v[rank == 0 ? 0 : rank - 1] / 1000.0;
    }
    return (pbs_percentiles){out[0], out[1], out[2], out[3]};
}

rk_err pbs_predict(const pbs_peer *peers, size_t peer_count, const pbs_query *q, rk_rng *rng,
                   pbs_prediction *out)
{
    rk_err err = check_query(q, peer_count);
    sim s;
    if (err == RK_OK)
        err = sim_init(&s, peers, peer_count, q->self);
    if (err != RK_OK)
        return err;
    int64_t *threshold = malloc(q->trials * sizeof *threshold);
    uint64_t *write_us = malloc(q->trials * sizeof *write_us);
    uint64_t *read_us = malloc(q->trials * sizeof *read_us);
    if (threshold == NULL || write_us == NULL || read_us == NULL) {
        free(threshold);
        free(write_us);
        free(read_us);
        return RK_ENOMEM;
    }
    for (unsigned i = 0; i < q->trials; i++) {
        trial t;
        run_trial(&s, q, rng, &t);
        threshold[i] = t.threshold;
        write_us[i] = t.write_us;
        read_us[i] = t.read_us;
    }
    pbs_prediction p = {0};
    for (size_t j = 0; j < q->t_count; j++) {
        /* whole microseconds, as the delays are, rounded down (t >= 0);
         * the 1e-6 keeps 1.85 ms from becoming 1849 us */
        double t_us = q->t_ms[j] * 1000.0 + 1e-6;
        int64_t t = t_us >= 9e18 ? INT64_MAX : (int64_t)t_us;
        size_t seen = 0;
        for (unsigned i = 0; i < q->trials; i++)
            seen += threshold[i] <= t;
        p.p_consistent[j] = (double)seen / q->trials;
    }
    size_t at_ack = 0;
    for (unsigned i = 0; i < q->trials; i++)
        at_ack += threshold[i] <= 0;
    double miss = 1.0 - (double)at_ack / q->trials, miss_k = 1.0;
    for (int k = 0; k < PBS_K_MAX; k++) {
        miss_k *= miss;
        p.k_staleness[k] = 1.0 - miss_k;
    }
    p.write_ms = percentiles_ms(write_us, q->trials);
    p.read_ms = percentiles_ms(read_us, q->trials);
    free(threshold);
    free(write_us);
    free(read_us);
    *out = p;
    return RK_OK;
}
