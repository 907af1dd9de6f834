/* pool_bench: alloc+free pairs, the pool allocator against glibc malloc/free,
 * same size mix, same order of operations, side by side in one run.
 *
 *   build/bench/pool_bench [pairs [rounds]]
 *
 * Three patterns, all reported:
 *   pairs    frees each block right after allocating it: one live block per
 *            size, glibc tcache's best case;
 *   batches  allocates 4096 blocks, then frees them in a shuffled order;
 *   steady   a live set of 100,000 blocks in which a random one is freed and
 *            a new one allocated in its place: a server heap at steady state.
 * Sizes cycle through the mix the heap asks for: object blocks of 24 to 160
 * bytes, hash arrays, small buffers. The pool is measured twice: freeing
 * with the size, as the server does (mem_free knows every block's size),
 * and through pool_free, which reads the size from the pool header. glibc
 * 2.36 has no sized free. Rounds alternate the allocators and the best
 * round of each is reported. A benchmark, never a test. */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const size_t mix[] = {32, 24, 48, 32, 40, 64, 32, 96, 128, 160, 32, 48, 256, 32, 512, 72};
#define NMIX  (sizeof(mix) / sizeof(mix[0]))
#define BATCH 4096
#define LIVE  100000

struct allocator {
    const char *name;
    void *(*alloc)(size_t n);
    void (*release)(void *p, size_t n);
};

static void sys_free(void *p, size_t n)
{
    (void)n;
    free(p);
}
static void pool_free_unsized(void *p, size_t n)
{
    (void)n;
    pool_free(p);
}

/* The loop alone: an "allocator" that hands out one static block, never
 * freed. What the harness itself costs per pair (the loop, the size mix,
 * two indirect calls, the touch), to read the pairs figures against. */
static char null_block[POOL_MAX_SMALL];
static void *null_alloc(size_t n)
{
    (void)n;
    return null_block;
}
static void null_free(void *p, size_t n)
{
    (void)p;
    (void)n;
}

static const struct allocator allocators[] = {
    {"pool (sized free)", pool_alloc, pool_free_sized},
    {"pool (pool_free)", pool_alloc, pool_free_unsized},
    {"glibc malloc/free", malloc, sys_free},
};
static const struct allocator loop_alone = {"loop alone", null_alloc, null_free};
#define NALLOC (sizeof(allocators) / sizeof(allocators[0]))

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile uintptr_t sink;

static double run_pairs(long pairs, const struct allocator *a)
{
    double t = now();
    for (long i = 0; i < pairs; i++) {
        size_t n = mix[i % NMIX];
        char *p = a->alloc(n);
        p[0] = (char)i; /* touch it, as a caller would */
        sink += (uintptr_t)p;
        a->release(p, n);
    }
    return (now() - t) * 1e9 / (double)pairs;
}

static double run_batches(long pairs, const unsigned *order, const struct allocator *a)
{
    static void *blocks[BATCH];
    double t = now();
    long done = 0;
    while (done < pairs) {
        for (int i = 0; i < BATCH; i++) {
            char *p = a->alloc(mix[(size_t)(done + i) % NMIX]);
            p[0] = (char)i;
            blocks[i] = p;
        }
        for (int i = 0; i < BATCH; i++)
            a->release(blocks[order[i]], mix[(size_t)(done + order[i]) % NMIX]);
        done += BATCH;
    }
    return (now() - t) * 1e9 / (double)done;
}

static double run_steady(long pairs, const struct allocator *a)
{
    static void *live[LIVE];
    static size_t size[LIVE];
    unsigned seed = 11;
    double t;
    for (int i = 0; i < LIVE; i++)
        live[i] = a->alloc(size[i] = mix[(size_t)i % NMIX]);
    t = now();
    for (long i = 0; i < pairs; i++) {
        unsigned k = (unsigned)rand_r(&seed) % LIVE;
        char *p;
        a->release(live[k], size[k]);
        p = a->alloc(size[k] = mix[(size_t)i % NMIX]);
        p[0] = (char)i;
        live[k] = p;
    }
    t = (now() - t) * 1e9 / (double)pairs;
    for (int i = 0; i < LIVE; i++)
        a->release(live[i], size[i]);
    return t;
}

static void keep_best(double *best, double t)
{
    if (*best == 0 || t < *best)
        *best = t;
}

int main(int argc, char **argv)
{
    long pairs = argc > 1 ? atol(argv[1]) : 10000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    static unsigned order[BATCH];
    static const char *pattern[] = {"pairs", "batches", "steady"};
    double best[3][NALLOC] = {{0}}, loop = 0, sys;
    unsigned seed = 7;

    for (unsigned i = 0; i < BATCH; i++)
        order[i] = i;
    for (unsigned i = BATCH - 1; i > 0; i--) {
        unsigned j = (unsigned)rand_r(&seed) % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    /* Warm every allocator up once so none pays for first-touch faults. */
    for (size_t k = 0; k < NALLOC; k++)
        run_batches(BATCH * 4, order, &allocators[k]);

    for (int r = 0; r < rounds; r++) {
        for (size_t k = 0; k < NALLOC; k++) {
            keep_best(&best[0][k], run_pairs(pairs, &allocators[k]));
            keep_best(&best[1][k], run_batches(pairs, order, &allocators[k]));
            keep_best(&best[2][k], run_steady(pairs, &allocators[k]));
        }
        keep_best(&loop, run_pairs(pairs, &loop_alone));
    }
    printf("ns per alloc+free pair, best of %d rounds of %ld pairs\n", rounds, pairs);
    printf("%-8s", "pattern");
    for (size_t k = 0; k < NALLOC; k++)
        printf("  %18s", allocators[k].name);
    printf("  speed-up (sized, pool_free)\n");
    for (int p = 0; p < 3; p++) {
        sys = best[p][NALLOC - 1];
        printf("%-8s", pattern[p]);
        for (size_t k = 0; k < NALLOC; k++)
            printf("  %18.2f", best[p][k]);
        printf("  %6.2fx %6.2fx\n", sys / best[p][0], sys / best[p][1]);
    }
    sys = best[0][NALLOC - 1];
    printf("pairs, the loop alone (%.2f ns) taken off: %.2fx %.2fx\n", loop,
           (sys - loop) / (best[0][0] - loop), (sys - loop) / (best[0][1] - loop));
    printf("(rand_r in steady costs every allocator alike)\n");
    return 0;
}
