/* change.h - what the CLI's cluster commands share: the members of a
 * GET /cluster answer (members.c), how far a leave or a remove has got
 * (change.c, pure: no network), and following one until it has settled
 * (follow.c, which polls the members).
 *
 * A change is followed by asking every member that is not removed for
 * its GET /cluster, one round every poll interval. Each answer becomes a
 * cli_change_sample; cli_change keeps the first and the latest sample of
 * every member and says which phase the change is in:
 *
 *   leave:   HANDOFF ──target removed in some view──> SPREADING
 *   remove:  (POST answered) ───────────────────────> SPREADING
 *            SPREADING ──every other member that answers sees it removed──> SETTLING
 *            SETTLING ──no member has ranges pending, and they agree on the ring──> DONE
 *
 * (each phase may also jump ahead: all is computed from the last round,
 * in cli_change_progress_of). */
#ifndef RINGKV_CLI_CHANGE_H
#define RINGKV_CLI_CHANGE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli_internal.h"
#include "ringkv/common.h"

/* ---- members.c --------------------------------------------------------- */

/* A member of the cluster as the CLI asks it. */
typedef struct cli_member {
    char *name;    /* "" when the answer had none */
    char *id;      /* 16 hex digits as the node prints them; "" when none */
    char *address; /* HOST:PORT to ask: the one the user gave for the node
                    * that answered, the member's "http" for the others */
    char *url;     /* "http://HOST:PORT"; NULL when address is not usable */
    bool self;     /* the node whose answer this list came from */
    bool down;     /* that node sees it down: not asked (it would only
                    * cost a connect timeout per round) */
} cli_member;

/* The "members" items of a GET /cluster answer, sorted by name (byte
 * order), then id; members without a name come last. Returns RK_OK with
 * *out (an array of *n pointers into view; free() it) and *n, RK_EINVAL
 * when view has no "members" array, RK_ENOMEM. */
rk_err cli_members_sorted(const cJSON *view, const cJSON ***out, size_t *n);

/* The members of view that a change is followed on: every one that is
 * not removed, in the answer's order, those it sees down marked so. The member marked "self" gets
 * asked_address (the address the CLI reached it on: its advertised one
 * may not be reachable from here). Returns RK_OK with *out (free with
 * cli_members_free) and *n; RK_EINVAL when view has no "members" array;
 * RK_ENOMEM. */
rk_err cli_members_to_follow(const cJSON *view, const char *asked_address, cli_member **out,
                             size_t *n);

/* Frees what cli_members_to_follow made. NULL is allowed. */
void cli_members_free(cli_member *members, size_t n);

/* The index of the member with id (compared without case), or n. */
size_t cli_members_find(const cli_member *members, size_t n, const char *id);

/* ---- change.c ---------------------------------------------------------- */

typedef enum cli_change_kind {
    CLI_CHANGE_LEAVE,  /* the target hands its ranges off, then stops */
    CLI_CHANGE_REMOVE, /* the target is dead; the others take it out */
} cli_change_kind;

typedef enum cli_change_phase {
    CLI_CHANGE_HANDOFF,   /* the leaving node still hands its ranges off */
    CLI_CHANGE_SPREADING, /* removed, but not every member knows yet */
    CLI_CHANGE_SETTLING,  /* every member knows; ranges pending or rings differ */
    CLI_CHANGE_DONE,
} cli_change_phase;

/* One member's GET /cluster answer, reduced to what a change needs. */
typedef struct cli_change_sample {
    bool answered;          /* false: no answer this round; the rest is unset */
    char target_status[16]; /* the target's status in this view; "" if unlisted */
    char ring_version[24];  /* "" when the answer has none */
    uint64_t partitions;
    uint64_t ranges_pending, handoff_keys_sent, keys_received;
} cli_change_sample;

/* Reads a GET /cluster answer. target_id may be NULL or "" (not known
 * yet: target_status is then ""). Missing sync counters count as 0.
 * Returns RK_OK with *out set, or RK_EINVAL when view has no "members"
 * array (not a /cluster answer). */
rk_err cli_change_sample_of(const cJSON *view, const char *target_id, cli_change_sample *out);

typedef struct cli_change_member {
    bool is_target;
    bool seen;                         /* has answered at least once */
    bool answered_now;                 /* answered in the latest round */
    uint64_t base_sent, base_received; /* counters of its first answer */
    uint64_t max_pending;              /* the most ranges pending it reported */
    cli_change_sample last;            /* its latest answer */
} cli_change_member;

/* A change followed on n members. */
typedef struct cli_change {
    cli_change_kind kind;
    char target[64]; /* the target's name, for the lines */
    cli_change_member *members;
    size_t n;
} cli_change;

/* How far the change has got after the latest round. */
typedef struct cli_change_progress {
    cli_change_phase phase;
    /* Ranges to hand off. Leave: the ring's ranges (the leaving node
     * hands every one to the next ring's replicas), or more if the
     * members reported more. Remove: the most the members reported. */
    uint64_t ranges_total, ranges_done, ranges_pending;
    uint64_t keys_moved; /* since the first round (see cli_change_progress_of) */
    size_t answering;    /* members other than the target that answered */
    size_t knowing;      /* of them, those whose view has the target removed */
} cli_change_progress;

/* Sets c up for n members, target_name being what the lines call the
 * target. RK_OK (free with cli_change_fini), RK_ENOMEM. */
rk_err cli_change_init(cli_change *c, cli_change_kind kind, const char *target_name, size_t n);

void cli_change_fini(cli_change *c);

/* Marks member i as the target (i >= n: the target is none of them). */
void cli_change_set_target(cli_change *c, size_t i);

/* Starts a round: no member has answered it yet. */
void cli_change_begin_round(cli_change *c);

/* Records member i's answer of this round (s->answered false: none). */
void cli_change_observe(cli_change *c, size_t i, const cli_change_sample *s);

/* Where the change is after the latest round. Keys moved is the larger
 * of the sums, over the members, of what handoff_keys_sent and of what
 * keys_received grew by since each member's first answer: a key handed
 * off counts on both sides, a key that anti-entropy copied only where it
 * arrived. */
void cli_change_progress_of(const cli_change *c, cli_change_progress *out);

/* Appends the plain line of p (no newline), e.g.
 *   "node2 leaving: 41234 ranges pending (24302 of 65536 done), 5120 keys moved, 1.2 s"
 * RK_ENOMEM. */
rk_err cli_change_line(const cli_change *c, const cli_change_progress *p, uint64_t elapsed_ms,
                       rk_buf *out);

/* Appends the terminal's progress bar of p (no newline, no \r), its bar
 * bar_width characters between brackets, e.g.
 *   "node2 leaving [#########-----------]  45% 41234 ranges pending, 5120 keys moved, 1.2 s"
 * RK_ENOMEM. */
rk_err cli_change_bar(const cli_change *c, const cli_change_progress *p, uint64_t elapsed_ms,
                      int bar_width, rk_buf *out);

/* The bar's share, in percent (0..100): ranges done of the total; while
 * there is none to hand off, members that know of the total answering. */
unsigned cli_change_percent(const cli_change_progress *p);

/* Appends the closing line (no newline), e.g.
 *   "node2 left: 65536 ranges handed off, 12034 keys moved in 4.2 s"
 * RK_ENOMEM. */
rk_err cli_change_summary(const cli_change *c, const cli_change_progress *p, uint64_t elapsed_ms,
                          rk_buf *out);

/* Plain output prints a line when the state changed, not every round: at
 * once when the phase or the members that know changed, and at most
 * every CLI_CHANGE_LINE_EVERY_MS while only the numbers move (a long
 * handoff). last: the progress of the last line printed, NULL if none. */
#define CLI_CHANGE_LINE_EVERY_MS 1000
bool cli_change_worth_a_line(const cli_change_progress *last, const cli_change_progress *now,
                             uint64_t ms_since_last);

/* ---- follow.c ---------------------------------------------------------- */

typedef struct cli_follow_options {
    cli_change_kind kind;
    const char *const *headers; /* of each GET /cluster, NULL-terminated */
    int request_timeout_ms;     /* of one GET */
    uint64_t timeout_ms;        /* give up waiting after this long */
    int poll_ms;                /* between rounds */
    FILE *out;                  /* progress and summary (stdout) */
    bool tty;                   /* out is a terminal: a bar redrawn with \r */
    int columns;                /* the terminal's width (tty only) */
} cli_follow_options;

typedef struct cli_follow {
    cli_http *h;
    const cli_follow_options *o;
    cli_member *members; /* the members of the view given to cli_follow_open */
    size_t n;
    bool *warned; /* said on stderr that member i does not answer */
    cli_change change;
    uint64_t started_ms;
    int bar_width; /* of the terminal's bar; only ever narrows */
} cli_follow;

/* Makes the list of members to follow from view (the answer of the node
 * at asked_address) and asks each for its counters before the change
 * starts. Call it just before the POST. Returns EXIT_OK (free with
 * cli_follow_close), or EXIT_SERVER with a message (then f needs no
 * close). */
int cli_follow_open(cli_follow *f, cli_http *h, const cli_follow_options *o, const cJSON *view,
                    const char *asked_address);

/* Once the change was accepted: polls the members until it has settled,
 * showing the progress on o->out, then prints the summary. target_id and
 * target_name say whom it is about. Returns EXIT_OK once settled;
 * EXIT_NOT_SETTLED after o->timeout_ms; EXIT_INTERRUPTED on SIGINT or
 * SIGTERM (handlers installed while it waits); EXIT_SERVER when out of
 * memory or stdout fails. Each says on stderr that the change goes on. */
int cli_follow_run(cli_follow *f, const char *target_id, const char *target_name);

void cli_follow_close(cli_follow *f);

#endif
