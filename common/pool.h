/* pool: a size-class allocator for small blocks, in the manner of CPython's
 * obmalloc. Blocks of up to POOL_MAX_SMALL bytes come from 16 KiB pools; a
 * pool serves one size class at a time and finds its header by masking a
 * block's address. Pools are carved from 1 MiB arenas that mmap returns
 * aligned, two to a 2 MiB chunk advised for transparent huge pages (one
 * page-table entry for a fork() to copy instead of 512), which a helper
 * thread (thp.h) makes resident ahead of need. Freed blocks first go to a
 * small per-class cache (31 addresses) that the next allocation of the
 * class takes from, newest first, as in glibc's tcache (its two operations are inline in the
 * caller); once it is full, freed blocks go to their pools. A few pools per class that empty stay
 * with their class until pool_trim (the server calls it once a second), so alloc-free churn never
 * pays for moving pools; other empty pools go back to their arenas at once, free for any class (no
 * memory stuck in one class, unlike memcached's slabs), and an arena whose pools are all free is
 * returned to the operating system. New pools come from the fullest arena that has one, so nearly
 * empty arenas drain. Single-threaded by design: rcstored has one thread, and so does every caller
 * of this module (the huge-page helper only hands over fresh chunks). Larger blocks are the
 * caller's business (mem.c sends them to the system allocator, and maps those of 2 MiB and more
 * itself). */
#ifndef RCS_COMMON_POOL_H
#define RCS_COMMON_POOL_H

#include <stddef.h>
#include <stdint.h>

#define POOL_ARENA_BYTES  ((size_t)1 << 20)
#define POOL_POOL_BYTES   ((size_t)16 << 10)
#define POOL_MAX_SMALL    4096
#define POOL_NCLASSES     56
#define POOL_HEADER_BYTES 64 /* in-band pool header; blocks start after it */

/* The fast paths are inline (below), so that an allocation the cache can
 * serve costs its caller a load and a store, not a call: the rest of the
 * module is private to pool.c. */
#define POOL_CACHE_SLOTS 31 /* with its count, a class's cache is 256 bytes */
struct pool__cache {
    uint64_t n;
    void *slot[POOL_CACHE_SLOTS];
};
extern struct pool__cache pool__cache[POOL_NCLASSES];
extern uint8_t pool__class_of[POOL_MAX_SMALL / 8 + 1]; /* (n + 7) / 8 -> class */
void *pool__alloc_slow(size_t n);
void pool__free_slow(void *p, uint32_t cls);
/* Panic unless p is a block in use of a pool serving cls (a full check: it
 * reads the pool header, so release builds make it only off the cache). */
void pool__assert_class(const void *p, uint32_t cls);
/* Panic: p was freed twice in a row. */
void pool__double_free(const void *p) __attribute__((noreturn, cold));

/* A block of n bytes (1 <= n <= POOL_MAX_SMALL), aligned to 8 (to 16 when
 * its class size is a multiple of 16). NULL when no arena can be mapped.
 * (Before the first call the class table is all zeros and class 0's cache
 * is empty, so the slow path runs first and sets the table up.) */
static inline void *pool_alloc(size_t n)
{
    struct pool__cache *c = &pool__cache[pool__class_of[(n + 7) / 8]];
    if (__builtin_expect(c->n != 0, 1))
        return c->slot[--c->n];
    return pool__alloc_slow(n);
}
/* Release a block from pool_alloc. The size is found from its pool. */
void pool_free(void *p);
/* The same, for a caller that knows the size it asked for (n, or any size
 * of the same class): spares reading the pool header. p is not NULL. */
static inline void pool_free_sized(void *p, size_t n)
{
    uint32_t cls = pool__class_of[(n + 7) / 8];
    struct pool__cache *c = &pool__cache[cls];
#ifndef NDEBUG
    pool__assert_class(p, cls);
#endif
    /* Always on, and cheap: the last slot lies next to the one the push writes. */
    if (__builtin_expect(c->n && c->slot[c->n - 1] == p, 0))
        pool__double_free(p);
    if (__builtin_expect(c->n < POOL_CACHE_SLOTS, 1)) {
        c->slot[c->n++] = p;
        return;
    }
    pool__free_slow(p, cls);
}
/* The class size that serves n bytes (what the block really occupies). */
size_t pool_class_size(size_t n);
/* The usable size of a block from pool_alloc. */
size_t pool_block_size(const void *p);

struct pool_class_stats {
    uint32_t size;  /* block size of the class */
    uint32_t pools; /* pools serving it now */
    uint64_t used;  /* blocks handed out */
    uint64_t free;  /* blocks in its pools not handed out */
};

struct pool_stats {
    uint64_t arenas;          /* mapped now */
    uint64_t arenas_returned; /* unmapped since start */
    uint64_t pools_used;      /* pools serving a class */
    uint64_t pools_free;      /* pools in mapped arenas serving none */
    uint64_t bytes_used;      /* sum of block sizes handed out */
    uint64_t bytes_mapped;    /* arenas * POOL_ARENA_BYTES */
    struct pool_class_stats cls[POOL_NCLASSES];
};

void pool_get_stats(struct pool_stats *st);
/* Give every empty pool back to its arena, unmap arenas left with no pool
 * in use (all but one, if no other arena has room: against churn; an arena
 * that empties is unmapped here, never by the free that emptied it), then
 * release the pages of free pools in arenas that
 * still serve others (madvise DONTNEED), so that a heap that shrinks gives
 * its memory back even when the blocks left are scattered. pool_trim does
 * all of it; pool_trim_step unmaps at most max_pools / 64 arenas (at least
 * one) and releases the pages of at most max_pools pools (16 KiB each), so that a server can spread
 * a large release over several short steps, and returns 1 while pages remain to release. */
void pool_trim(void);
int pool_trim_step(uint32_t max_pools);
/* Bytes of the pools serving a class (16 KiB each): what the pools take
 * from the arenas, kept as a running total. */
uint64_t pool_bytes_used(void);

#endif
