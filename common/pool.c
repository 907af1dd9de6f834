/* pool: size-class pools in aligned arenas (see pool.h).
 *
 * Layout: an arena is POOL_ARENA_BYTES aligned to its size, split into
 * ARENA_POOLS pools of POOL_POOL_BYTES. Each pool starts with its header
 * (struct pool, in the first POOL_HEADER_BYTES); blocks follow. A block's
 * pool is its address with the low bits cleared. The arena's own bookkeeping
 * lives outside it (struct arena, from the system allocator), so every pool
 * of an arena can serve blocks.
 *
 * Free blocks of a pool form a list through their first word; blocks never
 * handed out are not touched at all (a bump offset marks where they start),
 * so a fresh pool costs no RSS until used. */
#include "pool.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA_POOLS ((uint32_t)(POOL_ARENA_BYTES / POOL_POOL_BYTES))

struct arena;

struct pool {
    void *freelist;           /* freed blocks */
    struct pool *next, *prev; /* class partial list; next alone in arena free list */
    struct arena *arena;
    uint32_t bump;   /* offset of the first never-used block */
    uint32_t nused;  /* blocks handed out */
    uint8_t cls;     /* size class while in use */
    uint8_t partial; /* on its class's partial list */
};

_Static_assert(sizeof(struct pool) <= POOL_HEADER_BYTES, "pool header too large");

struct arena {
    char *base;
    struct pool *free_pools;   /* pools given back, reusable by any class */
    uint32_t untouched;        /* pools [untouched, ARENA_POOLS) never used */
    uint32_t nfree;            /* free pools: given back plus untouched */
    struct arena *next, *prev; /* by_free[nfree] bucket */
};

static struct {
    int ready;
    uint8_t class_of[POOL_MAX_SMALL / 8 + 1]; /* (n + 7) / 8 -> class */
    uint32_t size[POOL_NCLASSES];
    uint32_t capacity[POOL_NCLASSES]; /* blocks per pool */
    struct pool *partial[POOL_NCLASSES];
    uint32_t pools[POOL_NCLASSES];
    uint64_t used[POOL_NCLASSES];
    /* Arenas bucketed by free pools: by_free[0] holds the full ones. New
     * pools come from the lowest non-empty bucket above 0. */
    struct arena *by_free[ARENA_POOLS + 1];
    uint64_t arenas, arenas_returned;
    uint64_t bytes_used; /* sum of the class sizes of blocks handed out */
} P;

static void init(void)
{
    uint32_t c = 0, s;
    for (s = 8; s <= 128; s += 8)
        P.size[c++] = s;
    for (s = 144; s <= 256; s += 16)
        P.size[c++] = s;
    /* Then eight classes per doubling up to POOL_MAX_SMALL. */
    for (uint32_t base = 256; base < POOL_MAX_SMALL; base *= 2)
        for (s = base + base / 8; s <= 2 * base; s += base / 8)
            P.size[c++] = s;
    assert(c == POOL_NCLASSES && P.size[c - 1] == POOL_MAX_SMALL);
    c = 0;
    for (uint32_t i = 0; i <= POOL_MAX_SMALL / 8; i++) {
        while (P.size[c] < i * 8)
            c++;
        P.class_of[i] = (uint8_t)c;
    }
    for (c = 0; c < POOL_NCLASSES; c++)
        P.capacity[c] = (uint32_t)((POOL_POOL_BYTES - POOL_HEADER_BYTES) / P.size[c]);
    P.ready = 1;
}

static inline struct pool *pool_of(const void *p)
{
    return (struct pool *)((uintptr_t)p & ~(uintptr_t)(POOL_POOL_BYTES - 1));
}

size_t pool_class_size(size_t n)
{
    if (!P.ready)
        init();
    return P.size[P.class_of[(n + 7) / 8]];
}

size_t pool_block_size(const void *p)
{
    return P.size[pool_of(p)->cls];
}

/* ---- arenas ---- */

static void bucket_remove(struct arena *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else
        P.by_free[a->nfree] = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->next = a->prev = NULL;
}

static void bucket_insert(struct arena *a)
{
    a->prev = NULL;
    a->next = P.by_free[a->nfree];
    if (a->next)
        a->next->prev = a;
    P.by_free[a->nfree] = a;
}

static struct arena *arena_new(void)
{
    size_t len = 2 * POOL_ARENA_BYTES;
    char *raw, *base;
    struct arena *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    /* Map twice the size and trim to an aligned arena. */
    raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        free(a);
        return NULL;
    }
    base = (char *)(((uintptr_t)raw + POOL_ARENA_BYTES - 1) & ~(uintptr_t)(POOL_ARENA_BYTES - 1));
    if (base > raw)
        munmap(raw, (size_t)(base - raw));
    if (raw + len > base + POOL_ARENA_BYTES)
        munmap(base + POOL_ARENA_BYTES, (size_t)(raw + len - (base + POOL_ARENA_BYTES)));
    a->base = base;
    a->nfree = ARENA_POOLS;
    P.arenas++;
    bucket_insert(a);
    return a;
}

/* Unmap an arena that is in no bucket. */
static void arena_free(struct arena *a)
{
    munmap(a->base, POOL_ARENA_BYTES);
    free(a);
    P.arenas--;
    P.arenas_returned++;
}

/* A pool for class cls from the fullest arena that has one. */
static struct pool *pool_take(uint32_t cls)
{
    struct arena *a = NULL;
    struct pool *p;
    for (uint32_t k = 1; k <= ARENA_POOLS && !a; k++)
        a = P.by_free[k];
    if (!a && !(a = arena_new()))
        return NULL;
    bucket_remove(a);
    if (a->free_pools) {
        p = a->free_pools;
        a->free_pools = p->next;
    } else {
        p = (struct pool *)(a->base + (size_t)a->untouched++ * POOL_POOL_BYTES);
    }
    a->nfree--;
    bucket_insert(a);
    memset(p, 0, sizeof(*p));
    p->arena = a;
    p->cls = (uint8_t)cls;
    p->bump = POOL_HEADER_BYTES;
    P.pools[cls]++;
    return p;
}

/* Give an empty pool back to its arena; unmap the arena if that empties it,
 * unless it is the last arena with room (kept as a spare against churn). */
static void pool_give_back(struct pool *p)
{
    struct arena *a = p->arena;
    P.pools[p->cls]--;
    bucket_remove(a);
    p->next = a->free_pools;
    a->free_pools = p;
    a->nfree++;
    if (a->nfree == ARENA_POOLS) {
        int others = 0;
        for (uint32_t k = 1; k <= ARENA_POOLS && !others; k++)
            others = P.by_free[k] != NULL;
        if (others) {
            arena_free(a);
            return;
        }
    }
    bucket_insert(a);
}

/* ---- blocks ---- */

static void partial_add(struct pool *p)
{
    p->prev = NULL;
    p->next = P.partial[p->cls];
    if (p->next)
        p->next->prev = p;
    P.partial[p->cls] = p;
    p->partial = 1;
}

static void partial_remove(struct pool *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        P.partial[p->cls] = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
    p->partial = 0;
}

void *pool_alloc(size_t n)
{
    uint32_t cls, size;
    struct pool *p;
    void *b;

    if (!P.ready)
        init();
    assert(n >= 1 && n <= POOL_MAX_SMALL);
    cls = P.class_of[(n + 7) / 8];
    size = P.size[cls];
    p = P.partial[cls];
    if (!p) {
        if (!(p = pool_take(cls)))
            return NULL;
        partial_add(p);
    }
    if (p->freelist) {
        b = p->freelist;
        p->freelist = *(void **)b;
    } else {
        b = (char *)p + p->bump;
        p->bump += size;
    }
    p->nused++;
    P.used[cls]++;
    P.bytes_used += size;
    if (!p->freelist && p->bump + size > POOL_POOL_BYTES)
        partial_remove(p);
    return b;
}

void pool_free(void *b)
{
    struct pool *p;
    if (!b)
        return;
    p = pool_of(b);
    assert(p->nused > 0 && "pool_free of a block not in use");
    *(void **)b = p->freelist;
    p->freelist = b;
    p->nused--;
    P.used[p->cls]--;
    P.bytes_used -= P.size[p->cls];
    if (p->nused == 0) {
        if (p->partial)
            partial_remove(p);
        pool_give_back(p);
    } else if (!p->partial) {
        partial_add(p);
    }
}

uint64_t pool_bytes_used(void)
{
    return P.bytes_used;
}

void pool_get_stats(struct pool_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!P.ready)
        init();
    st->arenas = P.arenas;
    st->arenas_returned = P.arenas_returned;
    st->bytes_mapped = P.arenas * POOL_ARENA_BYTES;
    for (uint32_t c = 0; c < POOL_NCLASSES; c++) {
        st->cls[c].size = P.size[c];
        st->cls[c].pools = P.pools[c];
        st->cls[c].used = P.used[c];
        st->cls[c].free = (uint64_t)P.pools[c] * P.capacity[c] - P.used[c];
        st->pools_used += P.pools[c];
        st->bytes_used += P.used[c] * P.size[c];
    }
    st->pools_free = P.arenas * ARENA_POOLS - st->pools_used;
}
