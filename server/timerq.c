/* timerq: a binary min-heap of deadlines with back-pointers (see timerq.h). */
#include "timerq.h"
#include "mem.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>

void timerq_init(struct timerq *q)
{
    q->v = NULL;
    q->n = q->cap = 0;
    q->examined = 0;
}

void timerq_close(struct timerq *q)
{
    mem_free(q->v, (size_t)q->cap * sizeof(*q->v));
    timerq_init(q);
}

static int resize(struct timerq *q, uint32_t cap)
{
    struct timerq_ent *p = mem_realloc(q->v, (size_t)q->cap * sizeof(*p), (size_t)cap * sizeof(*p));
    if (!p && cap)
        return -ENOMEM;
    q->v = p;
    q->cap = cap;
    return 0;
}

int timerq_reserve(struct timerq *q, uint64_t want)
{
    uint64_t cap;
    if (want <= q->cap)
        return 0;
    if (want > UINT32_MAX - 1)
        return -ENOMEM;
    cap = q->cap ? (uint64_t)q->cap * 2 : 64;
    if (cap < want)
        cap = want;
    if (cap > UINT32_MAX - 1)
        cap = UINT32_MAX - 1;
    return resize(q, (uint32_t)cap);
}

void timerq_trim(struct timerq *q, uint64_t keep)
{
    uint64_t cap = keep * 2 > 1024 ? keep * 2 : 1024;
    assert(keep >= q->n);
    if (q->cap <= 1024 || q->cap / 4 <= keep)
        return;
    /* Halve at most: giving back a large block costs the kernel time in
     * proportion to its pages (2 ms for the 16 MiB of a million entries),
     * so a burst that drained is given back over a few calls. */
    if (cap < q->cap / 2)
        cap = q->cap / 2;
    resize(q, (uint32_t)cap); /* a failure keeps the old block */
}

static void place(struct timerq *q, uint32_t i, struct timerq_ent e)
{
    q->v[i] = e;
    e.node->pos = i + 1;
}

static void sift_up(struct timerq *q, uint32_t i, struct timerq_ent e)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        q->examined++;
        if (q->v[parent].deadline_ms <= e.deadline_ms)
            break;
        place(q, i, q->v[parent]);
        i = parent;
    }
    place(q, i, e);
}

static void sift_down(struct timerq *q, uint32_t i, struct timerq_ent e)
{
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= q->n)
            break;
        q->examined++;
        if (child + 1 < q->n) {
            q->examined++;
            if (q->v[child + 1].deadline_ms < q->v[child].deadline_ms)
                child++;
        }
        if (e.deadline_ms <= q->v[child].deadline_ms)
            break;
        place(q, i, q->v[child]);
        i = child;
    }
    place(q, i, e);
}

void timerq_push(struct timerq *q, struct timerq_node *node, uint64_t deadline_ms)
{
    assert(node->pos == 0 && "timerq_push of a queued node");
    assert(q->n < q->cap && "timerq_push without room reserved");
    node->deadline_ms = deadline_ms;
    sift_up(q, q->n++, (struct timerq_ent){deadline_ms, node});
}

void timerq_remove(struct timerq *q, struct timerq_node *node)
{
    uint32_t i;
    struct timerq_ent last;
    if (node->pos == 0)
        return;
    i = node->pos - 1;
    assert(i < q->n && q->v[i].node == node);
    node->pos = 0;
    last = q->v[--q->n];
    if (i == q->n)
        return;
    /* The last entry fills the hole, then moves whichever way it must. */
    if (i > 0 && last.deadline_ms < q->v[(i - 1) / 2].deadline_ms)
        sift_up(q, i, last);
    else
        sift_down(q, i, last);
}

struct timerq_node *timerq_due(struct timerq *q, uint64_t now_ms)
{
    if (q->n == 0)
        return NULL;
    q->examined++;
    return q->v[0].deadline_ms <= now_ms ? q->v[0].node : NULL;
}
