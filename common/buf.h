/* buf: a growable byte buffer with a read offset, used for socket input and
 * reply output. Memory comes from mem.h, in the budget the buffer was
 * initialised with. A failed growth sets a sticky `oom` flag so that a long
 * run of appends (a msgpack packer) can be checked once. */
#ifndef RCS_COMMON_BUF_H
#define RCS_COMMON_BUF_H

#include "mem.h"

#include <stddef.h>
#include <string.h>

struct buf {
    char *data; /* private: storage, cap bytes */
    size_t cap; /* read-only */
    size_t len; /* read-only: bytes written */
    size_t off; /* read-only: bytes already consumed from the front */
    int oom;    /* read-only: an append failed since the last buf_reset */

    enum mem_budget budget; /* read-only: the budget its storage counts in */
};

/* An empty buffer whose storage counts in MEM_HEAP. */
void buf_init(struct buf *b);
/* An empty buffer whose storage counts in budget. */
void buf_init_in(struct buf *b, enum mem_budget budget);
/* Release the storage (the buffer stays usable, empty, in its budget). */
void buf_close(struct buf *b);
/* The slow path of buf_reserve: compact or reallocate. 0 or -ENOMEM. */
int buf_grow(struct buf *b, size_t n);
/* Make room for at least n more bytes at the tail. 0 or -ENOMEM. */
static inline int buf_reserve(struct buf *b, size_t n)
{
    return b->cap - b->len >= n ? 0 : buf_grow(b, n);
}
/* Append n bytes. 0 or -ENOMEM (and b->oom set). Inline: a msgpack packer
 * appends a few bytes at a time, and this is its hot path. */
static inline int buf_append(struct buf *b, const void *p, size_t n)
{
    int rc;
    if (b->cap - b->len < n && (rc = buf_grow(b, n)) < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}
/* Bytes written but not consumed. */
static inline size_t buf_pending(const struct buf *b)
{
    return b->len - b->off;
}
/* Mark n pending bytes consumed; when nothing is pending the offsets reset. */
void buf_consume(struct buf *b, size_t n);
/* Move pending bytes to the front so the tail has maximal room. */
void buf_compact(struct buf *b);
/* Drop everything (keeps storage) and clear oom. */
void buf_reset(struct buf *b);
/* Cut the written length back to len (>= off). */
void buf_truncate(struct buf *b, size_t len);
/* If nothing is pending and the storage exceeds keep bytes, release it. */
void buf_shrink(struct buf *b, size_t keep);

#endif
