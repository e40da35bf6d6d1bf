/* quorum_internal.h - the coordinator's pure quorum decisions (private to src/kv).
 *
 * What a get or put waits for, when it has succeeded or can no longer
 * succeed, what the answers merge to and which replicas read repair must
 * fix; which nodes a request goes to when replicas are down (sloppy
 * quorum) and while a range is moving to a joining node. Nothing here
 * touches the network, a thread or a clock: the machinery that sends the
 * requests and runs the timers (the kv coordinator) feeds in replies and
 * the current time, as riak_kv's get_fsm feeds get_core.
 *
 * Target planning (who a request goes to) is in plan.c, the verdicts in
 * quorum.c; both are pure. Cores are plain structs the caller owns (no
 * allocation by init), so a request's state can live inside the request. Node ids are the 64-bit
 * member ids of include/ringkv/ring.h. */
#ifndef RINGKV_KV_QUORUM_INTERNAL_H
#define RINGKV_KV_QUORUM_INTERNAL_H

#include "ringkv/clock.h"
#include "ringkv/common.h"
#include "ringkv/ring.h"

/* Most nodes one request may address: N replicas, or during a join the
 * union of a range's old and new replicas (at most 2N). */
#define QUORUM_MAX_TARGETS (2u * RING_MAX_N)

typedef enum quorum_verdict {
    QUORUM_PENDING, /* not yet decided: wait for more replies */
    QUORUM_REACHED, /* enough replicas answered; final */
    QUORUM_FAILED,  /* the quorum can no longer be reached; final */
} quorum_verdict;

/* Whether ids[0..count) holds id / holds some id twice. Lists are at most
 * QUORUM_MAX_TARGETS long, so a scan is the fastest way. */
static inline bool quorum_ids_contain(const uint64_t *ids, size_t count, uint64_t id)
{
    for (size_t i = 0; i < count; i++)
        if (ids[i] == id)
            return true;
    return false;
}

static inline bool quorum_ids_repeat(const uint64_t *ids, size_t count)
{
    for (size_t i = 1; i < count; i++)
        if (quorum_ids_contain(ids, i, ids[i]))
            return true;
    return false;
}

/* ---- target selection ---------------------------------------------------- */

/* One node a request is sent to. intended is the replica whose place the
 * node takes: node itself for a replica, the down replica for a fallback
 * (the hint the fallback stores names it, and X-Ringkv-Fallbacks shows it). */
typedef struct quorum_target {
    uint64_t node;
    uint64_t intended;
} quorum_target;

static inline bool quorum_target_is_fallback(const quorum_target *t)
{
    return t->node != t->intended;
}

/* Chooses the targets of a request from a preference list as
 * ring_preference_list returns it: pref[0..n) the replicas, pref[n..count)
 * the fallbacks in order. alive[i] says whether pref[i] is believed alive.
 * Each alive replica is its own target; with sloppy, each down replica is
 * replaced by the next alive fallback not used yet; without, or when the
 * fallbacks run out, a down replica gets no target. Targets come in the
 * order of the replicas they serve; *out_count (<= n) is how many.
 * out needs room for n targets. RK_EINVAL if n is 0, over count or over
 * QUORUM_MAX_TARGETS, or an id repeats among pref[0..n). */
rk_err kv_quorum_select(const uint64_t *pref, const bool *alive, size_t count, size_t n,
                        bool sloppy, quorum_target *out, size_t *out_count);

/* The replicas of a range that is moving (DESIGN "Join"): until the new
 * replicas have received the range, a request goes to the union of the
 * old and new replica lists, old_replicas first, then each new replica
 * the old list lacks. *out_pending is how many of those there are (p).
 *
 * With p pending nodes the union has N + p members, and a quorum of q over
 * it must ask for q + p answers (quorum_join_needed): then any w + p
 * acknowledgements include w old replicas and any r + p answers include r
 * old replicas, so with R + W > N every read still meets every
 * acknowledged write among the old replicas, which hold the range
 * (Cassandra's pending-range rule, applied to reads as well as writes so
 * the pending replicas also receive read repair). For a sloppy quorum
 * during a move, give kv_quorum_select the union as its replicas (n = the
 * union's size) followed by the new ring's fallbacks outside the union.
 * Pass the replicas only (the first ring_replica_count ids of each
 * preference list), not the fallbacks. out needs room for
 * old_count + new_count ids. RK_EINVAL if either list is empty, over
 * RING_MAX_N, or repeats an id. */
rk_err kv_quorum_join_union(const uint64_t *old_replicas, size_t old_count,
                            const uint64_t *new_replicas, size_t new_count, uint64_t *out,
                            size_t *out_count, size_t *out_pending);

/* q + pending: the quorum to ask of a join union. */
static inline unsigned quorum_join_needed(unsigned q, size_t pending)
{
    return q + (unsigned)pending;
}

/* ---- get ----------------------------------------------------------------- */

typedef enum quorum_reply {
    QUORUM_REPLY_OK,       /* the replica holds an object (maybe tombstones only) */
    QUORUM_REPLY_NOTFOUND, /* the replica holds nothing for the key */
    QUORUM_REPLY_ERROR,    /* the call failed: timeout, I/O, refused */
} quorum_reply;

/* What one target has answered, as far as read repair needs it: its clock
 * and its siblings' dots, not its values. */
typedef struct get_core_answer {
    uint8_t state; /* 0 = none yet, else 1 + quorum_reply */
    vclock clock;
    clock_dot *dots;
    size_t dots_len;
} get_core_answer;

/* A read fanned out to count targets, r of which must answer ok or not
 * found. Zero-initialise, kv_get_core_init, feed kv_get_core_reply and
 * kv_get_core_tick, read the verdict and results; free with kv_get_core_fini. */
typedef struct get_core {
    uint64_t nodes[QUORUM_MAX_TARGETS];
    get_core_answer answers[QUORUM_MAX_TARGETS];
    size_t count;
    size_t asked;    /* targets [0, asked) have been asked (all, unless targeted) */
    bool speculated; /* the speculative delay passed: ask every target */
    unsigned r;
    uint64_t deadline_ms;
    unsigned ok, notfound, errors;
    bool has_object; /* merged holds at least one ok answer */
    bool expired;    /* the deadline passed: later replies are ignored */
    quorum_verdict verdict;
    rk_object merged; /* object_merge of every ok answer, no cap */
} get_core;

/* Starts a read of nodes[0..count) needing r answers by deadline_ms (the
 * caller's clock; only compared with what kv_get_core_tick is given). r over
 * count is allowed and fails at once (too few targets, e.g. every replica
 * down): the coordinator then answers RK_EQUORUM like any other failure.
 * RK_EINVAL if r is 0, count over QUORUM_MAX_TARGETS, or an id repeats.
 * Allocates nothing; kv_get_core_fini frees what replies add. */
rk_err kv_get_core_init(get_core *gc, const uint64_t *nodes, size_t count, unsigned r,
                        uint64_t deadline_ms);
void kv_get_core_fini(get_core *gc);

/* Feeds node's reply; obj is its object for QUORUM_REPLY_OK (read, not
 * kept: the core copies what it needs) and ignored otherwise. A second
 * reply from the same node, a reply from a node not targeted and a reply
 * after the deadline are ignored (*counted false). Replies keep arriving
 * after the verdict: they still merge and decide read repair. RK_ENOMEM
 * leaves the core as it was (the caller may feed an error reply instead);
 * RK_EINVAL for an ok reply without an object. counted may be NULL. */
rk_err kv_get_core_reply(get_core *gc, uint64_t node, quorum_reply reply, const rk_object *obj,
                         bool *counted);

/* Tells the core the time. At or past the deadline it stops taking
 * replies, and a pending verdict becomes QUORUM_FAILED. */
void kv_get_core_tick(get_core *gc, uint64_t now_ms);

quorum_verdict kv_get_core_verdict(const get_core *gc);

/* Targeted reads (Cassandra's speculative retry). By default every target
 * is asked at once. kv_get_core_target(gc, first) says only the first
 * max(first, r) targets are asked for now; order the targets so the best
 * come first (kv_quorum_read_order). Then, after every reply and after
 * kv_get_core_speculate, kv_get_core_to_ask says which targets to ask next: one
 * more for each error, and all of the rest once the speculative delay
 * passed without a verdict. It returns how many, from index *from, and
 * counts them as asked; 0 once the verdict is known or the deadline
 * passed. Call kv_get_core_target right after init, before any reply. */
void kv_get_core_target(get_core *gc, size_t first);
void kv_get_core_speculate(get_core *gc);
size_t kv_get_core_to_ask(get_core *gc, size_t *from);
/* How many targets are asked so far (the first ones, in target order). */
size_t kv_get_core_asked(const get_core *gc);
/* Whether kv_get_core_speculate was called. */
bool kv_get_core_speculated(const get_core *gc);
/* Pending, with targets not asked yet: what the speculative timer is for. */
bool kv_get_core_waiting_on_asked(const get_core *gc);

/* Every target asked answered and no more will be asked, or the deadline
 * passed: read repair may run (for the targets that answered). */
bool kv_get_core_done(const get_core *gc);

/* The outcome for the client once the verdict is final: RK_OK when the
 * merged object has a live sibling; RK_ENOTFOUND when the quorum answered
 * nothing or only tombstones (kv_get_core_object still gives a tombstone-only
 * object, whose context a 404 carries); RK_EQUORUM when failed. *acks (ok
 * and not-found replies so far) and *needed (r) are set in every case, and
 * either may be NULL. RK_EINVAL while pending. */
rk_err kv_get_core_result(const get_core *gc, unsigned *acks, unsigned *needed);

/* The merge of every ok answer so far (no sibling cap: replica merges pass
 * none, docs/causality.md), or NULL if none. Owned by the core; valid until
 * the next kv_get_core_reply or kv_get_core_fini. */
const rk_object *kv_get_core_object(const get_core *gc);

/* The nodes that answered ok or not found, in target order, for
 * X-Ringkv-Replicas. out needs room for gc->count ids. Returns how many. */
size_t kv_get_core_answered(const get_core *gc, uint64_t *out);

/* Read repair, once kv_get_core_done: the targets that answered with an
 * object strictly behind the merged one, or not found while the merge
 * holds an object (tombstones included: a replica that missed a delete
 * must learn it). Each is to receive kv_get_core_object. Error replies and
 * silent nodes are left to hinted handoff and anti-entropy. out needs room
 * for gc->count ids; *out_count is how many, in target order. RK_EINVAL
 * before kv_get_core_done. */
rk_err kv_get_core_repairs(const get_core *gc, uint64_t *out, size_t *out_count);

/* ---- put ----------------------------------------------------------------- */

/* A write coordinated by one of its targets, which has applied it already
 * and counts as the first ack; w acks in all are needed. */
typedef struct put_core {
    quorum_target targets[QUORUM_MAX_TARGETS];
    uint8_t state[QUORUM_MAX_TARGETS]; /* 0 = none yet, 1 = ack, 2 = error */
    size_t count;
    unsigned w;
    uint64_t deadline_ms;
    unsigned acks, errors;
    bool expired;
    quorum_verdict verdict;
} put_core;

/* Starts a write to targets[0..count) (kv_quorum_select's output), of which
 * coordinator is one and has acked. w over count fails at once. RK_EINVAL
 * if w is 0, count over QUORUM_MAX_TARGETS, a node repeats, or coordinator
 * is not a target (a node outside the preference list forwards the write
 * instead of coordinating it). Allocates nothing. */
rk_err kv_put_core_init(put_core *pc, const quorum_target *targets, size_t count,
                        uint64_t coordinator, unsigned w, uint64_t deadline_ms);

/* Feeds node's answer: ok true for an ack, false for an error. Duplicate,
 * unknown and late replies are ignored (*counted false; counted may be
 * NULL). */
void kv_put_core_reply(put_core *pc, uint64_t node, bool ok, bool *counted);

/* At or past the deadline: stop taking replies; pending becomes failed. */
void kv_put_core_tick(put_core *pc, uint64_t now_ms);

quorum_verdict kv_put_core_verdict(const put_core *pc);

/* Every target answered or the deadline passed. */
bool kv_put_core_done(const put_core *pc);

/* RK_OK when reached, RK_EQUORUM when failed; *acks and *needed (w) set in
 * every case, either may be NULL. RK_EINVAL while pending. */
rk_err kv_put_core_result(const put_core *pc, unsigned *acks, unsigned *needed);

/* The targets that acked, in target order (X-Ringkv-Replicas); out needs
 * room for pc->count. Returns how many. */
size_t kv_put_core_acked(const put_core *pc, quorum_target *out);

/* The fallbacks that acked, each with the replica it stands in for
 * (X-Ringkv-Fallbacks); out needs room for pc->count. Returns how many. */
size_t kv_put_core_fallbacks(const put_core *pc, quorum_target *out);

/* The replicas of pc's write that no target acked for, its own or a
 * fallback standing in (so the coordinator keeps a hint for each). out
 * needs room for replica_count ids; returns how many. */
size_t kv_put_core_missed(const put_core *pc, const uint64_t *replicas, size_t replica_count,
                          uint64_t *out);

/* ---- the coordinator's other decisions ------------------------------------ */

/* Fallbacks asked for beyond the N replicas. */
#define QUORUM_MAX_FALLBACKS 4

/* The answers a quorum of q needs when the key has `replicas` replicas in
 * the read ring and `pending` more in the next one: q, capped at the
 * replicas there are (a ring with fewer members than N: each member holds
 * the key and all of them make the quorum, DESIGN.md), plus one per
 * pending replica (quorum_join_needed). */
unsigned kv_quorum_needed(unsigned q, size_t replicas, size_t pending);

/* A key's preference lists as ring_preference_list gives them: the read
 * ring's pref[0..count), its replicas first, and while members join or
 * leave the next ring's next[0..next_count) (NULL otherwise). */
typedef struct quorum_prefs {
    const uint64_t *pref;
    size_t count, replicas;
    const uint64_t *next;
    size_t next_count, next_replicas;
} quorum_prefs;

typedef bool (*quorum_alive_cb)(void *arg, uint64_t node);

/* Who a request goes to. */
typedef struct quorum_plan_result {
    quorum_target targets[QUORUM_MAX_TARGETS];
    size_t target_count;
    /* the intended replicas (hints are kept for those that miss a write):
     * the read ring's, then the pending ones of the next ring */
    uint64_t replicas[QUORUM_MAX_TARGETS];
    size_t replica_count;
    size_t old_count; /* replicas in the read ring */
    size_t pending;   /* replicas of the next ring that the read ring lacks */
} quorum_plan_result;

/* Plans a request: the replicas (the union of both rings while a range
 * moves, kv_quorum_join_union) and the targets among them and the fallbacks
 * (kv_quorum_select, with alive_cb asked about each). RK_EINVAL for lists
 * out of bounds or with repeated replicas. */
rk_err kv_quorum_plan(const quorum_prefs *p, quorum_alive_cb alive_cb, void *arg, bool sloppy,
                      quorum_plan_result *out);

/* Orders a read's targets: this node's own replica copy first (no round
 * trip), the others after it in preference order. */
void kv_quorum_read_order(quorum_target *targets, size_t count, uint64_t self);

/* The order in which replicas are asked to apply a client's write (only a
 * replica may be a clock's actor): this node first when it is a replica
 * target, then the other replica targets in order; fallbacks never. out
 * gets indexes into targets (room for count); returns how many. */
size_t kv_quorum_applier_order(const quorum_target *targets, size_t count, uint64_t self,
                               size_t *out);

/* The deadline of one attempt to apply a write: the request's, or half of
 * what is left when the attempt is remote and another replica remains to
 * try. A replica that died a moment ago (not yet called down) takes no
 * connection and its call waits, unsent, until its deadline: the next
 * replica must still have time. */
uint64_t kv_quorum_attempt_deadline(uint64_t now_ms, uint64_t deadline_ms, bool remote,
                                    bool others_left);

#endif
