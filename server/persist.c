/* persist: recovery, the journal of a running server, and its snapshots
 * (see persist.h). */
#define _GNU_SOURCE
#include "persist.h"
#include "check.h"
#include "err.h"
#include "log.h"
#include "mem.h"
#include "snapshot.h"
#include "thp.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *persist_fsync_name(enum journal_fsync f)
{
    return f == JOURNAL_FSYNC_ALWAYS ? "always" : f == JOURNAL_FSYNC_NO ? "no" : "everysec";
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- recovery ---- */

struct replay {
    struct store *st;
    uint64_t after;  /* the snapshot's last index: records up to it are in it */
    uint64_t expect; /* the next index to apply */
    uint64_t applied;
    uint64_t now_ms;
    const char *dir;
    char *err;
    size_t errlen;
};

static int replay_one(void *ud, uint64_t index, const struct rec *r)
{
    struct replay *rp = ud;
    int rc;
    if (index <= rp->after)
        return 0;
    if (index != rp->expect) {
        snprintf(rp->err, rp->errlen,
                 "%s: the journal goes on at record %" PRIu64 " but the snapshot ends at %" PRIu64
                 ": records in between are missing",
                 rp->dir, index, rp->expect - 1);
        return -EBADMSG;
    }
    if ((rc = apply_record(rp->st, r, rp->now_ms, 1, NULL)) < 0) {
        snprintf(rp->err, rp->errlen,
                 "%s: journal record %" PRIu64 " (%s) does not apply to the state before it: %s",
                 rp->dir, index, rec_type_name(r->type), err_message(rc));
        return -EBADMSG;
    }
    rp->expect++;
    rp->applied++;
    return 0;
}

/* What recover_into found. */
struct recovered {
    int has_snapshot;
    struct snapshot_info snap;
    uint64_t applied;       /* journal records replayed */
    uint64_t journal_bytes; /* of records in the journal's segments */
    uint64_t next_index;    /* the index the next record takes */
};

/* The state a data directory holds, built in st (fresh from store_init):
 * the whole journal verified first, the snapshot loaded, every record after
 * it replayed. Quotas are policy for new requests, not for what was
 * acknowledged: they are lifted while records are applied (a lowered
 * --max-holds-per-session must not make a journal unreadable). 0, or the
 * damage with one line in err (file and offset, or the record). */
static int recover_into(struct store *st, const char *dir, uint64_t now_ms, struct recovered *out,
                        char *err, size_t errlen)
{
    struct store_limits lim = st->lim;
    struct journal_scan scan;
    struct replay rp = {0};
    char path[4200];
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = journal_check(dir, 0, &scan)) < 0) {
        snprintf(err, errlen,
                 "%s (rcstored --check-data %s --repair cuts the journal there; what follows is "
                 "lost: copy the directory first)",
                 scan.damaged ? scan.damage : strerror(-rc), dir);
        return rc;
    }
    /* (A torn tail is cut, with its warning, by journal_open.) */
    st->lim.max_session_holds = st->lim.max_session_tokens = st->lim.max_tokens = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, SNAPSHOT_FILE);
    rc = snapshot_load(st, path, now_ms, &out->snap, err, errlen);
    if (rc < 0 && rc != -ENOENT)
        goto out;
    out->has_snapshot = rc == 0;
    rp.st = st;
    /* Tokens a SHARE record makes restart at their full ttl from now, as
     * the snapshot's do (SPEC section 8), not from the clock's zero. */
    rp.now_ms = now_ms;
    rp.after = out->has_snapshot ? out->snap.last_index : 0;
    rp.expect = rp.after + 1;
    rp.dir = dir;
    rp.err = err;
    rp.errlen = errlen;
    if ((rc = journal_scan(dir, replay_one, &rp, &scan)) < 0) {
        if (scan.damaged)
            snprintf(err, errlen, "%s", scan.damage);
        goto out;
    }
    heap_untrack_free(&st->heap);
    out->journal_bytes = scan.bytes;
    out->applied = rp.applied;
    out->next_index = rp.expect;
    rc = 0;
out:
    st->lim = lim;
    return rc;
}

int persist_verify(const char *dir, const struct store_limits *lim, char *err, size_t errlen)
{
    struct recovered rv;
    struct store st;
    int rc;
    if ((rc = store_init(&st, lim, NULL, NULL)) < 0) {
        snprintf(err, errlen, "cannot set up a store: %s", strerror(-rc));
        return rc;
    }
    if ((rc = recover_into(&st, dir, 0, &rv, err, errlen)) == 0 &&
        store_check(&st, err, errlen) < 0) {
        char why[300];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "%s: the recovered store does not verify: %s", dir, why);
        rc = -EBADMSG;
    }
    if (rc == 0)
        snprintf(err, errlen,
                 "%s: recovers %" PRIu64 " objects, %" PRIu64 " names, %" PRIu64
                 " sessions (snapshot of %" PRIu64 " objects, %" PRIu64
                 " journal records after it)",
                 dir, st.heap.objects, st.names.count, store_session_count(&st), rv.snap.objects,
                 rv.applied);
    store_close(&st);
    return rc;
}

/* The store's own decisions, and the collector's, go to the journal. */
static int on_store_record(void *ud, const struct rec *r)
{
    struct persist *p = ud;
    uint64_t before = p->j.out.len;
    int rc = journal_append(&p->j, r, NULL);
    if (rc == 0) {
        p->records++;
        p->bytes_since_snap += p->j.out.len - before;
        return 0;
    }
    return rc == -ENOMEM ? RPC_EOUT_OF_MEMORY : RPC_EPERSISTENCE_FAILED;
}

static void on_journal_durable(void *ud, uint64_t index)
{
    struct persist *p = ud;
    if (p->on_durable)
        p->on_durable(p->ud, index);
}

static void on_check(uv_check_t *h);
static void on_prepare(uv_prepare_t *h);
static void on_sigchld(uv_signal_t *h, int signum);

int persist_open(struct persist *p, const struct persist_opts *opts, struct store *st,
                 uv_loop_t *loop, void (*on_durable)(void *ud, uint64_t index),
                 persist_saved_cb on_saved, void *ud, char *err, size_t errlen)
{
    struct journal_opts jo = {0};
    struct recovered rv;
    uint64_t t0 = mono_ms();
    int rc, lockfd = -1;

    memset(p, 0, sizeof(*p));
    p->opts = *opts;
    snprintf(p->dirbuf, sizeof(p->dirbuf), "%s", opts->dir);
    p->opts.dir = p->dirbuf;
    p->st = st;
    p->loop = loop;
    p->on_durable = on_durable;
    p->on_saved = on_saved;
    p->ud = ud;
    if (mkdir(opts->dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "cannot create data directory %s: %s", opts->dir, strerror(errno));
        return rc;
    }
    if ((rc = journal_lock_dir(opts->dir, &lockfd, err, errlen)) < 0)
        return rc;
    if ((rc = recover_into(st, opts->dir, uv_now(loop), &rv, err, errlen)) < 0)
        goto fail;
    if (rv.has_snapshot)
        p->last_snapshot_unix = rv.snap.unix_time;
    /* What the segments hold counts toward the next compaction: a server
     * restarted more often than it writes --compact-journal-bytes still
     * compacts. */
    p->bytes_since_snap = rv.journal_bytes;
    heap_untrack_free(&st->heap);
    jo.fsync = opts->fsync;
    jo.segment_bytes = opts->segment_bytes;
    jo.loop = loop;
    jo.on_durable = on_journal_durable;
    jo.ud = p;
    jo.first_index = rv.next_index;
    jo.have_lock = 1;
    jo.lockfd = lockfd;
    lockfd = -1; /* the journal's now, even if it fails */
    if ((rc = journal_open(&p->j, opts->dir, &jo, err, errlen)) < 0)
        return rc;
    p->enabled = 1;
    store_set_journal(st, on_store_record, p);
    /* Sessions without a lease end now, as a close would (recorded), and
     * leases restart at their full ttl; garbage a collection had found
     * but not freed is freed. */
    store_recovered(st, uv_now(loop));
    journal_commit(&p->j);
    log_info("recovered %" PRIu64 " objects, %" PRIu64 " names, %" PRIu64 " sessions in %" PRIu64
             " ms (snapshot of %" PRIu64 " objects at record %" PRIu64 ", %" PRIu64
             " journal records replayed)",
             st->heap.objects, st->names.count, store_session_count(st), mono_ms() - t0,
             rv.snap.objects, rv.next_index - 1 - rv.applied, rv.applied);
    if ((rc = uv_check_init(loop, &p->check)) < 0 || (rc = uv_signal_init(loop, &p->sigchld)) < 0 ||
        (rc = uv_timer_init(loop, &p->retry)) < 0 ||
        (rc = uv_prepare_init(loop, &p->prepare)) < 0) {
        snprintf(err, errlen, "cannot set up the journal's handles: %s", uv_strerror(rc));
        return rc;
    }
    p->handles = 1;
    p->check.data = p->sigchld.data = p->retry.data = p->prepare.data = p;
    /* Records made in the I/O callbacks are committed by the check handle,
     * in the same iteration; records made by timers and idle handles (the
     * backlog, sweeps, expiry) by the prepare handle, before the loop
     * blocks in poll: else their replies would wait for the next event. */
    uv_check_start(&p->check, on_check);
    uv_unref((uv_handle_t *)&p->check);
    uv_prepare_start(&p->prepare, on_prepare);
    uv_unref((uv_handle_t *)&p->prepare);
    uv_signal_start(&p->sigchld, on_sigchld, SIGCHLD);
    uv_unref((uv_handle_t *)&p->sigchld);
    uv_unref((uv_handle_t *)&p->retry);
    return 0;
fail:
    journal_unlock_dir(lockfd);
    return rc;
}

void persist_open_cluster(struct persist *p, struct store *st, uv_loop_t *loop,
                          void (*submit)(void *ud), void *submit_ud)
{
    void (*on_durable)(void *, uint64_t) = p->on_durable;
    void *ud = p->ud;
    memset(p, 0, sizeof(*p));
    p->st = st;
    p->loop = loop;
    p->on_durable = on_durable;
    p->ud = ud;
    p->submit = submit;
    p->submit_ud = submit_ud;
    buf_init(&p->j.out);
    p->j.next_index = 1;
    p->j.failed = -EAGAIN; /* (stats.persistence shows no error: stats.cluster says the role) */
    p->enabled = 1;
    store_set_journal(st, on_store_record, p);
}

/* ---- the running journal ---- */

int persist_change(struct persist *p, struct store *st, struct sess *s, const struct rec *r,
                   uint64_t now_ms, struct apply_out *out, uint64_t *index)
{
    struct rec sn = {.type = REC_SESS_NEW};
    uint64_t need, before;
    int rc;

    *index = 0;
    if (!p || !p->enabled)
        return apply_record(st, r, now_ms, 0, out);
    if (journal_error(&p->j))
        return RPC_EPERSISTENCE_FAILED;
    need = rec_size(r);
    if (s && !s->journaled) { /* the first record that names s */
        sn.sess = s->id;
        sn.token = s->token;
        sn.bytes = (const uint8_t *)s->client;
        sn.nbytes = (uint32_t)strlen(s->client);
        need += rec_size(&sn);
    }
    if (journal_reserve(&p->j, need) < 0)
        return RPC_EOUT_OF_MEMORY;
    if ((rc = apply_record(st, r, now_ms, 0, out)) < 0)
        return rc;
    before = p->j.out.len;
    /* Reserved, and the journal is not failed: neither append can fail. */
    if (sn.sess) {
        journal_append(&p->j, &sn, NULL);
        s->journaled = 1;
        p->records++;
    }
    journal_append(&p->j, r, index);
    p->records++;
    p->bytes_since_snap += p->j.out.len - before;
    return 0;
}

static void start_snapshot(struct persist *p);

static void on_retry(uv_timer_t *t)
{
    struct persist *p = t->data;
    if (!p->child)
        start_snapshot(p);
}

static void commit_and_compact(struct persist *p);

static void on_check(uv_check_t *h)
{
    commit_and_compact(h->data);
}

static void on_prepare(uv_prepare_t *h)
{
    commit_and_compact(h->data);
}

static void commit_and_compact(struct persist *p)
{
    if (p->j.next_index - 1 > p->j.written_index && !journal_error(&p->j))
        journal_commit(&p->j);
    if (!p->child && (p->nwaiters || p->nnext ||
                      (p->opts.compact_bytes && p->bytes_since_snap >= p->opts.compact_bytes)))
        start_snapshot(p);
}

/* ---- snapshots ---- */

static int push_waiter(void ***v, uint32_t *n, uint32_t *cap, void *w)
{
    if (*n == *cap) {
        uint32_t c = *cap ? *cap * 2 : 8;
        void **q = mem_realloc(*v, (size_t)*cap * sizeof(void *), (size_t)c * sizeof(void *));
        if (!q)
            return RPC_EOUT_OF_MEMORY;
        *v = q;
        *cap = c;
    }
    (*v)[(*n)++] = w;
    return 0;
}

int persist_save(struct persist *p, void *waiter)
{
    if (p->submit)
        return RPC_EBAD_REQUEST; /* Raft takes a cluster node's snapshots */
    /* A snapshot under way began before this request: the waiter gets the
     * next one. */
    if (p->child)
        return push_waiter(&p->next_waiters, &p->nnext, &p->next_cap, waiter);
    return push_waiter(&p->waiters, &p->nwaiters, &p->waiters_cap, waiter);
}

void persist_forget(struct persist *p, void *waiter)
{
    for (uint32_t i = 0; i < p->nwaiters; i++)
        if (p->waiters[i] == waiter)
            p->waiters[i] = NULL;
    for (uint32_t i = 0; i < p->nnext; i++)
        if (p->next_waiters[i] == waiter)
            p->next_waiters[i] = NULL;
}

static void tell_waiters(struct persist *p, int rc, uint64_t bytes, uint64_t ms)
{
    for (uint32_t i = 0; i < p->nwaiters; i++)
        if (p->waiters[i] && p->on_saved)
            p->on_saved(p->ud, p->waiters[i], rc, bytes, ms);
    p->nwaiters = 0;
}

/* Fork a child that writes the store as of the last record appended. It
 * dies with the server (so no orphan renames a snapshot into a directory a
 * new server recovers from) and does not keep the directory's lock. */
static void start_snapshot(struct persist *p)
{
    const struct heap *h = &p->st->heap;
    pid_t parent = getpid(), pid;
    uint64_t index, now_ms;

    /* Garbage found but not freed yet: its GC_FREE is not in the journal, so
     * the state is no record's; the collector frees it within slices. And a
     * fork waits for every page fault in flight, the huge-page helper's too
     * (1-5 ms): it is held, and the fork waits for it to be idle. Both are
     * tried again a millisecond later; the loop serves meanwhile. */
    if (!p->thp_held) {
        thp_hold(1);
        p->thp_held = 1;
    }
    if (gc_pending(h) || h->hide_white || thp_busy()) {
        if (!uv_is_active((uv_handle_t *)&p->retry))
            uv_timer_start(&p->retry, on_retry, 1, 0);
        return;
    }
    /* Everything up to index goes to the kernel first: a killed server then
     * loses none of what the snapshot holds. */
    if (p->j.next_index - 1 > p->j.written_index && !journal_error(&p->j))
        journal_commit(&p->j);
    /* No rotation: the segments wholly before index go once the snapshot
     * is complete, the current one at the next snapshot. (A rotation here
     * would need a new segment's room on a disk that may have none, and a
     * snapshot that fails would leave one more segment each time.) */
    index = p->j.next_index - 1;
    now_ms = uv_now(p->loop);
    pid = fork();
    if (pid != 0) {
        thp_hold(0);
        p->thp_held = 0;
    }
    if (pid < 0) {
        snprintf(p->last_error, sizeof(p->last_error), "snapshot: fork: %s", strerror(errno));
        log_error("%s", p->last_error);
        tell_waiters(p, RPC_EPERSISTENCE_FAILED, 0, 0);
        return;
    }
    if (pid == 0) {
        char err[512];
        int rc;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        rc = snapshot_write(p->st, p->opts.dir, index, now_ms, NULL, err, sizeof(err));
        if (rc < 0)
            log_error("%s", err);
        _exit(rc < 0 ? 1 : 0);
    }
    p->child = pid;
    p->child_index = index;
    p->child_start_ms = mono_ms();
    p->bytes_since_snap = 0;
    /* (Saves asked while a child ran wait in next_waiters; snapshot_done
     * makes them this one's before it starts.) */
    log_info("snapshot of record %" PRIu64 " started by child %d", index, (int)pid);
}

static void snapshot_done(struct persist *p, int status)
{
    uint64_t ms = mono_ms() - p->child_start_ms, bytes = 0;
    char path[4200];
    struct stat sb;
    int rc;

    p->child = 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        snprintf(path, sizeof(path), "%s/%s", p->opts.dir, SNAPSHOT_FILE);
        if (stat(path, &sb) == 0)
            bytes = (uint64_t)sb.st_size;
        p->last_snapshot_unix = (uint64_t)time(NULL);
        p->last_snapshot_bytes = bytes;
        p->last_snapshot_ms = ms;
        p->last_error[0] = '\0';
        if ((rc = journal_drop_through(&p->j, p->child_index)) < 0)
            log_warn("cannot delete journal segments the snapshot holds: %s", strerror(-rc));
        log_info("snapshot of record %" PRIu64 " written: %" PRIu64 " bytes in %" PRIu64 " ms",
                 p->child_index, bytes, ms);
        tell_waiters(p, 0, bytes, ms);
    } else {
        snprintf(p->last_error, sizeof(p->last_error),
                 "snapshot: the child writing it %s %d (its log line says why)",
                 WIFEXITED(status) ? "exited with status" : "was killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        log_error("%s", p->last_error);
        tell_waiters(p, RPC_EPERSISTENCE_FAILED, 0, ms);
    }
    /* The next round of waiters goes at the next check. */
    if (p->nnext) {
        void **t = p->waiters;
        uint32_t c = p->waiters_cap;
        p->waiters = p->next_waiters;
        p->waiters_cap = p->next_cap;
        p->nwaiters = p->nnext;
        p->next_waiters = t;
        p->next_cap = c;
        p->nnext = 0;
    }
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    struct persist *p = h->data;
    int status;
    (void)signum;
    if (p->child && waitpid(p->child, &status, WNOHANG) == p->child)
        snapshot_done(p, status);
}

void persist_close(struct persist *p)
{
    int status;
    if (!p->enabled)
        return;
    if (p->submit) {
        buf_close(&p->j.out);
        p->enabled = 0;
        return;
    }
    if (p->child) {
        /* An unfinished snapshot is given up: the journal has everything. */
        kill(p->child, SIGKILL);
        waitpid(p->child, &status, 0);
        p->child = 0;
    }
    tell_waiters(p, RPC_EPERSISTENCE_FAILED, 0, 0);
    journal_close(&p->j);
    if (p->handles) {
        uv_close((uv_handle_t *)&p->check, NULL);
        uv_close((uv_handle_t *)&p->sigchld, NULL);
        uv_close((uv_handle_t *)&p->retry, NULL);
        uv_close((uv_handle_t *)&p->prepare, NULL);
        p->handles = 0;
    }
    mem_free(p->waiters, (size_t)p->waiters_cap * sizeof(void *));
    mem_free(p->next_waiters, (size_t)p->next_cap * sizeof(void *));
    p->waiters = p->next_waiters = NULL;
    p->enabled = 0;
}
