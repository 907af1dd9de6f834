/* store: sessions, holds and watches over the heap (see store.h). */
#include "store.h"
#include "mem.h"
#include "rpc_err.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

struct watcher {
    struct watcher *next;
    uint64_t sess_id;
};

#define PTR(v)  ((void *)(uintptr_t)(v))
#define UINT(p) ((uint64_t)(uintptr_t)(p))

static int random_bytes(void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The heap's hook: a watched object is about to be freed. */
static void on_obj_free(void *ud, struct obj *o, enum free_reason why)
{
    struct store *st = ud;
    uint64_t *v = u64map_get(&st->watchers, o->id);
    struct watcher *w, *next;

    if (!v)
        return;
    w = PTR(*v);
    u64map_del(&st->watchers, o->id);
    o->flags &= ~(uint32_t)OBJ_WATCHED;
    for (; w; w = next) {
        struct sess *s = sess_find(st, w->sess_id);
        next = w->next;
        if (s) {
            u64map_del(&s->watches, o->id);
            st->notify(st->notify_ud, s, o->id, why);
        }
        mem_free(w, sizeof(*w));
    }
}

int store_init(struct store *st, const struct store_limits *lim, store_notify_cb cb, void *ud)
{
    uint8_t key[16];
    int rc;

    memset(st, 0, sizeof(*st));
    if ((rc = random_bytes(key, sizeof(key))) < 0)
        return rc;
    st->lim = *lim;
    st->notify = cb;
    st->notify_ud = ud;
    st->next_sess_id = 1;
    heap_init(&st->heap, on_obj_free, st);
    names_init(&st->names, key);
    u64map_init(&st->sessions);
    u64map_init(&st->watchers);
    return 0;
}

static void sess_destroy(struct sess *s)
{
    u64map_close(&s->holds);
    u64map_close(&s->watches);
    mem_free(s, sizeof(*s));
}

void store_close(struct store *st)
{
    uint32_t pos = 0;
    uint64_t k, v;
    while (u64map_next(&st->sessions, &pos, &k, &v))
        sess_destroy(PTR(v));
    pos = 0;
    while (u64map_next(&st->watchers, &pos, &k, &v)) {
        struct watcher *w = PTR(v), *next;
        for (; w; w = next) {
            next = w->next;
            mem_free(w, sizeof(*w));
        }
    }
    u64map_close(&st->sessions);
    u64map_close(&st->watchers);
    names_close(&st->names);
    heap_close(&st->heap);
}

uint64_t store_session_count(const struct store *st)
{
    return st->sessions.len;
}

int sess_new(struct store *st, struct sess **out)
{
    struct sess *s;
    if (u64map_reserve(&st->sessions, 1) < 0)
        return RPC_EOUT_OF_MEMORY;
    s = mem_calloc(sizeof(*s));
    if (!s)
        return RPC_EOUT_OF_MEMORY;
    if (random_bytes(s->token, sizeof(s->token)) < 0) {
        mem_free(s, sizeof(*s));
        return RPC_EINTERNAL;
    }
    s->id = st->next_sess_id++;
    u64map_init(&s->holds);
    u64map_init(&s->watches);
    *u64map_put(&st->sessions, s->id, NULL) = UINT(s);
    *out = s;
    return 0;
}

struct sess *sess_find(const struct store *st, uint64_t id)
{
    uint64_t *v = u64map_get(&st->sessions, id);
    return v ? PTR(*v) : NULL;
}

/* Remove s from the watcher list of object id. */
static void unwatch(struct store *st, struct sess *s, uint64_t id)
{
    uint64_t *v = u64map_get(&st->watchers, id);
    struct watcher **pp, *w;
    if (!v)
        return;
    for (pp = (struct watcher **)(uintptr_t *)v; (w = *pp); pp = &w->next) {
        if (w->sess_id == s->id) {
            *pp = w->next;
            mem_free(w, sizeof(*w));
            break;
        }
    }
    if (*v == 0) {
        struct obj *o = heap_get(&st->heap, id);
        u64map_del(&st->watchers, id);
        if (o)
            o->flags &= ~(uint32_t)OBJ_WATCHED;
    }
}

void sess_free(struct store *st, struct sess *s)
{
    uint32_t pos = 0;
    uint64_t k, v;

    sess_release_all(st, s);
    while (u64map_next(&s->watches, &pos, &k, &v))
        unwatch(st, s, k);
    u64map_del(&st->sessions, s->id);
    sess_destroy(s);
}

uint64_t sess_holds_on(const struct sess *s, uint64_t id)
{
    uint64_t *v = u64map_get(&s->holds, id);
    return v ? *v : 0;
}

int sess_reserve(struct sess *s)
{
    return u64map_reserve(&s->holds, 1) < 0 ? RPC_EOUT_OF_MEMORY : 0;
}

int sess_incref(struct store *st, struct sess *s, struct obj *o, uint32_t n, uint64_t *after)
{
    uint64_t *v;
    int rc;
    (void)st;
    if ((rc = heap_can_incr(o, CNT_HOLDS, n)) < 0)
        return rc;
    v = u64map_put(&s->holds, o->id, NULL);
    if (!v)
        return RPC_EOUT_OF_MEMORY;
    *v += n;
    s->nholds += n;
    heap_incr(o, CNT_HOLDS, n);
    if (after)
        *after = *v;
    return 0;
}

int sess_decref(struct store *st, struct sess *s, uint64_t id, uint32_t n, uint64_t *after)
{
    struct obj *o = heap_get(&st->heap, id);
    uint64_t *v;
    if (!o)
        return RPC_ENOT_FOUND;
    v = u64map_get(&s->holds, id);
    if (!v || *v < n)
        return RPC_ENOT_HELD;
    *v -= n;
    *after = *v;
    if (*v == 0)
        u64map_del(&s->holds, id);
    s->nholds -= n;
    heap_decr(&st->heap, o, CNT_HOLDS, n);
    return 0;
}

uint64_t sess_release_all(struct store *st, struct sess *s)
{
    struct u64map holds = s->holds;
    uint64_t released = s->nholds;
    uint32_t pos = 0;
    uint64_t k, v;

    /* Detach the map first: frees below may notify, and must see s consistent. */
    u64map_init(&s->holds);
    s->nholds = 0;
    while (u64map_next(&holds, &pos, &k, &v)) {
        struct obj *o = heap_get(&st->heap, k);
        assert(o && v <= UINT32_MAX);
        heap_decr(&st->heap, o, CNT_HOLDS, (uint32_t)v);
    }
    u64map_close(&holds);
    return released;
}

int sess_watch(struct store *st, struct sess *s, struct obj *o)
{
    struct watcher *w;
    uint64_t *v;
    int created;

    if (u64map_get(&s->watches, o->id))
        return 0;
    if (u64map_reserve(&s->watches, 1) < 0 || u64map_reserve(&st->watchers, 1) < 0)
        return RPC_EOUT_OF_MEMORY;
    w = mem_alloc(sizeof(*w));
    if (!w)
        return RPC_EOUT_OF_MEMORY;
    w->sess_id = s->id;
    v = u64map_put(&st->watchers, o->id, &created);
    w->next = created ? NULL : PTR(*v);
    *v = UINT(w);
    *u64map_put(&s->watches, o->id, NULL) = 1;
    o->flags |= OBJ_WATCHED;
    return 0;
}
