/* pbs.h - Probabilistically Bounded Staleness: the replica delays a
 * coordinator observes, and the WARS Monte Carlo that predicts from them
 * how likely a partial-quorum read is to see the last acknowledged write
 * (Bailis et al., "Probabilistically Bounded Staleness for Practical
 * Partial Quorums", VLDB 2012; docs/pbs.md).
 *
 * WARS names the four delays of one replica in one request:
 *   W  the write travelling to the replica, until the replica applied it
 *   A  the replica's ack travelling back to the coordinator
 *   R  the read travelling to the replica, until the replica read it
 *   S  the replica's answer travelling back
 *
 * Pure: no I/O and no clock. The caller measures (src/kv/coord.c), this
 * module keeps the samples and simulates. Delays are whole microseconds.
 *
 * Threads: pbs_samples_add and pbs_samples_snapshot may be called from any
 * thread at once (a small mutex per peer, never held across anything but a
 * few stores or one copy). The other types are plain values: one thread at
 * a time, or the caller's lock. */
#ifndef RINGKV_PBS_H
#define RINGKV_PBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringkv/common.h"

/* ---- one reservoir ------------------------------------------------------- */

/* A uniform sample of at most PBS_RESERVOIR_CAP of the delays ever offered
 * (Vitter's algorithm R): the first CAP are kept, then the i-th offered
 * replaces a random kept one with probability CAP / i. Fixed size, no
 * allocation. Zero-initialised or pbs_reservoir_init: empty. */
#define PBS_RESERVOIR_CAP 1024

typedef struct pbs_reservoir {
    uint64_t seen; /* delays ever offered */
    uint32_t us[PBS_RESERVOIR_CAP];
} pbs_reservoir;

void pbs_reservoir_init(pbs_reservoir *r);
/* Offers one delay; rng decides whether it is kept once the reservoir is
 * full. */
void pbs_reservoir_add(pbs_reservoir *r, uint32_t us, rk_rng *rng);
/* Delays held: min(seen, PBS_RESERVOIR_CAP). */
size_t pbs_reservoir_count(const pbs_reservoir *r);

/* ---- delays per peer ----------------------------------------------------- */

typedef enum pbs_kind { PBS_W, PBS_A, PBS_R, PBS_S, PBS_KINDS } pbs_kind;

/* One exchange with a replica: a write (W then A) or a read (R then S). */
typedef enum pbs_leg { PBS_WRITE, PBS_READ } pbs_leg;

/* Peers one coordinator keeps delays for; the samples of a peer beyond
 * them are dropped (counted). 64 x 4 reservoirs is 1 MiB. */
#define PBS_MAX_PEERS 64

/* Splits one exchange into its two one-way delays, in microseconds.
 * start_ns: when the request began (a write: before its first replica was
 * asked, so the replicas asked after this node applied it count that time);
 * send_ns: when this call left; recv_ns: when its answer arrived;
 * remote_ns: the replica's clock when it applied the write or read the
 * record. same_clock: the replica's clock is this machine's
 * CLOCK_MONOTONIC (same boot id), so out = remote - start and back = recv
 * - remote. Otherwise, or when remote_ns falls outside [send_ns, recv_ns]
 * (a clock that is not the same after all), the round trip is split in
 * half: out = send - start + rtt / 2, back = rtt / 2. Returns true when it
 * split. Delays are clamped to [0, UINT32_MAX] us. */
bool pbs_split_round(uint64_t start_ns, uint64_t send_ns, uint64_t remote_ns, uint64_t recv_ns,
                     bool same_clock, uint32_t *out_us, uint32_t *back_us);

/* The reservoirs of every peer: 4 per peer (W, A, R, S). Free with
 * pbs_samples_free. */
typedef struct pbs_samples pbs_samples;

/* seed drives the reservoirs' replacement choices. RK_ENOMEM. */
rk_err pbs_samples_alloc(uint64_t seed, pbs_samples **out);
void pbs_samples_free(pbs_samples *s); /* NULL is a no-op */

/* Records one exchange with peer (a node id, not 0): out_us is W or R,
 * back_us A or S; split says the two are halves of a round trip
 * (pbs_split_round). Cheap: a lookup among at most PBS_MAX_PEERS ids and a
 * few stores under the peer's mutex; no allocation. A peer that finds no
 * free slot is dropped and counted. */
void pbs_samples_add(pbs_samples *s, uint64_t peer, pbs_leg leg, uint32_t out_us, uint32_t back_us,
                     bool split);

/* Records how long the coordinator's waiting thread took to wake once the
 * quorum of a write or a read was met (us): answers that arrive meanwhile
 * are merged into a read's reply, and a write is acknowledged to the
 * client only then. Same cost as pbs_samples_add. */
void pbs_samples_add_wake(pbs_samples *s, pbs_leg leg, uint32_t us);

/* ---- what the simulation reads ------------------------------------------ */

/* count delays (us) of one kind; us is borrowed. */
typedef struct pbs_dist {
    const uint32_t *us;
    size_t count;
} pbs_dist;

/* One replica's four distributions; any may be empty (the pooled
 * distribution of that kind stands in: pbs_predict). */
typedef struct pbs_peer {
    uint64_t id;
    pbs_dist kind[PBS_KINDS];
} pbs_peer;

/* A copy of every peer's reservoirs, taken one peer at a time (each peer
 * is consistent in itself). Free with pbs_snapshot_free. */
typedef struct pbs_snapshot {
    pbs_peer peers[PBS_MAX_PEERS]; /* peers with at least one delay */
    size_t peer_count;
    size_t count[PBS_KINDS];  /* delays held, every peer */
    uint64_t seen[PBS_KINDS]; /* delays ever offered, every peer */
    uint64_t split_rounds;    /* exchanges split in half (no shared clock) */
    uint64_t rounds;          /* exchanges recorded */
    uint64_t dropped;         /* exchanges of peers past PBS_MAX_PEERS */
    pbs_dist wake[2];         /* pbs_samples_add_wake's, by pbs_leg */
    uint32_t *storage;        /* what the peers' pbs_dist point into */
} pbs_snapshot;

/* Fills *out (RK_ENOMEM). */
rk_err pbs_samples_snapshot(pbs_samples *s, pbs_snapshot *out);
void pbs_snapshot_free(pbs_snapshot *snap);

/* ---- the WARS Monte Carlo ------------------------------------------------ */

#define PBS_MAX_N 16 /* replicas per key (RING_MAX_N) */
#define PBS_MAX_T 32 /* times asked about in one query */
#define PBS_MAX_TRIALS 100000u
#define PBS_DEFAULT_TRIALS 10000u
#define PBS_K_MAX 3 /* k-staleness for k = 1..PBS_K_MAX */
/* Delays of each kind a prediction wants before it is worth giving. */
#define PBS_MIN_SAMPLES 20u

typedef struct pbs_query {
    unsigned n, r, w;   /* 1 <= r, w <= n <= PBS_MAX_N */
    unsigned trials;    /* 1..PBS_MAX_TRIALS */
    const double *t_ms; /* t_count times after the ack, each finite and >= 0 */
    size_t t_count;     /* 1..PBS_MAX_T */
    /* The coordinator the prediction is for (its own copy is a replica of
     * the keys it holds): a peer id among the samples, or 0 for none. */
    uint64_t self;
    /* The share of reads that ask every replica at once (read repair's
     * chance, 0..1); the others ask R replicas, the coordinator's own copy
     * first, and take all R answers. */
    double read_all_share;
    /* The coordinator's wake-up after a quorum is met (pbs_snapshot.wake,
     * by pbs_leg); empty: none. */
    pbs_dist wake[2];
    /* The read goes through another node than the write (a random other
     * peer): a client that reads through a different node. false: the
     * read goes through this node, on the links the write took, which
     * this model counts as independent (docs/pbs.md). */
    bool reader_elsewhere;
} pbs_query;

typedef struct pbs_percentiles {
    double p50, p90, p99, p999; /* ms, nearest rank */
} pbs_percentiles;

typedef struct pbs_prediction {
    /* Probability that a read starting t_ms[i] after the write's ack
     * returns it (or something newer). Non-decreasing in t: every t is
     * judged on the same trials. */
    double p_consistent[PBS_MAX_T];
    /* Probability that a read right after the ack (t = 0) returns a value
     * at most k versions old, k = 1..PBS_K_MAX: 1 - (1 - p0)^k, the
     * paper's k-staleness with its closed form's miss probability taken
     * from the simulation (each of the last k writes missed independently;
     * older writes have had longer, so this is a lower bound). */
    double k_staleness[PBS_K_MAX];
    pbs_percentiles read_ms;  /* the R-th fastest replica's R + S */
    pbs_percentiles write_ms; /* the W-th fastest replica's W + A */
} pbs_prediction;

/* Runs q->trials trials of WARS over peers[0..peer_count) as this store
 * writes and reads (docs/pbs.md):
 *
 * - the key's n replicas are n distinct peers picked at random (a random
 *   key's replicas); when fewer than n peers are given, every peer is one
 *   and the rest draw from the pooled delays of all peers;
 * - replica i draws W_i, A_i, R_i, S_i from its own peer's reservoirs (the
 *   pooled ones for a kind it has none of); W is the one-way delay of the
 *   message that carries the write plus the replica's apply, A the way
 *   back;
 * - one replica applies the client's write first (the coordinator when it
 *   is a replica, else one at random: the key's first replica): it has the
 *   write at W_a and the coordinator gets the result at W_a + A_a; only then
 *   are the others sent it: replica i has it at W_a + A_a + W_i, and its ack
 *   arrives A_i later;
 * - the write is acknowledged at ack = the w-th earliest of those acks
 *   (the applier's at W_a + A_a), plus the coordinator's wake-up;
 * - the read goes through this node, or (reader_elsewhere) through any
 *   other peer, whose own copy is then the one read locally;
 * - a read starting t after the ack reaches replica i at ack + t + R_i. A
 *   share read_all_share of reads asks every replica and is answered by
 *   every replica whose answer is in when the coordinator wakes up after
 *   the r-th (smallest R_i + S_i, ties broken at random); the others ask
 *   r replicas, the coordinator's own copy first, and wait for all r.
 *   The read sees the write when one of the replicas that answered had it
 *   by the time the read got there.
 *
 * rng is advanced; the same seed gives the same prediction. RK_EINVAL for
 * a query out of range, RK_ENOTFOUND when some kind has no delay at all,
 * RK_ENOMEM. */
rk_err pbs_predict(const pbs_peer *peers, size_t peer_count, const pbs_query *q, rk_rng *rng,
                   pbs_prediction *out);

#endif
