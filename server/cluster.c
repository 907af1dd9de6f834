/* cluster: a node of a replicated heap on libraft (see cluster.h). */
#define _GNU_SOURCE
#include "cluster.h"
#include "apply.h"
#include "err.h"
#include "heap.h"
#include "log.h"
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <raft.h>
#include <raft/uv.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* An entry: "RCB1", the length of its records (4 bytes), the incarnation
 * of the process that served them (8 bytes), then the records, then zeros
 * to a multiple of 8 bytes: libraft 0.15 sends a batch of entries whose
 * lengths are not multiples of 8 with their payloads shifted (seen here:
 * a follower catching up got "CB1\0..."), so every entry is padded. */
#define BATCH_MAGIC "RCB1"
#define BATCH_HDR   16

/* The Raft address of a member is "RAFTHOST:PORT|CLIENTADDRESS": the
 * configuration, which Raft replicates and snapshots, carries the client
 * address other nodes hand out. The transport below strips it. */
#define ADDR_SEP   '|'
#define ADDR_CACHE 32

enum waiter_kind { W_ADD, W_REMOVE, W_TRANSFER };

struct change_req {
    union {
        struct raft_change change;
        struct raft_transfer transfer;
    } u;
    struct cluster *cl;
    void *waiter;
    enum waiter_kind kind;
    uint64_t id;
    int stage; /* add: 0 adding as a spare, 1 promoting */
};

struct apply_req {
    struct raft_apply req;
    struct cluster *cl;
    uint64_t last; /* the last record index it carries */
};

struct cluster {
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport tcp;  /* libraft's TCP transport */
    struct raft_uv_transport wrap; /* what Raft sees: addresses stripped for tcp */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb wrap_close_cb;
    struct raft_fsm fsm;
    struct store *st;
    struct persist *p;
    uv_loop_t *loop;
    struct cluster_opts opts;
    uint64_t incarnation;
    int ready;           /* leader, barrier applied: serves and decides */
    int barrier_pending; /* a barrier of this leadership is in flight */
    int lost;            /* leadership lost: restart once the waiter heard */
    int started, closing, closed;
    int tcp_inited, io_inited, raft_inited;
    int works; /* async_work requests on the thread pool */
    struct raft_barrier barrier;
    uint64_t last_submitted; /* the Raft index of the last entry this node appended */
    pid_t snap_child;
    atomic_int snap_reaped; /* snapshot_async (thread pool) waited for snap_child */
    uint64_t snapshots, snapshots_delayed;
    struct change_req *change; /* the membership change or transfer in flight */
    cluster_done_cb done;
    void *done_ud;
    uv_check_t check;
    uv_prepare_t prepare;
    uv_timer_t restart_timer;
    uv_timer_t watch_timer; /* the leader's watch over followers that do not catch up */
    struct {
        uint64_t id, match, since_ms;
    } watch[2 * CLUSTER_MAX_PEERS];
    unsigned threshold;   /* --raft-snapshot-entries, as set */
    unsigned install_ms;  /* the InstallSnapshot timeout */
    int healing;          /* a snapshot was asked for a stuck follower */
    uint64_t heal_target; /* ... at this index or later */
    struct raft_barrier heal_barrier;
    int heal_barrier_pending;
    uint64_t heals;
    int handles;
    int lockfd;
    char self[2 * CLUSTER_ADDR_MAX + 2];
    char raftdir[4200], fsmdir[4200];
    char leader_client[CLUSTER_ADDR_MAX];
    char exe[4096]; /* this program, to re-execute (its name stays rcstored) */
    char cache[ADDR_CACHE][CLUSTER_ADDR_MAX];
    unsigned cache_next;
};

/* ---- addresses ---- */

static void split_addr(const char *full, char *raft, size_t rlen, const char **client)
{
    const char *sep = strchr(full, ADDR_SEP);
    size_t n = sep ? (size_t)(sep - full) : strlen(full);
    if (n >= rlen)
        n = rlen - 1;
    memcpy(raft, full, n);
    raft[n] = '\0';
    if (client)
        *client = sep ? sep + 1 : "";
}

/* The Raft part of full, in storage that lives as long as the node (the
 * transport may keep the pointer while it connects). */
static const char *raft_part(struct cluster *cl, const char *full)
{
    char r[CLUSTER_ADDR_MAX];
    split_addr(full, r, sizeof(r), NULL);
    for (unsigned i = 0; i < ADDR_CACHE; i++)
        if (strcmp(cl->cache[i], r) == 0)
            return cl->cache[i];
    char *slot = cl->cache[cl->cache_next++ % ADDR_CACHE];
    memcpy(slot, r, sizeof(r));
    return slot;
}

static int wrap_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct cluster *cl = t->impl;
    return cl->tcp.init(&cl->tcp, id, raft_part(cl, address));
}

/* Raft's messages are small and answered at once: Nagle's algorithm
 * against the peer's delayed ACK held each round for 40 ms (a p99 of 44 ms
 * under load). libraft's TCP transport leaves the sockets as libuv makes
 * them; every one that reaches us here gets TCP_NODELAY. */
static void nodelay(struct uv_stream_s *stream)
{
    if (stream && stream->type == UV_TCP)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
}

static void wrap_accept(struct raft_uv_transport *t, raft_id id, const char *address,
                        struct uv_stream_s *stream)
{
    struct cluster *cl = t->data;
    nodelay(stream);
    cl->accept_cb(&cl->wrap, id, address, stream);
}

/* libraft's libuv backend gives every connect the same callback: it is
 * kept here (one node per process), and ours sets TCP_NODELAY first. */
static raft_uv_connect_cb raft_connect_cb;

static void wrap_connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    if (status == 0)
        nodelay(stream);
    raft_connect_cb(req, stream, status);
}

static int wrap_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct cluster *cl = t->impl;
    cl->accept_cb = cb;
    return cl->tcp.listen(&cl->tcp, wrap_accept);
}

static int wrap_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                        const char *address, raft_uv_connect_cb cb)
{
    struct cluster *cl = t->impl;
    raft_connect_cb = cb;
    return cl->tcp.connect(&cl->tcp, req, id, raft_part(cl, address), wrap_connected);
}

static void wrap_closed(struct raft_uv_transport *t)
{
    struct cluster *cl = t->data;
    cl->wrap_close_cb(&cl->wrap);
}

static void wrap_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct cluster *cl = t->impl;
    cl->wrap_close_cb = cb;
    cl->tcp.close(&cl->tcp, wrap_closed);
}

int cluster_check_raft_addr(const char *a, char *why, size_t whylen)
{
    const char *colon = strrchr(a, ':');
    char host[64], *end;
    unsigned long port;
    struct in_addr in;
    if (!colon || (size_t)(colon - a) >= sizeof(host)) {
        snprintf(why, whylen, "the Raft address %s is not IPV4:PORT", a);
        return -EINVAL;
    }
    memcpy(host, a, (size_t)(colon - a));
    host[colon - a] = '\0';
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    /* libraft 0.15's TCP transport parses the address with uv_ip4_addr at
     * every connect: a host name would never connect. */
    if (inet_pton(AF_INET, host, &in) != 1) {
        snprintf(why, whylen,
                 "the Raft address %s must be an IPv4 address and a port (libraft takes no host "
                 "names)",
                 a);
        return -EINVAL;
    }
    if (!colon[1] || *end || errno || port == 0 || port > 65535) {
        snprintf(why, whylen, "the Raft address %s has no valid port", a);
        return -EINVAL;
    }
    return 0;
}

int cluster_parse_peer(const char *s, struct cluster_peer *p, char *why, size_t whylen)
{
    const char *e1 = strchr(s, '='), *e2 = e1 ? strchr(e1 + 1, '=') : NULL;
    char *end;
    unsigned long long id;

    memset(p, 0, sizeof(*p));
    if (!e1 || !e2) {
        snprintf(why, whylen, "not ID=RAFTHOST:PORT=tcp://CLIENTHOST:PORT");
        return -EINVAL;
    }
    errno = 0;
    id = strtoull(s, &end, 10);
    if (end != e1 || errno || id == 0 || id > (1ull << 31)) {
        snprintf(why, whylen, "the node id must be an integer from 1 to 2^31");
        return -EINVAL;
    }
    if ((size_t)(e2 - e1 - 1) >= sizeof(p->raft) || e2 == e1 + 1) {
        snprintf(why, whylen, "the Raft address must be IPV4:PORT");
        return -EINVAL;
    }
    memcpy(p->raft, e1 + 1, (size_t)(e2 - e1 - 1));
    if (cluster_check_raft_addr(p->raft, why, whylen) < 0)
        return -EINVAL;
    if (strlen(e2 + 1) >= sizeof(p->client) || strncmp(e2 + 1, "tcp://", 6) != 0 ||
        strchr(e2 + 1, ADDR_SEP)) {
        snprintf(why, whylen, "the client address must be tcp://HOST:PORT");
        return -EINVAL;
    }
    p->id = id;
    snprintf(p->client, sizeof(p->client), "%s", e2 + 1);
    return 0;
}

/* Stop a snapshot child not reaped yet (the thread pool's snapshot_async
 * may have reaped it: its pid may be another process's by now). */
static void stop_snap_child(struct cluster *cl)
{
    int status;
    if (cl->snap_child && !atomic_load(&cl->snap_reaped)) {
        kill(cl->snap_child, SIGKILL);
        while (waitpid(cl->snap_child, &status, 0) < 0 && errno == EINTR)
            ;
    }
    cl->snap_child = 0;
}

/* ---- leaving a lost leadership ---- */

/* The store may hold changes Raft never committed: the process starts over
 * from its data directory, as after a crash, and comes back a follower.
 * Connections and the Raft port close with the image (their descriptors
 * are close-on-exec); clients see a closed connection, an unknown outcome,
 * never a wrong answer. */
static void reexec(struct cluster *cl)
{
    log_warn("re-executing %s: this node was the leader and may hold changes the cluster never "
             "committed; it comes back as a follower from its data directory",
             cl->opts.argv[0]);
    /* A snapshot child holds the listening sockets: they must be free. */
    stop_snap_child(cl);
    fflush(NULL);
    execv(cl->exe[0] ? cl->exe : "/proc/self/exe", cl->opts.argv);
    log_error("cannot re-execute %s: %s; exiting", cl->exe, strerror(errno));
    fflush(NULL);
    _exit(1);
}

static void on_restart_timer(uv_timer_t *t)
{
    reexec(t->data);
}

static void lose_leadership(struct cluster *cl, const char *why)
{
    if (cl->lost || cl->closing)
        return;
    cl->lost = 1;
    cl->ready = 0;
    cl->p->j.failed = -EAGAIN; /* no more decisions */
    log_warn("leadership lost: %s", why);
    /* A transfer's waiter hears first (its reply leaves before the exec);
     * the transfer ends within an election timeout. */
    if (cl->change && cl->change->kind == W_TRANSFER)
        return;
    reexec(cl);
}

/* ---- work off the loop ----
 * libraft 0.15's libuv backend is an I/O of version 1, without async_work,
 * which the state machine's asynchronous snapshots need: it is provided
 * here, on libuv's thread pool. */

struct work {
    uv_work_t w;
    struct cluster *cl;
    struct raft_io_async_work *req;
    raft_io_async_work_cb cb;
    int status;
};

static void work_run(uv_work_t *w)
{
    struct work *k = (struct work *)w;
    k->status = k->req->work(k->req);
}

static void work_done(uv_work_t *w, int status)
{
    struct work *k = (struct work *)w;
    struct cluster *cl = k->cl;
    cl->works--;
    /* A closing Raft is told nothing more. */
    if (!cl->closing)
        k->cb(k->req, status == UV_ECANCELED ? RAFT_CANCELED : k->status);
    free(k);
}

static int io_async_work(struct raft_io *io, struct raft_io_async_work *req,
                         raft_io_async_work_cb cb)
{
    struct cluster *cl = (struct cluster *)(void *)((char *)io - offsetof(struct cluster, io));
    struct work *k = calloc(1, sizeof(*k));
    int rc;
    if (!k)
        return RAFT_NOMEM;
    k->cl = cl;
    k->req = req;
    k->cb = cb;
    if ((rc = uv_queue_work(cl->loop, &k->w, work_run, work_done)) < 0) {
        free(k);
        return RAFT_IOERR;
    }
    cl->works++;
    return 0;
}

/* ---- the state machine ---- */

static void die_diverged(struct cluster *cl, const char *what, int rc)
{
    log_error("Raft entry %" PRIu64 " does not apply to this node's state (%s: %s): this node's "
              "data directory is damaged or from another cluster; stopping",
              (uint64_t)raft_last_applied(&cl->raft) + 1, what, err_message(rc));
    fflush(NULL);
    _exit(3);
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct cluster *cl = fsm->data;
    const uint8_t *p = buf->base;
    size_t n = buf->len;
    uint64_t inc;

    *result = NULL;
    /* A leader that stepped down in the middle of an I/O callback (another
     * leader's append) may hold records the cluster never committed: the
     * new leader's entries would not apply to that state. It leaves before
     * applying any (lose_leadership re-executes it). */
    if (cl->ready && raft_state(&cl->raft) != RAFT_LEADER)
        lose_leadership(cl, "another node was elected");
    /* A node that lost its leadership waits to re-execute (a transfer's
     * reply first): its store still has the sessions of its connections,
     * which the new leader's records end (they would not apply), and it
     * serves nothing more. It applies nothing; the process that replaces it
     * applies these entries from the log (fsm_snapshot refuses meanwhile,
     * so no snapshot claims them). */
    if (cl->lost)
        return 0;
    if (n < BATCH_HDR || memcmp(p, BATCH_MAGIC, 4) != 0) {
        log_error("entry of %zu bytes: %02x %02x %02x %02x", n, n > 0 ? p[0] : 0, n > 1 ? p[1] : 0,
                  n > 2 ? p[2] : 0, n > 3 ? p[3] : 0);
        die_diverged(cl, "not an rcstore entry", RPC_EBAD_PARAMS);
    }
    uint32_t len;
    memcpy(&len, p + 4, 4);
    memcpy(&inc, p + 8, 8);
    if (len > n - BATCH_HDR)
        die_diverged(cl, "an entry shorter than its records", RPC_EBAD_PARAMS);
    /* This process's own entries were applied when it served them. */
    if (inc == cl->incarnation)
        return 0;
    p += BATCH_HDR;
    n = len;
    while (n) {
        struct rec r;
        size_t used;
        int rc = rec_decode(p, n, REC_KIND_JOURNAL, &r, &used);
        if (rc < 0)
            die_diverged(cl, "a record does not decode", rc);
        if ((rc = apply_record(cl->st, &r, uv_now(cl->loop), 1, NULL)) < 0)
            die_diverged(cl, rec_type_name(r.type), rc);
        p += used;
        n -= used;
    }
    return 0;
}

/* Only state that is exactly some applied index's can be a snapshot: a
 * leader with records not yet through Raft, or a collection holding
 * garbage whose free is not recorded, is asked again later (RAFT_BUSY). */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cluster *cl = fsm->data;
    const struct heap *h = &cl->st->heap;
    pid_t parent = getpid(), pid;
    uint64_t index = raft_last_applied(&cl->raft), now = uv_now(cl->loop);

    *bufs = NULL;
    *n_bufs = 0;
    if (cl->lost || cl->snap_child || buf_pending(&cl->p->j.out) ||
        (cl->last_submitted && cl->last_submitted > index) || gc_pending(h) || h->hide_white) {
        cl->snapshots_delayed++;
        return RAFT_BUSY;
    }
    pid = fork();
    if (pid < 0) {
        log_warn("Raft snapshot: fork: %s", strerror(errno));
        return RAFT_BUSY;
    }
    if (pid == 0) {
        char err[512];
        int rc;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        rc = snapshot_write(cl->st, cl->fsmdir, index, now, NULL, err, sizeof(err));
        if (rc < 0)
            log_error("Raft snapshot: %s", err);
        _exit(rc < 0 ? 1 : 0);
    }
    atomic_store(&cl->snap_reaped, 0);
    cl->snap_child = pid;
    cl->snapshots++;
    return 0;
}

/* On libuv's thread pool: wait for the child, read its file. */
static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cluster *cl = fsm->data;
    char path[4300];
    struct stat sb;
    struct raft_buffer *b = NULL;
    int status = 0, fd = -1, rc = RAFT_IOERR;
    size_t got = 0;
    pid_t w;

    while ((w = waitpid(cl->snap_child, &status, 0)) < 0 && errno == EINTR)
        ;
    atomic_store(&cl->snap_reaped, 1);
    if (w != cl->snap_child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return RAFT_IOERR;
    snprintf(path, sizeof(path), "%s/%s", cl->fsmdir, SNAPSHOT_FILE);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &sb) < 0)
        goto out;
    if (!(b = raft_malloc(sizeof(*b))) || !(b->base = raft_malloc((size_t)sb.st_size + 1)))
        goto out;
    b->len = (size_t)sb.st_size;
    while (got < b->len) {
        ssize_t r = read(fd, (char *)b->base + got, b->len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto out;
        got += (size_t)r;
    }
    *bufs = b;
    *n_bufs = 1;
    b = NULL;
    rc = 0;
out:
    if (b) {
        raft_free(b->base);
        raft_free(b);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cluster *cl = fsm->data;
    /* snapshot_async may not have run (Raft gave up): reap the child. */
    stop_snap_child(cl);
    if (*bufs) {
        for (unsigned i = 0; i < *n_bufs; i++)
            raft_free((*bufs)[i].base);
        raft_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

/* A snapshot from the leader (or this node's own, at start) replaces the
 * whole state. snapshot_load reads a file: the bytes go to a memfd. */
static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct cluster *cl = fsm->data;
    struct store *st = cl->st;
    struct store_limits lim = st->lim;
    store_notify_cb notify = st->notify;
    void *notify_ud = st->notify_ud;
    int (*record)(void *, const struct rec *) = st->record;
    void *record_ud = st->record_ud;
    struct snapshot_info info;
    char path[64], err[512];
    size_t off = 0;
    int fd, rc;

    if ((fd = memfd_create("rcstore-restore", MFD_CLOEXEC)) < 0)
        return RAFT_NOMEM;
    while (off < buf->len) {
        ssize_t w = write(fd, (const char *)buf->base + off, buf->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return RAFT_NOMEM;
        }
        off += (size_t)w;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    store_close(st);
    if ((rc = store_init(st, &lim, notify, notify_ud)) < 0) {
        close(fd);
        die_diverged(cl, "cannot set up a store", rc);
    }
    /* Quotas are policy for requests, not for state admitted before. */
    st->lim.max_session_holds = st->lim.max_session_tokens = st->lim.max_tokens = 0;
    rc = snapshot_load(st, path, uv_now(cl->loop), &info, err, sizeof(err));
    close(fd);
    st->lim = lim;
    if (rc < 0) {
        log_error("Raft snapshot does not load: %s", err);
        die_diverged(cl, "a snapshot", RPC_EBAD_PARAMS);
    }
    store_set_journal(st, record, record_ud);
    /* A node's snapshot holds only sessions a record named (the writer
     * leaves out a connection's that no record named): each is replicated
     * state, as a SESS_NEW applied leaves it. */
    {
        uint32_t pos = 0;
        struct sess *s;
        while ((s = store_next_sess(st, &pos)))
            s->journaled = 1;
    }
    log_info("restored a Raft snapshot: %" PRIu64 " objects, %" PRIu64 " names", st->heap.objects,
             st->names.count);
    raft_free(buf->base);
    return 0;
}

/* ---- leadership ---- */

static void on_barrier(struct raft_barrier *req, int status)
{
    struct cluster *cl = req->data;
    uint64_t now = uv_now(cl->loop);
    cl->barrier_pending = 0;
    if (status != 0 || cl->closing || raft_state(&cl->raft) != RAFT_LEADER)
        return; /* polled again: a new leadership tries again */
    /* Every committed entry is applied: this node decides from now on. */
    cl->p->j.failed = 0;
    cl->ready = 1;
    heap_untrack_free(&cl->st->heap);
    /* The sessions' connections were on other nodes: those without a lease
     * end, leases restart at their full ttl, garbage found is freed. */
    if (store_recovered(cl->st, now) < 0)
        log_warn("out of memory ending the sessions of the last leader; they end at their ttl");
    log_info("leader for term %llu: serving (%" PRIu64 " objects, %" PRIu64 " sessions)",
             (unsigned long long)cl->raft.current_term, cl->st->heap.objects,
             store_session_count(cl->st));
    if (cl->done)
        cl->done(cl->done_ud, NULL, 0, "ready", 0);
}

static void submit(struct cluster *cl);

static void poll_role(struct cluster *cl)
{
    int s;
    if (cl->closing || !cl->started)
        return;
    s = raft_state(&cl->raft);
    if (cl->ready && s != RAFT_LEADER) {
        lose_leadership(cl, "another node was elected");
        return;
    }
    if (s == RAFT_LEADER && !cl->ready && !cl->barrier_pending && !cl->lost) {
        cl->barrier.data = cl;
        if (raft_barrier(&cl->raft, &cl->barrier, on_barrier) == 0)
            cl->barrier_pending = 1;
    }
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
    struct apply_req *a = (struct apply_req *)req;
    struct cluster *cl = a->cl;
    struct persist *p = cl->p;
    (void)result;
    if (status != 0) {
        free(a);
        if (!cl->closing)
            lose_leadership(cl, raft_strerror(status));
        return;
    }
    if (a->last > p->j.durable_index) {
        p->j.durable_index = a->last;
        if (p->on_durable)
            p->on_durable(p->ud, a->last);
    }
    free(a);
}

/* The records of this loop iteration go to Raft as one entry. */
static void submit(struct cluster *cl)
{
    struct persist *p = cl->p;
    size_t n = buf_pending(&p->j.out);
    struct raft_buffer rb;
    struct apply_req *a;
    int rc;

    if (!n || cl->lost)
        return;
    a = calloc(1, sizeof(*a));
    rb.len = (BATCH_HDR + n + 7) & ~(size_t)7;
    rb.base = a && n < UINT32_MAX ? raft_calloc(1, rb.len) : NULL;
    if (!rb.base) {
        free(a);
        log_error("out of memory for a Raft entry");
        lose_leadership(cl, "out of memory");
        return;
    }
    uint32_t len32 = (uint32_t)n;
    memcpy(rb.base, BATCH_MAGIC, 4);
    memcpy((uint8_t *)rb.base + 4, &len32, 4);
    memcpy((uint8_t *)rb.base + 8, &cl->incarnation, 8);
    memcpy((uint8_t *)rb.base + BATCH_HDR, p->j.out.data + p->j.out.off, n);
    buf_reset(&p->j.out);
    a->cl = cl;
    a->last = p->j.next_index - 1;
    a->req.data = a;
    if ((rc = raft_apply(&cl->raft, &a->req, &rb, 1, on_applied)) != 0) {
        raft_free(rb.base);
        free(a);
        lose_leadership(cl, raft_strerror(rc));
        return;
    }
    cl->last_submitted = a->req.index;
}

static void on_check(uv_check_t *h)
{
    struct cluster *cl = h->data;
    submit(cl);
    poll_role(cl);
}

static void on_prepare(uv_prepare_t *h)
{
    struct cluster *cl = h->data;
    submit(cl);
    poll_role(cl);
}

/* persist's commit, from its handles (none in cluster mode) or a flush. */
static void persist_submit(void *ud)
{
    submit(ud);
}

static const struct raft_server *find_member(const struct cluster *cl, uint64_t id)
{
    for (unsigned i = 0; i < cl->raft.configuration.n; i++)
        if (cl->raft.configuration.servers[i].id == id)
            return &cl->raft.configuration.servers[i];
    return NULL;
}

/* ---- followers that do not catch up ----
 * libraft 0.15 live-locks a follower whose own snapshot is newer than the
 * leader's and whose log does not reach back to the leader's (it installed
 * a snapshot, which drops the log): the leader probes below the follower's
 * snapshot, the follower rejects, the leader sends its older snapshot, the
 * follower answers "have more recent snapshot", again and again (seen in
 * the nemesis: a follower stuck 120 s at its snapshot's index on an idle
 * cluster). A snapshot of the leader newer than the follower's ends it. So
 * the leader watches each follower's match index; one that has not moved
 * for three InstallSnapshot timeouts while behind gets a leader snapshot
 * at the current index (the threshold lowered to 1 and a barrier applied,
 * which is when libraft looks at the threshold). */

static void on_heal_barrier(struct raft_barrier *req, int status)
{
    struct cluster *cl = req->data;
    (void)status;
    cl->heal_barrier_pending = 0;
}

static void on_watch(uv_timer_t *t)
{
    struct cluster *cl = t->data;
    uint64_t now = uv_now(cl->loop), last, stuck = 0, stuck_match = 0;
    if (cl->healing && cl->raft.log.snapshot.last_index >= cl->heal_target) {
        raft_set_snapshot_threshold(&cl->raft, cl->threshold);
        cl->healing = 0;
    }
    if (!cl->ready || cl->raft.state != RAFT_LEADER || !cl->raft.leader_state.progress)
        return;
    last = raft_last_index(&cl->raft);
    for (unsigned i = 0; i < cl->raft.configuration.n && i < 2 * CLUSTER_MAX_PEERS; i++) {
        uint64_t id = cl->raft.configuration.servers[i].id;
        uint64_t match = cl->raft.leader_state.progress[i].match_index;
        if (id == cl->opts.node_id)
            continue;
        if (cl->watch[i].id != id || cl->watch[i].match != match || match >= last) {
            cl->watch[i].id = id;
            cl->watch[i].match = match;
            cl->watch[i].since_ms = now;
            continue;
        }
        if (now - cl->watch[i].since_ms > 3ull * cl->install_ms) {
            stuck = id;
            stuck_match = match;
            cl->watch[i].since_ms = now; /* once per three timeouts */
        }
    }
    if (!stuck || cl->healing || cl->heal_barrier_pending)
        return;
    log_warn("node %llu has not caught up for %u ms (it has stored up to %llu of %llu): "
             "taking a snapshot at the current index for it",
             (unsigned long long)stuck, 3 * cl->install_ms, (unsigned long long)stuck_match,
             (unsigned long long)last);
    cl->heals++;
    cl->healing = 1;
    cl->heal_target = raft_last_applied(&cl->raft);
    raft_set_snapshot_threshold(&cl->raft, 1);
    cl->heal_barrier.data = cl;
    if (raft_barrier(&cl->raft, &cl->heal_barrier, on_heal_barrier) == 0)
        cl->heal_barrier_pending = 1;
}

/* ---- membership ---- */

static void finish_change(struct change_req *w, int rc, const char *msg, uint64_t leader)
{
    struct cluster *cl = w->cl;
    if (cl->change == w)
        cl->change = NULL;
    if (w->waiter && cl->done)
        cl->done(cl->done_ud, w->waiter, rc, msg, leader);
    free(w);
    /* The waiter's reply is written: give it a moment to leave. */
    if (cl->lost && !cl->closing)
        uv_timer_start(&cl->restart_timer, on_restart_timer, 100, 0);
}

static void on_change(struct raft_change *req, int status)
{
    struct change_req *w = req->data;
    struct cluster *cl = w->cl;
    char msg[200];
    if (status != 0) {
        snprintf(msg, sizeof(msg), "the membership change failed: %s", raft_strerror(status));
        finish_change(w, RPC_EBAD_REQUEST, msg, 0);
        return;
    }
    if (w->kind == W_ADD && w->stage == 0) {
        int rc;
        w->stage = 1;
        w->u.change.data = w;
        if ((rc = raft_assign(&cl->raft, &w->u.change, w->id, RAFT_VOTER, on_change)) != 0) {
            snprintf(msg, sizeof(msg), "node %llu was added but not made a voter: %s",
                     (unsigned long long)w->id, raft_strerror(rc));
            finish_change(w, RPC_EBAD_REQUEST, msg, 0);
        }
        return;
    }
    finish_change(w, 0, NULL, 0);
}

static void on_transfer(struct raft_transfer *req)
{
    struct change_req *w = req->data;
    struct cluster *cl = w->cl;
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&cl->raft, &id, &addr);
    if (id && id != cl->opts.node_id)
        finish_change(w, 0, NULL, id);
    else
        finish_change(w, RPC_EBAD_REQUEST, "leadership did not move (the target did not win)", id);
}

static int start_change(struct cluster *cl, enum waiter_kind kind, uint64_t id, void *waiter,
                        struct change_req **out, char *err, size_t errlen)
{
    if (!cl->ready) {
        snprintf(err, errlen, "not the leader");
        return RPC_ENOT_LEADER;
    }
    if (cl->change) {
        snprintf(err, errlen, "a membership change or transfer is under way; retry once it ends");
        return RPC_EBAD_REQUEST;
    }
    if (id == 0 && kind != W_TRANSFER) {
        snprintf(err, errlen, "the node id must be from 1 to 2^31");
        return RPC_EBAD_PARAMS;
    }
    if (!(*out = calloc(1, sizeof(**out))))
        return RPC_EOUT_OF_MEMORY;
    (*out)->cl = cl;
    (*out)->waiter = waiter;
    (*out)->kind = kind;
    (*out)->id = id;
    return 0;
}

static int change_failed(struct cluster *cl, struct change_req *w, int rc, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s",
             raft_errmsg(&cl->raft)[0] ? raft_errmsg(&cl->raft) : raft_strerror(rc));
    free(w);
    return rc == RAFT_NOTLEADER ? RPC_ENOT_LEADER : RPC_EBAD_REQUEST;
}

int cluster_add(struct cluster *cl, uint64_t id, const char *raft, const char *client, void *waiter,
                char *err, size_t errlen)
{
    struct change_req *w;
    char full[2 * CLUSTER_ADDR_MAX + 2];
    int rc;
    if (strlen(raft) >= CLUSTER_ADDR_MAX || strlen(client) >= CLUSTER_ADDR_MAX ||
        strchr(client, ADDR_SEP) || strncmp(client, "tcp://", 6) != 0) {
        snprintf(err, errlen, "the client address must be tcp://HOST:PORT");
        return RPC_EBAD_PARAMS;
    }
    if (cluster_check_raft_addr(raft, err, errlen) < 0)
        return RPC_EBAD_PARAMS;
    if ((rc = start_change(cl, W_ADD, id, waiter, &w, err, errlen)) < 0)
        return rc;
    {
        /* An add interrupted (a leader lost between the add and the
         * promotion) left the node in the configuration, not voting: a
         * second add finishes it. */
        const struct raft_server *m = find_member(cl, id);
        if (m && m->role == RAFT_VOTER) {
            snprintf(err, errlen, "node %llu is a voter already", (unsigned long long)id);
            free(w);
            return RPC_EBAD_REQUEST;
        }
        if (m) {
            w->stage = 1;
            w->u.change.data = w;
            if ((rc = raft_assign(&cl->raft, &w->u.change, id, RAFT_VOTER, on_change)) != 0)
                return change_failed(cl, w, rc, err, errlen);
            cl->change = w;
            return 0;
        }
    }
    snprintf(full, sizeof(full), "%s%c%s", raft, ADDR_SEP, client);
    w->u.change.data = w;
    if ((rc = raft_add(&cl->raft, &w->u.change, id, full, on_change)) != 0)
        return change_failed(cl, w, rc, err, errlen);
    cl->change = w;
    return 0;
}

int cluster_remove(struct cluster *cl, uint64_t id, void *waiter, char *err, size_t errlen)
{
    struct change_req *w;
    int rc;
    if ((rc = start_change(cl, W_REMOVE, id, waiter, &w, err, errlen)) < 0)
        return rc;
    if (id == cl->opts.node_id) {
        snprintf(err, errlen, "transfer the leadership away before removing this node");
        free(w);
        return RPC_EBAD_REQUEST;
    }
    w->u.change.data = w;
    if ((rc = raft_remove(&cl->raft, &w->u.change, id, on_change)) != 0)
        return change_failed(cl, w, rc, err, errlen);
    cl->change = w;
    return 0;
}

int cluster_transfer(struct cluster *cl, uint64_t id, void *waiter, char *err, size_t errlen)
{
    struct change_req *w;
    int rc;
    if (id == cl->opts.node_id) {
        snprintf(err, errlen, "node %llu is the leader already", (unsigned long long)id);
        return RPC_EBAD_REQUEST;
    }
    if ((rc = start_change(cl, W_TRANSFER, id, waiter, &w, err, errlen)) < 0)
        return rc;
    /* What this iteration served goes to Raft first. */
    submit(cl);
    w->u.transfer.data = w;
    if ((rc = raft_transfer(&cl->raft, &w->u.transfer, id, on_transfer)) != 0)
        return change_failed(cl, w, rc, err, errlen);
    cl->change = w;
    return 0;
}

void cluster_forget(struct cluster *cl, void *waiter)
{
    if (cl && cl->change && cl->change->waiter == waiter)
        cl->change->waiter = NULL;
}

/* ---- what it reports ---- */

int cluster_serving(const struct cluster *cl)
{
    /* While a transfer is under way nothing new is served: what was
     * served must reach the new leader's log. */
    return cl->ready && !cl->lost && !(cl->change && cl->change->kind == W_TRANSFER);
}

const char *cluster_leader_client(const struct cluster *cl)
{
    struct cluster *m = (struct cluster *)cl;
    const struct raft_server *s;
    raft_id id = 0;
    const char *addr = NULL, *client;
    if (!cl->started)
        return NULL;
    raft_leader(&m->raft, &id, &addr);
    if (!id || (id == cl->opts.node_id && !cluster_serving(cl)))
        return NULL;
    if (!(s = find_member(cl, id)) || !s->address)
        return NULL;
    client = strchr(s->address, ADDR_SEP);
    if (!client || !client[1])
        return NULL;
    snprintf(m->leader_client, sizeof(m->leader_client), "%s", client + 1);
    return m->leader_client;
}

void cluster_get_info(const struct cluster *cl, struct cluster_info *out)
{
    struct cluster *m = (struct cluster *)cl;
    raft_id id = 0;
    const char *addr = NULL;
    static const char *const roles[] = {"unavailable", "follower", "candidate", "leader"};
    int s = cl->started ? raft_state(&m->raft) : RAFT_UNAVAILABLE;
    memset(out, 0, sizeof(*out));
    out->node_id = cl->opts.node_id;
    if (cl->started)
        raft_leader(&m->raft, &id, &addr);
    out->leader_id = id;
    out->role = s >= 0 && s <= RAFT_LEADER ? roles[s] : "unavailable";
    out->leader = cluster_leader_client(cl);
    out->term = cl->raft.current_term;
    out->commit_index = cl->raft.commit_index;
    out->applied_index = cl->started ? raft_last_applied(&m->raft) : 0;
    out->last_index = cl->started ? raft_last_index(&m->raft) : 0;
    out->ready = cluster_serving(cl);
    out->snapshots = cl->snapshots;
    out->snapshots_delayed = cl->snapshots_delayed;
    out->snapshot_index = cl->raft.log.snapshot.last_index;
}

int cluster_member(const struct cluster *cl, unsigned i, struct cluster_member *out)
{
    const struct raft_server *s;
    const char *sep;
    memset(out, 0, sizeof(*out));
    if (i >= cl->raft.configuration.n)
        return 0;
    s = &cl->raft.configuration.servers[i];
    sep = strchr(s->address, ADDR_SEP);
    out->id = s->id;
    out->raft = s->address;
    out->raft_len = sep ? (size_t)(sep - s->address) : strlen(s->address);
    out->client = sep ? sep + 1 : "";
    out->client_len = strlen(out->client);
    out->voter = s->role == RAFT_VOTER;
    if (cl->raft.state == RAFT_LEADER && cl->raft.leader_state.progress)
        out->match_index = cl->raft.leader_state.progress[i].match_index;
    return 1;
}

/* ---- start and stop ---- */

/* libraft reports a Raft port it cannot bind as an I/O error: try it first,
 * so that a port in use says so. */
static int port_free(const char *addr, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    char host[64];
    const char *colon = strrchr(addr, ':');
    int fd, one = 1, rc = 0;
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
    if (uv_ip4_addr(host, atoi(colon + 1), &sa) != 0)
        return 0; /* checked before: libraft says the rest */
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot listen on the Raft port %s: %s", addr, strerror(errno));
    }
    close(fd);
    return rc;
}

/* DIR/node-id says which node a data directory is: another id on it would
 * be a second node 2 (or a node 5 with node 2's log) in the cluster. Made
 * at the first start, through a temporary name and a rename. */
static int check_identity(struct cluster *cl, char *err, size_t errlen)
{
    char path[4300], tmp[4300], buf[32];
    unsigned long long id;
    FILE *f;
    snprintf(path, sizeof(path), "%s/node-id", cl->opts.dir);
    if ((f = fopen(path, "re"))) {
        int ok = fgets(buf, sizeof(buf), f) && sscanf(buf, "%llu", &id) == 1;
        fclose(f);
        if (!ok) {
            snprintf(err, errlen, "%s: not a node id (remove it only if this is node %llu's)", path,
                     (unsigned long long)cl->opts.node_id);
            return -EINVAL;
        }
        if (id != cl->opts.node_id) {
            snprintf(err, errlen,
                     "%s is node %llu's data directory, not node %llu's: start node %llu on it, "
                     "or give this node its own",
                     cl->opts.dir, id, (unsigned long long)cl->opts.node_id, id);
            return -EINVAL;
        }
        return 0;
    }
    if (errno != ENOENT) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    snprintf(tmp, sizeof(tmp), "%s/node-id.tmp", cl->opts.dir);
    if ((f = fopen(tmp, "we"))) {
        int bad = fprintf(f, "%llu\n", (unsigned long long)cl->opts.node_id) < 0 ||
                  fflush(f) != 0 || fsync(fileno(f)) != 0;
        if (fclose(f) != 0 || bad)
            f = NULL;
    }
    if (!f || rename(tmp, path) != 0) {
        int e = errno ? errno : EIO;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

static int mkdir_p(const char *d)
{
    return mkdir(d, 0700) == 0 || errno == EEXIST ? 0 : -errno;
}

int cluster_open(struct cluster **out, const struct cluster_opts *opts, struct store *st,
                 struct persist *p, uv_loop_t *loop, cluster_done_cb done, void *ud, char *err,
                 size_t errlen)
{
    struct cluster *cl;
    const struct cluster_peer *me = NULL;
    int rc;

    *out = NULL;
    if (!(cl = calloc(1, sizeof(*cl)))) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    cl->opts = *opts;
    cl->st = st;
    cl->p = p;
    cl->loop = loop;
    cl->done = done;
    cl->done_ud = ud;
    cl->lockfd = -1;
    for (int i = 0; i < opts->npeers; i++)
        if (opts->peers[i].id == opts->node_id)
            me = &opts->peers[i];
    if (opts->npeers && !me) {
        snprintf(err, errlen,
                 "--node-id %llu is not among the --peer entries (list every initial "
                 "member, this node included)",
                 (unsigned long long)opts->node_id);
        free(cl);
        return -EINVAL;
    }
    if (cluster_check_raft_addr(opts->raft_listen, err, errlen) < 0) {
        char why[256];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "--raft-listen: %s", why);
        free(cl);
        return -EINVAL;
    }
    if (me && strcmp(strrchr(me->raft, ':'), strrchr(opts->raft_listen, ':')) != 0) {
        snprintf(err, errlen,
                 "--raft-listen %s and this node's --peer %s differ in port: libraft binds the "
                 "port other nodes connect to",
                 opts->raft_listen, me->raft);
        free(cl);
        return -EINVAL;
    }
    if (me)
        snprintf(cl->self, sizeof(cl->self), "%s%c%s", me->raft, ADDR_SEP, me->client);
    else
        snprintf(cl->self, sizeof(cl->self), "%s%c%s", opts->raft_listen, ADDR_SEP,
                 opts->advertise);
    if (getrandom(&cl->incarnation, sizeof(cl->incarnation), 0) != sizeof(cl->incarnation) ||
        cl->incarnation == 0)
        cl->incarnation = ((uint64_t)getpid() << 32) ^ (uint64_t)uv_hrtime();
    snprintf(cl->raftdir, sizeof(cl->raftdir), "%s/raft", opts->dir);
    snprintf(cl->fsmdir, sizeof(cl->fsmdir), "%s/raft-fsm", opts->dir);
    if ((rc = mkdir_p(opts->dir)) < 0 || (rc = mkdir_p(cl->raftdir)) < 0 ||
        (rc = mkdir_p(cl->fsmdir)) < 0) {
        snprintf(err, errlen, "cannot create the data directory %s: %s", opts->dir, strerror(-rc));
        free(cl);
        return rc;
    }
    if ((rc = journal_lock_dir(opts->dir, &cl->lockfd, err, errlen)) < 0) {
        free(cl);
        return rc;
    }
    {
        ssize_t n = readlink("/proc/self/exe", cl->exe, sizeof(cl->exe) - 1);
        cl->exe[n > 0 ? n : 0] = '\0';
    }
    if ((rc = check_identity(cl, err, errlen)) < 0) {
        journal_unlock_dir(cl->lockfd);
        free(cl);
        return rc;
    }
    *out = cl;
    persist_open_cluster(p, st, loop, persist_submit, cl);
    if ((rc = raft_uv_tcp_init(&cl->tcp, loop)) != 0) {
        snprintf(err, errlen, "cannot set up the Raft transport: %s", raft_strerror(rc));
        return -ENOMEM;
    }
    cl->tcp.data = cl;
    cl->tcp_inited = 1;
    if ((rc = raft_uv_tcp_set_bind_address(&cl->tcp, opts->raft_listen)) != 0) {
        snprintf(err, errlen, "--raft-listen %s: %s (an IPv4 address and a port)",
                 opts->raft_listen, raft_strerror(rc));
        return -EINVAL;
    }
    cl->wrap.impl = cl;
    cl->wrap.init = wrap_init;
    cl->wrap.listen = wrap_listen;
    cl->wrap.connect = wrap_connect;
    cl->wrap.close = wrap_close;
    if ((rc = raft_uv_init(&cl->io, loop, cl->raftdir, &cl->wrap)) != 0) {
        snprintf(err, errlen, "cannot open Raft's files in %s: %s", cl->raftdir,
                 cl->io.errmsg[0] ? cl->io.errmsg : raft_strerror(rc));
        return -EIO;
    }
    cl->io_inited = 1;
    cl->io.version = 2;
    cl->io.async_work = io_async_work;
    cl->fsm.version = 3;
    cl->fsm.data = cl;
    cl->fsm.apply = fsm_apply;
    cl->fsm.snapshot = fsm_snapshot;
    cl->fsm.restore = fsm_restore;
    cl->fsm.snapshot_finalize = fsm_snapshot_finalize;
    cl->fsm.snapshot_async = fsm_snapshot_async;
    if ((rc = raft_init(&cl->raft, &cl->io, &cl->fsm, opts->node_id, cl->self)) != 0) {
        snprintf(err, errlen, "cannot set up Raft: %s", raft_errmsg(&cl->raft));
        return -EIO;
    }
    cl->raft.data = cl;
    cl->raft_inited = 1;
    raft_set_election_timeout(&cl->raft, opts->election_ms);
    raft_set_heartbeat_timeout(&cl->raft, opts->election_ms / 10 ? opts->election_ms / 10 : 1);
    raft_set_pre_vote(&cl->raft, true);
    /* A follower busy with its own snapshot drops an InstallSnapshot, and
     * the leader sends it again only after this timeout (30 s by default):
     * a few election timeouts keep a lagging node's catch-up prompt. */
    cl->install_ms = opts->election_ms * 5 > 2000 ? opts->election_ms * 5 : 2000;
    cl->threshold = opts->snapshot_threshold ? opts->snapshot_threshold : 4096;
    raft_set_install_snapshot_timeout(&cl->raft, cl->install_ms);
    raft_set_snapshot_threshold(&cl->raft,
                                opts->snapshot_threshold ? opts->snapshot_threshold : 4096);
    raft_set_snapshot_trailing(&cl->raft,
                               opts->snapshot_threshold ? opts->snapshot_threshold / 4 + 1 : 1024);
    if ((rc = port_free(opts->raft_listen, err, errlen)) < 0)
        return rc;
    if (opts->npeers) {
        struct raft_configuration conf;
        char full[2 * CLUSTER_ADDR_MAX + 2];
        raft_configuration_init(&conf);
        for (int i = 0; i < opts->npeers; i++) {
            snprintf(full, sizeof(full), "%s%c%s", opts->peers[i].raft, ADDR_SEP,
                     opts->peers[i].client);
            if ((rc = raft_configuration_add(&conf, opts->peers[i].id, full, RAFT_VOTER)) != 0) {
                snprintf(err, errlen, "--peer %llu: %s (ids and addresses must be distinct)",
                         (unsigned long long)opts->peers[i].id, raft_strerror(rc));
                raft_configuration_close(&conf);
                return -EINVAL;
            }
        }
        rc = raft_bootstrap(&cl->raft, &conf);
        raft_configuration_close(&conf);
        if (rc == 0)
            log_info("formed a new cluster of %d nodes", opts->npeers);
        else if (rc != RAFT_CANTBOOTSTRAP) {
            snprintf(err, errlen, "cannot form the cluster: %s", raft_errmsg(&cl->raft));
            return -EIO;
        }
    }
    if ((rc = raft_start(&cl->raft)) != 0) {
        snprintf(err, errlen, "cannot start Raft (%s, Raft port %s): %s%s%s", cl->raftdir,
                 opts->raft_listen, raft_strerror(rc), cl->io.errmsg[0] ? ": " : "", cl->io.errmsg);
        /* Damaged files are damage (exit 3); anything else is the
         * system's refusal (exit 1, restarted). */
        return rc == RAFT_CORRUPT || rc == RAFT_MALFORMED ? -EBADMSG : -EIO;
    }
    cl->started = 1;
    if ((rc = uv_check_init(loop, &cl->check)) < 0 ||
        (rc = uv_prepare_init(loop, &cl->prepare)) < 0 ||
        (rc = uv_timer_init(loop, &cl->restart_timer)) < 0 ||
        (rc = uv_timer_init(loop, &cl->watch_timer)) < 0) {
        snprintf(err, errlen, "cannot set up the cluster's handles: %s", uv_strerror(rc));
        return rc;
    }
    cl->handles = 1;
    cl->check.data = cl->prepare.data = cl->restart_timer.data = cl->watch_timer.data = cl;
    uv_timer_start(&cl->watch_timer, on_watch, 1000, 1000);
    uv_unref((uv_handle_t *)&cl->watch_timer);
    uv_check_start(&cl->check, on_check);
    uv_unref((uv_handle_t *)&cl->check);
    uv_prepare_start(&cl->prepare, on_prepare);
    uv_unref((uv_handle_t *)&cl->prepare);
    uv_unref((uv_handle_t *)&cl->restart_timer);
    log_info("node %llu: Raft on %s, %u entries in its log, %s", (unsigned long long)opts->node_id,
             opts->raft_listen, (unsigned)(raft_last_index(&cl->raft)),
             cl->raft.configuration.n ? "a member" : "waiting to be added by the leader");
    return 0;
}

static void on_raft_closed(struct raft *r)
{
    struct cluster *cl = r->data;
    cl->closed = 1;
}

void cluster_stop(struct cluster *cl)
{
    if (!cl || cl->closing)
        return;
    cl->closing = 1;
    if (cl->change) {
        struct change_req *w = cl->change;
        if (w->waiter && cl->done)
            cl->done(cl->done_ud, w->waiter, RPC_EBAD_REQUEST, "the server is stopping", 0);
        /* Raft calls its callback on close (which frees it): no one waits. */
        w->waiter = NULL;
    }
    if (cl->handles) {
        uv_close((uv_handle_t *)&cl->check, NULL);
        uv_close((uv_handle_t *)&cl->prepare, NULL);
        uv_close((uv_handle_t *)&cl->restart_timer, NULL);
        uv_close((uv_handle_t *)&cl->watch_timer, NULL);
        cl->handles = 0;
    }
    if (cl->raft_inited)
        raft_close(&cl->raft, on_raft_closed);
    else
        cl->closed = 1;
}

void cluster_close(struct cluster *cl)
{
    if (!cl)
        return;
    cluster_stop(cl);
    while (!cl->closed || cl->works)
        uv_run(cl->loop, UV_RUN_ONCE);
    if (cl->io_inited)
        raft_uv_close(&cl->io);
    if (cl->tcp_inited)
        raft_uv_tcp_close(&cl->tcp);
    stop_snap_child(cl);
    journal_unlock_dir(cl->lockfd);
    free(cl);
}
