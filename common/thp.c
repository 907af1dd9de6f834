/* thp: the huge-page helper thread (see thp.h).
 *
 * The loop takes the mutex with trylock only, so it never waits for the
 * helper: if the helper holds it (a few instructions of bookkeeping, never a
 * system call), the pool maps a chunk itself, as it does when none is
 * ready. A chunk belongs to the helper until it is handed over, so the two
 * never touch the same memory. After a fork() the child has no helper, and
 * the mutex may be held forever: the child takes no chunk (pid check). */
#define _GNU_SOURCE /* MADV_POPULATE_WRITE */
#include "thp.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define READY_CHUNKS 1 /* populated ahead of the pool: 2 MiB */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pid_t pid; /* the process whose helper runs, 0 before it starts */
    int kicked;
    int held; /* thp_hold: make no chunk */
    int busy; /* a chunk is being made (its fault in flight) */
    char *ready[READY_CHUNKS];
    unsigned nready;
} T = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* A chunk populated as a huge page, or NULL (no address space). */
static char *chunk_make(void)
{
    size_t len = 2 * THP_BYTES;
    char *raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *base;
    if (raw == MAP_FAILED)
        return NULL;
    base = (char *)(((uintptr_t)raw + THP_BYTES - 1) & ~(uintptr_t)(THP_BYTES - 1));
    if (base > raw)
        munmap(raw, (size_t)(base - raw));
    if (raw + len > base + THP_BYTES)
        munmap(base + THP_BYTES, (size_t)(raw + len - (base + THP_BYTES)));
    /* Without THP (or before Linux 5.14) these fail: 4 KiB pages then,
     * faulted by whoever touches them. */
    (void)madvise(base, THP_BYTES, MADV_HUGEPAGE);
    (void)madvise(base, THP_BYTES, MADV_POPULATE_WRITE);
    return base;
}

void thp_step(void)
{
    pthread_mutex_lock(&T.mu);
    while (T.nready < READY_CHUNKS && !T.held) {
        char *c;
        T.busy = 1;
        pthread_mutex_unlock(&T.mu);
        c = chunk_make();
        pthread_mutex_lock(&T.mu);
        T.busy = 0;
        if (!c)
            break;
        if (T.nready < READY_CHUNKS) {
            T.ready[T.nready++] = c;
        } else {
            munmap(c, THP_BYTES);
            break;
        }
    }
    pthread_mutex_unlock(&T.mu);
}

static void *helper(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&T.mu);
        while (!T.kicked)
            pthread_cond_wait(&T.cv, &T.mu);
        T.kicked = 0;
        pthread_mutex_unlock(&T.mu);
        thp_step();
    }
    return NULL;
}

/* Start the helper in this process if it is not running. With T.mu held. */
static void start_locked(void)
{
    pthread_t th;
    pthread_attr_t a;
    sigset_t all, old;
    if (T.pid)
        return;
    T.pid = getpid();
    if (pthread_attr_init(&a) != 0)
        return;
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 64 << 10);
    /* Signals are the loop's business (as libuv's threadpool does): the
     * helper starts with all of them blocked. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&th, &a, helper, NULL) != 0)
        T.pid = -1; /* no helper: every chunk is the pool's own */
    else
        pthread_setname_np(th, "rcs-thp");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
}

static void kick_locked(void)
{
    T.kicked = 1;
    pthread_cond_signal(&T.cv);
}

void *thp_chunk_take(void)
{
    char *c = NULL;
    if (T.pid > 0 && T.pid != getpid())
        return NULL; /* a forked child */
    if (pthread_mutex_trylock(&T.mu) != 0)
        return NULL;
    start_locked();
    if (T.nready)
        c = T.ready[--T.nready];
    kick_locked();
    pthread_mutex_unlock(&T.mu);
    return c;
}

void thp_hold(int on)
{
    pthread_mutex_lock(&T.mu);
    T.held = on;
    if (!on)
        kick_locked();
    pthread_mutex_unlock(&T.mu);
}

int thp_busy(void)
{
    int busy = 1;
    if (pthread_mutex_trylock(&T.mu) == 0) {
        busy = T.busy;
        pthread_mutex_unlock(&T.mu);
    }
    return busy;
}
