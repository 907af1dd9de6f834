/* store_priv: the store's private records, shared only by store.c and the
 * invariant check (check.c), which must read them. Nothing else includes
 * this header. */
#ifndef RCS_SERVER_STORE_PRIV_H
#define RCS_SERVER_STORE_PRIV_H

#include "store.h"

/* One session watching an object: st->watchers maps the object's id to a
 * list of these. */
struct watcher {
    struct watcher *next;
    uint64_t sess_id;
};

/* A share token's reference: st->shares maps the token's first 8 bytes to
 * one of these. */
struct share {
    uint8_t token[SESS_TOKEN_BYTES];
    uint64_t id;
    uint64_t sess_id;       /* the session that made it (it may have ended) */
    uint32_t ttl_s;         /* its ttl: a recovery restarts it at full */
    struct timerq_node ttl; /* queued until claimed or expired */
};

#define PTR(v)  ((void *)(uintptr_t)(v))
#define UINT(p) ((uint64_t)(uintptr_t)(p))

#endif
