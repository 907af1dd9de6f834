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
 * handed out are not touched at all (a bump offset marks where they start).
 *
 * Arenas are mapped two at a time, as one 2 MiB chunk aligned to 2 MiB and
 * marked MADV_HUGEPAGE, so that the kernel can back the pair with one
 * transparent huge page: a fork() (the background snapshot) then copies one
 * page-table entry for it instead of 512, and the TLB holds 512 times more
 * of the heap. From the 16th arena on, the chunk comes from the huge-page
 * helper (thp.h), which made it resident off the loop; when it has none
 * ready, the first touch here makes it (a fault that zeroes 2 MiB). The
 * price: a chunk is resident whole, where 4 KiB pages would come one pool
 * at a time; on a large heap every chunk is used anyway. Pages given back
 * (pool_trim, an unmapped arena) split the huge page and leave the RSS as
 * before (the kernel frees the split page's unused part lazily, at once
 * under memory pressure); an arena whose pages were given back is advised
 * MADV_NOHUGEPAGE from then on (see release_free_pools). Where THP is off
 * (`never`) the advice is ignored: 4 KiB pages. */
#include "pool.h"
#include "panic.h"
#include "thp.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA_POOLS     ((uint32_t)(POOL_ARENA_BYTES / POOL_POOL_BYTES))
#define THP_MIN_ARENAS  16        /* chunks made ahead from the 16th arena (a 16 MiB heap) on */
#define CHUNK_BYTES     THP_BYTES /* two arenas, one transparent huge page */
#define POOL_KEEP_EMPTY 4
#define POOL_MAGIC      0x706f6f6cu /* "pool" */

struct arena;

struct pool {
    void *freelist;           /* freed blocks */
    struct pool *next, *prev; /* class partial list; next alone in arena free list */
    struct arena *arena;
    uint32_t bump;   /* offset of the first never-used block */
    uint32_t nused;  /* blocks handed out */
    uint32_t magic;  /* POOL_MAGIC while serving a class: a foreign pointer shows */
    uint8_t cls;     /* size class while in use */
    uint8_t partial; /* on its class's partial list */
    uint8_t in_use;  /* serving a class (else free in its arena) */
};

_Static_assert(sizeof(struct pool) <= POOL_HEADER_BYTES, "pool header too large");
_Static_assert(ARENA_POOLS <= 64, "the bucket bitmap has 64 bits");
_Static_assert(CHUNK_BYTES == 2 * POOL_ARENA_BYTES, "a chunk is two arenas");

struct arena {
    char *base;
    uint64_t free_mask;        /* pools given back (bit i: pool i), reusable by any class */
    uint64_t dirty_mask;       /* of those, the ones whose pages are still resident */
    uint32_t untouched;        /* pools [untouched, ARENA_POOLS) never used */
    uint32_t nfree;            /* free pools: given back plus untouched */
    uint32_t sparse;           /* advised MADV_NOHUGEPAGE: free pools' pages were released */
    struct arena *next, *prev; /* by_free[nfree] bucket */
};

static struct {
    int ready;
    uint32_t size[POOL_NCLASSES];
    uint32_t capacity[POOL_NCLASSES]; /* blocks per pool */
    struct pool *partial[POOL_NCLASSES];
    uint32_t pools[POOL_NCLASSES];
    uint64_t pools_in_use;
    /* Arenas bucketed by free pools: by_free[0] holds the full ones. New
     * pools come from the lowest non-empty bucket above 0. */
    struct arena *by_free[ARENA_POOLS + 1];
    uint64_t nonempty; /* bit k-1 set when by_free[k] (k >= 1) has arenas */
    /* Up to POOL_KEEP_EMPTY pools that empty stay on their class's partial
     * list, so that a class that empties and refills a pool (alloc-free-
     * alloc) never churns it through its arena; more go back at once, and
     * pool_trim gives back the kept ones. nempty[c] is the number of pools
     * on partial[c] with no block in use. */
    uint32_t nempty[POOL_NCLASSES];
    struct pool *partial_tail[POOL_NCLASSES];
    uint64_t arenas, arenas_returned;
    uint64_t dirty_pools; /* free pools pool_trim has yet to release */
    char *spare;          /* the second arena of the last chunk, not handed out yet */
} P;

/* Per-class caches of freed blocks, in the manner of glibc's tcache and
 * jemalloc's tcache bins: pool_free pushes a block's address on its class's
 * stack and pool_alloc pops the newest, so that alloc-free churn is a load
 * and a store and hands back a block whose line is still in cache. The
 * block itself is not written on the way in. From its pool's point of view
 * a cached block is still in use; once the cache is full, freed blocks go
 * to their pools, and pool_trim and pool_get_stats account for what is
 * cached. Both arrays are read by the inline fast paths of pool.h.
 * 56 classes x 31 blocks: at most 1,736 blocks are held back. */
struct pool__cache pool__cache[POOL_NCLASSES] __attribute__((aligned(64)));
uint8_t pool__class_of[POOL_MAX_SMALL / 8 + 1];
#define C pool__cache

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
        pool__class_of[i] = (uint8_t)c;
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
    return P.size[pool__class_of[(n + 7) / 8]];
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
    if (a->nfree > 0 && !P.by_free[a->nfree])
        P.nonempty &= ~(1ull << (a->nfree - 1));
}

static void bucket_insert(struct arena *a)
{
    a->prev = NULL;
    a->next = P.by_free[a->nfree];
    if (a->next)
        a->next->prev = a;
    P.by_free[a->nfree] = a;
    if (a->nfree > 0)
        P.nonempty |= 1ull << (a->nfree - 1);
}

/* The fullest arena with a free pool, or NULL. */
static struct arena *fullest_with_room(void)
{
    return P.nonempty ? P.by_free[__builtin_ctzll(P.nonempty) + 1] : NULL;
}

/* The address of a new arena: the spare half of the last chunk, else the
 * first half of a chunk from the helper (made resident off the loop), else
 * of one mapped here (map twice a chunk, trim to an aligned chunk, advise
 * huge pages: without THP, madvise fails and 4 KiB pages serve). NULL when
 * no address space is left. A spare whose pair is unmapped before it is
 * used is a plain 1 MiB arena. */
static char *arena_map(void)
{
    size_t len = 2 * CHUNK_BYTES;
    char *raw, *base;
    if (P.spare) {
        base = P.spare;
        P.spare = NULL;
        return base;
    }
    /* A small heap forks fast anyway: no helper, no chunk made ahead. */
    if (P.arenas >= THP_MIN_ARENAS && (base = thp_chunk_take()) != NULL) {
        P.spare = base + POOL_ARENA_BYTES;
        return base;
    }
    raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    base = (char *)(((uintptr_t)raw + CHUNK_BYTES - 1) & ~(uintptr_t)(CHUNK_BYTES - 1));
    if (base > raw)
        munmap(raw, (size_t)(base - raw));
    if (raw + len > base + CHUNK_BYTES)
        munmap(base + CHUNK_BYTES, (size_t)(raw + len - (base + CHUNK_BYTES)));
    (void)madvise(base, CHUNK_BYTES, MADV_HUGEPAGE);
    P.spare = base + POOL_ARENA_BYTES;
    return base;
}

static struct arena *arena_new(void)
{
    char *base;
    struct arena *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    if (!(base = arena_map())) {
        free(a);
        return NULL;
    }
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
    struct arena *a = fullest_with_room();
    struct pool *p;
    if (!a && !(a = arena_new()))
        return NULL;
    bucket_remove(a);
    if (a->free_mask) {
        uint32_t i = (uint32_t)__builtin_ctzll(a->free_mask);
        a->free_mask &= ~(1ull << i);
        if (a->dirty_mask & (1ull << i)) {
            a->dirty_mask &= ~(1ull << i);
            P.dirty_pools--;
        }
        p = (struct pool *)(a->base + (size_t)i * POOL_POOL_BYTES);
    } else {
        p = (struct pool *)(a->base + (size_t)a->untouched++ * POOL_POOL_BYTES);
    }
    a->nfree--;
    bucket_insert(a);
    memset(p, 0, sizeof(*p));
    p->arena = a;
    p->cls = (uint8_t)cls;
    p->bump = POOL_HEADER_BYTES;
    p->in_use = 1;
    p->magic = POOL_MAGIC;
    P.pools[cls]++;
    P.pools_in_use++;
    return p;
}

/* Give an empty pool back to its arena. An arena this empties stays mapped
 * until pool_trim_step: a collection that frees a million objects empties
 * dozens of arenas, and unmapping each (130-230 us for its dirty pages)
 * inside the request or slice that freed them was a tenth of the pause. */
static void pool_give_back(struct pool *p)
{
    struct arena *a = p->arena;
    P.pools[p->cls]--;
    P.pools_in_use--;
    p->in_use = 0;
    p->magic = 0;
    uint32_t i = (uint32_t)(((char *)p - a->base) / POOL_POOL_BYTES);
    bucket_remove(a);
    a->free_mask |= 1ull << i;
    a->dirty_mask |= 1ull << i;
    P.dirty_pools++;
    a->nfree++;
    bucket_insert(a);
}

/* Unmap up to max arenas with no pool in use, keeping one if no other
 * arena has room (against churn). Returns 1 if more wait for a next step. */
static int release_empty_arenas(uint32_t max)
{
    struct arena *a;
    while ((a = P.by_free[ARENA_POOLS]) != NULL) {
        bucket_remove(a);
        if (!fullest_with_room() || max == 0) {
            int more = fullest_with_room() != NULL;
            bucket_insert(a);
            return more;
        }
        P.dirty_pools -= (uint64_t)__builtin_popcountll(a->dirty_mask);
        arena_free(a);
        max--;
    }
    return 0;
}

/* Give the pages of up to max free pools back to the system (their address
 * space stays; a pool taken again starts from zeroed pages). Nothing of a
 * free pool is kept in its own pages, so all of them go. Adjacent pools go
 * in one madvise. The arena is advised MADV_NOHUGEPAGE first, for good:
 * else khugepaged (which scans what is advised MADV_HUGEPAGE, and with its
 * default max_ptes_none collapses a 2 MiB range holding a single page)
 * would bring the released pages back as part of a huge page, minutes
 * later. Advising it again once it is full would let khugepaged make it
 * huge again, but a collapse copies 2 MiB while the loop's accesses to the
 * range wait for it: not done, so an arena churned down and refilled stays
 * in 4 KiB pages (a fork copies its 256 entries, as before). */
static void release_free_pools(uint32_t max)
{
    for (uint32_t k = 1; k <= ARENA_POOLS && P.dirty_pools && max; k++) {
        for (struct arena *a = P.by_free[k]; a && max; a = a->next) {
            if (a->dirty_mask && !a->sparse) {
                (void)madvise(a->base, POOL_ARENA_BYTES, MADV_NOHUGEPAGE);
                a->sparse = 1;
            }
            while (a->dirty_mask && max) {
                uint32_t i = (uint32_t)__builtin_ctzll(a->dirty_mask), n = 0;
                while (i + n < ARENA_POOLS && (a->dirty_mask & (1ull << (i + n))) && n < max)
                    n++;
                madvise(a->base + (size_t)i * POOL_POOL_BYTES, (size_t)n * POOL_POOL_BYTES,
                        MADV_DONTNEED);
                a->dirty_mask &= ~(((n == 64 ? 0 : 1ull << n) - 1) << i);
                P.dirty_pools -= n;
                max -= n;
            }
        }
    }
}

/* ---- blocks ---- */

/* A class's partial list: blocks are taken from its head; pools that
 * empty move to its tail, so the empty ones are always the tail's run and
 * pool_trim finds them without walking the list. */
static void partial_add(struct pool *p)
{
    p->prev = NULL;
    p->next = P.partial[p->cls];
    if (p->next)
        p->next->prev = p;
    else
        P.partial_tail[p->cls] = p;
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
    else
        P.partial_tail[p->cls] = p->prev;
    p->next = p->prev = NULL;
    p->partial = 0;
}

/* p (on its list, followed by a pool in use) just emptied: join the empty
 * run at the tail. */
__attribute__((noinline)) static void partial_to_tail(struct pool *p)
{
    struct pool *t;
    partial_remove(p);
    t = P.partial_tail[p->cls]; /* not NULL: p was not alone */
    t->next = p;
    p->prev = t;
    p->next = NULL;
    P.partial_tail[p->cls] = p;
    p->partial = 1;
}

/* Take a block of class cls from its pools. */
static void *alloc_from_pool(uint32_t cls)
{
    uint32_t size = P.size[cls];
    struct pool *p = P.partial[cls];
    void *b;

    if (!p) {
        if (!(p = pool_take(cls)))
            return NULL;
        partial_add(p);
        P.nempty[cls]++; /* counted empty until its first block goes, below */
    }
    if (p->nused == 0)
        P.nempty[cls]--;
    if (p->freelist) {
        b = p->freelist;
        p->freelist = *(void **)b;
    } else {
        b = (char *)p + p->bump;
        p->bump += size;
    }
    p->nused++;
    if (!p->freelist && p->bump + size > POOL_POOL_BYTES)
        partial_remove(p);
    return b;
}

/* p, on its partial list, just lost its last block and was counted empty,
 * but its class keeps enough empty pools already: give it back. */
__attribute__((noinline)) static void release_empty(struct pool *p)
{
    P.nempty[p->cls]--;
    partial_remove(p);
    pool_give_back(p);
}

/* p just emptied: it joins the empty run at its list's tail, counted;
 * past POOL_KEEP_EMPTY in its class, it goes back. */
#define POOL_EMPTIED(p)                                                                            \
    do {                                                                                           \
        if ((p)->next && (p)->next->nused) /* (next empty: p borders the run) */                   \
            partial_to_tail(p);                                                                    \
        if (++P.nempty[(p)->cls] > POOL_KEEP_EMPTY)                                                \
            release_empty(p);                                                                      \
    } while (0)

/* Put a block back on its pool's free list. */
static void free_to_pool(void *b)
{
    struct pool *p = pool_of(b);
    PANIC_IF(p->nused == 0, "pool_free: block %p of a pool with no block in use (freed twice?)", b);
    *(void **)b = p->freelist;
    p->freelist = b;
    p->nused--;
    if (!p->partial)
        partial_add(p);
    if (p->nused == 0)
        POOL_EMPTIED(p);
}

/* Everything but the cache: the first pool of the class when it keeps a
 * free block after this one (so it cannot fill up), else the general path
 * (a new pool, the bump region, a pool filling up, initialisation). */
void *pool__alloc_slow(size_t n)
{
    uint32_t cls;
    struct pool *p;
    void *b;
    if (__builtin_expect(!P.ready, 0))
        init();
    assert(n >= 1 && n <= POOL_MAX_SMALL);
    cls = pool__class_of[(n + 7) / 8];
    p = P.partial[cls];
    if (__builtin_expect(p && (b = p->freelist) && *(void **)b, 1)) {
        p->freelist = *(void **)b;
        if (p->nused++ == 0)
            P.nempty[cls]--;
        return b;
    }
    return alloc_from_pool(cls);
}

/* b must be a block handed out by a pool that serves cls. */
static void check_block(const void *b, const struct pool *p, uint32_t cls)
{
    PANIC_IF(p->magic != POOL_MAGIC || !p->in_use,
             "pool_free: %p is not a block of the pool allocator (a foreign pointer, or its "
             "pool was released: freed twice?)",
             b);
    PANIC_IF(p->cls != cls,
             "pool_free: block %p is of size class %u (%zu bytes) but was freed as class %u "
             "(%zu bytes)",
             b, (unsigned)p->cls, (size_t)P.size[p->cls], (unsigned)cls, (size_t)P.size[cls]);
    PANIC_IF(p->nused == 0, "pool_free: block %p of a pool with no block in use (freed twice?)", b);
}

void pool__assert_class(const void *b, uint32_t cls)
{
    check_block(b, pool_of(b), cls);
}

void pool__double_free(const void *b)
{
    PANIC("pool_free: block %p freed twice in a row", b);
}

/* The cache of cls is full: the block goes to its pool, as glibc's tcache
 * passes it to the bins. */
void pool__free_slow(void *b, uint32_t cls)
{
    struct pool *p = pool_of(b);
    check_block(b, p, cls);
    if (__builtin_expect(p->partial, 1)) {
        /* On its partial list already. */
        *(void **)b = p->freelist;
        p->freelist = b;
        if (--p->nused == 0)
            POOL_EMPTIED(p);
        return;
    }
    free_to_pool(b);
}

void pool_free(void *b)
{
    struct pool *p;
    struct pool__cache *c;
    if (!b)
        return;
    p = pool_of(b);
    PANIC_IF(p->magic != POOL_MAGIC || !p->in_use,
             "pool_free: %p is not a block of the pool allocator (a foreign pointer, or its "
             "pool was released: freed twice?)",
             b);
    c = &C[p->cls];
    if (__builtin_expect(c->n && c->slot[c->n - 1] == b, 0))
        pool__double_free(b);
    if (__builtin_expect(c->n < POOL_CACHE_SLOTS, 1)) {
        c->slot[c->n++] = b;
        return;
    }
    pool__free_slow(b, p->cls);
}

/* Every cached block back to its pool. */
static void cache_flush(void)
{
    for (uint32_t k = 0; k < POOL_NCLASSES; k++) {
        while (C[k].n)
            free_to_pool(C[k].slot[--C[k].n]);
    }
}

int pool_trim_step(uint32_t max_pools)
{
    int more;
    cache_flush();
    for (uint32_t c = 0; c < POOL_NCLASSES; c++) {
        struct pool *p;
        while (P.nempty[c] && (p = P.partial_tail[c]) && p->nused == 0) {
            partial_remove(p);
            P.nempty[c]--;
            pool_give_back(p);
        }
        assert(P.nempty[c] == 0 && "empty pools are the tail's run");
    }
    /* An arena is ARENA_POOLS pools: max_pools' worth of them, at least one. */
    more = release_empty_arenas(max_pools / ARENA_POOLS ? max_pools / ARENA_POOLS : 1);
    release_free_pools(max_pools);
    return more || P.dirty_pools > 0;
}

void pool_trim(void)
{
    while (pool_trim_step(1024))
        ;
}

uint64_t pool_bytes_used(void)
{
    return P.pools_in_use * POOL_POOL_BYTES;
}

/* Blocks handed out are counted from the pool headers, not on every
 * alloc and free: stats are rare, allocations are not. */
void pool_get_stats(struct pool_stats *st)
{
    uint64_t used[POOL_NCLASSES] = {0};
    memset(st, 0, sizeof(*st));
    if (!P.ready)
        init();
    for (uint32_t k = 0; k <= ARENA_POOLS; k++) {
        for (struct arena *a = P.by_free[k]; a; a = a->next) {
            for (uint32_t i = 0; i < a->untouched; i++) {
                struct pool *p = (struct pool *)(a->base + (size_t)i * POOL_POOL_BYTES);
                if (p->in_use)
                    used[p->cls] += p->nused;
            }
        }
    }
    st->arenas = P.arenas;
    st->arenas_returned = P.arenas_returned;
    st->bytes_mapped = P.arenas * POOL_ARENA_BYTES;
    for (uint32_t c = 0; c < POOL_NCLASSES; c++) {
        st->cls[c].size = P.size[c];
        st->cls[c].pools = P.pools[c];
        used[c] -= C[c].n; /* cached blocks are free for the caller */
        st->cls[c].used = used[c];
        st->cls[c].free = (uint64_t)P.pools[c] * P.capacity[c] - used[c];
        st->pools_used += P.pools[c];
        st->bytes_used += used[c] * P.size[c];
    }
    st->pools_free = P.arenas * ARENA_POOLS - st->pools_used;
}
