/* log: stderr logger (see log.h). */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum log_level log_threshold = LOG_INFO;

static const char *const names[] = {"debug", "info", "warn", "error", "off"};

int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = 0; i <= LOG_OFF; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    char ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;

    if (lvl < log_threshold || lvl >= LOG_OFF)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %-5s ", ts, now.tv_nsec / 1000000, names[lvl]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void log_rate_flush(struct log_rate *r, uint64_t now_ms)
{
    if (now_ms - r->start_ms < 1000)
        return;
    if (r->suppressed && log_threshold <= r->level)
        log_msg(r->level, "%llu more %s suppressed", (unsigned long long)r->suppressed, r->what);
    r->start_ms = now_ms;
    r->lines = 0;
    r->suppressed = 0;
}

int log_rate_take(struct log_rate *r, uint64_t now_ms)
{
    log_rate_flush(r, now_ms);
    if (r->lines < LOG_RATE_LINES) {
        r->lines++;
        return 1;
    }
    r->suppressed++;
    return 0;
}
