/* gc: synchronous Bacon-Rajan cycle collection (see gc.h and docs/gc.md). */
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

static void push(struct stack *s, uint64_t id)
{
    if (s->len == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        uint64_t *p = mem_realloc(s->v, s->cap * 8, cap * 8);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->v = p;
        s->cap = cap;
    }
    s->v[s->len++] = id;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* MarkGray from root: color the subgraph gray and subtract every internal
 * edge out of it once (each object is pushed once: when it turns gray). */
static void mark_gray(struct heap *h, struct stack *s, uint64_t root, uint64_t *examined)
{
    obj_set_color(heap_get(h, root), COLOR_GRAY);
    push(s, root);
    while (s->len && !s->oom) {
        struct obj *o = heap_get(h, s->v[--s->len]);
        const uint64_t *refs = obj_refs(o);
        (*examined)++;
        for (uint32_t i = 0; i < obj_nrefs(o); i++) {
            struct obj *t = heap_get(h, refs[i]);
            assert(t->internal > 0);
            t->internal--;
            if (obj_color(t) != COLOR_GRAY) {
                obj_set_color(t, COLOR_GRAY);
                push(s, refs[i]);
            }
        }
    }
}

/* ScanBlack from id: it is alive after all, and so is everything it
 * reaches; put back the edges MarkGray subtracted out of each. */
static void scan_black(struct heap *h, struct stack *s, uint64_t id)
{
    size_t base = s->len;
    obj_set_color(heap_get(h, id), COLOR_BLACK);
    push(s, id);
    while (s->len > base && !s->oom) {
        struct obj *o = heap_get(h, s->v[--s->len]);
        const uint64_t *refs = obj_refs(o);
        for (uint32_t i = 0; i < obj_nrefs(o); i++) {
            struct obj *t = heap_get(h, refs[i]);
            t->internal++;
            if (obj_color(t) != COLOR_BLACK) {
                obj_set_color(t, COLOR_BLACK);
                push(s, refs[i]);
            }
        }
    }
}

/* Scan from root: a gray object still referenced from outside the gray
 * subgraph is alive (ScanBlack); one that is not turns white, and its gray
 * children are scanned in turn. MARK keeps each object on the stack once. */
static void scan(struct heap *h, struct stack *s, struct stack *blacks, uint64_t root)
{
    struct obj *r = heap_get(h, root);
    if (obj_color(r) != COLOR_GRAY)
        return;
    obj_set_flag(r, OBJ_MARK);
    push(s, root);
    while (s->len && !s->oom && !blacks->oom) {
        uint64_t id = s->v[--s->len];
        struct obj *o = heap_get(h, id);
        const uint64_t *refs;
        obj_clear_flag(o, OBJ_MARK);
        if (obj_color(o) != COLOR_GRAY)
            continue;
        if (heap_refcount(h, o, id) > 0) {
            scan_black(h, blacks, id);
            continue;
        }
        obj_set_color(o, COLOR_WHITE);
        refs = obj_refs(o);
        for (uint32_t i = 0; i < obj_nrefs(o); i++) {
            struct obj *t = heap_get(h, refs[i]);
            if (obj_color(t) == COLOR_GRAY && !(obj_flags(t) & OBJ_MARK)) {
                obj_set_flag(t, OBJ_MARK);
                push(s, refs[i]);
            }
        }
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
            obj_clear_flag(o, OBJ_MARK | OBJ_BUFFERED | OBJ_GARBAGE);
        }
    }
    for (uint32_t i = 0; i < h->nslots; i++) {
        struct obj *o = heap_slot(h, i, &id);
        if (o) {
            const uint64_t *refs = obj_refs(o);
            for (uint32_t k = 0; k < obj_nrefs(o); k++)
                heap_get(h, refs[k])->internal++;
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
static int collect_roots(struct heap *h, uint64_t *roots, uint32_t n, struct gc_result *r)
{
    struct stack s = {0}, blacks = {0}, white = {0};
    uint32_t nroots = 0;
    int rc = 0;

    /* MarkRoots: keep purple candidates (in place); drop the rest. */
    for (uint32_t i = 0; i < n; i++) {
        struct obj *o = heap_get(h, roots[i]);
        if (!o)
            continue; /* freed since it was buffered */
        if (obj_color(o) == COLOR_PURPLE)
            roots[nroots++] = roots[i];
        else
            obj_clear_flag(o, OBJ_BUFFERED);
    }
    r->candidates += nroots;
    for (uint32_t i = 0; i < nroots && !s.oom; i++) {
        struct obj *o = heap_get(h, roots[i]);
        if (obj_color(o) == COLOR_PURPLE)
            mark_gray(h, &s, roots[i], &r->examined);
    }
    /* ScanRoots. */
    for (uint32_t i = 0; i < nroots && !s.oom && !blacks.oom; i++)
        scan(h, &s, &blacks, roots[i]);
    /* CollectRoots: gather what is white, flagged so that freeing one never
     * cascades into another. */
    for (uint32_t i = 0; i < nroots && !s.oom && !blacks.oom && !white.oom; i++) {
        uint64_t root = roots[i];
        struct obj *o = heap_get(h, root);
        obj_clear_flag(o, OBJ_BUFFERED);
        if (obj_color(o) != COLOR_WHITE)
            continue;
        obj_set_color(o, COLOR_BLACK);
        obj_set_flag(o, OBJ_GARBAGE);
        push(&s, root);
        while (s.len && !s.oom && !white.oom) {
            uint64_t id = s.v[--s.len];
            struct obj *g = heap_get(h, id);
            const uint64_t *refs = obj_refs(g);
            push(&white, id);
            for (uint32_t k = 0; k < obj_nrefs(g); k++) {
                struct obj *t = heap_get(h, refs[k]);
                if (obj_color(t) == COLOR_WHITE) {
                    obj_set_color(t, COLOR_BLACK);
                    obj_set_flag(t, OBJ_GARBAGE);
                    push(&s, refs[k]);
                }
            }
        }
    }
    if (s.oom || blacks.oom || white.oom) {
        repair(h);
        rc = RPC_EOUT_OF_MEMORY;
        goto out;
    }
    /* The edges out of the garbage were subtracted by MarkGray and never put
     * back: the counts of what the garbage pointed at are already what they
     * must be once it is gone, so it is freed without looking at its refs. */
    for (size_t i = 0; i < white.len; i++)
        heap_free_white(h, white.v[i]);
    r->collected += white.len;
out:
    mem_free(s.v, s.cap * 8);
    mem_free(blacks.v, blacks.cap * 8);
    mem_free(white.v, white.cap * 8);
    return rc;
}

int gc_collect(struct heap *h, struct gc_result *r)
{
    uint64_t start = now_us(), *roots = h->cand;
    uint32_t n = h->ncand, cap = h->cand_cap;
    int rc;

    memset(r, 0, sizeof(*r));
    if (h->cand_lost) {
        rc = collect_full(h, r);
        r->duration_us = now_us() - start;
        return rc;
    }
    /* Take the whole buffer: candidates raised while freeing start a new one. */
    h->cand = NULL;
    h->ncand = h->cand_cap = 0;
    rc = collect_roots(h, roots, n, r);
    mem_free(roots, (size_t)cap * 8);
    r->duration_us = now_us() - start;
    return rc;
}

int gc_slice(struct heap *h, uint64_t budget_us, struct gc_result *r)
{
    uint64_t start = now_us(), batch[GC_BATCH], last_batch_us = 0;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    if (h->cand_lost) {
        rc = collect_full(h, r);
        r->duration_us = now_us() - start;
        return rc < 0 ? rc : 0;
    }
    while (h->ncand > 0) { /* (cand may be NULL when there are none) */
        uint32_t k = h->ncand < GC_BATCH ? h->ncand : GC_BATCH;
        uint64_t t0 = now_us();
        /* The newest candidates first: their subgraphs are likely in cache. */
        h->ncand -= k;
        memcpy(batch, h->cand + h->ncand, (size_t)k * 8);
        if ((rc = collect_roots(h, batch, k, r)) < 0)
            break;
        last_batch_us = now_us() - t0;
        /* Stop before a batch like the last one would pass the budget
         * (always at least one batch per slice). */
        if (now_us() - start + last_batch_us > budget_us)
            break;
    }
    r->duration_us = now_us() - start;
    return rc < 0 ? rc : h->ncand > 0 || h->cand_lost;
}
