/* failpoints.c - GET, PUT and DELETE /debug/failpoints: the fault rules of
 * a node started with --failpoints (docs/failpoints.md).
 *
 * 404 on a node without --failpoints, so a production node shows nothing.
 * Where they are on, the routes are not authenticated, like the cluster
 * routes: whoever reaches the HTTP port can delay, drop or fail this
 * node's messages. Each change is logged with the client's address. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

#define FAILPOINTS_BODY_MAX (256u << 10) /* FAILPOINT_RULES_MAX rules of up to ~1 KiB */

/* ---- pure parts ------------------------------------------------------------ */

/* One rule of a JSON body as the text failpoint_rule_parse reads: a string
 * is that text; an object is {"spec"} or {"point", "peer"?, "action",
 * "p"?, "n"?}, as GET lists rules. */
static rk_err rule_text(const cJSON *item, char *out, size_t cap, const char **why)
{
    if (cJSON_IsString(item)) {
        snprintf(out, cap, "%s", item->valuestring);
        return RK_OK;
    }
    if (!cJSON_IsObject(item)) {
        *why = "a rule is a string (\"rpc.send@n2=drop\") or an object";
        return RK_EINVAL;
    }
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(item, "spec");
    if (cJSON_IsString(spec)) {
        snprintf(out, cap, "%s", spec->valuestring);
        return RK_OK;
    }
    const cJSON *point = cJSON_GetObjectItemCaseSensitive(item, "point");
    const cJSON *peer = cJSON_GetObjectItemCaseSensitive(item, "peer");
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(item, "action");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(item, "p");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(item, "n");
    if (!cJSON_IsString(point) || !cJSON_IsString(action)) {
        *why = "a rule object has \"point\" and \"action\" strings (or a \"spec\")";
        return RK_EINVAL;
    }
    if (peer != NULL && !cJSON_IsNull(peer) && !cJSON_IsString(peer)) {
        *why = "\"peer\" is a node name, id or HOST:PORT, or null for every peer";
        return RK_EINVAL;
    }
    if (p != NULL && !cJSON_IsNull(p) &&
        !(cJSON_IsNumber(p) && p->valuedouble > 0 && p->valuedouble <= 1)) {
        *why = "\"p\" is a probability: more than 0, at most 1";
        return RK_EINVAL;
    }
    if (n != NULL && !cJSON_IsNull(n) &&
        !(cJSON_IsNumber(n) && n->valuedouble >= 1 && n->valuedouble <= 1e12 &&
          n->valuedouble == (double)(uint64_t)n->valuedouble)) {
        *why = "\"n\" is a count: a whole number from 1, or null for no limit";
        return RK_EINVAL;
    }
    int len = snprintf(out, cap, "%s%s%s=", point->valuestring, cJSON_IsString(peer) ? "@" : "",
                       cJSON_IsString(peer) ? peer->valuestring : "");
    size_t at = len > 0 && (size_t)len < cap ? (size_t)len : cap - 1;
    if (cJSON_IsNumber(p) && p->valuedouble < 1 && at < cap)
        at += (size_t)snprintf(out + at, cap - at, "%.15g%%", p->valuedouble * 100.0);
    if (cJSON_IsNumber(n) && at < cap)
        at += (size_t)snprintf(out + at, cap - at, "%llu*", (unsigned long long)n->valuedouble);
    if (at < cap)
        snprintf(out + at, cap - at, "%s", action->valuestring);
    return RK_OK;
}

/* A JSON body: an array of rules, or {"rules": [...]} (what GET returns,
 * so a listing can be edited and put back). */
static rk_err parse_json(const char *body, size_t len, failpoint_rule **rules, size_t *n, char *err,
                         size_t cap)
{
    size_t vb, ve;
    cJSON *doc = NULL;
    /* Our scanner first: it bounds nesting, which cJSON does not. */
    if (rk_json_valid(body, len, &vb, &ve))
        doc = cJSON_ParseWithLength(body, len);
    const cJSON *list = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "rules") : doc;
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(doc);
        snprintf(err, cap, "a JSON body is an array of rules or {\"rules\": [...]}");
        return RK_EINVAL;
    }
    size_t count = (size_t)cJSON_GetArraySize(list);
    if (count > FAILPOINT_RULES_MAX) {
        cJSON_Delete(doc);
        snprintf(err, cap, "more than %d rules", FAILPOINT_RULES_MAX);
        return RK_EINVAL;
    }
    failpoint_rule *out = count > 0 ? calloc(count, sizeof *out) : NULL;
    if (count > 0 && out == NULL) {
        cJSON_Delete(doc);
        return RK_ENOMEM;
    }
    rk_err rc = RK_OK;
    size_t i = 0;
    for (const cJSON *item = list->child; item != NULL && rc == RK_OK; item = item->next, i++) {
        char text[FAILPOINT_SPEC_MAX * 2];
        const char *why = NULL;
        char parse_err[FAILPOINT_ERR_MAX];
        if ((rc = rule_text(item, text, sizeof text, &why)) != RK_OK) {
            snprintf(err, cap, "rules[%zu]: %s", i, why);
        } else if ((rc = failpoint_rule_parse(text, strlen(text), &out[i], parse_err,
                                              sizeof parse_err)) != RK_OK) {
            snprintf(err, cap, "rules[%zu]: %s", i, parse_err);
        }
    }
    cJSON_Delete(doc);
    if (rc != RK_OK) {
        free(out);
        return rc;
    }
    *rules = out;
    *n = count;
    return RK_OK;
}

rk_err http_failpoints_parse_body(const char *body, size_t len, failpoint_rule **rules, size_t *n,
                                  char *err, size_t cap)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i < len && (body[i] == '[' || body[i] == '{'))
        return parse_json(body, len, rules, n, err, cap);
    return failpoint_rules_parse_lines(body, len, rules, n, err, cap);
}

/* ---- handlers ---------------------------------------------------------------- */

/* 404 unless the node runs with --failpoints; true when it does. */
static bool enabled_or_404(request *rq)
{
    if (failpoint_enabled())
        return true;
    http_reply_error(rq, 404, "not_found",
                     "failpoints are off on this node (start it with --failpoints to use them)");
    return false;
}

static void reply_rules(request *rq)
{
    reply_buf b = {0};
    rk_err err = failpoint_list_json(&b.buf);
    if (err != RK_OK) {
        http_reply_buf_free(&b);
        http_reply_err(rq, err);
        return;
    }
    http_reply_json(rq, 200, NULL, &b);
    http_reply_buf_free(&b);
}

void http_handle_failpoints_get(request *rq)
{
    if (enabled_or_404(rq))
        reply_rules(rq);
}

void http_handle_failpoints_put(request *rq)
{
    if (!enabled_or_404(rq))
        return;
    rk_buf body = {0};
    if (http_request_body(rq, FAILPOINTS_BODY_MAX, &body) != RK_OK) {
        rk_buf_free(&body);
        return;
    }
    failpoint_rule *rules = NULL;
    size_t n = 0;
    char why[FAILPOINT_ERR_MAX + 64];
    rk_err err = http_failpoints_parse_body(body.data != NULL ? body.data : "", body.len, &rules,
                                            &n, why, sizeof why);
    rk_buf_free(&body);
    if (err == RK_EINVAL) {
        http_reply_error(rq, 400, "bad_failpoint", why);
        return;
    }
    char origin[96];
    snprintf(origin, sizeof origin, "PUT /debug/failpoints from %s", rq->ri->remote_addr);
    if (err == RK_OK)
        err = failpoint_replace(rules, n, origin);
    free(rules);
    if (err != RK_OK) {
        http_reply_err(rq, err);
        return;
    }
    reply_rules(rq);
}

void http_handle_failpoints_delete(request *rq)
{
    if (!enabled_or_404(rq))
        return;
    char origin[96];
    snprintf(origin, sizeof origin, "DELETE /debug/failpoints from %s", rq->ri->remote_addr);
    failpoint_clear(origin);
    reply_rules(rq);
}
