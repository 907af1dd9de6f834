/* conn: client connections (see conn.h). Bytes arrive into an input buffer;
 * rpc_scan finds each complete frame (refusing over-limit claims before
 * msgpack-c sees them), and every complete request of a read is served in
 * order, for up to one slice (--gc-slice-us) of the loop: what is left then
 * waits on the server's backlog, with the connection's reading stopped, and
 * is served a slice at a time from an idle handle, between other clients'
 * reads. A connection reads into the server's shared buffer and keeps its own
 * input buffer only while it holds part of a message. Replies accumulate in
 * `out` and leave in one write per loop iteration; while a write is in flight
 * new output waits in `out`, and a client whose unsent output passes
 * max_output_bytes is cut off. A connection is freed only in its close
 * callback, which is also where its session's holds are released (never in
 * the middle of a request).
 *
 * A connection accepted on a tls:// listener carries a tlsio between the
 * socket and the rest: it reads ciphertext into the server's TLS read
 * buffer, feeds it to the tlsio and decrypts the plaintext into its input
 * (the shared buffer again when it holds no partial message), which
 * serve_input serves as ever; start_write encrypts `out` and writes the
 * ciphertext. Handshake steps are rationed per loop iteration
 * (CONN_TLS_HANDSHAKES_PER_ITERATION). Nothing the protocol or the commands
 * see differs. */
#include "conn.h"
#include "log.h"
#include "mem.h"
#include "err.h"
#include "rpc_msg.h"
#include "rpc_pack.h"
#include "cluster.h"
#include "persist.h"
#include "server.h"
#include "slowlog.h"
#include "stats.h"
#include "tlsio.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define READ_CHUNK     (64 * 1024)
#define KEEP_OUT_BYTES (16 * 1024) /* output storage an idle connection keeps */
/* Frames that declare more elements than this give their decode memory
 * back when served (rpc_decoder_shrink): 256 elements is 6-12 KiB. */
#define CONN_ZONE_KEEP_ELEMENTS 256
/* Plaintext encrypted per step of a TLS write: what is left waits until the
 * kernel took the ciphertext before it, so that a big reply is not
 * encrypted in one go (a slice of the loop is 1-2 MB of AES-GCM). */
#define TLS_WRITE_CHUNK (64 * 1024)

struct conn {
    union stream_handle h;
    struct server *srv;
    struct sess *sess;
    struct buf in;
    struct buf out;  /* replies not yet handed to libuv */
    struct buf wbuf; /* the write in flight */
    uv_write_t wreq;
    struct rpc_scan scan;
    struct rpc_decoder dec;
    struct conn *prev, *next;       /* srv->conns */
    struct conn *flush_next;        /* srv->flush_head */
    struct conn *bprev, *bnext;     /* srv->backlog */
    unsigned writing : 1;           /* wreq in flight */
    unsigned closing : 1;           /* uv_close called */
    unsigned close_after : 1;       /* close once output is written */
    unsigned flush_queued : 1;      /* on srv->flush_head */
    unsigned in_dispatch : 1;       /* a response is being written into out */
    unsigned dec_ready : 1;         /* dec was initialised */
    unsigned in_shared : 1;         /* in is srv->shared_in, lent for this read */
    unsigned backlogged : 1;        /* on srv->backlog, reading stopped */
    unsigned held : 1;              /* on srv->held: output waits for the journal */
    unsigned paused : 1;            /* a save's reply is awaited: nothing more is served */
    unsigned first_seen : 1;        /* its first bytes were looked at (TLS or not) */
    unsigned is_tls : 1;            /* accepted on a tls:// listener */
    unsigned by_cert : 1;           /* logged in by its certificate's CN (cert-cn) */
    unsigned hs_queued : 1;         /* on srv->hs_head: waits for its turn at a handshake step */
    unsigned in_ended : 1;          /* the client's input ended (close_notify, a TLS failure):
                                       what it sent before is served, then the connection closes */
    uint64_t wait_index;            /* the journal record its output waits for */
    struct conn *held_next;         /* srv->held */
    uint32_t save_msgid;            /* of the save awaited */
    int authed;                     /* passed hello {auth}, or none is required */
    const struct user *user;        /* logged in as (NULL: not, or nobody logs in);
                                     * re-resolved by name when the users file is
                                     * reloaded (conn_users_reloaded) */
    uint64_t last_read_ms;          /* when bytes last arrived */
    struct buf deferred;            /* notifications raised during a dispatch */
    struct tlsio *tls;              /* is_tls: the TLS endpoint; NULL once plaintext was refused */
    struct conn *hs_prev, *hs_next; /* srv->hs_head */
    char peer[64];
};

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);
static void on_backlog(uv_idle_t *h);

/* Leave input to be served later: stop reading (the kernel's buffers then
 * push back on the client) and queue c at the backlog's tail. */
static void backlog_add(struct conn *c)
{
    struct server *srv = c->srv;
    if (c->backlogged || srv->stopping)
        return;
    uv_read_stop(&c->h.stream);
    c->backlogged = 1;
    c->bnext = NULL;
    c->bprev = srv->backlog_tail;
    if (srv->backlog_tail)
        srv->backlog_tail->bnext = c;
    else
        srv->backlog = c;
    srv->backlog_tail = c;
    if (srv->backlog_len++ == 0)
        uv_idle_start(&srv->backlog_idle, on_backlog);
}

static void backlog_remove(struct conn *c)
{
    struct server *srv = c->srv;
    if (!c->backlogged)
        return;
    c->backlogged = 0;
    if (c->bprev)
        c->bprev->bnext = c->bnext;
    else
        srv->backlog = c->bnext;
    if (c->bnext)
        c->bnext->bprev = c->bprev;
    else
        srv->backlog_tail = c->bprev;
    if (--srv->backlog_len == 0)
        uv_idle_stop(&srv->backlog_idle);
}

static void hs_remove(struct conn *c);

static void on_close(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct server *srv = c->srv;

    if (c->sess) {
        sess_detach(&srv->st, c->sess, uv_now(srv->loop)); /* kept if it has a lease */
        server_release_soon(srv); /* a session with many holds goes in slices */
    }
    backlog_remove(c);
    persist_forget(&srv->persist, c);
    cluster_forget(srv->cluster, c);
    if (c->held) {
        struct conn **pp = &srv->held;
        while (*pp != c)
            pp = &(*pp)->held_next;
        *pp = c->held_next;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->env.connections--;
    if (c->is_tls)
        srv->env.tls_connections--;
    hs_remove(c);
    tlsio_free(c->tls);
    buf_close(&c->in);
    buf_close(&c->out);
    buf_close(&c->wbuf);
    buf_close(&c->deferred);
    if (c->dec_ready)
        rpc_decoder_close(&c->dec);
    log_debug("connection %s closed", c->peer);
    mem_free_in(MEM_CLIENT, c, sizeof(*c));
    /* Releasing the session may have raised notifications for others. */
    conn_flush_all(srv);
}

void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_read_stop(&c->h.stream);
    uv_close(&c->h.handle, on_close);
}

void conn_close_all(struct server *srv)
{
    for (struct conn *c = srv->conns; c; c = c->next)
        conn_close(c);
}

/* The bytes of buffer storage c holds. */
static size_t buffer_bytes(const struct conn *c)
{
    return c->in.cap + c->out.cap + c->wbuf.cap + c->deferred.cap +
           (c->tls ? tlsio_buffered(c->tls) : 0);
}

/* Release the storage of c's empty buffers. Only where c is in no read,
 * request or write (wbuf is then empty). */
static void trim_buffers(struct conn *c)
{
    if (!c->writing)
        buf_close(&c->wbuf);
    if (buf_pending(&c->out) == 0)
        buf_close(&c->out);
    if (buf_pending(&c->in) == 0)
        buf_close(&c->in);
    if (buf_pending(&c->deferred) == 0)
        buf_close(&c->deferred);
}

/* Past --max-client-buffers: first give back what idle connections keep for
 * their next message, then close the connection with the largest buffers
 * until the rest fit. Free under the bound; a walk over the connections per
 * step over it. Closing connections still hold what libuv has in flight
 * until their callbacks run: that is counted as on its way out. */
static void enforce_client_bound(struct server *srv)
{
    uint64_t limit = srv->cfg->max_client_buffers;
    size_t total = mem_budget_bytes(MEM_CLIENT);
    int trimmed = 0;

    while (total > limit) {
        struct conn *victim = NULL;
        size_t leaving = 0, most = 0;
        for (struct conn *c = srv->conns; c; c = c->next) {
            if (!c->closing && !trimmed)
                trim_buffers(c);
            if (c->closing)
                leaving += buffer_bytes(c) + sizeof(*c);
            else if (buffer_bytes(c) > most)
                most = buffer_bytes(c), victim = c;
        }
        trimmed = 1;
        total = mem_budget_bytes(MEM_CLIENT);
        if (total - leaving <= limit || !victim)
            break;
        log_warn("closing %s: its buffers (%zu bytes) are the largest, and all clients' "
                 "(%zu bytes) are over max_client_buffers (%llu)",
                 victim->peer, most, total - leaving, (unsigned long long)limit);
        srv->env.clients_evicted++;
        conn_close(victim);
        /* Pending or not, nothing will read or write these now. */
        buf_close(&victim->in);
        buf_close(&victim->out);
        buf_close(&victim->deferred);
        total = mem_budget_bytes(MEM_CLIENT);
    }
}

void conn_expire_stalled(struct server *srv, uint64_t now_ms, uint64_t timeout_ms)
{
    uint64_t n = 0;
    for (struct conn *c = srv->conns; c; c = c->next) {
        int midway = buf_pending(&c->in) > 0 ||
                     (c->tls && (!tlsio_handshake_done(c->tls) || tlsio_partial(c->tls)));
        if (c->closing || c->backlogged || c->hs_queued || !midway ||
            now_ms - c->last_read_ms < timeout_ms)
            continue;
        log_debug("closing %s: part of a %s, then nothing for %llu ms", c->peer,
                  c->tls && !tlsio_handshake_done(c->tls) ? "TLS handshake" : "message",
                  (unsigned long long)(now_ms - c->last_read_ms));
        conn_close(c);
        n++;
    }
    srv->env.connections_timed_out += n;
    if (n)
        log_info("closed %llu connection(s) stalled in the middle of a message",
                 (unsigned long long)n);
}

void conn_trim_idle(struct server *srv, uint64_t now_ms, uint64_t idle_ms)
{
    for (struct conn *c = srv->conns; c; c = c->next)
        if (c->tls && !c->closing && now_ms - c->last_read_ms >= idle_ms)
            tlsio_trim(c->tls);
}

static size_t unsent(const struct conn *c)
{
    const char *d;
    return buf_pending(&c->out) + buf_pending(&c->wbuf) + buf_pending(&c->deferred) +
           (c->tls ? tlsio_pending(c->tls, &d) : 0);
}

static void queue_flush(struct conn *c)
{
    if (c->flush_queued || c->closing)
        return;
    c->flush_queued = 1;
    c->flush_next = c->srv->flush_head;
    c->srv->flush_head = c;
}

static void start_write(struct conn *c);

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    c->writing = 0;
    buf_reset(&c->wbuf);
    buf_shrink(&c->wbuf, KEEP_OUT_BYTES);
    if (status < 0) {
        if (status != UV_ECANCELED)
            log_debug("write to %s failed: %s", c->peer, uv_strerror(status));
        conn_close(c);
        return;
    }
    start_write(c);
}

/* The end of a write with nothing left to send. */
static void write_done(struct conn *c)
{
    if (c->close_after)
        conn_close(c);
    buf_shrink(&c->out, KEEP_OUT_BYTES); /* a burst's storage is not kept idle */
}

/* start_write for a TLS connection: encrypt out a chunk at a time, each once
 * the kernel took the ciphertext before it; what it does not take is copied
 * to wbuf for one uv_write (the tlsio's queue may move under a write in
 * flight). Before closing, a close_notify follows the last reply. */
static void start_write_tls(struct conn *c)
{
    const char *d;
    size_t n;
    uv_buf_t b;
    int w;

    for (;;) {
        if (tlsio_pending(c->tls, &d) < TLS_WRITE_CHUNK && buf_pending(&c->out) > 0) {
            size_t m =
                buf_pending(&c->out) < TLS_WRITE_CHUNK ? buf_pending(&c->out) : TLS_WRITE_CHUNK;
            if (c->close_after && (w = tlsio_write(c->tls, "", 0)) == TLSIO_EFAIL) {
                buf_reset(&c->out); /* after the close_notify: nobody reads it */
                continue;
            }
            if ((w = tlsio_write(c->tls, c->out.data + c->out.off, m)) < 0) {
                log_warn("closing %s: %s", c->peer,
                         w == -ENOMEM ? "out of memory for its TLS output" : tlsio_error(c->tls));
                conn_close(c);
                return;
            }
            buf_consume(&c->out, m);
            continue; /* maybe more while little ciphertext waits */
        }
        if (buf_pending(&c->out) == 0 && c->close_after)
            tlsio_shutdown(c->tls); /* once; then nothing more is encrypted */
        if ((n = tlsio_pending(c->tls, &d)) == 0)
            break;
        b = uv_buf_init((char *)d, (unsigned)n);
        w = uv_try_write(&c->h.stream, &b, 1);
        if (w < 0 && w != UV_EAGAIN) {
            log_debug("write to %s failed: %s", c->peer, uv_strerror(w));
            conn_close(c);
            return;
        }
        if (w > 0)
            tlsio_consume(c->tls, (size_t)w);
        if (w < 0 || (size_t)w < n) {
            n = tlsio_pending(c->tls, &d);
            if (buf_append(&c->wbuf, d, n) < 0) {
                log_warn("closing %s: out of memory for its TLS output", c->peer);
                conn_close(c);
                return;
            }
            tlsio_consume(c->tls, n);
            b = uv_buf_init(c->wbuf.data + c->wbuf.off, (unsigned)buf_pending(&c->wbuf));
            c->wreq.data = c;
            if ((w = uv_write(&c->wreq, &c->h.stream, &b, 1, on_write)) < 0) {
                log_debug("write to %s failed: %s", c->peer, uv_strerror(w));
                conn_close(c);
                return;
            }
            c->writing = 1;
            return;
        }
    }
    write_done(c);
}

/* Hand out's bytes to the kernel: directly if it takes them all, else with
 * one uv_write of the rest. */
static void start_write(struct conn *c)
{
    struct buf tmp;
    uv_buf_t b;
    int n;

    if (c->closing || c->writing)
        return;
    if (!persist_durable(&c->srv->persist, c->wait_index)) {
        /* Acknowledged means written: the replies wait for their records. */
        if (!c->held) {
            c->held = 1;
            c->held_next = c->srv->held;
            c->srv->held = c;
        }
        return;
    }
    if (c->tls) {
        start_write_tls(c);
        return;
    }
    if (buf_pending(&c->out) == 0) {
        write_done(c);
        return;
    }
    b = uv_buf_init(c->out.data + c->out.off, (unsigned)buf_pending(&c->out));
    n = uv_try_write(&c->h.stream, &b, 1);
    if (n < 0 && n != UV_EAGAIN) {
        log_debug("write to %s failed: %s", c->peer, uv_strerror(n));
        conn_close(c);
        return;
    }
    if (n > 0)
        buf_consume(&c->out, (size_t)n);
    if (buf_pending(&c->out) == 0) {
        write_done(c);
        return;
    }
    /* Swap: the rest goes out from wbuf while out collects new replies. */
    tmp = c->wbuf;
    c->wbuf = c->out;
    c->out = tmp;
    b = uv_buf_init(c->wbuf.data + c->wbuf.off, (unsigned)buf_pending(&c->wbuf));
    c->wreq.data = c;
    if ((n = uv_write(&c->wreq, &c->h.stream, &b, 1, on_write)) < 0) {
        log_debug("write to %s failed: %s", c->peer, uv_strerror(n));
        conn_close(c);
        return;
    }
    c->writing = 1;
}

void conn_durable(struct server *srv, uint64_t index)
{
    struct conn **pp = &srv->held;
    while (*pp) {
        struct conn *c = *pp;
        if (c->wait_index <= index) {
            *pp = c->held_next;
            c->held = 0;
            queue_flush(c);
        } else {
            pp = &c->held_next;
        }
    }
}

void conn_flush_all(struct server *srv)
{
    enforce_client_bound(srv);
    while (srv->flush_head) {
        struct conn *c = srv->flush_head;
        srv->flush_head = c->flush_next;
        c->flush_queued = 0;
        c->flush_next = NULL;
        start_write(c);
    }
}

/* One warn line about a client that broke the protocol or a limit (a
 * malformed or oversized message, replies it will not read), naming the
 * peer and never a byte it sent; rate limited by srv->violation_log, so a
 * client that does it in a loop cannot flood the log. */
static void violation(struct server *srv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void violation(struct server *srv, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (log_threshold > LOG_WARN || !log_rate_take(&srv->violation_log, uv_now(srv->loop)))
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    log_warn("%s", line);
}

/* Cut off a client whose output we could not buffer or it will not read:
 * RPC_EOUT_OF_MEMORY or RPC_ETOO_LARGE when it was closed, else 0. */
static int check_output(struct conn *c)
{
    if (c->out.oom || c->deferred.oom) {
        log_warn("closing %s: out of memory for its replies", c->peer);
        conn_close(c);
        return RPC_EOUT_OF_MEMORY;
    }
    if (unsent(c) > c->srv->cfg->max_output_bytes) {
        violation(c->srv, "closing %s: %zu bytes of unsent replies passed max_output_bytes (%llu)",
                  c->peer, unsent(c), (unsigned long long)c->srv->cfg->max_output_bytes);
        conn_close(c);
        return RPC_ETOO_LARGE;
    }
    return 0;
}

void conn_notify(void *ud, struct sess *s, uint64_t id, enum free_reason why)
{
    struct conn *c = s->conn;
    msgpack_packer pk;
    (void)ud;
    if (!c || c->closing)
        return;
    rpc_packer_init(&pk, c->in_dispatch ? &c->deferred : &c->out);
    rpc_pack_notification(&pk, "freed");
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, id);
    rpc_pack_cstr(&pk, why == FREE_CYCLE ? "cycle" : "refcount");
    /* A watcher that never reads is cut off like any other non-reader. The
     * close itself happens in libuv's close callback, after this request. */
    if (check_output(c) == 0)
        queue_flush(c);
}

/* Refuse the stream: reply if a msgid was read, then close. */
static void refuse(struct conn *c, int err, const char *why)
{
    msgpack_packer pk;
    struct server *srv = c->srv;
    srv->env.bad_requests++;
    cmd_count_error(&srv->env, err);
    violation(srv, "closing %s (user %s): %s", c->peer, c->user ? c->user->name : "-", why);
    rpc_packer_init(&pk, &c->out);
    rpc_pack_response_error(&pk, c->scan.have_msgid, c->scan.msgid, err, why);
    c->close_after = 1;
    uv_read_stop(&c->h.stream);
    buf_reset(&c->in);
}

/* The scanner's limits for c: the server's, or while c must still
 * authenticate, a small hello at most. Only between messages. */
static void set_scan_limits(struct conn *c)
{
    struct rpc_scan_limits lim = c->srv->scan_lim;
    if (!c->authed && lim.max_message_bytes > CONN_PREAUTH_MAX_MESSAGE)
        lim.max_message_bytes = CONN_PREAUTH_MAX_MESSAGE;
    if (!c->authed && lim.max_elements > CONN_PREAUTH_MAX_ELEMENTS)
        lim.max_elements = CONN_PREAUTH_MAX_ELEMENTS;
    rpc_scan_init(&c->scan, &lim);
}

/* Timing: the clock is read once per request, when its reply is queued;
 * *clock holds the last reading (the end of the request before, or when
 * the batch began), so a request's time is that of its decoding and its
 * handler, and costs one uv_hrtime (a vDSO clock_gettime). The histogram
 * of its method and, past --slowlog-log-slower-than-us, the slow log get
 * it. */
static void time_request(struct conn *c, const struct cmd_ctx *ctx, uint64_t *clock)
{
    struct cmd_env *env = &c->srv->env;
    uint64_t now = uv_hrtime(), ns = now - *clock;
    *clock = now;
    if (ctx->method < 0)
        return;
    stats_time_request(env, ctx->method, ns);
    if (slowlog_wants(env->slowlog, ns / 1000))
        slowlog_add(env->slowlog, (uint64_t)time(NULL), ns / 1000, cmd_name(ctx->method), c->peer,
                    c->sess ? c->sess->id : 0, c->user ? c->user->name : "");
}

/* Serve one request; *clock as time_request's. */
static void serve_request(struct conn *c, const struct rpc_message *m, uint64_t *clock)
{
    struct cmd_ctx ctx;
    int was_authed = c->authed;
    /* A cluster node's connection gets its session once the node serves
     * (sessions are the leader's to make: a follower's would collide). */
    if (c->authed && !c->sess && c->srv->cluster && cluster_serving(c->srv->cluster) &&
        sess_attach(&c->srv->st, c, &c->sess) < 0) {
        log_error("out of memory for a connection's session; closing %s", c->peer);
        conn_close(c);
        *clock = uv_hrtime();
        return;
    }
    cmd_ctx_init(&ctx, &c->srv->env, c->sess, &c->authed, &c->out);
    ctx.conn = c;
    ctx.user = c->user;
    ctx.peer = c->peer;
    c->in_dispatch = 1;
    cmd_dispatch(&ctx, m);
    c->in_dispatch = 0;
    if (ctx.index > c->wait_index)
        c->wait_index = ctx.index;
    /* On a cluster's leader every reply, a read's or an error's too, waits
     * until what it may have seen is committed: a change served before it
     * on another connection could still be lost with this leader. */
    if (c->srv->cluster && persist_last_index(&c->srv->persist) > c->wait_index)
        c->wait_index = persist_last_index(&c->srv->persist);
    if (ctx.deferred) { /* save: nothing more is served until its reply */
        c->paused = 1;
        c->save_msgid = ctx.msgid;
        uv_read_stop(&c->h.stream);
    }
    c->sess = ctx.sess; /* hello {resume} may have swapped it */
    if (ctx.user != c->user)
        c->by_cert = 0; /* a hello {user, auth} logged in (by token) */
    c->user = ctx.user;
    if (c->authed && !was_authed)
        set_scan_limits(c); /* the message that authenticated is complete */
    if (ctx.close_after) {  /* a wrong auth token: reply, then close */
        c->close_after = 1;
        uv_read_stop(&c->h.stream);
    }
    if (buf_pending(&c->deferred)) {
        buf_append(&c->out, c->deferred.data + c->deferred.off, buf_pending(&c->deferred));
        buf_reset(&c->deferred);
    }
    time_request(c, &ctx, clock);
}

/* The general path: a frame found by rpc_scan, decoded by msgpack-c;
 * *clock as time_request's (a frame that is no request reads it too). */
static void serve_frame(struct conn *c, const char *frame, size_t len, uint64_t *clock)
{
    struct server *srv = c->srv;
    struct rpc_message m;
    msgpack_object obj;
    msgpack_packer pk;
    int have_msgid, rc;
    /* Its decode takes about 24 bytes of msgpack-c's zone per element, which
     * no budget counts: past a few KiB it goes back once the frame is done. */
    int big = c->scan.elements > CONN_ZONE_KEEP_ELEMENTS;

    rc = rpc_decode(&c->dec, frame, len, &obj);
    if (rc == 0)
        rc = rpc_parse_request(&obj, &m, &have_msgid);
    else
        have_msgid = c->scan.have_msgid, m.msgid = c->scan.msgid;
    if (rc < 0) {
        srv->env.bad_requests++;
        cmd_count_error(&srv->env, rc);
        violation(srv, "%s sent a message that is not a request (%s): answered BAD_REQUEST",
                  c->peer, rc == RPC_EOUT_OF_MEMORY ? "out of memory to decode it" : err_name(rc));
        rpc_packer_init(&pk, &c->out);
        rpc_pack_response_error(&pk, have_msgid, m.msgid, rc,
                                "expected [0, msgid, method, params] with a uint32 msgid, a str "
                                "method and an array of params");
        *clock = uv_hrtime();
        goto out;
    }
    if (m.type == RPC_NOTIFY) {
        /* msgpack-RPC notifications get no reply; none are defined for clients. */
        log_debug("%s sent notification \"%.*s\": ignored", c->peer, (int)m.method_len, m.method);
        *clock = uv_hrtime();
        goto out;
    }
    serve_request(c, &m, clock);
out:
    if (big && rpc_decoder_shrink(&c->dec) < 0) {
        c->dec_ready = 0;
        log_warn("closing %s: out of memory for its decoder", c->peer);
        conn_close(c);
    }
}

/* A connection that holds no partial message reads into the server's shared
 * buffer (Redis 7 does the same), so that idle connections hold no input
 * storage: its input is that buffer for the length of one read callback
 * (return_shared_in gives it back). */
static void borrow_shared_in(struct conn *c)
{
    struct server *srv = c->srv;
    if (c->in.cap == 0 && !srv->shared_in_lent) {
        c->in = srv->shared_in;
        buf_init_in(&srv->shared_in, MEM_CLIENT);
        srv->shared_in_lent = 1;
        c->in_shared = 1;
    }
}

/* libuv calls on_read after every on_alloc: on_read gives it back. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct conn *c = h->data;
    struct server *srv = c->srv;
    (void)hint;
    if (c->tls) { /* ciphertext: fed to the tlsio before the next read */
        *b = uv_buf_init(srv->tls_rbuf, CONN_TLS_READ_CHUNK);
        return;
    }
    borrow_shared_in(c);
    if (buf_reserve(&c->in, READ_CHUNK) < 0) {
        *b = uv_buf_init(NULL, 0);
        return;
    }
    *b = uv_buf_init(c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len));
}

/* The end of a read: the shared buffer goes back to the server, and what is
 * left of a partial message moves into c's own input buffer. */
static void return_shared_in(struct conn *c)
{
    struct server *srv = c->srv;
    struct buf shared = c->in;

    if (!c->in_shared) {
        if (buf_pending(&c->in) == 0)
            buf_close(&c->in); /* the next read uses the shared buffer */
        return;
    }
    c->in_shared = 0;
    buf_init_in(&c->in, MEM_CLIENT);
    if (!c->closing && buf_pending(&shared) > 0 &&
        buf_append(&c->in, shared.data + shared.off, buf_pending(&shared)) < 0) {
        log_warn("closing %s: out of memory for its input", c->peer);
        conn_close(c);
    }
    buf_reset(&shared);
    srv->shared_in = shared;
    srv->shared_in_lent = 0;
}

/* The slice of the loop one connection's input may take before it waits
 * on the backlog: the collector's. */
static uint64_t slice_ns(const struct server *srv)
{
    return (uint64_t)srv->cfg->gc_slice_us * 1000;
}

/* Serve c's complete requests in order until none is left, the deadline
 * (uv_hrtime) passes, or all clients' buffers pass --max-client-buffers (the
 * flush that follows then evicts the largest). Stopped early, c waits on the
 * backlog with what is left; done, it reads again. Where c is in no request;
 * c's input may be the shared buffer (the caller gives it back). start_ns:
 * a uv_hrtime reading taken just before (the first request's time begins
 * there). Returns the last reading of the clock, for the caller's next use. */
static uint64_t serve_input(struct conn *c, uint64_t start_ns, uint64_t deadline_ns)
{
    struct server *srv = c->srv;
    uint64_t clock = start_ns;

    srv->env.now_ms = uv_now(srv->loop);
    while (!c->closing && !c->close_after && !c->paused && buf_pending(&c->in) > 0) {
        const char *frame = c->in.data + c->in.off;
        size_t flen = 0;
        int rc;
        if (srv->simple_ok) { /* most requests: no scan, no msgpack-c, no zone */
            struct rpc_message m;
            msgpack_object params[RPC_SIMPLE_MAX_PARAMS];
            flen = rpc_decode_simple((const uint8_t *)frame, buf_pending(&c->in),
                                     c->scan.lim.max_message_bytes, &m, params);
            if (flen) {
                serve_request(c, &m, &clock);
                buf_consume(&c->in, flen);
                rpc_scan_reset(&c->scan); /* it may have seen part of this frame */
                goto served;
            }
        }
        rc = rpc_scan_feed(&c->scan, (const uint8_t *)frame, buf_pending(&c->in), &flen);
        if (rc == 0)
            break;
        if (rc < 0) {
            refuse(c, rc,
                   rc != RPC_ETOO_LARGE ? "malformed msgpack (or nested too deep); closing"
                   : c->authed          ? "message over max_message_bytes, a str or bin over "
                                          "max_data_bytes, or too many elements; closing"
                                        : "message too large before authentication; closing");
            break;
        }
        serve_frame(c, frame, flen, &clock);
        buf_consume(&c->in, flen);
        rpc_scan_reset(&c->scan);
    served:
        if (check_output(c) < 0)
            return clock;
        if (buf_pending(&c->in) == 0)
            break;
        /* Every request read the clock: the deadline costs a compare. */
        if (mem_budget_bytes(MEM_CLIENT) > srv->cfg->max_client_buffers || clock >= deadline_ns) {
            queue_flush(c);
            backlog_add(c);
            goto out;
        }
    }
    if (c->backlogged) {
        backlog_remove(c);
        if (buf_pending(&c->in) == 0)
            buf_close(&c->in); /* its next read uses the shared buffer again */
        if (!c->closing && !c->close_after && !c->paused && !c->in_ended)
            uv_read_start(&c->h.stream, on_alloc, on_read);
    }
    if (c->in_ended && !c->paused)
        c->close_after = 1; /* all it sent was served: reply, then close */
    if (!c->closing && check_output(c) == 0)
        queue_flush(c);
out:
    /* Enough candidates piled up: start sweeping them, a slice at a time. */
    if (store_gc_due(&srv->st))
        server_sweep(srv);
    return clock;
}

/* One slice of the backlog: the waiting connections in turn from the head,
 * each served until it runs out of complete requests (it then reads again)
 * or the slice is spent (the first at least one request), and requeued at
 * the tail if it still has some; each at most once a slice. */
static void on_backlog(uv_idle_t *h)
{
    struct server *srv = h->data;
    uint64_t now = uv_hrtime(), deadline = now + slice_ns(srv), turns = srv->backlog_len;

    while (srv->backlog && turns-- > 0) {
        struct conn *c = srv->backlog;
        now = serve_input(c, now, deadline);
        if (c->backlogged) { /* closing, or stopped early: not at the head again */
            backlog_remove(c);
            if (!c->closing)
                backlog_add(c);
        }
        if (now >= deadline)
            break;
    }
    conn_flush_all(srv);
}

/* One line at info about TLS trouble, rate limited (srv->tls_log): a client
 * that fails handshakes in a loop must not flood the log. The lines name
 * the peer and OpenSSL's reason, never a byte the client sent. */
static void tls_log(struct server *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tls_log(struct server *srv, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (log_threshold > LOG_INFO || !log_rate_take(&srv->tls_log, uv_now(srv->loop)))
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    log_info("%s", line);
}

/* The first bytes of a connection, n > 0 of them at p: a TLS ClientHello
 * (a handshake record, 0x16 0x03) on a plaintext port is closed; anything
 * else on a TLS port is answered with one plaintext error and closed
 * (plaintext msgpack-RPC starts with an array, never 0x16). Returns 1 if c
 * was refused so, else 0. */
static int first_bytes(struct conn *c, const char *p, size_t n)
{
    msgpack_packer pk;
    c->first_seen = 1;
    if (c->is_tls) {
        if ((unsigned char)p[0] == 0x16)
            return 0;
        tls_log(c->srv, "%s sent plaintext to a TLS port: answered BAD_REQUEST and closed",
                c->peer);
        c->srv->env.tls_handshakes_failed++;
        c->srv->env.refused_protocol++;
        cmd_count_error(&c->srv->env, RPC_EBAD_REQUEST);
        tlsio_free(c->tls); /* the answer goes out as it is */
        c->tls = NULL;
        rpc_packer_init(&pk, &c->out);
        rpc_pack_response_error(&pk, 1, 0, RPC_EBAD_REQUEST,
                                "this port speaks TLS: use tls://HOST:PORT");
        c->in_ended = 1;
        c->close_after = 1;
        uv_read_stop(&c->h.stream);
        queue_flush(c);
        return 1;
    }
    if ((unsigned char)p[0] == 0x16 && (n < 2 || (unsigned char)p[1] == 0x03)) {
        tls_log(c->srv, "%s: TLS handshake on a plaintext port; closed", c->peer);
        c->srv->env.refused_protocol++;
        conn_close(c);
        return 1;
    }
    return 0;
}

/* Decrypt what c's tlsio holds into c's input (the shared buffer when c
 * holds no partial message). Records the handshake's end, and a close or
 * failure (c's input then ends: what came before is served, then c closes
 * once the alert or close_notify is out). -1 if c was closed, else 0. */
static int tls_decrypt(struct conn *c)
{
    struct server *srv = c->srv;
    int was_done = tlsio_handshake_done(c->tls);
    const char *d;
    ssize_t n;

    borrow_shared_in(c);
    for (;;) {
        /* A record holds at most 16 KiB of plaintext. */
        if (buf_reserve(&c->in, 16 * 1024) < 0) {
            log_warn("closing %s: out of memory for its input", c->peer);
            conn_close(c);
            return -1;
        }
        n = tlsio_read(c->tls, c->in.data + c->in.len, c->in.cap - c->in.len);
        if (n <= 0)
            break;
        c->in.len += (size_t)n;
    }
    if (!was_done && tlsio_handshake_done(c->tls)) {
        const char *cn = tlsio_peer_cn(c->tls);
        srv->env.tls_handshakes++;
        log_debug("%s: TLS handshake done%s%s", c->peer, cn ? ", client certificate CN=" : "",
                  cn ? cn : "");
        if (cn)
            conn_tls_identified(c, cn);
    }
    if (n == TLSIO_EFAIL) {
        if (!tlsio_handshake_done(c->tls)) {
            srv->env.tls_handshakes_failed++;
            srv->env.refused_tls_handshake++;
            tls_log(srv, "%s: TLS handshake failed: %s", c->peer, tlsio_error(c->tls));
        } else {
            tls_log(srv, "%s: TLS failed: %s; closing", c->peer, tlsio_error(c->tls));
        }
    } else if (n == TLSIO_EOF) {
        log_debug("%s: TLS close_notify", c->peer);
    }
    if (n < 0) {
        c->in_ended = 1;
        uv_read_stop(&c->h.stream);
    }
    if (tlsio_pending(c->tls, &d) > 0)
        queue_flush(c); /* handshake messages, an alert */
    return 0;
}

/* Handshake steps: a ration per loop iteration, renewed by the check handle
 * (which libuv runs after polling for I/O, each iteration). */
static void on_hs_check(uv_check_t *h)
{
    struct server *srv = h->data;
    srv->hs_used = 0;
    uv_check_stop(h);
}

/* May one more connection take a handshake step in this loop iteration? */
static int hs_ration(struct server *srv)
{
    if (srv->hs_used == 0) {
        srv->hs_start_ns = uv_hrtime();
        uv_check_start(&srv->hs_check, on_hs_check);
    } else if (srv->hs_used >= CONN_TLS_HANDSHAKES_PER_ITERATION ||
               uv_hrtime() - srv->hs_start_ns >= slice_ns(srv)) {
        return 0;
    }
    srv->hs_used++;
    return 1;
}

static void on_hs_idle(uv_idle_t *h);

/* c waits for a handshake step, its reading stopped (what it sent is fed
 * already), at the tail of the queue. */
static void hs_enqueue(struct conn *c)
{
    struct server *srv = c->srv;
    uv_read_stop(&c->h.stream);
    c->hs_queued = 1;
    c->hs_next = NULL;
    c->hs_prev = srv->hs_tail;
    if (srv->hs_tail)
        srv->hs_tail->hs_next = c;
    else
        srv->hs_head = c;
    srv->hs_tail = c;
    uv_idle_start(&srv->hs_idle, on_hs_idle);
}

static void hs_remove(struct conn *c)
{
    struct server *srv = c->srv;
    if (!c->hs_queued)
        return;
    c->hs_queued = 0;
    if (c->hs_prev)
        c->hs_prev->hs_next = c->hs_next;
    else
        srv->hs_head = c->hs_next;
    if (c->hs_next)
        c->hs_next->hs_prev = c->hs_prev;
    else
        srv->hs_tail = c->hs_prev;
    c->hs_prev = c->hs_next = NULL;
    if (!srv->hs_head)
        uv_idle_stop(&srv->hs_idle);
}

/* The queue's turn, first thing in a loop iteration: its head first, as
 * far as the ration goes. */
static void on_hs_idle(uv_idle_t *h)
{
    struct server *srv = h->data;
    while (srv->hs_head && hs_ration(srv)) {
        struct conn *c = srv->hs_head;
        hs_remove(c);
        if (tls_decrypt(c) == 0) {
            uint64_t now = uv_hrtime();
            serve_input(c, now, now + slice_ns(srv));
            if (!c->closing && !c->close_after && !c->in_ended && !c->backlogged && !c->paused)
                uv_read_start(&c->h.stream, on_alloc, on_read);
        }
        return_shared_in(c);
    }
    conn_flush_all(srv);
}

/* Ciphertext arrived (fed): decrypt and serve it, unless it is a handshake
 * step beyond this iteration's ration, or others wait for one already. */
static void tls_advance(struct conn *c)
{
    struct server *srv = c->srv;
    if (!tlsio_handshake_done(c->tls) && (srv->hs_head || srv->stopping || !hs_ration(srv))) {
        if (!srv->stopping)
            hs_enqueue(c);
        return;
    }
    if (tls_decrypt(c) == 0) {
        uint64_t now = uv_hrtime();
        serve_input(c, now, now + slice_ns(srv));
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;
    struct server *srv = c->srv;

    if (nread < 0) {
        if (nread == UV_ENOBUFS)
            log_warn("closing %s: out of memory for its input", c->peer);
        else if (nread != UV_EOF)
            log_debug("read from %s failed: %s", c->peer, uv_strerror((int)nread));
        conn_close(c);
    } else if (nread > 0 && !c->first_seen && first_bytes(c, b->base, (size_t)nread)) {
        /* refused */
    } else if (c->tls) {
        c->last_read_ms = uv_now(srv->loop);
        if (nread > 0 && tlsio_feed(c->tls, b->base, (size_t)nread) < 0) {
            log_warn("closing %s: out of memory for its TLS input", c->peer);
            conn_close(c);
        } else if (nread > 0) {
            tls_advance(c);
        }
    } else {
        c->in.len += (size_t)nread;
        uint64_t now = uv_hrtime();
        c->last_read_ms = uv_now(srv->loop);
        serve_input(c, now, now + slice_ns(srv));
    }
    return_shared_in(c);
    conn_flush_all(srv);
}

static void resume_after_deferred(struct conn *c);

void conn_saved(struct server *srv, void *waiter, int rc, uint64_t bytes, uint64_t ms)
{
    struct conn *c = waiter;
    msgpack_packer pk;
    if (c->closing)
        return;
    rpc_packer_init(&pk, &c->out);
    if (rc < 0) {
        cmd_count_error(&srv->env, rc);
        rpc_pack_response_error(&pk, 1, c->save_msgid, rc,
                                srv->persist.last_error[0] ? srv->persist.last_error
                                                           : "the snapshot could not be written");
    } else {
        rpc_pack_response_ok(&pk, c->save_msgid);
        msgpack_pack_map(&pk, 2);
        rpc_pack_kv_uint(&pk, "snapshot_bytes", bytes);
        rpc_pack_kv_uint(&pk, "duration_ms", ms);
    }
    resume_after_deferred(c);
}

/* A deferred reply is written: serve what the client sent after it. */
static void resume_after_deferred(struct conn *c)
{
    struct server *srv = c->srv;
    c->paused = 0;
    queue_flush(c);
    /* What the client sent after the save is served now, in turn. */
    if (buf_pending(&c->in) > 0)
        backlog_add(c);
    else if (c->in_ended)
        c->close_after = 1;
    else if (!c->close_after)
        uv_read_start(&c->h.stream, on_alloc, on_read);
    conn_flush_all(srv);
}

void conn_cluster_done(struct server *srv, void *waiter, int rc, const char *msg, uint64_t leader)
{
    struct conn *c = waiter;
    msgpack_packer pk;
    if (c->closing)
        return;
    rpc_packer_init(&pk, &c->out);
    if (rc < 0) {
        cmd_count_error(&srv->env, rc);
        rpc_pack_response_error(&pk, 1, c->save_msgid, rc, msg);
    } else if (leader) {
        rpc_pack_response_ok(&pk, c->save_msgid);
        msgpack_pack_map(&pk, 1);
        rpc_pack_kv_uint(&pk, "leader", leader);
    } else {
        rpc_pack_response_ok(&pk, c->save_msgid);
        msgpack_pack_true(&pk);
    }
    resume_after_deferred(c);
}

void conn_accept(struct server *srv, uv_stream_t *listener, int is_unix, int is_tls)
{
    struct conn *c = mem_calloc_in(MEM_CLIENT, sizeof(*c));
    int rc;

    if (!c) {
        log_error("out of memory accepting a connection");
        return;
    }
    c->srv = srv;
    buf_init_in(&c->in, MEM_CLIENT);
    buf_init_in(&c->out, MEM_CLIENT);
    buf_init_in(&c->wbuf, MEM_CLIENT);
    buf_init_in(&c->deferred, MEM_CLIENT);
    if (is_unix)
        rc = uv_pipe_init(srv->loop, &c->h.pipe, 0);
    else
        rc = uv_tcp_init(srv->loop, &c->h.tcp);
    if (rc < 0) {
        mem_free_in(MEM_CLIENT, c, sizeof(*c));
        return;
    }
    c->h.handle.data = c;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->env.connections++;
    if ((rc = uv_accept(listener, &c->h.stream)) < 0) {
        log_warn("accept failed: %s", uv_strerror(rc));
        conn_close(c);
        return;
    }
    if (is_unix) {
        snprintf(c->peer, sizeof(c->peer), "unix#%llu",
                 (unsigned long long)srv->env.connections_total + 1);
    } else {
        struct sockaddr_storage sa;
        int len = sizeof(sa);
        char host[48] = "?";
        int port = 0;
        uv_tcp_nodelay(&c->h.tcp, 1);
        if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&sa, &len) == 0) {
            if (sa.ss_family == AF_INET6) {
                uv_ip6_name((struct sockaddr_in6 *)&sa, host, sizeof(host));
                port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
            } else {
                uv_ip4_name((struct sockaddr_in *)&sa, host, sizeof(host));
                port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
            }
        }
        snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
    }
    if (srv->env.connections > srv->cfg->max_connections) {
        /* A flood must not flood the log too: violation_log's rate. */
        srv->env.connections_refused++;
        violation(srv, "refused %s: max_connections (%llu) reached",
                  is_unix ? "a unix socket client" : c->peer,
                  (unsigned long long)srv->cfg->max_connections);
        conn_close(c);
        return;
    }
    srv->env.connections_total++;
    if (is_tls) {
        c->is_tls = 1;
        srv->env.tls_connections++;
        if (tlsio_new(srv->tls_ctx, 1, NULL, &c->tls) < 0) {
            log_error("out of memory for a new TLS connection");
            conn_close(c);
            return;
        }
    }
    c->authed = !cmd_login_required(&srv->env);
    set_scan_limits(c);
    c->dec_ready = rpc_decoder_init(&c->dec) == 0;
    /* Where a token is required, the session comes with the hello that
     * gives it (cmd_do_hello): an unauthenticated connection spends nothing
     * of the heap. */
    if (!c->dec_ready || (c->authed && (!srv->cluster || cluster_serving(srv->cluster)) &&
                          sess_attach(&srv->st, c, &c->sess) < 0)) {
        log_error("out of memory for a new connection's session");
        conn_close(c);
        return;
    }
    c->last_read_ms = uv_now(srv->loop);
    if ((rc = uv_read_start(&c->h.stream, on_alloc, on_read)) < 0) {
        conn_close(c);
        return;
    }
    log_debug("connection %s opened (session %llu)", c->peer,
              (unsigned long long)(c->sess ? c->sess->id : 0));
}

/* Log c in as u (it has its session from here on, as after a hello). */
static void log_in(struct conn *c, const struct user *u)
{
    struct server *srv = c->srv;
    int was_authed = c->authed;
    c->user = u;
    if (!c->sess && (!srv->cluster || cluster_serving(srv->cluster)) &&
        sess_attach(&srv->st, c, &c->sess) < 0) {
        log_error("out of memory for a connection's session; closing %s", c->peer);
        conn_close(c);
        return;
    }
    c->authed = 1;
    /* The scanner has seen nothing yet (the handshake ends before any
     * plaintext is scanned; what came with it waits in c->in): the
     * authenticated limits apply from the first message on. */
    if (!was_authed)
        set_scan_limits(c);
}

void conn_tls_identified(struct conn *c, const char *cn)
{
    const struct user *u = users_by_cn(c->srv->env.users, cn);
    if (!u) {
        /* A certificate the CA signed but no user claims: the connection
         * logs in with hello as usual. */
        log_debug("%s: certificate CN \"%s\" is no user's cert-cn", c->peer, cn ? cn : "");
        return;
    }
    log_debug("%s: logged in as %s by its certificate", c->peer, u->name);
    c->by_cert = 1;
    log_in(c, u);
}

void conn_users_reloaded(struct server *srv)
{
    for (struct conn *c = srv->conns; c; c = c->next) {
        const struct user *u;
        if (!c->user || c->user == srv->env.default_user)
            continue;
        u = users_find(srv->env.users, c->user->name, strlen(c->user->name));
        /* A connection its certificate logged in stays only while the user
         * still claims that certificate's CN (the old table is still
         * alive here): removing a cert-cn revokes the certificate. */
        if (u && c->by_cert && (!u->cert_cn || strcmp(u->cert_cn, c->user->cert_cn) != 0)) {
            if (!c->closing)
                log_info("closing %s: user %s no longer has the cert-cn it logged in with", c->peer,
                         c->user->name);
            u = NULL;
        } else if (!u && !c->closing) {
            log_info("closing %s: its user %s is no longer in the users file", c->peer,
                     c->user->name);
        }
        if (!u) {
            conn_close(c);
            c->authed = 0; /* nothing is served to it before the close */
        }
        c->user = u;
    }
}
