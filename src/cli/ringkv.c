/* ringkv.c - the ringkv command-line client: put, get, del, keys, watch and the cluster
 * commands (status, leave, remove, repair) over HTTP. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "change.h"
#include "cli_internal.h"
#include "ringkv/common.h"

#ifndef RINGKV_VERSION
#define RINGKV_VERSION "unknown"
#endif

#define DEFAULT_NODES "127.0.0.1:8001"
#define DEFAULT_TABLE "default"
#define DEFAULT_TIMEOUT_MS 5000
#define MAX_WATCH_KEYS 10000 /* what one subscription may name (docs/api.md) */
#define WATCH_IDLE_MS 15000  /* the node pings every 5 s: three missed pings, it is gone */
#define WATCH_BACKOFF_MIN_MS 200
#define WATCH_BACKOFF_MAX_MS 2000
#define MAX_CMD_OPTIONS 32
#define CHANGE_TIMEOUT_S 600 /* cluster leave/remove: how long to wait for it to settle */
#define CHANGE_POLL_MS 200

/* ---- command line -------------------------------------------------------- */

enum command_bit {
    CMD_PUT = 1 << 0,
    CMD_GET = 1 << 1,
    CMD_DEL = 1 << 2,
    CMD_KEYS = 1 << 3,
    CMD_CLUSTER = 1 << 4,
    CMD_HELP = 1 << 5,
    CMD_WATCH = 1 << 6,
    CMD_ANY = 0xff, /* a global option */
};

enum option_id {
    OPT_NODES,
    OPT_TABLE,
    OPT_TIMEOUT,
    OPT_TOKEN,
    OPT_VERBOSE,
    OPT_HELP,
    OPT_VERSION,
    OPT_STRING,
    OPT_JSON,
    OPT_CONTEXT,
    OPT_IF_NONE_MATCH,
    OPT_IF_MATCH,
    OPT_W,
    OPT_R,
    OPT_SIBLINGS,
    OPT_LOCAL,
    OPT_LIMIT,
    OPT_AFTER,
    OPT_ALL,
    OPT_COUNT,
    OPT_NO_WAIT,
    OPT_WAIT_TIMEOUT,
};

struct option_spec {
    const char *name; /* long name without dashes */
    char short_name;  /* 0 if none */
    bool takes_value;
    enum option_id id;
    unsigned commands; /* the commands it applies to */
};

static const struct option_spec option_specs[] = {
    {"nodes", 0, true, OPT_NODES, CMD_ANY},
    {"table", 0, true, OPT_TABLE, CMD_ANY},
    {"timeout-ms", 0, true, OPT_TIMEOUT, CMD_ANY},
    {"token", 0, true, OPT_TOKEN, CMD_ANY},
    {"verbose", 'v', false, OPT_VERBOSE, CMD_ANY},
    {"help", 'h', false, OPT_HELP, CMD_ANY},
    {"version", 0, false, OPT_VERSION, CMD_ANY},
    {"string", 0, false, OPT_STRING, CMD_PUT},
    {"json", 0, false, OPT_JSON, CMD_PUT | CMD_WATCH},
    {"context", 0, true, OPT_CONTEXT, CMD_PUT | CMD_DEL},
    {"if-none-match", 0, false, OPT_IF_NONE_MATCH, CMD_PUT},
    {"if-match", 0, true, OPT_IF_MATCH, CMD_PUT | CMD_DEL},
    {"w", 0, true, OPT_W, CMD_PUT | CMD_DEL},
    {"r", 0, true, OPT_R, CMD_GET},
    {"siblings", 0, false, OPT_SIBLINGS, CMD_GET},
    {"local", 0, false, OPT_LOCAL, CMD_GET},
    {"limit", 0, true, OPT_LIMIT, CMD_KEYS},
    {"after", 0, true, OPT_AFTER, CMD_KEYS},
    {"all", 0, false, OPT_ALL, CMD_KEYS},
    {"count", 0, true, OPT_COUNT, CMD_WATCH},
    {"no-wait", 0, false, OPT_NO_WAIT, CMD_CLUSTER},
    {"timeout", 0, true, OPT_WAIT_TIMEOUT, CMD_CLUSTER},
};

struct args {
    /* global */
    const char *nodes, *table, *token;
    int timeout_ms;
    bool verbose, help, version;
    /* the command and its arguments */
    const struct command *cmd;
    const char **pos; /* room for every argument of the line */
    size_t n_pos;
    /* command options */
    const char *context, *if_match, *after;
    bool force_string, force_json, if_none_match, siblings, local, all, no_wait;
    uint64_t w, r, limit, count, wait_timeout_s; /* 0: not given */
    /* Command options seen, checked against the command once it is known
     * (options may come before it). */
    const struct option_spec *cmd_opts[MAX_CMD_OPTIONS];
    const char *cmd_opt_args[MAX_CMD_OPTIONS];
    size_t n_cmd_opts;
};

struct client;
typedef int (*command_fn)(struct client *c, const struct args *a);

struct command {
    const char *name;
    unsigned bit;
    size_t min_pos, max_pos;
    command_fn run;
    const char *help;
};

static int cmd_put(struct client *c, const struct args *a);
static int cmd_get(struct client *c, const struct args *a);
static int cmd_del(struct client *c, const struct args *a);
static int cmd_keys(struct client *c, const struct args *a);
static int cmd_cluster(struct client *c, const struct args *a);
static int cmd_watch(struct client *c, const struct args *a);

static const char global_help[] =
    "Usage: ringkv [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Command-line client of ringkv, a Dynamo-style key-value store.\n"
    "\n"
    "Commands:\n"
    "  put KEY [VALUE]   store VALUE (read from stdin when omitted or -)\n"
    "  get KEY           print the value of KEY as JSON\n"
    "  del KEY           delete KEY\n"
    "  keys              list the keys of the table, one per line\n"
    "  watch [KEY...]    print changes to the keys (or the table) as they happen\n"
    "  cluster status    show members (by name), status, ring ownership and N/R/W\n"
    "  cluster leave     make the node hand off its data and leave the ring,\n"
    "                    showing the progress until it has settled\n"
    "  cluster remove NODE  take a dead node (name or id) out of the ring,\n"
    "                    showing the progress until it has settled\n"
    "  cluster repair    compare replicas with every peer now (anti-entropy)\n"
    "  help [COMMAND]    show this help or a command's help\n"
    "\n"
    "Options (anywhere on the line):\n"
    "  --nodes HOST:PORT[,HOST:PORT...]\n"
    "                    nodes to try, in order (env RINGKV_NODES;\n"
    "                    default " DEFAULT_NODES ")\n"
    "  --table NAME      table to use (default \"" DEFAULT_TABLE "\")\n"
    "  --timeout-ms N    deadline of one attempt on one node (default 5000)\n"
    "  --token TOKEN     sent as \"Authorization: Bearer TOKEN\" (env RINGKV_TOKEN)\n"
    "  -v, --verbose     print context, sibling count and the node used on stderr\n"
    "  -h, --help        show help; \"ringkv COMMAND --help\" for one command\n"
    "  --version         print the version\n"
    "  --                end of options (for keys that start with -)\n"
    "\n"
    "Fail-over: the nodes are tried in order. A node that refuses the\n"
    "connection, times out or drops it is reported on stderr and the next one\n"
    "is tried; so is a node that answers 503. Any other answer, 4xx included,\n"
    "is final.\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  not found (get or del of a missing key, cluster remove of an\n"
    "     unknown node)\n"
    "  2  usage error (bad option, argument or value)\n"
    "  3  no node reachable\n"
    "  4  the server answered with an error (its message is printed), or\n"
    "     another failure\n"
    "  5  cluster leave/remove: the change has not settled within --timeout\n"
    "     (it goes on in the cluster)\n"
    "  130  cluster leave/remove: Ctrl-C (or SIGTERM) while waiting; the\n"
    "     change goes on in the cluster\n";

static const struct command commands[] = {
    {"put", CMD_PUT, 1, 2, cmd_put,
     "Usage: ringkv [OPTIONS] put KEY [VALUE] [--string|--json] [--context CTX]\n"
     "                            [--if-none-match] [--if-match CTX] [--w N]\n"
     "\n"
     "Stores VALUE under KEY. VALUE comes from the argument, or from stdin when\n"
     "it is omitted or \"-\" (one trailing newline from stdin is dropped). It is\n"
     "sent as JSON when it parses as JSON (42, true, {\"a\":1}, \"quoted\"), and\n"
     "as a JSON string otherwise (hello).\n"
     "\n"
     "  --string          always send VALUE as a JSON string (\"42\", not 42)\n"
     "  --json            VALUE must be JSON; fail if it is not\n"
     "  --context CTX     the context a read returned: the write replaces the\n"
     "                    versions that read saw (resolving siblings)\n"
     "  --if-none-match   write only if the key has no value (else error 412)\n"
     "  --if-match CTX    write only if the key is unchanged since CTX\n"
     "  --w N             write quorum for this request\n"
     "\n"
     "With -v prints created/updated, the new context and sibling count.\n"},
    {"get", CMD_GET, 1, 1, cmd_get,
     "Usage: ringkv [OPTIONS] get KEY [--siblings] [--r N] [--local]\n"
     "\n"
     "Prints the value of KEY on stdout: its JSON text exactly as it was\n"
     "stored, digits and white space included. Exits 1 if there is none.\n"
     "\n"
     "  --siblings        print every concurrent version, one JSON value per\n"
     "                    line (line breaks within a value become spaces;\n"
     "                    write back with -v's context to resolve them)\n"
     "  --r N             read quorum for this request\n"
     "  --local           answer from the contacted node's replica alone\n"
     "\n"
     "With -v prints the context, sibling count, timestamp and owner on stderr.\n"},
    {"del", CMD_DEL, 1, 1, cmd_del,
     "Usage: ringkv [OPTIONS] del KEY [--context CTX] [--if-match CTX] [--w N]\n"
     "\n"
     "Deletes KEY (writes a tombstone); exits 1 if KEY had no value.\n"
     "\n"
     "  --context CTX     delete only the versions that CTX has seen\n"
     "  --if-match CTX    delete only if the key is unchanged since CTX\n"
     "  --w N             write quorum for this request\n"},
    {"keys", CMD_KEYS, 0, 0, cmd_keys,
     "Usage: ringkv [OPTIONS] keys [--limit N] [--after KEY] [--all]\n"
     "\n"
     "Lists the keys of the table, one per line, in ring order (the order of\n"
     "their hash, which is stable).\n"
     "\n"
     "  --limit N         keys per page (server default 100)\n"
     "  --after KEY       start after KEY (the \"next\" of a previous page)\n"
     "  --all             fetch page after page until the end\n"},
    {"watch", CMD_WATCH, 0, MAX_WATCH_KEYS, cmd_watch,
     "Usage: ringkv [OPTIONS] watch [KEY...] [--json] [--count N]\n"
     "\n"
     "Prints each change to the table as it happens, one line per event,\n"
     "until interrupted (Ctrl-C or SIGTERM: exit 0). With no KEY, every change\n"
     "in the table; else changes to the KEYs (up to 10000). Each line is\n"
     "flushed at once, so a pipe sees it when it happens:\n"
     "\n"
     "  updated TABLE/KEY VALUE context=CTX [siblings=N]\n"
     "  deleted TABLE/KEY context=CTX\n"
     "  reset TABLE[/KEY]: REASON\n"
     "\n"
     "VALUE is the JSON text of the new version as stored, on one line, as\n"
     "get --siblings prints it; siblings=N when the key now has N concurrent\n"
     "versions (see them with get --siblings). A reset means the node could\n"
     "not replay what was missed while the stream was down: read the keys\n"
     "again. Control characters in a key are shown as \\n, \\t, \\xNN; an event\n"
     "of another type is printed as TYPE DATA.\n"
     "\n"
     "  --json            print each event as one JSON object instead:\n"
     "                    {\"event\":\"updated\",\"id\":\"ID\",\"data\":{...}}, data\n"
     "                    being the event's JSON as the node sent it (table,\n"
     "                    key, value, context, timestamp, ...); id is null if\n"
     "                    the event has none\n"
     "  --count N         exit 0 after N events\n"
     "\n"
     "When the stream ends or breaks, watch resumes on the next node of --nodes\n"
     "(round-robin, waiting 200 ms, up to 2 s while attempts fail) and sends\n"
     "the last event id (Last-Event-ID), so that no change is missed, or a\n"
     "reset says some may have been. A node that sends nothing for 15 s\n"
     "(it pings every 5 s) counts as gone. A node that answers 503 (too many\n"
     "subscribers) is skipped the same way; a 4xx answer ends watch (exit 4).\n"
     "Until the first stream is open, one round of the nodes without one ends\n"
     "it (exit 3); after that, watch keeps trying. --timeout-ms bounds only\n"
     "connecting to a node, never the stream. -v tells on stderr which node\n"
     "serves the stream.\n"},
    {"cluster", CMD_CLUSTER, 1, 2, cmd_cluster,
     "Usage: ringkv [OPTIONS] cluster status\n"
     "       ringkv [OPTIONS] cluster leave [--no-wait] [--timeout SECONDS]\n"
     "       ringkv [OPTIONS] cluster remove NODE [--no-wait] [--timeout SECONDS]\n"
     "       ringkv [OPTIONS] cluster repair\n"
     "\n"
     "status   Shows the cluster as the first reachable node sees it: its id,\n"
     "         N/R/W, a table of members sorted by name with their status\n"
     "         (joining, member, leaving, removed), last contact and share of\n"
     "         the ring, and that node's sync progress (ranges left to hand\n"
     "         off, keys moved). A * marks the node that answered.\n"
     "leave    Asks the node to leave: it hands its ranges to the nodes that\n"
     "         take them over, is marked removed, and its process exits. Only\n"
     "         one node may be given (--nodes HOST:PORT): failing over to\n"
     "         another would make that one leave instead. Refused while the\n"
     "         node is the last member of the ring or still joining. Then\n"
     "         waits until another member sees the node removed, no member\n"
     "         has ranges left to hand off and the members agree on the ring.\n"
     "remove   Takes NODE (its name, or its 16-hex id from cluster status) out\n"
     "         of the ring for good; the other nodes re-replicate its data.\n"
     "         Only for a node that is dead: the node asked must see it down.\n"
     "         A running node leaves instead. Exits 1 if there is no such node.\n"
     "         Then waits until every other member sees NODE removed, none has\n"
     "         ranges pending and they agree on the ring (anti-entropy goes on\n"
     "         filling the new replicas after that: see cluster status).\n"
     "repair   Starts an anti-entropy round on the node: it compares its\n"
     "         replicas with every peer and exchanges the keys that differ.\n"
     "\n"
     "While leave and remove wait, they ask every member that is neither\n"
     "removed nor down for GET /cluster every 200 ms (the node given at its\n"
     "address from --nodes, the others at the address they advertise) and\n"
     "show on stdout the ranges pending (and how many of the starting number\n"
     "are done), the keys moved (handed off, or received by the members) and\n"
     "the time taken: a bar redrawn in place on a terminal; in a pipe, one\n"
     "line per change of state (at most one a second while only the numbers\n"
     "move). Then a summary, such as:\n"
     "\n"
     "  node2 left: 65536 ranges handed off, 12034 keys moved in 4.2 s\n"
     "\n"
     "  --no-wait         return as soon as the node accepted the change\n"
     "  --timeout SECONDS stop waiting after SECONDS (default 600): exit 5.\n"
     "                    Not --timeout-ms, which bounds each request.\n"
     "\n"
     "Ctrl-C stops the waiting, not the change, which goes on in the cluster\n"
     "(exit 130).\n"},
    {"help", CMD_HELP, 0, 1, NULL, "Usage: ringkv help [COMMAND]\n"},
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < N_ELEMS(commands); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Prints "ringkv: message" and the relevant help to stderr; returns 2. */
static int usage_error(const struct command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const struct command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ringkv: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n\n", stderr);
    va_end(ap);
    fputs(cmd && cmd->bit != CMD_HELP ? cmd->help : global_help, stderr);
    return EXIT_USAGE;
}

/* "-" alone and negative numbers ("-5", "-.5") are values, not options, so
 * "ringkv put k -5" stores -5. */
static bool looks_like_option(const char *s)
{
    if (s[0] != '-' || s[1] == '\0')
        return false;
    if (s[1] == '-')
        return true;
    return !(s[1] >= '0' && s[1] <= '9') && s[1] != '.';
}

static const struct option_spec *find_option(const char *arg, size_t *name_len)
{
    if (arg[1] != '-') { /* -x */
        if (arg[2] != '\0')
            return NULL;
        for (size_t i = 0; i < N_ELEMS(option_specs); i++)
            if (option_specs[i].short_name == arg[1]) {
                *name_len = 2;
                return &option_specs[i];
            }
        return NULL;
    }
    const char *name = arg + 2;
    size_t len = strcspn(name, "=");
    for (size_t i = 0; i < N_ELEMS(option_specs); i++)
        if (strlen(option_specs[i].name) == len && strncmp(option_specs[i].name, name, len) == 0) {
            *name_len = len + 2;
            return &option_specs[i];
        }
    return NULL;
}

/* Parses a whole number in [min, max] for option `name`. */
static int parse_number(const struct command *cmd, const char *name, const char *text, uint64_t min,
                        uint64_t max, uint64_t *out)
{
    uint64_t v;
    if (rk_parse_u64(text, strlen(text), &v) != RK_OK || v < min || v > max)
        return usage_error(cmd, "--%s wants a whole number from %llu to %llu, not '%s'", name,
                           (unsigned long long)min, (unsigned long long)max, text);
    *out = v;
    return EXIT_OK;
}

static int apply_option(struct args *a, const struct option_spec *o, const char *value)
{
    uint64_t n = 0;
    int rc = EXIT_OK;
    switch (o->id) {
    case OPT_NODES: a->nodes = value; break;
    case OPT_TABLE: a->table = value; break;
    case OPT_TOKEN: a->token = value; break;
    case OPT_TIMEOUT:
        rc = parse_number(a->cmd, o->name, value, 1, 24u * 3600 * 1000, &n);
        a->timeout_ms = (int)n;
        break;
    case OPT_VERBOSE: a->verbose = true; break;
    case OPT_HELP: a->help = true; break;
    case OPT_VERSION: a->version = true; break;
    case OPT_STRING: a->force_string = true; break;
    case OPT_JSON: a->force_json = true; break;
    case OPT_CONTEXT: a->context = value; break;
    case OPT_IF_NONE_MATCH: a->if_none_match = true; break;
    case OPT_IF_MATCH: a->if_match = value; break;
    case OPT_W: rc = parse_number(a->cmd, o->name, value, 1, 1000, &a->w); break;
    case OPT_R: rc = parse_number(a->cmd, o->name, value, 1, 1000, &a->r); break;
    case OPT_SIBLINGS: a->siblings = true; break;
    case OPT_LOCAL: a->local = true; break;
    case OPT_LIMIT: rc = parse_number(a->cmd, o->name, value, 1, 1000000, &a->limit); break;
    case OPT_AFTER: a->after = value; break;
    case OPT_ALL: a->all = true; break;
    case OPT_COUNT: rc = parse_number(a->cmd, o->name, value, 1, UINT64_MAX / 2, &a->count); break;
    case OPT_NO_WAIT: a->no_wait = true; break;
    case OPT_WAIT_TIMEOUT:
        rc = parse_number(a->cmd, o->name, value, 1, 7u * 24 * 3600, &a->wait_timeout_s);
        break;
    }
    return rc;
}

/* Fills *a from argv. Options may come before or after the command; each
 * command-specific one is checked against the command at the end. Returns
 * -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (!options_done && looks_like_option(arg)) {
            size_t name_len = 0;
            const struct option_spec *o = find_option(arg, &name_len);
            if (o == NULL)
                return usage_error(a->cmd, "unknown option '%s'", arg);
            const char *value = NULL;
            if (arg[name_len] == '=') {
                if (!o->takes_value)
                    return usage_error(a->cmd, "option '--%s' takes no value", o->name);
                value = arg + name_len + 1;
            } else if (o->takes_value) {
                /* Taken verbatim even if it starts with '-': contexts are
                 * base64url and may. */
                if (i + 1 >= argc)
                    return usage_error(a->cmd, "option '%s' needs a value", arg);
                value = argv[++i];
            }
            if (o->commands != CMD_ANY) {
                if (a->n_cmd_opts == MAX_CMD_OPTIONS)
                    return usage_error(a->cmd, "too many options");
                a->cmd_opts[a->n_cmd_opts] = o;
                a->cmd_opt_args[a->n_cmd_opts++] = arg;
            }
            int rc = apply_option(a, o, value);
            if (rc != EXIT_OK)
                return rc;
            continue;
        }
        if (a->cmd == NULL) {
            a->cmd = find_command(arg);
            if (a->cmd == NULL)
                return usage_error(NULL, "unknown command '%s'", arg);
            continue;
        }
        a->pos[a->n_pos++] = arg; /* a->pos has room for argc */
    }
    if (a->help || a->version)
        return -1; /* help wins over everything else on the line */
    if (a->cmd == NULL)
        return usage_error(NULL, "no command given");
    for (size_t k = 0; k < a->n_cmd_opts; k++)
        if (!(a->cmd_opts[k]->commands & a->cmd->bit))
            return usage_error(a->cmd, "option '%s' does not apply to %s", a->cmd_opt_args[k],
                               a->cmd->name);
    if (a->n_pos < a->cmd->min_pos || a->n_pos > a->cmd->max_pos)
        return usage_error(a->cmd, "wrong number of arguments for %s", a->cmd->name);
    if (a->force_string && a->force_json)
        return usage_error(a->cmd, "--string and --json exclude each other");
    if (a->if_none_match && a->if_match != NULL)
        return usage_error(a->cmd, "--if-none-match and --if-match exclude each other");
    return -1;
}

/* ---- talking to the nodes ------------------------------------------------ */

struct client {
    cli_http *http; /* one connection cache for every request of this run */
    cli_node *nodes;
    size_t n_nodes;
    size_t preferred; /* start here: the last node that answered */
    int timeout_ms;
    char *auth_header; /* "Authorization: Bearer ..." or NULL */
    bool verbose;
    const char *answered_by; /* address of the node behind the last answer */
};

static void client_fini(struct client *c)
{
    for (size_t i = 0; i < c->n_nodes; i++) {
        free(c->nodes[i].address);
        free(c->nodes[i].url);
    }
    cli_http_close(c->http);
    free(c->nodes);
    free(c->auth_header);
    memset(c, 0, sizeof *c);
}

/* Splits the comma-separated node list into c->nodes and opens the HTTP
 * handle that all requests share. Returns -1 to go on, or an exit status
 * (c is then partly filled: free with client_fini). */
static int client_init(struct client *c, const struct args *a, const char *list)
{
    c->timeout_ms = a->timeout_ms;
    c->verbose = a->verbose;
    if (a->token != NULL) {
        if (strpbrk(a->token, "\r\n") != NULL || a->token[0] == '\0')
            return usage_error(NULL, "--token must be one non-empty line");
        rk_buf h = {0};
        if (rk_buf_appendf(&h, "Authorization: Bearer %s", a->token) != RK_OK) {
            rk_buf_free(&h);
            fputs("ringkv: out of memory\n", stderr);
            return EXIT_SERVER;
        }
        c->auth_header = h.data;
    }
    size_t cap = 1;
    for (const char *s = list; *s; s++)
        cap += *s == ',';
    c->nodes = calloc(cap, sizeof *c->nodes);
    if (c->nodes == NULL) {
        fputs("ringkv: out of memory\n", stderr);
        return EXIT_SERVER;
    }
    const char *s = list;
    for (;;) {
        size_t len = strcspn(s, ",");
        const char *b = s, *e = s + len;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        cli_node *n = &c->nodes[c->n_nodes];
        n->address = strndup(b, (size_t)(e - b));
        if (n->address == NULL) {
            fputs("ringkv: out of memory\n", stderr);
            return EXIT_SERVER;
        }
        c->n_nodes++;
        rk_err err = cli_http_node_url(n->address, &n->url);
        if (err == RK_ENOMEM) {
            fputs("ringkv: out of memory\n", stderr);
            return EXIT_SERVER;
        }
        if (err != RK_OK)
            return usage_error(NULL, "bad node address '%s' (want HOST:PORT or [IPV6]:PORT)",
                               n->address);
        if (s[len] == '\0')
            break;
        s += len + 1;
    }
    char why[256] = "";
    rk_err err = cli_http_open(&c->http, why, sizeof why);
    if (err != RK_OK) {
        fprintf(stderr, "ringkv: %s\n", why);
        return EXIT_SERVER;
    }
    return -1;
}

/* Sends one request, failing over along the node list (see the global
 * help). Returns EXIT_OK with *resp filled (free with
 * cli_http_response_free) when some node answered; EXIT_UNREACHABLE when
 * none did; EXIT_SERVER on a local failure. Messages go to stderr. */
static int client_call(struct client *c, const char *method, const char *target, const rk_buf *body,
                       const char *extra_header, cli_http_response *resp)
{
    const char *headers[8];
    size_t nh = 0;
    headers[nh++] = "Accept: application/json";
    headers[nh++] = "User-Agent: ringkv/" RINGKV_VERSION;
    if (body != NULL)
        headers[nh++] = "Content-Type: application/json";
    if (c->auth_header != NULL)
        headers[nh++] = c->auth_header;
    if (extra_header != NULL)
        headers[nh++] = extra_header;
    headers[nh] = NULL;

    cli_http_request req = {
        .method = method,
        .headers = headers,
        .body = body ? (body->data ? body->data : "") : NULL,
        .body_len = body ? body->len : 0,
        .timeout_ms = c->timeout_ms,
    };
    cli_http_response busy = {0}; /* the last 503, if every node is busy */
    size_t busy_node = 0;
    bool have_busy = false;

    for (size_t k = 0; k < c->n_nodes; k++) {
        size_t i = (c->preferred + k) % c->n_nodes;
        const cli_node *n = &c->nodes[i];
        const char *next = k + 1 < c->n_nodes ? c->nodes[(i + 1) % c->n_nodes].address : NULL;
        rk_buf url = {0};
        cli_http_response r = {0};
        char why[256] = "";
        rk_err err = rk_buf_appendf(&url, "%s%s", n->url, target);
        if (err == RK_OK) {
            req.url = url.data;
            err = cli_http_request_do(c->http, &req, &r, why, sizeof why);
        } else {
            snprintf(why, sizeof why, "out of memory");
        }
        rk_buf_free(&url);
        if (err == RK_ENOMEM || err == RK_EINVAL) {
            fprintf(stderr, "ringkv: %s\n", why);
            if (have_busy)
                cli_http_response_free(&busy);
            return EXIT_SERVER;
        }
        if (err != RK_OK) {
            if (next != NULL)
                fprintf(stderr, "ringkv: node %s unreachable: %s, trying %s\n", n->address, why,
                        next);
            else
                fprintf(stderr, "ringkv: node %s unreachable: %s\n", n->address, why);
            continue;
        }
        /* 503 means this coordinator could not gather a quorum (or is
         * shutting down); another node may see more replicas. */
        if (r.status == 503 && next != NULL) {
            char msg[256];
            cli_http_error_summary(&r, msg, sizeof msg);
            fprintf(stderr, "ringkv: node %s answered 503: %s, trying %s\n", n->address, msg, next);
            if (have_busy)
                cli_http_response_free(&busy);
            busy = r;
            busy_node = i;
            have_busy = true;
            continue;
        }
        if (have_busy)
            cli_http_response_free(&busy);
        c->preferred = i;
        c->answered_by = n->address;
        *resp = r;
        return EXIT_OK;
    }
    if (have_busy) {
        /* Some node did answer: its 503 is more useful than "unreachable". */
        c->answered_by = c->nodes[busy_node].address;
        *resp = busy;
        return EXIT_OK;
    }
    fprintf(stderr, "ringkv: no node reachable (tried %zu: ", c->n_nodes);
    for (size_t i = 0; i < c->n_nodes; i++)
        fprintf(stderr, "%s%s", i ? ", " : "", c->nodes[i].address);
    fputs(")\n", stderr);
    return EXIT_UNREACHABLE;
}

/* Prints the server's error for an unexpected answer; returns 4. */
static int server_error(const struct client *c, const cli_http_response *r)
{
    char msg[512];
    cli_http_error_summary(r, msg, sizeof msg);
    fprintf(stderr, "ringkv: node %s answered %d: %s\n", c->answered_by, r->status, msg);
    return EXIT_SERVER;
}

/* A 404 is "not found" unless the server says the route itself is unknown
 * (then the URL, not the key, is wrong). */
static bool is_key_not_found(const cli_http_response *r)
{
    if (r->status != 404)
        return false;
    cJSON *j = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "code");
    bool no_route = cJSON_IsString(code) && strcmp(code->valuestring, "no_route") == 0;
    cJSON_Delete(j);
    return !no_route;
}

/* Parses a JSON answer body. NULL (with a message) when it is not JSON. */
static cJSON *parse_body(const struct client *c, const cli_http_response *r)
{
    cJSON *j = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    if (j == NULL)
        fprintf(stderr, "ringkv: node %s answered %d with a body that is not JSON\n",
                c->answered_by, r->status);
    return j;
}

static const char *json_string(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The raw JSON text of the top-level member `name` of an answer's body,
 * checked strictly. False, with a message, when there is none. */
static bool body_member(const struct client *c, const cli_http_response *r, const char *name,
                        const char **value, size_t *value_len)
{
    rk_err err = rk_json_member(r->body.data, r->body.len, name, value, value_len);
    if (err == RK_EINVAL)
        fprintf(stderr, "ringkv: node %s answered %d with a body that is not valid JSON\n",
                c->answered_by, r->status);
    else if (err != RK_OK)
        fprintf(stderr, "ringkv: node %s answered %d without \"%s\"\n", c->answered_by, r->status,
                name);
    return err == RK_OK;
}

/* Prints a stored value, the JSON text v[0..len) exactly as the server
 * holds it (so 12345678901234567890 keeps its digits), and a newline. With
 * one_line, line breaks become spaces: in valid JSON they can only be white
 * space between tokens, never inside a string, so the value stays the same
 * and one line holds one value. */
static void print_value(const char *v, size_t len, bool one_line)
{
    if (!one_line) {
        fwrite(v, 1, len, stdout);
    } else {
        for (size_t i = 0; i < len; i++)
            putchar(v[i] == '\n' || v[i] == '\r' ? ' ' : v[i]);
    }
    putchar('\n');
}

/* Builds "/{table}/key/{key}" plus an optional query into out. */
static rk_err key_target(rk_buf *out, const char *table, const char *key)
{
    rk_err err = rk_buf_appends(out, "/");
    if (err == RK_OK)
        err = rk_url_encode(out, table, strlen(table));
    if (err == RK_OK)
        err = rk_buf_appends(out, "/key/");
    if (err == RK_OK)
        err = rk_url_encode(out, key, strlen(key));
    return err;
}

/* Appends "?name=value" or "&name=value". */
static rk_err add_query(rk_buf *out, bool *first, const char *name, const char *value)
{
    rk_err err = rk_buf_appendf(out, "%c%s=", *first ? '?' : '&', name);
    *first = false;
    if (err == RK_OK)
        err = rk_url_encode(out, value, strlen(value));
    return err;
}

static int out_of_memory(void)
{
    fputs("ringkv: out of memory\n", stderr);
    return EXIT_SERVER;
}

/* ---- put ----------------------------------------------------------------- */

static rk_err read_all(FILE *f, rk_buf *out)
{
    for (;;) {
        rk_err err = rk_buf_reserve(out, 65536);
        if (err != RK_OK)
            return err;
        size_t n = fread(out->data + out->len, 1, 65536, f);
        out->len += n;
        out->data[out->len] = '\0';
        if (n == 0)
            return ferror(f) ? RK_EIO : RK_OK;
    }
}

/* Appends the JSON text of the value to send: the user's text itself when
 * it is JSON (so 12345678901234567890 keeps its digits), else the text as a
 * JSON string. Returns -1 to go on, or an exit status. */
static int encode_value(const struct args *a, const rk_buf *text, rk_buf *out)
{
    /* JSON is UTF-8, and so must a JSON string's content be. */
    if (!rk_utf8_valid(text->data, text->len))
        return usage_error(a->cmd, "the value is not valid UTF-8 text (or contains a NUL byte)");
    bool as_json = false;
    if (!a->force_string) {
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithOpts(text->data, &end, true);
        as_json = j != NULL;
        cJSON_Delete(j);
        if (!as_json && a->force_json) {
            size_t at = end && end >= text->data ? (size_t)(end - text->data) : 0;
            if (at > text->len)
                at = text->len;
            return usage_error(a->cmd, "--json: the value is not valid JSON (error at byte %zu)",
                               at);
        }
    }
    rk_err err = as_json ? rk_buf_append(out, text->data, text->len)
                         : rk_buf_append_json_string(out, text->data, text->len);
    return err == RK_OK ? -1 : out_of_memory();
}

static int cmd_put(struct client *c, const struct args *a)
{
    const char *key = a->pos[0];
    const char *arg = a->n_pos > 1 ? a->pos[1] : NULL;
    if (key[0] == '\0')
        return usage_error(a->cmd, "the key must not be empty");
    if (a->if_match != NULL && strpbrk(a->if_match, "\r\n\"") != NULL)
        return usage_error(a->cmd, "--if-match: not a context");

    rk_buf text = {0}, body = {0}, target = {0}, hdr = {0};
    cli_http_response r = {0};
    int rc;
    if (arg != NULL && strcmp(arg, "-") != 0) {
        if (rk_buf_appends(&text, arg) != RK_OK) {
            rc = out_of_memory();
            goto done;
        }
    } else {
        if (isatty(STDIN_FILENO))
            fputs("ringkv: reading the value from stdin (end with Ctrl-D)\n", stderr);
        if (read_all(stdin, &text) != RK_OK) {
            fputs("ringkv: cannot read the value from stdin\n", stderr);
            rc = EXIT_SERVER;
            goto done;
        }
        /* "echo hello | ringkv put k" means "hello", not "hello\n". */
        if (text.len > 0 && text.data[text.len - 1] == '\n')
            text.data[--text.len] = '\0';
        if (text.len > 0 && text.data[text.len - 1] == '\r')
            text.data[--text.len] = '\0';
    }

    if (rk_buf_appends(&body, "{\"value\":") != RK_OK) {
        rc = out_of_memory();
        goto done;
    }
    rc = encode_value(a, &text, &body);
    if (rc != -1)
        goto done;
    rk_err err = RK_OK;
    if (a->context != NULL) {
        err = rk_buf_appends(&body, ",\"context\":");
        if (err == RK_OK)
            err = rk_buf_append_json_string(&body, a->context, strlen(a->context));
    }
    if (err == RK_OK)
        err = rk_buf_appends(&body, "}");
    bool first = true;
    if (err == RK_OK)
        err = key_target(&target, a->table, key);
    if (err == RK_OK && a->w) {
        char w[24];
        snprintf(w, sizeof w, "%llu", (unsigned long long)a->w);
        err = add_query(&target, &first, "w", w);
    }
    if (err == RK_OK && a->if_none_match)
        err = rk_buf_appends(&hdr, "If-None-Match: *");
    else if (err == RK_OK && a->if_match != NULL)
        err = rk_buf_appendf(&hdr, "If-Match: \"%s\"", a->if_match);
    if (err != RK_OK) {
        rc = out_of_memory();
        goto done;
    }

    rc = client_call(c, "PUT", target.data, &body, hdr.data, &r);
    if (rc != EXIT_OK)
        goto done;
    if (r.status != 200 && r.status != 201) {
        rc = server_error(c, &r);
        goto done;
    }
    cJSON *j = cJSON_ParseWithLength(r.body.data ? r.body.data : "", r.body.len);
    const cJSON *sib = cJSON_GetObjectItemCaseSensitive(j, "siblings");
    if (c->verbose) {
        const char *ctx = json_string(j, "context");
        fprintf(stderr, "%s by node %s\ncontext: %s\nsiblings: %d\n",
                r.status == 201 ? "created" : "updated", c->answered_by, ctx ? ctx : "(none)",
                cJSON_IsNumber(sib) ? sib->valueint : 1);
    } else if (cJSON_IsNumber(sib) && sib->valueint > 1) {
        /* Worth saying even without -v: a later get may show the other value. */
        fprintf(stderr,
                "ringkv: note: the key now has %d concurrent versions; "
                "see them with 'ringkv get --siblings'\n",
                sib->valueint);
    }
    cJSON_Delete(j);
    rc = EXIT_OK;
done:
    cli_http_response_free(&r);
    rk_buf_free(&text);
    rk_buf_free(&body);
    rk_buf_free(&target);
    rk_buf_free(&hdr);
    return rc;
}

/* ---- get ----------------------------------------------------------------- */

static void print_version_info(const cJSON *v, const char *prefix)
{
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(v, "timestamp");
    const char *owner = json_string(v, "owner");
    if (cJSON_IsNumber(ts))
        fprintf(stderr, "%stimestamp: %.0f\n", prefix, ts->valuedouble);
    if (owner != NULL && owner[0] != '\0')
        fprintf(stderr, "%sowner: %s\n", prefix, owner);
}

static int cmd_get(struct client *c, const struct args *a)
{
    const char *key = a->pos[0];
    if (key[0] == '\0')
        return usage_error(a->cmd, "the key must not be empty");
    rk_buf target = {0};
    cli_http_response r = {0};
    cJSON *j = NULL;
    int rc;
    bool first = true;
    char num[24];
    rk_err err = key_target(&target, a->table, key);
    if (err == RK_OK && a->siblings)
        err = add_query(&target, &first, "siblings", "all");
    if (err == RK_OK && a->r) {
        snprintf(num, sizeof num, "%llu", (unsigned long long)a->r);
        err = add_query(&target, &first, "r", num);
    }
    if (err == RK_OK && a->local)
        err = add_query(&target, &first, "local", "1");
    if (err != RK_OK) {
        rc = out_of_memory();
        goto done;
    }

    rc = client_call(c, "GET", target.data, NULL, NULL, &r);
    if (rc != EXIT_OK)
        goto done;
    if (is_key_not_found(&r)) {
        fprintf(stderr, "ringkv: key '%s' not found in table '%s'\n", key, a->table);
        if (c->verbose) {
            j = cJSON_ParseWithLength(r.body.data ? r.body.data : "", r.body.len);
            const char *ctx = json_string(j, "context");
            if (ctx != NULL)
                fprintf(stderr, "context: %s (deleted)\n", ctx);
        }
        rc = EXIT_NOT_FOUND;
        goto done;
    }
    if (r.status != 200 && r.status != 300) {
        rc = server_error(c, &r);
        goto done;
    }
    j = parse_body(c, &r);
    if (j == NULL) {
        rc = EXIT_SERVER;
        goto done;
    }
    const char *ctx = json_string(j, "context");
    if (r.status == 300) {
        /* Several concurrent versions: one JSON value per line. */
        const cJSON *sibs = cJSON_GetObjectItemCaseSensitive(j, "siblings");
        if (!cJSON_IsArray(sibs)) {
            fprintf(stderr, "ringkv: node %s answered 300 without a siblings array\n",
                    c->answered_by);
            rc = EXIT_SERVER;
            goto done;
        }
        if (c->verbose)
            fprintf(stderr, "node: %s\ncontext: %s\nsiblings: %d\n", c->answered_by,
                    ctx ? ctx : "(none)", cJSON_GetArraySize(sibs));
        /* The values' text comes from the raw body; cJSON, which walks the
         * same array, only reads timestamps and owners. */
        const char *raw, *item, *v;
        size_t raw_len, item_len, v_len, pos = 0;
        const cJSON *s = sibs->child;
        int i = 0;
        if (!body_member(c, &r, "siblings", &raw, &raw_len)) {
            rc = EXIT_SERVER;
            goto done;
        }
        while ((err = rk_json_array_next(raw, raw_len, &pos, &item, &item_len)) == RK_OK) {
            if (rk_json_member(item, item_len, "value", &v, &v_len) != RK_OK) {
                fprintf(stderr, "ringkv: sibling %d has no value\n", i + 1);
                rc = EXIT_SERVER;
                goto done;
            }
            if (c->verbose && s != NULL) {
                char prefix[32];
                snprintf(prefix, sizeof prefix, "sibling %d ", i + 1);
                print_version_info(s, prefix);
            }
            print_value(v, v_len, true);
            s = s ? s->next : NULL;
            i++;
        }
        rc = EXIT_OK;
        if (err != RK_ENOTFOUND) {
            fprintf(stderr, "ringkv: node %s answered 300 with a broken siblings array\n",
                    c->answered_by);
            rc = EXIT_SERVER;
        }
        goto done;
    }
    const char *v;
    size_t v_len;
    if (!body_member(c, &r, "value", &v, &v_len)) {
        rc = EXIT_SERVER;
        goto done;
    }
    if (c->verbose) {
        const cJSON *sib = cJSON_GetObjectItemCaseSensitive(j, "siblings");
        fprintf(stderr, "node: %s\ncontext: %s\nsiblings: %d\n", c->answered_by,
                ctx ? ctx : "(none)", cJSON_IsNumber(sib) ? sib->valueint : 1);
        print_version_info(j, "");
    }
    print_value(v, v_len, a->siblings);
    rc = EXIT_OK;
done:
    cJSON_Delete(j);
    cli_http_response_free(&r);
    rk_buf_free(&target);
    return rc;
}

/* ---- del ----------------------------------------------------------------- */

static int cmd_del(struct client *c, const struct args *a)
{
    const char *key = a->pos[0];
    if (key[0] == '\0')
        return usage_error(a->cmd, "the key must not be empty");
    if (a->if_match != NULL && strpbrk(a->if_match, "\r\n\"") != NULL)
        return usage_error(a->cmd, "--if-match: not a context");
    rk_buf target = {0}, body = {0}, hdr = {0};
    cli_http_response r = {0};
    int rc;
    bool first = true;
    rk_err err = key_target(&target, a->table, key);
    if (err == RK_OK && a->w) {
        char w[24];
        snprintf(w, sizeof w, "%llu", (unsigned long long)a->w);
        err = add_query(&target, &first, "w", w);
    }
    if (err == RK_OK && a->context != NULL) {
        err = rk_buf_appends(&body, "{\"context\":");
        if (err == RK_OK)
            err = rk_buf_append_json_string(&body, a->context, strlen(a->context));
        if (err == RK_OK)
            err = rk_buf_appends(&body, "}");
    }
    if (err == RK_OK && a->if_match != NULL)
        err = rk_buf_appendf(&hdr, "If-Match: \"%s\"", a->if_match);
    if (err != RK_OK) {
        rc = out_of_memory();
        goto done;
    }
    rc = client_call(c, "DELETE", target.data, a->context ? &body : NULL, hdr.data, &r);
    if (rc != EXIT_OK)
        goto done;
    if (is_key_not_found(&r)) {
        fprintf(stderr, "ringkv: key '%s' not found in table '%s'\n", key, a->table);
        rc = EXIT_NOT_FOUND;
        goto done;
    }
    if (r.status != 200) {
        rc = server_error(c, &r);
        goto done;
    }
    if (c->verbose) {
        cJSON *j = cJSON_ParseWithLength(r.body.data ? r.body.data : "", r.body.len);
        const char *ctx = json_string(j, "context");
        fprintf(stderr, "deleted by node %s\ncontext: %s\n", c->answered_by, ctx ? ctx : "(none)");
        cJSON_Delete(j);
    }
    rc = EXIT_OK;
done:
    cli_http_response_free(&r);
    rk_buf_free(&target);
    rk_buf_free(&body);
    rk_buf_free(&hdr);
    return rc;
}

/* ---- keys ---------------------------------------------------------------- */

/* Fetches one page after `after` (NULL: from the start). Prints its keys and
 * sets *next to a malloc'd copy of "next" (free()), or NULL at the end. */
static int keys_page(struct client *c, const struct args *a, const char *after, char **next)
{
    rk_buf target = {0};
    cli_http_response r = {0};
    cJSON *j = NULL;
    int rc;
    bool first = true;
    char num[24];
    rk_err err = rk_buf_appends(&target, "/");
    if (err == RK_OK)
        err = rk_url_encode(&target, a->table, strlen(a->table));
    if (err == RK_OK)
        err = rk_buf_appends(&target, "/keys");
    if (err == RK_OK && a->limit) {
        snprintf(num, sizeof num, "%llu", (unsigned long long)a->limit);
        err = add_query(&target, &first, "limit", num);
    }
    if (err == RK_OK && after != NULL)
        err = add_query(&target, &first, "after", after);
    if (err != RK_OK) {
        rc = out_of_memory();
        goto done;
    }
    rc = client_call(c, "GET", target.data, NULL, NULL, &r);
    if (rc != EXIT_OK)
        goto done;
    if (r.status != 200) {
        rc = server_error(c, &r);
        goto done;
    }
    j = parse_body(c, &r);
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(j, "keys");
    const cJSON *nx = cJSON_GetObjectItemCaseSensitive(j, "next");
    if (!cJSON_IsArray(keys) || !(cJSON_IsString(nx) || cJSON_IsNull(nx) || nx == NULL)) {
        if (j != NULL)
            fprintf(stderr, "ringkv: node %s answered a key listing of an unexpected shape\n",
                    c->answered_by);
        rc = EXIT_SERVER;
        goto done;
    }
    const cJSON *k;
    cJSON_ArrayForEach(k, keys)
    {
        if (cJSON_IsString(k)) {
            fputs(k->valuestring, stdout);
            fputc('\n', stdout);
        }
    }
    char *copy = NULL;
    if (cJSON_IsString(nx) && (copy = strdup(nx->valuestring)) == NULL) {
        rc = out_of_memory();
        goto done;
    }
    *next = copy;
    rc = EXIT_OK;
done:
    cJSON_Delete(j);
    cli_http_response_free(&r);
    rk_buf_free(&target);
    return rc;
}

static int cmd_keys(struct client *c, const struct args *a)
{
    char *after = a->after ? strdup(a->after) : NULL;
    if (a->after != NULL && after == NULL)
        return out_of_memory();
    int rc;
    for (;;) {
        char *next = NULL;
        rc = keys_page(c, a, after, &next);
        if (rc != EXIT_OK || next == NULL)
            break;
        if (!a->all) {
            fprintf(stderr, "ringkv: more keys follow; continue with --after '%s', or use --all\n",
                    next);
            free(next);
            break;
        }
        if (after != NULL && strcmp(after, next) == 0) {
            /* A server that hands back the same cursor would loop us forever. */
            fprintf(stderr, "ringkv: node %s returned the same page cursor twice\n",
                    c->answered_by);
            free(next);
            rc = EXIT_SERVER;
            break;
        }
        free(after);
        after = next;
        fflush(stdout); /* let a pipe see the pages as they come */
    }
    free(after);
    return rc;
}

/* ---- watch --------------------------------------------------------------- */

/* "/{table}/subscribe", "/{table}/subscribe/{key}" or
 * "/{table}/subscribe?key=a&key=b", each part URL-encoded. */
static rk_err watch_target(rk_buf *out, const struct args *a)
{
    rk_err err = rk_buf_appends(out, "/");
    if (err == RK_OK)
        err = rk_url_encode(out, a->table, strlen(a->table));
    if (err == RK_OK)
        err = rk_buf_appends(out, "/subscribe");
    if (err == RK_OK && a->n_pos == 1) {
        err = rk_buf_appends(out, "/");
        if (err == RK_OK)
            err = rk_url_encode(out, a->pos[0], strlen(a->pos[0]));
    }
    bool first = true;
    for (size_t k = 0; a->n_pos > 1 && err == RK_OK && k < a->n_pos; k++)
        err = add_query(out, &first, "key", a->pos[k]);
    return err;
}

static int cmd_watch(struct client *c, const struct args *a)
{
    for (size_t k = 0; k < a->n_pos; k++)
        if (a->pos[k][0] == '\0')
            return usage_error(a->cmd, "a key must not be empty");
    rk_buf target = {0};
    if (watch_target(&target, a) != RK_OK) {
        rk_buf_free(&target);
        return out_of_memory();
    }
    const char *headers[] = {"User-Agent: ringkv/" RINGKV_VERSION, c->auth_header, NULL};
    cli_watch_options o = {
        .nodes = c->nodes,
        .n_nodes = c->n_nodes,
        .target = target.data,
        .headers = headers,
        /* --timeout-ms is "one attempt on one node" for the other commands;
         * a stream is long-lived, so here it bounds connecting only, and
         * the idle timer notices a node that went away. */
        .connect_timeout_ms = c->timeout_ms,
        .idle_timeout_ms = WATCH_IDLE_MS,
        .backoff_min_ms = WATCH_BACKOFF_MIN_MS,
        .backoff_max_ms = WATCH_BACKOFF_MAX_MS,
        .count = a->count,
        .json = a->force_json,
        .verbose = c->verbose,
        .out = stdout,
    };
    int rc = cli_watch_run(c->http, &o);
    rk_buf_free(&target);
    return rc;
}

/* ---- cluster status ------------------------------------------------------ */

struct column {
    const char *title;
    size_t width;
};

static void format_member(const cJSON *m, char cells[7][64])
{
    static const char *const fields[] = {"name", "id", "http", "rpc"};
    for (size_t f = 0; f < 4; f++) {
        const char *s = json_string(m, fields[f]);
        /* Ids are long hex strings; 16 digits tell members apart. */
        snprintf(cells[f], 64, "%.*s", f == 1 ? 16 : 63, s ? s : "-");
    }
    /* Place in the ring, then whether this node hears from it. */
    const char *status = json_string(m, "status"), *liveness = json_string(m, "liveness");
    snprintf(cells[4], 64, "%.20s%s%.20s", status ? status : "-", liveness ? ", " : "",
             liveness ? liveness : "");
    const cJSON *lh = cJSON_GetObjectItemCaseSensitive(m, "last_heard_ms_ago");
    if (!cJSON_IsNumber(lh))
        snprintf(cells[5], 64, "-");
    else if (lh->valuedouble < 1000)
        snprintf(cells[5], 64, "%.0f ms ago", lh->valuedouble);
    else
        snprintf(cells[5], 64, "%.1f s ago", lh->valuedouble / 1000);
    const cJSON *own = cJSON_GetObjectItemCaseSensitive(m, "ownership");
    if (cJSON_IsNumber(own))
        snprintf(cells[6], 64, "%.1f%%", own->valuedouble * 100);
    else
        snprintf(cells[6], 64, "-");
}

/* Left-aligned columns, the last (a percentage) right-aligned, after a
 * gutter with the mark of the node that answered. */
static void print_row(const struct column cols[7], char cells[7][64], char mark)
{
    printf("%c ", mark);
    for (size_t k = 0; k < 6; k++)
        printf("%-*s  ", (int)cols[k].width, cells[k]);
    printf("%*s\n", (int)cols[6].width, cells[6]);
}

static void print_param(const cJSON *j, const char *name, const char *label)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (cJSON_IsNumber(v))
        printf("  %s=%.0f", label, v->valuedouble);
}

/* After the table: what the node's sync service has done, when it has one. */
static void print_sync(const cJSON *j, const char *node)
{
    const cJSON *sync = cJSON_GetObjectItemCaseSensitive(j, "sync");
    if (!cJSON_IsObject(sync))
        return;
    static const char *const fields[] = {"ranges_pending", "handoff_keys_sent", "keys_received",
                                         "ae_exchanges", "ae_keys_repaired"};
    double v[5];
    for (size_t f = 0; f < 5; f++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(sync, fields[f]);
        v[f] = cJSON_IsNumber(x) ? x->valuedouble : 0;
    }
    printf("\nsync on %s: %.0f ranges to hand off, %.0f keys handed off, %.0f received;"
           " anti-entropy: %.0f exchanges, %.0f keys repaired%s\n",
           node ? node : "?", v[0], v[1], v[2], v[3], v[4],
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sync, "leaving")) ? "; leaving" : "");
}

static int cluster_status(struct client *c)
{
    cli_http_response r = {0};
    cJSON *j = NULL;
    int rc = client_call(c, "GET", "/cluster", NULL, NULL, &r);
    if (rc != EXIT_OK)
        goto done;
    if (r.status != 200) {
        rc = server_error(c, &r);
        goto done;
    }
    j = parse_body(c, &r);
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(j, "members");
    if (!cJSON_IsArray(members)) {
        if (j != NULL)
            fprintf(stderr, "ringkv: node %s answered /cluster without members\n", c->answered_by);
        rc = EXIT_SERVER;
        goto done;
    }

    const cJSON *cid = cJSON_GetObjectItemCaseSensitive(j, "cluster_id");
    const char *node = json_string(j, "node");
    if (cJSON_IsString(cid))
        printf("cluster %s", cid->valuestring);
    else if (cJSON_IsNumber(cid))
        printf("cluster %.0f", cid->valuedouble);
    else
        printf("cluster");
    printf("  (as seen by %s via %s)\n", node ? node : "?", c->answered_by);
    print_param(j, "n", "N");
    print_param(j, "r", "R");
    print_param(j, "w", "W");
    print_param(j, "partitions", "partitions");

    int count = cJSON_GetArraySize(members), alive = 0;
    printf("  members=%d", count);
    /* By name, so that the same cluster reads the same from every node. */
    const cJSON **rows = NULL;
    size_t n_rows = 0;
    if (cli_members_sorted(j, &rows, &n_rows) != RK_OK) {
        rc = out_of_memory(); /* members is an array: nothing else can fail */
        goto done;
    }

    struct column cols[7] = {{"NAME", 0},   {"ID", 0},         {"HTTP", 0},     {"RPC", 0},
                             {"STATUS", 0}, {"LAST HEARD", 0}, {"OWNERSHIP", 0}};
    for (size_t k = 0; k < 7; k++)
        cols[k].width = strlen(cols[k].title);
    char cells[7][64];
    bool marked = false;
    for (size_t i = 0; i < n_rows; i++) {
        format_member(rows[i], cells);
        for (size_t k = 0; k < 7; k++)
            if (strlen(cells[k]) > cols[k].width)
                cols[k].width = strlen(cells[k]);
        const char *st = json_string(rows[i], "liveness");
        alive += st != NULL && strcmp(st, "alive") == 0;
    }
    printf("  alive=%d\n\n", alive);
    for (size_t k = 0; k < 7; k++)
        snprintf(cells[k], sizeof cells[k], "%s", cols[k].title);
    print_row(cols, cells, ' ');
    for (size_t i = 0; i < n_rows; i++) {
        bool self = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rows[i], "self"));
        marked |= self;
        format_member(rows[i], cells);
        print_row(cols, cells, self ? '*' : ' ');
    }
    if (marked)
        printf("* = the node that answered (%s)\n", c->answered_by);
    free(rows);
    print_sync(j, node);
    rc = EXIT_OK;
done:
    cJSON_Delete(j);
    cli_http_response_free(&r);
    return rc;
}

/* POSTs to a /cluster/... route. EXIT_OK with the parsed answer in *out
 * (free with cJSON_Delete) when it has status want; otherwise the server's
 * error is printed and the exit status returned. */
static int cluster_post(struct client *c, const char *target, const rk_buf *body, int want,
                        cJSON **out)
{
    cli_http_response r = {0};
    int rc = client_call(c, "POST", target, body, NULL, &r);
    if (rc == EXIT_OK && r.status != want)
        rc = server_error(c, &r);
    if (rc == EXIT_OK && (*out = parse_body(c, &r)) == NULL)
        rc = EXIT_SERVER;
    cli_http_response_free(&r);
    return rc;
}

/* Waiting for a leave or remove to settle (follow.c). Not to be moved
 * once open: f points at o, and o at headers. */
struct waiting {
    const char *headers[4];
    cli_follow_options o;
    cli_follow f;
    bool open;
    char self_id[32], self_name[64]; /* of the node that answered the view */
};

/* Reads the cluster view through the node list and asks every member for
 * its counters before the change (cli_follow_open). Returns EXIT_OK (then
 * w->open: cli_follow_close it), or the exit status after a message. */
static int waiting_open(struct client *c, const struct args *a, cli_change_kind kind,
                        struct waiting *w)
{
    cli_http_response r = {0};
    cJSON *view = NULL;
    int rc = client_call(c, "GET", "/cluster", NULL, NULL, &r);
    if (rc == EXIT_OK && r.status != 200)
        rc = server_error(c, &r);
    if (rc == EXIT_OK && (view = parse_body(c, &r)) == NULL)
        rc = EXIT_SERVER;
    cli_http_response_free(&r);
    if (rc != EXIT_OK)
        return rc;
    const char *id = json_string(view, "id"), *name = json_string(view, "node");
    snprintf(w->self_id, sizeof w->self_id, "%s", id ? id : "");
    snprintf(w->self_name, sizeof w->self_name, "%s", name ? name : "?");

    size_t nh = 0;
    w->headers[nh++] = "Accept: application/json";
    w->headers[nh++] = "User-Agent: ringkv/" RINGKV_VERSION;
    if (c->auth_header != NULL)
        w->headers[nh++] = c->auth_header;
    w->headers[nh] = NULL;
    bool tty = isatty(STDOUT_FILENO);
    struct winsize ws;
    int columns =
        tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
    w->o = (cli_follow_options){
        .kind = kind,
        .headers = w->headers,
        .request_timeout_ms = c->timeout_ms,
        .timeout_ms = (a->wait_timeout_s ? a->wait_timeout_s : CHANGE_TIMEOUT_S) * 1000,
        .poll_ms = CHANGE_POLL_MS,
        .out = stdout,
        .tty = tty,
        .columns = columns,
    };
    rc = cli_follow_open(&w->f, c->http, &w->o, view, c->answered_by);
    w->open = rc == EXIT_OK;
    cJSON_Delete(view);
    return rc;
}

static void waiting_close(struct waiting *w)
{
    if (w->open)
        cli_follow_close(&w->f);
    w->open = false;
}

static int cluster_leave(struct client *c, const struct args *a)
{
    if (c->n_nodes != 1)
        return usage_error(a->cmd,
                           "cluster leave makes the node it asks leave: give exactly one node "
                           "with --nodes HOST:PORT (%zu given)",
                           c->n_nodes);
    struct waiting w = {0};
    int rc = a->no_wait ? EXIT_OK : waiting_open(c, a, CLI_CHANGE_LEAVE, &w);
    rk_buf empty = {0}; /* Content-Length: 0, as a POST should have */
    cJSON *j = NULL;
    if (rc == EXIT_OK)
        rc = cluster_post(c, "/cluster/leave", &empty, 202, &j);
    if (rc == EXIT_OK) {
        const char *name = json_string(j, "node");
        printf("node %s (%s) is leaving: it hands off its data, then stops%s\n", name ? name : "?",
               c->answered_by,
               a->no_wait ? " (follow it with cluster status on another node)" : "");
        fflush(stdout);
        if (!a->no_wait)
            rc = cli_follow_run(&w.f, w.self_id, name ? name : w.self_name);
    }
    cJSON_Delete(j);
    waiting_close(&w);
    return rc;
}

static int cluster_remove(struct client *c, const struct args *a)
{
    const char *node = a->pos[1];
    if (node[0] == '\0')
        return usage_error(a->cmd, "NODE must not be empty");
    rk_buf body = {0};
    rk_err err = rk_buf_appends(&body, "{\"node\":");
    if (err == RK_OK)
        err = rk_buf_append_json_string(&body, node, strlen(node));
    if (err == RK_OK)
        err = rk_buf_appends(&body, "}");
    if (err != RK_OK) {
        rk_buf_free(&body);
        return out_of_memory();
    }
    cli_http_response r = {0};
    cJSON *j = NULL;
    struct waiting w = {0};
    int rc = a->no_wait ? EXIT_OK : waiting_open(c, a, CLI_CHANGE_REMOVE, &w);
    if (rc == EXIT_OK)
        rc = client_call(c, "POST", "/cluster/remove", &body, NULL, &r);
    rk_buf_free(&body);
    if (rc == EXIT_OK && r.status == 404 && is_key_not_found(&r)) {
        fprintf(stderr, "ringkv: node %s knows no node '%s' (see: ringkv cluster status)\n",
                c->answered_by, node);
        rc = EXIT_NOT_FOUND;
    } else if (rc == EXIT_OK && r.status != 200) {
        rc = server_error(c, &r);
    } else if (rc == EXIT_OK && (j = parse_body(c, &r)) == NULL) {
        rc = EXIT_SERVER;
    }
    if (rc == EXIT_OK) {
        const char *name = json_string(j, "removed"), *id = json_string(j, "id");
        printf("node %s (%s) is removed; the other nodes re-replicate its data\n",
               name ? name : node, id ? id : "?");
        fflush(stdout);
        if (!a->no_wait)
            rc = cli_follow_run(&w.f, id, name ? name : node);
    }
    cJSON_Delete(j);
    cli_http_response_free(&r);
    waiting_close(&w);
    return rc;
}

static int cluster_repair(struct client *c)
{
    rk_buf empty = {0};
    cJSON *j = NULL;
    int rc = cluster_post(c, "/cluster/repair", &empty, 202, &j);
    if (rc == EXIT_OK)
        printf("anti-entropy round started on node %s (progress: ringkv cluster status)\n",
               c->answered_by);
    cJSON_Delete(j);
    return rc;
}

static int cmd_cluster(struct client *c, const struct args *a)
{
    static const struct {
        const char *name;
        size_t args; /* after the subcommand */
    } subs[] = {{"status", 0}, {"leave", 0}, {"remove", 1}, {"repair", 0}};
    const char *sub = a->pos[0];
    size_t k = 0;
    while (k < N_ELEMS(subs) && strcmp(subs[k].name, sub) != 0)
        k++;
    if (k == N_ELEMS(subs))
        return usage_error(
            a->cmd, "unknown cluster subcommand '%s' (try: status, leave, remove, repair)", sub);
    if (a->n_pos - 1 != subs[k].args)
        return usage_error(a->cmd, "cluster %s takes %s", sub,
                           subs[k].args ? "one argument, NODE" : "no argument");
    if ((a->no_wait || a->wait_timeout_s) && k != 1 && k != 2)
        return usage_error(a->cmd, "--no-wait and --timeout apply to cluster leave and remove");
    if (a->no_wait && a->wait_timeout_s)
        return usage_error(a->cmd, "--no-wait and --timeout exclude each other");
    switch (k) {
    case 0: return cluster_status(c);
    case 1: return cluster_leave(c, a);
    case 2: return cluster_remove(c, a);
    default: return cluster_repair(c);
    }
}

/* ---- main ---------------------------------------------------------------- */

/* The whole run; pos has room for argc arguments. Returns the exit status. */
static int run(int argc, char **argv, const char **pos)
{
    struct args a = {.table = DEFAULT_TABLE, .timeout_ms = DEFAULT_TIMEOUT_MS, .pos = pos};
    int rc = parse_args(argc, argv, &a);
    if (rc != -1)
        return rc;
    if (a.help || (a.cmd != NULL && a.cmd->bit == CMD_HELP)) {
        const struct command *about = a.cmd;
        if (about != NULL && about->bit == CMD_HELP) {
            about = a.n_pos ? find_command(a.pos[0]) : NULL;
            if (a.n_pos && about == NULL)
                return usage_error(NULL, "unknown command '%s'", a.pos[0]);
        }
        fputs(about && about->bit != CMD_HELP ? about->help : global_help, stdout);
        return EXIT_OK;
    }
    if (a.version) {
        printf("ringkv %s\n", RINGKV_VERSION);
        return EXIT_OK;
    }

    const char *nodes = a.nodes;
    if (nodes == NULL) {
        nodes = getenv("RINGKV_NODES");
        if (nodes == NULL || nodes[0] == '\0')
            nodes = DEFAULT_NODES;
    }
    if (a.token == NULL) {
        const char *t = getenv("RINGKV_TOKEN");
        if (t != NULL && t[0] != '\0')
            a.token = t;
    }

    struct client c = {0};
    rc = client_init(&c, &a, nodes);
    if (rc == -1)
        rc = a.cmd->run(&c, &a);
    client_fini(&c);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fputs("ringkv: cannot write to stdout\n", stderr);
        if (rc == EXIT_OK)
            rc = EXIT_SERVER;
    }
    return rc;
}

int main(int argc, char **argv)
{
    /* Room for every argument as a positional: watch takes many keys. */
    const char **pos = calloc((size_t)argc, sizeof *pos);
    if (pos == NULL)
        return out_of_memory();
    int rc = run(argc, argv, pos);
    free(pos);
    return rc;
}
