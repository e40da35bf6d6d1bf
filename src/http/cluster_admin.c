/* cluster_admin.c - the routes that change the cluster: POST /cluster/leave,
 * /cluster/remove, /cluster/repair and /cluster/hints/drop.
 *
 * They are not authenticated, like every route until token auth lands:
 * whoever reaches the HTTP port can make the node leave. Each change is
 * logged with the client's address so an operator can tell who did it. */
#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "http_internal.h"

#define REMOVE_BODY_MAX 4096u /* {"node": "..."}: a name is at most 64 bytes */
#define NO_SUCH_NODE "no node of that name or id in this node's view of the cluster"

/* ---- pure parts ------------------------------------------------------------ */

rk_err http_admin_parse_node_body(const char *body, size_t len, char *dst, size_t cap,
                                  const char **code)
{
    /* Our scanner first: it bounds nesting, while cJSON recurses deep
     * enough on "[[[[..." to overflow a civetweb worker's stack. */
    size_t vb, ve;
    cJSON *j = NULL;
    if (body != NULL && rk_json_valid(body, len, &vb, &ve))
        j = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        *code = "bad_json";
        return RK_EINVAL;
    }
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(j, "node");
    size_t n = cJSON_IsString(node) ? strlen(node->valuestring) : 0;
    rk_err err = RK_OK;
    if (n == 0) {
        *code = "missing_node";
        err = RK_EINVAL;
    } else if (n >= cap) {
        /* Longer than any name or id: no member can match it. */
        err = RK_ENOTFOUND;
    } else {
        memcpy(dst, node->valuestring, n + 1);
    }
    cJSON_Delete(j);
    return err;
}

/* A node that was removed and replaced by a new one of the same name leaves
 * two rows with that name; the one still in the cluster is meant, and the
 * removed one only when it is the only one (removing it again is a no-op
 * that answers 200). */
static rk_err find_by_name(const cluster_view *view, const char *name,
                           const cluster_view_member **out)
{
    const cluster_view_member *live = NULL, *removed = NULL;
    size_t n_live = 0, n_removed = 0;
    for (size_t i = 0; i < view->count; i++) {
        const cluster_view_member *m = &view->members[i];
        if (strcmp(m->name, name) != 0)
            continue;
        if (m->status == CLUSTER_REMOVED) {
            removed = m;
            n_removed++;
        } else {
            live = m;
            n_live++;
        }
    }
    if (n_live > 1 || (n_live == 0 && n_removed > 1))
        return RK_EEXIST;
    *out = live != NULL ? live : removed;
    return *out != NULL ? RK_OK : RK_ENOTFOUND;
}

rk_err http_admin_find_member(const cluster_view *view, const char *text,
                              const cluster_view_member **out)
{
    const cluster_view_member *m = NULL;
    rk_err err = find_by_name(view, text, &m);
    uint64_t id;
    if (err == RK_ENOTFOUND && strlen(text) == 16 && /* as GET /cluster prints ids */
        rk_hex_parse_u64(text, 16, &id) == RK_OK) {
        /* Linear, not cluster_view_find: this stays pure and the table is
         * at most CLUSTER_MAX_MEMBERS rows, once per admin request. */
        for (size_t i = 0; i < view->count && m == NULL; i++)
            if (view->members[i].id == id)
                m = &view->members[i];
        err = m != NULL ? RK_OK : RK_ENOTFOUND;
    }
    if (err == RK_OK)
        *out = m;
    return err;
}

/* ---- handlers ---------------------------------------------------------------- */

/* This node's status in the view, to say why it cannot leave. */
static cluster_status self_status(cluster_node *cn)
{
    cluster_view *v = cluster_node_view(cn);
    cluster_status st = CLUSTER_MEMBER;
    for (size_t i = 0; i < v->count; i++)
        if (v->members[i].id == v->self_id)
            st = v->members[i].status;
    cluster_view_unref(v);
    return st;
}

void http_handle_cluster_leave(request *rq)
{
    const http_server *s = rq->srv;
    rk_err err = sync_leave(s->sync);
    if (err == RK_EBUSY) {
        http_reply_error(rq, 409, "conflict",
                         self_status(s->cluster) == CLUSTER_JOINING
                             ? "this node is still joining: it can leave once it is a member"
                             : "this node is the last member of the ring: there is nobody to "
                               "hand its data to");
        return;
    }
    if (err != RK_OK) {
        http_reply_err(rq, err);
        return;
    }
    RK_INFO("http", "leave requested by %s: this node hands off its ranges and stops",
            rq->ri->remote_addr);
    reply_buf b = {0};
    http_reply_add_str(&b, "{\"node\":");
    http_reply_add_json_cstr(&b, s->name);
    http_reply_add_str(&b, ",\"status\":\"leaving\"}");
    http_reply_json(rq, 202, NULL, &b);
    http_reply_buf_free(&b);
}

/* What remove is about to act on, copied out of the view so that no view
 * is held across sync_remove. */
typedef struct remove_target {
    uint64_t id;
    char name[CLUSTER_NAME_MAX + 1];
    cluster_liveness liveness;
} remove_target;

/* The node text names, from this node's view, into t; on failure it has
 * replied (404, 409, or the error's status). */
static rk_err resolve_target(request *rq, const char *text, remove_target *t)
{
    const cluster_view_member *m = NULL;
    cluster_view *v = cluster_node_view(rq->srv->cluster);
    rk_err err = http_admin_find_member(v, text, &m);
    if (err == RK_OK) {
        t->id = m->id;
        snprintf(t->name, sizeof t->name, "%s", m->name);
        t->liveness = m->liveness;
    }
    cluster_view_unref(v);
    if (err == RK_ENOTFOUND)
        http_reply_error(rq, 404, "not_found", NO_SUCH_NODE);
    else if (err == RK_EEXIST)
        http_reply_error(rq, 409, "conflict",
                         "several nodes carry that name: give the 16-hex id (see GET /cluster)");
    else if (err != RK_OK)
        http_reply_err(rq, err);
    return err;
}

/* Reads the body and resolves it against this node's view. RK_OK with *t
 * filled; otherwise it has replied. */
static rk_err remove_target_of(request *rq, remove_target *t)
{
    rk_buf body = {0};
    rk_err err = http_request_body(rq, REMOVE_BODY_MAX, &body);
    if (err != RK_OK) {
        rk_buf_free(&body);
        return err;
    }
    char text[CLUSTER_NAME_MAX + 1];
    const char *code = NULL;
    err = http_admin_parse_node_body(body.data, body.len, text, sizeof text, &code);
    rk_buf_free(&body);
    if (err == RK_EINVAL) {
        http_reply_error(rq, 400, code,
                         "body must be {\"node\": \"NAME or 16-hex id\"} (see GET /cluster)");
        return err;
    }
    if (err == RK_ENOTFOUND) { /* a name longer than any member's */
        http_reply_error(rq, 404, "not_found", NO_SUCH_NODE);
        return err;
    }
    return resolve_target(rq, text, t);
}

/* sync_remove's refusals, said so that the operator knows what to do. */
static void reply_remove_refused(request *rq, rk_err err, const remove_target *t)
{
    char msg[320]; /* room for the longest name */
    if (err == RK_EINVAL)
        snprintf(msg, sizeof msg,
                 "node %s is this node: ask another node to remove it, or make it leave "
                 "(ringkv cluster leave, POST /cluster/leave)",
                 t->name);
    else
        snprintf(msg, sizeof msg,
                 "node %s is not down as this node sees it (it is %s): only a dead node can be "
                 "removed; a running one leaves (ringkv cluster leave, POST /cluster/leave, on "
                 "that node)",
                 t->name, cluster_liveness_name(t->liveness));
    http_reply_error(rq, 409, "conflict", msg);
}

void http_handle_cluster_remove(request *rq)
{
    remove_target t;
    if (remove_target_of(rq, &t) != RK_OK)
        return;
    rk_err err = sync_remove(rq->srv->sync, t.id);
    /* RK_EINVAL is not a bad request here (the body was fine) but a node
     * that cannot be removed: a conflict, like RK_EBUSY. */
    if (err == RK_EINVAL || err == RK_EBUSY) {
        reply_remove_refused(rq, err, &t);
        return;
    }
    if (err == RK_ENOTFOUND) {
        http_reply_error(rq, 404, "not_found", "that node is no longer in the cluster");
        return;
    }
    if (err != RK_OK) {
        http_reply_err(rq, err);
        return;
    }
    RK_INFO("http", "remove of node %s (%016llx) requested by %s", t.name, (unsigned long long)t.id,
            rq->ri->remote_addr);
    reply_buf b = {0};
    http_reply_add_str(&b, "{\"removed\":");
    http_reply_add_json_cstr(&b, t.name);
    http_reply_addf(&b, ",\"id\":\"%016llx\"}", (unsigned long long)t.id);
    http_reply_json(rq, 200, NULL, &b);
    http_reply_buf_free(&b);
}

void http_handle_cluster_repair(request *rq)
{
    sync_repair_now(rq->srv->sync);
    static const char body[] = "{\"repair\":\"started\"}";
    http_reply_send(rq, 202, "application/json", NULL, body, sizeof body - 1);
}

/* Hints live in the store: kv drops them, not the sync service that
 * delivers them (a node alone holds none: {"dropped": 0}). One range
 * delete for every
 * target (kv_drop_hints with id 0) rather than one per target: the same
 * result, and a hint written for a new target meanwhile goes too, which
 * is what "drop every hint" asks for. */
void http_handle_hints_drop(request *rq)
{
    uint64_t dropped = 0;
    rk_err err = kv_drop_hints(rq->srv->k, 0, &dropped);
    if (err != RK_OK) {
        http_reply_err(rq, err);
        return;
    }
    RK_INFO("http", "%llu hints dropped, requested by %s", (unsigned long long)dropped,
            rq->ri->remote_addr);
    char body[64];
    int n = snprintf(body, sizeof body, "{\"dropped\":%llu}", (unsigned long long)dropped);
    http_reply_send(rq, 200, "application/json", NULL, body, (size_t)n);
}
