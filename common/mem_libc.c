/* mem_libc: the allocation calls of mem.h on the system allocator, for
 * librcstore. It keeps no counters and no state, so clients on different
 * threads share nothing here; mem.c, with its pool and its counters, is the
 * server's and single-threaded. Only the allocation calls (mem_alloc,
 * mem_calloc, mem_realloc, mem_free and their _in forms, whose budget means
 * nothing here) exist in this build. */
#include "mem.h"

#include <stdlib.h>

void *mem_alloc(size_t n)
{
    return malloc(n ? n : 1);
}

void *mem_calloc(size_t n)
{
    return calloc(1, n ? n : 1);
}

void *mem_realloc(void *p, size_t old, size_t n)
{
    (void)old;
    return realloc(p, n ? n : 1);
}

void mem_free(void *p, size_t n)
{
    (void)n;
    free(p);
}

void *mem_alloc_in(enum mem_budget b, size_t n)
{
    (void)b;
    return mem_alloc(n);
}

void *mem_calloc_in(enum mem_budget b, size_t n)
{
    (void)b;
    return mem_calloc(n);
}

void *mem_realloc_in(enum mem_budget b, void *p, size_t old, size_t n)
{
    (void)b;
    return mem_realloc(p, old, n);
}

void mem_free_in(enum mem_budget b, void *p, size_t n)
{
    (void)b;
    mem_free(p, n);
}
