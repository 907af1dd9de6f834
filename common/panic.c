/* panic: report a broken invariant and abort (see panic.h). */
#include "panic.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void panic_at(const char *file, int line, const char *fmt, ...)
{
    char ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;

    /* Not through log_msg: a panic is printed whatever --log-level says. */
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ PANIC %s:%d: ", ts, now.tv_nsec / 1000000, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}
