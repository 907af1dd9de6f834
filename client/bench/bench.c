/* rcstore-bench: a load generator for rcstored in the spirit of
 * redis-benchmark. Each test opens -c connections spread over --threads
 * threads (one libuv loop each), creates the objects the test needs (-r in
 * all, split between connections), then keeps -P requests in flight on every
 * connection until -n requests were issued or --duration passed. Latency is
 * measured per request from the moment it is queued to the moment its reply
 * is read, into a log-linear histogram (hist.h). Nothing is allocated per
 * request: requests are encoded into a reused output buffer, replies framed
 * by rpc_scan in a reused input buffer, and the in-flight window is a fixed
 * ring. Tests whose work has follow-ups (churn's decref, cycle's link) queue
 * them per connection and send them before new work. Given a cluster's
 * nodes (-H a,b,c), a connection answered NOT_LEADER reads what it has in
 * flight, then moves to the leader named (or the next node, backing off
 * while none is known); one whose connection is lost counts what it had in
 * flight as lost and reconnects through the list. Either way it starts a
 * new session and makes its objects again: a run goes on across a failover
 * (docs/client-failover.md). With TLS (--tls, --cacert, ... or tls://
 * addresses) every TCP connection runs through a common/tlsio endpoint:
 * ciphertext read by libuv is fed to it and decrypted into the same input
 * buffer; requests are encrypted in one batch per flush and the ciphertext
 * goes out from tlsio's own queue, copied only when the kernel does not
 * take it at once. With -k 0 a connection is closed and opened again after
 * each round of -P units of work, as redis-benchmark's -k 0 does; a test
 * whose objects or holds must outlast a connection keeps its session by a
 * short lease, resumed on each new connection. Host names are resolved with
 * getaddrinfo before the run (a leader hint's, on the loop's thread pool). */
#include "bench_wire.h"
#include "hist.h"
#include "rpc_msg.h"
#include "rpc_scan.h"
#include "secret.h"
#include "tlsctx.h"
#include "tlsio.h"

#include <errno.h>
#include <stdarg.h>
#include <strings.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* ---- tests ---- */

enum test_id {
    T_PING,
    T_CREATE,
    T_GET,
    T_INCREF,
    T_DECREF,
    T_LINK,
    T_CHURN,
    T_CYCLE,
    T_MIXED,
    T_N
};

static const struct test_def {
    const char *name, *label;
    int needs_objects; /* the connection creates its share of -r first */
    unsigned cost;     /* requests one unit of work sends */
} test_defs[T_N] = {
    [T_PING] = {"ping", "PING", 0, 1},       [T_CREATE] = {"create", "CREATE", 0, 1},
    [T_GET] = {"get", "GET", 1, 1},          [T_INCREF] = {"incref", "INCREF", 1, 1},
    [T_DECREF] = {"decref", "DECREF", 1, 1}, [T_LINK] = {"link", "LINK", 1, 1},
    [T_CHURN] = {"churn", "CHURN", 0, 2},    [T_CYCLE] = {"cycle", "CYCLE", 0, 5},
    [T_MIXED] = {"mixed", "MIXED", 0, 1},
};

/* What a request on the wire is, so its reply can be handled. */
enum kind {
    K_HELLO,
    K_SETUP, /* create one of the connection's objects */
    K_PING,
    K_CREATE,  /* create test: kept, dropped later */
    K_CHURN,   /* create, dropped at once */
    K_CYCLE_A, /* create a */
    K_CYCLE_B, /* create b -> a */
    K_GET,
    K_INCREF,     /* incref [id] */
    K_INCREF_N,   /* incref [id, n] */
    K_DECREF,     /* decref [id] */
    K_DECREF_N,   /* decref [id, n] */
    K_LINK,       /* link [a, b] */
    K_CLEAR_REFS, /* set_refs [a, []] */
    K_RELEASE,    /* release_all [] (-k 0 with a lease: the end of a test) */
};

#define HOLD_BATCH   32 /* incref/decref tests: holds taken or given back at once */
#define FAILOVER_NS  (10 * 1000000000ull) /* how long a connection may look for a node */
#define BACKOFF_MIN  50                   /* ms, doubling to BACKOFF_MAX, while no leader */
#define BACKOFF_MAX  500
#define LINK_BATCH   32 /* link test: refs added before they are cleared */
#define SETUP_WINDOW 256
#define LEASE_TTL    10   /* s: -k 0's sessions outlive a killed run this long */
#define BUSY_TRIES   1000 /* -k 0: SESSION_BUSY answers before giving up */

/* ---- options ---- */

/* A node to connect to: a host (numeric or a name) and a port, and the
 * address it resolves to once resolved. */
struct target {
    char host[256];
    int port;
    int resolved; /* sa holds the address, with the port */
    struct sockaddr_storage sa;
};

struct opts {
    const char *host, *sock, *tests, *mix, *auth_file, *hosts;
    const char *user; /* --user: logs in as this user, with auth_file's token */
    /* TLS: on with --tls, any option below or a tls:// address; then every
     * TCP connection (and every leader hint) is TLS, verified against ca
     * (NULL: the system's store) and sni (NULL: the target's address). */
    int tls, insecure;
    const char *ca, *cert, *key, *sni;
    unsigned tls_flags; /* the command line's TLS options: bit ch - OPT_TLS */
    SSL_CTX *tls_ctx;
    struct target *targets; /* -H's list, or -h and -p */
    unsigned ntargets;
    int port, quiet, csv, json;
    int keepalive; /* -k: 1 keeps connections open; 0 opens one per round of -P requests */
    int precision; /* --precision: decimal places of latency figures */
    unsigned clients, pipeline, threads, datasize;
    uint64_t requests, keyspace;
    double duration;
    char auth[SECRET_MAX_BYTES + 1];
    unsigned weights[T_N]; /* mixed */
    unsigned weight_sum;
};

/* ---- per-connection state ---- */

struct req { /* one request in flight */
    uint64_t t0, a;
    uint32_t msgid;
    uint8_t kind, counted;
};

struct step { /* a follow-up waiting to be sent */
    uint64_t a, b;
    uint8_t kind, counted;
};

struct worker;

struct bconn {
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    uv_connect_t creq;
    uv_write_t wreq;
    struct worker *w;
    struct tlsio *tls;   /* this connection's TLS, or NULL */
    int tls_ok;          /* the server ever answered this connection over TLS */
    uint8_t *out, *wout; /* queued requests; the write in flight */
    size_t olen, ocap, wcap;
    int writing, closing, done;
    uint8_t *in;
    size_t ioff, ilen, icap;
    struct rpc_scan scan;
    struct req *ring; /* in flight, oldest first */
    unsigned rhead, rcount, rcap;
    struct step *pend; /* follow-ups, oldest first */
    unsigned phead, pcount, pcap;
    uint64_t *ids; /* this connection's objects (setup) */
    uint32_t nids, made, asked;
    uint16_t *extra, *links; /* per object: holds beyond the first; refs added */
    uint64_t *keep;          /* create test: objects created, dropped FIFO */
    unsigned khead, kcount, nkeep;
    uint32_t msgid, rr;
    uint64_t rng;
    int ready;

    /* -k 0: a new connection for each round of -P units of work. Tests
     * whose session must last (objects, holds, kept creates) take a lease
     * and resume it on each new connection (lease), and give every hold
     * back with release_all before the last close (released). */
    unsigned units;      /* units of work started on this connection */
    int recycling;       /* closing to connect again, the session kept */
    int hello_pending;   /* a resuming hello is unanswered: no work yet */
    unsigned busy_tries; /* resumes answered SESSION_BUSY in a row */
    int lease, released;
    uint8_t token[64]; /* the session's resume token; toklen 0: none yet */
    size_t toklen;
    uv_getaddrinfo_t gai; /* resolving a leader named by its host name */

    /* Failover: where it is connected, where it goes next, and why. */
    uv_timer_t backoff;   /* waits before a connect while no leader is known */
    unsigned target;      /* index in opts.targets of the node connected to */
    struct target leader; /* where a NOT_LEADER said to go; port 0: nowhere */
    int connecting;       /* a connect is in progress (or waits for backoff) */
    int moving;           /* NOT_LEADER: reconnect once the in-flight replies are read */
    int reconnecting;     /* the handle is closing, to be connected again */
    int stream_open;      /* u was initialised and not yet closed */
    int ever_connected;
    unsigned backoff_ms; /* the wait before the next connect; 0: at once */
    unsigned level_ms;   /* the backoff reached in this outage (0: none yet) */
    unsigned refused;
    uint64_t outage_start; /* uv_hrtime() at the first failure of this outage; 0: none */
};

struct bench;

struct worker {
    uv_loop_t loop;
    uv_thread_t tid;
    struct bench *b;
    struct bconn *conns;
    unsigned nconns, ready, closed;
    struct hist hist;
    uint64_t completed, errors, start, end;
    uint64_t reconnects, lost; /* failover: new connections, requests lost with a connection */
    uv_timer_t progress;
    int has_progress;
    char *rbuf; /* TLS: ciphertext as read, fed to the endpoint at once */
};

struct bench {
    struct opts o;
    enum test_id test;
    uint8_t *payload;
    uv_barrier_t barrier;
    _Atomic uint64_t tickets;   /* units of work handed out */
    _Atomic uint64_t completed; /* counted replies, for the progress line */
    uint64_t limit;             /* requests to issue */
    _Atomic uint64_t deadline;  /* uv_hrtime() at which to stop, 0 for none */
    _Atomic int error_printed;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("rcstore-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* A usage error: one line saying what is wrong, one pointing at --help (as
 * GNU tools and redis-benchmark do: not the whole help). Exit 2. */
static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("rcstore-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'rcstore-bench --help' for more information.\n", stderr);
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ---- encoding requests ---- */

/* Room for one more request with its payload. */
static uint8_t *reserve(struct bconn *c, size_t n)
{
    if (c->olen + n > c->ocap) {
        size_t cap = c->ocap * 2 > c->olen + n ? c->ocap * 2 : c->olen + n;
        uint8_t *p = realloc(c->out, cap);
        if (!p)
            die("out of memory");
        c->out = p;
        c->ocap = cap;
    }
    return c->out + c->olen;
}

#define METHOD(s) (s), (unsigned)(sizeof(s) - 1)
/* The longest --user: the server's user names are at most 64 bytes. */
#define BENCH_USER_MAX 64

static void emit(struct bconn *c, enum kind k, uint64_t a, uint64_t b, int counted)
{
    const struct bench *bn = c->w->b;
    uint32_t d = bn->o.datasize;
    uint8_t *p = reserve(c, WIRE_MAX_HEAD + d + sizeof(bn->o.auth) + BENCH_USER_MAX +
                                sizeof(c->token) + 64),
            *start = p;
    uint32_t id = ++c->msgid;
    struct req *r;

    switch (k) {
    case K_HELLO: {
        size_t alen = strlen(bn->o.auth), ulen = bn->o.user ? strlen(bn->o.user) : 0;
        p = wire_request(p, id, METHOD("hello"), 1);
        *p++ = (uint8_t)(0x80 | (1 + (alen ? 1 : 0) + (ulen ? 1 : 0) + (c->lease ? 1 : 0) +
                                 (c->toklen ? 1 : 0)));
        p = wire_fixstr(p, METHOD("client"));
        p = wire_fixstr(p, METHOD("rcstore-bench"));
        if (ulen) { /* at most BENCH_USER_MAX bytes (main checks) */
            p = wire_fixstr(p, METHOD("user"));
            *p++ = 0xd9; /* str 8 */
            *p++ = (uint8_t)ulen;
            memcpy(p, bn->o.user, ulen);
            p += ulen;
        }
        if (alen) {
            p = wire_fixstr(p, METHOD("auth"));
            *p++ = 0xda; /* str 16 */
            p = wire_be(p, alen, 2);
            memcpy(p, bn->o.auth, alen);
            p += alen;
        }
        if (c->lease) {
            p = wire_fixstr(p, METHOD("ttl"));
            p = wire_uint(p, LEASE_TTL);
        }
        if (c->toklen) {
            p = wire_fixstr(p, METHOD("resume"));
            p = wire_bin(p, c->token, (uint32_t)c->toklen);
        }
        break;
    }
    case K_RELEASE:
        p = wire_request(p, id, METHOD("release_all"), 0);
        break;
    case K_PING:
        p = wire_request(p, id, METHOD("ping"), 0);
        break;
    case K_SETUP:
    case K_CREATE:
    case K_CHURN:
    case K_CYCLE_A:
        p = wire_request(p, id, METHOD("create"), 1);
        p = wire_bin(p, bn->payload, d);
        break;
    case K_CYCLE_B:
        p = wire_request(p, id, METHOD("create"), 2);
        p = wire_bin(p, bn->payload, d);
        p = wire_array(p, 1);
        p = wire_uint(p, a);
        break;
    case K_GET:
        p = wire_request(p, id, METHOD("get"), 1);
        p = wire_uint(p, a);
        break;
    case K_INCREF:
    case K_INCREF_N:
        p = wire_request(p, id, METHOD("incref"), k == K_INCREF ? 1 : 2);
        p = wire_uint(p, a);
        if (k == K_INCREF_N)
            p = wire_uint(p, b);
        break;
    case K_DECREF:
    case K_DECREF_N:
        p = wire_request(p, id, METHOD("decref"), k == K_DECREF ? 1 : 2);
        p = wire_uint(p, a);
        if (k == K_DECREF_N)
            p = wire_uint(p, b);
        break;
    case K_LINK:
        p = wire_request(p, id, METHOD("link"), 2);
        p = wire_uint(p, a);
        p = wire_uint(p, b);
        break;
    case K_CLEAR_REFS:
        p = wire_request(p, id, METHOD("set_refs"), 2);
        p = wire_uint(p, a);
        p = wire_array(p, 0);
        break;
    }
    c->olen += (size_t)(p - start);
    if (c->rcount == c->rcap)
        die("internal error: in-flight ring full");
    r = &c->ring[(c->rhead + c->rcount++) % c->rcap];
    r->t0 = uv_hrtime();
    r->a = a;
    r->msgid = id;
    r->kind = (uint8_t)k;
    r->counted = (uint8_t)counted;
}

static void push_step(struct bconn *c, enum kind k, uint64_t a, uint64_t b, int counted)
{
    struct step *s;
    if (c->pcount == c->pcap)
        die("internal error: follow-up queue full");
    s = &c->pend[(c->phead + c->pcount++) % c->pcap];
    s->kind = (uint8_t)k;
    s->a = a;
    s->b = b;
    s->counted = (uint8_t)counted;
}

/* ---- generating work ---- */

static enum test_id pick_mixed(struct bconn *c)
{
    const struct opts *o = &c->w->b->o;
    unsigned x = (unsigned)(xorshift(&c->rng) % o->weight_sum);
    for (int t = 0; t < T_N; t++) {
        if (x < o->weights[t])
            return (enum test_id)t;
        x -= o->weights[t];
    }
    return T_PING;
}

/* Queue one unit of test t's work. */
static void generate(struct bconn *c, enum test_id t)
{
    uint32_t i;
    switch (t) {
    case T_PING:
        emit(c, K_PING, 0, 0, 1);
        break;
    case T_CREATE:
        emit(c, K_CREATE, 0, 0, 1);
        break;
    case T_CHURN:
        emit(c, K_CHURN, 0, 0, 1);
        break;
    case T_CYCLE:
        emit(c, K_CYCLE_A, 0, 0, 1);
        break;
    case T_GET:
        emit(c, K_GET, c->ids[xorshift(&c->rng) % c->nids], 0, 1);
        break;
    case T_INCREF:
        i = c->rr++ % c->nids;
        emit(c, K_INCREF, c->ids[i], 0, 1);
        if (++c->extra[i] >= HOLD_BATCH) { /* give the batch back, uncounted */
            emit(c, K_DECREF_N, c->ids[i], c->extra[i], 0);
            c->extra[i] = 0;
        }
        break;
    case T_DECREF:
        i = c->rr++ % c->nids;
        if (c->extra[i] == 0) { /* take a batch to give back, uncounted */
            emit(c, K_INCREF_N, c->ids[i], HOLD_BATCH, 0);
            c->extra[i] = HOLD_BATCH;
        }
        emit(c, K_DECREF, c->ids[i], 0, 1);
        c->extra[i]--;
        break;
    case T_LINK:
        i = c->rr++ % c->nids;
        emit(c, K_LINK, c->ids[i], c->ids[xorshift(&c->rng) % c->nids], 1);
        if (++c->links[i] >= LINK_BATCH) {
            emit(c, K_CLEAR_REFS, c->ids[i], 0, 0);
            c->links[i] = 0;
        }
        break;
    case T_MIXED:
    case T_N:
        generate(c, pick_mixed(c));
        break;
    }
}

/* May this connection start another unit of work? */
static int take_ticket(struct bconn *c, unsigned cost)
{
    struct bench *b = c->w->b;
    uint64_t deadline = atomic_load_explicit(&b->deadline, memory_order_relaxed);
    if (deadline && uv_hrtime() >= deadline)
        return 0;
    if (b->limit == UINT64_MAX)
        return 1;
    return atomic_fetch_add_explicit(&b->tickets, cost, memory_order_relaxed) < b->limit;
}

static void conn_close(struct bconn *c);
static void conn_flush(struct bconn *c);

static void conn_recycle(struct bconn *c);

/* Keep the window full; close the connection when its work is over. With
 * -k 0, a connection starts -P units of work, and once their replies and
 * follow-ups are in it is closed and another one opened (conn_recycle). */
static void conn_fill(struct bconn *c)
{
    struct bench *b = c->w->b;
    unsigned window = b->o.pipeline, cap = b->o.keepalive ? UINT_MAX : window;
    if (c->moving || c->reconnecting || c->connecting || c->closing || c->hello_pending)
        return;
    while (c->rcount < window) {
        if (c->pcount) {
            struct step *s = &c->pend[c->phead];
            c->phead = (c->phead + 1) % c->pcap;
            c->pcount--;
            emit(c, (enum kind)s->kind, s->a, s->b, s->counted);
        } else if (!c->done && c->units >= cap) {
            break; /* -k 0: this connection's round is out */
        } else if (!c->done && take_ticket(c, test_defs[b->test].cost)) {
            generate(c, b->test);
            c->units++;
        } else if (c->kcount) { /* create test: give back what is still kept */
            c->done = 1;
            emit(c, K_DECREF, c->keep[c->khead], 0, 0);
            c->khead = (c->khead + 1) % c->nkeep;
            c->kcount--;
        } else {
            c->done = 1;
            break;
        }
    }
    if (c->rcount || c->pcount)
        return;
    if (c->done && c->kcount == 0) {
        if (c->lease && c->toklen && !c->released) { /* the lease would keep the holds */
            c->released = 1;
            emit(c, K_RELEASE, 0, 0, 0);
            return;
        }
        conn_close(c);
    } else if (!c->done && c->units >= cap) {
        conn_recycle(c);
    }
}

/* ---- replies ---- */

static int parse_target(const char *s, int dflt, struct target *t);
static void resolve_numeric(struct target *t);

/* Is this error reply NOT_LEADER? Then *leader gets the node it names
 * (port 0 when none, or not a tcp://HOST:PORT address). */
static int not_leader(const uint8_t *frame, size_t len, struct target *leader)
{
    struct rpc_decoder dec;
    msgpack_object o;
    struct rpc_message m;
    const msgpack_object *code, *l;
    int yes = 0;
    leader->port = 0;
    if (rpc_decoder_init(&dec) < 0)
        return 0;
    if (rpc_decode(&dec, (const char *)frame, len, &o) == 0 && rpc_parse_message(&o, &m) == 0 &&
        m.error && (code = rpc_map_get(m.error, "code")) && code->type == MSGPACK_OBJECT_STR &&
        code->via.str.size == 10 && memcmp(code->via.str.ptr, "NOT_LEADER", 10) == 0) {
        char a[128];
        yes = 1;
        l = rpc_map_get(m.error, "leader");
        if (l && l->type == MSGPACK_OBJECT_STR && l->via.str.size < sizeof(a)) {
            memcpy(a, l->via.str.ptr, l->via.str.size);
            a[l->via.str.size] = '\0';
            if (parse_target(a, 0, leader) < 0)
                leader->port = 0;
        }
    }
    rpc_decoder_close(&dec);
    return yes;
}

/* Is this error reply's code the given one? */
static int error_is(const uint8_t *frame, size_t len, const char *want)
{
    struct rpc_decoder dec;
    msgpack_object o;
    struct rpc_message m;
    const msgpack_object *code;
    size_t n = strlen(want);
    int yes = 0;
    if (rpc_decoder_init(&dec) < 0)
        return 0;
    if (rpc_decode(&dec, (const char *)frame, len, &o) == 0 && rpc_parse_message(&o, &m) == 0 &&
        m.error && (code = rpc_map_get(m.error, "code")) && code->type == MSGPACK_OBJECT_STR &&
        code->via.str.size == n && memcmp(code->via.str.ptr, want, n) == 0)
        yes = 1;
    rpc_decoder_close(&dec);
    return yes;
}

/* Keep the resume token of hello's reply (-k 0 with a lease). */
static void keep_token(struct bconn *c, const uint8_t *frame, size_t len)
{
    struct rpc_decoder dec;
    msgpack_object o;
    struct rpc_message m;
    const msgpack_object *tok;
    if (rpc_decoder_init(&dec) < 0)
        die("out of memory");
    if (rpc_decode(&dec, (const char *)frame, len, &o) == 0 && rpc_parse_message(&o, &m) == 0 &&
        m.result && m.result->type == MSGPACK_OBJECT_MAP &&
        (tok = rpc_map_get(m.result, "token")) && tok->type == MSGPACK_OBJECT_BIN &&
        tok->via.bin.size > 0 && tok->via.bin.size <= sizeof(c->token)) {
        memcpy(c->token, tok->via.bin.ptr, tok->via.bin.size);
        c->toklen = tok->via.bin.size;
    }
    rpc_decoder_close(&dec);
    if (!c->toklen)
        die("hello gave no resume token for -k 0's lease");
}

static void report_error(struct bconn *c, const uint8_t *frame, size_t len)
{
    struct bench *b = c->w->b;
    struct rpc_decoder dec;
    msgpack_object o;
    struct rpc_message m;
    const msgpack_object *code, *msg;
    c->w->errors++;
    if (atomic_exchange(&b->error_printed, 1))
        return;
    if (rpc_decoder_init(&dec) < 0)
        return;
    if (rpc_decode(&dec, (const char *)frame, len, &o) == 0 && rpc_parse_message(&o, &m) == 0 &&
        m.error && (code = rpc_map_get(m.error, "code")) && code->type == MSGPACK_OBJECT_STR) {
        msg = rpc_map_get(m.error, "message");
        fprintf(stderr,
                "rcstore-bench: the server answered %.*s%s%.*s (further errors counted only)\n",
                (int)code->via.str.size, code->via.str.ptr, msg ? ": " : "",
                msg && msg->type == MSGPACK_OBJECT_STR ? (int)msg->via.str.size : 0,
                msg && msg->type == MSGPACK_OBJECT_STR ? msg->via.str.ptr : "");
        /* The server's advice is the protocol's (hello {"auth": ...}): say
         * what to give the bench, as rcstore does. */
        if (code->via.str.size == 13 && memcmp(code->via.str.ptr, "AUTH_REQUIRED", 13) == 0)
            fputs("rcstore-bench: give --user NAME --auth-file FILE (or RCSTORE_USER and "
                  "RCSTORE_AUTH_FILE)\n",
                  stderr);
    }
    rpc_decoder_close(&dec);
}

static void worker_begin(struct worker *w);

static void on_setup_done(struct bconn *c)
{
    if (c->ready) { /* set up again after a reconnect: the test goes on */
        conn_fill(c);
        return;
    }
    c->ready = 1;
    if (++c->w->ready == c->w->nconns)
        worker_begin(c->w);
}

static void handle_reply(struct bconn *c, const uint8_t *frame, size_t len, uint64_t now)
{
    struct req r;
    const uint8_t *res = NULL;
    uint32_t msgid = 0;
    uint64_t id = 0;
    int is_error, rc = wire_read_response(frame, frame + len, &msgid, &is_error, &res);

    if (rc == 1)
        return;                              /* a notification: none are asked for */
    if (rc == 0 && msgid == 0 && is_error) { /* the server refuses the connection */
        report_error(c, frame, len);
        die("the server refused the connection (a TLS port needs --tls or tls://)");
    }
    if (rc < 0 || c->rcount == 0 || c->ring[c->rhead].msgid != msgid)
        die("unexpected reply from the server (msgid %u)", (unsigned)msgid);
    r = c->ring[c->rhead];
    c->rhead = (c->rhead + 1) % c->rcap;
    c->rcount--;
    if (r.counted) {
        hist_record(&c->w->hist, now - r.t0);
        c->w->completed++;
        c->w->end = now;
    }
    if (is_error && not_leader(frame, len, &c->leader)) {
        /* Nothing was done: read what is in flight, then move. */
        c->w->errors += r.counted;
        c->moving = 1;
        return;
    }
    if (is_error && r.kind == K_HELLO && c->toklen && error_is(frame, len, "SESSION_BUSY")) {
        /* -k 0: the server has not yet seen the last connection close (a
         * race between two sockets): ask again, a round trip later. */
        if (++c->busy_tries > BUSY_TRIES)
            die("the server kept answering SESSION_BUSY to -k 0's resume");
        emit(c, K_HELLO, 0, 0, 0);
        return;
    }
    if (is_error) {
        if (r.kind == K_HELLO || r.kind == K_SETUP) {
            report_error(c, frame, len);
            die("setting up the test failed");
        }
        report_error(c, frame, len);
        return;
    }
    if (r.kind != K_HELLO) { /* a node serves this connection (a follower answers hello) */
        c->outage_start = 0;
        c->refused = 0;
        c->level_ms = 0;
    }
    switch ((enum kind)r.kind) {
    case K_HELLO:
        c->busy_tries = 0;
        if (c->lease && !c->toklen)
            keep_token(c, frame, len);
        if (c->hello_pending) { /* -k 0: the session is back; on_read fills */
            c->hello_pending = 0;
            break;
        }
        if (c->nids == 0)
            on_setup_done(c);
        break;
    case K_SETUP:
        if (!rpc_read_uint(&res, frame + len, &id))
            die("create did not return an id");
        c->ids[c->made++] = id;
        if (c->asked < c->nids) {
            c->asked++;
            emit(c, K_SETUP, 0, 0, 0);
        } else if (c->made == c->nids) {
            on_setup_done(c);
        }
        break;
    case K_CREATE:
        if (!rpc_read_uint(&res, frame + len, &id))
            break;
        if (c->kcount == c->nkeep) { /* keep at most nkeep: drop the oldest */
            push_step(c, K_DECREF, c->keep[c->khead], 0, 0);
            c->khead = (c->khead + 1) % c->nkeep;
            c->kcount--;
        }
        c->keep[(c->khead + c->kcount++) % c->nkeep] = id;
        break;
    case K_CHURN:
        if (rpc_read_uint(&res, frame + len, &id))
            push_step(c, K_DECREF, id, 0, 1);
        break;
    case K_CYCLE_A:
        if (rpc_read_uint(&res, frame + len, &id))
            push_step(c, K_CYCLE_B, id, 0, 1);
        break;
    case K_CYCLE_B:
        if (rpc_read_uint(&res, frame + len, &id)) {
            push_step(c, K_LINK, r.a, id, 1);
            push_step(c, K_DECREF, r.a, 0, 1);
            push_step(c, K_DECREF, id, 0, 1);
        }
        break;
    default:
        break;
    }
}

/* ---- libuv plumbing ---- */

static void conn_lost(struct bconn *c, const char *what, int err);
static void conn_reconnect(struct bconn *c, int wait);

static void on_write(uv_write_t *req, int status)
{
    struct bconn *c = req->data;
    c->writing = 0;
    if (c->closing || c->reconnecting)
        return; /* cancelled by the close */
    if (status < 0) {
        conn_lost(c, "write", status);
        return;
    }
    conn_flush(c);
}

static const struct target *next_target(struct bconn *c);

/* A TLS failure: before this connection was first served it is
 * a setting (a CA, a name, a plaintext port) that no retry mends: exit with
 * what OpenSSL said; after, the connection is lost like any other. */
static void tls_failed(struct bconn *c, const char *why)
{
    const struct target *t = next_target(c);
    if (!c->tls_ok)
        die("TLS: %s (%s:%d)", why, t->host, t->port);
    conn_lost(c, "TLS", UV_EPROTO);
}

/* conn_flush with TLS: encrypt what is queued in one go, then send the
 * ciphertext from tlsio's queue (the handshake's too); what the kernel
 * does not take at once is copied to wout for a uv_write. */
static void tls_flush(struct bconn *c)
{
    const char *p;
    size_t n;
    uv_buf_t buf;
    int w;
    if (c->olen) {
        if (tlsio_write(c->tls, c->out, c->olen) < 0) {
            tls_failed(c, tlsio_error(c->tls));
            return;
        }
        c->olen = 0;
    }
    if ((n = tlsio_pending(c->tls, &p)) == 0)
        return;
    buf = uv_buf_init((char *)p, (unsigned)n);
    w = uv_try_write(&c->u.s, &buf, 1);
    if (w < 0 && w != UV_EAGAIN) {
        conn_lost(c, "write", w);
        return;
    }
    if (w > 0)
        tlsio_consume(c->tls, (size_t)w);
    if ((n = tlsio_pending(c->tls, &p)) == 0)
        return;
    if (n > c->wcap) {
        uint8_t *q = realloc(c->wout, n);
        if (!q)
            die("out of memory");
        c->wout = q;
        c->wcap = n;
    }
    memcpy(c->wout, p, n);
    tlsio_consume(c->tls, n);
    buf = uv_buf_init((char *)c->wout, (unsigned)n);
    c->wreq.data = c;
    if ((w = uv_write(&c->wreq, &c->u.s, &buf, 1, on_write)) < 0) {
        conn_lost(c, "write", w);
        return;
    }
    c->writing = 1;
}

static void conn_flush(struct bconn *c)
{
    uv_buf_t buf;
    uint8_t *tp;
    size_t tc;
    int n;
    if (c->tls && !c->writing && !c->closing && !c->reconnecting && !c->connecting) {
        tls_flush(c);
        return;
    }
    if (c->writing || c->olen == 0 || c->closing || c->reconnecting || c->connecting)
        return;
    buf = uv_buf_init((char *)c->out, (unsigned)c->olen);
    n = uv_try_write(&c->u.s, &buf, 1);
    if (n < 0 && n != UV_EAGAIN) {
        conn_lost(c, "write", n);
        return;
    }
    if (n < 0)
        n = 0;
    if ((size_t)n == c->olen) {
        c->olen = 0;
        return;
    }
    /* The rest leaves from wout while out collects new requests. */
    memmove(c->out, c->out + n, c->olen - (size_t)n);
    c->olen -= (size_t)n;
    tp = c->wout, tc = c->wcap;
    c->wout = c->out, c->wcap = c->ocap;
    c->out = tp, c->ocap = tc;
    buf = uv_buf_init((char *)c->wout, (unsigned)c->olen);
    c->olen = 0;
    c->wreq.data = c;
    if ((n = uv_write(&c->wreq, &c->u.s, &buf, 1, on_write)) < 0) {
        conn_lost(c, "write", n);
        return;
    }
    c->writing = 1;
}

/* Room for at least 16 KiB more input at c->in + c->ilen. */
static void in_room(struct bconn *c)
{
    if (c->ioff > 0 && c->ioff == c->ilen) {
        c->ioff = c->ilen = 0;
    } else if (c->icap - c->ilen < 16384) {
        memmove(c->in, c->in + c->ioff, c->ilen - c->ioff);
        c->ilen -= c->ioff;
        c->ioff = 0;
        if (c->icap - c->ilen < 16384) {
            uint8_t *p = realloc(c->in, c->icap * 2);
            if (!p)
                die("out of memory");
            c->in = p;
            c->icap *= 2;
        }
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct bconn *c = h->data;
    (void)hint;
    if (c->tls) { /* ciphertext: fed to the endpoint at once, so one buffer a worker */
        *buf = uv_buf_init(c->w->rbuf, 65536);
        return;
    }
    in_room(c);
    *buf = uv_buf_init((char *)c->in + c->ilen, (unsigned)(c->icap - c->ilen));
}

/* Handle every whole reply in the input buffer. */
static void take_replies(struct bconn *c, uint64_t now)
{
    while (c->ioff < c->ilen) {
        size_t flen;
        int rc = rpc_scan_feed(&c->scan, c->in + c->ioff, c->ilen - c->ioff, &flen);
        if (rc == 0)
            break;
        if (rc < 0)
            die("the server sent malformed msgpack");
        handle_reply(c, c->in + c->ioff, flen, now);
        c->ioff += flen;
        rpc_scan_reset(&c->scan);
    }
}

/* Decrypt what the endpoint has into the input buffer, handling replies as
 * they come. 0, or -1 when the connection failed (dealt with). */
static int tls_take(struct bconn *c, uint64_t now)
{
    for (;;) {
        ssize_t r;
        in_room(c);
        r = tlsio_read(c->tls, c->in + c->ilen, c->icap - c->ilen);
        if (r > 0) {
            c->tls_ok = 1; /* the server took us (TLS 1.3 may refuse after the handshake) */
            c->ilen += (size_t)r;
            take_replies(c, now);
            continue;
        }
        if (r == 0)
            return 0;
        if (r == TLSIO_EOF)
            conn_lost(c, "read", UV_EOF);
        else
            tls_failed(c, tlsio_error(c->tls));
        return -1;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct bconn *c = s->data;
    uint64_t now, before = c->w->completed;
    if (nread == 0 || c->closing || c->reconnecting)
        return;
    if (nread < 0) {
        if (c->tls && !tlsio_handshake_done(c->tls) && !c->tls_ok)
            tls_failed(c, "the server closed the connection during the handshake (is the port "
                          "plaintext, or does it want a client certificate?)");
        else
            conn_lost(c, "read", (int)nread);
        return;
    }
    now = uv_hrtime();
    if (c->tls) {
        if (tlsio_feed(c->tls, buf->base, (size_t)nread) < 0)
            die("out of memory");
        if (tls_take(c, now) < 0)
            return;
    } else {
        c->ilen += (size_t)nread;
        take_replies(c, now);
    }
    atomic_fetch_add_explicit(&c->w->b->completed, c->w->completed - before, memory_order_relaxed);
    if (c->moving && c->rcount == 0) {
        conn_reconnect(c, 1); /* backs off only when no leader was named */
        return;
    }
    if (c->w->start)
        conn_fill(c);
    conn_flush(c);
}

static void conn_connect(struct bconn *c);

/* The node a connection tries next: the leader a NOT_LEADER named, else
 * its current target. */
static const struct target *next_target(struct bconn *c)
{
    return c->leader.port ? &c->leader : &c->w->b->o.targets[c->target];
}

static void on_backoff(uv_timer_t *t)
{
    conn_connect(t->data);
}

static void on_close(uv_handle_t *h)
{
    struct bconn *c = h->data;
    struct worker *w = c->w;
    if (c->reconnecting && !c->closing) { /* connect again, at once or after the backoff
                                             (or -k 0's next connection) */
        c->reconnecting = 0;
        c->connecting = 1;
        if (c->backoff_ms)
            uv_timer_start(&c->backoff, on_backoff, c->backoff_ms, 0);
        else
            conn_connect(c);
        return;
    }
    if (++w->closed == w->nconns && w->has_progress)
        uv_close((uv_handle_t *)&w->progress, NULL);
}

static void close_stream(struct bconn *c)
{
    tlsio_free(c->tls); /* nothing more is read or written on this stream */
    c->tls = NULL;
    c->stream_open = 0;
    uv_close(&c->u.h, on_close);
}

static void conn_close(struct bconn *c)
{
    struct worker *w = c->w;
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->backoff, NULL);
    if (c->stream_open)
        close_stream(c);
    else if (!c->reconnecting && ++w->closed == w->nconns && w->has_progress)
        uv_close((uv_handle_t *)&w->progress, NULL); /* waiting for its backoff: nothing open */
}

/* Leave this connection for another one: forget what belonged to its
 * session (its objects, follow-ups, kept ids; a new session makes its
 * objects again) and close it; on_close connects to next_target(), after
 * the backoff when wait and no leader is named. A connection whose work is
 * over just closes. Gives up (exit 2) when no node took it within
 * FAILOVER_NS. */
static void conn_reconnect(struct bconn *c, int wait)
{
    uint64_t now = uv_hrtime();
    struct bench *b = c->w->b;
    if (c->closing || c->reconnecting)
        return;
    if (!c->outage_start)
        c->outage_start = now;
    else if (now - c->outage_start > FAILOVER_NS)
        die("no node served a connection within %llu s (last tried %s:%d)",
            FAILOVER_NS / 1000000000ull, next_target(c)->host, next_target(c)->port);
    c->moving = 0;
    c->recycling = c->hello_pending = 0;
    c->toklen = 0; /* a new session: not the lease of the old one */
    c->rcount = c->pcount = 0;
    c->kcount = 0;
    c->olen = 0;
    c->made = c->asked = 0;
    memset(c->extra, 0, (c->nids ? c->nids : 1) * sizeof(*c->extra));
    memset(c->links, 0, (c->nids ? c->nids : 1) * sizeof(*c->links));
    rpc_scan_reset(&c->scan);
    c->ioff = c->ilen = 0;
    if (!c->leader.port) /* nobody named: the next node */
        c->target = (c->target + 1) % b->o.ntargets;
    if (wait && !c->leader.port) {
        c->level_ms = c->level_ms ? c->level_ms * 2 : BACKOFF_MIN;
        if (c->level_ms > BACKOFF_MAX)
            c->level_ms = BACKOFF_MAX;
        c->backoff_ms = c->level_ms;
    } else { /* at once, but the next wait of this outage stays as long */
        c->backoff_ms = 0;
    }
    if (c->done && c->pcount == 0) {
        conn_close(c);
        return;
    }
    c->reconnecting = 1;
    close_stream(c);
}

/* -k 0: this connection's round is done (nothing in flight or queued):
 * close it and connect again at once, keeping everything else (the
 * session comes back by its lease's token, when it has one). */
static void conn_recycle(struct bconn *c)
{
    c->recycling = 1;
    c->reconnecting = 1;
    c->backoff_ms = 0;
    rpc_scan_reset(&c->scan);
    c->ioff = c->ilen = 0;
    close_stream(c);
}

/* The connection failed: what it had in flight is lost (maybe done, maybe
 * not: counted apart from the errors), and it reconnects through the list. */
static void conn_lost(struct bconn *c, const char *what, int err)
{
    struct bench *b = c->w->b;
    if (c->closing || c->reconnecting)
        return;
    if (b->o.ntargets == 1 && b->o.sock && !c->w->start)
        die("%s failed: %s", what, uv_strerror(err));
    for (unsigned i = 0; i < c->rcount; i++)
        c->w->lost += c->ring[(c->rhead + i) % c->rcap].counted;
    c->leader.port = 0;
    conn_reconnect(c, 0);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct bconn *c = req->data;
    const struct opts *o = &c->w->b->o;
    const char *name = o->sni ? o->sni : next_target(c)->host;
    c->connecting = 0;
    if (c->closing)
        return;
    if (status < 0) {
        const struct target *t = next_target(c);
        if (!c->ever_connected && o->ntargets == 1) {
            if (o->sock)
                die("cannot connect to %s: %s", o->sock, uv_strerror(status));
            die("cannot connect to %s:%d: %s", t->host, t->port, uv_strerror(status));
        }
        c->leader.port = 0;
        c->moving = 0;
        /* Wait once a whole round of the list refused. */
        conn_reconnect(c, ++c->refused % o->ntargets == 0);
        return;
    }
    if (c->ever_connected && !c->recycling)
        c->w->reconnects++;
    c->ever_connected = 1;
    c->units = 0;
    if (c->leader.port) { /* now at the leader: later moves start from here in the list */
        for (unsigned i = 0; i < o->ntargets; i++)
            if (o->targets[i].port == c->leader.port &&
                strcmp(o->targets[i].host, c->leader.host) == 0)
                c->target = i;
        c->leader.port = 0;
    }
    if (!o->sock)
        uv_tcp_nodelay(&c->u.tcp, 1);
    if (o->tls && !o->sock && (status = tlsio_new(o->tls_ctx, 0, name, &c->tls)) < 0)
        die("TLS: cannot start a connection to %s: %s", name, strerror(-status));
    if ((status = uv_read_start(&c->u.s, on_alloc, on_read)) < 0) {
        conn_lost(c, "read", status);
        return;
    }
    emit(c, K_HELLO, 0, 0, 0);
    if (c->recycling) { /* the work waits for hello: a resume may be refused */
        c->recycling = 0;
        c->hello_pending = c->toklen > 0;
        if (!c->hello_pending)
            conn_fill(c);
        conn_flush(c);
        return;
    }
    while (c->asked < c->nids && c->asked < SETUP_WINDOW) {
        c->asked++;
        emit(c, K_SETUP, 0, 0, 0);
    }
    conn_flush(c);
}

static int pick_addr(const struct addrinfo *res, int port, struct sockaddr_storage *sa);

/* A leader named by its host name is resolved: connect to it; when it does
 * not resolve, try the next node of the list after the backoff, as when a
 * node refuses (a NOT_LEADER there leads here again: the run ends once no
 * node served the connection for FAILOVER_NS). */
static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct bconn *c = req->data;
    const struct opts *o = &c->w->b->o;
    int ok = status == 0 && pick_addr(res, c->leader.port, &c->leader.sa) == 0;
    uv_freeaddrinfo(res);
    if (c->closing)
        return;
    if (ok) {
        c->leader.resolved = 1;
        conn_connect(c);
        return;
    }
    c->leader.port = 0;
    c->target = (c->target + 1) % o->ntargets;
    c->level_ms = c->level_ms ? c->level_ms * 2 : BACKOFF_MIN;
    if (c->level_ms > BACKOFF_MAX)
        c->level_ms = BACKOFF_MAX;
    uv_timer_start(&c->backoff, on_backoff, c->level_ms, 0);
}

/* Start connecting to next_target() (a fresh handle). A leader named by
 * a host name is resolved first, off the loop (uv_getaddrinfo). */
static void conn_connect(struct bconn *c)
{
    struct worker *w = c->w;
    const struct opts *o = &w->b->o;
    const struct target *t = next_target(c);
    int rc;

    c->connecting = 1;
    c->creq.data = c;
    if (o->sock) {
        if ((rc = uv_pipe_init(&w->loop, &c->u.pipe, 0)) < 0)
            die("%s", uv_strerror(rc));
        c->u.h.data = c;
        c->stream_open = 1;
        uv_pipe_connect(&c->creq, &c->u.pipe, o->sock, on_connect);
        return;
    }
    if (!t->resolved) { /* only a leader hint can be: the command line's are */
        struct addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        c->gai.data = c;
        if ((rc = uv_getaddrinfo(&w->loop, &c->gai, on_resolved, t->host, NULL, &hints)) < 0)
            die("cannot resolve %s: %s", t->host, uv_strerror(rc));
        return;
    }
    if ((rc = uv_tcp_init(&w->loop, &c->u.tcp)) < 0)
        die("%s", uv_strerror(rc));
    c->u.h.data = c;
    c->stream_open = 1;
    if ((rc = uv_tcp_connect(&c->creq, &c->u.tcp, (const struct sockaddr *)&t->sa, on_connect)) < 0)
        die("cannot connect to %s:%d: %s", t->host, t->port, uv_strerror(rc));
}

/* "HOST:PORT", "tcp://HOST:PORT", "tls://HOST:PORT", "[V6]:PORT" or "HOST"
 * (port dflt; 0: one is needed) into t. 0 or -1. Whether a connection is
 * TLS is the run's setting (opts.tls), not the address's. */
static int parse_target(const char *s, int dflt, struct target *t)
{
    const char *colon, *h = s, *port = NULL;
    size_t n;
    if (strncmp(s, "tcp://", 6) == 0 || strncmp(s, "tls://", 6) == 0)
        h = s += 6;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || (close[1] && close[1] != ':'))
            return -1;
        h = s + 1;
        n = (size_t)(close - h);
        port = close[1] ? close + 2 : NULL;
    } else if ((colon = strchr(s, ':')) && colon == strrchr(s, ':')) { /* bare IPv6: no port */
        n = (size_t)(colon - s);
        port = colon + 1;
    } else {
        n = strlen(s);
    }
    if (n == 0 || n >= sizeof(t->host))
        return -1;
    memcpy(t->host, h, n);
    t->host[n] = '\0';
    if (port) {
        char *end;
        long v = strtol(port, &end, 10);
        if (*end || v < 1 || v > 65535)
            return -1;
        t->port = (int)v;
    } else {
        if (!dflt)
            return -1;
        t->port = dflt;
    }
    resolve_numeric(t);
    return 0;
}

/* The address of t if its host is numeric (no resolver involved). */
static void resolve_numeric(struct target *t)
{
    memset(&t->sa, 0, sizeof(t->sa));
    t->resolved = uv_ip4_addr(t->host, t->port, (struct sockaddr_in *)&t->sa) == 0 ||
                  uv_ip6_addr(t->host, t->port, (struct sockaddr_in6 *)&t->sa) == 0;
}

/* As rcstored picks a listen address: the first IPv4 address of res, else
 * its first IPv6 one; port set. 0, or -1 when res has neither. */
static int pick_addr(const struct addrinfo *res, int port, struct sockaddr_storage *sa)
{
    const struct addrinfo *ai, *pick = NULL;
    for (ai = res; ai && !pick; ai = ai->ai_next)
        if (ai->ai_family == AF_INET)
            pick = ai;
    for (ai = res; ai && !pick; ai = ai->ai_next)
        if (ai->ai_family == AF_INET6)
            pick = ai;
    if (!pick || pick->ai_addrlen > sizeof(*sa))
        return -1;
    memset(sa, 0, sizeof(*sa));
    memcpy(sa, pick->ai_addr, pick->ai_addrlen);
    if (sa->ss_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
    return 0;
}

/* Resolve the command line's host names now, with getaddrinfo, before any
 * loop runs (it blocks); a failure ends the run with the resolver's own
 * words. */
static void resolve_targets(struct opts *o)
{
    for (unsigned i = 0; i < o->ntargets; i++) {
        struct target *t = &o->targets[i];
        struct addrinfo hints, *res;
        int rc;
        if (t->resolved)
            continue;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        if ((rc = getaddrinfo(t->host, NULL, &hints, &res)) != 0)
            die("cannot resolve %s: %s", t->host,
                rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        if (pick_addr(res, t->port, &t->sa) < 0) {
            freeaddrinfo(res);
            die("cannot resolve %s: no IPv4 or IPv6 address", t->host);
        }
        freeaddrinfo(res);
        t->resolved = 1;
    }
}

/* ---- workers ---- */

static const char *label(const struct bench *b)
{
    return test_defs[b->test].label;
}

static void on_progress(uv_timer_t *t)
{
    struct worker *w = t->data;
    struct bench *b = w->b;
    double secs = (double)(uv_hrtime() - w->start) / 1e9;
    uint64_t done = atomic_load_explicit(&b->completed, memory_order_relaxed);
    if (secs > 0)
        printf("\r%s: rps=%.1f, %" PRIu64 " requests, avg_msec=%.3f    ", label(b),
               (double)done / secs, done, hist_mean(&w->hist) / 1e6);
    fflush(stdout);
}

/* Every connection of this worker is set up: wait for the other workers,
 * then start the clock and the load. */
static void worker_begin(struct worker *w)
{
    struct bench *b = w->b;
    uint64_t none = 0;
    uv_barrier_wait(&b->barrier);
    w->start = w->end = uv_hrtime();
    if (b->o.duration > 0) /* the first worker to start sets the deadline */
        atomic_compare_exchange_strong(&b->deadline, &none,
                                       w->start + (uint64_t)(b->o.duration * 1e9));
    if (w->has_progress) {
        uv_timer_start(&w->progress, on_progress, 250, 250);
    }
    for (unsigned i = 0; i < w->nconns; i++) {
        conn_fill(&w->conns[i]);
        conn_flush(&w->conns[i]);
    }
}

static void conn_init(struct worker *w, struct bconn *c, unsigned nids, unsigned nkeep,
                      uint64_t seed)
{
    const struct opts *o = &w->b->o;

    c->w = w;
    /* -k 0: the tests whose work spans connections keep one session */
    c->lease =
        !o->keepalive && w->b->test != T_PING && w->b->test != T_CHURN && w->b->test != T_CYCLE;
    c->rcap = 2 * o->pipeline + 8 + (nids < SETUP_WINDOW ? nids : SETUP_WINDOW);
    c->ring = xmalloc(c->rcap * sizeof(*c->ring));
    c->pcap = 4 * o->pipeline + 8;
    c->pend = xmalloc(c->pcap * sizeof(*c->pend));
    c->nids = nids;
    c->ids = xmalloc((nids ? nids : 1) * sizeof(*c->ids));
    c->nkeep = nkeep;
    c->keep = xmalloc(nkeep * sizeof(*c->keep));
    c->extra = xmalloc((nids ? nids : 1) * sizeof(*c->extra));
    c->links = xmalloc((nids ? nids : 1) * sizeof(*c->links));
    c->ocap = c->wcap = (size_t)o->pipeline * 2 * (WIRE_MAX_HEAD + o->datasize) + 8192;
    c->out = xmalloc(c->ocap);
    c->wout = xmalloc(c->wcap);
    c->icap = 65536;
    c->in = xmalloc(c->icap);
    c->rng = seed | 1;
    rpc_scan_init(&c->scan,
                  &(struct rpc_scan_limits){(size_t)1 << 31, 1u << 30, RPC_SCAN_MAX_DEPTH, 0});
    uv_timer_init(&w->loop, &c->backoff);
    c->backoff.data = c;
    c->target = 0; /* every connection starts at the first node */
    conn_connect(c);
}

static void conn_free(struct bconn *c)
{
    free(c->ring);
    free(c->pend);
    free(c->ids);
    free(c->keep);
    free(c->extra);
    free(c->links);
    free(c->out);
    free(c->wout);
    free(c->in);
}

static void worker_main(void *arg)
{
    struct worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

/* ---- one test ---- */

struct result {
    uint64_t requests, errors, reconnects, lost;
    double seconds;
    struct hist hist;
};

static int needs_objects(const struct opts *o, enum test_id t)
{
    if (t != T_MIXED)
        return test_defs[t].needs_objects;
    for (int i = 0; i < T_MIXED; i++)
        if (o->weights[i] && test_defs[i].needs_objects)
            return 1;
    return 0;
}

static void run_test(struct bench *b, enum test_id t, struct result *res)
{
    const struct opts *o = &b->o;
    unsigned nthreads = o->threads < o->clients ? o->threads : o->clients;
    struct worker *ws = xmalloc(nthreads * sizeof(*ws));
    uint64_t per_conn = o->keyspace / o->clients, first = UINT64_MAX, last = 0;
    unsigned next = 0;

    if (per_conn == 0)
        per_conn = 1;
    b->test = t;
    atomic_store(&b->tickets, 0);
    atomic_store(&b->completed, 0);
    atomic_store(&b->deadline, 0);
    uv_barrier_init(&b->barrier, nthreads);
    for (unsigned i = 0; i < nthreads; i++) {
        struct worker *w = &ws[i];
        int rc;
        w->b = b;
        hist_init(&w->hist);
        if ((rc = uv_loop_init(&w->loop)) < 0)
            die("%s", uv_strerror(rc));
        w->nconns = o->clients / nthreads + (i < o->clients % nthreads);
        w->rbuf = o->tls ? xmalloc(65536) : NULL;
        w->conns = xmalloc(w->nconns * sizeof(*w->conns));
        w->has_progress = i == 0 && !o->csv && !o->json && isatty(STDOUT_FILENO);
        if (w->has_progress) {
            uv_timer_init(&w->loop, &w->progress);
            w->progress.data = w;
        }
        for (unsigned j = 0; j < w->nconns; j++, next++)
            conn_init(w, &w->conns[j], needs_objects(o, t) ? (unsigned)per_conn : 0,
                      (unsigned)per_conn, 0x9e3779b97f4a7c15ull * (next + 1));
    }
    for (unsigned i = 0; i < nthreads; i++)
        if (uv_thread_create(&ws[i].tid, worker_main, &ws[i]) < 0)
            die("cannot start a thread");
    for (unsigned i = 0; i < nthreads; i++)
        uv_thread_join(&ws[i].tid);
    if (ws[0].has_progress)
        printf("\r%*s\r", 78, "");
    hist_init(&res->hist);
    res->requests = res->errors = res->reconnects = res->lost = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        struct worker *w = &ws[i];
        hist_add(&res->hist, &w->hist);
        res->requests += w->completed;
        res->errors += w->errors;
        res->reconnects += w->reconnects;
        res->lost += w->lost;
        if (w->start < first)
            first = w->start;
        if (w->end > last)
            last = w->end;
        for (unsigned j = 0; j < w->nconns; j++)
            conn_free(&w->conns[j]);
        free(w->conns);
        free(w->rbuf);
        uv_loop_close(&w->loop);
    }
    res->seconds = last > first ? (double)(last - first) / 1e9 : 0;
    uv_barrier_destroy(&b->barrier);
    free(ws);
}

/* ---- reports ---- */

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static double rps(const struct result *r)
{
    return r->seconds > 0 ? (double)r->requests / r->seconds : 0;
}

static void report(const struct bench *b, enum test_id t, const struct result *r, int *first)
{
    const struct opts *o = &b->o;
    const struct hist *h = &r->hist;
    const char *lbl = test_defs[t].label;
    int pr = o->precision; /* --precision: every latency figure, in every format */
    double avg = hist_mean(h) / 1e6, min = ms(hist_percentile(h, 0)),
           p50 = ms(hist_percentile(h, 50)), p90 = ms(hist_percentile(h, 90)),
           p95 = ms(hist_percentile(h, 95)), p99 = ms(hist_percentile(h, 99)),
           p999 = ms(hist_percentile(h, 99.9)), max = ms(h->max);

    if (o->csv) {
        if (*first)
            printf("\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\","
                   "\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n");
        printf("\"%s\",\"%.2f\",\"%.*f\",\"%.*f\",\"%.*f\",\"%.*f\",\"%.*f\",\"%.*f\"\n", lbl,
               rps(r), pr, avg, pr, min, pr, p50, pr, p95, pr, p99, pr, max);
    } else if (o->json) {
        printf("%s\n  {\"test\": \"%s\", \"requests\": %" PRIu64 ", \"errors\": %" PRIu64
               ", \"reconnects\": %" PRIu64 ", \"lost\": %" PRIu64
               ", \"seconds\": %.3f, \"rps\": %.2f, \"clients\": %u, \"pipeline\": %u, "
               "\"threads\": %u, \"data_bytes\": %u, \"keepalive\": %d,\n   \"latency_ms\": "
               "{\"avg\": %.*f, \"min\": %.*f, \"p50\": %.*f, \"p90\": %.*f, \"p95\": %.*f, "
               "\"p99\": %.*f, \"p99.9\": %.*f, \"max\": %.*f}}",
               *first ? "[" : ",", test_defs[t].name, r->requests, r->errors, r->reconnects,
               r->lost, r->seconds, rps(r), o->clients, o->pipeline, o->threads, o->datasize,
               o->keepalive, pr, avg, pr, min, pr, p50, pr, p90, pr, p95, pr, p99, pr, p999, pr,
               max);
    } else if (o->quiet) {
        printf("%s: %.2f requests per second, p50=%.*f msec%s\n", lbl, rps(r), pr, p50,
               r->errors || r->lost ? " (with errors)" : "");
    } else {
        int wd = pr + 6 > 9 ? pr + 6 : 9;
        printf("====== %s ======\n", lbl);
        printf("  %" PRIu64 " requests completed in %.2f seconds\n", r->requests, r->seconds);
        printf("  %u parallel clients, pipeline %u, %u thread(s)\n", o->clients, o->pipeline,
               o->threads);
        printf("  %u bytes payload\n", o->datasize);
        printf("  keep alive: %d\n", o->keepalive);
        if (r->errors)
            printf("  %" PRIu64 " requests answered with an error\n", r->errors);
        if (r->reconnects || r->lost)
            printf("  %" PRIu64 " reconnects; %" PRIu64 " failed requests (%" PRIu64
                   " answered with an error, %" PRIu64 " lost with their connection)\n",
                   r->reconnects, r->errors + r->lost, r->errors, r->lost);
        printf("\n  throughput summary: %.2f requests per second\n", rps(r));
        printf("  latency summary (msec):\n");
        printf("  %*s %*s %*s %*s %*s %*s %*s\n", wd, "avg", wd, "min", wd, "p50", wd, "p90", wd,
               "p99", wd, "p99.9", wd, "max");
        printf("  %*.*f %*.*f %*.*f %*.*f %*.*f %*.*f %*.*f\n\n", wd, pr, avg, wd, pr, min, wd, pr,
               p50, wd, pr, p90, wd, pr, p99, wd, pr, p999, wd, pr, max);
    }
    *first = 0;
    fflush(stdout);
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: rcstore-bench [OPTIONS]\n"
            "Load generator for rcstored.\n\n"
            "  -h HOST           server host name or address (default 127.0.0.1); a name\n"
            "                    is resolved once, its first IPv4 address (else IPv6)\n"
            "  -p PORT           server port (default 7373)\n"
            "  -H HOST:PORT,...  a cluster's nodes (PORT defaults to -p): each\n"
            "                    connection follows NOT_LEADER and reconnects after a\n"
            "                    lost connection; reconnects and lost requests are\n"
            "                    reported\n"
            "  -s SOCKET         unix socket path (overrides -h and -p)\n"
            "  -c CLIENTS        parallel connections (default 50)\n"
            "  -n REQUESTS       requests per test (default 100000)\n"
            "  --duration SECS   run each test this long instead (with -n: whichever ends "
            "first)\n"
            "  -P DEPTH          requests in flight per connection (default 1)\n"
            "  -k 1|0            1: keep connections open (default); 0: a new connection\n"
            "                    (and hello) for every -P requests, as redis-benchmark's -k 0\n"
            "  -d BYTES          data size of created objects (default 16)\n"
            "  -r KEYSPACE       distinct objects a test works on, split between "
            "connections\n"
            "                    (default 10000)\n"
            "  -t TESTS          comma-separated: ping,create,get,incref,decref,link,churn,\n"
            "                    cycle,mixed (default: all but mixed)\n"
            "  --mix SPEC        the mixed test's ratio, e.g. get:8,incref:1,churn:1\n"
            "                    (default get:80,incref:10,create:5,churn:5)\n"
            "  --threads N       threads, one event loop each (default 1)\n"
            "  --auth-file PATH  authenticate with the token in PATH (or set\n"
            "                    RCSTORE_AUTH_FILE); the file must be mode 0600 or 0400\n"
            "  -a TOKEN          authenticate with TOKEN (beats RCSTORE_AUTH_FILE; others\n"
            "                    on this host may see it: --auth-file is the safe way)\n"
            "  --user NAME       log in as this user of the server's --users-file, with\n"
            "                    the token of --auth-file or -a (or set RCSTORE_USER)\n"
            "  --tls             every TCP connection over TLS (so does any option below,\n"
            "                    or a tls:// item in -H)\n"
            "  --cacert PATH     CA certificates (PEM) that may sign the server's (or\n"
            "                    RCSTORE_CACERT; default: the system's store)\n"
            "  --cert PATH --key PATH  a client certificate and its key (or RCSTORE_CERT,\n"
            "                    RCSTORE_KEY)\n"
            "  --sni NAME        the name the server's certificate must carry (default:\n"
            "                    the host: a name among its DNS names, an address among\n"
            "                    its IP addresses)\n"
            "  --insecure        do not verify the server's certificate (testing)\n"
            "  -q                quiet: one line per test\n"
            "  --precision N     decimal places of latency figures, 0 to 9 (default 3)\n"
            "  --csv             CSV with redis-benchmark's columns\n"
            "  --json            a JSON array, one object per test\n"
            "  --help            this text\n"
            "  -V, --version     print the version\n\n"
            "Tests: create keeps at most KEYSPACE/CLIENTS objects per connection and\n"
            "decrefs the oldest beyond that (not counted); incref and decref give back or\n"
            "take their holds %d at a time (not counted); churn counts a create and its\n"
            "decref; cycle counts 5 requests per 2-cycle (create a, create b -> a,\n"
            "link a b, decref a, decref b).\n",
            HOLD_BATCH);
}

static unsigned long long number(const char *flag, const char *s, unsigned long long lo,
                                 unsigned long long hi)
{
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
        usage_error("%s takes a number from %llu to %llu, not \"%s\"", flag, lo, hi, s);
    return v;
}

static int test_by_name(const char *s, size_t len)
{
    for (int t = 0; t < T_N; t++)
        if (strlen(test_defs[t].name) == len && strncasecmp(test_defs[t].name, s, len) == 0)
            return t;
    return -1;
}

static void parse_mix(struct opts *o)
{
    const char *p = o->mix;
    memset(o->weights, 0, sizeof(o->weights));
    o->weight_sum = 0;
    while (*p) {
        const char *colon = strchr(p, ':'), *comma;
        char num[16];
        int t;
        size_t n;
        if (!colon)
            usage_error("--mix takes name:weight pairs, e.g. get:8,incref:1");
        t = test_by_name(p, (size_t)(colon - p));
        if (t < 0 || t == T_MIXED)
            usage_error("--mix: unknown test \"%.*s\"", (int)(colon - p), p);
        comma = strchr(colon, ',');
        n = comma ? (size_t)(comma - colon - 1) : strlen(colon + 1);
        if (n == 0 || n >= sizeof(num))
            usage_error("--mix: a weight is missing after \"%.*s\"", (int)(colon - p), p);
        memcpy(num, colon + 1, n);
        num[n] = '\0';
        o->weights[t] = (unsigned)number("--mix", num, 0, 1000000);
        o->weight_sum += o->weights[t];
        p = comma ? comma + 1 : colon + 1 + n;
    }
    if (o->weight_sum == 0)
        usage_error("--mix: the weights add up to 0");
}

/* The token of --auth-file or RCSTORE_AUTH_FILE (common/secret: private to
 * its owner, trailing newlines dropped, at most SECRET_MAX_BYTES). */
static void load_auth(struct opts *o)
{
    char err[512];
    size_t n;
    if (!o->auth_file)
        return;
    if (secret_read_file(o->auth_file, o->auth, sizeof(o->auth), &n, err, sizeof(err)) < 0)
        die("--auth-file %s", err);
}

/* -H's comma-separated list (items without a port take -p's), else -h
 * and -p: the nodes a connection may use, in order. */
static void parse_targets(struct opts *o)
{
    const char *p = o->hosts;
    unsigned n = 1;
    if (!p) { /* -h: a host alone (an IPv6 address with or without brackets) */
        const char *h = o->host;
        size_t len = strlen(h);
        struct target *t = o->targets = xmalloc(sizeof(*o->targets));
        o->ntargets = 1;
        if (len > 2 && h[0] == '[' && h[len - 1] == ']')
            h++, len -= 2;
        if (len == 0 || len >= sizeof(t->host))
            usage_error("-h takes a host name or address, not \"%s\"", o->host);
        memcpy(t->host, h, len);
        t->host[len] = '\0';
        t->port = o->port;
        resolve_numeric(t);
        return;
    }
    for (const char *q = p; *q; q++)
        n += *q == ',';
    o->targets = xmalloc(n * sizeof(*o->targets));
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[sizeof(o->targets[0].host) + 16];
        if (len == 0 || len >= sizeof(item))
            usage_error("-H takes HOST:PORT items separated by commas, not \"%s\"", o->hosts);
        memcpy(item, p, len);
        item[len] = '\0';
        if (parse_target(item, o->port, &o->targets[o->ntargets++]) < 0)
            usage_error("-H: \"%s\" is not HOST:PORT", item);
        if (!comma)
            break;
        p = comma + 1;
    }
}

enum {
    OPT_DURATION = 256,
    OPT_CSV,
    OPT_JSON,
    OPT_THREADS,
    OPT_MIX,
    OPT_AUTH,
    OPT_USER,
    OPT_PRECISION,
    OPT_HELP,
    OPT_TLS,
    OPT_CACERT,
    OPT_CERT,
    OPT_KEY,
    OPT_SNI,
    OPT_INSECURE /* the TLS options from OPT_TLS to here, in tls_opt_names's order */
};

static const char *const tls_opt_names[] = {"--tls", "--cacert", "--cert",
                                            "--key", "--sni",    "--insecure"};

/* Whether every item of -H is an explicit tcp:// (a plaintext run). */
static int hosts_plaintext(const char *hosts)
{
    for (const char *p = hosts; *p;) {
        size_t n = strcspn(p, ",");
        if (!(n > 6 && strncmp(p, "tcp://", 6) == 0))
            return 0;
        p += n + (p[n] == ',');
    }
    return 1;
}

/* The run's TLS context, if TLS is asked for: by an option or a tls:// item
 * of -H (then no item may say tcp://: a run is all TLS or all plaintext).
 * A unix socket (-s) or a -H of only tcp:// items is plaintext whatever the
 * options say: one warning line if the command line gave TLS options (the
 * environment's RCSTORE_CACERT, ... are ignored quietly). */
static void setup_tls(struct opts *o)
{
    char err[512];
    int rc;
    if (o->sock || (o->hosts && hosts_plaintext(o->hosts))) {
        char names[128] = "";
        size_t len = 0;
        int n = 0;
        for (unsigned i = 0; i < sizeof(tls_opt_names) / sizeof(tls_opt_names[0]); i++) {
            if (o->tls_flags & (1u << i))
                len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", n++ ? "/" : "",
                                        tls_opt_names[i]);
        }
        if (n > 0)
            fprintf(stderr, "rcstore-bench: warning: %s appl%s only to TLS; %s%s is plaintext\n",
                    names, n > 1 ? "y" : "ies", o->sock ? "unix://" : "",
                    o->sock ? o->sock : o->hosts);
        o->tls = 0;
        return;
    }
    if (o->hosts && strstr(o->hosts, "tls://")) {
        if (strstr(o->hosts, "tcp://"))
            usage_error("-H mixes tls:// and tcp:// items: a run is all TLS or all plaintext");
        o->tls = 1;
    }
    o->tls |= o->ca || o->cert || o->key || o->sni || o->insecure;
    if (!o->tls)
        return;
    if ((rc = tlsctx_client(o->ca, o->cert, o->key, o->insecure, &o->tls_ctx, err, sizeof(err))) <
        0)
        die("TLS: %s", err);
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"duration", required_argument, NULL, OPT_DURATION},
        {"csv", no_argument, NULL, OPT_CSV},
        {"json", no_argument, NULL, OPT_JSON},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"mix", required_argument, NULL, OPT_MIX},
        {"auth-file", required_argument, NULL, OPT_AUTH},
        {"user", required_argument, NULL, OPT_USER},
        {"precision", required_argument, NULL, OPT_PRECISION},
        {"tls", no_argument, NULL, OPT_TLS},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"cert", required_argument, NULL, OPT_CERT},
        {"key", required_argument, NULL, OPT_KEY},
        {"sni", required_argument, NULL, OPT_SNI},
        {"insecure", no_argument, NULL, OPT_INSECURE},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct bench b;
    struct opts *o = &b.o;
    int ch, have_n = 0, first = 1, selected[T_N] = {0}, auth_flag = 0;
    const char *token_arg = NULL;
    char *end;

    memset(&b, 0, sizeof(b));
    o->host = "127.0.0.1";
    o->port = 7373;
    o->clients = 50;
    o->requests = 100000;
    o->pipeline = 1;
    o->threads = 1;
    o->datasize = 16;
    o->keyspace = 10000;
    o->mix = "get:80,incref:10,create:5,churn:5";
    o->tests = "ping,create,get,incref,decref,link,churn,cycle";
    o->auth_file = getenv("RCSTORE_AUTH_FILE"); /* as the CLI: --auth-file beats it */
    o->user = getenv("RCSTORE_USER");
    o->ca = getenv("RCSTORE_CACERT");
    o->cert = getenv("RCSTORE_CERT");
    o->key = getenv("RCSTORE_KEY");
    o->keepalive = 1;
    o->precision = 3;
    opterr = 0; /* usage_error says it, in one line and a hint */
    while ((ch = getopt_long(argc, argv, ":h:H:p:s:a:c:n:P:d:r:t:k:qV", longs, NULL)) != -1) {
        if (ch >= OPT_TLS && ch <= OPT_INSECURE)
            o->tls_flags |= 1u << (ch - OPT_TLS);
        switch (ch) {
        case 'h':
            /* "-h -p 7373": a host never starts with '-'; -h is not --help */
            if (optarg[0] == '-')
                usage_error("option -h needs a host (the help is --help)");
            o->host = optarg;
            break;
        case 'a':
            token_arg = optarg;
            break;
        case 'k':
            o->keepalive = (int)number("-k", optarg, 0, 1);
            break;
        case OPT_PRECISION:
            o->precision = (int)number("--precision", optarg, 0, 9);
            break;
        case 'H':
            o->hosts = optarg;
            break;
        case 'p':
            o->port = (int)number("-p", optarg, 1, 65535);
            break;
        case 's':
            o->sock = optarg;
            break;
        case 'c':
            o->clients = (unsigned)number("-c", optarg, 1, 100000);
            break;
        case 'n':
            o->requests = number("-n", optarg, 1, UINT64_MAX / 2);
            have_n = 1;
            break;
        case 'P':
            o->pipeline = (unsigned)number("-P", optarg, 1, 100000);
            break;
        case 'd':
            o->datasize = (unsigned)number("-d", optarg, 0, 64u << 20);
            break;
        case 'r':
            o->keyspace = number("-r", optarg, 1, 1u << 30);
            break;
        case 't':
            o->tests = optarg;
            break;
        case 'q':
            o->quiet = 1;
            break;
        case 'V':
            printf("rcstore-bench %s\n", RCS_VERSION);
            return 0;
        case OPT_DURATION:
            o->duration = strtod(optarg, &end);
            if (*end || !(o->duration > 0 && o->duration < 1e7))
                usage_error("--duration takes a positive number of seconds, not \"%s\"", optarg);
            break;
        case OPT_CSV:
            o->csv = 1;
            break;
        case OPT_JSON:
            o->json = 1;
            break;
        case OPT_THREADS:
            o->threads = (unsigned)number("--threads", optarg, 1, 256);
            break;
        case OPT_MIX:
            o->mix = optarg;
            break;
        case OPT_AUTH:
            o->auth_file = optarg;
            auth_flag = 1;
            break;
        case OPT_USER:
            o->user = optarg;
            break;
        case OPT_TLS:
            o->tls = 1;
            break;
        case OPT_CACERT:
            o->ca = optarg;
            break;
        case OPT_CERT:
            o->cert = optarg;
            break;
        case OPT_KEY:
            o->key = optarg;
            break;
        case OPT_SNI:
            o->sni = optarg;
            break;
        case OPT_INSECURE:
            o->insecure = 1;
            break;
        case OPT_HELP:
            usage(stdout);
            return 0;
        case ':':
            if (optopt == 'h')
                usage_error("option -h needs a host (the help is --help)");
            usage_error("option %s needs a value", argv[optind - 1]);
        default:
            if (optopt && optopt < 256)
                usage_error("unknown option -%c", optopt);
            usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument \"%s\"", argv[optind]);
    if (o->csv && o->json)
        usage_error("--csv and --json exclude each other");
    if (o->duration > 0 && !have_n)
        o->requests = UINT64_MAX;
    parse_mix(o);
    if (o->user && !*o->user)
        o->user = NULL; /* RCSTORE_USER= set empty: none */
    if (token_arg) {    /* -a beats RCSTORE_AUTH_FILE, as redis-cli's beats REDISCLI_AUTH */
        size_t n = strlen(token_arg);
        if (auth_flag)
            usage_error("-a and --auth-file exclude each other");
        if (n == 0 || n > SECRET_MAX_BYTES)
            usage_error("-a takes a token of 1 to %d bytes", SECRET_MAX_BYTES);
        fprintf(stderr, "rcstore-bench: warning: a token on the command line (-a) may be seen by "
                        "other users of this host; --auth-file is the safe way\n");
        memcpy(o->auth, token_arg, n + 1);
        o->auth_file = NULL;
    }
    if (o->user && (strlen(o->user) > BENCH_USER_MAX || !(o->auth_file || token_arg)))
        usage_error("--user wants a name of at most %d bytes and a token (--auth-file, "
                    "RCSTORE_AUTH_FILE or -a)",
                    BENCH_USER_MAX);
    load_auth(o);
    parse_targets(o);
    if (!o->sock)
        resolve_targets(o);
    setup_tls(o);
    for (const char *p = o->tests; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        int t = test_by_name(p, n);
        if (t < 0)
            usage_error("unknown test \"%.*s\" (the tests: ping, create, get, incref, decref, "
                        "link, churn, cycle, mixed)",
                        (int)n, p);
        selected[t] = 1;
        p += n + (comma != NULL);
    }
    b.payload = xmalloc(o->datasize ? o->datasize : 1);
    memset(b.payload, 'x', o->datasize);
    b.limit = o->requests;
    for (int t = 0; t < T_N; t++) {
        struct result r;
        if (!selected[t])
            continue;
        b.test = (enum test_id)t;
        run_test(&b, (enum test_id)t, &r);
        report(&b, (enum test_id)t, &r, &first);
    }
    if (o->json && !first)
        printf("\n]\n");
    free(b.payload);
    free(o->targets);
    SSL_CTX_free(o->tls_ctx);
    return 0;
}
