/* mem: accounting wrapper over the system allocator (see mem.h). */
#include "mem.h"

#include <stdlib.h>
#include <string.h>

static size_t used;
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

void *mem_alloc(size_t n)
{
    void *p;
    if (injected_failure())
        return NULL;
    p = malloc(n ? n : 1);
    if (p)
        used += n;
    return p;
}

void *mem_calloc(size_t n)
{
    void *p;
    if (injected_failure())
        return NULL;
    p = calloc(1, n ? n : 1);
    if (p)
        used += n;
    return p;
}

void *mem_realloc(void *p, size_t old, size_t n)
{
    void *q;
    if (n > old && injected_failure())
        return NULL;
    q = realloc(p, n ? n : 1);
    if (q)
        used = used - old + n;
    return q;
}

void mem_free(void *p, size_t n)
{
    if (!p)
        return;
    used -= n;
    free(p);
}

size_t mem_used(void)
{
    return used;
}

void mem_fail_after(long n)
{
    fail_countdown = n;
}
