/* query: why and referrers within a budget of work (see query.h). */
#include "query.h"
#include "mem.h"
#include "err.h"

#include <string.h>

/* The root kind of a live object, or -1 if it is not a root. */
static int root_kind(const struct heap *h, const struct obj *o, uint64_t id)
{
    if (o->holds > 0)
        return WHY_SESSION;
    if (heap_names(h, o, id) > 0)
        return WHY_NAME;
    if (heap_tokens(h, o, id) > 0)
        return WHY_TOKEN;
    return -1;
}

static int is_root(const struct obj *o)
{
    return o->holds > 0 || (obj_flags(o) & OBJ_EXTRA);
}

/* Fill r for a path found (path[0] a root): takes ownership of path. */
static void found(const struct store *st, struct why_result *r, uint64_t *path, uint32_t len)
{
    const struct heap *h = &st->heap;
    r->path = path;
    r->len = len;
    r->root = (enum why_root)root_kind(h, heap_get(h, path[0]), path[0]);
    if (r->root == WHY_SESSION)
        r->session = store_holder(st, path[0], NULL);
    else if (r->root == WHY_NAME)
        r->name = names_of_id(&st->names, path[0]);
}

static int found2(const struct store *st, struct why_result *r, uint64_t root, uint64_t id)
{
    uint64_t *path = mem_alloc(2 * sizeof(*path));
    if (!path)
        return RPC_EOUT_OF_MEMORY;
    path[0] = root;
    path[1] = id;
    found(st, r, path, 2);
    return 0;
}

/* How many times id appears in o's refs, spending one unit a ref; *stop
 * when the budget ran out first. */
static uint32_t appearances(const struct obj *o, uint64_t id, uint64_t budget, uint64_t *work,
                            int *stop)
{
    const uint64_t *refs = obj_refs(o);
    uint32_t nrefs = obj_nrefs(o), k = 0;
    for (uint32_t i = 0; i < nrefs; i++) {
        if (*work >= budget) {
            *stop = 1;
            break;
        }
        ++*work;
        k += refs[i] == id;
    }
    return k;
}

/* Step one: a root among the nearest slots that refers to id directly.
 * 1 if found (r filled), 0 if not, or RPC_EOUT_OF_MEMORY. */
static int probe_neighbours(const struct store *st, uint64_t id, uint64_t budget,
                            struct why_result *r)
{
    const struct heap *h = &st->heap;
    const struct obj *t = heap_get(h, id);
    int64_t c = heap_slot_of(id);
    int stop = 0;
    /* Its own refs first: a self-reference is one of its appearances. */
    uint64_t seen = appearances(t, id, budget, &r->work, &stop);

    for (int64_t d = 1; !stop && seen < t->internal; d++) {
        int inside = 0;
        for (int side = 0; side < 2 && !stop; side++) {
            int64_t s = side ? c - d : c + d;
            uint64_t rid;
            const struct obj *o;
            uint32_t k;
            if (s < 0 || s >= h->nslots)
                continue;
            inside = 1;
            if (r->work >= budget) {
                stop = 1;
                break;
            }
            r->work++;
            if (!(o = heap_slot(h, (uint32_t)s, &rid)) || !heap_get(h, rid))
                continue; /* (garbage found, waiting to be freed, is gone already) */
            if (!(k = appearances(o, id, budget, &r->work, &stop)))
                continue;
            seen += k;
            if (is_root(o))
                return found2(st, r, rid, id) < 0 ? RPC_EOUT_OF_MEMORY : 1;
        }
        if (!inside)
            break;
    }
    return 0;
}

/* One object a search has reached, and the index of the entry it was
 * reached from (NO_PARENT for a root). */
struct reached {
    uint64_t id;
    uint32_t parent;
};
#define NO_PARENT UINT32_MAX

/* Step two: breadth first from every root at once; the first time id is
 * reached the path is shortest. The queue is the search tree: each entry
 * names its parent's entry. Roots need no bookkeeping: level 0 is all of
 * them, so a root met again is never new. Other objects reached carry the
 * heap's scratch mark until the search ends. */
static int search_from_roots(struct store *st, uint64_t id, uint64_t budget, struct why_result *r)
{
    struct heap *h = &st->heap;
    struct reached *q = NULL;
    uint32_t qcap = 0, head = 0, tail = 0, nroots = UINT32_MAX, hit = 0;
    uint64_t *path;
    int rc = 0, found_it = 0;

#define SPEND()                                                                                    \
    do {                                                                                           \
        if (r->work >= budget)                                                                     \
            goto out;                                                                              \
        r->work++;                                                                                 \
    } while (0)
#define PUSH(x, from)                                                                              \
    do {                                                                                           \
        if (tail == qcap) {                                                                        \
            uint32_t ncap = qcap ? qcap * 2 : 256;                                                 \
            struct reached *nq =                                                                   \
                mem_realloc(q, (size_t)qcap * sizeof(*q), (size_t)ncap * sizeof(*q));              \
            if (!nq)                                                                               \
                goto oom;                                                                          \
            q = nq;                                                                                \
            qcap = ncap;                                                                           \
        }                                                                                          \
        q[tail].id = (x);                                                                          \
        q[tail++].parent = (from);                                                                 \
    } while (0)

    /* Level 0: every root with refs (the object itself is not one). */
    for (uint32_t i = 0; i < h->nslots; i++) {
        const struct obj *o;
        uint64_t rid;
        SPEND();
        if (!(o = heap_slot(h, i, &rid)) || !is_root(o) || obj_nrefs(o) == 0 || !heap_get(h, rid))
            continue;
        PUSH(rid, NO_PARENT);
    }
    nroots = tail;
    while (head < tail && !found_it) {
        uint32_t cur = head++;
        const struct obj *co = heap_get(h, q[cur].id);
        const uint64_t *refs = obj_refs(co);
        for (uint32_t k = 0; k < obj_nrefs(co); k++) {
            struct obj *ro;
            SPEND();
            if (!(ro = heap_get(h, refs[k])) || is_root(ro) || (obj_flags(ro) & OBJ_MARK))
                continue;
            PUSH(refs[k], cur);
            obj_set_flag(ro, OBJ_MARK);
            if (refs[k] == id) {
                found_it = 1;
                hit = tail - 1;
                break;
            }
        }
    }
    if (!found_it) {
        r->root = WHY_NONE; /* only a garbage cycle awaiting collection keeps it */
        goto out;
    }
    {
        uint32_t len = 0, i = 0;
        for (uint32_t e = hit; e != NO_PARENT; e = q[e].parent)
            len++;
        if (!(path = mem_alloc((size_t)len * sizeof(*path))))
            goto oom;
        for (uint32_t e = hit; e != NO_PARENT; e = q[e].parent)
            path[len - 1 - i++] = q[e].id;
        found(st, r, path, len);
    }
    goto out;
oom:
    rc = RPC_EOUT_OF_MEMORY;
out:
    for (uint32_t e = nroots; e < tail; e++)
        obj_clear_flag(heap_get(h, q[e].id), OBJ_MARK);
    mem_free(q, (size_t)qcap * sizeof(*q));
    return rc;
#undef SPEND
#undef PUSH
}

int query_why(struct store *st, uint64_t id, uint64_t budget, struct why_result *r)
{
    const struct heap *h = &st->heap;
    const struct obj *o = heap_get(h, id);
    uint64_t *path;
    int rc;

    memset(r, 0, sizeof(*r));
    r->root = WHY_UNKNOWN;
    if (root_kind(h, o, id) >= 0) {
        if (!(path = mem_alloc(sizeof(*path))))
            return RPC_EOUT_OF_MEMORY;
        path[0] = id;
        found(st, r, path, 1);
        return 0;
    }
    /* The search from the roots reads every slot before anything else: on
     * a heap of more slots than the budget it cannot finish, so the
     * neighbours get the whole budget; otherwise half, and the search the
     * rest. */
    if ((rc = probe_neighbours(st, id, h->nslots >= budget ? budget : budget / 2, r)) != 0)
        return rc < 0 ? rc : 0;
    if (h->nslots > budget - r->work)
        return 0; /* WHY_UNKNOWN */
    return search_from_roots(st, id, budget, r);
}

void query_why_done(struct why_result *r)
{
    mem_free(r->path, (size_t)r->len * sizeof(*r->path));
    r->path = NULL;
    r->len = 0;
}

int query_referrers(const struct heap *h, uint64_t id, uint64_t limit, uint64_t cursor,
                    uint64_t budget, struct referrers_result *r)
{
    const struct obj *t = heap_get(h, id);
    uint64_t seen = 0, i = cursor ? cursor - 1 : 0;
    int complete = 0;

    memset(r, 0, sizeof(*r));
    for (;; i++) {
        const struct obj *o;
        const uint64_t *refs;
        uint64_t rid;
        uint32_t k = 0, nrefs;
        /* Started at 0 and seen every appearance: nothing left to find. */
        if (i >= h->nslots || (cursor == 0 && seen >= t->internal)) {
            complete = 1;
            break;
        }
        if (r->n >= limit || r->work >= budget)
            break;
        r->work++;
        if (!(o = heap_slot(h, (uint32_t)i, &rid)) || !heap_get(h, rid))
            continue; /* (garbage found, waiting to be freed, is gone already) */
        /* A whole object at a time, so that every call makes progress. */
        refs = obj_refs(o);
        nrefs = obj_nrefs(o);
        r->work += nrefs;
        for (uint32_t j = 0; j < nrefs; j++)
            k += refs[j] == id;
        if (k == 0)
            continue;
        seen += k;
        if (r->n == r->cap) {
            uint32_t ncap = r->cap ? r->cap * 2 : 16;
            uint64_t *v = mem_realloc(r->ids, (size_t)r->cap * 8, (size_t)ncap * 8);
            if (!v) {
                query_referrers_done(r);
                return RPC_EOUT_OF_MEMORY;
            }
            r->ids = v;
            r->cap = ncap;
        }
        r->ids[r->n++] = rid;
    }
    r->next = complete ? 0 : i + 1;
    return 0;
}

void query_referrers_done(struct referrers_result *r)
{
    mem_free(r->ids, (size_t)r->cap * sizeof(*r->ids));
    r->ids = NULL;
    r->n = r->cap = 0;
}
