/* gc_bench: the cycle collector on the graphs the issue names, in process
 * (no network), so that it compares with CPython's gc.collect() on the same
 * shapes (bench/gc_vs_cpython.sh runs both in one go).
 *
 *   build/bench/gc_bench [cycles] [live]
 *
 * two-cycles: `cycles` pairs a <-> b, every hold dropped, then one collection.
 * live:       `live` objects in a chain, all held, nothing released, then one
 *             collection (should cost nothing: no candidates).
 * sliced:     the periodic sweep's way (gc_slice, 1000 us budget) over the
 *             same 2-cycles, and over one ring of as many objects: slices
 *             taken, the longest, and the total. */
#include "gc.h"
#include "heap.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_free(void *ud, uint64_t id, enum free_reason why)
{
    (void)ud;
    (void)id;
    (void)why;
}

static uint64_t mk(struct heap *h, const uint64_t *refs, uint32_t n)
{
    uint64_t id;
    if (heap_create(h, "", 0, refs, n, &id) < 0)
        exit(1);
    heap_incr(h, id, CNT_HOLDS, 1);
    return id;
}

static void two_cycles(struct heap *h, long cycles)
{
    uint32_t n;
    for (long i = 0; i < cycles; i++) {
        uint64_t a = mk(h, NULL, 0), b = mk(h, &a, 1);
        heap_link(h, a, b, &n);
        heap_decr(h, a, CNT_HOLDS, 1);
        heap_decr(h, b, CNT_HOLDS, 1);
    }
}

static void sliced(struct heap *h, const char *what, long objects)
{
    struct gc_result r;
    double total = 0, longest = 0;
    long slices = 0, collected = 0;
    int more;
    do {
        double t = now();
        more = gc_slice(h, 1000, &r);
        t = now() - t;
        total += t;
        longest = t > longest ? t : longest;
        collected += (long)r.collected;
        slices++;
    } while (more > 0);
    printf("rcstore  sliced %s: %ld of %ld objects collected in %ld slices, longest %.3f ms, "
           "total %.1f ms\n",
           what, collected, objects, slices, longest * 1e3, total * 1e3);
}

int main(int argc, char **argv)
{
    long cycles = argc > 1 ? atol(argv[1]) : 500000;
    long live = argc > 2 ? atol(argv[2]) : 1000000;
    struct heap h;
    struct gc_result r;
    double t;
    uint32_t n;
    uint64_t prev;

    heap_init(&h, on_free, NULL);
    two_cycles(&h, cycles);
    t = now();
    gc_collect(&h, &r);
    t = now() - t;
    printf("rcstore  two-cycles: %ld objects collected in %.1f ms (%.1f ns/object)\n",
           (long)r.collected, t * 1e3, t * 1e9 / (double)r.collected);

    prev = mk(&h, NULL, 0);
    for (long i = 1; i < live; i++)
        prev = mk(&h, &prev, 1);
    t = now();
    gc_collect(&h, &r);
    t = now() - t;
    printf("rcstore  live heap:  %ld live objects, nothing released: gc in %.3f ms "
           "(%llu examined)\n",
           (long)h.objects, t * 1e3, (unsigned long long)r.examined);
    heap_close(&h);

    heap_init(&h, on_free, NULL);
    two_cycles(&h, cycles);
    sliced(&h, "2-cycles", 2 * cycles);
    {
        uint64_t first = mk(&h, NULL, 0);
        prev = first;
        for (long i = 1; i < 2 * cycles; i++) {
            uint64_t o = mk(&h, NULL, 0);
            heap_link(&h, prev, o, &n);
            heap_decr(&h, o, CNT_HOLDS, 1);
            prev = o;
        }
        heap_link(&h, prev, first, &n);
        heap_decr(&h, first, CNT_HOLDS, 1);
    }
    sliced(&h, "one ring", 2 * cycles);
    heap_close(&h);
    return 0;
}
