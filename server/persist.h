/* persist: a data directory behind a store (SPEC section 8). At start it
 * recovers the store (the snapshot, then every journal record after it,
 * through apply_record), then it journals every change: a request's through
 * persist_change (record reserved, change applied, record appended), the
 * store's own decisions through the store's journal hook. Records of one
 * loop iteration go to the kernel with one write (persist_commit, from the
 * server's check handle); replies wait for their record's index to be
 * durable (on_durable). It starts snapshots in a forked child (save, and
 * automatically past --compact-journal-bytes) and drops the segments a
 * snapshot covers. docs/persistence.md has the files and the argument. */
#ifndef RCS_SERVER_PERSIST_H
#define RCS_SERVER_PERSIST_H

#include "apply.h"
#include "journal.h"
#include "store.h"

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

struct persist_opts {
    const char *dir;
    enum journal_fsync fsync;
    uint64_t compact_bytes; /* journal bytes that start a snapshot; 0: never automatic */
    uint64_t segment_bytes; /* 0: JOURNAL_SEGMENT_BYTES */
};

/* A save request waiting for its snapshot (the server's connection). */
typedef void (*persist_saved_cb)(void *ud, void *waiter, int rc, uint64_t bytes, uint64_t ms);

struct persist {
    /* read-only: */
    int enabled;
    struct journal j;
    struct persist_opts opts;
    uint64_t records;            /* appended since start */
    uint64_t bytes_since_snap;   /* record bytes appended since the last snapshot began */
    uint64_t last_snapshot_unix; /* 0: none yet */
    uint64_t last_snapshot_bytes, last_snapshot_ms;
    pid_t child; /* the snapshot being written, or 0 */
    char last_error[256];
    /* private: */
    struct store *st;
    uv_loop_t *loop;
    uint64_t child_index, child_start_ms;
    void **waiters, **next_waiters; /* saves served by the child running / by the next */
    uint32_t nwaiters, nnext, waiters_cap, next_cap;
    uv_signal_t sigchld;
    uv_check_t check;     /* commits after each loop iteration's I/O callbacks ... */
    uv_prepare_t prepare; /* ... and before it blocks (records of timers, idle handles) */
    uv_timer_t retry; /* a snapshot that had to wait (garbage not freed, the huge-page helper) */
    int thp_held;     /* thp_hold(1) said for the snapshot about to start */
    int handles;      /* sigchld and check initialised */
    void (*submit)(void *ud); /* cluster mode: records go to Raft, not to files */
    void *submit_ud;
    void (*on_durable)(void *ud, uint64_t index);
    persist_saved_cb on_saved;
    void *ud;
    char dirbuf[4096];
};

/* Recover st (fresh from store_init) from opts->dir and open its journal.
 * 0, or a negative code with one line in err: -EWOULDBLOCK when another
 * server holds the directory, -EBADMSG (or a REC_E* code) when it is
 * damaged (the line names the file and the offset, or the record), another
 * -errno when the system refused. on_durable(ud, index) tells when replies
 * up to index may leave; on_saved reports a save's end to its waiter. */
int persist_open(struct persist *p, const struct persist_opts *opts, struct store *st,
                 uv_loop_t *loop, void (*on_durable)(void *ud, uint64_t index),
                 persist_saved_cb on_saved, void *ud, char *err, size_t errlen);
/* A cluster node's persist (cluster.c): no files; the records handlers and
 * the store append to p->j's buffer go to submit(ud) (Raft) at the end of
 * each loop iteration, and the cluster sets j.durable_index as Raft commits
 * them. Records are refused (j.failed) until the cluster says this node
 * serves. */
void persist_open_cluster(struct persist *p, struct store *st, uv_loop_t *loop,
                          void (*submit)(void *ud), void *submit_ud);
/* --check-data's second half: recover dir into a scratch store (the whole
 * journal verified, the snapshot loaded, the journal replayed, the store
 * checked) without taking its lock or writing anything. 0 with a summary in
 * err, or the first problem in err. */
int persist_verify(const char *dir, const struct store_limits *lim, char *err, size_t errlen);
/* Stop: write and sync what is pending, wait for a snapshot child, close
 * the handles (run the loop after, as for journal_close). */
void persist_close(struct persist *p);

/* A request's change: apply r (whose session s may be NULL) to the store
 * and journal it, *index getting its record's index (0 without a data
 * directory). As apply_record, plus RPC_EPERSISTENCE_FAILED (nothing
 * changed) while the journal cannot be written. */
int persist_change(struct persist *p, struct store *st, struct sess *s, const struct rec *r,
                   uint64_t now_ms, struct apply_out *out, uint64_t *index);
/* The index replies written so far must wait for (0 without a data
 * directory), and whether it is durable. */
static inline uint64_t persist_last_index(const struct persist *p)
{
    return p->enabled ? p->j.next_index - 1 : 0;
}
static inline int persist_durable(const struct persist *p, uint64_t index)
{
    return !p->enabled || index <= p->j.durable_index;
}
/* Write a snapshot in the background for waiter (NULL: compaction); the
 * waiter hears on_saved once one that began after this call is complete.
 * 0, or RPC_EOUT_OF_MEMORY. */
int persist_save(struct persist *p, void *waiter);
/* A waiter that goes away (its connection closed) is forgotten. */
void persist_forget(struct persist *p, void *waiter);
/* "no", "everysec" or "always". */
const char *persist_fsync_name(enum journal_fsync f);

#endif
