/* objmem: the one small interface through which the heap gets memory for
 * object blocks. Blocks up to POOL_MAX_SMALL bytes come from the pool
 * allocator (through mem.h, which also counts them for maxmemory). */
#ifndef RCS_SERVER_OBJMEM_H
#define RCS_SERVER_OBJMEM_H

#include "heap.h"
#include "mem.h"

#include <stddef.h>

static inline struct obj *objmem_new(size_t bytes)
{
    return mem_alloc(bytes);
}
/* Resize in place when the block's size class allows, else move. NULL on
 * failure (o untouched). */
static inline struct obj *objmem_grow(struct obj *o, size_t old, size_t bytes)
{
    return mem_realloc(o, old, bytes);
}
static inline void objmem_free(struct obj *o, size_t bytes)
{
    mem_free(o, bytes);
}

#endif
