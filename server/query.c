/* query: why and referrers within a budget of work (see query.h). */
#include "query.h"
#include "mem.h"
#include "rpc_err.h"
#include "u64map.h"

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
        r->session = store_holder(st, path[0]);
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
    uint64_t seen = 0;
    int stop = 0;

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

/* Step two: breadth first from every root at once, remembering each
 * object's parent; the first time id is reached the path is shortest. */
static int search_from_roots(const struct store *st, uint64_t id, uint64_t budget,
                             struct why_result *r)
{
    const struct heap *h = &st->heap;
    struct u64map parent; /* visited id -> parent id (0 for a root) */
    uint64_t *queue = NULL, *path, qcap = 0, head = 0, tail = 0;
    int rc = 0, reached = 0;

#define SPEND()                                                                                    \
    do {                                                                                           \
        if (r->work >= budget)                                                                     \
            goto out;                                                                              \
        r->work++;                                                                                 \
    } while (0)
#define PUSH(x)                                                                                    \
    do {                                                                                           \
        if (tail == qcap) {                                                                        \
            uint64_t ncap = qcap ? qcap * 2 : 256, *q;                                             \
            if (!(q = mem_realloc(queue, qcap * 8, ncap * 8)))                                     \
                goto oom;                                                                          \
            queue = q;                                                                             \
            qcap = ncap;                                                                           \
        }                                                                                          \
        queue[tail++] = (x);                                                                       \
    } while (0)

    u64map_init(&parent);
    /* Level 0: every root with refs (the object itself is not one). */
    for (uint32_t i = 0; i < h->nslots; i++) {
        const struct obj *o;
        uint64_t rid;
        SPEND();
        if (!(o = heap_slot(h, i, &rid)) || !is_root(o) || obj_nrefs(o) == 0 || !heap_get(h, rid))
            continue;
        SPEND();
        if (!u64map_put(&parent, rid, NULL))
            goto oom;
        PUSH(rid);
    }
    while (head < tail && !reached) {
        uint64_t cur = queue[head++];
        const struct obj *co = heap_get(h, cur);
        const uint64_t *refs;
        if (!co)
            continue;
        refs = obj_refs(co);
        for (uint32_t k = 0; k < obj_nrefs(co); k++) {
            int created;
            uint64_t *p;
            SPEND();
            if (!(p = u64map_put(&parent, refs[k], &created)))
                goto oom;
            if (!created)
                continue;
            *p = cur;
            if (refs[k] == id) {
                reached = 1;
                break;
            }
            SPEND();
            PUSH(refs[k]);
        }
    }
    if (!reached) {
        r->root = WHY_NONE; /* only a garbage cycle awaiting collection keeps it */
        goto out;
    }
    {
        uint32_t len = 0, i = 0;
        for (uint64_t x = id; x; x = *u64map_get(&parent, x))
            len++;
        if (!(path = mem_alloc((size_t)len * sizeof(*path))))
            goto oom;
        for (uint64_t x = id; x; x = *u64map_get(&parent, x))
            path[len - 1 - i++] = x;
        found(st, r, path, len);
    }
    goto out;
oom:
    rc = RPC_EOUT_OF_MEMORY;
out:
    u64map_close(&parent);
    mem_free(queue, qcap * 8);
    return rc;
#undef SPEND
#undef PUSH
}

int query_why(const struct store *st, uint64_t id, uint64_t budget, struct why_result *r)
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
    /* Half the budget for the neighbours, the rest (and what they left) for
     * the search from the roots. */
    if ((rc = probe_neighbours(st, id, budget / 2, r)) != 0)
        return rc < 0 ? rc : 0;
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
