/* store: sessions, holds and watches over the heap (see store.h). */
#include "store.h"
#include "store_priv.h"
#include "mem.h"
#include "panic.h"
#include "err.h"
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stddef.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* What a queued timerq_node belongs to (its tag). */
enum { TIMER_LEASE = 1, TIMER_TOKEN = 2 };

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
static void on_obj_free(void *ud, uint64_t id, enum free_reason why)
{
    struct store *st = ud;
    uint64_t *v = u64map_get(&st->watchers, id);
    struct watcher *w, *next;

    if (!v)
        return;
    w = PTR(*v);
    u64map_del(&st->watchers, id);
    for (; w; w = next) {
        struct sess *s = sess_find(st, w->sess_id);
        next = w->next;
        if (s) {
            u64map_del(&s->watches, id);
            st->notify(st->notify_ud, s, id, why);
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
    st->gc.threshold = st->gc.threshold_base = lim->gc_threshold ? lim->gc_threshold : 10000;
    st->notify = cb;
    st->notify_ud = ud;
    st->next_sess_id = 1;
    heap_init(&st->heap, on_obj_free, st);
    names_init(&st->names, key);
    u64map_init(&st->sessions);
    u64map_init(&st->watchers);
    u64map_init(&st->by_token);
    u64map_init(&st->shares);
    timerq_init(&st->timers);
    st->release_at_once = 4096;
    return 0;
}

static void sess_destroy(struct sess *s)
{
    u64map_close(&s->holds);
    u64map_close(&s->releasing);
    u64map_close(&s->watches);
    mem_free(s->owned, (size_t)s->owned_cap * sizeof(*s->owned));
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
    pos = 0;
    while (u64map_next(&st->shares, &pos, &k, &v))
        mem_free(PTR(v), sizeof(struct share));
    u64map_close(&st->shares);
    u64map_close(&st->by_token);
    timerq_close(&st->timers);
    mem_free(st->free_idx, (size_t)st->free_idx_cap * sizeof(*st->free_idx));
    mem_free(st->by_idx, (size_t)st->by_idx_cap * sizeof(*st->by_idx));
    names_close(&st->names);
    heap_close(&st->heap);
}

const struct gc_pause_bucket gc_pause_buckets[GC_PAUSE_BUCKETS] = {
    {100, "le_100us", "0.0001"}, {1000, "le_1ms", "0.001"}, {10000, "le_10ms", "0.01"},
    {100000, "le_100ms", "0.1"}, {1000000, "le_1s", "1"},   {0, "gt_1s", "+Inf"},
};

static void account_pause(struct gc_stats *g, uint64_t us)
{
    int b = 0;
    g->total_us += us;
    g->last_pause_us = us;
    if (us > g->max_pause_us)
        g->max_pause_us = us;
    while (b < GC_PAUSE_BUCKETS - 1 && us > gc_pause_buckets[b].max_us)
        b++;
    g->pauses[b]++;
}

/* Adapt, as PHP's collector does: a collection that found little garbage
 * among many candidates doubles the threshold (up to 64x the configured
 * one); one that found much halves it (down to the configured one). */
static void adapt(struct gc_stats *g, uint64_t candidates, uint64_t collected)
{
    if (candidates >= g->threshold && collected < candidates / 8) {
        if (g->threshold < 64 * g->threshold_base)
            g->threshold *= 2;
    } else if (collected >= candidates / 2 && g->threshold > g->threshold_base) {
        g->threshold /= 2;
    }
}

int store_collect(struct store *st, struct gc_result *r)
{
    struct gc_stats *g = &st->gc;
    int full = st->heap.cand_lost, rc = gc_collect(&st->heap, r);
    if (rc < 0)
        return rc;
    g->collections++;
    g->full += full;
    g->collected += r->collected;
    account_pause(g, r->duration_us);
    adapt(g, r->candidates, r->collected);
    return 0;
}

int store_sweep(struct store *st, uint64_t budget_us, struct gc_result *r)
{
    struct gc_stats *g = &st->gc;
    int full = st->heap.cand_lost, rc = gc_slice(&st->heap, budget_us, r);
    if (rc < 0)
        return rc;
    g->slices++;
    if (r->abandoned > g->restarts)
        g->restarts = r->abandoned; /* (running totals kept by gc.c) */
    if (r->touched > g->touched)
        g->touched = r->touched;
    g->full += full;
    g->collected += r->collected;
    g->sweep_candidates += r->candidates;
    g->sweep_collected += r->collected;
    account_pause(g, r->duration_us);
    if (rc == 0) {
        g->collections++;
        adapt(g, g->sweep_candidates, g->sweep_collected);
        g->sweep_candidates = g->sweep_collected = 0;
    }
    return rc;
}

int store_gc_due(const struct store *st)
{
    return st->heap.cand_lost || st->heap.ncand >= st->gc.threshold;
}

uint64_t store_holder(const struct store *st, uint64_t id, uint32_t *steps)
{
    uint32_t owner = st->heap.owner[heap_slot_of(id)], n = 0;
    uint64_t found = 0;
    if (owner) {
        PANIC_IF(owner >= st->by_idx_cap || !st->by_idx[owner],
                 "object %llu: owned by session index %u, which has no session",
                 (unsigned long long)id, owner);
        n = 1;
        found = st->by_idx[owner]->id;
    } else {
        /* Only extra holds, kept in each holder's map: no reverse index
         * (it would cost every incref), so look at a bounded few. */
        for (uint32_t i = 1; i <= st->next_idx && n < STORE_HOLDER_SCAN; i++) {
            const struct sess *s = st->by_idx[i];
            n++;
            if (s && u64map_get(&s->holds, id)) {
                found = s->id;
                break;
            }
        }
    }
    if (steps)
        *steps = n;
    return found;
}

uint64_t store_session_count(const struct store *st)
{
    return st->sessions.len;
}

static uint64_t token_key(const uint8_t *token)
{
    uint64_t k;
    memcpy(&k, token, sizeof(k));
    return k;
}

/* Room in by_idx for one more session index than handed out so far. */
static int by_idx_reserve(struct store *st)
{
    uint32_t cap = st->by_idx_cap ? st->by_idx_cap : 64;
    struct sess **p;
    if (st->next_idx + 1 < st->by_idx_cap)
        return 0;
    while (st->next_idx + 1 >= cap)
        cap *= 2;
    p = mem_realloc(st->by_idx, (size_t)st->by_idx_cap * sizeof(*p), (size_t)cap * sizeof(*p));
    if (!p)
        return RPC_EOUT_OF_MEMORY;
    memset(p + st->by_idx_cap, 0, (size_t)(cap - st->by_idx_cap) * sizeof(*p));
    st->by_idx = p;
    st->by_idx_cap = cap;
    return 0;
}

/* Make session id with this resume token. 0 or RPC_EOUT_OF_MEMORY;
 * RPC_EBAD_PARAMS if the id or the token's key is taken. */
static int sess_insert(struct store *st, uint64_t id, const uint8_t *token, struct sess **out)
{
    struct sess *s;
    if (id == 0 || token_key(token) == 0 || u64map_get(&st->sessions, id) ||
        u64map_get(&st->by_token, token_key(token)))
        return RPC_EBAD_PARAMS;
    /* Room in the queue for every session and token there could be: a
     * detach, which cannot fail, never has to allocate. */
    if (u64map_reserve(&st->sessions, 1) < 0 || u64map_reserve(&st->by_token, 1) < 0 ||
        timerq_reserve(&st->timers, (uint64_t)st->sessions.len + st->shares.len + 1) < 0 ||
        by_idx_reserve(st) < 0)
        return RPC_EOUT_OF_MEMORY;
    s = mem_calloc(sizeof(*s));
    if (!s)
        return RPC_EOUT_OF_MEMORY;
    memcpy(s->token, token, sizeof(s->token));
    s->id = id;
    if (id >= st->next_sess_id)
        st->next_sess_id = id + 1;
    s->idx = st->nfree_idx ? st->free_idx[--st->nfree_idx] : ++st->next_idx;
    st->by_idx[s->idx] = s;
    s->lease.tag = TIMER_LEASE;
    u64map_init(&s->holds);
    u64map_init(&s->releasing);
    u64map_init(&s->watches);
    *u64map_put(&st->sessions, s->id, NULL) = UINT(s);
    *u64map_put(&st->by_token, token_key(s->token), NULL) = s->id;
    *out = s;
    return 0;
}

int sess_new(struct store *st, struct sess **out)
{
    uint8_t token[SESS_TOKEN_BYTES];
    /* 128 random bits; the first 64 index the token table, so they must be
     * non-zero and unique (a repeat is a 2^-64 event: draw again). */
    do {
        if (random_bytes(token, sizeof(token)) < 0)
            return RPC_EINTERNAL;
    } while (token_key(token) == 0 || u64map_get(&st->by_token, token_key(token)));
    return sess_insert(st, st->next_sess_id, token, out);
}

int sess_new_at(struct store *st, uint64_t id, const uint8_t *token, struct sess **out)
{
    return sess_insert(st, id, token, out);
}

int sess_attach(struct store *st, void *conn, struct sess **out)
{
    int rc = sess_new(st, out);
    if (rc == 0)
        (*out)->conn = conn;
    return rc;
}

uint32_t sess_set_lease(struct store *st, struct sess *s, uint64_t ttl_s)
{
    s->ttl_s = (uint32_t)(ttl_s < st->lim.max_session_ttl ? ttl_s : st->lim.max_session_ttl);
    return s->ttl_s;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int sess_end_sliced(const struct store *st, const struct sess *s)
{
    return s->nholds > st->release_at_once;
}

/* s (detached, not queued) is over. Few holds: free it now. Many: it can
 * no longer be resumed, and store_expire releases its holds in slices; it
 * counts as detached until then. */
void sess_end(struct store *st, struct sess *s, int sliced)
{
    if (!sliced) {
        sess_free(st, s);
        return;
    }
    u64map_del(&st->by_token, token_key(s->token));
    s->releasing = s->holds; /* moved: released from rel_pos on */
    u64map_init(&s->holds);
    s->rel_pos = 0;
    s->ending = 1;
    s->next_ending = NULL;
    if (st->ending_tail)
        st->ending_tail->next_ending = s;
    else
        st->ending = s;
    st->ending_tail = s;
    st->sessions_detached++;
}

void sess_end_done(struct store *st, struct sess *s)
{
    struct sess **pp = &st->ending, *prev = NULL;
    while (*pp && *pp != s) {
        prev = *pp;
        pp = &(*pp)->next_ending;
    }
    PANIC_IF(!*pp, "session %llu is not ending", (unsigned long long)s->id);
    *pp = s->next_ending;
    if (st->ending_tail == s)
        st->ending_tail = prev;
    st->sessions_detached--;
    sess_free(st, s);
}

/* The journal's record of a decision about s (nothing to record for a
 * session no record names). 0 or the hook's error. */
static int record_sess(struct store *st, enum rec_type type, const struct sess *s)
{
    struct rec r = {.type = type, .sess = s->id};
    if (!st->record || !s->journaled)
        return 0;
    return st->record(st->record_ud, &r);
}

/* The collector's records go to the same journal. */
static int gc_record(void *ud, int type, const uint64_t *ids, uint64_t n)
{
    struct store *st = ud;
    struct rec r = {.type = (enum rec_type)type, .items = ids, .nitems = n};
    return st->record(st->record_ud, &r);
}

void store_set_journal(struct store *st, int (*record)(void *ud, const struct rec *r), void *ud)
{
    st->record = record;
    st->record_ud = ud;
    st->heap.gc_record = record ? gc_record : NULL;
    st->heap.gc_record_ud = st;
}

/* End s (detached, not queued) as decided now, recorded first. 0 or the
 * journal's error (nothing changed). */
static int end_recorded(struct store *st, struct sess *s)
{
    int sliced = sess_end_sliced(st, s), rc;
    if ((rc = record_sess(st, sliced ? REC_SESS_END : REC_SESS_CLOSE, s)) < 0)
        return rc;
    sess_end(st, s, sliced);
    return 0;
}

int sess_release_pairs(struct store *st, struct sess *s, const void *pairs, uint64_t n)
{
    struct heap *h = &st->heap;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t id, cnt, *v;
        uint32_t slot;
        memcpy(&id, (const char *)pairs + 16 * i, 8);
        memcpy(&cnt, (const char *)pairs + 16 * i + 8, 8);
        slot = heap_slot_of(id);
        if (!heap_get(h, id) || cnt == 0 || cnt > UINT32_MAX || cnt > s->nholds)
            return RPC_EBAD_PARAMS;
        if ((v = u64map_get(&s->releasing, id)) && *v == cnt) {
            *v = 0; /* (kept, so that store_expire's cursor stays valid) */
        } else if (cnt == 1 && h->owner[slot] == s->idx && s->owned_live > 0) {
            h->owner[slot] = 0;
            s->owned_live--;
        } else {
            return RPC_EBAD_PARAMS;
        }
        s->nholds -= cnt;
        heap_decr(h, id, CNT_HOLDS, (uint32_t)cnt);
    }
    return 0;
}

/* Holds of an ending session released per SESS_RELEASE record. */
#define RELEASE_BATCH 256

/* Release the holds of an ending session until budget_us has passed since
 * start_us, RELEASE_BATCH at a time, each batch recorded first. 1 once it
 * holds nothing, 0 if it has more, or the journal's error. */
static int release_some(struct store *st, struct sess *s, uint64_t start_us, uint64_t budget_us)
{
    struct heap *h = &st->heap;
    uint64_t pairs[2 * RELEASE_BATCH], k, v, id;
    int rc;
    /* Nothing adds to releasing or to owned while s is ending (it has no
     * connection and cannot be resumed), so both cursors stay valid. */
    for (;;) {
        uint32_t pos = s->rel_pos, nowned = s->nowned, n = 0, m;
        struct rec r = {.type = REC_SESS_RELEASE, .sess = s->id, .items = pairs};
        while (n < RELEASE_BATCH && u64map_next(&s->releasing, &pos, &k, &v)) {
            if (v == 0)
                continue; /* released already */
            pairs[2 * n] = k;
            pairs[2 * n + 1] = v;
            n++;
        }
        m = n;
        while (n < RELEASE_BATCH && nowned > 0) {
            uint32_t slot = s->owned[--nowned];
            struct obj *o;
            if (slot >= h->nslots || h->owner[slot] != s->idx || !(o = heap_slot(h, slot, &id)) ||
                (obj_flags(o) & OBJ_SEEN))
                continue; /* stale, or a duplicate in this batch */
            obj_set_flag(o, OBJ_SEEN);
            pairs[2 * n] = id;
            pairs[2 * n + 1] = 1;
            n++;
        }
        for (uint32_t i = m; i < n; i++)
            obj_clear_flag(heap_get_any(h, pairs[2 * i]), OBJ_SEEN);
        if (n == 0)
            break;
        r.nitems = n;
        if (st->record && (rc = st->record(st->record_ud, &r)) < 0)
            return rc;
        s->rel_pos = pos;
        s->nowned = nowned;
        rc = sess_release_pairs(st, s, pairs, n);
        PANIC_IF(rc < 0, "session %llu: releasing its own holds failed", (unsigned long long)s->id);
        if (budget_us != UINT64_MAX && now_us() - start_us >= budget_us)
            return 0;
    }
    PANIC_IF(s->nholds != 0, "session %llu released with %llu holds left",
             (unsigned long long)s->id, (unsigned long long)s->nholds);
    return 1;
}

void sess_detach(struct store *st, struct sess *s, uint64_t now_ms)
{
    s->conn = NULL;
    if (s->ttl_s == 0) {
        if (end_recorded(st, s) == 0)
            return;
        /* The journal cannot take its end now: it waits as a lease that
         * ends now, and store_expire tries again. It is over for clients:
         * a resume is refused, as it would be once it ends. */
        s->close_pending = 1;
        timerq_push(&st->timers, &s->lease, now_ms);
        st->sessions_detached++;
        return;
    }
    timerq_push(&st->timers, &s->lease, now_ms + (uint64_t)s->ttl_s * 1000);
    st->sessions_detached++;
}

int sess_resume_into(struct store *st, struct sess *cur, const void *token, uint32_t len,
                     struct sess **out)
{
    struct sess *s;
    uint64_t *v;
    void *conn = cur->conn;
    int rc, sliced;
    if (len != SESS_TOKEN_BYTES)
        return RPC_ESESSION_EXPIRED;
    v = u64map_get(&st->by_token, token_key(token));
    s = v ? sess_find(st, *v) : NULL;
    if (!s || !secret_equal(s->token, SESS_TOKEN_BYTES, token, SESS_TOKEN_BYTES) ||
        s->close_pending)
        return RPC_ESESSION_EXPIRED;
    if (s->conn) /* cur itself included */
        return RPC_ESESSION_BUSY;
    PANIC_IF(!timerq_queued(&s->lease), "detached session %llu is not queued by its deadline",
             (unsigned long long)s->id);
    sliced = sess_end_sliced(st, cur);
    if ((rc = record_sess(st, sliced ? REC_SESS_END : REC_SESS_CLOSE, cur)) < 0)
        return rc;
    cur->conn = NULL;
    sess_end(st, cur, sliced);
    timerq_remove(&st->timers, &s->lease);
    s->conn = conn;
    st->sessions_detached--;
    st->sessions_resumed++;
    *out = s;
    return 0;
}

/* A token is spent (claimed or expired): it leaves the table and the queue
 * and stops counting against the session that made it. Its reference is
 * the caller's to drop. */
static void share_unlink(struct store *st, struct share *sh)
{
    struct sess *maker = sess_find(st, sh->sess_id);
    if (maker) {
        PANIC_IF(maker->ntokens == 0, "session %llu: a token ends with none counted",
                 (unsigned long long)maker->id);
        maker->ntokens--;
    }
    timerq_remove(&st->timers, &sh->ttl);
    u64map_del(&st->shares, token_key(sh->token));
}

int store_expire(struct store *st, uint64_t now_ms, uint64_t budget_us, struct store_expired *out)
{
    uint64_t start_us = budget_us == UINT64_MAX ? 0 : now_us(), ended = 0;
    struct timerq_node *t;
    int rc;

    /* A decision the journal cannot take now is tried again at the next
     * call (once a second, from the server's cron): returns 0 then. */
    for (;;) {
        if (st->ending) { /* first what earlier calls left */
            struct sess *s = st->ending;
            if ((rc = release_some(st, s, start_us, budget_us)) <= 0)
                return rc == 0;
            if (record_sess(st, REC_SESS_CLOSE, s) < 0)
                return 0;
            sess_end_done(st, s);
        } else if ((t = timerq_due(&st->timers, now_ms)) == NULL) {
            break;
        } else if (t->tag == TIMER_LEASE) {
            struct sess *s = (struct sess *)(void *)((char *)t - offsetof(struct sess, lease));
            int sliced = sess_end_sliced(st, s);
            if (record_sess(st, sliced ? REC_SESS_END : REC_SESS_CLOSE, s) < 0)
                return 0;
            timerq_remove(&st->timers, t);
            st->sessions_detached--;
            st->sessions_expired++;
            if (out)
                out->sessions++;
            sess_end(st, s, sliced);
        } else {
            struct share *sh = (struct share *)(void *)((char *)t - offsetof(struct share, ttl));
            struct rec r = {.type = REC_SHARE_EXPIRE, .items = sh->token, .nitems = 1};
            PANIC_IF(t->tag != TIMER_TOKEN, "timer queue entry of unknown tag %d", (int)t->tag);
            if (st->record && st->record(st->record_ud, &r) < 0)
                return 0;
            share_expire_token(st, sh->token);
            if (out)
                out->tokens++;
        }
        ended++;
        if (budget_us != UINT64_MAX && now_us() - start_us >= budget_us)
            return st->ending || timerq_due(&st->timers, now_ms) != NULL;
    }
    /* Room a burst left is given back on a tick that ended nothing, not on
     * top of the last slice of the burst. */
    if (!ended)
        timerq_trim(&st->timers, (uint64_t)st->sessions.len + st->shares.len);
    return 0;
}

int share_expire_token(struct store *st, const uint8_t *token)
{
    uint64_t *v = u64map_get(&st->shares, token_key(token)), id;
    struct share *sh = v ? PTR(*v) : NULL;
    if (!sh || memcmp(sh->token, token, SESS_TOKEN_BYTES) != 0)
        return RPC_EBAD_PARAMS;
    id = sh->id;
    share_unlink(st, sh);
    mem_free(sh, sizeof(*sh));
    st->tokens_expired++;
    heap_decr(&st->heap, id, CNT_TOKENS, 1);
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
            obj_clear_flag(o, OBJ_WATCHED);
    }
}

void sess_free(struct store *st, struct sess *s)
{
    uint32_t pos = 0;
    uint64_t k, v;

    if (timerq_queued(&s->lease)) { /* freed while detached */
        timerq_remove(&st->timers, &s->lease);
        st->sessions_detached--;
    }
    sess_release_all(st, s);
    while (u64map_next(&s->watches, &pos, &k, &v))
        unwatch(st, s, k);
    u64map_del(&st->sessions, s->id);
    if (!s->ending) /* an ending session's key was given up (maybe reused) */
        u64map_del(&st->by_token, token_key(s->token));
    /* Its index may serve another session: it owns nothing any more. */
    if (st->nfree_idx == st->free_idx_cap) {
        uint32_t cap = st->free_idx_cap ? st->free_idx_cap * 2 : 64;
        uint32_t *p = mem_realloc(st->free_idx, (size_t)st->free_idx_cap * 4, (size_t)cap * 4);
        if (p) {
            st->free_idx = p;
            st->free_idx_cap = cap;
        }
    }
    if (st->nfree_idx < st->free_idx_cap)
        st->free_idx[st->nfree_idx++] = s->idx;
    st->by_idx[s->idx] = NULL;
    sess_destroy(s);
}

static int owns(const struct store *st, const struct sess *s, uint64_t id)
{
    return st->heap.owner[heap_slot_of(id)] == s->idx;
}

uint64_t sess_holds_on(const struct store *st, const struct sess *s, uint64_t id)
{
    const uint64_t *v = u64map_get(&s->holds, id);
    if (!heap_get(&st->heap, id))
        return 0;
    return (v ? *v : 0) + (owns(st, s, id) ? 1 : 0);
}

/* Drop stale and duplicate entries of the owned list (a slot freed and
 * reused for another object this session owns appears twice; a slot past
 * the table is left from before the heap emptied and reset it). */
static void owned_compact(struct store *st, struct sess *s)
{
    struct heap *h = &st->heap;
    uint32_t j = 0;
    uint64_t id;
    for (uint32_t i = 0; i < s->nowned; i++) {
        uint32_t slot = s->owned[i];
        struct obj *o;
        if (slot >= h->nslots) /* the table was reset since */
            continue;
        o = heap_slot(h, slot, &id);
        if (h->owner[slot] == s->idx && o && !(obj_flags(o) & OBJ_SEEN)) {
            obj_set_flag(o, OBJ_SEEN);
            s->owned[j++] = slot;
        }
    }
    for (uint32_t i = 0; i < j; i++)
        obj_clear_flag(heap_slot(h, s->owned[i], &id), OBJ_SEEN);
    s->nowned = j;
    s->owned_live = j;
    /* Give back what a burst left behind. */
    if (s->owned_cap > 64 && s->owned_cap > 4 * j) {
        uint32_t cap = j * 2 > 64 ? j * 2 : 64;
        uint32_t *p = mem_realloc(s->owned, (size_t)s->owned_cap * 4, (size_t)cap * 4);
        if (p) {
            s->owned = p;
            s->owned_cap = cap;
        }
    }
}

/* Room for one more owned entry. 0 or RPC_EOUT_OF_MEMORY. */
static int owned_reserve(struct store *st, struct sess *s)
{
    uint32_t cap;
    uint32_t *p;
    if (s->nowned < s->owned_cap)
        return 0;
    if (s->nowned > 2 * s->owned_live + 64) {
        owned_compact(st, s);
        if (s->nowned < s->owned_cap)
            return 0;
    }
    cap = s->owned_cap ? s->owned_cap + s->owned_cap / 2 : 16;
    p = mem_realloc(s->owned, (size_t)s->owned_cap * 4, (size_t)cap * 4);
    if (!p)
        return RPC_EOUT_OF_MEMORY;
    s->owned = p;
    s->owned_cap = cap;
    return 0;
}

int sess_can_hold(const struct store *st, const struct sess *s, uint64_t n)
{
    if (st->lim.max_session_holds && s->nholds + n > st->lim.max_session_holds)
        return RPC_EQUOTA_EXCEEDED;
    return 0;
}

int sess_reserve(struct store *st, struct sess *s)
{
    return owned_reserve(st, s) < 0 ? RPC_EOUT_OF_MEMORY : 0;
}

int sess_incref(struct store *st, struct sess *s, uint64_t id, uint32_t n, uint64_t *after)
{
    struct heap *h = &st->heap;
    uint32_t slot = heap_slot_of(id);
    int take_owner = h->owner[slot] == 0;
    uint32_t extra = n - (take_owner ? 1 : 0);
    int rc;

    if ((rc = heap_can_incr(h, id, CNT_HOLDS, n)) < 0)
        return rc;
    if ((rc = sess_can_hold(st, s, n)) < 0)
        return rc;
    if ((take_owner && owned_reserve(st, s) < 0) ||
        (extra && !u64map_get(&s->holds, id) && u64map_reserve(&s->holds, 1) < 0))
        return RPC_EOUT_OF_MEMORY;
    if (take_owner) {
        h->owner[slot] = s->idx;
        s->owned[s->nowned++] = slot;
        s->owned_live++;
    }
    if (extra)
        *u64map_put(&s->holds, id, NULL) += extra;
    s->nholds += n;
    heap_incr(h, id, CNT_HOLDS, n);
    if (after)
        *after = sess_holds_on(st, s, id);
    return 0;
}

int sess_decref(struct store *st, struct sess *s, uint64_t id, uint32_t n, uint64_t *after)
{
    struct heap *h = &st->heap;
    uint64_t have, *v;
    uint32_t from_map;

    if (!heap_get(h, id))
        return RPC_ENOT_FOUND;
    have = sess_holds_on(st, s, id);
    if (have < n)
        return RPC_ENOT_HELD;
    /* Extra holds go first; ownership last. */
    v = u64map_get(&s->holds, id);
    from_map = v ? (uint32_t)(*v < n ? *v : n) : 0;
    if (from_map) {
        *v -= from_map;
        if (*v == 0)
            u64map_del(&s->holds, id);
    }
    if (from_map < n) {
        PANIC_IF(s->owned_live == 0,
                 "session %llu: drops its ownership of object %llu but owns none",
                 (unsigned long long)s->id, (unsigned long long)id);
        h->owner[heap_slot_of(id)] = 0;
        s->owned_live--;
    }
    PANIC_IF(s->nholds < n, "session %llu: drops %u holds on object %llu but counts %llu in all",
             (unsigned long long)s->id, n, (unsigned long long)id, (unsigned long long)s->nholds);
    s->nholds -= n;
    *after = have - n;
    heap_decr(h, id, CNT_HOLDS, n);
    /* Stale entries past half the list: compact (amortised O(1) a drop). */
    if (s->nowned > 2 * s->owned_live + 64)
        owned_compact(st, s);
    return 0;
}

uint64_t sess_release_all(struct store *st, struct sess *s)
{
    struct heap *h = &st->heap;
    struct u64map holds = s->holds;
    uint32_t *owned = s->owned, nowned = s->nowned, owned_cap = s->owned_cap;
    uint64_t released = s->nholds, k, v, id;
    uint32_t pos = 0;

    /* Detach everything first: frees below may notify, and must see s
     * consistent (holding nothing). */
    u64map_init(&s->holds);
    s->owned = NULL;
    s->nowned = s->owned_cap = s->owned_live = 0;
    s->nholds = 0;
    while (u64map_next(&holds, &pos, &k, &v)) {
        PANIC_IF(!heap_get(h, k) || v > UINT32_MAX,
                 "session %llu: %llu extra holds on object %llu, which is %s",
                 (unsigned long long)s->id, (unsigned long long)v, (unsigned long long)k,
                 heap_get(h, k) ? "live" : "gone");
        heap_decr(h, k, CNT_HOLDS, (uint32_t)v);
    }
    u64map_close(&holds);
    /* An owned object cannot die before its ownership is dropped, and no
     * slot is reused while releasing, so each entry still names what it
     * named; a duplicate finds the owner already cleared. */
    for (uint32_t i = 0; i < nowned; i++) {
        uint32_t slot = owned[i];
        if (slot >= h->nslots || h->owner[slot] != s->idx)
            continue;
        h->owner[slot] = 0;
        if (heap_slot(h, slot, &id))
            heap_decr(h, id, CNT_HOLDS, 1);
    }
    mem_free(owned, (size_t)owned_cap * sizeof(*owned));
    return released;
}

int sess_watch(struct store *st, struct sess *s, uint64_t id)
{
    struct watcher *w;
    uint64_t *v;
    int created;

    if (u64map_get(&s->watches, id))
        return 0;
    if (st->lim.max_session_watches && s->watches.len >= st->lim.max_session_watches)
        return RPC_EQUOTA_EXCEEDED;
    if (u64map_reserve(&s->watches, 1) < 0 || u64map_reserve(&st->watchers, 1) < 0)
        return RPC_EOUT_OF_MEMORY;
    w = mem_alloc(sizeof(*w));
    if (!w)
        return RPC_EOUT_OF_MEMORY;
    w->sess_id = s->id;
    v = u64map_put(&st->watchers, id, &created);
    w->next = created ? NULL : PTR(*v);
    *v = UINT(w);
    *u64map_put(&s->watches, id, NULL) = 1;
    obj_set_flag(heap_get(&st->heap, id), OBJ_WATCHED);
    return 0;
}

/* ---- share and claim ---- */

const char *share_quota_hit(const struct store *st, const struct sess *s)
{
    if (st->lim.max_session_tokens && s->ntokens >= st->lim.max_session_tokens)
        return "max_tokens_per_session";
    if (st->lim.max_tokens && st->shares.len >= st->lim.max_tokens)
        return "max_tokens";
    return NULL;
}

int share_token(const struct store *st, uint8_t *token)
{
    do {
        if (random_bytes(token, SESS_TOKEN_BYTES) < 0)
            return RPC_EINTERNAL;
    } while (token_key(token) == 0 || u64map_get(&st->shares, token_key(token)));
    return 0;
}

int share_new_at(struct store *st, uint64_t maker, const uint8_t *token, uint64_t id,
                 uint32_t ttl_s, uint64_t now_ms)
{
    struct sess *s = sess_find(st, maker);
    struct share *sh;
    int rc;
    if (token_key(token) == 0 || u64map_get(&st->shares, token_key(token)))
        return RPC_EBAD_PARAMS;
    if ((rc = heap_can_incr(&st->heap, id, CNT_TOKENS, 1)) < 0)
        return rc;
    if (s && share_quota_hit(st, s))
        return RPC_EQUOTA_EXCEEDED;
    if (u64map_reserve(&st->shares, 1) < 0 ||
        timerq_reserve(&st->timers, (uint64_t)st->sessions.len + st->shares.len + 1) < 0 ||
        !(sh = mem_alloc(sizeof(*sh))))
        return RPC_EOUT_OF_MEMORY;
    memcpy(sh->token, token, sizeof(sh->token));
    sh->id = id;
    /* The maker's id is kept even when that session is gone (a snapshot's
     * token whose maker ended): every node of a cluster keeps what the
     * leader keeps. Ids are never handed out twice, so a gone maker's
     * counts nothing. */
    sh->sess_id = maker;
    sh->ttl_s = ttl_s;
    sh->ttl.pos = 0;
    sh->ttl.tag = TIMER_TOKEN;
    timerq_push(&st->timers, &sh->ttl, now_ms + (uint64_t)ttl_s * 1000);
    *u64map_put(&st->shares, token_key(sh->token), NULL) = UINT(sh);
    if (s)
        s->ntokens++;
    heap_incr(&st->heap, id, CNT_TOKENS, 1);
    return 0;
}

int share_new(struct store *st, struct sess *s, uint64_t id, uint32_t ttl_s, uint64_t now_ms,
              uint8_t *token)
{
    int rc;
    if ((rc = heap_can_incr(&st->heap, id, CNT_TOKENS, 1)) < 0)
        return rc;
    if (share_quota_hit(st, s))
        return RPC_EQUOTA_EXCEEDED;
    if ((rc = share_token(st, token)) < 0)
        return rc;
    return share_new_at(st, s->id, token, id, ttl_s, now_ms);
}

int share_find(const struct store *st, const void *token, uint32_t len, uint64_t now_ms,
               uint64_t *id)
{
    const struct share *sh;
    uint64_t *v;
    if (len != SESS_TOKEN_BYTES)
        return RPC_ETOKEN_INVALID;
    v = u64map_get(&st->shares, token_key(token));
    sh = v ? PTR(*v) : NULL;
    if (!sh || !secret_equal(sh->token, SESS_TOKEN_BYTES, token, SESS_TOKEN_BYTES) ||
        sh->ttl.deadline_ms <= now_ms)
        return RPC_ETOKEN_INVALID;
    *id = sh->id;
    return 0;
}

int share_expire_if_due(struct store *st, const void *token, uint32_t len, uint64_t now_ms)
{
    struct share *sh;
    uint64_t *v;
    if (len != SESS_TOKEN_BYTES)
        return 0;
    v = u64map_get(&st->shares, token_key(token));
    sh = v ? PTR(*v) : NULL;
    if (!sh || !secret_equal(sh->token, SESS_TOKEN_BYTES, token, SESS_TOKEN_BYTES) ||
        sh->ttl.deadline_ms > now_ms)
        return 0;
    /* Refused as expired, so expired for good: recorded now, not at the
     * next expiry tick (a crash in between would bring it back). */
    struct rec r = {.type = REC_SHARE_EXPIRE, .items = sh->token, .nitems = 1};
    if (st->record && st->record(st->record_ud, &r) < 0)
        return 0; /* the tick tries again */
    share_expire_token(st, sh->token);
    return 1;
}

int share_claim(struct store *st, struct sess *s, const void *token, uint32_t len, uint64_t now_ms,
                uint64_t *id)
{
    struct share *sh;
    uint64_t *v;
    int rc;
    if (len != SESS_TOKEN_BYTES)
        return RPC_ETOKEN_INVALID;
    v = u64map_get(&st->shares, token_key(token));
    sh = v ? PTR(*v) : NULL;
    if (!sh || !secret_equal(sh->token, SESS_TOKEN_BYTES, token, SESS_TOKEN_BYTES) ||
        sh->ttl.deadline_ms <= now_ms)
        return RPC_ETOKEN_INVALID;
    /* The hold first, then the token's reference: never a moment at zero. */
    if ((rc = sess_incref(st, s, sh->id, 1, NULL)) < 0)
        return rc;
    *id = sh->id;
    share_unlink(st, sh);
    mem_free(sh, sizeof(*sh));
    heap_decr(&st->heap, *id, CNT_TOKENS, 1);
    return 0;
}

/* ---- after recovery ---- */

int store_recovered(struct store *st, uint64_t now_ms)
{
    struct heap *h = &st->heap;
    uint64_t n = 0, *ids = NULL, k, v;
    uint32_t pos = 0;
    int rc = 0;

    /* Garbage a sliced collection had found and not freed when the server
     * stopped: free it now, recorded. */
    for (uint32_t i = 0; i < h->nslots; i++) {
        uint64_t id;
        struct obj *o = heap_slot(h, i, &id);
        n += o && (obj_flags(o) & OBJ_GARBAGE);
    }
    if (n) {
        if (!(ids = mem_alloc(n * 8)))
            return RPC_EOUT_OF_MEMORY;
        for (uint32_t i = 0, j = 0; i < h->nslots; i++) {
            uint64_t id;
            struct obj *o = heap_slot(h, i, &id);
            if (o && (obj_flags(o) & OBJ_GARBAGE))
                ids[j++] = id;
        }
        if ((rc = heap_gc_record(h, REC_GC_FREE, ids, n)) == 0)
            for (uint64_t i = 0; i < n; i++)
                heap_free_garbage(h, ids[i]);
        mem_free(ids, n * 8);
        if (rc < 0)
            return rc;
    }
    /* Every session is detached now. Those with a lease wait for it from
     * now, at its full ttl; the others end, as a close would. */
    n = st->sessions.len;
    if (n && !(ids = mem_alloc(n * 8)))
        return RPC_EOUT_OF_MEMORY;
    for (uint64_t i = 0; u64map_next(&st->sessions, &pos, &k, &v); i++)
        ids[i] = k;
    for (uint64_t i = 0; i < n; i++) {
        struct sess *s = sess_find(st, ids[i]);
        s->conn = NULL;
        s->journaled = 1;
        if (s->ending || timerq_queued(&s->lease))
            continue;
        if (s->ttl_s) {
            timerq_push(&st->timers, &s->lease, now_ms + (uint64_t)s->ttl_s * 1000);
            st->sessions_detached++;
        } else {
            sess_detach(st, s, now_ms);
        }
    }
    mem_free(ids, n * 8);
    return 0;
}
