/* change.c - how far a leave or a remove has got, from the members'
 * GET /cluster answers, and the lines that say so. Pure: follow.c does
 * the polling and the printing (the phases are drawn in change.h). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "change.h"

/* ---- samples ------------------------------------------------------------- */

static uint64_t counter_of(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    /* Counters are whole numbers; anything else (absent, negative, text)
     * counts as none. */
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble : 0;
}

static void copy_string(char *dst, size_t size, const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    snprintf(dst, size, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

rk_err cli_change_sample_of(const cJSON *view, const char *target_id, cli_change_sample *out)
{
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(view, "members");
    if (!cJSON_IsArray(members))
        return RK_EINVAL;
    cli_change_sample s = {.answered = true};
    const cJSON *m;
    cJSON_ArrayForEach(m, members)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
        if (target_id != NULL && target_id[0] != '\0' && cJSON_IsString(id) &&
            strcasecmp(id->valuestring, target_id) == 0) {
            copy_string(s.target_status, sizeof s.target_status, m, "status");
            break;
        }
    }
    copy_string(s.ring_version, sizeof s.ring_version, view, "ring_version");
    s.partitions = counter_of(view, "partitions");
    const cJSON *sync = cJSON_GetObjectItemCaseSensitive(view, "sync");
    s.ranges_pending = counter_of(sync, "ranges_pending");
    s.handoff_keys_sent = counter_of(sync, "handoff_keys_sent");
    s.keys_received = counter_of(sync, "keys_received");
    *out = s;
    return RK_OK;
}

/* ---- the change ---------------------------------------------------------- */

rk_err cli_change_init(cli_change *c, cli_change_kind kind, const char *target_name, size_t n)
{
    *c = (cli_change){.kind = kind, .n = n};
    snprintf(c->target, sizeof c->target, "%s", target_name ? target_name : "?");
    c->members = calloc(n ? n : 1, sizeof *c->members);
    return c->members != NULL ? RK_OK : RK_ENOMEM;
}

void cli_change_fini(cli_change *c)
{
    free(c->members);
    c->members = NULL;
    c->n = 0;
}

void cli_change_set_target(cli_change *c, size_t i)
{
    for (size_t k = 0; k < c->n; k++)
        c->members[k].is_target = k == i;
}

void cli_change_begin_round(cli_change *c)
{
    for (size_t k = 0; k < c->n; k++)
        c->members[k].answered_now = false;
}

void cli_change_observe(cli_change *c, size_t i, const cli_change_sample *s)
{
    if (i >= c->n)
        return;
    cli_change_member *m = &c->members[i];
    m->answered_now = s->answered;
    if (!s->answered)
        return;
    if (!m->seen) {
        m->seen = true;
        m->base_sent = s->handoff_keys_sent;
        m->base_received = s->keys_received;
    }
    if (s->ranges_pending > m->max_pending)
        m->max_pending = s->ranges_pending;
    m->last = *s;
}

/* How much a counter grew since the first answer; a node that restarted
 * (its counters start again from 0) adds nothing rather than wrapping. */
static uint64_t grown(uint64_t now, uint64_t base)
{
    return now > base ? now - base : 0;
}

void cli_change_progress_of(const cli_change *c, cli_change_progress *out)
{
    cli_change_progress p = {0};
    uint64_t sent = 0, received = 0, pending = 0, most = 0, partitions = 0;
    uint64_t target_pending = 0;
    bool target_seen_pending = false, removed_somewhere = false, agree = true;
    const char *version = NULL;
    for (size_t k = 0; k < c->n; k++) {
        const cli_change_member *m = &c->members[k];
        most += m->max_pending;
        if (!m->seen)
            continue;
        sent += grown(m->last.handoff_keys_sent, m->base_sent);
        received += grown(m->last.keys_received, m->base_received);
        if (m->is_target) {
            partitions = m->last.partitions;
            target_pending = m->last.ranges_pending;
            target_seen_pending = m->max_pending > 0;
        }
        if (!m->answered_now)
            continue;
        bool removed = strcmp(m->last.target_status, "removed") == 0;
        removed_somewhere |= removed;
        pending += m->last.ranges_pending;
        if (m->is_target)
            continue; /* it will stop: what the others think is what counts */
        p.answering++;
        p.knowing += removed;
        if (version == NULL)
            version = m->last.ring_version;
        else if (strcmp(version, m->last.ring_version) != 0)
            agree = false;
    }
    p.keys_moved = sent > received ? sent : received;

    bool all_know = p.answering > 0 && p.knowing == p.answering;
    if (all_know && pending == 0 && agree)
        p.phase = CLI_CHANGE_DONE;
    else if (all_know)
        p.phase = CLI_CHANGE_SETTLING;
    else if (c->kind == CLI_CHANGE_REMOVE || removed_somewhere)
        p.phase = CLI_CHANGE_SPREADING;
    else
        p.phase = CLI_CHANGE_HANDOFF;

    p.ranges_pending = pending;
    if (c->kind == CLI_CHANGE_LEAVE) {
        /* The leaving node is a replica of no range in the next ring, so
         * it owes every range of the ring (sync_duty_of): its progress is
         * out of the ring's ranges. What other members report pending
         * meanwhile (ranges they too hand on as the ring changes) is in
         * ranges_pending and holds the change in SETTLING, but is not the
         * leaving node's work done. */
        p.ranges_total = partitions > 0 ? partitions : most;
        if (p.phase != CLI_CHANGE_HANDOFF)
            target_pending = 0; /* it marks itself removed once all are sent */
        else if (!target_seen_pending)
            /* Asked before its first pass counted them: none is sent yet. */
            target_pending = p.ranges_total;
        if (p.phase == CLI_CHANGE_HANDOFF)
            p.ranges_pending = pending > target_pending ? pending : target_pending;
        p.ranges_done =
            p.ranges_total - (target_pending < p.ranges_total ? target_pending : p.ranges_total);
    } else {
        p.ranges_total = most;
        p.ranges_done = most - (pending < most ? pending : most);
    }
    *out = p;
}

/* ---- what the user sees -------------------------------------------------- */

static rk_err append_phase(rk_buf *b, const cli_change *c, const cli_change_progress *p)
{
    switch (p->phase) {
    case CLI_CHANGE_HANDOFF: return rk_buf_appendf(b, "%s leaving", c->target);
    case CLI_CHANGE_SPREADING:
        if (p->answering == 0)
            return rk_buf_appendf(b, "%s removed, no other member answers", c->target);
        return rk_buf_appendf(b, "%s removed, %zu of %zu members know", c->target, p->knowing,
                              p->answering);
    case CLI_CHANGE_SETTLING:
        return rk_buf_appendf(b, "%s removed, waiting for %zu members to agree", c->target,
                              p->answering);
    case CLI_CHANGE_DONE: break;
    }
    return rk_buf_appendf(b, "%s %s", c->target, c->kind == CLI_CHANGE_LEAVE ? "left" : "removed");
}

static double seconds(uint64_t ms)
{
    return (double)ms / 1000.0;
}

rk_err cli_change_line(const cli_change *c, const cli_change_progress *p, uint64_t elapsed_ms,
                       rk_buf *out)
{
    rk_err err = append_phase(out, c, p);
    if (err == RK_OK)
        err = rk_buf_appendf(out, ": %llu ranges pending", (unsigned long long)p->ranges_pending);
    if (err == RK_OK && p->ranges_total > 0)
        err = rk_buf_appendf(out, " (%llu of %llu done)", (unsigned long long)p->ranges_done,
                             (unsigned long long)p->ranges_total);
    if (err == RK_OK)
        err = rk_buf_appendf(out, ", %llu keys moved, %.1f s", (unsigned long long)p->keys_moved,
                             seconds(elapsed_ms));
    return err;
}

unsigned cli_change_percent(const cli_change_progress *p)
{
    if (p->phase == CLI_CHANGE_DONE)
        return 100;
    uint64_t part = p->ranges_done, whole = p->ranges_total;
    if (whole == 0) {
        part = p->knowing;
        whole = p->answering;
    }
    if (whole == 0)
        return 0;
    unsigned pct = (unsigned)(part * 100 / whole);
    /* 100% means settled: never show it a round early. */
    return pct >= 100 ? 99 : pct;
}

rk_err cli_change_bar(const cli_change *c, const cli_change_progress *p, uint64_t elapsed_ms,
                      int bar_width, rk_buf *out)
{
    if (bar_width < 1)
        bar_width = 1;
    unsigned pct = cli_change_percent(p);
    int filled = (int)((unsigned)bar_width * pct / 100);
    rk_err err = append_phase(out, c, p);
    if (err == RK_OK)
        err = rk_buf_appends(out, " [");
    for (int i = 0; err == RK_OK && i < bar_width; i++)
        err = rk_buf_append(out, i < filled ? "#" : "-", 1);
    if (err == RK_OK)
        err = rk_buf_appendf(out, "] %3u%% %llu ranges pending, %llu keys moved, %.1f s", pct,
                             (unsigned long long)p->ranges_pending,
                             (unsigned long long)p->keys_moved, seconds(elapsed_ms));
    return err;
}

rk_err cli_change_summary(const cli_change *c, const cli_change_progress *p, uint64_t elapsed_ms,
                          rk_buf *out)
{
    if (c->kind == CLI_CHANGE_LEAVE)
        return rk_buf_appendf(out, "%s left: %llu ranges handed off, %llu keys moved in %.1f s",
                              c->target, (unsigned long long)p->ranges_done,
                              (unsigned long long)p->keys_moved, seconds(elapsed_ms));
    return rk_buf_appendf(out,
                          "%s removed: %zu members agree on the ring, %llu ranges handed off, "
                          "%llu keys moved in %.1f s",
                          c->target, p->answering, (unsigned long long)p->ranges_done,
                          (unsigned long long)p->keys_moved, seconds(elapsed_ms));
}

bool cli_change_worth_a_line(const cli_change_progress *last, const cli_change_progress *now,
                             uint64_t ms_since_last)
{
    if (last == NULL)
        return true;
    if (now->phase != last->phase || now->knowing != last->knowing ||
        now->answering != last->answering)
        return true;
    bool moved = now->ranges_pending != last->ranges_pending ||
                 now->ranges_done != last->ranges_done || now->keys_moved != last->keys_moved;
    return moved && ms_since_last >= CLI_CHANGE_LINE_EVERY_MS;
}
