/* harness: starts a real rcstored for integration tests on 127.0.0.1 port 0
 * and learns its address from the "listening on" line it logs, so no test
 * sleeps or guesses a port. */
#ifndef RCS_TESTS_HARNESS_H
#define RCS_TESTS_HARNESS_H

#include <stdio.h>
#include <sys/types.h>

struct server_proc {
    pid_t pid;
    char address[128];     /* tcp://127.0.0.1:PORT */
    char tls_address[128]; /* tls://127.0.0.1:PORT of a tls:// listener in the flags, or "" */
    FILE *log;             /* the rest of its stderr */
};

/* Start rcstored with extra flags (NULL-terminated) and wait for its
 * "ready" line. 0 or -1. */
int server_start(struct server_proc *sp, const char *const *extra);
/* SIGTERM it and wait; returns its exit status (0 when it stopped cleanly). */
int server_stop(struct server_proc *sp);

#endif
