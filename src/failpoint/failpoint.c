/* failpoint.c - the process's rule set: enabling, replacing, listing, and
 * the evaluation each point asks for.
 *
 * The rules live in one array behind a read-write lock: a point takes the
 * read lock only to pick its action (a few comparisons, a random draw, a
 * sample), never across the delay itself, and only when its armed flag
 * said that a rule names it. Replacing the set takes the write lock and
 * recomputes the flags. Counters are atomics in the rules, so evaluating
 * under the read lock can count. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failpoint_internal.h"

_Atomic bool failpoint_armed_flags[FAILPOINT_POINT_COUNT];

typedef struct live_rule {
    failpoint_rule rule;
    char spec[FAILPOINT_SPEC_MAX];
    /* The peer as written, classified once: an address is compared with
     * addresses, anything else with names, and with ids too when it is 16
     * hex digits (as GET /cluster prints ids). */
    bool any_peer, by_addr, maybe_id;
    const char *addr; /* into rule.peer, without "tcp://" */
    uint64_t id;
    _Atomic uint64_t hits, fired;
} live_rule;

static struct {
    pthread_rwlock_t lock;
    live_rule *rules;                /* (lock) */
    size_t n;                        /* (lock) */
    failpoint_resolve_cb resolve_cb; /* (lock) */
    void *resolve_arg;               /* (lock) */
    _Atomic bool enabled;
} reg = {
    /* Writers first: points read the set all the time under load, and a
     * PUT must not wait for a gap between them. No reader nests. */
    .lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP,
};

/* ---- per-thread generators ----------------------------------------------- */

static _Atomic uint64_t seed_base;
static _Atomic uint64_t seed_generation; /* 0: seeded from the clock */
static _Atomic uint64_t thread_serials;
static _Thread_local rk_rng tl_rng;
static _Thread_local uint64_t tl_generation; /* generation + 1 it was seeded for */
static _Thread_local uint64_t tl_serial;

static rk_rng *thread_rng(void)
{
    uint64_t gen = atomic_load_explicit(&seed_generation, memory_order_acquire);
    if (tl_generation != gen + 1) {
        if (tl_serial == 0)
            tl_serial = atomic_fetch_add(&thread_serials, 1) + 1;
        uint64_t base = gen == 0 ? rk_mono_ns() ^ ((uint64_t)getpid() << 32)
                                 : atomic_load_explicit(&seed_base, memory_order_relaxed);
        rk_rng_seed(&tl_rng, base ^ (tl_serial * 0x9e3779b97f4a7c15ull));
        tl_generation = gen + 1;
    }
    return &tl_rng;
}

void failpoint_seed(uint64_t seed)
{
    atomic_store_explicit(&seed_base, seed, memory_order_relaxed);
    atomic_fetch_add_explicit(&seed_generation, 1, memory_order_release);
}

/* ---- matching peers --------------------------------------------------------- */

static const char *strip_scheme(const char *addr)
{
    return strncmp(addr, "tcp://", 6) == 0 ? addr + 6 : addr;
}

static void classify_peer(live_rule *lr)
{
    const char *peer = lr->rule.peer;
    lr->any_peer = peer[0] == '\0';
    lr->addr = strip_scheme(peer);
    lr->by_addr = !lr->any_peer && strchr(lr->addr, ':') != NULL;
    lr->maybe_id = !lr->any_peer && !lr->by_addr && strlen(peer) == 16 &&
                   rk_hex_parse_u64(peer, 16, &lr->id) == RK_OK;
}

/* What is known of the peer of one evaluation; resolved at most once. */
typedef struct peer_state {
    failpoint_peer_info info;
    bool resolved;
} peer_state;

static void resolve(peer_state *ps)
{
    if (ps->resolved)
        return;
    ps->resolved = true;
    if (reg.resolve_cb != NULL)
        reg.resolve_cb(reg.resolve_arg, &ps->info);
}

static bool peer_matches(const live_rule *lr, peer_state *ps)
{
    failpoint_peer_info *info = &ps->info;
    if (lr->by_addr) {
        if (info->addr[0] == '\0')
            resolve(ps);
        return strcmp(info->addr, lr->addr) == 0;
    }
    if (lr->maybe_id && info->id == lr->id)
        return true;
    resolve(ps);
    return strcmp(info->name, lr->rule.peer) == 0 || (lr->maybe_id && info->id == lr->id);
}

/* ---- evaluation ---------------------------------------------------------------- */

/* Whether lr fires now: its probability, then its count (claimed with a
 * compare-and-swap, so two threads cannot both take the last one). */
static bool fires(live_rule *lr, rk_rng *rng)
{
    if (lr->rule.probability < 1.0 && rk_rng_unit(rng) >= lr->rule.probability)
        return false;
    if (lr->rule.count == 0) {
        atomic_fetch_add_explicit(&lr->fired, 1, memory_order_relaxed);
        return true;
    }
    uint64_t f = atomic_load_explicit(&lr->fired, memory_order_relaxed);
    do {
        if (f >= lr->rule.count)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&lr->fired, &f, f + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

failpoint_action failpoint_eval(failpoint_point p, const failpoint_peer *peer)
{
    failpoint_action a = {FAILPOINT_NONE, 0};
    if (!atomic_load_explicit(&reg.enabled, memory_order_relaxed))
        return a;
    peer_state ps = {0};
    if (peer != NULL) {
        ps.info.id = peer->id;
        if (peer->addr != NULL)
            snprintf(ps.info.addr, sizeof ps.info.addr, "%s", strip_scheme(peer->addr));
    }
    rk_rng *rng = thread_rng();
    pthread_rwlock_rdlock(&reg.lock);
    /* Rules naming a peer first, then rules for every peer. */
    for (int pass = 0; pass < 2 && a.kind == FAILPOINT_NONE; pass++) {
        for (size_t i = 0; i < reg.n; i++) {
            live_rule *lr = &reg.rules[i];
            if (lr->rule.point != p || lr->any_peer != (pass == 1))
                continue;
            if (!lr->any_peer && (peer == NULL || !peer_matches(lr, &ps)))
                continue;
            atomic_fetch_add_explicit(&lr->hits, 1, memory_order_relaxed);
            if (!fires(lr, rng))
                continue;
            a.kind = lr->rule.kind;
            if (a.kind == FAILPOINT_DELAY)
                a.delay_us = (uint64_t)(failpoint_dist_sample(&lr->rule.dist, rng) * 1000.0 + 0.5);
            break;
        }
    }
    pthread_rwlock_unlock(&reg.lock);
    return a;
}

/* ---- the set ---------------------------------------------------------------------- */

void failpoint_enable(void)
{
    if (!atomic_exchange(&reg.enabled, true))
        RK_WARN("failpoint", "failpoints are enabled: anyone who reaches the HTTP port can "
                             "delay, drop or fail this node's messages (never in production)");
}

bool failpoint_enabled(void)
{
    return atomic_load_explicit(&reg.enabled, memory_order_relaxed);
}

/* Under the write lock: the flags follow the rules. */
static void rearm(void)
{
    bool any[FAILPOINT_POINT_COUNT] = {false};
    for (size_t i = 0; i < reg.n; i++)
        any[reg.rules[i].rule.point] = true;
    bool on = atomic_load(&reg.enabled);
    for (int p = 0; p < FAILPOINT_POINT_COUNT; p++)
        atomic_store_explicit(&failpoint_armed_flags[p], on && any[p], memory_order_relaxed);
}

static void fill_live(live_rule *lr, const failpoint_rule *r)
{
    memset(lr, 0, sizeof *lr);
    lr->rule = *r;
    failpoint_rule_format(r, lr->spec, sizeof lr->spec);
    classify_peer(lr);
}

static void log_rules(const char *origin, const char *verb, const live_rule *rules, size_t n)
{
    RK_INFO("failpoint", "%s: %s %zu rule%s", origin != NULL ? origin : "?", verb, n,
            n == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++)
        RK_INFO("failpoint", "  %s", rules[i].spec);
}

rk_err failpoint_replace(const failpoint_rule *rules, size_t n, const char *origin)
{
    if (!failpoint_enabled())
        return RK_EPERM;
    if (n > FAILPOINT_RULES_MAX || (rules == NULL && n > 0))
        return RK_EINVAL;
    live_rule *fresh = NULL;
    if (n > 0 && (fresh = calloc(n, sizeof *fresh)) == NULL)
        return RK_ENOMEM;
    for (size_t i = 0; i < n; i++)
        fill_live(&fresh[i], &rules[i]);
    pthread_rwlock_wrlock(&reg.lock);
    live_rule *old = reg.rules;
    reg.rules = fresh;
    reg.n = n;
    rearm();
    pthread_rwlock_unlock(&reg.lock);
    free(old);
    log_rules(origin, "set", fresh, n);
    return RK_OK;
}

rk_err failpoint_add(const failpoint_rule *rule, const char *origin)
{
    if (!failpoint_enabled())
        return RK_EPERM;
    live_rule one;
    fill_live(&one, rule);
    pthread_rwlock_wrlock(&reg.lock);
    rk_err err = RK_OK;
    live_rule *grown = NULL;
    if (reg.n >= FAILPOINT_RULES_MAX)
        err = RK_EINVAL;
    else if ((grown = calloc(reg.n + 1, sizeof *grown)) == NULL)
        err = RK_ENOMEM;
    if (err == RK_OK) {
        /* Copied field by field: the counters are atomics. */
        for (size_t i = 0; i < reg.n; i++) {
            fill_live(&grown[i], &reg.rules[i].rule);
            atomic_store(&grown[i].hits, atomic_load(&reg.rules[i].hits));
            atomic_store(&grown[i].fired, atomic_load(&reg.rules[i].fired));
        }
        fill_live(&grown[reg.n], rule);
        free(reg.rules);
        reg.rules = grown;
        reg.n++;
        rearm();
    }
    pthread_rwlock_unlock(&reg.lock);
    if (err == RK_OK)
        log_rules(origin, "added", &one, 1);
    return err;
}

void failpoint_clear(const char *origin)
{
    pthread_rwlock_wrlock(&reg.lock);
    live_rule *old = reg.rules;
    size_t n = reg.n;
    reg.rules = NULL;
    reg.n = 0;
    rearm();
    pthread_rwlock_unlock(&reg.lock);
    free(old);
    RK_INFO("failpoint", "%s: cleared %zu rule%s", origin != NULL ? origin : "?", n,
            n == 1 ? "" : "s");
}

static const char *kind_name(failpoint_kind k)
{
    switch (k) {
    case FAILPOINT_DELAY: return "delay";
    case FAILPOINT_DROP: return "drop";
    case FAILPOINT_FAIL: return "fail";
    case FAILPOINT_NONE: break;
    }
    return "none";
}

rk_err failpoint_list_json(rk_buf *out)
{
    rk_err err =
        rk_buf_appendf(out, "{\"enabled\":%s,\"rules\":[", failpoint_enabled() ? "true" : "false");
    pthread_rwlock_rdlock(&reg.lock);
    for (size_t i = 0; i < reg.n && err == RK_OK; i++) {
        const live_rule *lr = &reg.rules[i];
        const failpoint_rule *r = &lr->rule;
        rk_buf_appends(out, i > 0 ? ",{\"spec\":" : "{\"spec\":");
        rk_buf_append_json_string(out, lr->spec, strlen(lr->spec));
        rk_buf_appendf(out, ",\"point\":\"%s\",\"peer\":", failpoint_point_name(r->point));
        if (lr->any_peer)
            rk_buf_appends(out, "null");
        else
            rk_buf_append_json_string(out, r->peer, strlen(r->peer));
        rk_buf_appendf(out, ",\"action\":\"%s\",\"p\":%.10g,\"n\":", kind_name(r->kind),
                       r->probability);
        if (r->count > 0)
            rk_buf_appendf(out, "%" PRIu64, r->count);
        else
            rk_buf_appends(out, "null");
        err = rk_buf_appendf(out, ",\"hits\":%" PRIu64 ",\"fired\":%" PRIu64 "}",
                             atomic_load_explicit(&lr->hits, memory_order_relaxed),
                             atomic_load_explicit(&lr->fired, memory_order_relaxed));
    }
    pthread_rwlock_unlock(&reg.lock);
    if (err == RK_OK)
        err = rk_buf_appends(out, "]}");
    return err;
}

void failpoint_set_resolver(failpoint_resolve_cb resolve_cb, void *arg)
{
    /* The write lock waits for every evaluation that may be running the
     * previous resolver. */
    pthread_rwlock_wrlock(&reg.lock);
    reg.resolve_cb = resolve_cb;
    reg.resolve_arg = arg;
    pthread_rwlock_unlock(&reg.lock);
}

void failpoint_shutdown(void)
{
    failpoint_timer_shutdown();
    pthread_rwlock_wrlock(&reg.lock);
    free(reg.rules);
    reg.rules = NULL;
    reg.n = 0;
    reg.resolve_cb = NULL;
    reg.resolve_arg = NULL;
    rearm();
    pthread_rwlock_unlock(&reg.lock);
}
