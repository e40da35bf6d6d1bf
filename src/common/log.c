/* log.c - one line per event on stderr, filtered by RINGKV_LOG. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ringkv/common.h"

static _Atomic int log_level = RK_LOG_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void rk_log_init(void)
{
    const char *env = getenv("RINGKV_LOG");
    if (env == NULL || *env == '\0')
        return;
    for (int i = RK_LOG_DEBUG; i <= RK_LOG_ERROR; i++) {
        if (strcasecmp(env, level_names[i]) == 0) {
            rk_log_set_level((rk_log_level)i);
            return;
        }
    }
    rk_log(RK_LOG_WARN, "log", "RINGKV_LOG=%s is not one of debug|info|warn|error; using info",
           env);
}

void rk_log_set_level(rk_log_level level)
{
    atomic_store(&log_level, (int)level);
}

bool rk_log_enabled(rk_log_level level)
{
    return (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void rk_log(rk_log_level level, const char *module, const char *fmt, ...)
{
    if (!rk_log_enabled(level))
        return;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    /* Format the whole line first and write it with one call, so lines from
     * different threads never interleave. */
    char line[2048];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %-7s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], module);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
