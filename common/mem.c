/* mem: accounting front of the allocators (see mem.h). MEM_HEAP blocks up
 * to POOL_MAX_SMALL bytes come from the pool allocator, larger ones and all
 * MEM_CLIENT blocks from the system allocator. Sanitizer builds define
 * RCS_NO_POOL so that ASan and valgrind see every block. */
#include "mem.h"
#include "pool.h"

#include <stdio.h>
#include <unistd.h>

#include <stdlib.h>
#include <string.h>

static size_t used[MEM_NBUDGETS], used_large;

#ifdef RCS_NO_POOL
#define IS_SMALL(n) 0
#else
#define IS_SMALL(n) ((n) <= POOL_MAX_SMALL)
#endif

static void *raw_alloc(size_t n)
{
    if (n == 0)
        n = 1;
    if (IS_SMALL(n))
        return pool_alloc(n);
    used_large += n;
    return malloc(n);
}

static void raw_free(void *p, size_t n)
{
    if (n == 0)
        n = 1;
    if (IS_SMALL(n)) {
        pool_free_sized(p, n);
    } else {
        used_large -= n;
        free(p);
    }
}
static long fail_countdown = -1;

static int injected_failure(void)
{
    if (fail_countdown < 0)
        return 0;
    if (fail_countdown == 0)
        return 1;
    fail_countdown--;
    return 0;
}

void *mem_alloc_in(enum mem_budget b, size_t n)
{
    void *p;
    if (injected_failure())
        return NULL;
    if (b != MEM_HEAP)
        p = malloc(n ? n : 1);
    else
        p = raw_alloc(n);
    if (p)
        used[b] += n;
    return p;
}

void *mem_calloc_in(enum mem_budget b, size_t n)
{
    void *p = mem_alloc_in(b, n);
    if (p)
        memset(p, 0, n);
    return p;
}

void *mem_realloc_in(enum mem_budget b, void *p, size_t old, size_t n)
{
    void *q;
    if (!p)
        return mem_alloc_in(b, n);
    if (n > old && injected_failure())
        return NULL;
    if (b != MEM_HEAP) {
        if ((q = realloc(p, n ? n : 1)) != NULL)
            used[b] = used[b] - old + n;
        return q;
    }
    if (IS_SMALL(old ? old : 1) && IS_SMALL(n ? n : 1) &&
        pool_class_size(old ? old : 1) == pool_class_size(n ? n : 1)) {
        used[b] = used[b] - old + n; /* same block still fits */
        return p;
    }
    if (!IS_SMALL(old ? old : 1) && !IS_SMALL(n ? n : 1)) {
        q = realloc(p, n);
        if (q) {
            used_large = used_large - old + n;
            used[b] = used[b] - old + n;
        }
        return q;
    }
    q = raw_alloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    raw_free(p, old);
    used[b] = used[b] - old + n;
    return q;
}

void mem_free_in(enum mem_budget b, void *p, size_t n)
{
    if (!p)
        return;
    used[b] -= n;
    if (b != MEM_HEAP)
        free(p);
    else
        raw_free(p, n);
}

void *mem_alloc(size_t n)
{
    return mem_alloc_in(MEM_HEAP, n);
}

void *mem_calloc(size_t n)
{
    return mem_calloc_in(MEM_HEAP, n);
}

void *mem_realloc(void *p, size_t old, size_t n)
{
    return mem_realloc_in(MEM_HEAP, p, old, n);
}

void mem_free(void *p, size_t n)
{
    mem_free_in(MEM_HEAP, p, n);
}

size_t mem_budget_bytes(enum mem_budget b)
{
    return used[b];
}

size_t mem_used(void)
{
    return used[MEM_HEAP];
}

size_t mem_large_bytes(void)
{
    return used_large;
}

size_t mem_heap_bytes(void)
{
#ifdef RCS_NO_POOL
    return used[MEM_HEAP];
#else
    return (size_t)pool_bytes_used() + used_large;
#endif
}

void mem_fail_after(long n)
{
    fail_countdown = n;
}

size_t mem_rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}
