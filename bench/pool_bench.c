/* pool_bench: alloc+free pairs, the pool allocator against glibc malloc/free,
 * same size mix, same order of operations, side by side in one run.
 *
 *   build/bench/pool_bench [pairs]
 *
 * Three patterns, all reported:
 *   pairs    frees each block right after allocating it: one live block per
 *            class, so every pair empties and refills a pool (the pool's
 *            worst case, glibc tcache's best);
 *   batches  allocates 4096 blocks, then frees them in a shuffled order;
 *   steady   a live set of 100,000 blocks in which a random one is freed and
 *            a new one allocated in its place: a server heap at steady state.
 * Sizes cycle through the mix the heap asks for: object blocks of 24 to 160
 * bytes, hash arrays, small buffers. A benchmark, never a test. */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const size_t mix[] = {32, 24, 48, 32, 40, 64, 32, 96, 128, 160, 32, 48, 256, 32, 512, 72};
#define NMIX  (sizeof(mix) / sizeof(mix[0]))
#define BATCH 4096

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *sys_alloc(size_t n)
{
    return malloc(n);
}
static void sys_free(void *p)
{
    free(p);
}

static volatile uintptr_t sink;

static double run_pairs(long pairs, void *(*alloc)(size_t), void (*release)(void *))
{
    double t = now();
    for (long i = 0; i < pairs; i++) {
        char *p = alloc(mix[i % NMIX]);
        p[0] = (char)i; /* touch it, as a caller would */
        sink += (uintptr_t)p;
        release(p);
    }
    return (now() - t) * 1e9 / (double)pairs;
}

static double run_batches(long pairs, const unsigned *order, void *(*alloc)(size_t),
                          void (*release)(void *))
{
    static void *blocks[BATCH];
    double t = now();
    long done = 0;
    while (done < pairs) {
        for (int i = 0; i < BATCH; i++) {
            char *p = alloc(mix[(size_t)(done + i) % NMIX]);
            p[0] = (char)i;
            blocks[i] = p;
        }
        for (int i = 0; i < BATCH; i++)
            release(blocks[order[i]]);
        done += BATCH;
    }
    return (now() - t) * 1e9 / (double)done;
}

#define LIVE 100000

static double run_steady(long pairs, void *(*alloc)(size_t), void (*release)(void *))
{
    static void *live[LIVE];
    unsigned seed = 11;
    double t;
    for (int i = 0; i < LIVE; i++)
        live[i] = alloc(mix[(size_t)i % NMIX]);
    t = now();
    for (long i = 0; i < pairs; i++) {
        unsigned k = (unsigned)rand_r(&seed) % LIVE;
        char *p;
        release(live[k]);
        p = alloc(mix[(size_t)i % NMIX]);
        p[0] = (char)i;
        live[k] = p;
    }
    t = (now() - t) * 1e9 / (double)pairs;
    for (int i = 0; i < LIVE; i++)
        release(live[i]);
    return t;
}

int main(int argc, char **argv)
{
    long pairs = argc > 1 ? atol(argv[1]) : 20000000;
    static unsigned order[BATCH];
    unsigned seed = 7;
    double pool_p, sys_p, pool_b, sys_b, pool_s, sys_s;

    for (unsigned i = 0; i < BATCH; i++)
        order[i] = i;
    for (unsigned i = BATCH - 1; i > 0; i--) {
        unsigned j = (unsigned)rand_r(&seed) % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    /* Warm both up once so neither pays for first-touch page faults. */
    run_batches(BATCH * 4, order, pool_alloc, pool_free);
    run_batches(BATCH * 4, order, sys_alloc, sys_free);

    pool_p = run_pairs(pairs, pool_alloc, pool_free);
    sys_p = run_pairs(pairs, sys_alloc, sys_free);
    pool_b = run_batches(pairs, order, pool_alloc, pool_free);
    sys_b = run_batches(pairs, order, sys_alloc, sys_free);
    pool_s = run_steady(pairs, pool_alloc, pool_free);
    sys_s = run_steady(pairs, sys_alloc, sys_free);
    printf("pattern   pool ns/pair  glibc ns/pair  speed-up\n");
    printf("pairs     %12.2f  %13.2f  %7.2fx\n", pool_p, sys_p, sys_p / pool_p);
    printf("batches   %12.2f  %13.2f  %7.2fx\n", pool_b, sys_b, sys_b / pool_b);
    printf("steady    %12.2f  %13.2f  %7.2fx\n", pool_s, sys_s, sys_s / pool_s);
    printf("(ns per alloc+free pair; rand_r in steady costs both sides alike)\n");
    return 0;
}
