/* log: leveled logging to stderr with a timestamp. One global level; the
 * server sets it from --log-level. Not thread-safe (rcstored has one thread). */
#ifndef RCS_COMMON_LOG_H
#define RCS_COMMON_LOG_H

#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

extern enum log_level log_threshold;

/* Parse "debug", "info", "warn", "error" or "off". 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_threshold <= LOG_DEBUG)                                                            \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)
/* A rate limit for one kind of log line that a client can provoke at will
 * (a failed login, a refused call, a failed TLS handshake): at most
 * LOG_RATE_LINES a second, the rest counted and reported in one line ("N
 * more <what> suppressed", at level) once the second is over. Zero it (with
 * what and level set) before use. */
#define LOG_RATE_LINES 5
struct log_rate {
    const char *what;     /* "failed logins": names the suppressed lines */
    enum log_level level; /* of the lines, and of the suppressed count's */
    uint64_t start_ms;
    unsigned lines;
    uint64_t suppressed;
};
/* 1 if a line may be logged now (now_ms: a millisecond clock), else 0 and
 * the line is counted. A new second first reports what the last one
 * suppressed. */
int log_rate_take(struct log_rate *r, uint64_t now_ms);
/* Report the suppressed count once its second is over (a timer calls it, so
 * that the count appears even when no more lines come). */
void log_rate_flush(struct log_rate *r, uint64_t now_ms);

#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
