/* expiry_bench: what ending leases and share tokens costs, in process (no
 * network), for the housekeeping tick (store_expire) on the queue ordered by
 * deadline.
 *
 *   build/perf/expiry_bench [tokens] [leases]
 *
 * idle tick:  `tokens` live tokens and `leases` detached sessions, none due:
 *             the time and queue entries one tick costs (it should not grow
 *             with either count).
 * one due:    the same with one token due.
 * burst:      every token and lease due at once, ended in 1000 us slices as
 *             the server does: calls taken, the longest, and the total, by
 *             the wall clock (what the budget is checked against) and in
 *             this thread's CPU time (the wall clock also counts time other
 *             processes had the core).
 * big lease: one detached session holding `tokens` objects whose lease
 *             ends, released in 1000 us slices likewise.
 * Bytes per token are the store's own accounting (mem_used). */
#include "mem.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double clock_us(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static double now_us(void)
{
    return clock_us(CLOCK_MONOTONIC);
}

/* This thread's CPU time: on a shared machine the wall clock also counts
 * the time other processes had the core. */
static double cpu_us(void)
{
    return clock_us(CLOCK_THREAD_CPUTIME_ID);
}

static void on_notify(void *ud, struct sess *s, uint64_t id, enum free_reason why)
{
    (void)ud;
    (void)s;
    (void)id;
    (void)why;
}

static void must(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "expiry_bench: %s failed (%d)\n", what, rc);
        exit(1);
    }
}

/* Call store_expire with a 1000 us budget until nothing is left; print the
 * calls, the longest and the total by the wall clock and in CPU time. */
static void drain(struct store *st, const char *what)
{
    double t, c, longest = 0, longest_cpu = 0, total = 0, total_cpu = 0;
    int more, calls = 0;
    do {
        t = now_us();
        c = cpu_us();
        more = store_expire(st, UINT64_MAX - 1, 1000, NULL);
        c = cpu_us() - c;
        t = now_us() - t;
        total += t;
        total_cpu += c;
        if (t > longest)
            longest = t;
        if (c > longest_cpu)
            longest_cpu = c;
        calls++;
    } while (more);
    printf("%-10s %d calls with a 1000 us budget: longest %.0f us (%.0f us of CPU), "
           "total %.1f ms (%.1f ms of CPU)\n",
           what, calls, longest, longest_cpu, total / 1000, total_cpu / 1000);
}

/* One object held by a new session. */
static uint64_t held_object(struct store *st, struct sess *s)
{
    uint64_t id;
    must(sess_reserve(st, s), "sess_reserve");
    must(heap_create(&st->heap, "x", 1, NULL, 0, &id), "heap_create");
    must(sess_incref(st, s, id, 1, NULL), "sess_incref");
    return id;
}

int main(int argc, char **argv)
{
    long ntokens = argc > 1 ? atol(argv[1]) : 1000000;
    long nleases = argc > 2 ? atol(argv[2]) : 10000;
    struct store_limits lim = {1024, 16, 1 << 20, 3600, 0, 0, 0, 0, 0, 0};
    struct store st;
    struct sess *maker;
    uint8_t tok[SESS_TOKEN_BYTES];
    uint64_t id, examined;
    size_t before;
    double t;
    int conn;
    struct sess *big;

    must(store_init(&st, &lim, on_notify, NULL), "store_init");
    must(sess_new(&st, &maker), "sess_new");
    id = held_object(&st, maker);
    before = mem_used();
    for (long i = 0; i < ntokens; i++) /* deadlines spread over 10 to 3609 s */
        must(share_new(&st, maker, id, 10 + (uint32_t)(i % 3600), 0, tok), "share_new");
    printf("tokens:    %ld, %.1f bytes each\n", ntokens,
           ntokens ? (double)(mem_used() - before) / (double)ntokens : 0.0);
    for (long i = 0; i < nleases; i++) {
        struct sess *s;
        must(sess_attach(&st, &conn, &s), "sess_attach");
        sess_set_lease(&st, s, 3600);
        held_object(&st, s);
        sess_detach(&st, s, 0);
    }
    printf("leases:    %ld detached\n", nleases);

    examined = st.timers.examined;
    t = now_us();
    store_expire(&st, 5000, UINT64_MAX, NULL);
    printf("idle tick: %.2f us, %llu queue entries examined\n", now_us() - t,
           (unsigned long long)(st.timers.examined - examined));

    must(share_new(&st, maker, id, 1, 0, tok), "share_new");
    examined = st.timers.examined;
    t = now_us();
    store_expire(&st, 5000, UINT64_MAX, NULL);
    printf("one due:   %.2f us, %llu queue entries examined\n", now_us() - t,
           (unsigned long long)(st.timers.examined - examined));

    drain(&st, "burst:");

    must(sess_attach(&st, &conn, &big), "sess_attach");
    sess_set_lease(&st, big, 3600);
    for (long i = 0; i < ntokens; i++)
        held_object(&st, big);
    sess_detach(&st, big, 0);
    drain(&st, "big lease:");
    sess_free(&st, maker);
    store_close(&st);
    return 0;
}
