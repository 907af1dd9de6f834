/* gc: Bacon-Rajan cycle collection (see gc.h and docs/gc.md): the
 * synchronous algorithm over a batch of candidates (collect_roots), and the
 * same algorithm run a bounded amount of work at a time across slices, with
 * its state in struct work, for periodic sweeps. */
#define _GNU_SOURCE /* mremap */
#include "gc.h"
#include "mem.h"
#include "err.h"
#include "record.h"

#include <assert.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct stack {
    uint64_t *v;
    size_t len, cap;
    int oom;
};

__attribute__((noinline)) static void push_grow(struct stack *s, uint64_t id)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    uint64_t *p = mem_realloc(s->v, s->cap * 8, cap * 8);
    if (!p) {
        s->oom = 1;
        return;
    }
    s->v = p;
    s->cap = cap;
    s->v[s->len++] = id;
}

static inline void push(struct stack *s, uint64_t id)
{
    if (__builtin_expect(s->len < s->cap, 1))
        s->v[s->len++] = id;
    else
        push_grow(s, id);
}

static void stack_free(struct stack *s)
{
    mem_free(s->v, s->cap * 8);
    memset(s, 0, sizeof(*s));
}

/* Whether a gray object keeps a count once its internal edges are gone
 * (heap_refcount > 0, without the call in the common case). */
static inline int referenced(const struct heap *h, const struct obj *o, uint64_t id)
{
    return o->holds || o->internal || ((obj_flags(o) & OBJ_EXTRA) && heap_refcount(h, o, id) > 0);
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The synchronous path frees nothing before CollectWhite, so within one
 * chunk of candidates an object's address is as good as its id: its stacks
 * hold addresses, and an id is looked up once for each edge, never again
 * when its object comes off a stack. */
static inline void push_obj(struct stack *s, struct obj *o)
{
    push(s, (uint64_t)(uintptr_t)o);
}
static inline struct obj *pop_obj(struct stack *s)
{
    return (struct obj *)(uintptr_t)s->v[--s->len];
}

/* MarkGray from root o: color the subgraph gray and subtract every
 * internal edge out of it once (each object is pushed once: when it turns
 * gray). The root is processed without a trip through the stack. */
static void mark_gray(struct heap *h, struct stack *s, struct obj *o, uint64_t *examined)
{
    obj_set_color(o, COLOR_GRAY);
    for (;;) {
        const uint64_t *refs = obj_refs(o);
        (*examined)++;
        for (uint32_t i = 0; i < obj_nrefs(o); i++) {
            struct obj *t = heap_get_any(h, refs[i]);
            assert(t->internal > 0);
            t->internal--;
            if (obj_color(t) != COLOR_GRAY) {
                obj_set_color(t, COLOR_GRAY);
                push_obj(s, t);
            }
        }
        if (!s->len || s->oom)
            return;
        o = pop_obj(s);
    }
}

/* ScanBlack from o: it is alive after all, and so is everything it
 * reaches; put back the edges MarkGray subtracted out of each. */
static void scan_black(struct heap *h, struct stack *s, struct obj *o)
{
    obj_set_color(o, COLOR_BLACK);
    for (;;) {
        const uint64_t *refs = obj_refs(o);
        for (uint32_t i = 0; i < obj_nrefs(o); i++) {
            struct obj *t = heap_get_any(h, refs[i]);
            t->internal++;
            if (obj_color(t) != COLOR_BLACK) {
                obj_set_color(t, COLOR_BLACK);
                push_obj(s, t);
            }
        }
        if (!s->len || s->oom)
            return;
        o = pop_obj(s);
    }
}

/* Scan from root o (id id): a gray object still referenced from outside
 * the gray subgraph is alive (ScanBlack); one that is not turns white (and
 * is listed in whites, id then address: an object turns white once at
 * most), and its gray children are scanned in turn. The stack holds id and
 * address pairs, and may hold an object twice (at most once per edge);
 * what is no longer gray when it comes up is skipped. */
static void scan(struct heap *h, struct stack *s, struct stack *blacks, struct stack *whites,
                 uint64_t id, struct obj *o)
{
    for (;;) {
        if (obj_color(o) != COLOR_GRAY) {
            /* skipped */
        } else if (referenced(h, o, id)) {
            scan_black(h, blacks, o);
        } else {
            const uint64_t *refs = obj_refs(o);
            obj_set_color(o, COLOR_WHITE);
            push(whites, id);
            push_obj(whites, o);
            for (uint32_t i = 0; i < obj_nrefs(o); i++) {
                struct obj *t = heap_get_any(h, refs[i]);
                if (obj_color(t) == COLOR_GRAY) {
                    push(s, refs[i]);
                    push_obj(s, t);
                }
            }
        }
        if (!s->len || s->oom || blacks->oom || whites->oom)
            return;
        o = pop_obj(s);
        id = s->v[--s->len];
    }
}

/* Out of memory in the middle: recompute every internal count from the refs
 * (no memory needed), make everything black and unbuffered, and leave the
 * next collection to gc_full. */
static void repair(struct heap *h)
{
    uint64_t id;
    for (uint32_t i = 0; i < h->nslots; i++) {
        struct obj *o = heap_slot(h, i, &id);
        if (o) {
            o->internal = 0;
            obj_set_color(o, COLOR_BLACK);
            obj_clear_flag(o, OBJ_MARK | OBJ_BUFFERED | OBJ_GARBAGE | OBJ_INGC);
        }
    }
    h->hide_white = 0;
    for (uint32_t i = 0; i < h->nslots; i++) {
        struct obj *o = heap_slot(h, i, &id);
        if (o) {
            const uint64_t *refs = obj_refs(o);
            for (uint32_t k = 0; k < obj_nrefs(o); k++)
                heap_get_any(h, refs[k])->internal++;
        }
    }
    h->ncand = 0;
    h->cand_lost = 1;
}

/* The candidate buffer could not grow once: a full collection finds what
 * the lost candidates would have led to. */
static int collect_full(struct heap *h, struct gc_result *r)
{
    uint64_t id;
    int rc = gc_full(h, r);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < h->nslots; i++) {
        struct obj *o = heap_slot(h, i, &id);
        if (o) {
            obj_set_color(o, COLOR_BLACK);
            obj_clear_flag(o, OBJ_BUFFERED);
        }
    }
    h->ncand = 0;
    h->cand_lost = 0;
    return 0;
}

/* Lists of ids (candidates, what a collection visited, garbage) name slots
 * in no order on a heap that has run a while (freed slots are reused in any
 * order), so each id's slot, then its object, is a cache miss. The sliced
 * path's walks of such lists ask for the slot of the id AHEAD places on
 * and for the object of the one AHEAD / 2 on, whose slot has arrived by
 * then; the synchronous path resolves whole chunks first (resolve, below),
 * which overlaps more. A stale id is harmless: the slot read is bounded,
 * and a prefetch never faults. */
#define AHEAD 32

static inline void prefetch_slot(const struct heap *h, uint64_t id)
{
    uint32_t idx = (uint32_t)id - 1;
    if (idx < h->nslots)
        __builtin_prefetch(&h->slots[idx], 1);
}

static inline void prefetch_obj(const struct heap *h, uint64_t id)
{
    uint32_t idx = (uint32_t)id - 1;
    uint64_t v;
    if (idx < h->nslots && !((v = h->slots[idx]) & 1))
        __builtin_prefetch((const void *)(uintptr_t)v, 1);
}

/* Before ids[i] of ids[0..n) is used (i ascending; ids[0..AHEAD) were
 * asked for by prefetch_start). */
static inline void prefetch_next(const struct heap *h, const uint64_t *ids, size_t i, size_t n)
{
    if (i + AHEAD < n)
        prefetch_slot(h, ids[i + AHEAD]);
    if (i + AHEAD / 2 < n)
        prefetch_obj(h, ids[i + AHEAD / 2]);
}

/* Look ids[0..n) up into objs (NULL for a stale id) in two tight loops, so
 * that the cache misses of all n slots, then of all n objects, are in
 * flight at once rather than met one by one in the middle of MarkGray. On
 * a churned heap this took a million 2-cycles from 190-380 ms to 90-140
 * ms while the machine was loaded, where prefetching AHEAD ids on from
 * inside MarkRoots' loop had gained little. */
#define RESOLVE 256
static void resolve(const struct heap *h, const uint64_t *ids, uint32_t n, struct obj **objs)
{
    for (uint32_t i = 0; i < n; i++)
        prefetch_slot(h, ids[i]);
    for (uint32_t i = 0; i < n; i++) {
        objs[i] = heap_get_any(h, ids[i]);
        if (objs[i])
            __builtin_prefetch(objs[i], 1);
    }
}

/* The GC_FREE record of what CollectWhite is about to free, in the order it
 * frees them (the journal's hook; heap.h). 0, or RPC_EOUT_OF_MEMORY or the
 * hook's error, and then nothing may be freed. */
static int record_white(struct heap *h, const struct stack *white)
{
    uint64_t n = 0, *ids;
    int rc;
    for (size_t i = 0; i < white->len; i += 2)
        n += obj_color((struct obj *)(uintptr_t)white->v[i + 1]) == COLOR_WHITE;
    if (n == 0)
        return 0;
    if (!(ids = mem_alloc(n * 8)))
        return RPC_EOUT_OF_MEMORY;
    n = 0;
    for (size_t i = 0; i < white->len; i += 2)
        if (obj_color((struct obj *)(uintptr_t)white->v[i + 1]) == COLOR_WHITE)
            ids[n++] = white->v[i];
    rc = heap_gc_record(h, REC_GC_FREE, ids, n);
    mem_free(ids, n * 8);
    return rc;
}

/* The synchronous algorithm over the candidate ids roots[0..n) (owned by the
 * caller, no longer in the heap's buffer). Results are added to *r. 0, or
 * RPC_EOUT_OF_MEMORY after repair(). */
struct sync {
    struct stack s, blacks, white; /* kept from one chunk to the next */
};

static void sync_free(struct sync *y)
{
    stack_free(&y->s);
    stack_free(&y->blacks);
    stack_free(&y->white);
}

static int collect_roots(struct heap *h, struct sync *y, uint64_t *roots, uint32_t n,
                         struct gc_result *r)
{
    struct stack s = y->s, blacks = y->blacks, white = y->white;
    uint32_t nroots = 0;
    int rc = 0;

    s.len = blacks.len = white.len = 0;

    /* MarkRoots, as Bacon and Rajan write it: every candidate leaves the
     * buffer; a purple one is kept as a root (in place) and marked gray
     * with its subgraph at once; one an earlier root's MarkGray reached is
     * gray already and is scanned from that root. */
    for (uint32_t b = 0; b < n && !s.oom; b += RESOLVE) {
        uint32_t m = n - b < RESOLVE ? n - b : RESOLVE;
        struct obj *objs[RESOLVE];
        resolve(h, roots + b, m, objs);
        for (uint32_t i = 0; i < m && !s.oom; i++) {
            struct obj *o = objs[i];
            if (!o)
                continue; /* freed since it was buffered */
            obj_clear_flag(o, OBJ_BUFFERED);
            if (obj_color(o) == COLOR_GRAY) {
                r->candidates++;
            } else if (obj_color(o) == COLOR_PURPLE) {
                r->candidates++;
                roots[nroots++] = roots[b + i];
                mark_gray(h, &s, o, &r->examined);
            }
        }
    }
    /* ScanRoots. */
    for (uint32_t i = 0; i < nroots && !s.oom && !blacks.oom && !white.oom; i++)
        scan(h, &s, &blacks, &white, roots[i], heap_get_any(h, roots[i]));
    if (s.oom || blacks.oom || white.oom) {
        repair(h);
        rc = RPC_EOUT_OF_MEMORY;
        goto out;
    }
    /* CollectWhite: what is still white of what Scan listed is the garbage
     * (a later ScanBlack may have blackened some). The edges out of it were
     * subtracted by MarkGray and never put back: the counts of what it
     * pointed at are already what they must be once it is gone, so it is
     * freed without looking at its refs, and freeing one changes nothing
     * another is judged by. */
    if (h->gc_record && (rc = record_white(h, &white)) < 0) {
        repair(h);
        goto out;
    }
    for (size_t i = 0; i < white.len; i += 2) {
        struct obj *o = (struct obj *)(uintptr_t)white.v[i + 1];
        if (obj_color(o) != COLOR_WHITE)
            continue;
        heap_free_white(h, o, white.v[i]);
        r->collected++;
    }
out:
    y->s = s;
    y->blacks = blacks;
    y->white = white;
    y->s.oom = y->blacks.oom = y->white.oom = 0;
    return rc;
}

/* ---- incremental collection, for periodic sweeps ----
 *
 * One collection over a batch of candidates, run QUANTUM units of work at a
 * time, with requests running between slices. It never changes a count:
 * the trial counts of MarkGray live in a side array indexed like the
 * heap's slots (struct work's trial, written when the collection reaches
 * an object and flags it OBJ_INGC), so reads and frees between slices see
 * exact counts. The heap calls touch() before any change to the count or
 * refs of an INGC object; during MARK and SCAN that object is taken to be
 * alive for this collection (it goes on the black stack, and ScanBlack
 * blackens what it reaches), and it becomes a candidate again once the
 * collection ends. What SCAN leaves
 * white is garbage (docs/gc.md has the argument): heap->hide_white hides it
 * from requests, COLLECT flags it OBJ_GARBAGE, and it is freed a chunk at a
 * time, releasing its refs as any free does. */

#define QUANTUM 256 /* objects or edges between two looks at the clock */

/* A trial count, and whether a request touched the object. */
#define TRIAL_TOUCHED (1ull << 63)
static inline int64_t trial_count(uint64_t v)
{
    return (int64_t)(v << 1) >> 1; /* the low 63 bits, signed */
}
static inline void trial_add(uint64_t *v, int64_t d)
{
    *v = (*v & TRIAL_TOUCHED) | ((uint64_t)(trial_count(*v) + d) & ~TRIAL_TOUCHED);
}

enum phase { IDLE, GATHER, MARK, SCAN, COLLECT };

struct work {
    enum phase phase;
    struct stack roots;   /* GATHER: the candidates taken, purple and reached */
    size_t next_root;     /* SCAN: the next root to scan from */
    uint64_t gather_left; /* GATHER: candidates still to take */
    uint64_t batch;       /* candidates the next collection takes (adaptive) */
    uint64_t examined;    /* objects MarkGray processed in this collection */
    uint64_t *trial;      /* by slot: trial count (| TRIAL_TOUCHED) of each INGC object */
    size_t trial_len;     /* slots it has room for */
    struct stack stack;   /* MARK: reached, not processed; SCAN: to scan */
    struct stack black;   /* SCAN: to blacken (ScanBlack); touched objects wait here */
    struct stack touched; /* touched by requests: candidates again at the end */
    struct stack visited; /* processed by MARK: every INGC object */
    struct stack garbage; /* found, flagged OBJ_GARBAGE, not yet freed */
    size_t pos, ngarbage; /* COLLECT: next index in visited; whites moved to its front */
    uint64_t abandoned;   /* collections given up, ever */
    uint64_t touches;     /* objects touched during a collection, ever */
};

/* The trial array is mapped, not allocated: its pages are zero until a
 * collection reaches an object of theirs, so a sweep over a few objects
 * of a large heap costs a few pages, not an array of the heap's size, and
 * growing it with the heap moves no memory (mremap). A sweep that ends
 * gives it back (trial_release). Every entry is written when its object is
 * reached, so nothing needs clearing between collections. 0, or
 * RPC_EOUT_OF_MEMORY when the address space cannot be had. */
static int trial_reserve(struct work *w, size_t slots)
{
    size_t len = w->trial_len ? w->trial_len : 4096;
    void *p;
    if (slots <= w->trial_len)
        return 0;
    while (len < slots)
        len *= 2;
    if (w->trial)
        p = mremap(w->trial, w->trial_len * 8, len * 8, MREMAP_MAYMOVE);
    else
        p = mmap(NULL, len * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
    if (p == MAP_FAILED)
        return RPC_EOUT_OF_MEMORY;
    w->trial = p;
    w->trial_len = len;
    return 0;
}

static void trial_release(struct work *w)
{
    if (w->trial)
        munmap(w->trial, w->trial_len * 8);
    w->trial = NULL;
    w->trial_len = 0;
}

/* Give back the last 2 MiB of the array (all of it when it is no larger).
 * Unmapping is paid by the page: the 32 MB array of a sweep over a heap of
 * 3M slots took 3.1 ms of CPU to unmap at once, three slices' budget, so a
 * sweep gives it back a piece per step once its work is done. What remains
 * is a multiple of the piece, so trial_reserve can grow it again. */
#define TRIAL_PIECE ((size_t)1 << 18) /* entries */
static void trial_shrink(struct work *w)
{
    if (w->trial_len <= TRIAL_PIECE) {
        trial_release(w);
        return;
    }
    w->trial_len -= TRIAL_PIECE;
    munmap(w->trial + w->trial_len, TRIAL_PIECE * 8);
}

static inline uint64_t *trial_of(struct work *w, uint64_t id)
{
    return &w->trial[heap_slot_of(id)];
}

static void work_free(struct heap *h)
{
    struct work *w = h->gc_state;
    trial_release(w);
    stack_free(&w->roots);
    stack_free(&w->stack);
    stack_free(&w->black);
    stack_free(&w->touched);
    stack_free(&w->visited);
    stack_free(&w->garbage);
    mem_free(w, sizeof(*w));
    h->gc_state = NULL;
    h->gc_state_free = NULL;
}

/* A request is about to change the count or the refs of id, which the
 * collection has reached. Before SCAN ends, the object is alive for this
 * collection (a hold, name or token it gains is a root; a ref it gains or
 * loses changes a count that the trial no longer follows): it waits on the
 * black stack, which SCAN empties before anything else. */
static void on_touch(struct heap *h, uint64_t id)
{
    struct work *w = h->gc_state;
    uint64_t *v;
    if (w->phase != GATHER && w->phase != MARK && w->phase != SCAN)
        return;
    v = trial_of(w, id);
    if (*v & TRIAL_TOUCHED)
        return;
    *v |= TRIAL_TOUCHED;
    w->touches++;
    push(&w->touched, id);
    push(&w->black, id);
}

static struct work *work_of(struct heap *h)
{
    struct work *w = h->gc_state;
    if (!w && (w = mem_calloc(sizeof(*w))) != NULL) {
        h->gc_state = w;
        h->gc_state_free = work_free;
        h->gc_touch = on_touch;
    }
    return w;
}

/* An object of the collection leaves it: black again, or purple if it is a
 * candidate (a decrement buffered it meanwhile, or a touch did). */
static void leave(struct obj *o)
{
    obj_clear_flag(o, OBJ_INGC);
    obj_set_color(o, (obj_flags(o) & OBJ_BUFFERED) ? COLOR_PURPLE : COLOR_BLACK);
}

/* Bounds of the adaptive batch (see start). */
#define GC_BATCH_MIN 32
#define GC_SHARED    4

/* The collection over roots.len roots is over (done or given up): the next
 * one's batch. */
static void adapt_batch(struct work *w)
{
    if (w->examined > GC_SHARED * (uint64_t)w->roots.len)
        w->batch = w->examined > 2 * w->batch ? w->examined : 2 * w->batch;
    else if (w->examined <= 2 * (uint64_t)w->roots.len && w->batch / 2 >= GC_BATCH_MIN)
        w->batch /= 2;
}

/* The collection is over (done or given up): touched objects become
 * candidates. */
static void finish(struct heap *h, struct work *w)
{
    for (size_t i = 0; i < w->touched.len; i++)
        heap_buffer(h, w->touched.v[i]);
    adapt_batch(w);
    w->phase = IDLE;
    w->roots.len = 0;
    w->stack.len = w->black.len = w->touched.len = w->visited.len = 0;
}

/* Give the collection under way up (a gc request, or a stack or the trial
 * array could not grow): every object it reached leaves it, and the roots go back
 * to the buffer. No count was changed, so none needs repair. full: walk the
 * heap rather than the lists (after a failed push, an object may be flagged
 * and listed nowhere). */
static void abandon(struct heap *h, int full)
{
    struct work *w = h->gc_state;
    struct stack *lists[3] = {&w->visited, &w->stack, &w->black};
    uint64_t id;
    if (full) {
        for (uint32_t i = 0; i < h->nslots; i++) {
            struct obj *o = heap_slot(h, i, &id);
            if (o && (obj_flags(o) & OBJ_INGC))
                leave(o);
        }
    } else {
        for (int l = 0; l < 3; l++) {
            for (size_t i = 0; i < lists[l]->len; i++) {
                struct obj *o = heap_get_any(h, lists[l]->v[i]);
                if (o && (obj_flags(o) & OBJ_INGC))
                    leave(o);
            }
        }
    }
    for (size_t i = 0; i < w->roots.len; i++)
        heap_buffer(h, w->roots.v[i]);
    w->abandoned++;
    w->roots.oom = w->stack.oom = w->black.oom = w->touched.oom = w->visited.oom = 0;
    finish(h, w);
}

/* id is reached: flag it and give it a trial count, its refcount now.
 * Returns its trial entry, or NULL when the array cannot grow to the
 * heap's slots (a request may have added some; nothing flagged). */
static uint64_t *reach(struct heap *h, struct work *w, struct obj *o, uint64_t id)
{
    uint64_t *v;
    if (__builtin_expect(heap_slot_of(id) >= w->trial_len, 0) && trial_reserve(w, h->nslots) < 0) {
        w->stack.oom = 1;
        return NULL;
    }
    v = trial_of(w, id);
    *v = heap_refcount(h, o, id) & ~TRIAL_TOUCHED;
    obj_set_color(o, COLOR_BLACK); /* reached, not processed */
    obj_set_flag(o, OBJ_INGC);
    push(&w->stack, id);
    return v;
}

/* A collection takes a batch of candidates, one per unit of work (GATHER).
 * Small batches keep a collection's objects in cache from MarkGray to
 * CollectWhite (a million 2-cycles: 110-160 ms of sweep with 32, 400-480 ms
 * taking all at once); but an object reachable from many candidates is
 * examined again by every batch that reaches it, and a live chain of n
 * candidates cost n^2/64 with 32 at a time. So the batch adapts: a
 * collection that examined more than GC_SHARED times its roots gives the
 * next one a batch as large as what it examined (at least twice its own:
 * what one batch reached, the next takes whole), one that examined at most twice
 * its roots (a 2-cycle's) halves it (down to GC_BATCH_MIN), and a chain
 * costs a few passes over itself. */
static void start(struct heap *h, struct work *w)
{
    if (w->batch < GC_BATCH_MIN)
        w->batch = GC_BATCH_MIN;
    w->roots.len = 0;
    w->next_root = 0;
    w->examined = 0;
    w->gather_left = h->ncand < w->batch ? h->ncand : w->batch;
    w->phase = GATHER;
}

/* Take the newest candidate (likely in cache): a root if it is still purple
 * and not reached already. Requests may buffer more meanwhile; this
 * collection takes at most as many as there were when it started. */
static void gather_step(struct heap *h, struct work *w, struct gc_result *r)
{
    uint64_t id;
    struct obj *o;
    if (w->gather_left == 0 || h->ncand == 0) {
        r->candidates += w->roots.len;
        w->phase = w->roots.len ? MARK : IDLE;
        return;
    }
    w->gather_left--;
    if (h->ncand > AHEAD)
        prefetch_slot(h, h->cand[h->ncand - 1 - AHEAD]);
    if (h->ncand > AHEAD / 2)
        prefetch_obj(h, h->cand[h->ncand - 1 - AHEAD / 2]);
    id = h->cand[--h->ncand];
    o = heap_get(h, id);
    if (!o)
        return; /* freed since it was buffered */
    obj_clear_flag(o, OBJ_BUFFERED);
    if (obj_color(o) != COLOR_PURPLE || (obj_flags(o) & OBJ_INGC))
        return;
    push(&w->roots, id);
    if (!w->roots.oom)
        reach(h, w, o, id);
}

/* MarkGray: process a reached object: take the edges out of it off its
 * targets' trial counts, and reach its targets. (An object freed since it
 * was reached is skipped: what it pointed at was touched by its free.) */
static void mark_step(struct heap *h, struct work *w, struct gc_result *r)
{
    uint64_t id = w->stack.v[--w->stack.len];
    struct obj *o = heap_get_any(h, id);
    const uint64_t *refs;
    if (!o)
        return;
    refs = obj_refs(o);
    obj_set_color(o, COLOR_GRAY);
    push(&w->visited, id);
    r->examined++;
    w->examined++;
    for (uint32_t i = 0; i < obj_nrefs(o); i++) {
        struct obj *t = heap_get_any(h, refs[i]);
        uint64_t *v = (obj_flags(t) & OBJ_INGC) ? trial_of(w, refs[i]) : reach(h, w, t, refs[i]);
        if (!v)
            return;
        trial_add(v, -1);
    }
}

/* Scan and ScanBlack, one object at a time. The scan stack may hold an id
 * twice; whatever is no longer gray when it comes up is skipped. An object
 * waiting on the black stack stays gray or white until it is blackened, so
 * its color always says whether its edges are off its targets' trials.
 * ScanBlack puts back only edges into the collection's objects: a ref a
 * touched object gained may point anywhere. */
static void scan_step(struct heap *h, struct work *w)
{
    struct obj *o;
    const uint64_t *refs;
    uint64_t id;
    if (w->black.len) {
        id = w->black.v[--w->black.len];
        o = heap_get_any(h, id);
        if (!o || obj_color(o) == COLOR_BLACK)
            return;
        obj_set_color(o, COLOR_BLACK);
        refs = obj_refs(o);
        for (uint32_t i = 0; i < obj_nrefs(o); i++) {
            struct obj *t = heap_get_any(h, refs[i]);
            if (!(obj_flags(t) & OBJ_INGC))
                continue;
            trial_add(trial_of(w, refs[i]), 1);
            if (obj_color(t) != COLOR_BLACK)
                push(&w->black, refs[i]);
        }
        return;
    }
    if (!w->stack.len) {
        id = w->roots.v[w->next_root++];
        o = heap_get_any(h, id);
        if (o && obj_color(o) == COLOR_GRAY)
            push(&w->stack, id);
        return;
    }
    id = w->stack.v[--w->stack.len];
    o = heap_get_any(h, id);
    if (!o || obj_color(o) != COLOR_GRAY)
        return;
    if (trial_count(*trial_of(w, id)) > 0) {
        push(&w->black, id);
        return;
    }
    obj_set_color(o, COLOR_WHITE);
    refs = obj_refs(o);
    for (uint32_t i = 0; i < obj_nrefs(o); i++)
        if (obj_color(heap_get_any(h, refs[i])) == COLOR_GRAY)
            push(&w->stack, refs[i]);
}

/* CollectWhite, one object at a time: the whites are garbage (hidden since
 * SCAN ended); flag them and move their ids to the front of visited, which
 * becomes the garbage list; every other object leaves the collection. An
 * object may have been freed since SCAN ended (a white one by the free of
 * garbage that was all that referred to it). */
static void collect_step(struct heap *h, struct work *w)
{
    uint64_t id;
    prefetch_next(h, w->visited.v, w->pos, w->visited.len);
    id = w->visited.v[w->pos++];
    struct obj *o = heap_get_any(h, id);
    if (!o || !(obj_flags(o) & OBJ_INGC))
        return;
    if (obj_color(o) != COLOR_WHITE) {
        leave(o);
        return;
    }
    obj_clear_flag(o, OBJ_INGC | OBJ_BUFFERED); /* a stale id in the buffer is skipped */
    obj_set_color(o, COLOR_BLACK);
    obj_set_flag(o, OBJ_GARBAGE);
    w->visited.v[w->ngarbage++] = id;
}

/* COLLECT is done: visited's front is the garbage list. */
static void collect_end(struct heap *h, struct work *w)
{
    struct stack t = w->garbage;
    assert(w->garbage.len == 0);
    /* With a journal, the garbage set is recorded before any of it is
     * freed (it is hidden already); if it cannot be, COLLECT ends later. */
    if (heap_gc_record(h, REC_GC_GARBAGE, w->visited.v, w->ngarbage) < 0)
        return;
    w->garbage = w->visited;
    w->garbage.len = w->ngarbage;
    w->visited = t;
    h->hide_white = 0;
    finish(h, w);
}

static int work_oom(const struct work *w)
{
    return w->roots.oom || w->stack.oom || w->black.oom || w->touched.oom || w->visited.oom;
}

/* Up to QUANTUM units of the collection under way. */
static void work_step(struct heap *h, struct work *w, struct gc_result *r)
{
    for (int n = 0; n < QUANTUM && w->phase != IDLE && !work_oom(w); n++) {
        switch (w->phase) {
        case GATHER:
            gather_step(h, w, r);
            break;
        case MARK:
            if (w->stack.len) {
                mark_step(h, w, r);
            } else {
                w->phase = SCAN;
            }
            break;
        case SCAN:
            if (w->black.len || w->stack.len || w->next_root < w->roots.len) {
                scan_step(h, w);
            } else {
                w->phase = COLLECT;
                w->pos = w->ngarbage = 0;
                h->hide_white = 1;
            }
            break;
        case COLLECT:
            if (w->pos < w->visited.len)
                collect_step(h, w);
            else
                collect_end(h, w);
            break;
        case IDLE:
            break;
        }
    }
}

/* Free up to n objects of garbage found, as any object is freed (its refs
 * are released; garbage they point at only loses a count, it is on the
 * list). What the frees take with them counts as collected too. */
static void free_garbage(struct heap *h, struct work *w, size_t n, struct gc_result *r)
{
    uint64_t before = h->freed[FREE_CYCLE];
    const uint64_t *g = w->garbage.v;
    size_t end = w->garbage.len, first;
    /* The list is taken from its end, a chunk at a time, each chunk freed
     * in order (the order its GC_FREE record gives). */
    n = n < end ? n : end;
    if (n == 0)
        return;
    first = end - n;
    if (heap_gc_record(h, REC_GC_FREE, g + first, n) < 0)
        return;
    for (size_t i = first; i < end; i++) {
        if (i + AHEAD < end)
            prefetch_slot(h, g[i + AHEAD]);
        if (i + AHEAD / 2 < end)
            prefetch_obj(h, g[i + AHEAD / 2]);
        heap_free_garbage(h, g[i]);
    }
    w->garbage.len = first;
    r->collected += h->freed[FREE_CYCLE] - before;
}

/* Bring the incremental state to rest before a synchronous collection: a
 * collection in MARK or SCAN is given up (its roots are back in the
 * buffer), one in COLLECT is finished, and all garbage found is freed. */
static int settle(struct heap *h, struct gc_result *r)
{
    struct work *w = h->gc_state;
    if (!w)
        return 0;
    if (w->phase == GATHER || w->phase == MARK || w->phase == SCAN)
        abandon(h, work_oom(w));
    while (w->phase == COLLECT) {
        work_step(h, w, r);
        /* The journal did not take the garbage's record: it stays found
         * (and hidden) until a later slice records it. */
        if (w->phase == COLLECT && w->pos >= w->visited.len)
            return RPC_EOUT_OF_MEMORY;
    }
    free_garbage(h, w, SIZE_MAX, r);
    return w->garbage.len ? RPC_EOUT_OF_MEMORY : 0;
}

int gc_collect(struct heap *h, struct gc_result *r)
{
    uint64_t start_us = now_us(), *roots;
    struct sync y = {0};
    uint32_t n, cap;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    if ((rc = settle(h, r)) < 0)
        return rc;
    if (h->cand_lost) {
        struct gc_result f;
        rc = collect_full(h, &f);
        r->collected += f.collected;
        r->candidates += f.candidates;
        r->examined += f.examined;
        r->duration_us = now_us() - start_us;
        return rc;
    }
    /* Take the whole buffer: candidates raised while freeing start a new one. */
    roots = h->cand;
    n = h->ncand;
    cap = h->cand_cap;
    h->cand = NULL;
    h->ncand = h->cand_cap = 0;
    /* Candidates go in chunks of 256, so that each chunk's subgraphs are
     * still in cache from MarkGray to CollectWhite: a third faster on small
     * cycles. Chunks whose subgraphs are large (many roots into one big
     * structure would walk it once per chunk) send the rest in one go. */
    for (uint32_t i = 0, chunk = 256, k; i < n && rc == 0; i += k) {
        uint64_t examined = r->examined;
        k = n - i < chunk ? n - i : chunk;
        rc = collect_roots(h, &y, roots + i, k, r);
        if (r->examined - examined > 64 * (uint64_t)k)
            chunk = n;
    }
    sync_free(&y);
    mem_free(roots, (size_t)cap * 8);
    r->duration_us = now_us() - start_us;
    return rc;
}

int gc_slice(struct heap *h, uint64_t budget_us, struct gc_result *r)
{
    uint64_t start_us = now_us();
    struct work *w;
    int rc = 0, more;

    memset(r, 0, sizeof(*r));
    if (h->cand_lost || !(w = work_of(h))) {
        rc = gc_collect(h, r); /* (no room for the state: one whole collection) */
        return rc < 0 ? rc : 0;
    }
    do {
        if (w->garbage.len) {
            free_garbage(h, w, QUANTUM, r);
        } else if (w->phase != IDLE) {
            work_step(h, w, r);
            if (work_oom(w)) {
                abandon(h, 1);
                rc = RPC_EOUT_OF_MEMORY;
                break;
            }
        } else if (h->ncand > 0) {
            start(h, w);
        } else if (w->trial) {
            trial_shrink(w); /* the sweep's work is done: the array goes back */
        } else {
            break;
        }
    } while (now_us() - start_us < budget_us);
    more = h->ncand > 0 || h->cand_lost || w->phase != IDLE || w->garbage.len > 0 || w->trial;
    r->duration_us = now_us() - start_us;
    r->abandoned = w->abandoned;
    r->touched = w->touches;
    return rc < 0 ? rc : more;
}

uint64_t gc_pending(const struct heap *h)
{
    const struct work *w = h->gc_state;
    return w ? w->garbage.len : 0;
}

uint64_t gc_scratch_bytes(const struct heap *h)
{
    const struct work *w = h->gc_state;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), npages, n;
    unsigned char vec[1024];
    uint64_t resident = 0;
    if (!w || !w->trial)
        return 0;
    npages = (w->trial_len * 8 + page - 1) / page; /* (mmap rounds the mapping up to pages) */
    for (size_t p0 = 0; p0 < npages; p0 += n) {
        n = npages - p0 < sizeof(vec) ? npages - p0 : sizeof(vec);
        if (mincore((char *)w->trial + p0 * page, n * page, vec) < 0)
            return npages * page; /* (cannot tell: all of it) */
        for (size_t i = 0; i < n; i++)
            resident += vec[i] & 1;
    }
    return resident * page;
}
