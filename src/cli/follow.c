/* follow.c - `ringkv cluster leave` and `remove` wait until the change has
 * settled: every poll interval, one round of GET /cluster to the members
 * (change.c reads the answers), and the progress on stdout: a bar redrawn
 * in place on a terminal, a plain line per change of state in a pipe.
 *
 *   cli_follow_open: list the members, one round for the counters before
 *                    the change  ──(the caller POSTs the change)──>
 *   cli_follow_run:  round, show ──> settled?  yes: summary, exit 0
 *                      ^               │ no
 *                      └── pause ──────┤ --timeout passed: exit 5
 *                                      └ SIGINT/SIGTERM:   exit 130
 *
 * Stopping early stops only the waiting: the change goes on in the
 * cluster, and each way out says so. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "change.h"

#define BAR_WIDTH 24     /* characters between the brackets, room permitting */
#define BAR_MIN_WIDTH 10 /* narrower, the text is cut instead */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* One GET /cluster to member i -> *s (answered false when it gave no
 * usable answer; *why says why). */
static void ask(cli_follow *f, size_t i, const char *target_id, cli_change_sample *s, char *why,
                size_t why_len)
{
    const cli_member *m = &f->members[i];
    *s = (cli_change_sample){0};
    if (m->url == NULL) {
        snprintf(why, why_len, "its address '%s' is not HOST:PORT", m->address);
        return;
    }
    rk_buf url = {0};
    cli_http_response r = {0};
    rk_err err = rk_buf_appendf(&url, "%s/cluster", m->url);
    if (err == RK_OK) {
        cli_http_request req = {
            .method = "GET",
            .url = url.data,
            .headers = f->o->headers,
            .timeout_ms = f->o->request_timeout_ms,
            .cancel = &stop_requested,
        };
        err = cli_http_request_do(f->h, &req, &r, why, why_len);
    } else {
        snprintf(why, why_len, "out of memory");
    }
    rk_buf_free(&url);
    if (err == RK_OK && r.status != 200) {
        char msg[256];
        cli_http_error_summary(&r, msg, sizeof msg);
        snprintf(why, why_len, "answered %d: %.200s", r.status, msg);
    } else if (err == RK_OK) {
        cJSON *view = cJSON_ParseWithLength(r.body.data ? r.body.data : "", r.body.len);
        if (view == NULL || cli_change_sample_of(view, target_id, s) != RK_OK)
            snprintf(why, why_len, "answered 200 with no cluster view");
        cJSON_Delete(view);
    }
    cli_http_response_free(&r);
}

/* Ends a bar drawn on the terminal, so that what follows starts a line. */
static void end_bar(cli_follow *f, size_t *bar_len)
{
    if (*bar_len > 0) {
        fputc('\n', f->o->out);
        fflush(f->o->out);
        *bar_len = 0;
    }
}

/* One round: every member but a dead target. The first time a member
 * other than the target gives no answer, stderr says so. */
static void round_of(cli_follow *f, const char *target_id, bool during, size_t *bar_len)
{
    cli_change_begin_round(&f->change);
    for (size_t i = 0; i < f->n && !stop_requested; i++) {
        const cli_change_member *cm = &f->change.members[i];
        if ((cm->is_target && f->o->kind == CLI_CHANGE_REMOVE) || f->members[i].down)
            continue; /* down: that is why a node is removed */
        cli_change_sample s;
        char why[256] = "";
        ask(f, i, target_id, &s, why, sizeof why);
        cli_change_observe(&f->change, i, &s);
        /* A leaving node stops by itself at the end: no news. Before the
         * change, a member that does not answer may be the one removed. */
        if (!s.answered && during && !cm->is_target && !f->warned[i] && !stop_requested) {
            f->warned[i] = true;
            end_bar(f, bar_len);
            fprintf(stderr,
                    "ringkv: member %s (%s) does not answer (%s); following the change on "
                    "the others\n",
                    f->members[i].name, f->members[i].address, why);
        }
    }
}

int cli_follow_open(cli_follow *f, cli_http *h, const cli_follow_options *o, const cJSON *view,
                    const char *asked_address)
{
    *f = (cli_follow){.h = h, .o = o};
    rk_err err = cli_members_to_follow(view, asked_address, &f->members, &f->n);
    if (err == RK_EINVAL) {
        fprintf(stderr, "ringkv: node %s answered /cluster without members\n", asked_address);
        return EXIT_SERVER;
    }
    if (err == RK_OK) {
        f->warned = calloc(f->n ? f->n : 1, sizeof *f->warned);
        err = f->warned == NULL ? RK_ENOMEM : RK_OK;
    }
    if (err == RK_OK)
        err = cli_change_init(&f->change, o->kind, NULL, f->n);
    if (err != RK_OK) {
        cli_follow_close(f);
        fputs("ringkv: out of memory\n", stderr);
        return EXIT_SERVER;
    }
    size_t no_bar = 0;
    stop_requested = 0;
    round_of(f, NULL, false, &no_bar);
    f->started_ms = rk_monotonic_ms();
    return EXIT_OK;
}

void cli_follow_close(cli_follow *f)
{
    cli_members_free(f->members, f->n);
    free(f->warned);
    cli_change_fini(&f->change);
    memset(f, 0, sizeof *f);
}

/* Sleeps ms, or less when SIGINT or SIGTERM comes. */
static void pause_ms(int ms)
{
    struct timespec left = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (!stop_requested && nanosleep(&left, &left) != 0 && errno == EINTR)
        continue;
}

/* Draws the bar in place: \r, the line made to fit the terminal's width
 * (a line that wraps could not be redrawn), narrowing the bar first and
 * cutting the text only then, and spaces over the rest of the previous
 * one. */
static rk_err draw_bar(cli_follow *f, const cli_change_progress *p, uint64_t elapsed,
                       size_t *bar_len, rk_buf *line)
{
    size_t room = f->o->columns > 1 ? (size_t)f->o->columns - 1 : 79;
    rk_buf_reset(line);
    rk_err err = cli_change_bar(&f->change, p, elapsed, f->bar_width, line);
    if (err == RK_OK && line->len > room && f->bar_width > BAR_MIN_WIDTH) {
        /* Narrowed for good: a bar that changed width every redraw would
         * jump about. */
        size_t over = line->len - room;
        int less = over < (size_t)(f->bar_width - BAR_MIN_WIDTH) ? (int)over
                                                                 : f->bar_width - BAR_MIN_WIDTH;
        f->bar_width -= less;
        rk_buf_reset(line);
        err = cli_change_bar(&f->change, p, elapsed, f->bar_width, line);
    }
    if (err != RK_OK)
        return err;
    size_t len = line->len < room ? line->len : room;
    fputc('\r', f->o->out);
    fwrite(line->data, 1, len, f->o->out);
    for (size_t k = len; k < *bar_len; k++)
        fputc(' ', f->o->out);
    *bar_len = len > 0 ? len : 1;
    return fflush(f->o->out) == 0 ? RK_OK : RK_EIO;
}

static rk_err print_line(FILE *out, rk_buf *line)
{
    if (rk_buf_append(line, "\n", 1) != RK_OK)
        return RK_ENOMEM;
    fwrite(line->data, 1, line->len, out);
    return fflush(out) == 0 && !ferror(out) ? RK_OK : RK_EIO;
}

static const char *what_of(cli_change_kind kind)
{
    return kind == CLI_CHANGE_LEAVE ? "leave" : "remove";
}

/* What is on the screen: the bar, or the last plain line. */
struct screen {
    rk_buf line;
    size_t bar_len;              /* characters of the bar on the terminal; 0: none */
    cli_change_progress printed; /* of the last plain line */
    bool have_printed;
    uint64_t printed_at;
};

/* Shows p: redraws the bar, or prints a plain line if the state changed
 * (cli_change_worth_a_line); once settled, the summary instead. */
static rk_err show(cli_follow *f, struct screen *sc, const cli_change_progress *p, uint64_t now)
{
    uint64_t elapsed = now - f->started_ms;
    rk_err err = RK_OK;
    if (f->o->tty) {
        err = draw_bar(f, p, elapsed, &sc->bar_len, &sc->line);
    } else if (p->phase != CLI_CHANGE_DONE &&
               cli_change_worth_a_line(sc->have_printed ? &sc->printed : NULL, p,
                                       now - sc->printed_at)) {
        rk_buf_reset(&sc->line);
        err = cli_change_line(&f->change, p, elapsed, &sc->line);
        if (err == RK_OK)
            err = print_line(f->o->out, &sc->line);
        sc->printed = *p;
        sc->printed_at = now;
        sc->have_printed = true;
    }
    if (err == RK_OK && p->phase == CLI_CHANGE_DONE) {
        end_bar(f, &sc->bar_len);
        rk_buf_reset(&sc->line);
        err = cli_change_summary(&f->change, p, elapsed, &sc->line);
        if (err == RK_OK)
            err = print_line(f->o->out, &sc->line);
    }
    return err;
}

/* Says on stderr why the waiting stopped and that the change goes on;
 * returns the exit status. */
static int give_up(cli_follow *f, struct screen *sc, const cli_change_progress *p, uint64_t now)
{
    const char *what = what_of(f->o->kind), *who = f->change.target;
    end_bar(f, &sc->bar_len);
    if (stop_requested) {
        fprintf(stderr,
                "ringkv: stopped waiting; the %s of %s goes on in the cluster (follow it "
                "with: ringkv cluster status)\n",
                what, who);
        return EXIT_INTERRUPTED;
    }
    rk_buf_reset(&sc->line);
    rk_err err = cli_change_line(&f->change, p, now - f->started_ms, &sc->line);
    fprintf(stderr,
            "ringkv: the %s of %s has not settled after %llu s (%s); it goes on in the cluster "
            "(follow it with: ringkv cluster status)\n",
            what, who, (unsigned long long)(f->o->timeout_ms / 1000),
            err == RK_OK ? sc->line.data : "?");
    return EXIT_NOT_SETTLED;
}

int cli_follow_run(cli_follow *f, const char *target_id, const char *target_name)
{
    const cli_follow_options *o = f->o;
    snprintf(f->change.target, sizeof f->change.target, "%s", target_name ? target_name : "?");
    f->bar_width = BAR_WIDTH;
    cli_change_set_target(&f->change, cli_members_find(f->members, f->n, target_id));

    /* SA_RESTART keeps a write to stdout from failing with EINTR;
     * nanosleep and the poll inside libcurl return early whatever it says,
     * which is what makes a stop quick (as in watch.c). */
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART}, old[2];
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old[0]);
    sigaction(SIGTERM, &sa, &old[1]);
    stop_requested = 0;

    struct screen sc = {0};
    cli_change_progress p;
    int rc;
    for (;;) {
        round_of(f, target_id, true, &sc.bar_len);
        uint64_t now = rk_monotonic_ms(), elapsed = now - f->started_ms;
        cli_change_progress_of(&f->change, &p);
        rk_err err = stop_requested ? RK_OK : show(f, &sc, &p, now);
        if (err != RK_OK) {
            end_bar(f, &sc.bar_len);
            if (err == RK_ENOMEM)
                fputs("ringkv: out of memory\n", stderr);
            rc = EXIT_SERVER; /* or stdout failed: main says so */
            break;
        }
        if (!stop_requested && p.phase == CLI_CHANGE_DONE) {
            rc = EXIT_OK;
            break;
        }
        if (stop_requested || elapsed >= o->timeout_ms) {
            rc = give_up(f, &sc, &p, now);
            break;
        }
        uint64_t left = o->timeout_ms - elapsed;
        pause_ms(left < (uint64_t)o->poll_ms ? (int)left : o->poll_ms);
    }
    sigaction(SIGINT, &old[0], NULL);
    sigaction(SIGTERM, &old[1], NULL);
    rk_buf_free(&sc.line);
    return rc;
}
