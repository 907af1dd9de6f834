/* objmem: the one small interface through which the heap gets memory for
 * objects, their data and their ref lists. Today it forwards to mem.h; the
 * pool allocator will replace it without the heap noticing. */
#ifndef RCS_SERVER_OBJMEM_H
#define RCS_SERVER_OBJMEM_H

#include "mem.h"

#include <stddef.h>
#include <stdint.h>

struct obj;

static inline struct obj *objmem_obj_new(size_t size)
{
    return mem_calloc(size);
}
static inline void objmem_obj_free(struct obj *o, size_t size)
{
    mem_free(o, size);
}
static inline void *objmem_data_new(size_t n)
{
    return n ? mem_alloc(n) : NULL;
}
static inline void objmem_data_free(void *p, size_t n)
{
    mem_free(p, n);
}
static inline uint64_t *objmem_refs_new(size_t n)
{
    return n ? mem_alloc(n * sizeof(uint64_t)) : NULL;
}
static inline uint64_t *objmem_refs_grow(uint64_t *p, size_t old, size_t n)
{
    return mem_realloc(p, old * sizeof(uint64_t), n * sizeof(uint64_t));
}
static inline void objmem_refs_free(uint64_t *p, size_t n)
{
    mem_free(p, n * sizeof(uint64_t));
}

#endif
