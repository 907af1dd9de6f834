/* pool_bench: alloc+free pairs, the pool allocator against glibc malloc/free,
 * same size mix, same order of operations, side by side in one run.
 *
 *   build/perf/pool_bench [pairs [rounds]]
 *
 * Three patterns, all reported:
 *   pairs    frees each block right after allocating it: one live block per
 *            size, glibc tcache's best case;
 *   batches  allocates 4096 blocks, then frees them in a shuffled order;
 *   steady   a live set of 100,000 blocks in which a random one is freed and
 *            a new one allocated in its place: a server heap at steady state.
 * Sizes cycle through the mix the heap asks for: object blocks of 24 to 160
 * bytes, hash arrays, small buffers. Each allocator is called as its users
 * call it: glibc through libc's malloc and free, the pool through pool.h,
 * whose cache paths are inline. The pool is measured twice: freeing with
 * the size, as the server does (mem_free knows every block's size), and
 * through pool_free, which reads the size from the pool header. glibc 2.36
 * has no sized free. Rounds alternate the allocators and the best
 * round of each is reported. A benchmark, never a test. */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const size_t mix[] = {32, 24, 48, 32, 40, 64, 32, 96, 128, 160, 32, 48, 256, 32, 512, 72};
#define NMIX  (sizeof(mix) / sizeof(mix[0]))
#define BATCH 4096
#define LIVE  100000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The caller's use of a block: the pointer goes to code the compiler cannot
 * see (so neither allocator's calls can be dropped) and memory may have
 * changed (so the pool's inline paths reload their counts, as they would in
 * a real caller), without a chain through memory from one pair to the
 * next. (A volatile accumulator had one: on CPUs that do not rename memory
 * its load-add-store took longer than the pool's whole pair, which then
 * measured the harness, not the allocator.) */
#define CONSUME(p) __asm__ volatile("" : : "r"(p) : "memory")
static unsigned order[BATCH];

/* Each allocator's loops are compiled with its calls written out, as a
 * caller of that allocator is: glibc's malloc and free are calls into
 * libc, the pool's fast paths are inline (pool.h), pool_free is a call. */
#define DEFINE_RUNS(tag, ALLOC, RELEASE)                                                           \
    __attribute__((unused)) static double pairs_##tag(long pairs)                                  \
    {                                                                                              \
        double t = now();                                                                          \
        for (long i = 0; i < pairs; i++) {                                                         \
            size_t n = mix[i % NMIX];                                                              \
            char *p = ALLOC(n);                                                                    \
            p[0] = (char)i; /* touch it, as a caller would */                                      \
            CONSUME(p);                                                                            \
            RELEASE(p, n);                                                                         \
        }                                                                                          \
        return (now() - t) * 1e9 / (double)pairs;                                                  \
    }                                                                                              \
    __attribute__((unused)) static double batches_##tag(long pairs)                                \
    {                                                                                              \
        static void *blocks[BATCH];                                                                \
        double t = now();                                                                          \
        long done = 0;                                                                             \
        while (done < pairs) {                                                                     \
            for (int i = 0; i < BATCH; i++) {                                                      \
                char *p = ALLOC(mix[(size_t)(done + i) % NMIX]);                                   \
                p[0] = (char)i;                                                                    \
                blocks[i] = p;                                                                     \
            }                                                                                      \
            for (int i = 0; i < BATCH; i++)                                                        \
                RELEASE(blocks[order[i]], mix[(size_t)(done + order[i]) % NMIX]);                  \
            done += BATCH;                                                                         \
        }                                                                                          \
        return (now() - t) * 1e9 / (double)done;                                                   \
    }                                                                                              \
    __attribute__((unused)) static double steady_##tag(long pairs)                                 \
    {                                                                                              \
        static void *live[LIVE];                                                                   \
        static size_t size[LIVE];                                                                  \
        unsigned seed = 11;                                                                        \
        double t;                                                                                  \
        for (int i = 0; i < LIVE; i++)                                                             \
            live[i] = ALLOC(size[i] = mix[(size_t)i % NMIX]);                                      \
        t = now();                                                                                 \
        for (long i = 0; i < pairs; i++) {                                                         \
            unsigned k = (unsigned)rand_r(&seed) % LIVE;                                           \
            char *p;                                                                               \
            RELEASE(live[k], size[k]);                                                             \
            p = ALLOC(size[k] = mix[(size_t)i % NMIX]);                                            \
            p[0] = (char)i;                                                                        \
            live[k] = p;                                                                           \
        }                                                                                          \
        t = (now() - t) * 1e9 / (double)pairs;                                                     \
        for (int i = 0; i < LIVE; i++)                                                             \
            RELEASE(live[i], size[i]);                                                             \
        return t;                                                                                  \
    }

#define POOL_UNSIZED(p, n) ((void)(n), pool_free(p))
#define SYS_FREE(p, n)     ((void)(n), free(p))
/* The loop alone: an "allocator" that hands out one static block, never
 * freed. What the harness itself costs per pair (the loop, the size mix,
 * the touch), to read the pairs figures against. */
static char null_block[POOL_MAX_SMALL];
#define NULL_ALLOC(n)   ((void)(n), null_block)
#define NULL_FREE(p, n) ((void)(p), (void)(n))

DEFINE_RUNS(pool_sized, pool_alloc, pool_free_sized)
DEFINE_RUNS(pool_unsized, pool_alloc, POOL_UNSIZED)
DEFINE_RUNS(glibc, malloc, SYS_FREE)
DEFINE_RUNS(null, NULL_ALLOC, NULL_FREE)

struct allocator {
    const char *name;
    double (*run[3])(long pairs); /* pairs, batches, steady */
};

static const struct allocator allocators[] = {
    {"pool (sized free)", {pairs_pool_sized, batches_pool_sized, steady_pool_sized}},
    {"pool (pool_free)", {pairs_pool_unsized, batches_pool_unsized, steady_pool_unsized}},
    {"glibc malloc/free", {pairs_glibc, batches_glibc, steady_glibc}},
};
#define NALLOC (sizeof(allocators) / sizeof(allocators[0]))

static void keep_best(double *best, double t)
{
    if (*best == 0 || t < *best)
        *best = t;
}

int main(int argc, char **argv)
{
    long pairs = argc > 1 ? atol(argv[1]) : 10000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
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
        allocators[k].run[1](BATCH * 4);

    for (int r = 0; r < rounds; r++) {
        for (size_t k = 0; k < NALLOC; k++)
            for (int p = 0; p < 3; p++)
                keep_best(&best[p][k], allocators[k].run[p](pairs));
        keep_best(&loop, pairs_null(pairs));
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
