/* ringkvd.c - one ringkv node: flags, start-up steps, clean shutdown. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringkv/cluster_node.h"
#include "ringkv/common.h"
#include "ringkv/failpoint.h"
#include "ringkv/http.h"
#include "ringkv/kv.h"
#include "ringkv/replica.h"
#include "ringkv/ring.h"
#include "ringkv/rpc.h"
#include "ringkv/store.h"
#include "ringkv/watch.h"

#ifndef RINGKV_DEFAULT_WEBCLIENT
#define RINGKV_DEFAULT_WEBCLIENT ""
#endif

typedef struct node_config {
    const char *data_dir;
    const char *http_addr;
    const char *rpc_addr;
    const char *join;
    const char *name;
    const char *secret_file;
    const char *webclient;
    bool insecure;
    bool sync;
    kv_config kv;
    sync_config sync_cfg;
    watch_config watch_cfg;
    unsigned partitions;
    unsigned http_threads;
    bool n_given, partitions_given;
    /* --failpoints and the rules of --failpoint (docs/failpoints.md) */
    bool failpoints;
    failpoint_rule *failpoint_rules; /* free() */
    size_t n_failpoint_rules, cap_failpoint_rules;
} node_config;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ringkvd [options]\n"
            "\n"
            "Runs one ringkv node: a Dynamo-style key-value store with a REST/JSON API.\n"
            "\n"
            "  --data DIR          data directory (RocksDB, node identity)    [./ringkv-data]\n"
            "  --http HOST:PORT    HTTP API and web client                    [127.0.0.1:8001]\n"
            "  --rpc HOST:PORT     node-to-node RPC address                   [127.0.0.1:9001]\n"
            "  --join HOST:PORT[,HOST:PORT]  RPC addresses of seeds of a cluster to join\n"
            "                      (first start only; a restart rejoins its stored members)\n"
            "  --n N               replicas per key                           [3]\n"
            "  --r R               default read quorum                        [2]\n"
            "  --w W               default write quorum                       [2]\n"
            "  --partitions Q      fixed ring ranges, a power of two          [65536]\n"
            "  --name NAME         node name shown in /cluster                [node-<id>]\n"
            "  --secret-file FILE  cluster secret (else env CLUSTER_SECRET)\n"
            "  --insecure          run without a cluster secret (tests, experiments)\n"
            "  --sync              fsync every write (survive power loss, not just kill -9)\n"
            "  --max-value-bytes B largest value accepted, as JSON text      [1048576]\n"
            "  --max-siblings S    siblings kept per key                      [16]\n"
            "  --http-threads T    HTTP workers for requests (each open connection\n"
            "                      holds one; ~28 KB each, all made at start) [1024]\n"
            "  --max-subscribers S live-update streams held at once, each with its\n"
            "                      own worker on top of --http-threads        [1024]\n"
            "  --timeout-ms MS     how long a quorum read or write waits      [1000]\n"
            "  --speculative-ms MS a read asks R replicas, and the others when one\n"
            "                      has not answered in MS (0: p99 of recent replica\n"
            "                      reads, 2..50 ms)                           [0]\n"
            "  --read-repair-percent P  share of reads that ask all N replicas [10]\n"
            "  --handoff on|off    take and hand over hinted writes           [on]\n"
            "  --anti-entropy on|off  off: Merkle exchanges only on `ringkv cluster\n"
            "                      repair`, none at start, periodic or when a peer\n"
            "                      returns (to see what quorums alone do)   [on]\n"
            "  --handoff-interval-ms MS  how often the sync service offers held\n"
            "                      hints to their nodes                       [1000]\n"
            "  --sync-interval-ms MS     how often range handoff work is sought [1000]\n"
            "  --anti-entropy-interval-ms MS  Merkle comparison with each peer  [60000]\n"
            "                      (0: only on `ringkv cluster repair` and a peer's return)\n"
            "  --sync-rate-mb MB   cap on handoff + anti-entropy + hint sends,\n"
            "                      MiB/s (0: no cap)                          [32]\n"
            "  --tombstone-grace-ms MS  age before a delete's tombstone may go [600000]\n"
            "  --webclient DIR     static web client served at /ui/\n"
            "  --failpoints        allow fault injection: delays, drops and failures\n"
            "                      of RPC messages and storage calls, set by\n"
            "                      --failpoint and /debug/failpoints (experiments and\n"
            "                      tests only: never in production; docs/failpoints.md)\n"
            "  --failpoint RULE    a fault rule, e.g. 'rpc.send@node3=delay(exp(5))'\n"
            "                      (repeatable; needs --failpoints; RINGKV_FAILPOINT\n"
            "                      takes rules separated by ';')\n"
            "  -h, --help          this help\n"
            "\n"
            "Each flag falls back to an environment variable RINGKV_<FLAG> (e.g.\n"
            "RINGKV_DATA, RINGKV_HTTP, RINGKV_MAX_VALUE_BYTES). RINGKV_LOG=debug logs more.\n"
            "A restarted node finds its identity and settings in its data directory.\n");
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static bool parse_unsigned(const char *flag, const char *text, unsigned long max,
                           unsigned long *out)
{
    uint64_t v;
    if (text == NULL || rk_parse_u64(text, strlen(text), &v) != RK_OK || v == 0 || v > max) {
        fprintf(stderr, "ringkvd: %s wants a whole number from 1 to %lu, got '%s'\n", flag, max,
                text ? text : "");
        return false;
    }
    *out = (unsigned long)v;
    return true;
}

/* As parse_unsigned, for flags where 0 means "off". */
static bool parse_or_zero(const char *flag, const char *text, unsigned long max, unsigned long *out)
{
    if (text != NULL && strcmp(text, "0") == 0) {
        *out = 0;
        return true;
    }
    return parse_unsigned(flag, text, max, out);
}

static bool valid_hostport(const char *flag, const char *s)
{
    const char *colon = strrchr(s, ':');
    uint64_t port;
    if (colon == NULL || colon == s || rk_parse_u64(colon + 1, strlen(colon + 1), &port) != RK_OK ||
        port == 0 || port > 65535) {
        fprintf(stderr, "ringkvd: %s wants HOST:PORT, got '%s'\n", flag, s);
        return false;
    }
    return true;
}

enum {
    OPT_DATA = 1000,
    OPT_HTTP,
    OPT_RPC,
    OPT_JOIN,
    OPT_N,
    OPT_R,
    OPT_W,
    OPT_PARTITIONS,
    OPT_NAME,
    OPT_SECRET_FILE,
    OPT_INSECURE,
    OPT_SYNC,
    OPT_MAX_VALUE,
    OPT_MAX_SIBLINGS,
    OPT_THREADS,
    OPT_MAX_SUBSCRIBERS,
    OPT_WEBCLIENT,
    OPT_TIMEOUT,
    OPT_HANDOFF,
    OPT_HANDOFF_INTERVAL,
    OPT_SYNC_INTERVAL,
    OPT_AE_INTERVAL,
    OPT_SYNC_RATE,
    OPT_TOMBSTONE_GRACE,
    OPT_SPECULATIVE,
    OPT_READ_REPAIR,
    OPT_ANTI_ENTROPY,
    OPT_FAILPOINTS,
    OPT_FAILPOINT,
};

/* Numeric flags: where each lands and its bounds. */
static bool set_number(node_config *c, int opt, const char *flag, const char *text)
{
    unsigned long v;
    switch (opt) {
    case OPT_N:
        if (!parse_unsigned(flag, text, 16, &v))
            return false;
        c->kv.n = (unsigned)v;
        c->n_given = true;
        return true;
    case OPT_R:
        if (!parse_unsigned(flag, text, 16, &v))
            return false;
        c->kv.r = (unsigned)v;
        return true;
    case OPT_W:
        if (!parse_unsigned(flag, text, 16, &v))
            return false;
        c->kv.w = (unsigned)v;
        return true;
    case OPT_PARTITIONS:
        if (!parse_unsigned(flag, text, RING_MAX_PARTITIONS, &v))
            return false;
        if ((v & (v - 1)) != 0) {
            fprintf(stderr, "ringkvd: %s must be a power of two, got %lu\n", flag, v);
            return false;
        }
        c->partitions = (unsigned)v;
        c->partitions_given = true;
        return true;
    case OPT_MAX_VALUE:
        if (!parse_unsigned(flag, text, 64ul << 20, &v))
            return false;
        c->kv.max_value_bytes = v;
        return true;
    case OPT_MAX_SIBLINGS:
        if (!parse_unsigned(flag, text, 1024, &v))
            return false;
        c->kv.max_siblings = v;
        return true;
    case OPT_THREADS:
        if (!parse_unsigned(flag, text, 20000, &v))
            return false;
        c->http_threads = (unsigned)v;
        return true;
    case OPT_MAX_SUBSCRIBERS:
        if (!parse_unsigned(flag, text, 100000, &v))
            return false;
        c->watch_cfg.max_streams = (unsigned)v;
        return true;
    case OPT_SPECULATIVE:
        if (!parse_or_zero(flag, text, 60000, &v))
            return false;
        c->kv.speculative_ms = (uint32_t)v;
        return true;
    case OPT_READ_REPAIR:
        if (!parse_or_zero(flag, text, 100, &v))
            return false;
        c->kv.read_repair_percent = (unsigned)v;
        return true;
    case OPT_TIMEOUT:
        if (!parse_unsigned(flag, text, 3600000, &v))
            return false;
        c->kv.timeout_ms = (uint32_t)v;
        return true;
    case OPT_SYNC_INTERVAL:
        if (!parse_unsigned(flag, text, 3600000, &v) || v == 0)
            return false;
        c->sync_cfg.interval_ms = (uint32_t)v;
        return true;
    case OPT_AE_INTERVAL:
        if (!parse_or_zero(flag, text, 86400000, &v))
            return false;
        c->sync_cfg.anti_entropy_interval_ms = (uint32_t)v;
        return true;
    case OPT_SYNC_RATE:
        if (!parse_or_zero(flag, text, 1u << 20, &v))
            return false;
        c->sync_cfg.rate_bytes_per_sec = (uint64_t)v << 20;
        return true;
    case OPT_TOMBSTONE_GRACE:
        if (!parse_unsigned(flag, text, 30ull * 86400000ull, &v))
            return false;
        c->sync_cfg.tombstone_grace_ms = v;
        return true;
    case OPT_HANDOFF_INTERVAL:
        if (!parse_unsigned(flag, text, 3600000, &v))
            return false;
        c->sync_cfg.hint_interval_ms = (uint32_t)v;
        return true;
    case OPT_HANDOFF:
        if (text != NULL && (strcmp(text, "on") == 0 || strcmp(text, "off") == 0)) {
            /* off: this node neither stores nor takes nor delivers hints */
            c->kv.handoff = strcmp(text, "on") == 0;
            c->sync_cfg.deliver_hints = c->kv.handoff;
            return true;
        }
        fprintf(stderr, "ringkvd: %s wants on or off, got '%s'\n", flag, text ? text : "");
        return false;
    case OPT_ANTI_ENTROPY:
        if (text != NULL && (strcmp(text, "on") == 0 || strcmp(text, "off") == 0)) {
            /* off: Merkle exchanges only when asked (ringkv cluster repair) */
            c->sync_cfg.anti_entropy_off = strcmp(text, "off") == 0;
            return true;
        }
        fprintf(stderr, "ringkvd: %s wants on or off, got '%s'\n", flag, text ? text : "");
        return false;
    default: return false;
    }
}

static const struct option long_options[] = {
    {"data", required_argument, NULL, OPT_DATA},
    {"http", required_argument, NULL, OPT_HTTP},
    {"rpc", required_argument, NULL, OPT_RPC},
    {"join", required_argument, NULL, OPT_JOIN},
    {"n", required_argument, NULL, OPT_N},
    {"r", required_argument, NULL, OPT_R},
    {"w", required_argument, NULL, OPT_W},
    {"partitions", required_argument, NULL, OPT_PARTITIONS},
    {"name", required_argument, NULL, OPT_NAME},
    {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"sync", no_argument, NULL, OPT_SYNC},
    {"max-value-bytes", required_argument, NULL, OPT_MAX_VALUE},
    {"max-siblings", required_argument, NULL, OPT_MAX_SIBLINGS},
    {"http-threads", required_argument, NULL, OPT_THREADS},
    {"max-subscribers", required_argument, NULL, OPT_MAX_SUBSCRIBERS},
    {"webclient", required_argument, NULL, OPT_WEBCLIENT},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"handoff", required_argument, NULL, OPT_HANDOFF},
    {"handoff-interval-ms", required_argument, NULL, OPT_HANDOFF_INTERVAL},
    {"sync-interval-ms", required_argument, NULL, OPT_SYNC_INTERVAL},
    {"anti-entropy-interval-ms", required_argument, NULL, OPT_AE_INTERVAL},
    {"sync-rate-mb", required_argument, NULL, OPT_SYNC_RATE},
    {"tombstone-grace-ms", required_argument, NULL, OPT_TOMBSTONE_GRACE},
    {"speculative-ms", required_argument, NULL, OPT_SPECULATIVE},
    {"read-repair-percent", required_argument, NULL, OPT_READ_REPAIR},
    {"anti-entropy", required_argument, NULL, OPT_ANTI_ENTROPY},
    {"failpoints", no_argument, NULL, OPT_FAILPOINTS},
    {"failpoint", required_argument, NULL, OPT_FAILPOINT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses one --failpoint rule into c; false (said on stderr) if bad. */
static bool add_failpoint_rule(node_config *c, const char *flag, const char *spec, size_t len)
{
    failpoint_rule rule;
    char why[FAILPOINT_ERR_MAX];
    if (failpoint_rule_parse(spec, len, &rule, why, sizeof why) != RK_OK) {
        fprintf(stderr, "ringkvd: %s: %s\n", flag, why);
        return false;
    }
    if (c->n_failpoint_rules >= FAILPOINT_RULES_MAX ||
        rk_array_grow((void **)&c->failpoint_rules, &c->cap_failpoint_rules,
                      c->n_failpoint_rules + 1, sizeof rule) != RK_OK) {
        fprintf(stderr, "ringkvd: %s: at most %d rules\n", flag, FAILPOINT_RULES_MAX);
        return false;
    }
    c->failpoint_rules[c->n_failpoint_rules++] = rule;
    return true;
}

/* RINGKV_FAILPOINT: rules separated by ';' or new lines. */
static bool add_failpoint_env(node_config *c, const char *text)
{
    while (*text != '\0') {
        size_t len = strcspn(text, ";\n");
        size_t skip = strspn(text, " \t");
        if (len > skip && !add_failpoint_rule(c, "RINGKV_FAILPOINT", text, len))
            return false;
        text += len + (text[len] != '\0');
    }
    return true;
}

/* Environment fallbacks, applied before the flags so flags win. */
static bool apply_env(node_config *c)
{
    c->data_dir = env_or("RINGKV_DATA", "./ringkv-data");
    c->http_addr = env_or("RINGKV_HTTP", "127.0.0.1:8001");
    c->rpc_addr = env_or("RINGKV_RPC", "127.0.0.1:9001");
    c->join = env_or("RINGKV_JOIN", NULL);
    c->name = env_or("RINGKV_NAME", NULL);
    c->secret_file = env_or("RINGKV_SECRET_FILE", NULL);
    c->webclient = env_or("RINGKV_WEBCLIENT", RINGKV_DEFAULT_WEBCLIENT);
    c->insecure = getenv("RINGKV_INSECURE") && strcmp(getenv("RINGKV_INSECURE"), "0") != 0;
    c->sync = getenv("RINGKV_SYNC") && strcmp(getenv("RINGKV_SYNC"), "0") != 0;
    c->failpoints = getenv("RINGKV_FAILPOINTS") && strcmp(getenv("RINGKV_FAILPOINTS"), "0") != 0;
    if (getenv("RINGKV_FAILPOINT") != NULL && !add_failpoint_env(c, getenv("RINGKV_FAILPOINT")))
        return false;
    static const struct {
        const char *env;
        int opt;
        const char *flag;
    } numeric[] = {
        {"RINGKV_N", OPT_N, "RINGKV_N"},
        {"RINGKV_R", OPT_R, "RINGKV_R"},
        {"RINGKV_W", OPT_W, "RINGKV_W"},
        {"RINGKV_PARTITIONS", OPT_PARTITIONS, "RINGKV_PARTITIONS"},
        {"RINGKV_MAX_VALUE_BYTES", OPT_MAX_VALUE, "RINGKV_MAX_VALUE_BYTES"},
        {"RINGKV_MAX_SIBLINGS", OPT_MAX_SIBLINGS, "RINGKV_MAX_SIBLINGS"},
        {"RINGKV_HTTP_THREADS", OPT_THREADS, "RINGKV_HTTP_THREADS"},
        {"RINGKV_MAX_SUBSCRIBERS", OPT_MAX_SUBSCRIBERS, "RINGKV_MAX_SUBSCRIBERS"},
        {"RINGKV_TIMEOUT_MS", OPT_TIMEOUT, "RINGKV_TIMEOUT_MS"},
        {"RINGKV_SPECULATIVE_MS", OPT_SPECULATIVE, "RINGKV_SPECULATIVE_MS"},
        {"RINGKV_READ_REPAIR_PERCENT", OPT_READ_REPAIR, "RINGKV_READ_REPAIR_PERCENT"},
        {"RINGKV_HANDOFF", OPT_HANDOFF, "RINGKV_HANDOFF"},
        {"RINGKV_ANTI_ENTROPY", OPT_ANTI_ENTROPY, "RINGKV_ANTI_ENTROPY"},
        {"RINGKV_HANDOFF_INTERVAL_MS", OPT_HANDOFF_INTERVAL, "RINGKV_HANDOFF_INTERVAL_MS"},
    };
    for (size_t i = 0; i < sizeof numeric / sizeof numeric[0]; i++) {
        const char *v = getenv(numeric[i].env);
        if (v && *v && !set_number(c, numeric[i].opt, numeric[i].flag, v))
            return false;
    }
    return true;
}

/* Returns 0 to go on, or an exit status. */
static int parse_args(int argc, char **argv, node_config *c)
{
    kv_config_default(&c->kv);
    sync_config_default(&c->sync_cfg);
    watch_config_default(&c->watch_cfg);
    c->partitions = RING_DEFAULT_PARTITIONS;
    c->http_threads = 1024;
    if (!apply_env(c))
        return 2;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (opt) {
        case 'h': usage(stdout); return -1;
        case OPT_DATA: c->data_dir = optarg; break;
        case OPT_HTTP: c->http_addr = optarg; break;
        case OPT_RPC: c->rpc_addr = optarg; break;
        case OPT_JOIN: c->join = optarg; break;
        case OPT_NAME: c->name = optarg; break;
        case OPT_SECRET_FILE: c->secret_file = optarg; break;
        case OPT_INSECURE: c->insecure = true; break;
        case OPT_SYNC: c->sync = true; break;
        case OPT_WEBCLIENT: c->webclient = optarg; break;
        case OPT_FAILPOINTS: c->failpoints = true; break;
        case OPT_FAILPOINT:
            if (!add_failpoint_rule(c, "--failpoint", optarg, strlen(optarg)))
                return 2;
            break;
        case '?': usage(stderr); return 2;
        default: {
            char flag[64]; /* long_options is in the order of the OPT_ enum */
            snprintf(flag, sizeof flag, "--%s", long_options[opt - OPT_DATA].name);
            if (!set_number(c, opt, flag, optarg))
                return 2;
        }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ringkvd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!valid_hostport("--http", c->http_addr) || !valid_hostport("--rpc", c->rpc_addr))
        return 2;
    if (c->kv.r > c->kv.n || c->kv.w > c->kv.n) {
        fprintf(stderr, "ringkvd: --r and --w must be at most --n (n=%u r=%u w=%u)\n", c->kv.n,
                c->kv.r, c->kv.w);
        return 2;
    }
    if (c->n_failpoint_rules > 0 && !c->failpoints) {
        /* Faults are never switched on by accident: the flag is the
         * consent, and it also opens /debug/failpoints. */
        fprintf(stderr, "ringkvd: --failpoint needs --failpoints (or RINGKV_FAILPOINTS=1)\n");
        return 2;
    }
    return 0;
}

/* --failpoints: enables the points and sets the rules given with
 * --failpoint, before anything runs that they could act on. */
static int start_failpoints(const node_config *c)
{
    if (!c->failpoints)
        return 0;
    failpoint_enable();
    if (c->n_failpoint_rules == 0)
        return 0;
    rk_err err = failpoint_replace(c->failpoint_rules, c->n_failpoint_rules, "--failpoint");
    if (err != RK_OK) {
        RK_ERROR("ringkvd", "cannot set the --failpoint rules: %s", rk_strerror(err));
        return 1;
    }
    return 0;
}

/* The failpoint resolver (failpoint_resolve_cb): completes what an RPC
 * point knows of a peer (the id that sealed a request, or the address a
 * call went to) from this node's view of the cluster, so that rules can
 * name peers by name. Takes the view's lock only for a reference. */
static bool resolve_peer(void *arg, failpoint_peer_info *info)
{
    cluster_view *v = cluster_node_view(arg);
    const cluster_view_member *m = NULL;
    if (info->id != 0) {
        m = cluster_view_find(v, info->id);
    } else if (info->addr[0] != '\0') {
        /* The member still in the ring wins over a removed one that had
         * the same address. */
        for (size_t i = 0; i < v->count; i++) {
            const cluster_view_member *x = &v->members[i];
            if (strcmp(x->rpc_addr, info->addr) == 0 && (m == NULL || m->status == CLUSTER_REMOVED))
                m = x;
        }
    }
    if (m != NULL) {
        info->id = m->id;
        snprintf(info->name, sizeof info->name, "%s", m->name);
        snprintf(info->addr, sizeof info->addr, "%s", m->rpc_addr);
    }
    cluster_view_unref(v);
    return m != NULL;
}

/* The cluster secret: required unless --insecure. The RPC layer derives
 * its sealing key from it (docs/rpc.md); the caller wipes it after. */
static int load_secret(const node_config *c, rk_buf *secret)
{
    if (c->insecure) {
        RK_WARN("ringkvd", "running with --insecure: node-to-node traffic is neither sealed "
                           "nor authenticated");
        return 0;
    }
    if (c->secret_file != NULL) {
        FILE *f = fopen(c->secret_file, "rb");
        if (f == NULL) {
            RK_ERROR("ringkvd", "cannot read --secret-file %s: %s", c->secret_file,
                     strerror(errno));
            return 2;
        }
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            rk_buf_append(secret, chunk, n);
        fclose(f);
        sodium_memzero(chunk, sizeof chunk);
        while (secret->len > 0 &&
               (secret->data[secret->len - 1] == '\n' || secret->data[secret->len - 1] == '\r'))
            secret->len--;
    } else if (getenv("CLUSTER_SECRET") != NULL) {
        rk_buf_appends(secret, getenv("CLUSTER_SECRET"));
    }
    if (secret->len < 16) {
        RK_ERROR("ringkvd",
                 "a cluster secret of at least 16 bytes is required: set CLUSTER_SECRET, "
                 "or --secret-file FILE, or run with --insecure");
        return 2;
    }
    RK_INFO("ringkvd", "cluster secret loaded");
    return 0;
}

static void wipe_secret(rk_buf *secret)
{
    if (secret->data != NULL)
        sodium_memzero(secret->data, secret->len);
    rk_buf_free(secret);
}

static int make_dir(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Stored settings that every replica must share: a restart with other
 * values would silently change where keys live. */
static int check_params(store *st, node_config *c)
{
    char want[64];
    snprintf(want, sizeof want, "n=%u partitions=%u", c->kv.n, c->partitions);
    rk_buf have = {0};
    rk_err err = store_meta_get(st, "params", &have);
    if (err == RK_ENOTFOUND) {
        err = store_meta_put(st, "params", want, strlen(want));
        rk_buf_free(&have);
        return err == RK_OK ? 0 : 1;
    }
    if (err != RK_OK) {
        rk_buf_free(&have);
        return 1;
    }
    unsigned n = 0, partitions = 0;
    if (sscanf(have.data, "n=%u partitions=%u", &n, &partitions) != 2) {
        RK_ERROR("ringkvd", "cannot read the stored parameters '%s' (made by an older build?)",
                 have.data);
        rk_buf_free(&have);
        return 1;
    }
    rk_buf_free(&have);
    if ((c->n_given && n != c->kv.n) || (c->partitions_given && partitions != c->partitions)) {
        RK_ERROR("ringkvd",
                 "this data dir was made with n=%u partitions=%u; refusing --n %u --partitions %u",
                 n, partitions, c->kv.n, c->partitions);
        return 2;
    }
    c->kv.n = n;
    c->partitions = partitions;
    if (c->kv.r > n || c->kv.w > n) {
        RK_ERROR("ringkvd", "r=%u w=%u exceed the stored n=%u", c->kv.r, c->kv.w, n);
        return 2;
    }
    return 0;
}

static int wait_for_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
    return sig;
}

/* Says so when the ring has fewer members than N: each key then has as
 * many replicas as there are members, and R and W are met by all of them
 * (DESIGN.md); a newcomer's lone node serves at once. */
static void log_ring_size(cluster_node *cn, unsigned n)
{
    cluster_view *v = cluster_node_view(cn);
    size_t members = v->ring ? ring_member_count(v->ring) : 0;
    const cluster_view_member *self = cluster_view_find(v, v->self_id);
    /* A joiner is not in the ring yet: what it will serve is the next
     * ring's business, and the members it joins said so themselves. */
    bool joining = self != NULL && self->status == CLUSTER_JOINING;
    cluster_view_unref(v);
    if (members < n && !joining)
        RK_INFO("ringkvd",
                "the ring has %zu member%s, fewer than n=%u: each key is kept on %zu "
                "replica%s and reads and writes are acknowledged by all of them until the ring "
                "has %u members",
                members, members == 1 ? "" : "s", n, members, members == 1 ? "" : "s", n);
}

/* Everything a running node holds, in start-up order; stopped in reverse. */
typedef struct node {
    store *st;
    replica *rp;
    kv *k;
    rpc_client *client;
    cluster_node *cn;
    sync_service *sync;
    watch *watch;
    rpc_server *rpc;
    http_server *http;
} node;

static int open_store(node_config *c, node *nd, uint64_t *id)
{
    if (make_dir(c->data_dir) != 0) {
        RK_ERROR("ringkvd", "cannot create data dir %s: %s", c->data_dir, strerror(errno));
        return 1;
    }
    char dbdir[4096];
    snprintf(dbdir, sizeof dbdir, "%s/db", c->data_dir);
    store_options so;
    store_options_default(&so);
    so.sync = c->sync;
    if (store_open(dbdir, &so, &nd->st) != RK_OK)
        return 1;
    RK_INFO("ringkvd", "store open at %s%s", dbdir, c->sync ? " (fsync on every write)" : "");
    if (store_node_id(nd->st, id) != RK_OK)
        return 1;
    return check_params(nd->st, c);
}

/* The sync service calls this once this node has left the ring: stop as
 * if told to (wait_for_signal picks it up). */
static void leave_done(void *arg)
{
    (void)arg;
    kill(getpid(), SIGTERM);
}

/* The RPC client and server and the membership; joins when told to. */
static int start_cluster(node_config *c, node *nd, uint64_t id, const char *name,
                         const rk_buf *secret)
{
    rpc_options ro = {
        .secret = secret->data,
        .secret_len = secret->len,
        .insecure = c->insecure,
        .node_id = id,
        /* Every handler answers at once after at most one RocksDB call: save
         * the handoff to a worker thread (docs/benchmarks.md, profile). */
        .inline_handlers = true,
    };
    if (rpc_client_open(&ro, &nd->client) != RK_OK)
        return 1;
    cluster_node_options co = {
        .st = nd->st,
        .client = nd->client,
        .self_id = id,
        .name = name,
        .http_addr = c->http_addr,
        .rpc_addr = c->rpc_addr,
        .n = c->kv.n,
        .partitions = c->partitions,
        .seeds = c->join,
    };
    if (cluster_node_open(&co, &nd->cn) != RK_OK)
        return 1;
    if (c->failpoints)
        failpoint_set_resolver(resolve_peer, nd->cn);
    c->sync_cfg.on_left = leave_done;
    if (sync_open(nd->rp, nd->st, nd->cn, nd->client, &c->sync_cfg, &nd->sync) != RK_OK)
        return 1;
    if (watch_open(nd->rp, nd->cn, nd->client, &c->watch_cfg, &nd->watch) != RK_OK)
        return 1;
    rpc_handler handlers[24];
    size_t n = cluster_node_handlers(nd->cn, handlers, 24);
    n += replica_rpc_handlers(nd->rp, handlers + n, 24 - n);
    n += sync_rpc_handlers(nd->sync, handlers + n, 24 - n);
    n += watch_rpc_handlers(nd->watch, handlers + n, 24 - n);
    if (rpc_server_open(c->rpc_addr, &ro, handlers, n, &nd->rpc) != RK_OK) {
        RK_ERROR("ringkvd", "cannot serve RPC on %s", c->rpc_addr);
        return 1;
    }
    RK_INFO("ringkvd", "serving RPC on %s (%s)", c->rpc_addr,
            c->insecure ? "insecure" : "sealed with the cluster secret");
    rk_err err = cluster_node_start(nd->cn);
    if (err != RK_OK) {
        RK_ERROR("ringkvd", "could not join a cluster through %s: %s", c->join ? c->join : "-",
                 rk_strerror(err));
        return 1;
    }
    if (kv_open(nd->rp, nd->cn, nd->client, &c->kv, &nd->k) != RK_OK)
        return 1;
    log_ring_size(nd->cn, c->kv.n);
    if (sync_start(nd->sync) != RK_OK || watch_start(nd->watch) != RK_OK)
        return 1;
    return 0;
}

static int serve_http(node_config *c, node *nd, uint64_t id, const char *name)
{
    char cid[17];
    snprintf(cid, sizeof cid, "%016llx", (unsigned long long)cluster_node_cluster_id(nd->cn));
    http_options ho = {
        .listen = c->http_addr,
        .threads = c->http_threads,
        .max_streams = c->watch_cfg.max_streams,
        .webclient_dir = c->webclient,
        .max_value_bytes = c->kv.max_value_bytes,
    };
    http_node_info info = {name,   id,      c->http_addr, c->rpc_addr, cid,      c->partitions,
                           nd->cn, nd->rpc, nd->client,   nd->sync,    nd->watch};
    if (http_start(&ho, &info, nd->k, &nd->http) != RK_OK)
        return 1;
    char index[4096];
    snprintf(index, sizeof index, "%s/index.html", c->webclient ? c->webclient : "");
    if (access(index, R_OK) == 0)
        RK_INFO("ringkvd", "serving HTTP on http://%s (web client: http://%s/ui/)", c->http_addr,
                c->http_addr);
    else
        RK_INFO("ringkvd", "serving HTTP on http://%s (no web client: %s not found)", c->http_addr,
                index);
    return 0;
}

/* Stops in the reverse order of start-up: no client request, then no peer
 * request, then no background sender, then the connections, then storage. */
static void stop_node(node *nd)
{
    if (nd->http != NULL) {
        http_stop(nd->http); /* waits for handlers, so no write is cut in half */
        RK_INFO("ringkvd", "HTTP stopped");
    }
    sync_stop(nd->sync);
    if (nd->rpc != NULL) {
        rpc_server_close(nd->rpc);
        RK_INFO("ringkvd", "RPC stopped");
    }
    watch_stop(nd->watch);
    sync_close(nd->sync);
    kv_close(nd->k);
    failpoint_set_resolver(NULL, NULL); /* it reads nd->cn */
    cluster_node_close(nd->cn);
    rpc_client_close(nd->client); /* runs the callbacks of calls in flight */
    watch_close(nd->watch);       /* which the watch module's may be */
    replica_close(nd->rp);
    store_close(nd->st);
    failpoint_shutdown(); /* after the RPC client and server: nothing is held */
    RK_INFO("ringkvd", "store closed");
}

#ifndef PR_FUTEX_HASH
#define PR_FUTEX_HASH 78
#define PR_FUTEX_HASH_SET_SLOTS 1
#endif

/* Linux 6.16 and later give each process its own futex hash, sized by the
 * CPUs (16 buckets on 2) however many threads it has. A node has a worker
 * per connection, thousands of them parked on their own condition
 * variables, so every futex call walked a chain of hundreds: a third of a
 * broadcast to 10,000 streams went there (docs/benchmarks.md, "Live
 * updates"). Sized here for the threads the node will run; an older kernel
 * refuses the call and keeps its global hash, which is sized by memory. */
static void size_futex_hash(const node_config *c)
{
    unsigned long threads = (unsigned long)c->http_threads + c->watch_cfg.max_streams + 64;
    unsigned long slots = 16;
    while (slots < 2 * threads && slots < (1ul << 16))
        slots <<= 1;
    if (prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, slots, 0, 0) == 0)
        RK_DEBUG("ringkvd", "futex hash: %lu slots", slots);
}

static int run(node_config *c)
{
    size_futex_hash(c);
    rk_buf secret = {0};
    int rc = start_failpoints(c);
    if (rc == 0)
        rc = load_secret(c, &secret);
    node nd = {0};
    uint64_t id = 0;
    char name[CLUSTER_NAME_MAX + 1];
    if (rc == 0)
        rc = open_store(c, &nd, &id);
    if (rc == 0) {
        snprintf(name, sizeof name, "%s", c->name ? c->name : "");
        if (!c->name)
            snprintf(name, sizeof name, "node-%08llx", (unsigned long long)(id >> 32));
        RK_INFO("ringkvd", "node %s id %016llx n=%u r=%u w=%u partitions=%u", name,
                (unsigned long long)id, c->kv.n, c->kv.r, c->kv.w, c->partitions);
        replica_config rc_cfg;
        kv_config_replica(&c->kv, &rc_cfg);
        if (replica_open(nd.st, id, &rc_cfg, &nd.rp) != RK_OK)
            rc = 1;
    }
    if (rc == 0)
        rc = start_cluster(c, &nd, id, name, &secret);
    wipe_secret(&secret);
    if (rc == 0)
        rc = serve_http(c, &nd, id, name);
    if (rc == 0) {
        int sig = wait_for_signal();
        RK_INFO("ringkvd", "%s received: finishing requests in flight", strsignal(sig));
    }
    stop_node(&nd);
    RK_INFO("ringkvd", rc == 0 ? "stopped cleanly" : "start-up failed; stopped");
    return rc;
}

int main(int argc, char **argv)
{
    rk_log_init();
    node_config c = {0};
    int rc = parse_args(argc, argv, &c);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (sodium_init() < 0) {
        RK_ERROR("ringkvd", "libsodium failed to initialise");
        return 1;
    }
    /* Block the stop signals before any thread starts, so every thread
     * inherits the mask and only sigwait() in main sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    RK_INFO("ringkvd", "starting ringkv %s", "0.1.0");
    rc = run(&c);
    free(c.failpoint_rules);
    return rc;
}
