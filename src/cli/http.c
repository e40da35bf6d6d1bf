/* http.c - the CLI's HTTP requests through one reused libcurl easy handle. */
#include "cli_internal.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cli_http {
    CURL *easy; /* holds the connection cache between requests */
    char error[CURL_ERROR_SIZE];
};

/* One transfer's state, shared by the callbacks libcurl runs. */
struct transfer {
    const cli_http_request *req;
    cli_http_response resp;
    size_t max_body;
    rk_err err;            /* why a callback stopped the transfer; RK_OK if none did */
    const char *why;       /* static text for err */
    uint64_t last_byte_ms; /* monotonic time of the last byte, for idle_timeout_ms */
    char idle_why[64];
};

/* libcurl says "Failed to connect ...", strerror "Connection refused"; the
 * reason goes mid-sentence ("node X unreachable: failed to connect ...").
 * Acronyms ("SSL ...") keep their capitals. */
static void lower_first(char *s)
{
    if (s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'a' && s[1] <= 'z')
        s[0] = (char)(s[0] - 'A' + 'a');
}

static void set_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t why_len, const char *fmt, ...)
{
    if (why == NULL || why_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    lower_first(why);
}

/* ---- libcurl's global state ---------------------------------------------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_code = CURLE_FAILED_INIT;

/* curl_global_init is not safe to run twice or concurrently; pthread_once
 * makes it happen once per process. Its memory is released at exit: the
 * CLI never needs libcurl back off while it runs. */
static void global_init(void)
{
    global_code = curl_global_init(CURL_GLOBAL_DEFAULT);
}

rk_err cli_http_open(cli_http **out, char *why, size_t why_len)
{
    pthread_once(&global_once, global_init);
    if (global_code != CURLE_OK) {
        set_why(why, why_len, "cannot start libcurl: %s", curl_easy_strerror(global_code));
        return global_code == CURLE_OUT_OF_MEMORY ? RK_ENOMEM : RK_EIO;
    }
    cli_http *h = calloc(1, sizeof *h);
    if (h == NULL) {
        set_why(why, why_len, "out of memory");
        return RK_ENOMEM;
    }
    h->easy = curl_easy_init();
    if (h->easy == NULL) {
        free(h);
        set_why(why, why_len, "cannot start libcurl: out of memory");
        return RK_ENOMEM;
    }
    *out = h;
    return RK_OK;
}

void cli_http_close(cli_http *h)
{
    if (h == NULL)
        return;
    curl_easy_cleanup(h->easy);
    free(h);
}

/* ---- callbacks ----------------------------------------------------------- */

/* "HTTP/1.1 200 OK" -> 200; 0 when the line is not a status line. */
static int status_of(const char *line, size_t len)
{
    const char *sp = memchr(line, ' ', len);
    if (sp == NULL || (size_t)(sp - line) + 4 > len)
        return 0;
    int status = 0;
    for (int i = 1; i <= 3; i++) {
        if (sp[i] < '0' || sp[i] > '9')
            return 0;
        status = status * 10 + (sp[i] - '0');
    }
    return status;
}

static size_t stop(struct transfer *t, rk_err err, const char *why)
{
    t->err = err;
    t->why = why;
    return 0; /* fewer bytes than given: libcurl ends the transfer */
}

/* Runs once per header line, status lines included. A 1xx interim
 * response is followed by the real one, whose status line starts head
 * afresh so that head and status describe the final response. */
static size_t header_cb(char *data, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;
    size_t len = size * n;
    t->last_byte_ms = rk_monotonic_ms();
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        rk_buf_reset(&t->resp.head);
        t->resp.status = status_of(data, len);
    }
    if (rk_buf_append(&t->resp.head, data, len) != RK_OK)
        return stop(t, RK_ENOMEM, "out of memory");
    return len;
}

/* Runs for each piece of the body as it arrives, framing removed: hands it
 * to the request's on_body, or collects it within max_body. */
static size_t body_cb(char *data, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;
    size_t len = size * n;
    t->last_byte_ms = rk_monotonic_ms();
    if (t->req->on_body != NULL) {
        rk_err err = t->req->on_body(&t->resp, data, len, t->req->on_body_arg);
        return err == RK_OK ? len : stop(t, err, "stopped by the receiver");
    }
    if (len > t->max_body - t->resp.body.len)
        return stop(t, RK_ETOOBIG, "response body too large");
    if (rk_buf_append(&t->resp.body, data, len) != RK_OK)
        return stop(t, RK_ENOMEM, "out of memory");
    return len;
}

/* libcurl runs this about once a second while nothing moves, and after a
 * signal interrupts its wait: the place to notice a cancel or a stream
 * that went quiet. Non-zero ends the transfer. */
static int progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    struct transfer *t = arg;
    if (t->req->cancel != NULL && *t->req->cancel) {
        stop(t, RK_ECLOSED, "cancelled");
        return 1;
    }
    int idle = t->req->idle_timeout_ms;
    if (idle > 0 && rk_monotonic_ms() - t->last_byte_ms >= (uint64_t)idle) {
        snprintf(t->idle_why, sizeof t->idle_why, "nothing received for %d ms", idle);
        stop(t, RK_ETIMEDOUT, t->idle_why);
        return 1;
    }
    return 0;
}

/* ---- one request --------------------------------------------------------- */

/* A header line or method with CR or LF would let a caller's string inject
 * headers; such a request is refused outright. */
static bool safe_text(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") == NULL;
}

/* The request's header list, for CURLOPT_HTTPHEADER (free with
 * curl_slist_free_all). NULL when out of memory. */
static struct curl_slist *header_list(const cli_http_request *req)
{
    /* An empty "Expect:" stops libcurl from sending "Expect: 100-continue"
     * with bodies over 1 KiB and then waiting up to a second for a "100
     * Continue" the node may never send: a put would stall for nothing. */
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");
    for (const char *const *hl = req->headers; list != NULL && hl != NULL && *hl != NULL; hl++) {
        struct curl_slist *grown = curl_slist_append(list, *hl);
        if (grown == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = grown;
    }
    return list;
}

/* Settings of every request. The handle is reset before each one, so that
 * nothing from the previous request (a body, a method, a callback) leaks
 * into the next; the reset keeps the open connections. */
static CURLcode set_transport(cli_http *h)
{
    CURL *e = h->easy;
    CURLcode rc = CURLE_OK;
/* An expression, so that it nests under if/else; the first error sticks. */
#define SET(option, value) (rc = rc != CURLE_OK ? rc : curl_easy_setopt(e, option, value))
    SET(CURLOPT_ERRORBUFFER, h->error);
    /* Timeouts by timer, not SIGALRM: signals would hit the whole CLI, and
     * with the threaded resolver they are not needed. */
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TCP_NODELAY, 1L); /* small requests: send them now, not after 40 ms */
    /* Nodes are addressed directly, loopback included, whatever http_proxy
     * says: fail-over needs to see a node refuse or time out itself, and a
     * proxy in between would answer 502 for it (or not reach 127.0.0.1). */
    SET(CURLOPT_NOPROXY, "*");
    SET(CURLOPT_PROTOCOLS_STR, "http"); /* never file://, even from a mistaken node URL */
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_FOLLOWLOCATION, 0L); /* a redirect is an answer to show, not to follow */
#undef SET
    return rc;
}

static CURLcode set_request(cli_http *h, const cli_http_request *req, struct transfer *t,
                            struct curl_slist *headers)
{
    CURL *e = h->easy;
    CURLcode rc = CURLE_OK;
    long connect_ms = req->connect_timeout_ms ? req->connect_timeout_ms
                      : req->timeout_ms       ? req->timeout_ms
                                              : 10000;
#define SET(option, value) (rc = rc != CURLE_OK ? rc : curl_easy_setopt(e, option, value))
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_HTTPHEADER, headers);
    SET(CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SET(CURLOPT_HEADERFUNCTION, header_cb);
    SET(CURLOPT_HEADERDATA, t);
    SET(CURLOPT_WRITEFUNCTION, body_cb);
    SET(CURLOPT_WRITEDATA, t);
    if (req->cancel != NULL || req->idle_timeout_ms > 0) {
        SET(CURLOPT_NOPROGRESS, 0L);
        SET(CURLOPT_XFERINFOFUNCTION, progress_cb);
        SET(CURLOPT_XFERINFODATA, t);
    }
    if (req->idle_timeout_ms > 0) {
        /* A peer that vanishes without a FIN or RST (a pulled cable, a
         * paused VM) is noticed by the idle timer; probes make the kernel
         * notice it too, and keep NAT and firewall state alive. */
        long probe_s = req->idle_timeout_ms / 3000 > 0 ? req->idle_timeout_ms / 3000 : 1;
        SET(CURLOPT_TCP_KEEPALIVE, 1L);
        SET(CURLOPT_TCP_KEEPIDLE, probe_s);
        SET(CURLOPT_TCP_KEEPINTVL, probe_s);
    }
    if (req->on_body == NULL)
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->max_body); /* early, by Content-Length */
    if (strcmp(req->method, "HEAD") == 0)
        SET(CURLOPT_NOBODY, 1L);
    else if (strcmp(req->method, "GET") != 0)
        SET(CURLOPT_CUSTOMREQUEST, req->method);
    if (req->body != NULL) {
        /* Size first: POSTFIELDS with a size does not stop at a NUL. */
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_POSTFIELDS, req->body);
    }
#undef SET
    return rc;
}

/* Where a libcurl error enters: its code becomes an rk_err. */
static rk_err from_curl(CURLcode code)
{
    static const struct {
        CURLcode code;
        rk_err err;
    } table[] = {
        {CURLE_OPERATION_TIMEDOUT, RK_ETIMEDOUT}, {CURLE_OUT_OF_MEMORY, RK_ENOMEM},
        {CURLE_URL_MALFORMAT, RK_EINVAL},         {CURLE_UNSUPPORTED_PROTOCOL, RK_EINVAL},
        {CURLE_BAD_FUNCTION_ARGUMENT, RK_EINVAL}, {CURLE_UNKNOWN_OPTION, RK_EINVAL},
        {CURLE_WEIRD_SERVER_REPLY, RK_ECORRUPT},  {CURLE_BAD_CONTENT_ENCODING, RK_ECORRUPT},
        {CURLE_FILESIZE_EXCEEDED, RK_ETOOBIG},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].code == code)
            return table[i].err;
    return RK_EIO; /* resolving, connecting, sending, receiving */
}

/* libcurl's message for a failed transfer. For a failed connect, libcurl
 * 7.88 ends it with the generic "Couldn't connect to server"; the errno it
 * kept says which failure it was ("connection refused", "no route to
 * host"), which is what a user needs to see. */
static void describe_failure(cli_http *h, CURLcode code, char *why, size_t why_len)
{
    const char *generic = curl_easy_strerror(code);
    if (h->error[0] == '\0') {
        set_why(why, why_len, "%s", generic);
        return;
    }
    long os_errno = 0;
    size_t len = strlen(h->error), glen = strlen(generic);
    if (code == CURLE_COULDNT_CONNECT &&
        curl_easy_getinfo(h->easy, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno != 0 &&
        len > glen + 2 && strcmp(h->error + len - glen, generic) == 0) {
        char reason[128];
        snprintf(reason, sizeof reason, "%s", strerror((int)os_errno));
        lower_first(reason);
        set_why(why, why_len, "%.*s%s", (int)(len - glen), h->error, reason);
        return;
    }
    set_why(why, why_len, "%s", h->error);
}

rk_err cli_http_request_do(cli_http *h, const cli_http_request *req, cli_http_response *resp,
                           char *why, size_t why_len)
{
    if (h == NULL || req == NULL || resp == NULL || !safe_text(req->method) ||
        !safe_text(req->url) || req->timeout_ms < 0 || req->connect_timeout_ms < 0 ||
        req->idle_timeout_ms < 0) {
        set_why(why, why_len, "invalid request");
        return RK_EINVAL;
    }
    for (const char *const *hl = req->headers; hl != NULL && *hl != NULL; hl++) {
        if (!safe_text(*hl)) {
            set_why(why, why_len, "invalid header");
            return RK_EINVAL;
        }
    }
    struct curl_slist *headers = header_list(req);
    if (headers == NULL) {
        set_why(why, why_len, "out of memory");
        return RK_ENOMEM;
    }
    struct transfer t = {.req = req,
                         .max_body = req->max_body ? req->max_body : CLI_HTTP_DEFAULT_MAX_BODY,
                         .last_byte_ms = rk_monotonic_ms()};
    curl_easy_reset(h->easy);
    h->error[0] = '\0';
    CURLcode code = set_transport(h);
    if (code == CURLE_OK)
        code = set_request(h, req, &t, headers);
    if (code == CURLE_OK)
        code = curl_easy_perform(h->easy);
    curl_slist_free_all(headers);

    rk_err err = RK_OK;
    if (t.err != RK_OK) {
        err = t.err;
        set_why(why, why_len, "%s", t.why);
    } else if (code != CURLE_OK) {
        err = from_curl(code);
        describe_failure(h, code, why, why_len);
    } else if (t.resp.status < 100) {
        err = RK_ECORRUPT; /* libcurl took an HTTP/0.9-like answer */
        set_why(why, why_len, "bad response: no HTTP status line");
    }
    if (err != RK_OK) {
        cli_http_response_free(&t.resp);
        return err;
    }
    *resp = t.resp;
    return RK_OK;
}

void cli_http_response_free(cli_http_response *resp)
{
    rk_buf_free(&resp->head);
    rk_buf_free(&resp->body);
    resp->status = 0;
}

/* ---- reading a response -------------------------------------------------- */

const char *cli_http_header(const cli_http_response *resp, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *s = resp->head.data;
    if (s == NULL)
        return NULL;
    const char *line = strchr(s, '\n'); /* skip the status line */
    while (line != NULL) {
        line++;
        const char *eol = strchr(line, '\n');
        const char *end = eol ? eol : line + strlen(line);
        if (end > line && end[-1] == '\r')
            end--;
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            *len = (size_t)(end - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

void cli_http_error_summary(const cli_http_response *r, char *out, size_t out_len)
{
    cJSON *j = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "code");
    if (cJSON_IsString(msg)) {
        int n = snprintf(out, out_len, "%s", msg->valuestring);
        if (cJSON_IsString(code) && n >= 0 && (size_t)n < out_len)
            n += snprintf(out + n, out_len - (size_t)n, " (%s)", code->valuestring);
        const cJSON *acks = cJSON_GetObjectItemCaseSensitive(j, "acks");
        const cJSON *needed = cJSON_GetObjectItemCaseSensitive(j, "needed");
        if (cJSON_IsNumber(acks) && cJSON_IsNumber(needed) && n >= 0 && (size_t)n < out_len)
            snprintf(out + n, out_len - (size_t)n, ": %d of %d replicas acknowledged",
                     acks->valueint, needed->valueint);
    } else {
        /* Not ours (a proxy?): show the first line of what came back. */
        size_t n = r->body.len ? strcspn(r->body.data, "\r\n") : 0;
        if (n > 120)
            n = 120;
        if (n == 0)
            snprintf(out, out_len, "(no error message)");
        else
            snprintf(out, out_len, "%.*s", (int)n, r->body.data);
    }
    cJSON_Delete(j);
}

/* ---- addressing ---------------------------------------------------------- */

/* Bytes allowed in a host name or address. Anything else ('/', '?', '#',
 * '@', white space) would change what the URL means: "a?b:1" would go to
 * host "a". In brackets, ':' and a zone's '%' are allowed too. */
static bool host_byte(char c, bool bracketed)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
        c == '-' || c == '_')
        return true;
    return bracketed && (c == ':' || c == '%');
}

rk_err cli_http_node_url(const char *address, char **url)
{
    const char *h, *he, *colon;
    bool bracketed = address[0] == '[';
    if (bracketed) {
        h = address + 1;
        he = strchr(h, ']');
        if (he == NULL || he[1] != ':')
            return RK_EINVAL;
        colon = he + 1;
    } else {
        h = address;
        colon = strrchr(address, ':');
        if (colon == NULL || memchr(address, ':', (size_t)(colon - address)) != NULL)
            return RK_EINVAL; /* a bare IPv6 address needs brackets */
        he = colon;
    }
    const char *p = colon + 1;
    uint64_t port;
    if (he == h || rk_parse_u64(p, strlen(p), &port) != RK_OK || port == 0 || port > 65535)
        return RK_EINVAL;
    bool v6 = false;
    for (const char *c = h; c < he; c++) {
        if (!host_byte(*c, bracketed))
            return RK_EINVAL;
        v6 |= *c == ':';
    }
    rk_buf u = {0};
    rk_err err = rk_buf_appends(&u, v6 ? "http://[" : "http://");
    for (const char *c = h; err == RK_OK && c < he; c++)
        /* A zone ("fe80::1%eth0") is written %25eth0 in a URL (RFC 6874). */
        err = *c == '%' ? rk_buf_appends(&u, "%25") : rk_buf_append(&u, c, 1);
    if (err == RK_OK)
        err = rk_buf_appendf(&u, "%s:%u", v6 ? "]" : "", (unsigned)port);
    if (err != RK_OK) {
        rk_buf_free(&u);
        return err;
    }
    *url = u.data;
    return RK_OK;
}
