/* failpoint.h - named fault points that delay, drop or fail, for the quorum
 * lab and the fault tests (docs/failpoints.md).
 *
 * These machines' kernels have no netem, so a node injects its own faults,
 * the way etcd (gofail) and TiKV (fail-rs) do: a few named points in the
 * RPC and storage paths ask this module what to do with the message or the
 * call at hand, and a rule set decides, per point and per peer:
 *
 *   rpc.send     a message this node sends to a peer (requests and replies)
 *   rpc.recv     a message this node received from a peer, before it is used
 *   store.write  a write to the `data` or `hints` column family
 *   store.read   a read of them
 *
 * A rule is one line, e.g. `rpc.send@node3=20%delay(exp(5))` (the grammar
 * is in failpoint_rule_parse). Nothing happens unless the process called
 * failpoint_enable (ringkvd --failpoints) and a rule names the point: a
 * point then costs one relaxed load of a global flag and a branch the
 * compiler marks unlikely (failpoint_armed).
 *
 * The module is process-wide, as the points are: ringkvd runs one node per
 * process. Threads: everything here may be called from any thread; the
 * rule set is swapped under a lock that a point holds only to pick its
 * action (never across a delay). */
#ifndef RINGKV_FAILPOINT_H
#define RINGKV_FAILPOINT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringkv/common.h"

typedef enum failpoint_point {
    FAILPOINT_RPC_SEND,
    FAILPOINT_RPC_RECV,
    FAILPOINT_STORE_WRITE,
    FAILPOINT_STORE_READ,
    FAILPOINT_POINT_COUNT
} failpoint_point;

/* "rpc.send", ... */
const char *failpoint_point_name(failpoint_point p);

/* ---- the hot path ---------------------------------------------------------- */

/* One flag per point: true while failpoints are enabled and a rule names
 * the point. Read through failpoint_armed only. */
extern _Atomic bool failpoint_armed_flags[FAILPOINT_POINT_COUNT];

/* Whether point p has any rule: the one check a point makes when nothing
 * is set. */
static inline bool failpoint_armed(failpoint_point p)
{
    return __builtin_expect(atomic_load_explicit(&failpoint_armed_flags[p], memory_order_relaxed),
                            0);
}

typedef enum failpoint_kind {
    FAILPOINT_NONE,  /* go on as usual */
    FAILPOINT_DELAY, /* go on after delay_us */
    FAILPOINT_DROP,  /* the message is lost: the caller times out */
    FAILPOINT_FAIL,  /* the call fails: RK_EIO to the caller */
} failpoint_kind;

typedef struct failpoint_action {
    failpoint_kind kind;
    uint64_t delay_us; /* FAILPOINT_DELAY: sampled from the rule's distribution */
} failpoint_action;

/* Who is at the other end of a message, as far as the point knows: an id
 * of 0 or an addr of NULL is "unknown" (the client knows the address it
 * called, the server the id that sealed the request). A rule naming a peer
 * by what the point does not know is matched through the resolver. */
typedef struct failpoint_peer {
    uint64_t id;
    const char *addr; /* "HOST:PORT" (a "tcp://" prefix is ignored) */
} failpoint_peer;

/* What point p should do now with a message to or from peer (NULL for the
 * store points). The first rule that matches and fires decides: rules
 * naming a peer before rules for all, each group in the order given. A
 * rule fires with its probability, and at most its count of times; a hit
 * is counted for every rule that matched. FAILPOINT_NONE when none fires
 * or failpoints are off. */
failpoint_action failpoint_eval(failpoint_point p, const failpoint_peer *peer);

/* ---- distributions (pure) -------------------------------------------------- */

typedef enum failpoint_dist_kind {
    FAILPOINT_DIST_CONST,     /* a: ms */
    FAILPOINT_DIST_UNIFORM,   /* a..b ms */
    FAILPOINT_DIST_EXP,       /* mean a ms */
    FAILPOINT_DIST_NORMAL,    /* mean a, sd b ms; below 0 is 0 */
    FAILPOINT_DIST_LOGNORMAL, /* exp(N(a, b)) ms: median e^a */
    FAILPOINT_DIST_PARETO,    /* scale a ms, shape b: a / U^(1/b) */
} failpoint_dist_kind;

/* Every sampled delay is clamped to [0, this]: a heavy tail must not hold
 * a message longer than any deadline a node uses. */
#define FAILPOINT_DELAY_MAX_MS 60000.0

typedef struct failpoint_dist {
    failpoint_dist_kind kind;
    double a, b;
} failpoint_dist;

/* One delay from d, in ms, clamped to [0, FAILPOINT_DELAY_MAX_MS]. */
double failpoint_dist_sample(const failpoint_dist *d, rk_rng *rng);

/* ---- rules (pure) ------------------------------------------------------------- */

#define FAILPOINT_PEER_MAX 255 /* bytes of a peer as written in a rule */
#define FAILPOINT_SPEC_MAX 512 /* bytes of a rule's text */
#define FAILPOINT_ERR_MAX 256  /* room for a parse error's message */
#define FAILPOINT_RULES_MAX 256

typedef struct failpoint_rule {
    failpoint_point point;
    char peer[FAILPOINT_PEER_MAX + 1]; /* "" = every peer */
    failpoint_kind kind;               /* DELAY, DROP or FAIL */
    failpoint_dist dist;               /* DELAY only */
    double probability;                /* (0, 1]; 1 = always */
    uint64_t count;                    /* fires at most this often; 0 = no limit */
} failpoint_rule;

/* Parses one rule:
 *
 *   rule   = point [ "@" peer ] "=" [ percent "%" ] [ count "*" ] action
 *   point  = "rpc.send" | "rpc.recv" | "store.write" | "store.read"
 *   peer   = a node name, its 16-hex-digit id, or its RPC address HOST:PORT
 *   action = "delay(" dist ")" | "drop" | "fail"
 *   dist   = ms | "const(" ms ")" | "uniform(" lo "," hi ")" | "exp(" mean ")"
 *          | "normal(" mean "," sd ")" | "lognormal(" mu "," sigma ")"
 *          | "pareto(" scale "," shape ")"
 *
 * Numbers are plain decimals (0.2, 40, 1.5), times in milliseconds;
 * spaces are allowed around every token. `20%` is a probability of 0.2,
 * `5*` fires 5 times at most. The store points take no peer and no drop.
 * RK_OK with *out filled; RK_EINVAL with a message in err (cap bytes,
 * NUL added) that says where and what was expected. */
rk_err failpoint_rule_parse(const char *spec, size_t len, failpoint_rule *out, char *err,
                            size_t cap);

/* Writes rule back as text that failpoint_rule_parse reads to the same
 * rule, into out (cap bytes, NUL added; FAILPOINT_SPEC_MAX is enough). */
void failpoint_rule_format(const failpoint_rule *rule, char *out, size_t cap);

/* Parses text of rules, one a line; blank lines and lines starting with
 * '#' are skipped. On RK_OK *rules (free with free(); NULL when there are
 * none) and *n hold them. RK_EINVAL with err "line N: ..." at the first bad
 * line, or when there are more than FAILPOINT_RULES_MAX. RK_ENOMEM. */
rk_err failpoint_rules_parse_lines(const char *text, size_t len, failpoint_rule **rules, size_t *n,
                                   char *err, size_t cap);

/* ---- the process's rule set ---------------------------------------------------- */

/* Turns failpoints on for this process (ringkvd --failpoints): rules may be
 * set from then on. There is no off: a node that had them keeps them
 * possible until it exits (clear the rules to stop every fault). */
void failpoint_enable(void);
bool failpoint_enabled(void);

/* Replaces the rule set with rules[0..n) (copied; hit counters start at 0)
 * and logs the change with origin (e.g. "--failpoint" or "HTTP from
 * 127.0.0.1"). RK_EPERM when failpoints are not enabled, RK_EINVAL for
 * more than FAILPOINT_RULES_MAX, RK_ENOMEM. */
rk_err failpoint_replace(const failpoint_rule *rules, size_t n, const char *origin);
/* Adds one rule after the others (ringkvd's repeated --failpoint). */
rk_err failpoint_add(const failpoint_rule *rule, const char *origin);
/* Removes every rule (logged with origin); every point is free again. */
void failpoint_clear(const char *origin);

/* Appends the rule set as JSON to out:
 *   {"enabled": true, "rules": [{"spec", "point", "peer", "action", "p",
 *    "n", "hits", "fired"}, ...]}
 * (peer null for every peer, n null for no limit). */
rk_err failpoint_list_json(rk_buf *out);

/* Seeds the generators of every thread from seed (tests; otherwise they
 * start from random bytes). */
void failpoint_seed(uint64_t seed);

/* ---- peers by name ------------------------------------------------------------- */

/* All that is known of a peer: what the point gave, completed by the
 * resolver. name "" and addr "" are unknown. */
typedef struct failpoint_peer_info {
    uint64_t id;
    char name[65];
    char addr[256];
} failpoint_peer_info;

/* Fills what info lacks (from what it has: id or addr) with what the
 * membership knows of that peer; false when it knows nothing. Runs on the
 * thread of the point, under the rule set's read lock: it must not block
 * or call back into this module. */
typedef bool (*failpoint_resolve_cb)(void *arg, failpoint_peer_info *info);

/* Sets the resolver (NULL: none, rules then match only by what points
 * know). Returns once no point runs the previous one, so its arg may be
 * freed after failpoint_set_resolver(NULL, NULL). */
void failpoint_set_resolver(failpoint_resolve_cb resolve_cb, void *arg);

/* ---- delays without a thread per message ------------------------------------- */

/* A delayed message is held on one timer thread (started on first use)
 * that runs callback_cb at the due time, with sub-millisecond precision;
 * nothing blocks meanwhile. The struct is embedded by its owner (zeroed
 * before first use); its fields are the module's. */
typedef void (*failpoint_timer_cb)(void *arg);
typedef struct failpoint_timer {
    uint64_t due_ns;
    uint64_t seq;
    size_t slot; /* heap index + 1; 0 when not queued */
    failpoint_timer_cb callback_cb;
    void *arg;
} failpoint_timer;

/* Runs callback_cb(arg) on the timer thread after delay_us (0: as soon as
 * the thread gets to it); a timer queued already is moved. Timers due at the
 * same time run in the order they were started. Callbacks must not block:
 * they run one after the other. RK_ENOMEM (the thread or the queue could
 * not be made): callback_cb never runs. */
rk_err failpoint_timer_start(failpoint_timer *t, uint64_t delay_us, failpoint_timer_cb callback_cb,
                             void *arg);
/* True: t was queued and is now removed, its callback will not run. False:
 * it was not queued, or its callback ran; if the callback is running, this
 * returns after it has returned (so never call it from that callback). */
bool failpoint_timer_cancel(failpoint_timer *t);

/* Stops the timer thread (queued timers never run: their owners cancel
 * them first) and drops the rule set and the resolver. For the end of a
 * process or a test; the module may be used again after it. */
void failpoint_shutdown(void);

#endif
