/* mem_libc: the allocation calls of mem.h on the system allocator, for
 * librcstore. It keeps no counters and no state, so clients on different
 * threads share nothing here; mem.c, with its pool and its counters, is the
 * server's and single-threaded. Only mem_alloc, mem_calloc, mem_realloc and
 * mem_free exist in this build. */
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
