/* quorum.c - when a get or put has its quorum, what a read merges to and
 * what read repair sends where; sloppy and join target selection.
 *
 * A request has two independent facts: its verdict (what the client is
 * told) and whether it is done (every target answered, or the deadline
 * passed: what read repair waits for). The verdict is decided by the first
 * reply that settles it and never changes; replies after it still count
 * toward done and, for a get, still merge.
 *
 *   get_core / put_core    (acks: ok + not found for a get; for a put, acks
 *                           including the coordinator's own apply)
 *
 *                        acks reach q
 *           +---------+ ------------------------> +---------+
 *   init -->| PENDING |                           | REACHED |----+
 *           +---------+ ---------+                +---------+    | the last reply,
 *             |     ^            | acks + unanswered             | or the tick at
 *             +-----+            | < q, or deadline +--------+   | the deadline
 *          a reply that          +----------------> | FAILED |---+
 *          settles nothing                          +--------+   v
 *                                                            +------+
 *                                                            | DONE | read repair;
 *                                                            +------+ late replies
 *                                                                     are ignored
 * (init itself may land in REACHED - a put with w = 1 - or in FAILED - a
 * quorum larger than the number of targets.)
 *
 * Transitions:
 *   PENDING -> REACHED  kv_get_core_reply (ok or not found), kv_put_core_reply
 *                       (ack), kv_put_core_init (w == 1)
 *   PENDING -> FAILED   kv_get_core_reply / kv_put_core_reply (an error leaves too
 *                       few unanswered), kv_get_core_tick / kv_put_core_tick (the
 *                       deadline), kv_get_core_init / kv_put_core_init (q > targets)
 *   REACHED, FAILED -> DONE
 *                       kv_get_core_reply / kv_put_core_reply (the last target),
 *                       kv_get_core_tick / kv_put_core_tick (the deadline);
 *                       kv_get_core_repairs answers from here on
 *
 * Since "acks >= q" and "errors > targets - q" only ever become true, the
 * final verdict and, by the merge laws, the merged object and the repair
 * set do not depend on the order in which replies arrive
 * (tests/unit/test_quorum.c checks this on random orders). */
#include "quorum_internal.h"

#include <stdlib.h>
#include <string.h>

enum { ANSWER_NONE = 0 };

static uint8_t answer_state(quorum_reply reply)
{
    return (uint8_t)(1 + reply);
}

/* ---- get ----------------------------------------------------------------- */

static void answer_fini(get_core_answer *a)
{
    vclock_free(&a->clock);
    free(a->dots);
    *a = (get_core_answer){0};
}

/* Records the version obj holds (its clock and dots) in a. */
static rk_err answer_record(get_core_answer *a, const rk_object *obj)
{
    vclock clock = {0};
    clock_dot *dots = NULL;
    rk_err err = vclock_copy(&clock, &obj->clock);
    if (err != RK_OK)
        return err;
    if (obj->len > 0) {
        dots = malloc(obj->len * sizeof *dots);
        if (dots == NULL) {
            vclock_free(&clock);
            return RK_ENOMEM;
        }
        for (size_t i = 0; i < obj->len; i++)
            dots[i] = obj->siblings[i].dot;
    }
    a->clock = clock;
    a->dots = dots;
    a->dots_len = obj->len;
    return RK_OK;
}

/* Whether an ok answer holds less than merged. Every answer is merged in,
 * so an answer is never ahead: it is behind when its clock is, or when the
 * clocks are equal but the siblings differ (a sibling the other side's cap
 * dropped; the merge keeps only what both sides kept). Dots are unique in
 * an object, so equal size plus inclusion is equality. */
static bool answer_behind(const get_core_answer *a, const rk_object *merged)
{
    if (vclock_compare(&a->clock, &merged->clock) != VCLOCK_EQUAL)
        return true;
    if (a->dots_len != merged->len)
        return true;
    for (size_t i = 0; i < a->dots_len; i++) {
        bool found = false;
        for (size_t j = 0; j < merged->len && !found; j++)
            found = merged->siblings[j].dot.actor == a->dots[i].actor &&
                    merged->siblings[j].dot.counter == a->dots[i].counter;
        if (!found)
            return true;
    }
    return false;
}

static void get_settle(get_core *gc)
{
    if (gc->verdict != QUORUM_PENDING)
        return;
    unsigned acks = gc->ok + gc->notfound;
    size_t unanswered = gc->count - acks - gc->errors;
    if (acks >= gc->r)
        gc->verdict = QUORUM_REACHED;
    else if (acks + unanswered < gc->r || gc->expired)
        gc->verdict = QUORUM_FAILED;
}

rk_err kv_get_core_init(get_core *gc, const uint64_t *nodes, size_t count, unsigned r,
                        uint64_t deadline_ms)
{
    if (r == 0 || count > QUORUM_MAX_TARGETS || quorum_ids_repeat(nodes, count))
        return RK_EINVAL;
    *gc = (get_core){.count = count, .asked = count, .r = r, .deadline_ms = deadline_ms};
    if (count > 0)
        memcpy(gc->nodes, nodes, count * sizeof *nodes);
    get_settle(gc);
    return RK_OK;
}

void kv_get_core_fini(get_core *gc)
{
    for (size_t i = 0; i < gc->count; i++)
        answer_fini(&gc->answers[i]);
    object_free(&gc->merged);
    gc->has_object = false;
}

rk_err kv_get_core_reply(get_core *gc, uint64_t node, quorum_reply reply, const rk_object *obj,
                         bool *counted)
{
    if (counted)
        *counted = false;
    if (reply == QUORUM_REPLY_OK && obj == NULL)
        return RK_EINVAL;
    if (reply != QUORUM_REPLY_OK && reply != QUORUM_REPLY_NOTFOUND && reply != QUORUM_REPLY_ERROR)
        return RK_EINVAL;
    if (gc->expired)
        return RK_OK;
    size_t i = 0;
    while (i < gc->count && gc->nodes[i] != node)
        i++;
    if (i == gc->count || gc->answers[i].state != ANSWER_NONE)
        return RK_OK;

    get_core_answer *a = &gc->answers[i];
    if (reply == QUORUM_REPLY_OK) {
        /* Record first, then merge: if the merge fails, the record is
         * undone and the core is as it was. */
        rk_err err = answer_record(a, obj);
        if (err != RK_OK)
            return err;
        err = gc->has_object ? object_merge(&gc->merged, obj, 0, NULL)
                             : object_copy(&gc->merged, obj);
        if (err != RK_OK) {
            answer_fini(a);
            return err;
        }
        gc->has_object = true;
        gc->ok++;
    } else if (reply == QUORUM_REPLY_NOTFOUND) {
        gc->notfound++;
    } else {
        gc->errors++;
    }
    a->state = answer_state(reply);
    get_settle(gc);
    if (counted)
        *counted = true;
    return RK_OK;
}

void kv_get_core_tick(get_core *gc, uint64_t now_ms)
{
    if (now_ms < gc->deadline_ms)
        return;
    gc->expired = true;
    get_settle(gc);
}

quorum_verdict kv_get_core_verdict(const get_core *gc)
{
    return gc->verdict;
}

bool kv_get_core_done(const get_core *gc)
{
    if (gc->expired)
        return true;
    size_t answered = gc->ok + gc->notfound + gc->errors;
    /* a pending read with everyone asked so far answered asks more next */
    return answered == gc->count || (answered == gc->asked && gc->verdict != QUORUM_PENDING);
}

void kv_get_core_target(get_core *gc, size_t first)
{
    size_t ask = first < gc->r ? gc->r : first;
    gc->asked = ask < gc->count ? ask : gc->count;
}

void kv_get_core_speculate(get_core *gc)
{
    gc->speculated = true;
}

size_t kv_get_core_to_ask(get_core *gc, size_t *from)
{
    *from = gc->asked;
    if (gc->verdict != QUORUM_PENDING || gc->expired)
        return 0;
    /* each failed answer is replaced by the next target; after the
     * speculative delay, every target not asked yet is asked */
    size_t want = gc->speculated ? gc->count : (size_t)gc->r + gc->errors;
    if (want > gc->count)
        want = gc->count;
    if (want <= gc->asked)
        return 0;
    size_t n = want - gc->asked;
    gc->asked = want;
    return n;
}

size_t kv_get_core_asked(const get_core *gc)
{
    return gc->asked;
}

bool kv_get_core_speculated(const get_core *gc)
{
    return gc->speculated;
}

bool kv_get_core_waiting_on_asked(const get_core *gc)
{
    return gc->verdict == QUORUM_PENDING && !gc->expired && gc->asked < gc->count;
}

rk_err kv_get_core_result(const get_core *gc, unsigned *acks, unsigned *needed)
{
    if (acks)
        *acks = gc->ok + gc->notfound;
    if (needed)
        *needed = gc->r;
    switch (gc->verdict) {
    case QUORUM_PENDING: return RK_EINVAL;
    case QUORUM_FAILED: return RK_EQUORUM;
    case QUORUM_REACHED: break;
    }
    return gc->has_object && object_live_count(&gc->merged) > 0 ? RK_OK : RK_ENOTFOUND;
}

const rk_object *kv_get_core_object(const get_core *gc)
{
    return gc->has_object ? &gc->merged : NULL;
}

size_t kv_get_core_answered(const get_core *gc, uint64_t *out)
{
    size_t len = 0;
    for (size_t i = 0; i < gc->count; i++)
        if (gc->answers[i].state == answer_state(QUORUM_REPLY_OK) ||
            gc->answers[i].state == answer_state(QUORUM_REPLY_NOTFOUND))
            out[len++] = gc->nodes[i];
    return len;
}

rk_err kv_get_core_repairs(const get_core *gc, uint64_t *out, size_t *out_count)
{
    if (!kv_get_core_done(gc))
        return RK_EINVAL;
    size_t len = 0;
    if (gc->has_object) {
        for (size_t i = 0; i < gc->count; i++) {
            const get_core_answer *a = &gc->answers[i];
            if ((a->state == answer_state(QUORUM_REPLY_NOTFOUND)) ||
                (a->state == answer_state(QUORUM_REPLY_OK) && answer_behind(a, &gc->merged)))
                out[len++] = gc->nodes[i];
        }
    }
    *out_count = len;
    return RK_OK;
}

/* ---- put ----------------------------------------------------------------- */

enum { PUT_NONE = 0, PUT_ACK = 1, PUT_ERROR = 2 };

static void put_settle(put_core *pc)
{
    if (pc->verdict != QUORUM_PENDING)
        return;
    size_t unanswered = pc->count - pc->acks - pc->errors;
    if (pc->acks >= pc->w)
        pc->verdict = QUORUM_REACHED;
    else if (pc->acks + unanswered < pc->w || pc->expired)
        pc->verdict = QUORUM_FAILED;
}

rk_err kv_put_core_init(put_core *pc, const quorum_target *targets, size_t count,
                        uint64_t coordinator, unsigned w, uint64_t deadline_ms)
{
    if (w == 0 || count > QUORUM_MAX_TARGETS)
        return RK_EINVAL;
    size_t self = count;
    for (size_t i = 0; i < count; i++) {
        for (size_t j = i + 1; j < count; j++)
            if (targets[i].node == targets[j].node)
                return RK_EINVAL;
        if (targets[i].node == coordinator)
            self = i;
    }
    if (self == count)
        return RK_EINVAL;
    *pc = (put_core){.count = count, .w = w, .deadline_ms = deadline_ms};
    memcpy(pc->targets, targets, count * sizeof *targets);
    pc->state[self] = PUT_ACK;
    pc->acks = 1;
    put_settle(pc);
    return RK_OK;
}

void kv_put_core_reply(put_core *pc, uint64_t node, bool ok, bool *counted)
{
    if (counted)
        *counted = false;
    if (pc->expired)
        return;
    size_t i = 0;
    while (i < pc->count && pc->targets[i].node != node)
        i++;
    if (i == pc->count || pc->state[i] != PUT_NONE)
        return;
    pc->state[i] = ok ? PUT_ACK : PUT_ERROR;
    if (ok)
        pc->acks++;
    else
        pc->errors++;
    put_settle(pc);
    if (counted)
        *counted = true;
}

void kv_put_core_tick(put_core *pc, uint64_t now_ms)
{
    if (now_ms < pc->deadline_ms)
        return;
    pc->expired = true;
    put_settle(pc);
}

quorum_verdict kv_put_core_verdict(const put_core *pc)
{
    return pc->verdict;
}

bool kv_put_core_done(const put_core *pc)
{
    return pc->expired || pc->acks + pc->errors == pc->count;
}

rk_err kv_put_core_result(const put_core *pc, unsigned *acks, unsigned *needed)
{
    if (acks)
        *acks = pc->acks;
    if (needed)
        *needed = pc->w;
    switch (pc->verdict) {
    case QUORUM_PENDING: return RK_EINVAL;
    case QUORUM_FAILED: return RK_EQUORUM;
    case QUORUM_REACHED: break;
    }
    return RK_OK;
}

size_t kv_put_core_acked(const put_core *pc, quorum_target *out)
{
    size_t len = 0;
    for (size_t i = 0; i < pc->count; i++)
        if (pc->state[i] == PUT_ACK)
            out[len++] = pc->targets[i];
    return len;
}

size_t kv_put_core_fallbacks(const put_core *pc, quorum_target *out)
{
    size_t len = 0;
    for (size_t i = 0; i < pc->count; i++)
        if (pc->state[i] == PUT_ACK && quorum_target_is_fallback(&pc->targets[i]))
            out[len++] = pc->targets[i];
    return len;
}

size_t kv_put_core_missed(const put_core *pc, const uint64_t *replicas, size_t replica_count,
                          uint64_t *out)
{
    size_t n = 0;
    for (size_t r = 0; r < replica_count; r++) {
        bool covered = false;
        for (size_t i = 0; i < pc->count && !covered; i++)
            covered = pc->targets[i].intended == replicas[r] && pc->state[i] == PUT_ACK;
        if (!covered)
            out[n++] = replicas[r];
    }
    return n;
}
