/* slowlog: the requests that took longest, as Redis's SLOWLOG: a ring of
 * the last --slowlog-max-len requests that took at least
 * --slowlog-log-slower-than-us in their handler, each with its method,
 * duration, client address, session and user, newest first. It is this
 * node's own record, on the loop's thread: never journaled or replicated.
 * It knows nothing of connections; the caller decides what to add. */
#ifndef RCS_SERVER_SLOWLOG_H
#define RCS_SERVER_SLOWLOG_H

#include "users.h"

#include <stdint.h>

/* A peer address as conn.c writes it ("127.0.0.1:53412", "unix#12"). */
#define SLOWLOG_CLIENT_MAX 64

struct slowlog_entry {
    uint64_t id;          /* 1, 2, ... in order of logging; reset does not reuse ids */
    uint64_t time;        /* when it was logged, unix seconds */
    uint64_t duration_us; /* time in the handler */
    uint64_t session;     /* the connection's session id (0: none yet) */
    const char *method;   /* the method's name: static (cmd_name) */
    char client[SLOWLOG_CLIENT_MAX];
    char user[USER_NAME_MAX + 1]; /* "" where nobody logs in */
};

struct slowlog {
    int64_t slower_than_us; /* read-only: -1 logs nothing, 0 every request */
    uint64_t max_len;       /* read-only: entries kept at most (0: none) */
    /* private: the ring, grown on demand up to max_len (so that a large
     * max-len costs memory only once requests are slow) */
    struct slowlog_entry *ring;
    uint64_t alloc, len, head; /* head: where the next entry goes */
    uint64_t next_id;
};

/* An empty log with these settings; allocates nothing. */
void slowlog_init(struct slowlog *sl, int64_t slower_than_us, uint64_t max_len);
/* Free the ring. */
void slowlog_close(struct slowlog *sl);

/* Whether a request that took us microseconds belongs in the log: one
 * compare in the common case, so the caller asks before it gathers the
 * rest. */
static inline int slowlog_wants(const struct slowlog *sl, uint64_t us)
{
    return sl->slower_than_us >= 0 && us >= (uint64_t)sl->slower_than_us && sl->max_len > 0;
}

/* Log one request (the strings are copied, cut to fit; method must be
 * static). The oldest entry goes once max_len are kept. Out of memory to
 * grow the ring, the oldest entry is overwritten early instead (or, with
 * none yet, nothing is logged). */
void slowlog_add(struct slowlog *sl, uint64_t unix_s, uint64_t duration_us, const char *method,
                 const char *client, uint64_t session, const char *user);
/* The number of entries kept. */
uint64_t slowlog_len(const struct slowlog *sl);
/* Entry i, 0 being the newest; i < slowlog_len. Valid until the next add
 * or reset. */
const struct slowlog_entry *slowlog_get(const struct slowlog *sl, uint64_t i);
/* Forget every entry (the ids go on from where they were). */
void slowlog_reset(struct slowlog *sl);

#endif
