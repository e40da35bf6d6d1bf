/* test_failpoint.c - the failpoint module (src/failpoint) and its points in
 * the RPC layer and the store: rule parsing and its messages, the delay
 * distributions (seeded), probability and count, peer matching, the delay
 * timer, an RPC client and server in this process, a store in a temporary
 * directory, the body of PUT /debug/failpoints, and two real nodes.
 *
 * The rule set is the process's: the tests that use it run in the order
 * of main(), the first of them before failpoints are enabled (off means no
 * effect). Timing is only ever asserted from below: a message delayed by
 * 200 ms cannot arrive sooner, whatever the machine's load. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringkv/failpoint.h"
#include "ringkv/kv.h"
#include "ringkv/rpc.h"
#include "ringkv/store.h"

#include "http/http_internal.h" /* http_failpoints_parse_body */
#include "inputs.h"
#include "node_fixture.h"
#include "ringkv.pb-c.h"
#include "support.h"

/* NNG 1.5.2 can leak a request frame when a connection closes while the
 * request is handed to it (see test_coord.c); these tests close servers
 * and clients with messages held. Only the RPC layer's frames are
 * excused. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:rpc_frame_encode\nleak:libnng.so\n";
}

static const char SECRET[] = "failpoint-test-secret-0123456789";
#define SERVER_ID 0x5e5e5e5e00000001ull
#define CLIENT_ID 0x00000000c11e0002ull
#define CLIENT_HEX "00000000c11e0002"

static uint64_t elapsed_ms(uint64_t t0_ns)
{
    return (rk_mono_ns() - t0_ns) / 1000000u;
}

/* A call that timed out after timeout_ms lasted at least that, less the
 * millisecond that deadlines lose to rk_monotonic_ms's rounding down. */
static bool timed_out_after(uint64_t t0_ns, uint64_t timeout_ms)
{
    return rk_mono_ns() - t0_ns >= (timeout_ms - 1) * 1000000u;
}

/* Parses spec, asserting success. */
static failpoint_rule parse_ok(const char *spec)
{
    failpoint_rule r;
    char err[FAILPOINT_ERR_MAX];
    rk_err rc = failpoint_rule_parse(spec, strlen(spec), &r, err, sizeof err);
    if (rc != RK_OK)
        fail_msg("\"%s\" should parse, got: %s", spec, err);
    return r;
}

/* Parses spec, asserting failure with a message that holds want. */
static void parse_bad(const char *spec, const char *want)
{
    failpoint_rule r;
    char err[FAILPOINT_ERR_MAX];
    rk_err rc = failpoint_rule_parse(spec, strlen(spec), &r, err, sizeof err);
    if (rc != RK_EINVAL)
        fail_msg("\"%s\" should not parse", spec);
    if (strstr(err, want) == NULL)
        fail_msg("\"%s\": message \"%s\" does not say \"%s\"", spec, err, want);
}

static void set_rules(const char *text)
{
    failpoint_rule *rules = NULL;
    size_t n = 0;
    char err[FAILPOINT_ERR_MAX + 32];
    if (failpoint_rules_parse_lines(text, strlen(text), &rules, &n, err, sizeof err) != RK_OK)
        fail_msg("rules \"%s\": %s", text, err);
    assert_int_equal(failpoint_replace(rules, n, "test"), RK_OK);
    free(rules);
}

/* The "fired" counter of the rule whose spec is spec, from the listing. */
static long fired_of(const char *spec)
{
    rk_buf b = {0};
    assert_int_equal(failpoint_list_json(&b), RK_OK);
    char want[FAILPOINT_SPEC_MAX + 16];
    snprintf(want, sizeof want, "{\"spec\":\"%s\"", spec);
    const char *at = strstr(b.data, want);
    long fired = -1;
    if (at != NULL) {
        const char *f = strstr(at, "\"fired\":");
        if (f != NULL)
            fired = strtol(f + 8, NULL, 10);
    }
    rk_buf_free(&b);
    return fired;
}

/* ---- parsing (pure) ---------------------------------------------------------- */

static void test_parse_good(void **state)
{
    (void)state;
    failpoint_rule r = parse_ok("rpc.send=drop");
    assert_int_equal(r.point, FAILPOINT_RPC_SEND);
    assert_string_equal(r.peer, "");
    assert_int_equal(r.kind, FAILPOINT_DROP);
    assert_true(r.probability == 1.0);
    assert_int_equal(r.count, 0);

    r = parse_ok("rpc.send@node3=20%delay(exp(5))");
    assert_string_equal(r.peer, "node3");
    assert_int_equal(r.kind, FAILPOINT_DELAY);
    assert_int_equal(r.dist.kind, FAILPOINT_DIST_EXP);
    assert_true(r.dist.a == 5);
    assert_true(fabs(r.probability - 0.2) < 1e-12);

    r = parse_ok("  rpc.recv @ 127.0.0.1:9001 = 50% 3* delay( uniform( 1 , 2.5 ) )  ");
    assert_int_equal(r.point, FAILPOINT_RPC_RECV);
    assert_string_equal(r.peer, "127.0.0.1:9001");
    assert_int_equal(r.count, 3);
    assert_int_equal(r.dist.kind, FAILPOINT_DIST_UNIFORM);
    assert_true(r.dist.a == 1 && r.dist.b == 2.5);

    r = parse_ok("store.write=1*fail");
    assert_int_equal(r.point, FAILPOINT_STORE_WRITE);
    assert_int_equal(r.kind, FAILPOINT_FAIL);
    assert_int_equal(r.count, 1);

    r = parse_ok("store.read=delay(0.2)"); /* a bare number is const */
    assert_int_equal(r.dist.kind, FAILPOINT_DIST_CONST);
    assert_true(r.dist.a == 0.2);

    r = parse_ok("rpc.send=delay(lognormal(-1.6,0.5))"); /* mu may be negative */
    assert_int_equal(r.dist.kind, FAILPOINT_DIST_LOGNORMAL);
    assert_true(r.dist.a == -1.6 && r.dist.b == 0.5);
    r = parse_ok("rpc.send=delay(normal(40,5))");
    assert_int_equal(r.dist.kind, FAILPOINT_DIST_NORMAL);
    r = parse_ok("rpc.send=delay(pareto(2,1.5))");
    assert_int_equal(r.dist.kind, FAILPOINT_DIST_PARETO);
    r = parse_ok("rpc.send=delay(const(0))");
    assert_true(r.dist.a == 0);
    r = parse_ok("rpc.send=100%drop");
    assert_true(r.probability == 1.0);
    r = parse_ok("rpc.send=0.5%drop");
    assert_true(fabs(r.probability - 0.005) < 1e-12);
    r = parse_ok("rpc.send@0123456789abcdef=fail");
    assert_string_equal(r.peer, "0123456789abcdef");
    r = parse_ok("rpc.send@tcp://10.0.0.2:7001=fail");
    assert_string_equal(r.peer, "tcp://10.0.0.2:7001");
}

static void test_parse_bad(void **state)
{
    (void)state;
    parse_bad("", "empty rule");
    parse_bad("   ", "empty rule");
    parse_bad("rpc.sned=drop", "unknown point \"rpc.sned\"");
    parse_bad("rpc.sned=drop", "points: rpc.send, rpc.recv, store.write, store.read");
    parse_bad("drop", "unknown point \"drop\"");
    parse_bad("rpc.send drop", "expected '=' and an action");
    parse_bad("rpc.send@=drop", "expected a peer");
    parse_bad("rpc.send@node 3=drop", "one word");
    parse_bad("store.write@n1=fail", "store.write takes no peer");
    parse_bad("store.read=drop", "drop is for the rpc points");
    parse_bad("rpc.send=", "expected an action after '='");
    parse_bad("rpc.send=explode", "unknown action");
    parse_bad("rpc.send=delay", "expected '(' after delay");
    parse_bad("rpc.send=delay()", "expected a distribution");
    parse_bad("rpc.send=delay(gauss(1))", "expected a distribution");
    parse_bad("rpc.send=delay(exp 5)", "expected '(' after exp");
    parse_bad("rpc.send=delay(exp(5)", "expected ')' to close delay(");
    parse_bad("rpc.send=delay(exp(5", "expected ')' after the parameters of exp");
    parse_bad("rpc.send=delay(exp(0))", "mean of exp must be more than 0");
    parse_bad("rpc.send=delay(exp(x))", "expected a number for mean");
    parse_bad("rpc.send=delay(uniform(5,1))", "lo <= hi");
    parse_bad("rpc.send=delay(uniform(1))", "expected ',' and hi");
    parse_bad("rpc.send=delay(exp(1,2))", "exp takes 1 number");
    parse_bad("rpc.send=delay(normal(1,-1))", "sd of normal must be at least 0");
    parse_bad("rpc.send=delay(pareto(0,1))", "scale of pareto must be more than 0");
    parse_bad("rpc.send=delay(-1)", "ms of const must be at least 0");
    parse_bad("rpc.send=delay(70000)", "ms of const must be at most 60000");
    parse_bad("rpc.send=delay(1e3)", "expected ')'");
    parse_bad("rpc.send=150%drop", "a probability is more than 0% and at most 100%");
    parse_bad("rpc.send=0%drop", "a probability is more than 0%");
    parse_bad("rpc.send=2.5*drop", "a count is a whole number from 1");
    parse_bad("rpc.send=0*drop", "a count is a whole number from 1");
    parse_bad("rpc.send=5drop", "expected '%' (a probability) or '*' (a count)");
    parse_bad("rpc.send=5*20%drop", "unknown action");
    parse_bad("rpc.send=drop now", "unexpected text after the action");
    /* Where: the column of the problem, and the rule itself. */
    parse_bad("rpc.send=delay(exp(0))", "column 20 of \"rpc.send=delay(exp(0))\"");
    parse_bad("rpc.sned=drop", "column 1 of");
    /* NULL-safe */
    failpoint_rule r;
    char err[FAILPOINT_ERR_MAX];
    assert_int_equal(failpoint_rule_parse(NULL, 0, &r, err, sizeof err), RK_EINVAL);
}

static void test_format_round_trip(void **state)
{
    (void)state;
    static const char *const specs[] = {
        "rpc.send=drop",
        "rpc.recv@node3=fail",
        "rpc.send@node3=20%delay(exp(5))",
        "rpc.send@127.0.0.1:9=12.5%7*delay(uniform(0.1,0.3))",
        "store.write=3*fail",
        "store.read=delay(0.2)",
        "rpc.send=delay(normal(40,5))",
        "rpc.send=delay(lognormal(-1.6,0.5))",
        "rpc.send=delay(pareto(2,1.5))",
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        failpoint_rule a = parse_ok(specs[i]);
        char text[FAILPOINT_SPEC_MAX];
        failpoint_rule_format(&a, text, sizeof text);
        failpoint_rule b = parse_ok(text);
        assert_int_equal(a.point, b.point);
        assert_string_equal(a.peer, b.peer);
        assert_int_equal(a.kind, b.kind);
        assert_int_equal(a.count, b.count);
        assert_true(fabs(a.probability - b.probability) < 1e-9);
        if (a.kind == FAILPOINT_DELAY) {
            assert_int_equal(a.dist.kind, b.dist.kind);
            assert_true(a.dist.a == b.dist.a && a.dist.b == b.dist.b);
        }
    }
    failpoint_rule r = parse_ok("rpc.send@n2=20%5*delay(exp(5))");
    char text[FAILPOINT_SPEC_MAX];
    failpoint_rule_format(&r, text, sizeof text);
    assert_string_equal(text, "rpc.send@n2=20%5*delay(exp(5))");
}

static void test_parse_lines(void **state)
{
    (void)state;
    const char text[] = "# the LAN\n"
                        "\n"
                        "rpc.send=delay(normal(0.2,0.05))\r\n"
                        "   rpc.send@n5=delay(normal(40,4))   \n"
                        "store.write=1*fail";
    failpoint_rule *rules = NULL;
    size_t n = 0;
    char err[FAILPOINT_ERR_MAX + 32];
    assert_int_equal(
        failpoint_rules_parse_lines(text, sizeof text - 1, &rules, &n, err, sizeof err), RK_OK);
    assert_int_equal(n, 3);
    assert_string_equal(rules[1].peer, "n5");
    assert_int_equal(rules[2].point, FAILPOINT_STORE_WRITE);
    free(rules);

    const char bad[] = "rpc.send=drop\n# fine so far\nrpc.send=delay(exp(-1))\n";
    assert_int_equal(failpoint_rules_parse_lines(bad, sizeof bad - 1, &rules, &n, err, sizeof err),
                     RK_EINVAL);
    assert_non_null(strstr(err, "line 3: mean of exp must be more than 0"));

    assert_int_equal(failpoint_rules_parse_lines("", 0, &rules, &n, err, sizeof err), RK_OK);
    assert_int_equal(n, 0);
    assert_null(rules);

    rk_buf many = {0};
    for (int i = 0; i <= FAILPOINT_RULES_MAX; i++)
        rk_buf_appends(&many, "rpc.send=drop\n");
    assert_int_equal(failpoint_rules_parse_lines(many.data, many.len, &rules, &n, err, sizeof err),
                     RK_EINVAL);
    assert_non_null(strstr(err, "more than 256 rules"));
    rk_buf_free(&many);
}

/* ---- distributions (pure, seeded) ---------------------------------------------- */

typedef struct moments {
    double mean, sd, min, max;
} moments;

static moments sample(const char *dist_text, rk_rng *rng, int n)
{
    char spec[128];
    snprintf(spec, sizeof spec, "rpc.send=delay(%s)", dist_text);
    failpoint_rule r = parse_ok(spec);
    double sum = 0, sum2 = 0, lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        double v = failpoint_dist_sample(&r.dist, rng);
        sum += v;
        sum2 += v * v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    double mean = sum / n;
    return (moments){mean, sqrt(sum2 / n - mean * mean), lo, hi};
}

static void near(const char *what, double got, double want, double tolerance)
{
    if (fabs(got - want) > tolerance)
        fail_msg("%s: %g, expected %g +- %g", what, got, want, tolerance);
}

static void test_distributions(void **state)
{
    (void)state;
    rk_rng rng;
    rk_rng_seed(&rng, rng_seed_from_env("test_distributions"));
    const int n = 200000;
    /* Tolerances are many standard errors wide (sd / sqrt(n) is about
     * 0.2% of the mean here): a correct sampler does not fail them. */
    moments m = sample("const(3)", &rng, n);
    assert_true(m.min == 3 && m.max == 3);
    m = sample("uniform(1,3)", &rng, n);
    near("uniform(1,3) mean", m.mean, 2, 0.02);
    assert_true(m.min >= 1 && m.max <= 3);
    m = sample("exp(5)", &rng, n);
    near("exp(5) mean", m.mean, 5, 0.1);
    near("exp(5) sd", m.sd, 5, 0.15);
    assert_true(m.min >= 0);
    m = sample("normal(40,5)", &rng, n);
    near("normal(40,5) mean", m.mean, 40, 0.1);
    near("normal(40,5) sd", m.sd, 5, 0.1);
    m = sample("normal(0.2,1)", &rng, n); /* clamped at 0 */
    assert_true(m.min >= 0);
    m = sample("lognormal(1,0.5)", &rng, n);
    near("lognormal(1,0.5) mean", m.mean, exp(1.125), 0.06);
    m = sample("pareto(2,3)", &rng, n);
    near("pareto(2,3) mean", m.mean, 3, 0.1);
    assert_true(m.min >= 2);
    m = sample("pareto(1000,0.1)", &rng, 1000); /* no mean: the clamp holds */
    assert_true(m.max <= FAILPOINT_DELAY_MAX_MS);

    /* The same seed, the same sequence. */
    rk_rng a, b;
    rk_rng_seed(&a, 42);
    rk_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++)
        assert_true(rk_rng_next(&a) == rk_rng_next(&b));
    for (int i = 0; i < 100000; i++) {
        double u = rk_rng_unit(&a);
        assert_true(u >= 0 && u < 1);
    }
}

/* ---- the timer -------------------------------------------------------------------- */

typedef struct tick {
    failpoint_timer timer;
    _Atomic uint64_t at_ns;
    int *order;
    _Atomic int *next;
    int id;
} tick;

static void tick_cb(void *arg)
{
    tick *t = arg;
    atomic_store(&t->at_ns, rk_mono_ns());
    t->order[atomic_fetch_add(t->next, 1)] = t->id;
}

static bool ticks_done(void *arg)
{
    return atomic_load((_Atomic int *)arg) == 4;
}

static void test_timer(void **state)
{
    (void)state;
    int order[4] = {0};
    _Atomic int next = 0;
    tick t[4];
    memset(t, 0, sizeof t);
    for (int i = 0; i < 4; i++) {
        t[i].order = order;
        t[i].next = &next;
        t[i].id = i;
    }
    atomic_store(&next, 1); /* slot 0 for 1, which is cancelled and never runs */
    uint64_t t0 = rk_mono_ns();
    /* Started out of order; 1 is cancelled. */
    assert_int_equal(failpoint_timer_start(&t[0].timer, 30000, tick_cb, &t[0]), RK_OK);
    assert_int_equal(failpoint_timer_start(&t[1].timer, 20000, tick_cb, &t[1]), RK_OK);
    assert_int_equal(failpoint_timer_start(&t[2].timer, 300, tick_cb, &t[2]), RK_OK);
    assert_int_equal(failpoint_timer_start(&t[3].timer, 10000, tick_cb, &t[3]), RK_OK);
    assert_true(failpoint_timer_cancel(&t[1].timer));
    assert_false(failpoint_timer_cancel(&t[1].timer)); /* not queued any more */
    assert_true(wait_for(ticks_done, &next, 10000));
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 3);
    assert_int_equal(order[3], 0);
    /* Never early: 300 us, 10 ms, 30 ms after the start. */
    assert_true(atomic_load(&t[2].at_ns) - t0 >= 300000u);
    assert_true(atomic_load(&t[3].at_ns) - t0 >= 10000000u);
    assert_true(atomic_load(&t[0].at_ns) - t0 >= 30000000u);
    assert_false(failpoint_timer_cancel(&t[0].timer)); /* ran */

    /* Equal due times run in start order. */
    int same[4] = {0};
    _Atomic int same_next = 0;
    tick s[4];
    memset(s, 0, sizeof s);
    for (int i = 0; i < 4; i++) {
        s[i].order = same;
        s[i].next = &same_next;
        s[i].id = i;
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(failpoint_timer_start(&s[i].timer, 0, tick_cb, &s[i]), RK_OK);
    assert_true(wait_for(ticks_done, &same_next, 10000));
    for (int i = 0; i < 4; i++)
        assert_int_equal(same[i], i);

    /* Starting a queued timer moves it (it once went into the heap twice
     * and corrupted it): it runs once, at its new time. */
    int moved[4] = {0};
    _Atomic int moved_next = 3;
    tick m = {.order = moved, .next = &moved_next, .id = 7};
    assert_int_equal(failpoint_timer_start(&m.timer, 60000000, tick_cb, &m), RK_OK);
    assert_int_equal(failpoint_timer_start(&m.timer, 100, tick_cb, &m), RK_OK);
    assert_true(wait_for(ticks_done, &moved_next, 10000));
    assert_int_equal(moved[3], 7);
    assert_false(failpoint_timer_cancel(&m.timer));
    rk_sleep_ms(5);
    assert_int_equal(atomic_load(&moved_next), 4);
}

/* ---- an RPC server and client in this process ----------------------------------- */

static _Atomic int pings_served;

static void ping_cb(rpc_request *req, const ProtobufCMessage *input, void *arg)
{
    (void)arg;
    const Ringkv__PingRequest *in = (const Ringkv__PingRequest *)input;
    Ringkv__PingReply out = RINGKV__PING_REPLY__INIT;
    out.node_id = SERVER_ID;
    out.payload = in->payload;
    atomic_fetch_add(&pings_served, 1);
    rpc_respond(req, RK_OK, &out.base);
}

static const rpc_handler HANDLERS[] = {
    {.service = &ringkv__membership__descriptor, .method = "Ping", .handler_cb = ping_cb},
};

typedef struct rpc_fixture {
    rpc_server *srv[2];
    char addr[2][64];
    rpc_client *cli;
} rpc_fixture;

static rpc_options opts_for(uint64_t id, bool inline_handlers)
{
    rpc_options o = {.secret = SECRET,
                     .secret_len = sizeof SECRET - 1,
                     .node_id = id,
                     .inline_handlers = inline_handlers};
    return o;
}

static void rpc_up(rpc_fixture *f)
{
    for (int i = 0; i < 2; i++) {
        rpc_options o = opts_for(SERVER_ID + (uint64_t)i, true); /* as ringkvd */
        assert_int_equal(rpc_server_open("127.0.0.1:0", &o, HANDLERS, 1, &f->srv[i]), RK_OK);
        snprintf(f->addr[i], sizeof f->addr[i], "127.0.0.1:%d", rpc_server_port(f->srv[i]));
    }
    rpc_options o = opts_for(CLIENT_ID, false);
    assert_int_equal(rpc_client_open(&o, &f->cli), RK_OK);
}

static void rpc_down(rpc_fixture *f)
{
    rpc_client_close(f->cli);
    for (int i = 0; i < 2; i++)
        rpc_server_close(f->srv[i]);
}

static rk_err ping(rpc_fixture *f, int server, uint32_t timeout_ms)
{
    Ringkv__PingRequest in = RINGKV__PING_REQUEST__INIT;
    in.payload.data = (uint8_t *)"hi";
    in.payload.len = 2;
    ProtobufCMessage *reply = NULL;
    rk_err err = rpc_call(f->cli, f->addr[server], &ringkv__membership__descriptor, "Ping",
                          &in.base, rk_deadline_after_ms(timeout_ms), &reply);
    if (err == RK_OK) {
        assert_true(((Ringkv__PingReply *)reply)->payload.len == 2);
        rpc_reply_free(reply);
    }
    return err;
}

/* An asynchronous ping's outcome. */
typedef struct pending {
    _Atomic bool done;
    _Atomic int err;
} pending;

static void pending_cb(rk_err err, ProtobufCMessage *reply, void *arg)
{
    pending *p = arg;
    rpc_reply_free(reply);
    atomic_store(&p->err, (int)err);
    atomic_store(&p->done, true);
}

static void ping_async(rpc_fixture *f, int server, uint32_t timeout_ms, pending *p)
{
    Ringkv__PingRequest in = RINGKV__PING_REQUEST__INIT;
    atomic_store(&p->done, false);
    assert_int_equal(rpc_call_async(f->cli, f->addr[server], &ringkv__membership__descriptor,
                                    "Ping", &in.base, rk_deadline_after_ms(timeout_ms), pending_cb,
                                    p),
                     RK_OK);
}

static bool pending_done(void *arg)
{
    return atomic_load(&((pending *)arg)->done);
}

/* ---- off ------------------------------------------------------------------------- */

/* First of the tests that use the process's rule set: nothing is enabled. */
static void test_off_means_no_effect(void **state)
{
    (void)state;
    assert_false(failpoint_enabled());
    failpoint_rule r = parse_ok("rpc.send=drop");
    assert_int_equal(failpoint_replace(&r, 1, "test"), RK_EPERM);
    assert_int_equal(failpoint_add(&r, "test"), RK_EPERM);
    for (int p = 0; p < FAILPOINT_POINT_COUNT; p++)
        assert_false(failpoint_armed((failpoint_point)p));
    failpoint_peer peer = {.addr = "127.0.0.1:1"};
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_SEND, &peer).kind, FAILPOINT_NONE);
    rk_buf b = {0};
    assert_int_equal(failpoint_list_json(&b), RK_OK);
    assert_string_equal(b.data, "{\"enabled\":false,\"rules\":[]}");
    rk_buf_free(&b);
    rpc_fixture f;
    rpc_up(&f);
    assert_int_equal(ping(&f, 0, 2000), RK_OK);
    rpc_down(&f);
    /* Enabled with no rule: still nothing armed. */
    failpoint_enable();
    assert_true(failpoint_enabled());
    for (int p = 0; p < FAILPOINT_POINT_COUNT; p++)
        assert_false(failpoint_armed((failpoint_point)p));
}

/* ---- probability, count, order, peers ----------------------------------------------- */

static void test_probability_and_count(void **state)
{
    (void)state;
    failpoint_seed(rng_seed_from_env("test_probability_and_count"));
    set_rules("store.write=30%fail");
    assert_true(failpoint_armed(FAILPOINT_STORE_WRITE));
    assert_false(failpoint_armed(FAILPOINT_STORE_READ));
    assert_false(failpoint_armed(FAILPOINT_RPC_SEND));
    const int n = 100000;
    int fails = 0;
    for (int i = 0; i < n; i++)
        fails += failpoint_eval(FAILPOINT_STORE_WRITE, NULL).kind == FAILPOINT_FAIL;
    near("share of 30% that fired", (double)fails / n, 0.3, 0.01);
    assert_int_equal(fired_of("store.write=30%fail"), fails);

    /* A count: the next n hits, then nothing. */
    set_rules("store.write=3*fail");
    for (int i = 0; i < 3; i++)
        assert_int_equal(failpoint_eval(FAILPOINT_STORE_WRITE, NULL).kind, FAILPOINT_FAIL);
    for (int i = 0; i < 100; i++)
        assert_int_equal(failpoint_eval(FAILPOINT_STORE_WRITE, NULL).kind, FAILPOINT_NONE);
    assert_int_equal(fired_of("store.write=3*fail"), 3);

    /* Both: a hit that loses the draw does not use up the count. */
    set_rules("store.read=50%4*delay(1)");
    int delays = 0;
    for (int i = 0; i < 1000; i++) {
        failpoint_action a = failpoint_eval(FAILPOINT_STORE_READ, NULL);
        if (a.kind == FAILPOINT_DELAY) {
            assert_int_equal(a.delay_us, 1000);
            delays++;
        }
    }
    assert_int_equal(delays, 4);

    /* Replacing the set starts the counters again; clearing disarms. */
    set_rules("store.write=3*fail");
    assert_int_equal(fired_of("store.write=3*fail"), 0);
    assert_int_equal(failpoint_eval(FAILPOINT_STORE_WRITE, NULL).kind, FAILPOINT_FAIL);
    failpoint_clear("test");
    assert_false(failpoint_armed(FAILPOINT_STORE_WRITE));
    assert_int_equal(failpoint_eval(FAILPOINT_STORE_WRITE, NULL).kind, FAILPOINT_NONE);
}

static void test_order_and_mixture(void **state)
{
    (void)state;
    failpoint_seed(rng_seed_from_env("test_order_and_mixture"));
    /* A rule naming the peer wins over one for all, whatever the order. */
    set_rules("rpc.send=delay(1)\nrpc.send@127.0.0.1:7=drop");
    failpoint_peer seven = {.addr = "tcp://127.0.0.1:7"}, eight = {.addr = "127.0.0.1:8"};
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_SEND, &seven).kind, FAILPOINT_DROP);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_SEND, &eight).kind, FAILPOINT_DELAY);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_RECV, &seven).kind, FAILPOINT_NONE);

    /* A mixture: the first rule that fires decides, so 25% of 1 ms and
     * the rest 2 ms. */
    set_rules("rpc.send=25%delay(1)\nrpc.send=delay(2)");
    int ones = 0, twos = 0;
    for (int i = 0; i < 40000; i++) {
        failpoint_action a = failpoint_eval(FAILPOINT_RPC_SEND, &eight);
        assert_int_equal(a.kind, FAILPOINT_DELAY);
        ones += a.delay_us == 1000;
        twos += a.delay_us == 2000;
    }
    assert_int_equal(ones + twos, 40000);
    near("share of the first rule", ones / 40000.0, 0.25, 0.015);

    /* failpoint_add appends, keeping what is there. */
    set_rules("rpc.recv=1*fail");
    failpoint_rule r = parse_ok("rpc.recv=drop");
    assert_int_equal(failpoint_add(&r, "test"), RK_OK);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_RECV, &eight).kind, FAILPOINT_FAIL);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_RECV, &eight).kind, FAILPOINT_DROP);
    failpoint_clear("test");
}

/* A membership of three peers, for names. */
static bool test_resolver(void *arg, failpoint_peer_info *info)
{
    (void)arg;
    static const struct {
        uint64_t id;
        const char *name, *addr;
    } members[] = {{7, "seven", "127.0.0.1:7"}, {8, "eight", "127.0.0.1:8"}};
    for (size_t i = 0; i < 2; i++) {
        if (info->id == members[i].id || strcmp(info->addr, members[i].addr) == 0) {
            info->id = members[i].id;
            snprintf(info->name, sizeof info->name, "%s", members[i].name);
            snprintf(info->addr, sizeof info->addr, "%s", members[i].addr);
            return true;
        }
    }
    return false;
}

static void test_peers(void **state)
{
    (void)state;
    failpoint_peer by_addr = {.addr = "127.0.0.1:7"}, by_id = {.id = 7};
    failpoint_peer other_addr = {.addr = "127.0.0.1:8"}, other_id = {.id = 8};
    /* Without a resolver: addresses match what a client knows, ids what a
     * server knows, names nothing. */
    set_rules("rpc.send@127.0.0.1:7=fail\nrpc.recv@0000000000000007=fail\nstore.read=fail");
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_SEND, &by_addr).kind, FAILPOINT_FAIL);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_SEND, &other_addr).kind, FAILPOINT_NONE);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_SEND, &by_id).kind, FAILPOINT_NONE);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_RECV, &by_id).kind, FAILPOINT_FAIL);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_RECV, &other_id).kind, FAILPOINT_NONE);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_RECV, NULL).kind, FAILPOINT_NONE);
    set_rules("rpc.send@seven=fail");
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_SEND, &by_addr).kind, FAILPOINT_NONE);

    /* With one: a name (or an id, or an address) matches whatever the
     * point knows of the same member. */
    failpoint_set_resolver(test_resolver, NULL);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_SEND, &by_addr).kind, FAILPOINT_FAIL);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_SEND, &by_id).kind, FAILPOINT_FAIL);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_SEND, &other_addr).kind, FAILPOINT_NONE);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_SEND, &other_id).kind, FAILPOINT_NONE);
    failpoint_peer stranger = {.addr = "127.0.0.1:9"};
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_SEND, &stranger).kind, FAILPOINT_NONE);
    set_rules("rpc.send@0000000000000008=fail\nrpc.recv@127.0.0.1:8=fail");
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_SEND, &other_addr).kind, FAILPOINT_FAIL);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_RECV, &other_id).kind, FAILPOINT_FAIL);
    assert_int_equal(failpoint_eval(FAILPOINT_RPC_RECV, &by_id).kind, FAILPOINT_NONE);
    failpoint_set_resolver(NULL, NULL);
    failpoint_clear("test");
}

/* ---- the store ----------------------------------------------------------------------- */

static rk_err put_cb(void *arg, const char *old, size_t old_len, rk_buf *out)
{
    (void)old;
    (void)old_len;
    return rk_buf_appends(out, arg);
}

static bool count_cb(void *arg, const char *k, size_t k_len, const char *v, size_t v_len)
{
    (void)k;
    (void)k_len;
    (void)v;
    (void)v_len;
    (*(int *)arg)++;
    return true;
}

static void test_store_points(void **state)
{
    (void)state;
    char dir[] = "/tmp/ringkv-test-failpoint-XXXXXX";
    assert_non_null(mkdtemp(dir));
    store_options so;
    store_options_default(&so);
    store *st = NULL;
    assert_int_equal(store_open(dir, &so, &st), RK_OK);
    rk_buf k = {0}, v = {0};
    assert_int_equal(store_data_key(1, "t", 1, "k", 1, &k), RK_OK);

    /* The next write fails, the one after does not. */
    set_rules("store.write=1*fail");
    assert_int_equal(store_apply(st, k.data, k.len, put_cb, "one"), RK_EIO);
    assert_int_equal(store_get(st, k.data, k.len, &v), RK_ENOTFOUND);
    assert_int_equal(store_apply(st, k.data, k.len, put_cb, "two"), RK_OK);
    /* Every kind of write goes through the point. */
    set_rules("store.write=fail");
    assert_int_equal(store_apply(st, k.data, k.len, put_cb, "three"), RK_EIO);
    assert_int_equal(store_hint_apply(st, 9, k.data, k.len, put_cb, "h"), RK_EIO);
    assert_int_equal(store_remove_if(st, k.data, k.len, "two", 3), RK_EIO);
    assert_int_equal(store_hint_drop(st, 0, NULL), RK_EIO);
    /* meta is not a data write: the node's identity is never failed. */
    assert_int_equal(store_meta_put(st, "x", "y", 1), RK_OK);

    /* Reads: fail, then a delay that holds the caller. */
    set_rules("store.read=fail");
    assert_int_equal(store_get(st, k.data, k.len, &v), RK_EIO);
    int seen = 0;
    assert_int_equal(store_scan(st, NULL, 0, NULL, 0, count_cb, &seen), RK_EIO);
    assert_int_equal(store_hint_get(st, 9, k.data, k.len, &v), RK_EIO);
    set_rules("store.read=delay(const(50))");
    uint64_t t0 = rk_mono_ns();
    assert_int_equal(store_get(st, k.data, k.len, &v), RK_OK);
    assert_true(elapsed_ms(t0) >= 50);
    assert_memory_equal(v.data, "two", 3);

    failpoint_clear("test");
    assert_int_equal(store_scan(st, NULL, 0, NULL, 0, count_cb, &seen), RK_OK);
    assert_int_equal(seen, 1);
    rk_buf_free(&k);
    rk_buf_free(&v);
    store_close(st);
    rm_tree(dir);
}

/* ---- the RPC points ----------------------------------------------------------------------- */

static void rule_for(const char *fmt, const char *arg)
{
    char text[256];
    snprintf(text, sizeof text, fmt, arg);
    set_rules(text);
}

/* The client's points: its requests (rpc.send) and the replies it gets
 * (rpc.recv), matched by the server's address. */
static void test_rpc_client_points(void **state)
{
    (void)state;
    rpc_fixture f;
    rpc_up(&f);
    assert_int_equal(ping(&f, 0, 2000), RK_OK);

    rule_for("rpc.send@%s=delay(const(200))", f.addr[0]);
    uint64_t t0 = rk_mono_ns();
    assert_int_equal(ping(&f, 0, 5000), RK_OK);
    assert_true(elapsed_ms(t0) >= 200);
    assert_int_equal(ping(&f, 1, 5000), RK_OK); /* another peer: no rule */

    /* Lost: the caller times out, the server never saw it. */
    rule_for("rpc.send@%s=drop", f.addr[0]);
    int served = atomic_load(&pings_served);
    t0 = rk_mono_ns();
    assert_int_equal(ping(&f, 0, 300), RK_ETIMEDOUT);
    assert_true(timed_out_after(t0, 300));
    assert_int_equal(atomic_load(&pings_served), served);
    /* A delay past the deadline is a loss too. */
    rule_for("rpc.send@%s=delay(const(5000))", f.addr[0]);
    assert_int_equal(ping(&f, 0, 200), RK_ETIMEDOUT);

    rule_for("rpc.send@%s=fail", f.addr[0]);
    assert_int_equal(ping(&f, 0, 5000), RK_EIO);
    assert_int_equal(atomic_load(&pings_served), served);

    /* The reply: late, lost (after the server ran it), failed. */
    rule_for("rpc.recv@%s=delay(const(150))", f.addr[0]);
    t0 = rk_mono_ns();
    assert_int_equal(ping(&f, 0, 5000), RK_OK);
    assert_true(elapsed_ms(t0) >= 150);
    rule_for("rpc.recv@%s=drop", f.addr[0]);
    served = atomic_load(&pings_served);
    assert_int_equal(ping(&f, 0, 300), RK_ETIMEDOUT);
    assert_int_equal(atomic_load(&pings_served), served + 1);
    rule_for("rpc.recv@%s=fail", f.addr[0]);
    assert_int_equal(ping(&f, 0, 5000), RK_EIO);

    failpoint_clear("test");
    assert_int_equal(ping(&f, 0, 2000), RK_OK);
    rpc_down(&f);
}

/* The server's points: the requests it gets (rpc.recv) and its replies
 * (rpc.send), matched by the caller's node id. */
static void test_rpc_server_points(void **state)
{
    (void)state;
    rpc_fixture f;
    rpc_up(&f);

    set_rules("rpc.recv@" CLIENT_HEX "=drop");
    int served = atomic_load(&pings_served);
    assert_int_equal(ping(&f, 0, 300), RK_ETIMEDOUT);
    assert_int_equal(atomic_load(&pings_served), served);
    set_rules("rpc.recv@" CLIENT_HEX "=fail");
    assert_int_equal(ping(&f, 0, 5000), RK_EIO);
    assert_int_equal(atomic_load(&pings_served), served); /* the handler did not run */
    set_rules("rpc.recv@" CLIENT_HEX "=delay(const(150))");
    uint64_t t0 = rk_mono_ns();
    assert_int_equal(ping(&f, 0, 5000), RK_OK);
    assert_true(elapsed_ms(t0) >= 150);

    set_rules("rpc.send@" CLIENT_HEX "=delay(const(150))");
    t0 = rk_mono_ns();
    assert_int_equal(ping(&f, 0, 5000), RK_OK);
    assert_true(elapsed_ms(t0) >= 150);
    set_rules("rpc.send@" CLIENT_HEX "=drop");
    served = atomic_load(&pings_served);
    assert_int_equal(ping(&f, 0, 300), RK_ETIMEDOUT);
    assert_int_equal(atomic_load(&pings_served), served + 1); /* ran; its answer was lost */
    set_rules("rpc.send@" CLIENT_HEX "=fail");
    assert_int_equal(ping(&f, 0, 5000), RK_EIO);

    /* Another caller's id: nothing. */
    set_rules("rpc.recv@00000000000000ff=drop\nrpc.send@00000000000000ff=drop");
    assert_int_equal(ping(&f, 0, 2000), RK_OK);
    failpoint_clear("test");
    rpc_down(&f);
}

/* Many calls at once (so they go out in batches) through delays on both
 * ends, with jitter: every call is answered, none is lost. */
#define MANY 64
static void test_rpc_batches_through_delays(void **state)
{
    (void)state;
    rpc_fixture f;
    rpc_up(&f);
    char text[256];
    snprintf(text, sizeof text,
             "rpc.send@%s=delay(uniform(0.5,20))\nrpc.send@" CLIENT_HEX "=delay(exp(3))\n"
             "rpc.recv=10%%delay(pareto(1,2))",
             f.addr[0]);
    set_rules(text);
    static pending p[MANY];
    for (int i = 0; i < MANY; i++)
        ping_async(&f, 0, 10000, &p[i]);
    for (int i = 0; i < MANY; i++) {
        assert_true(wait_for(pending_done, &p[i], 20000));
        assert_int_equal(atomic_load(&p[i].err), RK_OK);
    }
    rpc_client_stats cs;
    rpc_client_get_stats(f.cli, &cs);
    print_message("# %llu calls, %llu batches\n", (unsigned long long)cs.calls,
                  (unsigned long long)cs.batches);
    failpoint_clear("test");
    rpc_down(&f);
}

static bool served_more_than(void *arg)
{
    return atomic_load(&pings_served) > *(int *)arg;
}

/* A message held for one peer holds nothing else: a call to another peer
 * is answered meanwhile; and closing the client ends the held call. */
static void test_rpc_delay_blocks_nothing(void **state)
{
    (void)state;
    rpc_fixture f;
    rpc_up(&f);
    rule_for("rpc.send@%s=delay(const(5000))", f.addr[0]);
    pending held;
    ping_async(&f, 0, 20000, &held);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ping(&f, 1, 5000), RK_OK);
    assert_false(atomic_load(&held.done));
    rpc_client_close(f.cli);
    assert_true(atomic_load(&held.done));
    assert_int_equal(atomic_load(&held.err), RK_ECLOSED);
    rpc_options o = opts_for(CLIENT_ID, false);
    assert_int_equal(rpc_client_open(&o, &f.cli), RK_OK);

    /* A server that holds an answer closes without waiting for it. */
    set_rules("rpc.send@" CLIENT_HEX "=delay(const(20000))");
    int served = atomic_load(&pings_served);
    ping_async(&f, 0, 30000, &held);
    assert_true(wait_for(served_more_than, &served, 10000)); /* its answer is held */
    uint64_t t0 = rk_mono_ns();
    rpc_server_close(f.srv[0]);
    f.srv[0] = NULL;
    assert_true(elapsed_ms(t0) < 20000); /* it did not wait for the hold */
    failpoint_clear("test");
    rpc_client_close(f.cli); /* the call ends (its peer is gone), or close ends it */
    f.cli = NULL;
    assert_true(atomic_load(&held.done));
    rpc_down(&f);
}

/* ---- the body of PUT /debug/failpoints (pure) ---------------------------------------- */

static void body_ok(const char *body, size_t want_n, const char *first_spec)
{
    failpoint_rule *rules = NULL;
    size_t n = 0;
    char err[FAILPOINT_ERR_MAX + 64];
    if (http_failpoints_parse_body(body, strlen(body), &rules, &n, err, sizeof err) != RK_OK)
        fail_msg("body %s: %s", body, err);
    assert_int_equal(n, want_n);
    if (first_spec != NULL) {
        char text[FAILPOINT_SPEC_MAX];
        failpoint_rule_format(&rules[0], text, sizeof text);
        assert_string_equal(text, first_spec);
    }
    free(rules);
}

static void body_bad(const char *body, const char *want)
{
    failpoint_rule *rules = NULL;
    size_t n = 0;
    char err[FAILPOINT_ERR_MAX + 64];
    assert_int_equal(http_failpoints_parse_body(body, strlen(body), &rules, &n, err, sizeof err),
                     RK_EINVAL);
    if (strstr(err, want) == NULL)
        fail_msg("body %s: message \"%s\" does not say \"%s\"", body, err, want);
}

static void test_http_body(void **state)
{
    (void)state;
    body_ok("rpc.send@n2=drop\n# comment\nstore.write=1*fail\n", 2, "rpc.send@n2=drop");
    body_ok("", 0, NULL);
    body_ok("[]", 0, NULL);
    body_ok(" [\"rpc.send@n2=drop\", \"store.read=delay(5)\"]", 2, "rpc.send@n2=drop");
    body_ok("[{\"point\":\"rpc.send\",\"peer\":\"n3\",\"action\":\"delay(exp(5))\",\"p\":0.2,"
            "\"n\":5}]",
            1, "rpc.send@n3=20%5*delay(exp(5))");
    body_ok("[{\"point\":\"rpc.send\",\"peer\":null,\"action\":\"drop\",\"p\":1,\"n\":null}]", 1,
            "rpc.send=drop");
    /* What GET lists can be put back as it is. */
    body_ok("{\"enabled\":true,\"rules\":[{\"spec\":\"rpc.send@n2=20%delay(exp(5))\","
            "\"point\":\"rpc.send\",\"peer\":\"n2\",\"action\":\"delay\",\"p\":0.2,\"n\":null,"
            "\"hits\":3,\"fired\":1}]}",
            1, "rpc.send@n2=20%delay(exp(5))");

    body_bad("rpc.send=drop\nrpc.send=dorp\n", "line 2: unknown action");
    body_bad("[\"rpc.send=drop\", \"rpc.recv=delay(x)\"]", "rules[1]: expected a distribution");
    body_bad("[1]", "rules[0]: a rule is a string");
    body_bad("[{\"action\":\"drop\"}]", "rules[0]: a rule object has \"point\" and \"action\"");
    body_bad("[{\"point\":\"rpc.send\",\"action\":\"drop\",\"p\":2}]", "\"p\" is a probability");
    body_bad("[{\"point\":\"rpc.send\",\"action\":\"drop\",\"n\":0.5}]", "\"n\" is a count");
    body_bad("[{\"point\":\"rpc.send\",\"action\":\"drop\",\"peer\":7}]", "\"peer\" is a node");
    body_bad("{\"rules\":5}", "a JSON body is an array of rules");
    body_bad("[\"rpc.send=drop\"", "a JSON body is an array of rules");
}

/* ---- two real nodes ----------------------------------------------------------------- */

typedef struct pair {
    test_node n[2];
} pair;

static bool pair_converged(void *arg)
{
    pair *p = arg;
    for (int i = 0; i < 2; i++) {
        cluster_view *v = cluster_node_view(p->n[i].cn);
        bool ok =
            v->count == 2 && cluster_view_alive(v, p->n[0].id) && cluster_view_alive(v, p->n[1].id);
        cluster_view_unref(v);
        if (!ok)
            return false;
    }
    return true;
}

static rk_err read_both(pair *p, uint32_t timeout_ms, kv_result *res)
{
    kv_read_opts o = {.r = 2, .timeout_ms = timeout_ms, .strict = true};
    return kv_get(p->n[0].k, &(kv_key){"t", 1, "k", 1}, &o, res);
}

static bool reads_both(void *arg)
{
    kv_result res;
    rk_err err = read_both(arg, 1000, &res);
    kv_result_free(&res);
    return err == RK_OK;
}

/* Node 1 reads with R=2 through a link to node 2 that is slow, then down,
 * then healed: the read waits for the slow link, fails its quorum when
 * node 2's messages are lost, and succeeds again once the rule is gone. */
static void test_two_nodes(void **state)
{
    (void)state;
    pair *p = calloc(1, sizeof *p);
    assert_non_null(p);
    kv_config kc;
    kv_config_default(&kc);
    kc.n = 2;
    kc.r = 2;
    kc.w = 2;
    test_node_up(&p->n[0], 0, &kc, NULL, NULL);
    test_node_up(&p->n[1], 1, &kc, NULL, p->n[0].rpc_addr);
    assert_true(wait_for(pair_converged, p, 15000));
    kv_write wr = {.key = {"t", 1, "k", 1}, .value = "1", .value_len = 1, .w = 2, .strict = true};
    kv_result res;
    assert_int_equal(kv_put(p->n[0].k, &wr, &res), RK_OK);
    kv_result_free(&res);

    /* Node 1's messages to node 2 take 200 ms. */
    rule_for("rpc.send@%s=delay(const(200))", p->n[1].rpc_addr);
    uint64_t t0 = rk_mono_ns();
    assert_int_equal(read_both(p, 5000, &res), RK_OK);
    assert_true(elapsed_ms(t0) >= 200);
    bool from_two = false;
    for (size_t i = 0; i < res.answered_count; i++)
        from_two |= res.answered[i] == p->n[1].id;
    assert_true(from_two);
    kv_result_free(&res);

    /* Lost: the quorum of 2 is not met, after the read's timeout. */
    rule_for("rpc.send@%s=drop", p->n[1].rpc_addr);
    t0 = rk_mono_ns();
    assert_int_equal(read_both(p, 300, &res), RK_EQUORUM);
    assert_true(timed_out_after(t0, 300));
    assert_int_equal(res.acks, 1);
    assert_int_equal(res.needed, 2);
    kv_result_free(&res);

    failpoint_clear("test");
    assert_true(wait_for(reads_both, p, 15000));
    test_node_destroy(&p->n[1]);
    test_node_destroy(&p->n[0]);
    free(p);
}

static int teardown_group(void **state)
{
    (void)state;
    failpoint_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_parse_lines),
        cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_timer),
        cmocka_unit_test(test_http_body),
        /* The process's rule set from here on, in this order. */
        cmocka_unit_test(test_off_means_no_effect),
        cmocka_unit_test(test_probability_and_count),
        cmocka_unit_test(test_order_and_mixture),
        cmocka_unit_test(test_peers),
        cmocka_unit_test(test_store_points),
        cmocka_unit_test(test_rpc_client_points),
        cmocka_unit_test(test_rpc_server_points),
        cmocka_unit_test(test_rpc_batches_through_delays),
        cmocka_unit_test(test_rpc_delay_blocks_nothing),
        cmocka_unit_test(test_two_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_group);
}
