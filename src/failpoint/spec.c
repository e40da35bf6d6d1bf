/* spec.c - the text of failpoint rules: parsing (strict, with messages that
 * say where and what) and formatting back (pure). The grammar is in
 * failpoint.h above failpoint_rule_parse. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringkv/failpoint.h"

static const char *const point_names[FAILPOINT_POINT_COUNT] = {
    [FAILPOINT_RPC_SEND] = "rpc.send",
    [FAILPOINT_RPC_RECV] = "rpc.recv",
    [FAILPOINT_STORE_WRITE] = "store.write",
    [FAILPOINT_STORE_READ] = "store.read",
};

const char *failpoint_point_name(failpoint_point p)
{
    return p < FAILPOINT_POINT_COUNT ? point_names[p] : "?";
}

/* The distributions: name, number of parameters, and the bounds each
 * parameter must keep so that a sample means something. */
typedef struct dist_row {
    const char *name;
    failpoint_dist_kind kind;
    int n_params;
    const char *params[2];
    double lo[2], hi[2];
    bool lo_open[2]; /* the parameter must be greater than lo, not equal */
} dist_row;

#define MAXMS FAILPOINT_DELAY_MAX_MS
static const dist_row dists[] = {
    {"const", FAILPOINT_DIST_CONST, 1, {"ms"}, {0}, {MAXMS}, {false}},
    {"uniform", FAILPOINT_DIST_UNIFORM, 2, {"lo", "hi"}, {0, 0}, {MAXMS, MAXMS}, {false, false}},
    {"exp", FAILPOINT_DIST_EXP, 1, {"mean"}, {0}, {MAXMS}, {true}},
    {"normal", FAILPOINT_DIST_NORMAL, 2, {"mean", "sd"}, {0, 0}, {MAXMS, MAXMS}, {false, false}},
    /* e^11 ms is past the clamp already; sigma 10 is a tail of e^30. */
    {"lognormal", FAILPOINT_DIST_LOGNORMAL, 2, {"mu", "sigma"}, {-30, 0}, {11, 10}, {false, false}},
    {"pareto", FAILPOINT_DIST_PARETO, 2, {"scale", "shape"}, {0, 0}, {MAXMS, 100}, {true, true}},
};
#define N_DISTS (sizeof dists / sizeof dists[0])

/* ---- the cursor ------------------------------------------------------------ */

typedef struct parser {
    const char *s;
    size_t len, pos;
    char *err;
    size_t cap;
} parser;

/* Writes "message (column N of "spec")" to the error buffer; returns false
 * so that a caller can `return fail(...)`. */
__attribute__((format(printf, 2, 3))) static bool fail(parser *p, const char *fmt, ...)
{
    if (p->err == NULL || p->cap == 0)
        return false;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->err, p->cap, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < p->cap) {
        int shown = p->len > 120 ? 120 : (int)p->len;
        snprintf(p->err + n, p->cap - (size_t)n, " (column %zu of \"%.*s%s\")", p->pos + 1, shown,
                 p->s, p->len > 120 ? "..." : "");
    }
    return false;
}

static void skip_space(parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t'))
        p->pos++;
}

static bool at_end(parser *p)
{
    skip_space(p);
    return p->pos >= p->len;
}

static char peek(parser *p)
{
    skip_space(p);
    return p->pos < p->len ? p->s[p->pos] : '\0';
}

static bool eat(parser *p, char c)
{
    if (peek(p) != c)
        return false;
    p->pos++;
    return true;
}

/* A word of [a-z.] into out (cap bytes); "" if there is none. */
static void word(parser *p, char *out, size_t cap)
{
    skip_space(p);
    size_t n = 0;
    while (p->pos < p->len && (islower((unsigned char)p->s[p->pos]) || p->s[p->pos] == '.')) {
        if (n + 1 < cap)
            out[n++] = p->s[p->pos];
        p->pos++;
    }
    out[n] = '\0';
}

static bool starts_number(parser *p)
{
    char c = peek(p);
    return isdigit((unsigned char)c) || c == '.' || c == '-';
}

/* A plain decimal: [-]digits[.digits] or [-].digits. No exponent, no
 * inf or nan: what a person writes for milliseconds. */
static bool number(parser *p, double *out, const char *what)
{
    skip_space(p);
    size_t start = p->pos, digits = 0;
    if (p->pos < p->len && p->s[p->pos] == '-')
        p->pos++;
    while (p->pos < p->len && isdigit((unsigned char)p->s[p->pos])) {
        p->pos++;
        digits++;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        while (p->pos < p->len && isdigit((unsigned char)p->s[p->pos])) {
            p->pos++;
            digits++;
        }
    }
    if (digits == 0 || p->pos - start > 32) {
        p->pos = start;
        return fail(p, "expected a number for %s", what);
    }
    char buf[40];
    memcpy(buf, p->s + start, p->pos - start);
    buf[p->pos - start] = '\0';
    *out = strtod(buf, NULL);
    return true;
}

/* ---- the parts of a rule ------------------------------------------------------- */

static bool parse_point(parser *p, failpoint_point *out)
{
    char name[32];
    size_t start = p->pos;
    word(p, name, sizeof name);
    for (int i = 0; i < FAILPOINT_POINT_COUNT; i++) {
        if (strcmp(name, point_names[i]) == 0) {
            *out = (failpoint_point)i;
            return true;
        }
    }
    /* Say what was there, up to the '@' or '=' that ends a point. */
    skip_space(p);
    size_t end = start;
    while (end < p->len && p->s[end] != '@' && p->s[end] != '=')
        end++;
    p->pos = start;
    return fail(p, "unknown point \"%.*s\" (points: rpc.send, rpc.recv, store.write, store.read)",
                (int)(end - start > 64 ? 64 : end - start), p->s + start);
}

/* The peer: everything up to '=', without the spaces around it. */
static bool parse_peer(parser *p, failpoint_rule *r)
{
    skip_space(p);
    size_t start = p->pos, end = start;
    while (end < p->len && p->s[end] != '=')
        end++;
    size_t last = end;
    while (last > start && (p->s[last - 1] == ' ' || p->s[last - 1] == '\t'))
        last--;
    if (last == start)
        return fail(p, "expected a peer after '@' (a node name, id or HOST:PORT)");
    if (last - start > FAILPOINT_PEER_MAX)
        return fail(p, "a peer is at most %d bytes", FAILPOINT_PEER_MAX);
    for (size_t i = start; i < last; i++) {
        unsigned char c = (unsigned char)p->s[i];
        if (c <= ' ' || c == '@' || c >= 0x7f) {
            p->pos = i;
            return fail(p, "a peer is one word of printable characters");
        }
    }
    memcpy(r->peer, p->s + start, last - start);
    r->peer[last - start] = '\0';
    p->pos = end;
    return true;
}

/* [percent "%"] [count "*"] */
static bool parse_chance(parser *p, failpoint_rule *r)
{
    r->probability = 1.0;
    r->count = 0;
    if (!starts_number(p))
        return true;
    size_t start = p->pos;
    double v;
    if (!number(p, &v, "a probability or a count"))
        return false;
    if (eat(p, '%')) {
        if (!(v > 0 && v <= 100)) {
            p->pos = start;
            return fail(p, "a probability is more than 0%% and at most 100%%");
        }
        r->probability = v / 100.0;
        if (!starts_number(p))
            return true;
        start = p->pos;
        if (!number(p, &v, "a count"))
            return false;
        if (!eat(p, '*'))
            return fail(p, "expected '*' after the count");
    } else if (!eat(p, '*')) {
        return fail(p, "expected '%%' (a probability) or '*' (a count) after the number");
    }
    if (!(v >= 1 && v <= 1e12) || v != (double)(uint64_t)v) {
        p->pos = start;
        return fail(p, "a count is a whole number from 1 (the rule fires that many times)");
    }
    r->count = (uint64_t)v;
    return true;
}

static bool check_param(parser *p, const dist_row *d, int i, double v, size_t at)
{
    bool low = d->lo_open[i] ? !(v > d->lo[i]) : !(v >= d->lo[i]);
    if (!low && v <= d->hi[i])
        return true;
    p->pos = at;
    if (low)
        return fail(p, "%s of %s must be %s %g", d->params[i], d->name,
                    d->lo_open[i] ? "more than" : "at least", d->lo[i]);
    return fail(p, "%s of %s must be at most %g", d->params[i], d->name, d->hi[i]);
}

static bool parse_dist(parser *p, failpoint_dist *out)
{
    if (starts_number(p)) { /* delay(5) is delay(const(5)) */
        size_t at = p->pos;
        out->kind = FAILPOINT_DIST_CONST;
        out->b = 0;
        return number(p, &out->a, "ms") && check_param(p, &dists[0], 0, out->a, at);
    }
    size_t start = p->pos;
    char name[16];
    word(p, name, sizeof name);
    const dist_row *d = NULL;
    for (size_t i = 0; i < N_DISTS && d == NULL; i++)
        if (strcmp(name, dists[i].name) == 0)
            d = &dists[i];
    if (d == NULL) {
        p->pos = start;
        return fail(p, "expected a distribution: a number of ms, const(ms), uniform(lo,hi), "
                       "exp(mean), normal(mean,sd), lognormal(mu,sigma) or pareto(scale,shape)");
    }
    if (!eat(p, '('))
        return fail(p, "expected '(' after %s", d->name);
    double v[2] = {0, 0};
    for (int i = 0; i < d->n_params; i++) {
        if (i > 0 && !eat(p, ','))
            return fail(p, "expected ',' and %s: %s takes %d numbers", d->params[i], d->name,
                        d->n_params);
        size_t at = p->pos;
        if (!number(p, &v[i], d->params[i]) || !check_param(p, d, i, v[i], at))
            return false;
    }
    if (peek(p) == ',')
        return fail(p, "%s takes %d number%s", d->name, d->n_params, d->n_params > 1 ? "s" : "");
    if (!eat(p, ')'))
        return fail(p, "expected ')' after the parameters of %s", d->name);
    if (d->kind == FAILPOINT_DIST_UNIFORM && v[1] < v[0])
        return fail(p, "uniform(lo,hi) needs lo <= hi");
    *out = (failpoint_dist){.kind = d->kind, .a = v[0], .b = v[1]};
    return true;
}

static bool parse_action(parser *p, failpoint_rule *r)
{
    size_t start = p->pos;
    char name[16];
    word(p, name, sizeof name);
    bool store = r->point == FAILPOINT_STORE_WRITE || r->point == FAILPOINT_STORE_READ;
    if (strcmp(name, "delay") == 0) {
        r->kind = FAILPOINT_DELAY;
        if (!eat(p, '('))
            return fail(p, "expected '(' after delay: delay(5), delay(exp(5)), ...");
        if (!parse_dist(p, &r->dist))
            return false;
        if (!eat(p, ')'))
            return fail(p, "expected ')' to close delay(");
        return true;
    }
    if (strcmp(name, "drop") == 0) {
        if (store) {
            p->pos = start;
            return fail(p, "drop is for the rpc points (a lost message); %s takes fail or delay",
                        point_names[r->point]);
        }
        r->kind = FAILPOINT_DROP;
        return true;
    }
    if (strcmp(name, "fail") == 0) {
        r->kind = FAILPOINT_FAIL;
        return true;
    }
    p->pos = start;
    if (at_end(p))
        return fail(p, "expected an action after '=': delay(...), drop or fail");
    return fail(p, "unknown action (actions: delay(...), drop, fail)");
}

rk_err failpoint_rule_parse(const char *spec, size_t len, failpoint_rule *out, char *err,
                            size_t cap)
{
    parser p = {
        .s = spec != NULL ? spec : "", .len = spec != NULL ? len : 0, .err = err, .cap = cap};
    if (err != NULL && cap > 0)
        err[0] = '\0';
    failpoint_rule r = {0};
    if (at_end(&p)) {
        fail(&p, "empty rule: expected POINT[@PEER]=ACTION, e.g. rpc.send@node3=delay(5)");
        return RK_EINVAL;
    }
    if (!parse_point(&p, &r.point))
        return RK_EINVAL;
    if (eat(&p, '@')) {
        if (r.point == FAILPOINT_STORE_WRITE || r.point == FAILPOINT_STORE_READ) {
            fail(&p, "%s takes no peer: storage is this node's own", point_names[r.point]);
            return RK_EINVAL;
        }
        if (!parse_peer(&p, &r))
            return RK_EINVAL;
    }
    if (!eat(&p, '=')) {
        fail(&p, "expected '=' and an action after the point%s", r.peer[0] ? " and peer" : "");
        return RK_EINVAL;
    }
    if (!parse_chance(&p, &r) || !parse_action(&p, &r))
        return RK_EINVAL;
    if (!at_end(&p)) {
        fail(&p, "unexpected text after the action");
        return RK_EINVAL;
    }
    *out = r;
    return RK_OK;
}

/* ---- formatting -------------------------------------------------------------- */

void failpoint_rule_format(const failpoint_rule *r, char *out, size_t cap)
{
    if (cap == 0)
        return;
    int n = snprintf(out, cap, "%s%s%s=", failpoint_point_name(r->point), r->peer[0] ? "@" : "",
                     r->peer);
    size_t at = n > 0 && (size_t)n < cap ? (size_t)n : cap - 1;
    if (r->probability < 1.0)
        at += (size_t)snprintf(out + at, cap - at, "%.10g%%", r->probability * 100.0);
    if (at < cap && r->count > 0)
        at += (size_t)snprintf(out + at, cap - at, "%llu*", (unsigned long long)r->count);
    if (at >= cap)
        return;
    switch (r->kind) {
    case FAILPOINT_DROP: snprintf(out + at, cap - at, "drop"); break;
    case FAILPOINT_FAIL: snprintf(out + at, cap - at, "fail"); break;
    case FAILPOINT_DELAY: {
        const dist_row *d = &dists[0];
        for (size_t i = 0; i < N_DISTS; i++)
            if (dists[i].kind == r->dist.kind)
                d = &dists[i];
        if (d->n_params == 1)
            snprintf(out + at, cap - at, "delay(%s(%.10g))", d->name, r->dist.a);
        else
            snprintf(out + at, cap - at, "delay(%s(%.10g,%.10g))", d->name, r->dist.a, r->dist.b);
        break;
    }
    case FAILPOINT_NONE: snprintf(out + at, cap - at, "?"); break;
    }
}

/* ---- many rules ------------------------------------------------------------------ */

rk_err failpoint_rules_parse_lines(const char *text, size_t len, failpoint_rule **rules, size_t *n,
                                   char *err, size_t cap)
{
    failpoint_rule *out = NULL;
    size_t count = 0, room = 0, line_no = 0;
    size_t pos = 0;
    rk_err rc = RK_OK;
    while (pos < len && rc == RK_OK) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - line) : len - pos;
        pos += line_len + (nl != NULL ? 1 : 0);
        line_no++;
        while (line_len > 0 && (line[line_len - 1] == '\r' || line[line_len - 1] == ' ' ||
                                line[line_len - 1] == '\t'))
            line_len--;
        while (line_len > 0 && (line[0] == ' ' || line[0] == '\t')) {
            line++;
            line_len--;
        }
        if (line_len == 0 || line[0] == '#')
            continue;
        if (count == FAILPOINT_RULES_MAX) {
            snprintf(err, cap, "line %zu: more than %d rules", line_no, FAILPOINT_RULES_MAX);
            rc = RK_EINVAL;
            break;
        }
        if ((rc = rk_array_grow((void **)&out, &room, count + 1, sizeof *out)) != RK_OK)
            break;
        char why[FAILPOINT_ERR_MAX];
        if (failpoint_rule_parse(line, line_len, &out[count], why, sizeof why) != RK_OK) {
            snprintf(err, cap, "line %zu: %s", line_no, why);
            rc = RK_EINVAL;
            break;
        }
        count++;
    }
    if (rc != RK_OK) {
        free(out);
        return rc;
    }
    *rules = out;
    *n = count;
    return RK_OK;
}
