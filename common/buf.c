/* buf: growable byte buffer (see buf.h). */
#include "buf.h"
#include "mem.h"

#include <errno.h>
#include <string.h>

void buf_init(struct buf *b)
{
    buf_init_in(b, MEM_HEAP);
}

void buf_init_in(struct buf *b, enum mem_budget budget)
{
    memset(b, 0, sizeof(*b));
    b->budget = budget;
}

void buf_close(struct buf *b)
{
    mem_free_in(b->budget, b->data, b->cap);
    buf_init_in(b, b->budget);
}

int buf_grow(struct buf *b, size_t n)
{
    size_t need, cap;
    char *p;
    if (b->cap - b->len >= n)
        return 0;
    if (b->off > 0) {
        buf_compact(b);
        if (b->cap - b->len >= n)
            return 0;
    }
    if (n > ((size_t)-1) / 2 - b->len)
        goto oom;
    need = b->len + n;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    p = mem_realloc_in(b->budget, b->data, b->cap, cap);
    if (!p)
        goto oom;
    b->data = p;
    b->cap = cap;
    return 0;
oom:
    b->oom = 1;
    return -ENOMEM;
}

void buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void buf_compact(struct buf *b)
{
    size_t n = b->len - b->off;
    if (b->off == 0)
        return;
    if (n)
        memmove(b->data, b->data + b->off, n);
    b->off = 0;
    b->len = n;
}

void buf_reset(struct buf *b)
{
    b->off = b->len = 0;
    b->oom = 0;
}

void buf_truncate(struct buf *b, size_t len)
{
    if (len < b->len && len >= b->off)
        b->len = len;
}

void buf_shrink(struct buf *b, size_t keep)
{
    if (b->len == b->off && b->cap > keep) {
        buf_close(b);
    }
}
