/* plan.c - who a request goes to: the replicas and fallbacks of a key
 * (sloppy quorum), the union of two rings while a range moves, the quorum
 * that needs, the order reads and write attempts go in, and how much of
 * the deadline one attempt may take. Pure, like quorum.c beside it: the
 * coordinator (coord.c) feeds in preference lists, liveness and the time. */
#include "quorum_internal.h"

#include <string.h>

/* ---- target selection ---------------------------------------------------- */

rk_err kv_quorum_select(const uint64_t *pref, const bool *alive, size_t count, size_t n,
                        bool sloppy, quorum_target *out, size_t *out_count)
{
    if (n == 0 || n > count || n > QUORUM_MAX_TARGETS || quorum_ids_repeat(pref, n))
        return RK_EINVAL;
    size_t next_fallback = n, len = 0;
    for (size_t i = 0; i < n; i++) {
        if (alive[i]) {
            out[len++] = (quorum_target){.node = pref[i], .intended = pref[i]};
            continue;
        }
        if (!sloppy)
            continue;
        /* Fallbacks are taken strictly in order, so each is used at most
         * once; a fallback id that repeats a replica (a malformed list) is
         * skipped rather than given two roles. */
        while (next_fallback < count &&
               (!alive[next_fallback] || quorum_ids_contain(pref, n, pref[next_fallback])))
            next_fallback++;
        if (next_fallback == count)
            continue;
        out[len++] = (quorum_target){.node = pref[next_fallback], .intended = pref[i]};
        next_fallback++;
    }
    *out_count = len;
    return RK_OK;
}

rk_err kv_quorum_join_union(const uint64_t *old_replicas, size_t old_count,
                            const uint64_t *new_replicas, size_t new_count, uint64_t *out,
                            size_t *out_count, size_t *out_pending)
{
    if (old_count == 0 || new_count == 0 || old_count > RING_MAX_N || new_count > RING_MAX_N ||
        quorum_ids_repeat(old_replicas, old_count) || quorum_ids_repeat(new_replicas, new_count))
        return RK_EINVAL;
    memcpy(out, old_replicas, old_count * sizeof *out);
    size_t len = old_count;
    for (size_t i = 0; i < new_count; i++)
        if (!quorum_ids_contain(old_replicas, old_count, new_replicas[i]))
            out[len++] = new_replicas[i];
    *out_count = len;
    *out_pending = len - old_count;
    return RK_OK;
}

/* ---- the coordinator's other decisions ------------------------------------ */

unsigned kv_quorum_needed(unsigned q, size_t replicas, size_t pending)
{
    /* fewer members than N: each has the key and all of them are the quorum */
    unsigned have = replicas < q ? (unsigned)replicas : q;
    return quorum_join_needed(have, pending);
}

/* Appends to list[have..) up to extra ids of pref[0..count) that list
 * lacks; returns the new length. */
static size_t add_missing(uint64_t *list, size_t have, const uint64_t *pref, size_t count,
                          size_t extra)
{
    size_t n = have;
    for (size_t i = 0; i < count && n < have + extra; i++)
        if (!quorum_ids_contain(list, n, pref[i]))
            list[n++] = pref[i];
    return n;
}

rk_err kv_quorum_plan(const quorum_prefs *p, quorum_alive_cb alive_cb, void *arg, bool sloppy,
                      quorum_plan_result *out)
{
    if (p->replicas == 0 || p->replicas > RING_MAX_N || p->count < p->replicas ||
        p->count > p->replicas + QUORUM_MAX_FALLBACKS ||
        (p->next != NULL && (p->next_replicas == 0 || p->next_replicas > RING_MAX_N ||
                             p->next_count < p->next_replicas ||
                             p->next_count > p->next_replicas + QUORUM_MAX_FALLBACKS)))
        return RK_EINVAL;
    uint64_t list[QUORUM_MAX_TARGETS + QUORUM_MAX_FALLBACKS];
    size_t n = p->replicas, total, pending = 0;
    if (p->next == NULL) {
        memcpy(list, p->pref, p->count * sizeof list[0]);
        total = p->count;
    } else {
        rk_err err = kv_quorum_join_union(p->pref, p->replicas, p->next, p->next_replicas, list, &n,
                                          &pending);
        if (err != RK_OK)
            return err;
        /* fallbacks come from the next ring, where the range is going */
        total = add_missing(list, n, p->next + p->next_replicas, p->next_count - p->next_replicas,
                            QUORUM_MAX_FALLBACKS);
    }
    bool alive[QUORUM_MAX_TARGETS + QUORUM_MAX_FALLBACKS];
    for (size_t i = 0; i < total; i++)
        alive[i] = alive_cb(arg, list[i]);
    quorum_target targets[QUORUM_MAX_TARGETS];
    size_t target_count;
    rk_err err = kv_quorum_select(list, alive, total, n, sloppy, targets, &target_count);
    if (err != RK_OK)
        return err;
    /* set on success only */
    memcpy(out->targets, targets, target_count * sizeof targets[0]);
    out->target_count = target_count;
    memcpy(out->replicas, list, n * sizeof list[0]);
    out->replica_count = n;
    out->old_count = p->replicas;
    out->pending = pending;
    return RK_OK;
}

void kv_quorum_read_order(quorum_target *targets, size_t count, uint64_t self)
{
    for (size_t i = 1; i < count; i++) {
        if (targets[i].node != self || quorum_target_is_fallback(&targets[i]))
            continue;
        quorum_target t = targets[i];
        memmove(&targets[1], &targets[0], i * sizeof targets[0]);
        targets[0] = t;
        return;
    }
}

size_t kv_quorum_applier_order(const quorum_target *targets, size_t count, uint64_t self,
                               size_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if (targets[i].node == self && !quorum_target_is_fallback(&targets[i]))
            out[n++] = i;
    for (size_t i = 0; i < count; i++)
        if (targets[i].node != self && !quorum_target_is_fallback(&targets[i]))
            out[n++] = i;
    return n;
}

uint64_t kv_quorum_attempt_deadline(uint64_t now_ms, uint64_t deadline_ms, bool remote,
                                    bool others_left)
{
    /* with a millisecond or less left, halving would leave nothing */
    if (!remote || !others_left || deadline_ms <= now_ms + 1)
        return deadline_ms;
    return now_ms + (deadline_ms - now_ms) / 2;
}
