/* panic: invariants that stay checked in release builds. A broken internal
 * invariant (a refcount that would wrap, a block freed twice) is a bug in
 * rcstore, never bad input: it prints one line naming what broke, with the
 * file and line, and aborts, as Redis's serverPanic does. Peer input must be
 * validated and answered with an error code instead; this is not for it.
 * assert() stays for checks too costly for production (NDEBUG drops them). */
#ifndef RCS_COMMON_PANIC_H
#define RCS_COMMON_PANIC_H

/* Print "PANIC file:line: message" on stderr and abort(). Never returns. */
void panic_at(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, cold, format(printf, 3, 4)));

#define PANIC(...) panic_at(__FILE__, __LINE__, __VA_ARGS__)

/* Abort with the message when cond holds. The branch is marked unlikely so
 * the hot path pays one predicted compare; the message's arguments are
 * evaluated only on the way to the abort. */
#define PANIC_IF(cond, ...)                                                                        \
    do {                                                                                           \
        if (__builtin_expect(!!(cond), 0))                                                         \
            panic_at(__FILE__, __LINE__, __VA_ARGS__);                                             \
    } while (0)

#endif
