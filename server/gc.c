/* gc: Bacon-Rajan cycle collection (see gc.h and docs/gc.md): the
 * synchronous algorithm over a batch of candidates (collect_roots), and the
 * same algorithm run a bounded amount of work at a time across slices, with
 * its state in struct work, for periodic sweeps. */
#include "gc.h"
#include "mem.h"
#include "rpc_err.h"

#include <assert.h>
#include <string.h>
#include <time.h>

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
                push(s, refs[i]);
            }
        }
        if (!s->len || s->oom)
            return;
        o = heap_get_any(h, s->v[--s->len]);
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
                push(s, refs[i]);
            }
        }
        if (!s->len || s->oom)
            return;
        o = heap_get_any(h, s->v[--s->len]);
    }
}

/* Scan from root o: a gray object still referenced from outside the gray
 * subgraph is alive (ScanBlack); one that is not turns white (and is listed
 * in whites: an object turns white once at most), and its gray children are
 * scanned in turn. The stack may hold an object twice (at most once per
 * edge); what is no longer gray when it comes up is skipped. */
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
            for (uint32_t i = 0; i < obj_nrefs(o); i++)
                if (obj_color(heap_get_any(h, refs[i])) == COLOR_GRAY)
                    push(s, refs[i]);
        }
        if (!s->len || s->oom || blacks->oom || whites->oom)
            return;
        id = s->v[--s->len];
        o = heap_get_any(h, id);
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
    for (uint32_t i = 0; i < n && !s.oom; i++) {
        struct obj *o = heap_get_any(h, roots[i]);
        if (!o)
            continue; /* freed since it was buffered */
        obj_clear_flag(o, OBJ_BUFFERED);
        if (obj_color(o) == COLOR_GRAY) {
            r->candidates++;
        } else if (obj_color(o) == COLOR_PURPLE) {
            r->candidates++;
            roots[nroots++] = roots[i];
            mark_gray(h, &s, o, &r->examined);
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
    for (size_t i = 0; i < white.len; i++) {
        struct obj *o = heap_get_any(h, white.v[i]);
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
 * time. The objects it reaches are flagged OBJ_INGC. Their colors say what
 * the counts mean: an INGC object that is gray or white has had the edges
 * out of it subtracted from its targets' counts; a black one has not (not
 * yet processed, or restored). Between slices, the heap calls touch() before
 * any change to the count or refs of an INGC object; during MARK and SCAN
 * that abandons the collection (every subtracted edge is added back and the
 * roots go back to the buffer), so whatever MARK and SCAN conclude holds for
 * the graph as it is when SCAN ends. From then on the white objects are
 * garbage: heap->hide_white hides them from requests, COLLECT flags them
 * OBJ_GARBAGE, and they are freed a chunk at a time. docs/gc.md has the
 * argument. */

#define QUANTUM     256 /* objects or edges between two looks at the clock */
#define MAX_RESTART 3   /* abandoned collections in a row before one runs whole */

enum phase { IDLE, MARK, SCAN, COLLECT };

struct work {
    enum phase phase;
    uint64_t roots[GC_BATCH];
    uint32_t nroots, next_root; /* SCAN: the next root to scan from */
    struct stack stack;         /* MARK: reached, not processed; SCAN: to scan */
    struct stack black;         /* SCAN: to blacken (ScanBlack) */
    struct stack visited;       /* processed by MARK: every INGC object */
    struct stack garbage;       /* found, flagged OBJ_GARBAGE, not yet freed */
    size_t pos;                 /* COLLECT: next index in visited */
    struct sync sync;           /* a batch run whole */
    uint32_t restarts;          /* collections abandoned in a row */
    uint64_t abandoned;         /* collections abandoned, ever */
};

static void work_free(struct heap *h)
{
    struct work *w = h->gc_state;
    mem_free(w->stack.v, w->stack.cap * 8);
    mem_free(w->black.v, w->black.cap * 8);
    mem_free(w->visited.v, w->visited.cap * 8);
    mem_free(w->garbage.v, w->garbage.cap * 8);
    sync_free(&w->sync);
    mem_free(w, sizeof(*w));
    h->gc_state = NULL;
    h->gc_state_free = NULL;
}

static void abandon(struct heap *h);
static int work_oom(const struct work *w);

static void on_touch(struct heap *h)
{
    struct work *w = h->gc_state;
    if (w->phase == MARK || w->phase == SCAN) {
        abandon(h);
        w->restarts++;
    }
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

/* Put back every edge a gray or white object had taken out of its targets,
 * make every INGC object black again (purple if still buffered), and give
 * the roots back to the buffer. Counts are exact again; nothing allocates
 * but the candidate buffer (whose failure sets cand_lost). */
static void abandon(struct heap *h)
{
    struct work *w = h->gc_state;
    struct stack *lists[2] = {&w->visited, &w->stack};
    for (size_t i = 0; i < w->visited.len; i++) {
        struct obj *o = heap_get_any(h, w->visited.v[i]);
        uint32_t c = obj_color(o);
        if (c == COLOR_GRAY || c == COLOR_WHITE) {
            const uint64_t *refs = obj_refs(o);
            for (uint32_t k = 0; k < obj_nrefs(o); k++)
                heap_get_any(h, refs[k])->internal++;
        }
    }
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < lists[l]->len; i++) {
            struct obj *o = heap_get_any(h, lists[l]->v[i]);
            obj_clear_flag(o, OBJ_INGC);
            obj_set_color(o, (obj_flags(o) & OBJ_BUFFERED) ? COLOR_PURPLE : COLOR_BLACK);
        }
    }
    w->phase = IDLE;
    w->stack.len = w->black.len = w->visited.len = 0;
    w->abandoned++;
    for (uint32_t i = 0; i < w->nroots; i++)
        heap_buffer(h, w->roots[i]);
    w->nroots = 0;
}

/* Take a batch of candidates: the purple ones become the roots. */
static void start(struct heap *h, struct work *w, struct gc_result *r)
{
    uint32_t k = h->ncand < GC_BATCH ? h->ncand : GC_BATCH;
    w->nroots = w->next_root = 0;
    for (uint32_t i = 0; i < k; i++) {
        uint64_t id = h->cand[--h->ncand]; /* newest first: likely in cache */
        struct obj *o = heap_get(h, id);
        if (!o)
            continue; /* freed since it was buffered */
        obj_clear_flag(o, OBJ_BUFFERED);
        if (obj_color(o) != COLOR_PURPLE || (obj_flags(o) & OBJ_INGC))
            continue;
        obj_set_color(o, COLOR_BLACK); /* reached, not processed */
        obj_set_flag(o, OBJ_INGC);
        push(&w->stack, id);
        w->roots[w->nroots++] = id;
    }
    r->candidates += w->nroots;
    w->phase = w->nroots ? MARK : IDLE;
}

/* MarkGray: process a reached object: subtract the edges out of it, and
 * reach its targets. */
static void mark_step(struct heap *h, struct work *w, struct gc_result *r)
{
    uint64_t id = w->stack.v[--w->stack.len];
    struct obj *o = heap_get_any(h, id);
    const uint64_t *refs = obj_refs(o);
    obj_set_color(o, COLOR_GRAY);
    push(&w->visited, id);
    r->examined++;
    for (uint32_t i = 0; i < obj_nrefs(o); i++) {
        struct obj *t = heap_get_any(h, refs[i]);
        assert(t->internal > 0);
        t->internal--;
        if (!(obj_flags(t) & OBJ_INGC)) {
            obj_set_color(t, COLOR_BLACK);
            obj_set_flag(t, OBJ_INGC);
            push(&w->stack, refs[i]);
        }
    }
}

/* Scan and ScanBlack, one object at a time. The scan stack may hold an id
 * twice; whatever is no longer gray when it comes up is skipped. An object
 * waiting on the black stack stays gray or white until it is blackened, so
 * its color always says whether its edges are subtracted. */
static void scan_step(struct heap *h, struct work *w)
{
    struct obj *o;
    const uint64_t *refs;
    uint64_t id;
    if (w->black.len) {
        id = w->black.v[--w->black.len];
        o = heap_get_any(h, id);
        if (obj_color(o) == COLOR_BLACK)
            return;
        obj_set_color(o, COLOR_BLACK);
        refs = obj_refs(o);
        for (uint32_t i = 0; i < obj_nrefs(o); i++) {
            struct obj *t = heap_get_any(h, refs[i]);
            t->internal++;
            if (obj_color(t) != COLOR_BLACK)
                push(&w->black, refs[i]);
        }
        return;
    }
    if (!w->stack.len) {
        id = w->roots[w->next_root++];
        if (obj_color(heap_get_any(h, id)) == COLOR_GRAY)
            push(&w->stack, id);
        return;
    }
    id = w->stack.v[--w->stack.len];
    o = heap_get_any(h, id);
    if (obj_color(o) != COLOR_GRAY)
        return;
    if (heap_refcount(h, o, id) > 0) {
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
 * SCAN ended); flag them, and clear INGC everywhere. An INGC object that is
 * not white may have been freed since SCAN ended. */
static void collect_step(struct heap *h, struct work *w)
{
    uint64_t id = w->visited.v[w->pos++];
    struct obj *o = heap_get_any(h, id);
    if (!o || !(obj_flags(o) & OBJ_INGC))
        return;
    obj_clear_flag(o, OBJ_INGC);
    if (obj_color(o) != COLOR_WHITE)
        return;
    obj_set_color(o, COLOR_BLACK);
    obj_clear_flag(o, OBJ_BUFFERED); /* a stale id in the buffer is skipped */
    obj_set_flag(o, OBJ_GARBAGE);
    push(&w->garbage, id);
}

/* Up to QUANTUM units of the collection under way. */
static void work_step(struct heap *h, struct work *w, struct gc_result *r)
{
    for (int n = 0; n < QUANTUM && w->phase != IDLE; n++) {
        if (work_oom(w))
            return;
        switch (w->phase) {
        case MARK:
            if (w->stack.len) {
                mark_step(h, w, r);
            } else {
                w->phase = SCAN;
            }
            break;
        case SCAN:
            if (w->black.len || w->stack.len || w->next_root < w->nroots) {
                scan_step(h, w);
            } else {
                w->phase = COLLECT;
                w->pos = 0;
                h->hide_white = 1;
            }
            break;
        case COLLECT:
            if (w->pos < w->visited.len) {
                collect_step(h, w);
            } else {
                w->phase = IDLE;
                h->hide_white = 0;
                w->visited.len = 0;
                w->restarts = 0;
            }
            break;
        case IDLE:
            break;
        }
    }
}

/* Free up to n objects of garbage found. Their edges were subtracted by
 * MarkGray: heap_free_white does not look at their refs. */
static void free_garbage(struct heap *h, struct work *w, size_t n, struct gc_result *r)
{
    while (n-- && w->garbage.len) {
        uint64_t id = w->garbage.v[--w->garbage.len];
        heap_free_white(h, heap_get_any(h, id), id);
        r->collected++;
    }
}

static int work_oom(const struct work *w)
{
    return w->stack.oom || w->black.oom || w->visited.oom || w->garbage.oom;
}

/* A stack could not grow. Drop the collection and the garbage list, and let
 * repair() make every count exact and flag-free again (whatever garbage was
 * found becomes ordinary unreachable objects); the next collection is a
 * full one, which finds them. */
static void work_reset_oom(struct heap *h, struct work *w)
{
    w->phase = IDLE;
    w->nroots = 0;
    w->stack.len = w->black.len = w->visited.len = w->garbage.len = 0;
    w->stack.oom = w->black.oom = w->visited.oom = w->garbage.oom = 0;
    repair(h);
}

/* Bring the incremental state to rest before a synchronous collection: a
 * collection in MARK or SCAN is abandoned (its roots are back in the
 * buffer), one in COLLECT is finished, and all garbage found is freed.
 * Returns RPC_EOUT_OF_MEMORY if that could not be done (counts repaired,
 * cand_lost set). */
static int settle(struct heap *h, struct gc_result *r)
{
    struct work *w = h->gc_state;
    if (!w)
        return 0;
    if (w->phase == MARK || w->phase == SCAN)
        abandon(h);
    while (w->phase == COLLECT && !work_oom(w))
        work_step(h, w, r);
    if (work_oom(w)) {
        work_reset_oom(h, w);
        return RPC_EOUT_OF_MEMORY;
    }
    free_garbage(h, w, SIZE_MAX, r);
    return 0;
}

int gc_collect(struct heap *h, struct gc_result *r)
{
    uint64_t start_us = now_us(), *roots;
    struct sync y = {0};
    uint32_t n, cap;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    if ((rc = settle(h, r)) < 0) {
        r->duration_us = now_us() - start_us;
        return rc;
    }
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
    uint64_t start_us = now_us(), batch[GC_BATCH];
    struct work *w;
    int rc = 0;

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
                work_reset_oom(h, w);
                rc = RPC_EOUT_OF_MEMORY;
                break;
            }
        } else if (h->ncand == 0) {
            break;
        } else if (w->restarts >= MAX_RESTART) {
            /* Requests keep changing what this sweep examines: run one batch
             * whole, so that the sweep always gets through. */
            uint32_t k = h->ncand < GC_BATCH ? h->ncand : GC_BATCH;
            h->ncand -= k;
            memcpy(batch, h->cand + h->ncand, (size_t)k * 8);
            w->restarts = 0;
            rc = collect_roots(h, &w->sync, batch, k, r);
            if (rc < 0)
                break;
        } else {
            start(h, w, r);
        }
    } while (now_us() - start_us < budget_us);
    r->duration_us = now_us() - start_us;
    r->abandoned = w->abandoned;
    if (rc < 0)
        return rc;
    return h->ncand > 0 || h->cand_lost || w->phase != IDLE || w->garbage.len > 0;
}

uint64_t gc_pending(const struct heap *h)
{
    const struct work *w = h->gc_state;
    return w ? w->garbage.len : 0;
}
