/* samples.c - the replica delays one coordinator observes: a bounded
 * reservoir per peer and kind (W, A, R, S), filled from the request path,
 * copied out for a prediction.
 *
 * The peer table is a fixed array of slots claimed once per peer with a
 * compare-and-swap on the slot's id, so the hot path looks a peer up with
 * a few atomic loads and takes only that peer's mutex. A slot is never
 * given back: the peers of a cluster are few and change rarely, and a node
 * that left keeps its old delays (docs/pbs.md, "Limits"). */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ringkv/pbs.h"

/* ---- one reservoir ------------------------------------------------------- */

void pbs_reservoir_init(pbs_reservoir *r)
{
    r->seen = 0;
}

void pbs_reservoir_add(pbs_reservoir *r, uint32_t us, rk_rng *rng)
{
    uint64_t i = r->seen++;
    if (i < PBS_RESERVOIR_CAP) {
        r->us[i] = us;
        return;
    }
    /* algorithm R: the (i+1)-th delay is kept with probability CAP/(i+1),
     * in the place of a uniformly chosen kept one */
    uint64_t j = rk_rng_below(rng, i + 1);
    if (j < PBS_RESERVOIR_CAP)
        r->us[j] = us;
}

size_t pbs_reservoir_count(const pbs_reservoir *r)
{
    return r->seen < PBS_RESERVOIR_CAP ? (size_t)r->seen : PBS_RESERVOIR_CAP;
}

/* ---- splitting a round trip ---------------------------------------------- */

static uint32_t us_of(uint64_t ns)
{
    uint64_t us = ns / 1000u;
    return us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static uint64_t after(uint64_t later, uint64_t earlier)
{
    return later > earlier ? later - earlier : 0;
}

bool pbs_split_round(uint64_t start_ns, uint64_t send_ns, uint64_t remote_ns, uint64_t recv_ns,
                     bool same_clock, uint32_t *out_us, uint32_t *back_us)
{
    /* A shared clock still has to agree with the order of events: the
     * replica cannot have acted before the call left or after its answer
     * came back. When it does not (a time namespace, a reused boot id),
     * the sample falls back to halves rather than being wrong. */
    if (same_clock && remote_ns >= send_ns && remote_ns <= recv_ns) {
        *out_us = us_of(after(remote_ns, start_ns));
        *back_us = us_of(after(recv_ns, remote_ns));
        return false;
    }
    uint64_t half = after(recv_ns, send_ns) / 2;
    *out_us = us_of(after(send_ns, start_ns) + half);
    *back_us = us_of(half);
    return true;
}

/* ---- the peer table ------------------------------------------------------ */

typedef struct peer_slot {
    _Atomic uint64_t id; /* 0: free; set once */
    pthread_mutex_t mu;  /* guards everything below */
    rk_rng rng;
    uint64_t rounds, split_rounds;
    pbs_reservoir res[PBS_KINDS];
} peer_slot;

struct pbs_samples {
    peer_slot peers[PBS_MAX_PEERS];
    _Atomic uint64_t dropped;
    /* the coordinator's wake-ups, by pbs_leg: one lock for both */
    pthread_mutex_t wake_mu;
    rk_rng wake_rng;
    pbs_reservoir wake[2];
};

rk_err pbs_samples_alloc(uint64_t seed, pbs_samples **out)
{
    /* calloc: 1 MiB of reservoirs whose pages are touched only as peers
     * appear */
    pbs_samples *s = calloc(1, sizeof *s);
    if (s == NULL)
        return RK_ENOMEM;
    rk_rng seeder;
    rk_rng_seed(&seeder, seed);
    for (size_t i = 0; i < PBS_MAX_PEERS; i++) {
        pthread_mutex_init(&s->peers[i].mu, NULL);
        rk_rng_seed(&s->peers[i].rng, rk_rng_next(&seeder));
    }
    pthread_mutex_init(&s->wake_mu, NULL);
    rk_rng_seed(&s->wake_rng, rk_rng_next(&seeder));
    *out = s;
    return RK_OK;
}

void pbs_samples_free(pbs_samples *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < PBS_MAX_PEERS; i++)
        pthread_mutex_destroy(&s->peers[i].mu);
    pthread_mutex_destroy(&s->wake_mu);
    free(s);
}

/* The slot of peer, claimed if it has none; NULL when the table is full. */
static peer_slot *slot_of(pbs_samples *s, uint64_t peer)
{
    for (size_t i = 0; i < PBS_MAX_PEERS; i++) {
        uint64_t id = atomic_load_explicit(&s->peers[i].id, memory_order_acquire);
        if (id == peer)
            return &s->peers[i];
        if (id != 0)
            continue;
        uint64_t expected = 0;
        if (atomic_compare_exchange_strong(&s->peers[i].id, &expected, peer) || expected == peer)
            return &s->peers[i];
        /* another peer took this slot first: look further */
    }
    return NULL;
}

void pbs_samples_add(pbs_samples *s, uint64_t peer, pbs_leg leg, uint32_t out_us, uint32_t back_us,
                     bool split)
{
    peer_slot *p = peer != 0 ? slot_of(s, peer) : NULL;
    if (p == NULL) {
        atomic_fetch_add_explicit(&s->dropped, 1, memory_order_relaxed);
        return;
    }
    pbs_kind out = leg == PBS_WRITE ? PBS_W : PBS_R, back = leg == PBS_WRITE ? PBS_A : PBS_S;
    pthread_mutex_lock(&p->mu);
    pbs_reservoir_add(&p->res[out], out_us, &p->rng);
    pbs_reservoir_add(&p->res[back], back_us, &p->rng);
    p->rounds++;
    p->split_rounds += split;
    pthread_mutex_unlock(&p->mu);
}

void pbs_samples_add_wake(pbs_samples *s, pbs_leg leg, uint32_t us)
{
    pthread_mutex_lock(&s->wake_mu);
    pbs_reservoir_add(&s->wake[leg == PBS_WRITE ? PBS_WRITE : PBS_READ], us, &s->wake_rng);
    pthread_mutex_unlock(&s->wake_mu);
}

/* ---- snapshots ----------------------------------------------------------- */

rk_err pbs_samples_snapshot(pbs_samples *s, pbs_snapshot *out)
{
    /* one allocation that every peer could fill: a snapshot is rare (a
     * /pbs request) and this keeps the copy to one pass under each lock */
    memset(out, 0, sizeof *out);
    uint32_t *storage =
        malloc(((size_t)PBS_MAX_PEERS * PBS_KINDS + 2) * PBS_RESERVOIR_CAP * sizeof *storage);
    if (storage == NULL)
        return RK_ENOMEM;
    size_t used = 0;
    for (size_t i = 0; i < PBS_MAX_PEERS; i++) {
        peer_slot *p = &s->peers[i];
        uint64_t id = atomic_load_explicit(&p->id, memory_order_acquire);
        if (id == 0)
            continue;
        pbs_peer *dst = &out->peers[out->peer_count];
        size_t held = 0;
        pthread_mutex_lock(&p->mu);
        for (int k = 0; k < PBS_KINDS; k++) {
            size_t n = pbs_reservoir_count(&p->res[k]);
            memcpy(storage + used, p->res[k].us, n * sizeof *storage);
            dst->kind[k] = (pbs_dist){storage + used, n};
            used += n;
            held += n;
            out->count[k] += n;
            out->seen[k] += p->res[k].seen;
        }
        out->rounds += p->rounds;
        out->split_rounds += p->split_rounds;
        pthread_mutex_unlock(&p->mu);
        dst->id = id;
        if (held > 0)
            out->peer_count++;
    }
    out->dropped = atomic_load_explicit(&s->dropped, memory_order_relaxed);
    pthread_mutex_lock(&s->wake_mu);
    for (int leg = 0; leg < 2; leg++) {
        size_t n = pbs_reservoir_count(&s->wake[leg]);
        memcpy(storage + used, s->wake[leg].us, n * sizeof *storage);
        out->wake[leg] = (pbs_dist){storage + used, n};
        used += n;
    }
    pthread_mutex_unlock(&s->wake_mu);
    out->storage = storage;
    return RK_OK;
}

void pbs_snapshot_free(pbs_snapshot *snap)
{
    free(snap->storage);
    memset(snap, 0, sizeof *snap);
}
