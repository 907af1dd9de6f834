/* store: everything a request can touch, and the sessions that own holds.
 * It joins the heap, the names, the sessions and the watches. A session is
 * released as a whole: its holds drop and its watches vanish. The store
 * never sees a socket: a session carries an opaque pointer to its
 * connection, and freed-object notifications leave through a callback.
 *
 * Holds are stored compactly because nearly every object is held once, by
 * the session that created it. Each heap slot names one "owner" session
 * (heap->owner) whose first hold costs nothing more; the owner lists the
 * slots it owns in a vector of 4-byte entries (stale ones are skipped and
 * compacted away). Any other hold, by the owner or by another session, is
 * counted in that session's hash map. */
#ifndef RCS_SERVER_STORE_H
#define RCS_SERVER_STORE_H

#include "gc.h"
#include "heap.h"
#include "names.h"
#include "record.h"
#include "timerq.h"
#include "u64map.h"

#include <stdint.h>

#define SESS_TOKEN_BYTES 16

struct sess {
    uint64_t id;           /* read-only */
    uint32_t idx;          /* read-only: small index, the owner tag in heap->owner */
    struct u64map holds;   /* private: object id → holds beyond ownership */
    struct u64map watches; /* private: object id → 1 */
    uint32_t *owned;       /* private: slots this session (maybe still) owns */
    uint32_t nowned, owned_cap, owned_live;
    uint64_t nholds;                 /* read-only: sum of holds */
    void *conn;                      /* the attached connection, or NULL */
    uint32_t ttl_s;                  /* lease: seconds kept after a close; 0 = none */
    uint32_t ntokens;                /* read-only: share tokens it made, still unclaimed */
    struct timerq_node lease;        /* private: queued while detached, at the lease's end */
    struct u64map releasing;         /* private: ending: the holds map being released */
    uint32_t rel_pos;                /* private: ending: releasing's next entry */
    int ending;                      /* private: ended, its holds going in slices */
    int journaled;                   /* its SESS_NEW is in the journal (records may name it) */
    int close_pending;               /* closed without a lease; its end waits for the journal */
    struct sess *next_ending;        /* private: st->ending */
    uint8_t token[SESS_TOKEN_BYTES]; /* the resume token */
    char client[64];                 /* what the client called itself */
};

struct store_limits {
    uint32_t max_data_bytes;
    uint32_t max_refs;
    uint64_t max_message_bytes;
    uint32_t max_session_ttl;
    uint64_t maxmemory;           /* heap bytes (mem_heap_bytes); 0 = unlimited */
    uint64_t gc_threshold;        /* candidates that trigger a collection */
    uint64_t max_session_holds;   /* 0: unlimited */
    uint64_t max_session_watches; /* 0: unlimited */
    uint64_t max_session_tokens;  /* unclaimed share tokens a session made; 0: unlimited */
    uint64_t max_tokens;          /* unclaimed share tokens in all; 0: unlimited */
};

/* The collector's pause histogram: the buckets' upper bounds (the last has
 * none), their keys in stats and their le labels in /metrics. */
#define GC_PAUSE_BUCKETS 6
struct gc_pause_bucket {
    uint64_t max_us; /* 0 for the last: longer than all the others */
    const char *key, *le;
};
extern const struct gc_pause_bucket gc_pause_buckets[GC_PAUSE_BUCKETS];

struct gc_stats {
    uint64_t collections, collected, total_us, last_pause_us, max_pause_us;
    uint64_t threshold;      /* candidates that trigger a collection (adaptive) */
    uint64_t threshold_base; /* the configured one, the floor of adaptation */
    uint64_t full;           /* collections that had to go over the whole heap */
    uint64_t slices;         /* slices of periodic sweeps */
    uint64_t restarts;       /* sliced collections given up (by a gc request, or out of memory) */
    uint64_t touched;        /* objects requests touched while a sliced collection examined them */
    uint64_t sweep_candidates, sweep_collected; /* of the sweep under way */
    uint64_t pauses[GC_PAUSE_BUCKETS];          /* counts, by gc_pause_buckets */
};

typedef void (*store_notify_cb)(void *ud, struct sess *s, uint64_t id, enum free_reason why);

struct store {
    struct heap heap;   /* read-write for handlers */
    struct names names; /* read-write for handlers */
    struct store_limits lim;
    struct gc_stats gc;
    uint64_t sessions_detached, sessions_expired, sessions_resumed;
    uint64_t tokens_expired;
    /* private: */
    struct u64map sessions;            /* id → struct sess * */
    struct u64map watchers;            /* object id → struct watcher * list */
    struct u64map by_token;            /* first 8 token bytes → session id */
    struct u64map shares;              /* first 8 token bytes → struct share * */
    struct timerq timers;              /* detached sessions and share tokens by deadline */
    struct sess *ending, *ending_tail; /* ended sessions whose holds go in slices */
    uint64_t release_at_once; /* more holds than this are released in slices (tests lower it) */
    uint64_t next_sess_id;
    uint32_t next_idx;    /* session indexes handed out so far */
    struct sess **by_idx; /* session index → session (NULL: free), by_idx_cap entries */
    uint32_t by_idx_cap;
    uint32_t *free_idx; /* indexes of ended sessions, for reuse */
    uint32_t nfree_idx, free_idx_cap;
    store_notify_cb notify;
    void *notify_ud;
    /* The journal (NULL: in memory). The store's own decisions (a lease or
     * a token ending, an ended session's holds released a slice at a time,
     * a connection closing, a collection freeing garbage) are recorded
     * through it before they are made, and not made if it fails (they are
     * tried again later). Requests' changes are recorded by the apply layer
     * (apply.h), not here. */
    int (*record)(void *ud, const struct rec *r);
    void *record_ud;
};

/* Record the store's own decisions through record(ud, r) from now on
 * (NULL: none): see struct store's record. */
void store_set_journal(struct store *st, int (*record)(void *ud, const struct rec *r), void *ud);
/* 0 or -errno (no random source). */
int store_init(struct store *st, const struct store_limits *lim, store_notify_cb cb, void *ud);
/* Free everything, sessions included, without notifications. */
void store_close(struct store *st);
uint64_t store_session_count(const struct store *st);
/* Sessions store_holder looks at when the object has no owner session. */
#define STORE_HOLDER_SCAN 256

/* The id of a session that holds live object id, for diagnostics such as
 * why. Its owner session if it has one, found at once; otherwise the first
 * holder among at most STORE_HOLDER_SCAN sessions (in index order), or 0
 * when none of those holds it. So 0 for an object with holds means "some
 * session". *steps (may be NULL) gets the sessions looked at. */
uint64_t store_holder(const struct store *st, uint64_t id, uint32_t *steps);

/* Run the cycle collector (gc.h) now, and account for it in st->gc,
 * adapting the threshold: a run that frees little raises it, one that frees
 * much lowers it. 0 or RPC_EOUT_OF_MEMORY (nothing freed, counts intact). */
int store_collect(struct store *st, struct gc_result *r);
/* One slice of a periodic sweep (gc_slice) with at most budget_us of work,
 * accounted in st->gc (each slice is a pause; a sweep that ends counts as a
 * collection and adapts the threshold). Returns 1 if the sweep has more to
 * do, 0 when it is done, or RPC_EOUT_OF_MEMORY. */
int store_sweep(struct store *st, uint64_t budget_us, struct gc_result *r);
/* Whether enough candidates wait for an automatic collection. */
int store_gc_due(const struct store *st);

/* ---- the session lifecycle: attach, lease, detach, resume, expire ----
 * A session is made attached to a connection (sess_attach). When the
 * connection closes it detaches (sess_detach): without a lease it ends at
 * once, with one it waits, queued by its deadline, until a new connection
 * resumes it (sess_resume_into) or the lease ends (store_expire). A session
 * that ends with more than release_at_once holds (4096) cannot be resumed
 * from then on, but its holds are released by store_expire in slices, and
 * it counts as detached until they are gone. The counters in struct store
 * change here and nowhere else. */

/* A new empty session with a fresh resume token, not attached. 0,
 * RPC_EOUT_OF_MEMORY or RPC_EINTERNAL (no random source). */
int sess_new(struct store *st, struct sess **out);
/* A session with this id and resume token (SESS_TOKEN_BYTES), not
 * attached: for a record's replay or a snapshot's load. Returns as sess_new,
 * or RPC_EBAD_PARAMS if the id or the token is taken. */
int sess_new_at(struct store *st, uint64_t id, const uint8_t *token, struct sess **out);
/* A new session attached to conn (an opaque pointer the store hands back in
 * notifications). Returns as sess_new. */
int sess_attach(struct store *st, void *conn, struct sess **out);
/* Release the session's holds and watches and free it, at once, whatever
 * it holds (not for a session store_expire is releasing). Its unclaimed share
 * tokens live on (they hold their own references until claimed or expired)
 * and no longer count against any session. */
void sess_free(struct store *st, struct sess *s);
/* Keep s for ttl_s seconds (clamped to max_session_ttl) after its
 * connection closes; 0 = no lease. Returns the ttl granted. */
uint32_t sess_set_lease(struct store *st, struct sess *s, uint64_t ttl_s);
/* Its connection closed: keep it for its lease (detached, queued by its
 * deadline now_ms + ttl) if it has one, else end it (free it, or leave its
 * holds to store_expire if it has many). now_ms: the caller's clock, the one
 * store_expire is given. */
void sess_detach(struct store *st, struct sess *s, uint64_t now_ms);
/* Attach the detached session whose resume token is token (len bytes,
 * compared in constant time) in place of cur, the caller's attached session:
 * cur ends (with any holds it took), the resumed one takes cur's
 * connection and leaves the expiry queue, and *out names it. On failure cur
 * stays as it was: RPC_ESESSION_EXPIRED if there is no such session
 * (unknown, expired, or from before a restart), RPC_ESESSION_BUSY if it is
 * attached to a connection. */
int sess_resume_into(struct store *st, struct sess *cur, const void *token, uint32_t len,
                     struct sess **out);

/* What one store_expire call ended. */
struct store_expired {
    uint64_t sessions, tokens;
};
/* Release the holds of ended sessions, then end what is due by now_ms,
 * earliest deadline first: detached sessions whose lease ended (their holds
 * are released, which may free objects and notify) and share tokens whose
 * ttl ended (their references go). It does at least one piece of work, then
 * stops as soon as budget_us has passed (checked between entries, and every
 * 256 holds of a session), so a burst is spread over calls. The cost is
 * O(log n) queue work per entry ended (n: entries queued) plus what ending
 * it frees; entries not due cost nothing. One dropped hold may still free a
 * whole subgraph at once (heap_decr's worklist is not sliced). Adds to *out
 * (may be NULL) and to the store's counters.
 * A call that ends nothing gives back queue room a burst left (halving).
 * Returns 1 if due entries remain or an ended session still holds
 * something (call again soon), else 0. */
int store_expire(struct store *st, uint64_t now_ms, uint64_t budget_us, struct store_expired *out);

/* share: a one-use transfer token (SESS_TOKEN_BYTES random bytes, copied to
 * token) that holds one reference to object id until claimed or until
 * now_ms + ttl_s * 1000. It counts against s's max_session_tokens, and
 * against max_tokens, until claimed or expired (store_expire); it outlives
 * s. 0, RPC_EOUT_OF_MEMORY, RPC_EINTERNAL, or RPC_EQUOTA_EXCEEDED (nothing
 * made; share_quota_hit says which limit). */
int share_new(struct store *st, struct sess *s, uint64_t id, uint32_t ttl_s, uint64_t now_ms,
              uint8_t *token);
/* Fresh random bytes for a share token (SESS_TOKEN_BYTES), none taken: the
 * decision a SHARE record carries. 0 or RPC_EINTERNAL. */
int share_token(const struct store *st, uint8_t *token);
/* share_new with the token's bytes given, made by session maker (0 or a
 * session gone: counted against no session, but its id is kept, as the
 * store that made the token keeps it). maker must be an id the session
 * sequence has handed out (below next_sess_id) or 0. RPC_EBAD_PARAMS if
 * the token is taken. */
int share_new_at(struct store *st, uint64_t maker, const uint8_t *token, uint64_t id,
                 uint32_t ttl_s, uint64_t now_ms);
/* Which limit stops s from making a token: "max_tokens_per_session",
 * "max_tokens", or NULL if neither. */
const char *share_quota_hit(const struct store *st, const struct sess *s);
/* claim: s gains one hold on the token's object, then the token's reference
 * goes (so the object cannot die in between) and the token is spent. *id
 * gets the object. RPC_ETOKEN_INVALID for an unknown, spent or expired
 * token; RPC_EOUT_OF_MEMORY or RPC_EQUOTA_EXCEEDED with nothing changed. */
int share_claim(struct store *st, struct sess *s, const void *token, uint32_t len, uint64_t now_ms,
                uint64_t *id);
/* The object of an unspent, unexpired token: 0 with *id, or
 * RPC_ETOKEN_INVALID. */
int share_find(const struct store *st, const void *token, uint32_t len, uint64_t now_ms,
               uint64_t *id);
/* A token past its deadline that the expiry tick has not reached yet is
 * expired now (recorded through the journal hook): 1 if it was, else 0. */
int share_expire_if_due(struct store *st, const void *token, uint32_t len, uint64_t now_ms);
struct sess *sess_find(const struct store *st, uint64_t id);
/* Holds s has on id (0 if none). */
uint64_t sess_holds_on(const struct store *st, const struct sess *s, uint64_t id);
/* Make the next sess_incref of 1 on a new object infallible. 0 or
 * RPC_EOUT_OF_MEMORY. */
int sess_reserve(struct store *st, struct sess *s);
/* Whether s may take n more holds: 0 or RPC_EQUOTA_EXCEEDED. */
int sess_can_hold(const struct store *st, const struct sess *s, uint64_t n);
/* Add n holds on object id. 0, RPC_EOUT_OF_MEMORY or RPC_EQUOTA_EXCEEDED
 * (unchanged). */
int sess_incref(struct store *st, struct sess *s, uint64_t id, uint32_t n, uint64_t *after);
/* Drop n of s's holds on id. RPC_ENOT_FOUND if no such object, RPC_ENOT_HELD
 * if s holds fewer than n (nothing dropped). The object may be freed. */
int sess_decref(struct store *st, struct sess *s, uint64_t id, uint32_t n, uint64_t *after);
/* Holds an ending session drops (a SESS_RELEASE record's pairs): each
 * (id, count) is one entry of its releasing map (the whole count) or its
 * ownership of id (count 1), in that order of preference. 0, or
 * RPC_EBAD_PARAMS if one is not there (damage; the pairs before it are
 * dropped). */
int sess_release_pairs(struct store *st, struct sess *s, const void *pairs, uint64_t n);
/* End s (it is detached): sliced says its holds go a slice at a time
 * (SESS_END) rather than at once (SESS_CLOSE). */
void sess_end(struct store *st, struct sess *s, int sliced);
/* Whether ending s now would release its holds in slices. */
int sess_end_sliced(const struct store *st, const struct sess *s);
/* Free a session that is ending and holds nothing any more. */
void sess_end_done(struct store *st, struct sess *s);
/* The share token with these bytes ends (a SHARE_EXPIRE record): its
 * reference goes. 0 or RPC_EBAD_PARAMS if there is none. */
int share_expire_token(struct store *st, const uint8_t *token);
/* Drop every hold of s; returns how many were dropped. */
uint64_t sess_release_all(struct store *st, struct sess *s);
/* Ask for a "freed" notification for object id. 0 or RPC_EOUT_OF_MEMORY. */
int sess_watch(struct store *st, struct sess *s, uint64_t id);

/* After a recovery has applied a snapshot and a journal: free garbage a
 * collection left flagged, queue each leased session at its full ttl from
 * now_ms, and end the others as a close does (all recorded through the
 * journal hook). 0 or RPC_EOUT_OF_MEMORY. */
int store_recovered(struct store *st, uint64_t now_ms);
/* Read-only walks for the snapshot writer (any order; start with *pos = 0;
 * not valid across changes). Every session, attached or not; NULL after
 * the last. */
struct sess *store_next_sess(const struct store *st, uint32_t *pos);
/* s's holds beyond ownership that are still counted: object id and count
 * (never 0); 0 at the end. For a session that is ending (s->ending), the
 * entries of its releasing map that store_expire has not released yet.
 * Its owned objects are those whose heap->owner slot is s->idx. */
int sess_next_hold(const struct sess *s, uint32_t *pos, uint64_t *id, uint64_t *n);
/* Every share token: its bytes (SESS_TOKEN_BYTES), object, deadline on the
 * store clock, ttl in seconds and the session that made it (0 if not
 * known); 0 at the end. */
int store_next_share(const struct store *st, uint32_t *pos, const uint8_t **token, uint64_t *id,
                     uint64_t *deadline_ms, uint32_t *ttl_s, uint64_t *maker);

/* ---- loading: rebuilding a store from a snapshot (store_load.c) ----
 * Into a store fresh from store_init, in the snapshot's order:
 * heap_load_ids and heap_load_free on st->heap, store_load_sess for every
 * session, store_load_obj for every object, then store_load_holds,
 * store_load_name and store_load_share, and store_load_finish last. This is
 * state that was admitted before, so no quota applies; and it comes from a
 * file, so everything is verified: each error is damage (RPC_EBAD_PARAMS)
 * or RPC_EOUT_OF_MEMORY, and the caller throws the store away with
 * store_close, which frees all of it. Loaded sessions are not attached and
 * not queued for their lease's end: the recovery that loads them queues the
 * leased ones and ends the others once the journal is replayed. */

/* A session with this id, resume token, lease (ttl_s, kept as it was) and
 * client name (client_len < 64 bytes, no NUL). ending: it had ended and
 * its holds were being released in slices (REC_SESS_ENDING): it is left as
 * end_session leaves one, not resumable, on st->ending for store_expire,
 * counted in sessions_detached. *out gets it. */
int store_load_sess(struct store *st, uint64_t id, const uint8_t *token, uint32_t ttl_s, int ending,
                    const char *client, uint32_t client_len, struct sess **out);
/* Object id (heap_load_obj) and, if owner is not NULL, owner's one hold on
 * it as its owner session. */
int store_load_obj(struct store *st, uint64_t id, struct sess *owner, const void *data,
                   uint32_t len, const void *refs, uint32_t nrefs);
/* n (1 to 2^32 - 1) holds of s beyond ownership on live object id; one call
 * per object and session. An ending session's go to its releasing map. */
int store_load_holds(struct store *st, struct sess *s, uint64_t id, uint64_t n);
/* A valid name, not loaded yet, bound to live object id. */
int store_load_name(struct store *st, const char *name, uint32_t len, uint64_t id);
/* A share token on live object id made by session maker (0, or a session
 * not loaded, which has ended: its id is kept and counts nothing), whose
 * ttl_s (not 0) restarts at full from now_ms (SPEC section 8). The caller
 * checks that maker is below the snapshot's session sequence. */
int store_load_share(struct store *st, const uint8_t *token, uint64_t id, uint32_t ttl_s,
                     uint64_t maker, uint64_t now_ms);
/* The end: the session id sequence goes on at next_sess_id (above every
 * session loaded), then heap_load_finish counts the refs and verifies the
 * heap. */
int store_load_finish(struct store *st, uint64_t next_sess_id);

#endif
