/* slowlog: a ring of slow requests (see slowlog.h). Its memory counts in the
 * heap (mem.h), as Redis counts its slow log in used_memory. */
#include "slowlog.h"
#include "mem.h"

#include <string.h>

/* The first allocation: enough for a quiet server's slow requests. */
#define SLOWLOG_FIRST_ALLOC 16

void slowlog_init(struct slowlog *sl, int64_t slower_than_us, uint64_t max_len)
{
    memset(sl, 0, sizeof(*sl));
    sl->slower_than_us = slower_than_us;
    sl->max_len = max_len;
    sl->next_id = 1;
}

void slowlog_close(struct slowlog *sl)
{
    mem_free(sl->ring, sl->alloc * sizeof(*sl->ring));
    sl->ring = NULL;
    sl->alloc = sl->len = sl->head = 0;
}

/* Room for one more entry below max_len: the ring grows while it has not
 * wrapped yet (head == len), so its order stays as it is. 0 or -1. */
static int grow(struct slowlog *sl)
{
    uint64_t n = sl->alloc ? sl->alloc * 2 : SLOWLOG_FIRST_ALLOC;
    struct slowlog_entry *r;
    if (n > sl->max_len)
        n = sl->max_len;
    r = mem_realloc(sl->ring, sl->alloc * sizeof(*r), n * sizeof(*r));
    if (!r)
        return -1;
    sl->ring = r;
    sl->alloc = n;
    return 0;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

void slowlog_add(struct slowlog *sl, uint64_t unix_s, uint64_t duration_us, const char *method,
                 const char *client, uint64_t session, const char *user)
{
    struct slowlog_entry *e;
    if (sl->max_len == 0)
        return;
    if (sl->len == sl->alloc && sl->alloc < sl->max_len && sl->head == sl->len && grow(sl) < 0 &&
        sl->alloc == 0)
        return;
    if (sl->head == sl->alloc)
        sl->head = 0; /* wrapped: the oldest is overwritten */
    e = &sl->ring[sl->head++];
    e->id = sl->next_id++;
    e->time = unix_s;
    e->duration_us = duration_us;
    e->session = session;
    e->method = method;
    copy_str(e->client, sizeof(e->client), client);
    copy_str(e->user, sizeof(e->user), user);
    if (sl->len < sl->alloc)
        sl->len++;
}

uint64_t slowlog_len(const struct slowlog *sl)
{
    return sl->len;
}

const struct slowlog_entry *slowlog_get(const struct slowlog *sl, uint64_t i)
{
    /* The newest is just before head; len < alloc only before a wrap. */
    uint64_t k = (sl->head + sl->alloc - 1 - i) % sl->alloc;
    return &sl->ring[k];
}

void slowlog_reset(struct slowlog *sl)
{
    sl->len = sl->head = 0;
}
