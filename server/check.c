/* check: the invariant check (see check.h). It recounts from scratch rather
 * than trusting any counter it checks, so it costs O(objects + refs + holds
 * + names + tokens + watches) time and O(slots) memory, from the system
 * allocator so that it neither counts against maxmemory nor disturbs the
 * pools it inspects. */
#include "check.h"
#include "err.h"
#include "mem.h"
#include "store_priv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct expect {
    uint64_t holds, names, tokens;
};

static int bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return RPC_EINTERNAL;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        rc = bad(err, errlen, __VA_ARGS__);                                                        \
        goto out;                                                                                  \
    } while (0)

/* The id table: every slot is a live object, on the free FIFO, or retired
 * for good (its generations used up: heap.c's put_slot marks it with the
 * last generation and no next; the FIFO's tail waiting to give the last
 * generation looks the same), and the FIFO has nfree entries and ends at
 * free_tail. */
static int check_slots(const struct heap *h, char *err, size_t errlen)
{
    const uint64_t retired = (uint64_t)((1u << OBJ_GEN_BITS) - 1) << 8 | 1;
    uint32_t live = 0, free_slots = 0, walked = 0, at = h->free_head, last = 0;
    for (uint32_t i = 0; i < h->nslots; i++) {
        if (!(h->slots[i] & 1))
            live++;
        else if (h->slots[i] != retired || h->free_tail == i + 1)
            free_slots++;
    }
    if (live != h->objects)
        return bad(err, errlen, "heap says %llu objects, the table has %u",
                   (unsigned long long)h->objects, live);
    if (free_slots != h->nfree)
        return bad(err, errlen, "heap says %u free slots, the table has %u", h->nfree, free_slots);
    while (at) {
        if (at > h->nslots || !(h->slots[at - 1] & 1) || ++walked > h->nfree)
            return bad(err, errlen, "the free list is broken at slot %u", at);
        last = at;
        at = (uint32_t)(h->slots[at - 1] >> 32);
    }
    if (walked != h->nfree || last != h->free_tail)
        return bad(err, errlen, "the free list has %u slots ending at %u; expected %u ending at %u",
                   walked, last, h->nfree, h->free_tail);
    return 0;
}

/* The parts that need only the heap: the id table, totals, refs naming
 * live objects, internal counts recounted from refs, flags and colors, the
 * candidate buffer. Holds, names and tokens are the store's. */
int heap_check(const struct heap *h, char *err, size_t errlen)
{
    uint32_t *internal;
    uint64_t data_bytes = 0, refs = 0, id, buffered = 0, in_buf = 0;
    int rc = 0, doomed;

    err[0] = '\0';
    if ((rc = check_slots(h, err, errlen)) < 0)
        return rc;
    if (!(internal = calloc(h->nslots ? h->nslots : 1, sizeof(*internal))))
        return bad(err, errlen, "out of memory for the check");
    for (uint32_t i = 0; i < h->nslots; i++) {
        struct obj *o = heap_slot(h, i, &id);
        const uint64_t *r;
        if (!o)
            continue;
        data_bytes += obj_data_len(o);
        refs += obj_nrefs(o);
        r = obj_refs(o);
        /* Garbage found is freed a chunk at a time: what it refers to may
         * be gone already, and it may refer to garbage still waiting.
         * Every edge that exists is in its target's count. */
        doomed = (obj_flags(o) & OBJ_GARBAGE) || (h->hide_white && obj_color(o) == COLOR_WHITE);
        for (uint32_t k = 0; k < obj_nrefs(o); k++) {
            const struct obj *t = heap_get_any(h, r[k]);
            if (!t && doomed)
                continue;
            if (!t)
                FAIL("object %llu refers to %llu, which is not alive", (unsigned long long)id,
                     (unsigned long long)r[k]);
            if (!doomed &&
                ((obj_flags(t) & OBJ_GARBAGE) || (h->hide_white && obj_color(t) == COLOR_WHITE)))
                FAIL("live object %llu refers to %llu, found to be garbage", (unsigned long long)id,
                     (unsigned long long)r[k]);
            internal[heap_slot_of(r[k])]++;
        }
        if (obj_flags(o) & OBJ_MARK)
            FAIL("object %llu carries a traversal flag (0x%x) between requests",
                 (unsigned long long)id, obj_flags(o));
        if (obj_color(o) != COLOR_BLACK && obj_color(o) != COLOR_PURPLE &&
            !(obj_flags(o) & OBJ_INGC))
            FAIL("object %llu is %s outside a collection", (unsigned long long)id,
                 obj_color(o) == COLOR_GRAY ? "gray" : "white");
        if ((obj_flags(o) & OBJ_INGC) && !h->gc_state)
            FAIL("object %llu is flagged in a collection, and none is under way",
                 (unsigned long long)id);
        /* (Unless the buffer could not take it: then the next collection
         * is a full one, which needs no buffer.) */
        if (obj_color(o) == COLOR_PURPLE && !(obj_flags(o) & OBJ_BUFFERED) && !h->cand_lost)
            FAIL("object %llu is purple but not buffered", (unsigned long long)id);
        if (obj_flags(o) & OBJ_BUFFERED)
            buffered++;
    }
    if (data_bytes != h->data_bytes || refs != h->refs)
        FAIL("heap says %llu data bytes and %llu refs; the objects have %llu and %llu",
             (unsigned long long)h->data_bytes, (unsigned long long)h->refs,
             (unsigned long long)data_bytes, (unsigned long long)refs);
    for (uint32_t i = 0; i < h->nslots; i++) {
        struct obj *o = heap_slot(h, i, &id);
        if (o && o->internal != internal[i])
            FAIL("object %llu counts internal %u; its referrers' refs give %u",
                 (unsigned long long)id, o->internal, internal[i]);
    }
    for (uint32_t k = 0; k < h->ncand; k++) {
        struct obj *o = heap_get_any(h, h->cand[k]);
        if (!o || (obj_flags(o) & OBJ_GARBAGE))
            continue; /* stale: freed since, or found to be garbage */
        if (!(obj_flags(o) & OBJ_BUFFERED))
            FAIL("candidate %llu is in the buffer without its flag",
                 (unsigned long long)h->cand[k]);
        if (obj_flags(o) & OBJ_MARK)
            FAIL("candidate %llu is in the buffer twice", (unsigned long long)h->cand[k]);
        obj_set_flag(o, OBJ_MARK);
        in_buf++;
    }
    if (buffered != in_buf && !h->cand_lost)
        FAIL("%llu objects are flagged as buffered; %llu are in the buffer",
             (unsigned long long)buffered, (unsigned long long)in_buf);
out:
    for (uint32_t k = 0; k < h->ncand; k++) {
        struct obj *o = heap_get_any(h, h->cand[k]);
        if (o)
            obj_clear_flag(o, OBJ_MARK);
    }
    free(internal);
    return rc;
}

/* Whether node is queued in q where it says it is. */
static int queued_at(const struct timerq *q, const struct timerq_node *node)
{
    return node->pos > 0 && node->pos <= q->n && q->v[node->pos - 1].node == node &&
           q->v[node->pos - 1].deadline_ms == node->deadline_ms;
}

/* The queue holds exactly the want entries found queued, in heap order. */
static int timerq_check(const struct timerq *q, uint64_t want, char *err, size_t errlen)
{
    if (q->n != want)
        return bad(err, errlen, "the expiry queue has %u entries; %llu items are queued", q->n,
                   (unsigned long long)want);
    for (uint32_t i = 1; i < q->n; i++)
        if (q->v[(i - 1) / 2].deadline_ms > q->v[i].deadline_ms)
            return bad(err, errlen, "the expiry queue is out of order at entry %u", i);
    return 0;
}

int store_check(const struct store *st, char *err, size_t errlen)
{
    const struct heap *h = &st->heap;
    struct expect *ex = NULL;
    struct sess **by_idx = NULL;
    uint64_t *totals = NULL; /* per session index: holds found */
    uint64_t *tokens = NULL; /* per session index: unclaimed tokens it made */
    uint64_t nqueued = 0;    /* leases and tokens found queued */
    uint64_t ndetached = 0;  /* sessions waiting for a resume, or ending */
    const struct name_ent **names = NULL;
    uint64_t nnames = 0, names_cap = 0, key, val, id;
    uint32_t pos;
    int rc;

    if ((rc = heap_check(h, err, errlen)) < 0)
        return rc;
    ex = calloc(h->nslots ? h->nslots : 1, sizeof(*ex));
    by_idx = calloc((size_t)st->next_idx + 1, sizeof(*by_idx));
    totals = calloc((size_t)st->next_idx + 1, sizeof(*totals));
    tokens = calloc((size_t)st->next_idx + 1, sizeof(*tokens));
    if (!ex || !by_idx || !totals || !tokens)
        FAIL("out of memory for the check");

    /* Sessions: their indexes, and every hold they count. */
    pos = 0;
    while (u64map_next(&st->sessions, &pos, &key, &val)) {
        struct sess *s = PTR(val);
        uint32_t p2 = 0;
        uint64_t hid, n;
        if (s->id != key || s->idx == 0 || s->idx > st->next_idx || by_idx[s->idx])
            FAIL("session %llu has a bad or shared index %u", (unsigned long long)key, s->idx);
        by_idx[s->idx] = s;
        if (s->idx >= st->by_idx_cap || st->by_idx[s->idx] != s)
            FAIL("session %llu is not in the index table at %u", (unsigned long long)key, s->idx);
        if (timerq_queued(&s->lease)) {
            /* (Without a lease only when its end waits for the journal:
             * a close the journal could not record, sess_detach.) */
            if (s->conn || (!s->ttl_s && !st->record) || !queued_at(&st->timers, &s->lease))
                FAIL("session %llu is queued for expiry but %s", (unsigned long long)s->id,
                     s->conn     ? "attached"
                     : !s->ttl_s ? "has no lease"
                                 : "not where it says");
            ndetached++;
            nqueued++;
        }
        if (s->ending) {
            /* Holds still to release: the releasing map from its cursor. */
            uint32_t p3 = s->rel_pos;
            if (s->conn || timerq_queued(&s->lease) || s->holds.len)
                FAIL("session %llu is ending but %s", (unsigned long long)s->id,
                     s->conn        ? "attached"
                     : s->holds.len ? "took holds"
                                    : "queued for expiry");
            while (u64map_next(&s->releasing, &p3, &hid, &n)) {
                /* 0: released already. A replay of SESS_RELEASE records
                 * zeroes entries without moving the cursor, which belongs to
                 * store_expire; the object may be gone since. */
                if (n == 0)
                    continue;
                if (!heap_get(h, hid))
                    FAIL("ending session %llu still counts holds on dead object %llu",
                         (unsigned long long)s->id, (unsigned long long)hid);
                ex[heap_slot_of(hid)].holds += n;
                totals[s->idx] += n;
            }
            ndetached++;
        }
        while (u64map_next(&s->holds, &p2, &hid, &n)) {
            struct obj *o = heap_get(h, hid);
            if (!o || n == 0)
                FAIL("session %llu counts %llu holds on %s object %llu", (unsigned long long)s->id,
                     (unsigned long long)n, o ? "a live" : "no", (unsigned long long)hid);
            ex[heap_slot_of(hid)].holds += n;
            totals[s->idx] += n;
        }
    }
    if (ndetached != st->sessions_detached)
        FAIL("%llu sessions are detached; the counter says %llu", (unsigned long long)ndetached,
             (unsigned long long)st->sessions_detached);
    /* Owner tags: each names a live session and is one hold. */
    for (uint32_t i = 0; i < h->nslots; i++) {
        if (!heap_slot(h, i, &id) || !h->owner[i])
            continue;
        if (h->owner[i] > st->next_idx || !by_idx[h->owner[i]])
            FAIL("object %llu is owned by session index %u, which does not exist",
                 (unsigned long long)id, h->owner[i]);
        ex[i].holds++;
        totals[h->owner[i]]++;
    }
    /* Names and tokens. */
    if (names_list(&st->names, "", 0, UINT64_MAX, &names, &nnames, &names_cap) < 0)
        FAIL("out of memory listing names");
    for (uint64_t k = 0; k < nnames; k++) {
        if (!heap_get(h, names[k]->id))
            FAIL("name \"%.*s\" is bound to %llu, which is not alive", (int)names[k]->len,
                 names[k]->name, (unsigned long long)names[k]->id);
        ex[heap_slot_of(names[k]->id)].names++;
    }
    pos = 0;
    while (u64map_next(&st->shares, &pos, &key, &val)) {
        const struct share *sh = PTR(val);
        const struct sess *maker = sess_find(st, sh->sess_id);
        if (!heap_get(h, sh->id))
            FAIL("a share token holds %llu, which is not alive", (unsigned long long)sh->id);
        if (sh->sess_id >= st->next_sess_id)
            FAIL("a share token on %llu was made by session %llu, past the sequence",
                 (unsigned long long)sh->id, (unsigned long long)sh->sess_id);
        ex[heap_slot_of(sh->id)].tokens++;
        if (maker)
            tokens[maker->idx]++;
        if (!queued_at(&st->timers, &sh->ttl))
            FAIL("a share token on %llu is not in the expiry queue", (unsigned long long)sh->id);
        nqueued++;
    }
    if ((rc = timerq_check(&st->timers, nqueued, err, errlen)) < 0)
        goto out;
    /* The external counts in every header against the recount. */
    for (uint32_t i = 0; i < h->nslots; i++) {
        struct obj *o = heap_slot(h, i, &id);
        uint32_t nm, tk;
        if (!o)
            continue;
        nm = heap_names(h, o, id);
        tk = heap_tokens(h, o, id);
        if (o->holds != ex[i].holds || nm != ex[i].names || tk != ex[i].tokens)
            FAIL("object %llu counts holds %u, names %u, tokens %u; the recount gives %llu, "
                 "%llu, %llu",
                 (unsigned long long)id, o->holds, nm, tk, (unsigned long long)ex[i].holds,
                 (unsigned long long)ex[i].names, (unsigned long long)ex[i].tokens);
        if (!!(obj_flags(o) & OBJ_EXTRA) != (nm + tk > 0))
            FAIL("object %llu: the extra flag disagrees with %u names and %u tokens",
                 (unsigned long long)id, nm, tk);
        /* (Garbage found waits on its list whatever its count.) */
        if (obj_unreferenced(o) && !(obj_flags(o) & OBJ_GARBAGE))
            FAIL("object %llu is alive with a refcount of 0", (unsigned long long)id);
    }
    for (uint32_t x = 1; x <= st->next_idx; x++) {
        const struct sess *s = by_idx[x];
        if (s && totals[x] != s->nholds)
            FAIL("session %llu says it has %llu holds; it has %llu", (unsigned long long)s->id,
                 (unsigned long long)s->nholds, (unsigned long long)totals[x]);
        if (s && tokens[x] != s->ntokens)
            FAIL("session %llu says it made %u unclaimed tokens; there are %llu",
                 (unsigned long long)s->id, s->ntokens, (unsigned long long)tokens[x]);
    }
    /* Watches: each watcher's session exists and lists the object. */
    pos = 0;
    while (u64map_next(&st->watchers, &pos, &key, &val)) {
        for (const struct watcher *w = PTR(val); w; w = w->next) {
            struct sess *s = sess_find(st, w->sess_id);
            if (!s || !u64map_get(&s->watches, key))
                FAIL("a watch on %llu names session %llu, which %s", (unsigned long long)key,
                     (unsigned long long)w->sess_id, s ? "does not list it" : "does not exist");
        }
        if (heap_get(h, key) && !(obj_flags(heap_get(h, key)) & OBJ_WATCHED))
            FAIL("object %llu has watchers but not the watched flag", (unsigned long long)key);
    }
out:
    if (names)
        mem_free(names, names_cap * sizeof(*names));
    free(ex);
    free(by_idx);
    free(totals);
    free(tokens);
    return rc;
}
