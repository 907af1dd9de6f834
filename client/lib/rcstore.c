/* librcstore: blocking msgpack-RPC client for rcstored (see rcstore.h).
 * Requests are packed into an output buffer and written on flush; while
 * writing, replies already arriving are read into the input buffer so a deep
 * pipeline can never deadlock against a server that is also writing. Frames
 * are found with the protocol library's scanner, decoded with msgpack-c and
 * copied into caller-owned rcs_value trees. A client knows a list of
 * addresses: it follows a cluster's NOT_LEADER and reconnects after a lost
 * connection, replaying its session's hello (see "failover" below). A tls://
 * address runs the same bytes through OpenSSL on the socket ("TLS" below):
 * the socket is non-blocking then, and every wait is the same poll. */
#include "rcstore.h"

#include "buf.h"
#include "err.h"
#include "rpc_msg.h"
#include "rpc_pack.h"
#include "rpc_scan.h"
#include "tlsctx.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

_Static_assert(RCS_EBAD_REQUEST == RPC_EBAD_REQUEST, "client and protocol codes differ");
_Static_assert(RCS_EINTERNAL == RPC_EINTERNAL, "client and protocol codes differ");
_Static_assert(RCS_ENOT_HELD == RPC_ENOT_HELD, "client and protocol codes differ");
_Static_assert(RCS_EPERSISTENCE_FAILED == RPC_EPERSISTENCE_FAILED,
               "client and protocol codes differ");
_Static_assert(RCS_ENOT_LEADER == RPC_ENOT_LEADER, "client and protocol codes differ");
_Static_assert(RCS_EPERMISSION_DENIED == RPC_EPERMISSION_DENIED,
               "client and protocol codes differ");

struct note {
    struct note *next;
    size_t bytes; /* its frame's length, counted against the queue's cap */
    rcs_notification n;
};

struct rcs_client {
    int fd;   /* -1 while disconnected */
    SSL *ssl; /* the connection's TLS, or NULL for plaintext */
    int timeout_ms;
    int failover_ms;
    uint32_t next_msgid; /* msgid of the next request queued */
    uint32_t expect;     /* msgid of the oldest reply owed by this connection */
    /* Requests older than all of the connection's, whose connection was lost:
     * rcs_recv answers them with lost_err first. */
    size_t lost;
    int lost_err;
    char lost_msg[448];

    /* Failover: the list, where the next reconnect goes, and why. */
    char **addrs;
    size_t naddrs;
    size_t next_addr; /* index of the address tried after the current one */
    char *addr;       /* the address connected to (or last tried); owned */
    char *leader;     /* the leader a NOT_LEADER named, tried first; owned or NULL */
    int follow;       /* reconnect before the next request */
    int no_leader;    /* the last NOT_LEADER named none: back off before moving */
    unsigned backoff; /* ms, the current wait between attempts while no leader is known */
    uint64_t reconnects;

    /* What a reconnect replays: the last successful hello's auth and
     * client name, and the lease's token (lease_ttl 0: no lease). */
    char *auth;
    size_t auth_len;
    char *user; /* rcs_set_auth's user, sent with every hello's auth; or NULL */
    char *client_name;
    uint8_t lease_token[64];
    size_t lease_token_len;
    uint64_t lease_ttl;
    /* The server's max_data_bytes, from a hello on this connection (0: no
     * hello told it yet): larger data is refused before it is sent. */
    uint64_t max_data_bytes;

    /* The blocking call in progress: its request after the msgid, to send
     * again on the leader after NOT_LEADER, and when it gives up. */
    struct buf call;
    int in_call;
    uint64_t call_deadline_ns;

    struct buf out; /* requests not yet written */
    struct buf in;  /* bytes read, not yet consumed */
    struct rpc_scan scan;
    struct rpc_decoder dec;
    struct note *notes, *notes_tail;
    size_t nnotes, notes_bytes; /* queued, capped by RCS_MAX_QUEUED_NOTIFICATIONS/_BYTES */
    char errmsg[512];

    /* TLS: the context (made at rcs_connect_tls from its options, or with
     * the system's CA store at the first tls:// address), the socket BIO
     * method the connections use, and the options kept for the context. */
    SSL_CTX *tls_ctx;
    BIO_METHOD *tls_bio;
    char *tls_ca, *tls_cert, *tls_key, *tls_name;
    int tls_insecure;
    int tls_default;     /* rcs_connect_tls: HOST:PORT without a scheme is TLS */
    int tls_hints;       /* a leader hint is dialled over TLS, never in plaintext */
    int tls_read_writes; /* the last SSL_read waits for the socket to be writable */
    int tls_write_reads; /* the last SSL_write waits for it to be readable */
    char tls_err[400];   /* a failure seen after bytes that came before it */
};

/* ---- errors ---- */

static const char *const client_names[] = {"EIO",    "ECONNECT", "EPROTO",
                                           "ENOMEM", "EINVAL",   "ETIMEDOUT"};
static const char *const client_texts[] = {"connection failed or closed",
                                           "could not connect",
                                           "unexpected data from the server",
                                           "out of memory",
                                           "invalid argument",
                                           "timed out"};

static int client_index(int err)
{
    int i = RCS_EIO - err;
    return (i >= 0 && i <= RCS_EIO - RCS_ETIMEDOUT) ? i : -1;
}

const char *rcs_error_name(int err)
{
    int i = client_index(err);
    if (err == 0)
        return "OK";
    return i >= 0 ? client_names[i] : err_name(err);
}

const char *rcs_strerror(int err)
{
    int i = client_index(err);
    if (err == 0)
        return "success";
    return i >= 0 ? client_texts[i] : err_message(err);
}

static int set_error(rcs_client *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_error(rcs_client *c, int err, const char *fmt, ...)
{
    va_list ap;
    if (!fmt) {
        snprintf(c->errmsg, sizeof(c->errmsg), "%s", rcs_strerror(err));
        return err;
    }
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    return err;
}

const char *rcs_last_error(const rcs_client *c)
{
    return c->errmsg;
}

/* ---- values ---- */

static void value_clear(rcs_value *v)
{
    switch (v->type) {
    case RCS_STR:
    case RCS_BIN:
        free((void *)v->via.bytes.ptr);
        break;
    case RCS_ARRAY:
        for (size_t i = 0; i < v->via.array.len; i++)
            value_clear(&v->via.array.items[i]);
        free(v->via.array.items);
        break;
    case RCS_MAP:
        for (size_t i = 0; i < v->via.map.len; i++) {
            value_clear(&v->via.map.keys[i]);
            value_clear(&v->via.map.vals[i]);
        }
        free(v->via.map.keys);
        free(v->via.map.vals);
        break;
    default:
        break;
    }
    v->type = RCS_NIL;
}

void rcs_value_free(rcs_value *v)
{
    if (!v)
        return;
    value_clear(v);
    free(v);
}

/* Copy a msgpack tree (depth bounded by the scanner) into v. 0 or RCS_ENOMEM
 * with v left NIL. */
static int value_copy(rcs_value *v, const msgpack_object *o)
{
    memset(v, 0, sizeof(*v));
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        v->type = RCS_NIL;
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        v->type = RCS_BOOL;
        v->via.boolean = o->via.boolean;
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        v->type = RCS_UINT;
        v->via.u = o->via.u64;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        v->type = RCS_INT;
        v->via.i = o->via.i64;
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        v->type = RCS_FLOAT;
        v->via.f = o->via.f64;
        return 0;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN: {
        const char *p;
        uint32_t len;
        char *d;
        rpc_obj_bytes(o, &p, &len);
        d = malloc((size_t)len + 1);
        if (!d)
            return RCS_ENOMEM;
        memcpy(d, p, len);
        d[len] = '\0';
        v->type = o->type == MSGPACK_OBJECT_STR ? RCS_STR : RCS_BIN;
        v->via.bytes.ptr = d;
        v->via.bytes.len = len;
        return 0;
    }
    case MSGPACK_OBJECT_ARRAY: {
        uint32_t n = o->via.array.size;
        v->via.array.items = calloc(n ? n : 1, sizeof(rcs_value));
        if (!v->via.array.items)
            return RCS_ENOMEM;
        v->type = RCS_ARRAY;
        for (uint32_t i = 0; i < n; i++) {
            if (value_copy(&v->via.array.items[i], &o->via.array.ptr[i]) < 0) {
                value_clear(v);
                return RCS_ENOMEM;
            }
            v->via.array.len = i + 1;
        }
        return 0;
    }
    case MSGPACK_OBJECT_MAP: {
        uint32_t n = o->via.map.size;
        v->via.map.keys = calloc(n ? n : 1, sizeof(rcs_value));
        v->via.map.vals = calloc(n ? n : 1, sizeof(rcs_value));
        v->type = RCS_MAP;
        if (!v->via.map.keys || !v->via.map.vals) {
            value_clear(v);
            return RCS_ENOMEM;
        }
        for (uint32_t i = 0; i < n; i++) {
            v->via.map.len = i + 1;
            if (value_copy(&v->via.map.keys[i], &o->via.map.ptr[i].key) < 0 ||
                value_copy(&v->via.map.vals[i], &o->via.map.ptr[i].val) < 0) {
                value_clear(v);
                return RCS_ENOMEM;
            }
        }
        return 0;
    }
    default: /* ext: not used by rcstore */
        v->type = RCS_NIL;
        return 0;
    }
}

static int value_new(const msgpack_object *o, rcs_value **out)
{
    rcs_value *v = malloc(sizeof(*v));
    if (!v)
        return RCS_ENOMEM;
    if (value_copy(v, o) < 0) {
        free(v);
        return RCS_ENOMEM;
    }
    *out = v;
    return 0;
}

const rcs_value *rcs_map_get(const rcs_value *m, const char *key)
{
    size_t klen = strlen(key);
    if (!m || m->type != RCS_MAP)
        return NULL;
    for (size_t i = 0; i < m->via.map.len; i++) {
        const rcs_value *k = &m->via.map.keys[i];
        if (k->type == RCS_STR && k->via.bytes.len == klen &&
            memcmp(k->via.bytes.ptr, key, klen) == 0)
            return &m->via.map.vals[i];
    }
    return NULL;
}

uint64_t rcs_value_uint(const rcs_value *v, uint64_t dflt)
{
    return (v && v->type == RCS_UINT) ? v->via.u : dflt;
}

/* ---- connecting ---- */

static int connect_unix(const char *path)
{
    struct sockaddr_un sa;
    int fd;
    if (strlen(path) >= sizeof(sa.sun_path))
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* connect(), waiting at most timeout_ms (-1: as long as the kernel does):
 * a dead host must not hold a failover for the kernel's SYN timeout. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
    int flags, err = 0;
    socklen_t elen = sizeof(err);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (timeout_ms < 0)
        return connect(fd, sa, len);
    if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -1;
    if (connect(fd, sa, len) < 0) {
        int pr;
        if (errno != EINPROGRESS)
            return -1;
        while ((pr = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
            ;
        if (pr <= 0) {
            errno = pr == 0 ? ETIMEDOUT : errno;
            return -1;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
            return -1;
        if (err) {
            errno = err;
            return -1;
        }
    }
    return fcntl(fd, F_SETFL, flags);
}

/* "HOST:PORT" or "[V6]:PORT": host (brackets dropped) into host[256], and
 * where the port starts. 0 or -1 (errno EINVAL). */
static int split_hostport(const char *hostport, char *host, const char **port)
{
    const char *colon, *h = hostport;
    size_t n;
    if (hostport[0] == '[') {
        const char *close = strchr(hostport, ']');
        if (!close || close[1] != ':')
            goto bad;
        h = hostport + 1;
        n = (size_t)(close - h);
        *port = close + 2;
    } else {
        colon = strrchr(hostport, ':');
        if (!colon)
            goto bad;
        n = (size_t)(colon - hostport);
        *port = colon + 1;
    }
    if (n == 0 || n >= 256 || !**port)
        goto bad;
    memcpy(host, h, n);
    host[n] = '\0';
    return 0;
bad:
    errno = EINVAL;
    return -1;
}

/* Connect to HOSTPORT (the address a, for messages), resolving a host name
 * with getaddrinfo and trying each address it gives. A socket, or
 * RCS_ECONNECT with the message set: a resolver failure in the resolver's
 * words ("cannot resolve nohost: Name or service not known"; errno is then
 * EHOSTUNREACH, for callers that read it), else the last connect's errno. */
static int connect_tcp(rcs_client *c, const char *a, const char *hostport, int timeout_ms)
{
    char host[256];
    const char *port;
    struct addrinfo hints, *res, *ai;
    int fd = -1, one = 1, gai;

    if (split_hostport(hostport, host, &port) < 0)
        return set_error(c, RCS_ECONNECT, "cannot connect to %s: not HOST:PORT", a);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((gai = getaddrinfo(host, port, &hints, &res)) != 0) {
        const char *why = gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai);
        set_error(c, RCS_ECONNECT, "cannot resolve %s: %s", host, why);
        errno = EHOSTUNREACH;
        return RCS_ECONNECT;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect_within(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        int saved = errno;
        set_error(c, RCS_ECONNECT, "cannot connect to %s: %s", a, strerror(errno));
        errno = saved;
        return RCS_ECONNECT;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* With somewhere else to go, a node that does not answer a connect within
 * this long is passed over. */
#define CONNECT_TIMEOUT_MS 2000
/* A TLS handshake not finished within this long fails (when neither the
 * connect nor rcs_set_timeout gave a limit). */
#define HANDSHAKE_TIMEOUT_MS 10000

/* ---- TLS ----
 * OpenSSL reads and writes the socket through a BIO of our own rather than
 * its socket BIO, which writes with write(2): a server gone away would
 * raise SIGPIPE in the caller's process. Ours sends with MSG_NOSIGNAL, as
 * the plaintext path does. The socket is non-blocking; a call that would
 * block says which way it waits and the caller polls (with its timeout). */

static int bio_sock_write(BIO *b, const char *data, int len)
{
    ssize_t n;
    BIO_clear_retry_flags(b);
    n = send((int)(intptr_t)BIO_get_data(b), data, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)n;
}

static int bio_sock_read(BIO *b, char *data, int len)
{
    ssize_t n;
    BIO_clear_retry_flags(b);
    n = read((int)(intptr_t)BIO_get_data(b), data, (size_t)len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    return (int)n;
}

static long bio_sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_sock_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* Make the context from the options kept (or the system's store) and the
 * BIO method. 0, or RCS_EINVAL (a file: the message says which and why)
 * or RCS_ENOMEM. */
static int tls_setup(rcs_client *c)
{
    char why[400];
    int rc;
    if (!c->tls_bio) {
        c->tls_bio = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "rcstore socket");
        if (!c->tls_bio || !BIO_meth_set_write(c->tls_bio, bio_sock_write) ||
            !BIO_meth_set_read(c->tls_bio, bio_sock_read) ||
            !BIO_meth_set_ctrl(c->tls_bio, bio_sock_ctrl) ||
            !BIO_meth_set_create(c->tls_bio, bio_sock_create))
            return set_error(c, RCS_ENOMEM, NULL);
    }
    if (c->tls_ctx)
        return 0;
    rc = tlsctx_client(c->tls_ca, c->tls_cert, c->tls_key, c->tls_insecure, &c->tls_ctx, why,
                       sizeof(why));
    if (rc < 0)
        return set_error(c, rc == -ENOMEM ? RCS_ENOMEM : RCS_EINVAL, "TLS: %s", why);
    return 0;
}

/* Wait until fd can go the way the last TLS call (its SSL_get_error e)
 * wants, until deadline_ns. 1 ready, 0 timed out, -1 poll failed. */
static int tls_wait(int fd, int e, uint64_t deadline_ns);

static uint64_t now_ns(void);

/* Run the client side of a TLS handshake on fd (connected to addr, whose
 * host is host) within timeout_ms. 0 with *out, or RCS_EIO / RCS_ENOMEM /
 * RCS_EINVAL with the message set ("TLS: <reason> (addr)"). */
static int tls_open(rcs_client *c, int fd, const char *addr, const char *host, int timeout_ms,
                    SSL **out)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
    char why[400];
    BIO *bio;
    SSL *ssl;
    int rc, flags;

    if ((rc = tls_setup(c)) < 0)
        return rc;
    if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return set_error(c, RCS_ECONNECT, "cannot connect to %s: %s", addr, strerror(errno));
    if (!(ssl = SSL_new(c->tls_ctx)) || !(bio = BIO_new(c->tls_bio))) {
        SSL_free(ssl);
        return set_error(c, RCS_ENOMEM, NULL);
    }
    BIO_set_data(bio, (void *)(intptr_t)fd);
    SSL_set_bio(ssl, bio, bio);
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (tlsctx_set_peer(ssl, c->tls_name ? c->tls_name : host) < 0) {
        SSL_free(ssl);
        return set_error(c, RCS_ENOMEM, NULL);
    }
    for (;;) {
        int r, e;
        ERR_clear_error();
        errno = 0;
        if ((r = SSL_connect(ssl)) == 1)
            break;
        e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            int w = tls_wait(fd, e, deadline);
            if (w > 0)
                continue;
            if (w == 0)
                snprintf(why, sizeof(why), "the handshake did not finish within %d ms", timeout_ms);
            else
                snprintf(why, sizeof(why), "poll: %s", strerror(errno));
        } else {
            tlsctx_error(ssl, e, 1, why, sizeof(why));
        }
        SSL_free(ssl);
        ERR_clear_error();
        errno = EPROTO; /* for rcs_connect's callers that read errno */
        return set_error(c, RCS_EIO, "TLS: %s (%s)", why, addr);
    }
    *out = ssl;
    return 0;
}

static int tls_wait(int fd, int e, uint64_t deadline_ns)
{
    struct pollfd p = {.fd = fd, .events = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN};
    for (;;) {
        uint64_t now = now_ns();
        int pr;
        if (now >= deadline_ns)
            return 0;
        pr = poll(&p, 1, (int)((deadline_ns - now) / 1000000u) + 1);
        if (pr < 0 && errno == EINTR)
            continue;
        return pr < 0 ? -1 : pr > 0 ? 1 : 0;
    }
}

/* Open one address of the forms rcs_connect takes, a TCP connect (and a
 * TLS handshake) waiting at most timeout_ms (-1: no limit for the connect;
 * the handshake then takes rcs_set_timeout's, else HANDSHAKE_TIMEOUT_MS).
 * Returns a socket, with *ssl its TLS or NULL, or a negative code with the
 * message set: RCS_ECONNECT (errno says why), RCS_EIO (the handshake),
 * RCS_EINVAL (the TLS options), RCS_ENOMEM. */
static int open_address(rcs_client *c, const char *a, int timeout_ms, SSL **ssl)
{
    const char *hp = a, *port;
    char host[256];
    int fd, tls = c->tls_default, rc;

    *ssl = NULL;
    if (strncmp(a, "unix://", 7) == 0 || a[0] == '/') {
        fd = connect_unix(a[0] == '/' ? a : a + 7);
        if (fd < 0)
            return set_error(c, RCS_ECONNECT, "cannot connect to %s: %s", a, strerror(errno));
        return fd;
    }
    if (strncmp(a, "tcp://", 6) == 0) {
        hp = a + 6;
        tls = 0;
    } else if (strncmp(a, "tls://", 6) == 0) {
        hp = a + 6;
        tls = 1;
    }
    if ((fd = connect_tcp(c, a, hp, timeout_ms)) < 0)
        return fd;
    if (!tls)
        return fd;
    split_hostport(hp, host, &port); /* connect_tcp parsed it already */
    if (timeout_ms < 0)
        timeout_ms = c->timeout_ms >= 0 ? c->timeout_ms : HANDSHAKE_TIMEOUT_MS;
    if ((rc = tls_open(c, fd, a, host, timeout_ms, ssl)) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return rc;
    }
    return fd;
}

/* Close the connection's TLS (clean: say goodbye with a close_notify, if
 * the socket takes it at once) and its socket. */
static void close_conn(rcs_client *c, int clean)
{
    if (c->ssl) {
        if (clean)
            SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->tls_read_writes = c->tls_write_reads = 0;
    c->tls_err[0] = '\0';
}

/* Split a comma-separated list (blanks around items allowed) into c->addrs.
 * 0, RCS_EINVAL (an empty item) or RCS_ENOMEM. */
static int parse_list(rcs_client *c, const char *list)
{
    size_t n = 1;
    const char *p = list;
    for (const char *q = list; *q; q++)
        n += *q == ',';
    if (!(c->addrs = calloc(n, sizeof(char *))))
        return RCS_ENOMEM;
    for (;;) {
        const char *end = strchr(p, ','), *a = p, *b;
        if (!end)
            end = p + strlen(p);
        b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a == b)
            return RCS_EINVAL;
        if (!(c->addrs[c->naddrs++] = strndup(a, (size_t)(b - a))))
            return RCS_ENOMEM;
        if (!*end)
            return 0;
        p = end + 1;
    }
}

/* The largest message accepted from the server: RCS_MAX_REPLY_OVERHEAD_BYTES
 * plus the max_data_bytes a hello on this connection reported (0 while
 * unknown), so a hostile server cannot make the client buffer more than a
 * reply could need. Only between frames: it starts the scan afresh. */
static void set_reply_cap(rcs_client *c)
{
    struct rpc_scan_limits lim = c->scan.lim;
    lim.max_message_bytes = (size_t)RCS_MAX_REPLY_OVERHEAD_BYTES + (size_t)c->max_data_bytes;
    rpc_scan_init(&c->scan, &lim);
}

/* Use fd and its ssl (NULL for plaintext), just connected to addr (takes
 * ownership of all three), for what follows. */
static void attach(rcs_client *c, int fd, SSL *ssl, char *addr)
{
    c->fd = fd;
    c->ssl = ssl;
    free(c->addr);
    c->addr = addr;
    c->expect = c->next_msgid;
    c->max_data_bytes = 0; /* another server: unknown until its hello */
    buf_reset(&c->out);
    buf_reset(&c->in);
    set_reply_cap(c);
}

static rcs_client *client_new(void)
{
    struct rpc_scan_limits lim = {.max_message_bytes = RCS_MAX_REPLY_OVERHEAD_BYTES,
                                  .max_elements = 1u << 28,
                                  .max_depth = 16};
    rcs_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (rpc_decoder_init(&c->dec) < 0) {
        free(c);
        return NULL;
    }
    c->fd = -1;
    c->timeout_ms = -1;
    c->failover_ms = 10000;
    c->next_msgid = c->expect = 1;
    buf_init(&c->out);
    buf_init(&c->in);
    buf_init(&c->call);
    rpc_scan_init(&c->scan, &lim);
    return c;
}

/* Connect to the first address of the list that takes a connection (and
 * a TLS handshake). 0, or the last address's error with its message. */
static int connect_first(rcs_client *c)
{
    int rc = set_error(c, RCS_ECONNECT, "no address to connect to");
    for (size_t i = 0; i < c->naddrs && rc < 0; i++) {
        SSL *ssl;
        int fd = open_address(c, c->addrs[i], c->naddrs > 1 ? CONNECT_TIMEOUT_MS : -1, &ssl);
        char *a;
        if (fd < 0) {
            rc = fd;
            if (rc == RCS_ENOMEM || rc == RCS_EINVAL) /* no other address fares better */
                break;
            continue;
        }
        if (!(a = strdup(c->addrs[i]))) {
            SSL_free(ssl);
            close(fd);
            rc = set_error(c, RCS_ENOMEM, NULL);
            break;
        }
        c->next_addr = (i + 1) % c->naddrs;
        attach(c, fd, ssl, a);
        rc = 0;
    }
    return rc;
}

/* rcs_connect, and with keep rcs_open: on a failed connect *out is then
 * the client, not connected, its message saying why. */
static int connect_plain(const char *address, rcs_client **out, int keep)
{
    rcs_client *c;
    int rc, saved;

    *out = NULL;
    if (!address)
        address = RCS_DEFAULT_ADDRESS;
    if (!(c = client_new()))
        return RCS_ENOMEM;
    if ((rc = parse_list(c, address)) < 0)
        goto fail;
    for (size_t i = 0; i < c->naddrs; i++)
        c->tls_hints |= strncmp(c->addrs[i], "tls://", 6) == 0;
    rc = connect_first(c);
    if (rc == 0 || (keep && rc != RCS_ENOMEM)) {
        *out = c;
        return rc;
    }
fail:
    saved = errno; /* the last connect's, for the caller's message */
    rcs_close(c);
    errno = saved;
    return rc;
}

int rcs_connect(const char *address, rcs_client **out)
{
    return connect_plain(address, out, 0);
}

int rcs_open(const char *address, rcs_client **out)
{
    return connect_plain(address, out, 1);
}

/* A copy of an optional string: 0, or -1 out of memory. */
static int dup_opt(char **dst, const char *src)
{
    return (*dst = src ? strdup(src) : NULL) || !src ? 0 : -1;
}

int rcs_connect_tls(const char *address, const rcs_tls_opts *tls, rcs_client **out)
{
    static const rcs_tls_opts none = {0};
    rcs_client *c;
    int rc;

    *out = NULL;
    if (!address)
        address = RCS_DEFAULT_ADDRESS;
    if (!tls)
        tls = &none;
    if (!(c = client_new()))
        return RCS_ENOMEM;
    c->tls_default = c->tls_hints = 1;
    c->tls_insecure = tls->insecure != 0;
    if (dup_opt(&c->tls_ca, tls->ca_file) < 0 || dup_opt(&c->tls_cert, tls->cert_file) < 0 ||
        dup_opt(&c->tls_key, tls->key_file) < 0 || dup_opt(&c->tls_name, tls->server_name) < 0)
        rc = RCS_ENOMEM;
    else
        rc = parse_list(c, address);
    if (rc < 0) { /* no client to speak of */
        rcs_close(c);
        return rc;
    }
    if ((rc = tls_setup(c)) == 0)
        rc = connect_first(c);
    if (rc == RCS_ENOMEM) {
        rcs_close(c);
        return rc;
    }
    *out = c; /* on failure too: its rcs_last_error says why */
    return rc;
}

void rcs_close(rcs_client *c)
{
    struct note *n, *next;
    if (!c)
        return;
    close_conn(c, 1);
    SSL_CTX_free(c->tls_ctx);
    BIO_meth_free(c->tls_bio);
    free(c->tls_ca);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->tls_name);
    buf_close(&c->out);
    buf_close(&c->in);
    buf_close(&c->call);
    rpc_decoder_close(&c->dec);
    for (n = c->notes; n; n = next) {
        next = n->next;
        free(n->n.method);
        rcs_value_free(n->n.params);
        free(n);
    }
    for (size_t i = 0; i < c->naddrs; i++)
        free(c->addrs[i]);
    free(c->addrs);
    free(c->addr);
    free(c->leader);
    if (c->auth) /* a secret: not left in freed memory */
        explicit_bzero(c->auth, c->auth_len);
    free(c->auth);
    free(c->user);
    free(c->client_name);
    free(c);
}

void rcs_set_timeout(rcs_client *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
}

void rcs_set_failover_timeout(rcs_client *c, int timeout_ms)
{
    c->failover_ms = timeout_ms < 0 ? 0 : timeout_ms;
}

const char *rcs_address(const rcs_client *c)
{
    return c->addr ? c->addr : "";
}

uint64_t rcs_reconnects(const rcs_client *c)
{
    return c->reconnects;
}

/* ---- bytes in and out ---- */

/* The connection is unusable: close it; every reply it owed is lost, and
 * rcs_recv answers err for each (the first of them being the caller's, if
 * any). The next request reconnects. Returns err, with the message set. */
static int fail_conn(rcs_client *c, int err)
{
    close_conn(c, 0);
    c->lost += (uint32_t)(c->next_msgid - c->expect);
    c->lost_err = err;
    snprintf(c->lost_msg, sizeof(c->lost_msg), "%.200s (%.200s); the next request reconnects",
             c->errmsg, c->addr ? c->addr : "?");
    c->expect = c->next_msgid;
    buf_reset(&c->out);
    buf_reset(&c->in);
    rpc_scan_reset(&c->scan);
    c->follow = 1;
    return set_error(c, err, "%s", c->lost_msg);
}

static int broken(rcs_client *c, const char *what)
{
    set_error(c, RCS_EIO, "%s: %s", what, errno ? strerror(errno) : "connection closed");
    return fail_conn(c, RCS_EIO);
}

/* The stream holds something that is not msgpack-RPC: give it up. */
static int garbled(rcs_client *c, const char *what)
{
    set_error(c, RCS_EPROTO, "%s", what);
    return fail_conn(c, RCS_EPROTO);
}

/* The connection's TLS failed (SSL_get_error said e): give it up. */
static int tls_broken(rcs_client *c, int e)
{
    char why[400];
    tlsctx_error(c->ssl, e, 0, why, sizeof(why));
    set_error(c, RCS_EIO, "TLS: %s", why);
    return fail_conn(c, RCS_EIO);
}

/* Decrypt what the TLS connection has, as far as the buffer's room goes:
 * 0 (maybe nothing yet: a record comes in parts), or RCS_EIO. An end or an
 * error after some bytes waits for the next call, so replies that came
 * before a close are read first. */
static int tls_read_some(rcs_client *c)
{
    int got = 0;
    if (c->tls_err[0]) { /* the bytes before it were read: now the failure */
        set_error(c, RCS_EIO, "TLS: %s", c->tls_err);
        return fail_conn(c, RCS_EIO);
    }
    for (;;) {
        size_t room = c->in.cap - c->in.len;
        int n, e;
        if (room == 0)
            return 0;
        ERR_clear_error();
        errno = 0;
        n = SSL_read(c->ssl, c->in.data + c->in.len, room > INT_MAX ? INT_MAX : (int)room);
        if (n > 0) {
            c->in.len += (size_t)n;
            got = 1;
            continue;
        }
        e = SSL_get_error(c->ssl, n);
        c->tls_read_writes = e == SSL_ERROR_WANT_WRITE;
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        if (got) {
            tlsctx_error(c->ssl, e, 0, c->tls_err, sizeof(c->tls_err));
            return 0;
        }
        return tls_broken(c, e);
    }
}

/* Write what the TLS connection will take now: 0 or RCS_EIO. */
static int tls_write_some(rcs_client *c)
{
    size_t len = buf_pending(&c->out);
    int n, e;
    ERR_clear_error();
    errno = 0;
    n = SSL_write(c->ssl, c->out.data + c->out.off, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0) {
        buf_consume(&c->out, (size_t)n);
        c->tls_write_reads = 0;
        return 0;
    }
    e = SSL_get_error(c->ssl, n);
    c->tls_write_reads = e == SSL_ERROR_WANT_READ;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    return tls_broken(c, e);
}

/* Read what the socket has (at most one read). 0, or RCS_EIO. */
static int read_some(rcs_client *c)
{
    ssize_t n;
    if (buf_reserve(&c->in, 64 * 1024) < 0)
        return set_error(c, RCS_ENOMEM, NULL);
    if (c->ssl)
        return tls_read_some(c);
    do {
        n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        if (n == 0)
            errno = 0;
        return broken(c, "read");
    }
    c->in.len += (size_t)n;
    return 0;
}

int rcs_flush(rcs_client *c)
{
    if (c->fd < 0)
        return buf_pending(&c->out) ? set_error(c, RCS_EIO, "not connected") : 0;
    while (buf_pending(&c->out) > 0) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLOUT};
        if (c->ssl && SSL_pending(c->ssl) > 0) { /* decrypted already: no poll would say so */
            int rc = read_some(c);
            if (rc < 0)
                return rc;
            continue;
        }
        if (c->tls_write_reads) /* the TLS write waits for the peer first */
            p.events = POLLIN;
        if (poll(&p, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return broken(c, "poll");
        }
        if (p.revents & POLLIN) {
            /* Drain replies so the server never blocks writing to us. */
            int rc = read_some(c);
            if (rc < 0)
                return rc;
        }
        if (c->ssl && (p.revents & (POLLOUT | POLLERR | POLLHUP | POLLIN))) {
            int rc = tls_write_some(c);
            if (rc < 0)
                return rc;
        } else if (p.revents & (POLLOUT | POLLERR | POLLHUP)) {
            ssize_t n = send(c->fd, c->out.data + c->out.off, buf_pending(&c->out),
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (n < 0)
                return broken(c, "write");
            buf_consume(&c->out, (size_t)n);
        }
    }
    return 0;
}

/* The absolute time timeout_ms (-1: no limit) from now, for read_frame. */
static uint64_t wait_deadline(int timeout_ms)
{
    return timeout_ms < 0 ? UINT64_MAX : now_ns() + (uint64_t)timeout_ms * 1000000u;
}

/* Wait until deadline_ns (UINT64_MAX: no limit) for and decode the next
 * whole message. On success *flen is the frame's length, to be consumed by
 * the caller once done with *obj. The deadline is absolute: a caller that
 * loops over unrelated messages (notifications) passes the same one, so
 * they cannot keep its wait going. */
static int read_frame(rcs_client *c, uint64_t deadline_ns, msgpack_object *obj, size_t *flen)
{
    int looked = 0;
    for (;;) {
        int rc = rpc_scan_feed(&c->scan, (const uint8_t *)c->in.data + c->in.off,
                               buf_pending(&c->in), flen);
        if (rc == 1) {
            rc = rpc_decode(&c->dec, c->in.data + c->in.off, *flen, obj);
            if (rc < 0)
                return garbled(c, "undecodable message from the server");
            return 0;
        }
        if (rc == RPC_ETOO_LARGE) {
            char what[160];
            snprintf(what, sizeof(what),
                     "the server sent a message larger than the client accepts (%zu bytes: "
                     "64 MiB plus the server's max_data_bytes) or with too many elements",
                     c->scan.lim.max_message_bytes);
            return garbled(c, what);
        }
        if (rc < 0)
            return garbled(c, "malformed message from the server");
        if (!c->ssl || SSL_pending(c->ssl) == 0) {
            struct pollfd p = {.fd = c->fd,
                               .events = (short)(POLLIN | (c->tls_read_writes ? POLLOUT : 0))};
            int timeout_ms = -1;
            if (deadline_ns != UINT64_MAX) {
                uint64_t now = now_ns();
                if (now < deadline_ns)
                    timeout_ms = (int)((deadline_ns - now + 999999u) / 1000000u);
                else if (looked++) /* past the deadline: one look at what arrived */
                    return set_error(c, RCS_ETIMEDOUT, NULL);
                else
                    timeout_ms = 0;
            }
            int pr = poll(&p, 1, timeout_ms);
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr < 0)
                return broken(c, "poll");
            if (pr == 0)
                return set_error(c, RCS_ETIMEDOUT, NULL);
        }
        if ((rc = read_some(c)) < 0)
            return rc;
    }
}

static void consume_frame(rcs_client *c, size_t flen)
{
    buf_consume(&c->in, flen);
    rpc_scan_reset(&c->scan);
}

/* Keep a notification (its frame flen bytes long) for
 * rcs_next_notification. Past the queue's caps the connection is failed:
 * RCS_EPROTO, set as the last error and the connection given up. */
static int keep_note(rcs_client *c, const struct rpc_message *m, const msgpack_object *params_arr,
                     size_t flen)
{
    struct note *n;
    if (c->nnotes >= RCS_MAX_QUEUED_NOTIFICATIONS ||
        c->notes_bytes + flen > RCS_MAX_QUEUED_NOTIFICATION_BYTES) {
        char what[160];
        snprintf(what, sizeof(what),
                 "the server sent more than %u notifications (or %u bytes of them) without "
                 "the client reading them",
                 (unsigned)RCS_MAX_QUEUED_NOTIFICATIONS,
                 (unsigned)RCS_MAX_QUEUED_NOTIFICATION_BYTES);
        return garbled(c, what);
    }
    n = calloc(1, sizeof(*n));
    if (!n || !(n->n.method = strndup(m->method, m->method_len)) ||
        value_new(params_arr, &n->n.params) < 0) {
        if (n)
            free(n->n.method);
        free(n);
        return RCS_ENOMEM;
    }
    n->bytes = flen;
    c->nnotes++;
    c->notes_bytes += flen;
    if (c->notes_tail)
        c->notes_tail->next = n;
    else
        c->notes = n;
    c->notes_tail = n;
    return 0;
}

/* The params array object of a notification envelope. */
static const msgpack_object *params_of(const msgpack_object *o)
{
    return &o->via.array.ptr[2];
}

/* Answer the oldest lost request. */
static int pop_lost(rcs_client *c)
{
    c->lost--;
    return set_error(c, c->lost_err, "%s", c->lost_msg);
}

static int is_not_leader(const msgpack_object *error)
{
    const msgpack_object *code;
    const char *p;
    uint32_t len;
    return error->type != MSGPACK_OBJECT_NIL && (code = rpc_map_get(error, "code")) &&
           rpc_obj_bytes(code, &p, &len) == 0 && err_from_name(p, len) == RCS_ENOT_LEADER;
}

/* Remember where a NOT_LEADER said the leader is (leader: a str, or nil
 * while there is none) for the next reconnect, and say so in the message. */
static void note_leader(rcs_client *c, const msgpack_object *leader)
{
    const char *p;
    uint32_t len;
    size_t n = strlen(c->errmsg);
    free(c->leader);
    c->leader = NULL;
    c->follow = 1;
    if (leader && leader->type == MSGPACK_OBJECT_STR && rpc_obj_bytes(leader, &p, &len) == 0 &&
        len > 0 && len < 1024) {
        /* A client that speaks TLS never follows a hint into plaintext:
         * tcp://HOST:PORT and HOST:PORT are dialled as tls://HOST:PORT. */
        if (c->tls_hints && len > 6 && memcmp(p, "tcp://", 6) == 0)
            p += 6, len -= 6;
        if (c->tls_hints && !(len > 6 && memcmp(p, "tls://", 6) == 0) &&
            !(len > 7 && memcmp(p, "unix://", 7) == 0) && p[0] != '/') {
            if ((c->leader = malloc(len + 7)) != NULL)
                snprintf(c->leader, len + 7, "tls://%.*s", (int)len, p);
        } else {
            c->leader = strndup(p, len);
        }
    }
    c->no_leader = !c->leader;
    snprintf(c->errmsg + n, sizeof(c->errmsg) - n, " (%s: %s%s)", c->addr ? c->addr : "?",
             c->leader ? "the leader is " : "no leader known", c->leader ? c->leader : "");
}

/* The code of an error map from the server, with its message (after
 * prefix) as the last error. */
static int server_error(rcs_client *c, const msgpack_object *error, const char *prefix)
{
    const msgpack_object *code = rpc_map_get(error, "code");
    const msgpack_object *msg = rpc_map_get(error, "message");
    const char *p = "";
    uint32_t len = 0;
    int rc = RCS_EPROTO;
    if (code && rpc_obj_bytes(code, &p, &len) == 0)
        rc = err_from_name(p, len);
    if (!msg || rpc_obj_bytes(msg, &p, &len) < 0)
        p = err_message(rc), len = (uint32_t)strlen(p);
    return set_error(c, rc, "%s%.*s", prefix, (int)len, p);
}

/* rcs_recv on the connection: the oldest reply it owes, within the client's
 * timeout from now. */
static int recv_live(rcs_client *c, rcs_value **result)
{
    msgpack_object obj;
    struct rpc_message m;
    size_t flen;
    uint64_t deadline;
    int rc;

    if (result)
        *result = NULL;
    if (c->expect == c->next_msgid)
        return set_error(c, RCS_EINVAL, "no request is waiting for a reply");
    if (buf_pending(&c->out) > 0 && (rc = rcs_flush(c)) < 0)
        return c->lost > 0 ? pop_lost(c) : rc;
    deadline = wait_deadline(c->timeout_ms);
    for (;;) {
        if ((rc = read_frame(c, deadline, &obj, &flen)) < 0)
            return c->lost > 0 ? pop_lost(c) : rc;
        if (rpc_parse_message(&obj, &m) < 0) {
            garbled(c, "the server sent a message that is not msgpack-RPC");
            return pop_lost(c);
        }
        if (m.type == RPC_NOTIFY) {
            rc = keep_note(c, &m, params_of(&obj), flen);
            if (rc == RCS_EPROTO) /* the cap: the connection is gone */
                return pop_lost(c);
            consume_frame(c, flen);
            if (rc < 0)
                return set_error(c, rc, NULL);
            /* Buffered notifications need no poll: look at the clock. */
            if (deadline != UINT64_MAX && now_ns() >= deadline)
                return set_error(c, RCS_ETIMEDOUT, NULL);
            continue;
        }
        if (m.type == RPC_RESPONSE && m.msgid == 0 && m.msgid != c->expect &&
            m.error->type != MSGPACK_OBJECT_NIL) {
            /* The server refuses the connection itself (a TLS port sent
             * plaintext answers "this port speaks TLS: use tls://...") and
             * closes it: a failed connection (RCS_EIO), in its words. */
            server_error(c, m.error, "the server refused the connection: ");
            fail_conn(c, RCS_EIO);
            return pop_lost(c);
        }
        if (m.type != RPC_RESPONSE || m.msgid != c->expect) {
            char what[96];
            snprintf(what, sizeof(what), "reply %u arrived while %u was expected", m.msgid,
                     c->expect);
            garbled(c, what);
            return pop_lost(c);
        }
        c->expect++;
        if (!is_not_leader(m.error))
            c->backoff = 0; /* a node serves: the next wait for a leader starts short */
        if (m.error->type != MSGPACK_OBJECT_NIL) {
            rc = server_error(c, m.error, "");
            if (rc == RCS_ENOT_LEADER)
                note_leader(c, rpc_map_get(m.error, "leader"));
            consume_frame(c, flen);
            return rc;
        }
        rc = result ? value_new(m.result, result) : 0;
        consume_frame(c, flen);
        return rc < 0 ? set_error(c, rc, NULL) : 0;
    }
}

int rcs_recv(rcs_client *c, rcs_value **result)
{
    if (result)
        *result = NULL;
    return c->lost > 0 ? pop_lost(c) : recv_live(c, result);
}

size_t rcs_pending(const rcs_client *c)
{
    return c->lost + (size_t)(uint32_t)(c->next_msgid - c->expect);
}

int rcs_next_notification(rcs_client *c, int timeout_ms, rcs_notification **out)
{
    msgpack_object obj;
    struct rpc_message m;
    size_t flen;
    uint64_t deadline = wait_deadline(timeout_ms); /* for all of this wait */
    int rc;

    *out = NULL;
    while (!c->notes) {
        if (c->fd < 0)
            return set_error(c, RCS_EIO, "not connected: the next request reconnects");
        if (rcs_pending(c) > 0)
            return set_error(c, RCS_EINVAL, "replies are pending: rcs_recv them first");
        if ((rc = read_frame(c, deadline, &obj, &flen)) < 0)
            return rc;
        if (rpc_parse_message(&obj, &m) < 0 || m.type != RPC_NOTIFY)
            return garbled(c, "unexpected message while waiting for notifications");
        rc = keep_note(c, &m, params_of(&obj), flen);
        if (rc == RCS_EPROTO)
            return rc;
        consume_frame(c, flen);
        if (rc < 0)
            return set_error(c, rc, NULL);
    }
    {
        struct note *n = c->notes;
        rcs_notification *r = malloc(sizeof(*r));
        if (!r)
            return set_error(c, RCS_ENOMEM, NULL);
        c->notes = n->next;
        if (!c->notes)
            c->notes_tail = NULL;
        c->nnotes--;
        c->notes_bytes -= n->bytes;
        *r = n->n;
        free(n);
        *out = r;
    }
    return 0;
}

void rcs_notification_free(rcs_notification *n)
{
    if (!n)
        return;
    free(n->method);
    rcs_value_free(n->params);
    free(n);
}

/* ---- packing params from a format ---- */

/* Items at the current level of fmt (which starts just inside a bracket or
 * at the top), up to the matching close or the end. -1 if unbalanced. */
static long count_items(const char *fmt)
{
    long n = 0;
    int depth = 0;
    for (; *fmt; fmt++) {
        if (*fmt == '[' || *fmt == '{') {
            if (depth == 0)
                n++;
            depth++;
        } else if (*fmt == ']' || *fmt == '}') {
            if (depth == 0)
                return n;
            depth--;
        } else if (depth == 0) {
            n++;
        }
    }
    return depth == 0 ? n : -1;
}

static int pack_fmt(msgpack_packer *pk, const char **fmtp, va_list *ap, char close)
{
    const char *fmt = *fmtp;
    for (; *fmt; fmt++) {
        switch (*fmt) {
        case 'u':
            msgpack_pack_uint64(pk, va_arg(*ap, uint64_t));
            break;
        case 'i':
            msgpack_pack_int64(pk, va_arg(*ap, int64_t));
            break;
        case 'b':
            if (va_arg(*ap, int))
                msgpack_pack_true(pk);
            else
                msgpack_pack_false(pk);
            break;
        case 'n':
            msgpack_pack_nil(pk);
            break;
        case 's': {
            const char *s = va_arg(*ap, const char *);
            if (!s)
                return RCS_EINVAL;
            rpc_pack_cstr(pk, s);
            break;
        }
        case 'y': {
            const void *p = va_arg(*ap, const void *);
            size_t n = va_arg(*ap, size_t);
            if (n > UINT32_MAX || (!p && n))
                return RCS_EINVAL;
            msgpack_pack_bin(pk, n);
            msgpack_pack_bin_body(pk, p, n);
            break;
        }
        case 'U': {
            const uint64_t *v = va_arg(*ap, const uint64_t *);
            size_t n = va_arg(*ap, size_t);
            if (n > UINT32_MAX || (!v && n))
                return RCS_EINVAL;
            msgpack_pack_array(pk, n);
            for (size_t i = 0; i < n; i++)
                msgpack_pack_uint64(pk, v[i]);
            break;
        }
        case '[':
        case '{': {
            long n = count_items(fmt + 1);
            char want = *fmt == '[' ? ']' : '}';
            int rc;
            if (n < 0 || (want == '}' && n % 2))
                return RCS_EINVAL;
            if (want == ']')
                msgpack_pack_array(pk, (size_t)n);
            else
                msgpack_pack_map(pk, (size_t)n / 2);
            fmt++;
            if ((rc = pack_fmt(pk, &fmt, ap, want)) < 0)
                return rc;
            break;
        }
        case ']':
        case '}':
            if (*fmt != close)
                return RCS_EINVAL;
            *fmtp = fmt;
            return 0;
        default:
            return RCS_EINVAL;
        }
    }
    *fmtp = fmt;
    return close ? RCS_EINVAL : 0;
}

/* The methods whose params carry an object's data, and where: what the
 * server's max_data_bytes bounds. */
static const struct {
    const char *method;
    long param;
} data_params[] = {{"create", 0}, {"set_data", 1}};

/* The length of top-level param idx of fmt's params (ap), if it is bytes
 * (s or y); 0 for any other. Reads ap only (the caller's copy). */
static size_t param_bytes(const char *fmt, va_list ap, long idx)
{
    long item = -1;
    int depth = 0;
    for (; *fmt; fmt++) {
        int top = depth == 0;
        item += top && *fmt != ']' && *fmt != '}';
        switch (*fmt) {
        case 'u':
            (void)va_arg(ap, uint64_t);
            break;
        case 'i':
            (void)va_arg(ap, int64_t);
            break;
        case 'b':
            (void)va_arg(ap, int);
            break;
        case 's': {
            const char *p = va_arg(ap, const char *);
            if (top && item == idx)
                return p ? strlen(p) : 0;
            break;
        }
        case 'y': {
            size_t len;
            (void)va_arg(ap, const void *);
            len = va_arg(ap, size_t);
            if (top && item == idx)
                return len;
            break;
        }
        case 'U':
            (void)va_arg(ap, const uint64_t *);
            (void)va_arg(ap, size_t);
            break;
        case '[':
        case '{':
            depth++;
            break;
        case ']':
        case '}':
            depth--;
            break;
        default: /* 'n'; count_items vetted the rest */
            break;
        }
        if (item > idx && depth == 0)
            return 0;
    }
    return 0;
}

/* RCS_ETOO_LARGE (the message names both sizes) when a request would carry
 * data over the max_data_bytes the server's hello gave on this connection:
 * the server would cut the connection off mid-request. 0 otherwise, or
 * while no hello has told the limit. */
static int check_data_size(rcs_client *c, const char *method, const char *fmt, va_list ap)
{
    if (!c->max_data_bytes)
        return 0;
    for (size_t i = 0; i < sizeof(data_params) / sizeof(data_params[0]); i++) {
        size_t len;
        va_list cp;
        if (strcmp(method, data_params[i].method) != 0)
            continue;
        va_copy(cp, ap);
        len = param_bytes(fmt, cp, data_params[i].param);
        va_end(cp);
        if (len > c->max_data_bytes)
            return set_error(c, RCS_ETOO_LARGE,
                             "%s: data of %zu bytes is over the server's max_data_bytes (%" PRIu64
                             "); nothing was sent",
                             method, len, c->max_data_bytes);
        return 0;
    }
    return 0;
}

static int vsend(rcs_client *c, const char *method, const char *fmt, va_list ap)
{
    size_t mark = c->out.len;
    msgpack_packer pk;
    long n = count_items(fmt);
    va_list cp;
    int rc;

    if (n < 0 || !method)
        return set_error(c, RCS_EINVAL, "bad params format \"%s\"", fmt ? fmt : "(null)");
    if ((rc = check_data_size(c, method, fmt, ap)) < 0)
        return rc;
    rpc_packer_init(&pk, &c->out);
    c->out.oom = 0;
    rpc_pack_request(&pk, c->next_msgid, method);
    msgpack_pack_array(&pk, (size_t)n);
    va_copy(cp, ap);
    rc = pack_fmt(&pk, &fmt, &cp, 0);
    va_end(cp);
    if (rc == 0 && c->out.oom)
        rc = RCS_ENOMEM;
    if (rc < 0) {
        buf_truncate(&c->out, mark);
        return set_error(c, rc, rc == RCS_EINVAL ? "bad params for %s" : NULL, method);
    }
    c->next_msgid++;
    return 0;
}

static int reconnect(rcs_client *c, uint64_t deadline_ns);
static void check_closed(rcs_client *c);
static uint64_t deadline_after(const rcs_client *c);
static int call_begin(rcs_client *c);
static int call_keep(rcs_client *c, size_t mark);
static int call_recv(rcs_client *c, rcs_value **result);

/* A pipelined request moves to another node only once the old connection
 * owes no reply: those replies are the server's own answers to read. */
int rcs_send(rcs_client *c, const char *method, const char *fmt, ...)
{
    va_list ap;
    int rc;
    if (c->expect == c->next_msgid) {
        check_closed(c);
        if ((c->follow || c->fd < 0) && (rc = reconnect(c, deadline_after(c))) < 0)
            return rc;
    }
    va_start(ap, fmt);
    rc = vsend(c, method, fmt, ap);
    va_end(ap);
    return rc;
}

/* Queue the request of a blocking call (see call_begin). */
/* Queue a blocking call's request (call_begin, vsend, call_keep). */
static int vcall_send(rcs_client *c, const char *method, const char *fmt, va_list ap)
{
    size_t mark;
    int rc;
    if ((rc = call_begin(c)) < 0)
        return rc;
    mark = c->out.len;
    rc = vsend(c, method, fmt, ap);
    return rc < 0 ? rc : call_keep(c, mark);
}

static int call_send(rcs_client *c, const char *method, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = vcall_send(c, method, fmt, ap);
    va_end(ap);
    return rc;
}

int rcs_call(rcs_client *c, rcs_value **result, const char *method, const char *fmt, ...)
{
    va_list ap;
    int rc;
    if (result)
        *result = NULL;
    va_start(ap, fmt);
    rc = vcall_send(c, method, fmt, ap);
    va_end(ap);
    if (rc < 0)
        return rc;
    return call_recv(c, result);
}

/* ---- typed calls ---- */

/* A call whose result is one uint, stored in *out if out is not NULL. */
static int call_uint(rcs_client *c, uint64_t *out, int rc_send)
{
    rcs_value *v;
    int rc = rc_send < 0 ? rc_send : call_recv(c, &v);
    if (rc < 0)
        return rc;
    if (v->type != RCS_UINT) {
        rcs_value_free(v);
        return set_error(c, RCS_EPROTO, "expected an integer result");
    }
    if (out)
        *out = v->via.u;
    rcs_value_free(v);
    return 0;
}

static int pending_guard(rcs_client *c)
{
    return rcs_pending(c) > 0 ? set_error(c, RCS_EINVAL, "replies are pending: rcs_recv them first")
                              : 0;
}

/* Queue a blocking call's request; read its reply with call_recv. */
#define SEND_OR_FAIL(c, ...) call_send(c, __VA_ARGS__)

/* The size of rcs_hello_info in 0.1.0, all that rcs_hello and rcs_hello_lease
 * may write (see rcstore.h). */
#define HELLO_INFO_V1 offsetof(rcs_hello_info, max_tokens_per_session)

static void pack_kv_bin(msgpack_packer *pk, const char *key, const void *p, size_t len)
{
    rpc_pack_cstr(pk, key);
    msgpack_pack_bin(pk, len);
    msgpack_pack_bin_body(pk, p, len);
}

/* Queue hello with the options set in o (NULL: none); with ttl_always, its
 * ttl even when 0 (which drops a lease). */
static int send_hello(rcs_client *c, const rcs_hello_opts *o, int ttl_always)
{
    static const rcs_hello_opts none;
    size_t mark = c->out.len, auth_len;
    const void *auth;
    const char *user;
    int send_ttl;
    msgpack_packer pk;

    if (!o)
        o = &none;
    send_ttl = o->ttl || ttl_always;
    /* The options' auth, else rcs_set_auth's; the user goes with either. */
    auth = o->auth ? o->auth : c->auth;
    auth_len = o->auth ? (o->auth_len ? o->auth_len : strlen(o->auth)) : c->auth_len;
    user = auth ? c->user : NULL;
    if (auth_len > UINT32_MAX || o->resume_len > UINT32_MAX || (o->resume && !o->resume_len))
        return set_error(c, RCS_EINVAL, "bad hello options");
    rpc_packer_init(&pk, &c->out);
    c->out.oom = 0;
    rpc_pack_request(&pk, c->next_msgid, "hello");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, (size_t)(!!user + !!auth + !!o->client + send_ttl + !!o->resume));
    if (user) {
        rpc_pack_cstr(&pk, "user");
        rpc_pack_cstr(&pk, user);
    }
    if (auth)
        pack_kv_bin(&pk, "auth", auth, auth_len);
    if (o->client) {
        rpc_pack_cstr(&pk, "client");
        rpc_pack_cstr(&pk, o->client);
    }
    if (send_ttl)
        rpc_pack_kv_uint(&pk, "ttl", o->ttl);
    if (o->resume)
        pack_kv_bin(&pk, "resume", o->resume, o->resume_len);
    if (c->out.oom) {
        buf_truncate(&c->out, mark);
        return set_error(c, RCS_ENOMEM, NULL);
    }
    c->next_msgid++;
    return 0;
}

/* hello's result map into r. */
static void parse_hello(const rcs_value *v, rcs_hello_info *r)
{
    const rcs_value *t, *lim;
    memset(r, 0, sizeof(*r));
    r->protocol = rcs_value_uint(rcs_map_get(v, "protocol"), 0);
    r->session = rcs_value_uint(rcs_map_get(v, "session"), 0);
    t = rcs_map_get(v, "token");
    if (t && t->type == RCS_BIN && t->via.bytes.len <= sizeof(r->token)) {
        memcpy(r->token, t->via.bytes.ptr, t->via.bytes.len);
        r->token_len = t->via.bytes.len;
    }
    t = rcs_map_get(v, "resumed");
    r->resumed = t && t->type == RCS_BOOL && t->via.boolean;
    r->ttl = rcs_value_uint(rcs_map_get(v, "ttl"), 0);
    lim = rcs_map_get(v, "limits");
    r->max_data_bytes = rcs_value_uint(rcs_map_get(lim, "max_data_bytes"), 0);
    r->max_refs = rcs_value_uint(rcs_map_get(lim, "max_refs"), 0);
    r->max_message_bytes = rcs_value_uint(rcs_map_get(lim, "max_message_bytes"), 0);
    r->max_session_ttl = rcs_value_uint(rcs_map_get(lim, "max_session_ttl"), 0);
    r->max_tokens_per_session = rcs_value_uint(rcs_map_get(lim, "max_tokens_per_session"), 0);
}

/* Replace *dst by a copy of n bytes of src (NUL-terminated). 0 or RCS_ENOMEM. */
static int keep_copy(char **dst, const void *src, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        return RCS_ENOMEM;
    memcpy(p, src, n);
    p[n] = '\0';
    free(*dst);
    *dst = p;
    return 0;
}

/* After a successful hello: what a reconnect replays. A reply of session 0
 * (a follower's own answer to a plain hello) says nothing of the session. */
static int remember_hello(rcs_client *c, const rcs_hello_opts *o, const rcs_hello_info *r)
{
    if (o && o->auth) {
        size_t n = o->auth_len ? o->auth_len : strlen(o->auth);
        if (c->auth)
            explicit_bzero(c->auth, c->auth_len);
        if (keep_copy(&c->auth, o->auth, n) < 0)
            return set_error(c, RCS_ENOMEM, NULL);
        c->auth_len = n;
    }
    if (o && o->client && keep_copy(&c->client_name, o->client, strlen(o->client)) < 0)
        return set_error(c, RCS_ENOMEM, NULL);
    if (r->session == 0)
        return 0;
    c->lease_ttl = r->token_len ? r->ttl : 0;
    memcpy(c->lease_token, r->token, r->token_len);
    c->lease_token_len = r->token_len;
    return 0;
}

/* A blocking hello with options o, ttl_always as send_hello; the first
 * info_size bytes of what it answered go to info (if not NULL). */
static int hello_call(rcs_client *c, const rcs_hello_opts *o, int ttl_always, rcs_hello_info *info,
                      size_t info_size)
{
    rcs_hello_info r;
    rcs_value *v;
    size_t mark;
    int rc;
    if ((rc = call_begin(c)) < 0)
        return rc;
    mark = c->out.len;
    if ((rc = send_hello(c, o, ttl_always)) < 0 || (rc = call_keep(c, mark)) < 0 ||
        (rc = call_recv(c, &v)) < 0)
        return rc;
    parse_hello(v, &r);
    rcs_value_free(v);
    c->max_data_bytes = r.max_data_bytes;
    set_reply_cap(c);
    if ((rc = remember_hello(c, o, &r)) < 0)
        return rc;
    if (info)
        memcpy(info, &r, info_size);
    return 0;
}

int rcs_set_auth(rcs_client *c, const char *user, const void *token, size_t len)
{
    char *u = NULL, *t = NULL;
    if (!c || (user && !*user) || (user && strlen(user) > 255) || (user && !token))
        return RCS_EINVAL;
    if (token && !len)
        len = strlen(token);
    if (token && len > UINT32_MAX)
        return RCS_EINVAL;
    if ((user && keep_copy(&u, user, strlen(user)) < 0) ||
        (token && keep_copy(&t, token, len) < 0)) {
        free(u);
        free(t);
        return set_error(c, RCS_ENOMEM, NULL);
    }
    if (c->auth) /* a secret: not left in freed memory */
        explicit_bzero(c->auth, c->auth_len);
    free(c->auth);
    free(c->user);
    c->auth = t;
    c->auth_len = token ? len : 0;
    c->user = u;
    return 0;
}

int rcs_hello(rcs_client *c, const char *client_name, rcs_hello_info *info)
{
    rcs_hello_opts o = {.client = client_name};
    return hello_call(c, &o, 0, info, HELLO_INFO_V1);
}

int rcs_hello_lease(rcs_client *c, uint32_t ttl, const uint8_t *token, size_t token_len,
                    rcs_hello_info *info)
{
    rcs_hello_opts o = {.ttl = ttl, .resume = token, .resume_len = token ? token_len : 0};
    return hello_call(c, &o, 1, info, HELLO_INFO_V1);
}

int rcs_hello_with(rcs_client *c, const rcs_hello_opts *opts, rcs_hello_info *info)
{
    return hello_call(c, opts, 0, info, sizeof(*info));
}

int rcs_ping(rcs_client *c)
{
    return rcs_call(c, NULL, "ping", "");
}

int rcs_create(rcs_client *c, const void *data, size_t len, const uint64_t *refs, size_t nrefs,
               uint64_t *id)
{
    if (refs || nrefs)
        return call_uint(c, id, SEND_OR_FAIL(c, "create", "yU", data, len, refs, nrefs));
    return call_uint(c, id, SEND_OR_FAIL(c, "create", "y", data, len));
}

void rcs_object_free(rcs_object *o)
{
    if (!o)
        return;
    free(o->data);
    free(o->refs);
    free(o);
}

int rcs_get(rcs_client *c, uint64_t id, rcs_object **out)
{
    rcs_value *v;
    const rcs_value *d, *r;
    rcs_object *o;
    int rc;

    *out = NULL;
    if ((rc = rcs_call(c, &v, "get", "u", id)) < 0)
        return rc;
    d = rcs_map_get(v, "data");
    r = rcs_map_get(v, "refs");
    if (!d || d->type != RCS_BIN || !r || r->type != RCS_ARRAY) {
        rcs_value_free(v);
        return set_error(c, RCS_EPROTO, "malformed get result");
    }
    o = calloc(1, sizeof(*o));
    if (o) {
        o->data = malloc(d->via.bytes.len + 1);
        o->refs = malloc((r->via.array.len ? r->via.array.len : 1) * sizeof(uint64_t));
    }
    if (!o || !o->data || !o->refs) {
        rcs_object_free(o);
        rcs_value_free(v);
        return set_error(c, RCS_ENOMEM, NULL);
    }
    o->id = rcs_value_uint(rcs_map_get(v, "id"), id);
    memcpy(o->data, d->via.bytes.ptr, d->via.bytes.len + 1);
    o->len = d->via.bytes.len;
    o->nrefs = r->via.array.len;
    for (size_t i = 0; i < o->nrefs; i++)
        o->refs[i] = rcs_value_uint(&r->via.array.items[i], 0);
    o->refcount = rcs_value_uint(rcs_map_get(v, "refcount"), 0);
    rcs_value_free(v);
    *out = o;
    return 0;
}

int rcs_set_data(rcs_client *c, uint64_t id, const void *data, size_t len)
{
    return rcs_call(c, NULL, "set_data", "uy", id, data, len);
}

int rcs_set_refs(rcs_client *c, uint64_t id, const uint64_t *refs, size_t nrefs)
{
    return rcs_call(c, NULL, "set_refs", "uU", id, refs, nrefs);
}

int rcs_link(rcs_client *c, uint64_t id, uint64_t target, uint64_t *nrefs)
{
    return call_uint(c, nrefs, SEND_OR_FAIL(c, "link", "uu", id, target));
}

int rcs_unlink(rcs_client *c, uint64_t id, uint64_t target, uint64_t *nrefs)
{
    return call_uint(c, nrefs, SEND_OR_FAIL(c, "unlink", "uu", id, target));
}

int rcs_incref(rcs_client *c, uint64_t id, uint32_t n, uint64_t *holds)
{
    return call_uint(c, holds, SEND_OR_FAIL(c, "incref", "uu", id, (uint64_t)n));
}

int rcs_decref(rcs_client *c, uint64_t id, uint32_t n, uint64_t *holds)
{
    return call_uint(c, holds, SEND_OR_FAIL(c, "decref", "uu", id, (uint64_t)n));
}

int rcs_stat_object(rcs_client *c, uint64_t id, rcs_stat *out)
{
    rcs_value *v;
    int rc = rcs_call(c, &v, "stat", "u", id);
    if (rc < 0)
        return rc;
    out->refcount = rcs_value_uint(rcs_map_get(v, "refcount"), 0);
    out->holds = rcs_value_uint(rcs_map_get(v, "holds"), 0);
    out->names = rcs_value_uint(rcs_map_get(v, "names"), 0);
    out->internal = rcs_value_uint(rcs_map_get(v, "internal"), 0);
    out->tokens = rcs_value_uint(rcs_map_get(v, "tokens"), 0);
    out->data_bytes = rcs_value_uint(rcs_map_get(v, "data_bytes"), 0);
    out->nrefs = rcs_value_uint(rcs_map_get(v, "nrefs"), 0);
    rcs_value_free(v);
    return 0;
}

int rcs_bind(rcs_client *c, const char *name, uint64_t id)
{
    return rcs_call(c, NULL, "bind", "su", name, id);
}

int rcs_unbind(rcs_client *c, const char *name)
{
    return rcs_call(c, NULL, "unbind", "s", name);
}

int rcs_lookup(rcs_client *c, const char *name, int acquire, uint64_t *id)
{
    return call_uint(c, id, SEND_OR_FAIL(c, "lookup", "sb", name, acquire));
}

/* The most names asked for in one page: the server returns at most 10,000
 * names a request (NAMES_PAGE_MAX). */
#define NAMES_PAGE 10000

int rcs_names_page(rcs_client *c, const char *prefix, uint64_t limit, char *after, size_t *alen,
                   int *more, rcs_value **list)
{
    const rcs_value *names, *next;
    rcs_value *v;
    int rc;

    *list = NULL;
    *more = 0;
    if (limit == 0 || *alen > RCS_NAME_MAX)
        return set_error(c, RCS_EINVAL, "limit must be at least 1, after at most %d bytes",
                         RCS_NAME_MAX);
    if ((rc = rcs_call(c, &v, "names", "suy", prefix ? prefix : "", limit, after, *alen)) < 0)
        return rc;
    names = rcs_map_get(v, "names");
    next = rcs_map_get(v, "next");
    if (!names || names->type != RCS_ARRAY || names->via.array.len > limit || !next ||
        (next->type != RCS_NIL && (next->type != RCS_STR || next->via.bytes.len > RCS_NAME_MAX ||
                                   next->via.bytes.len == 0))) {
        rcs_value_free(v);
        return set_error(c, RCS_EPROTO, "expected {\"names\": [...], \"next\": str or nil}");
    }
    if (!(*list = calloc(1, sizeof(**list)))) {
        rcs_value_free(v);
        return set_error(c, RCS_ENOMEM, NULL);
    }
    /* Move the array out of the reply: the pairs change owner, not place. */
    **list = *names;
    ((rcs_value *)names)->type = RCS_NIL;
    if (next->type == RCS_STR) {
        memcpy(after, next->via.bytes.ptr, next->via.bytes.len);
        *alen = next->via.bytes.len;
        *more = 1;
    }
    rcs_value_free(v);
    return 0;
}

int rcs_names(rcs_client *c, const char *prefix, uint64_t limit, rcs_value **list)
{
    char after[RCS_NAME_MAX];
    size_t alen = 0, cap = 0;
    rcs_value *all, *page;
    int more = 1, rc = 0;

    *list = NULL;
    if (limit == 0) /* nothing wanted, but a bad prefix is still an error */
        return rcs_call(c, list, "names", "su", prefix ? prefix : "", limit);
    if (!(all = calloc(1, sizeof(*all))))
        return set_error(c, RCS_ENOMEM, NULL);
    all->type = RCS_ARRAY;
    while (rc == 0 && more && all->via.array.len < limit) {
        uint64_t left = limit - all->via.array.len;
        size_t k;
        if ((rc = rcs_names_page(c, prefix, left < NAMES_PAGE ? left : NAMES_PAGE, after, &alen,
                                 &more, &page)) < 0)
            break;
        k = page->via.array.len;
        if (all->via.array.len + k > cap) {
            size_t ncap = cap ? cap : 16;
            rcs_value *p;
            while (ncap < all->via.array.len + k)
                ncap *= 2;
            if (!(p = realloc(all->via.array.items, ncap * sizeof(*p)))) {
                rcs_value_free(page);
                rc = set_error(c, RCS_ENOMEM, NULL);
                break;
            }
            all->via.array.items = p;
            cap = ncap;
        }
        if (k)
            memcpy(all->via.array.items + all->via.array.len, page->via.array.items,
                   k * sizeof(rcs_value));
        all->via.array.len += k;
        free(page->via.array.items); /* the pairs now belong to all */
        free(page);
    }
    if (rc < 0) {
        rcs_value_free(all);
        return rc;
    }
    *list = all;
    return 0;
}

/* The most ids asked for in one page: the server examines at most 65,536
 * refs a page, so a page never holds more. */
#define REFERRERS_PAGE 65536

/* Append the uints of array a to *ids (*n of *cap used). 0 or RCS_ENOMEM. */
static int append_uints(rcs_client *c, const rcs_value *a, uint64_t **ids, size_t *n, size_t *cap)
{
    if (*n + a->via.array.len > *cap || !*ids) {
        size_t ncap = *cap ? *cap : 16;
        uint64_t *p;
        while (ncap < *n + a->via.array.len)
            ncap *= 2;
        if (!(p = realloc(*ids, ncap * sizeof(*p))))
            return set_error(c, RCS_ENOMEM, NULL);
        *ids = p;
        *cap = ncap;
    }
    for (size_t i = 0; i < a->via.array.len; i++)
        (*ids)[(*n)++] = rcs_value_uint(&a->via.array.items[i], 0);
    return 0;
}

/* One page into *ids (grown with realloc; *n of *cap used); *cursor goes
 * from this page's start to the next one's (0: done). */
static int referrers_page(rcs_client *c, uint64_t id, uint64_t limit, uint64_t *cursor,
                          uint64_t **ids, size_t *n, size_t *cap)
{
    rcs_value *v;
    const rcs_value *a;
    int rc = SEND_OR_FAIL(c, "referrers", "uuu", id, limit, *cursor);
    if (rc < 0 || (rc = call_recv(c, &v)) < 0)
        return rc;
    a = rcs_map_get(v, "ids");
    if (!a || a->type != RCS_ARRAY || !rcs_map_get(v, "cursor") || a->via.array.len > limit) {
        rcs_value_free(v);
        return set_error(c, RCS_EPROTO, "expected {\"ids\": [...], \"cursor\": uint}");
    }
    rc = append_uints(c, a, ids, n, cap);
    if (rc == 0)
        *cursor = rcs_value_uint(rcs_map_get(v, "cursor"), 0);
    rcs_value_free(v);
    return rc;
}

int rcs_referrers_page(rcs_client *c, uint64_t id, uint64_t limit, uint64_t *cursor, uint64_t **ids,
                       size_t *n)
{
    size_t cap = 0;
    int rc;
    *ids = NULL;
    *n = 0;
    if (limit == 0)
        return set_error(c, RCS_EINVAL, "limit must be at least 1");
    rc = referrers_page(c, id, limit, cursor, ids, n, &cap);
    if (rc == 0 && !*ids && !(*ids = malloc(sizeof(uint64_t))))
        rc = set_error(c, RCS_ENOMEM, NULL);
    if (rc < 0) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

int rcs_referrers(rcs_client *c, uint64_t id, uint64_t limit, uint64_t **ids, size_t *n)
{
    uint64_t cursor = 0;
    size_t cap = 0;
    int rc = 0;
    *ids = NULL;
    *n = 0;
    if (limit == 0) { /* nothing wanted, but an unknown id is still NOT_FOUND */
        rcs_value *v;
        if ((rc = SEND_OR_FAIL(c, "referrers", "uu", id, (uint64_t)0)) == 0 &&
            (rc = call_recv(c, &v)) == 0)
            rcs_value_free(v);
    }
    while (rc == 0 && *n < limit) {
        uint64_t left = limit - *n;
        rc = referrers_page(c, id, left < REFERRERS_PAGE ? left : REFERRERS_PAGE, &cursor, ids, n,
                            &cap);
        if (cursor == 0)
            break;
    }
    if (rc == 0 && !*ids && !(*ids = malloc(sizeof(uint64_t))))
        rc = set_error(c, RCS_ENOMEM, NULL);
    if (rc < 0) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

int rcs_watch(rcs_client *c, uint64_t id)
{
    return rcs_call(c, NULL, "watch", "u", id);
}

int rcs_release_all(rcs_client *c, uint64_t *n)
{
    return call_uint(c, n, SEND_OR_FAIL(c, "release_all", ""));
}

int rcs_share(rcs_client *c, uint64_t id, uint32_t ttl, uint8_t *token, size_t cap, size_t *len)
{
    rcs_value *v;
    int rc =
        ttl ? rcs_call(c, &v, "share", "uu", id, (uint64_t)ttl) : rcs_call(c, &v, "share", "u", id);
    if (rc < 0)
        return rc;
    if (v->type != RCS_BIN || v->via.bytes.len > cap) {
        rc = v->type != RCS_BIN ? RCS_EPROTO : RCS_EINVAL;
        rcs_value_free(v);
        return set_error(c, rc, "the share token is not bytes or does not fit");
    }
    memcpy(token, v->via.bytes.ptr, v->via.bytes.len);
    *len = v->via.bytes.len;
    rcs_value_free(v);
    return 0;
}

int rcs_claim(rcs_client *c, const uint8_t *token, size_t len, uint64_t *id)
{
    return call_uint(c, id, SEND_OR_FAIL(c, "claim", "y", token, len));
}

int rcs_why(rcs_client *c, uint64_t id, rcs_value **out)
{
    return rcs_call(c, out, "why", "u", id);
}

int rcs_gc(rcs_client *c, rcs_gc_result *out)
{
    rcs_value *v;
    int rc = rcs_call(c, &v, "gc", "");
    if (rc < 0)
        return rc;
    if (out) {
        out->collected = rcs_value_uint(rcs_map_get(v, "collected"), 0);
        out->candidates = rcs_value_uint(rcs_map_get(v, "candidates"), 0);
        out->examined = rcs_value_uint(rcs_map_get(v, "examined"), 0);
        out->duration_us = rcs_value_uint(rcs_map_get(v, "duration_us"), 0);
    }
    rcs_value_free(v);
    return 0;
}

int rcs_stats(rcs_client *c, rcs_value **out)
{
    return rcs_call(c, out, "stats", "");
}

/* ---- failover ----
 * A blocking call keeps its request (after the msgid) while it waits, so
 * that a NOT_LEADER reply, which means nothing was done, can send it again
 * on the leader under a fresh msgid. A lost connection never resends: the
 * request may have been done. Reconnecting replays the session's hello. */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static uint64_t deadline_after(const rcs_client *c)
{
    return now_ns() + (uint64_t)c->failover_ms * 1000000u;
}

/* Send the session's hello again on a new connection: its auth and client
 * name, and the lease's resume token. 0 (also when there is nothing to
 * replay) or the hello's error. */
static int replay_hello(rcs_client *c)
{
    rcs_hello_opts o = {.auth = c->auth, .auth_len = c->auth_len, .client = c->client_name};
    rcs_hello_info r;
    rcs_value *v;
    int rc;
    if (c->lease_ttl) {
        o.resume = c->lease_token;
        o.resume_len = c->lease_token_len;
    }
    if (!o.auth && !o.client && !o.resume)
        return 0;
    if ((rc = send_hello(c, &o, 0)) < 0 || (rc = recv_live(c, &v)) < 0)
        return rc;
    parse_hello(v, &r);
    rcs_value_free(v);
    c->max_data_bytes = r.max_data_bytes;
    set_reply_cap(c);
    if (c->lease_ttl && r.token_len) { /* the token may have been renewed */
        memcpy(c->lease_token, r.token, r.token_len);
        c->lease_token_len = r.token_len;
    }
    return 0;
}

/* Close the connection (no reply is owed on it) without losing anything. */
static void detach(rcs_client *c)
{
    close_conn(c, 1);
    c->expect = c->next_msgid;
}

/* Connect again: to the leader the last NOT_LEADER named if any, else to
 * the next address of the list, and replay the session's hello; until that
 * works or deadline_ns passes, backing off (50 ms doubling to 500 ms) while
 * no leader is known, the session is still attached to a closing
 * connection, or a whole round of the list refused. Only called with no
 * reply owed by the connection. 0, or the last error, with a message that
 * says where it went; SESSION_EXPIRED (the lease could not be resumed) and
 * other refusals of the hello end it at once. */
static int reconnect(rcs_client *c, uint64_t deadline_ns)
{
    size_t lost = c->lost, failed = 0, hops = 0, tries = 0;
    int lost_err = c->lost_err, rc = RCS_ECONNECT, wait = c->no_leader && !c->leader;
    char lost_msg[sizeof(c->lost_msg)], why[sizeof(c->errmsg)] = "no address tried";

    memcpy(lost_msg, c->lost_msg, sizeof(lost_msg));
    detach(c);
    for (;;) {
        char *target;
        SSL *ssl;
        int fd, hinted = c->leader != NULL;
        if (wait) {
            uint64_t now = now_ns(), left;
            if (now >= deadline_ns && tries > 0)
                break;
            if (now >= deadline_ns)
                now = deadline_ns; /* one try at least, at once */
            left = (deadline_ns - now) / 1000000u;
            c->backoff = c->backoff ? (c->backoff * 2 > 500 ? 500 : c->backoff * 2) : 50;
            sleep_ms(c->backoff < left ? c->backoff : (unsigned)left);
        }
        if (c->leader) {
            target = c->leader;
            c->leader = NULL;
            hops++;
        } else {
            target = strdup(c->addrs[c->next_addr]);
            c->next_addr = (c->next_addr + 1) % c->naddrs;
            hops = 0;
        }
        if (!target)
            return set_error(c, RCS_ENOMEM, NULL);
        tries++;
        {
            uint64_t now = now_ns();
            int left = now < deadline_ns ? (int)((deadline_ns - now) / 1000000u) + 1 : 1;
            fd = open_address(
                c, target, c->naddrs > 1 && left > CONNECT_TIMEOUT_MS ? CONNECT_TIMEOUT_MS : left,
                &ssl);
        }
        if (fd < 0) {
            snprintf(why, sizeof(why), "%s", c->errmsg);
            free(target);
            rc = fd;
            if (rc == RCS_ENOMEM || rc == RCS_EINVAL) { /* the TLS options: no node fares better */
                c->follow = 1;
                return set_error(c, rc, "%s", why);
            }
            wait = ++failed % c->naddrs == 0;
            if (c->naddrs == 1 && !hinted) { /* nothing to fail over to: say why, plainly */
                c->follow = 1;
                return set_error(c, rc, "%s; the next request reconnects", why);
            }
        } else {
            attach(c, fd, ssl, target);
            rc = replay_hello(c);
            if (rc == 0) {
                c->follow = 0;
                c->no_leader = 0;
                c->reconnects++;
                return 0;
            }
            snprintf(why, sizeof(why), "%s", c->errmsg);
            c->lost = lost; /* the replayed hello is no request of the caller's */
            c->lost_err = lost_err;
            memcpy(c->lost_msg, lost_msg, sizeof(lost_msg));
            detach(c);
            if (rc == RCS_ENOT_LEADER) {
                wait = !c->leader || hops > c->naddrs; /* no leader, or hints going round */
            } else if (rc == RCS_ESESSION_BUSY) {
                wait = 1; /* the old connection's close has not been seen yet */
            } else if (rc == RCS_EIO || rc == RCS_EPROTO) {
                wait = ++failed % c->naddrs == 0;
            } else {
                if (rc == RCS_ESESSION_EXPIRED) { /* never resumed silently as a new one */
                    c->lease_ttl = 0;
                    c->lease_token_len = 0;
                }
                c->follow = 1;
                return set_error(c, rc, "the session could not be taken over on %s: %s%s", c->addr,
                                 why,
                                 rc == RCS_ESESSION_EXPIRED
                                     ? "; its holds are gone, the next request starts a new session"
                                     : "");
            }
        }
        if (now_ns() >= deadline_ns)
            break;
    }
    c->follow = 1;
    return set_error(c, rc, "no node took the request within %d ms: %s", c->failover_ms, why);
}

/* With no reply owed, see whether the server closed the connection since
 * (a dead leader, an idle timeout): one poll that does not wait. Bytes that
 * arrived (notifications) are kept for later; an end of stream marks the
 * connection failed, so the call starts on a new one instead of failing. */
static void check_closed(rcs_client *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (c->fd < 0 || poll(&p, 1, 0) <= 0)
        return;
    if (p.revents & (POLLIN | POLLHUP | POLLERR))
        read_some(c); /* on an end of stream or an error this fails the connection */
}

/* Start a blocking call: no reply may be pending; reconnect first if the
 * last connection failed or a NOT_LEADER asked to move. The call may go on
 * following the leader until the failover timeout from now. */
static int call_begin(rcs_client *c)
{
    if (pending_guard(c) < 0)
        return RCS_EINVAL;
    c->in_call = 0;
    c->call_deadline_ns = deadline_after(c);
    check_closed(c);
    if (c->follow || c->fd < 0)
        return reconnect(c, c->call_deadline_ns);
    return 0;
}

/* Keep the request just queued at mark of the output for call_resend: all
 * of it but the envelope's [0, msgid, prefix. 0 or RCS_ENOMEM (the request
 * is dropped). */
static int call_keep(rcs_client *c, size_t mark)
{
    const uint8_t *p = (const uint8_t *)c->out.data + mark;
    size_t head = 3; /* array header, type 0, then the msgid as msgpack packs a uint32 */
    if (p[2] == 0xcc)
        head += 1;
    else if (p[2] == 0xcd)
        head += 2;
    else if (p[2] == 0xce)
        head += 4;
    buf_reset(&c->call);
    if (buf_append(&c->call, p + head, c->out.len - mark - head) < 0) {
        buf_truncate(&c->out, mark);
        c->next_msgid--;
        return set_error(c, RCS_ENOMEM, NULL);
    }
    c->in_call = 1;
    return 0;
}

/* Queue the kept request again, under the next msgid. */
static int call_resend(rcs_client *c)
{
    size_t mark = c->out.len;
    msgpack_packer pk;
    rpc_packer_init(&pk, &c->out);
    c->out.oom = 0;
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, c->next_msgid);
    if (c->out.oom || buf_append(&c->out, c->call.data + c->call.off, buf_pending(&c->call)) < 0) {
        buf_truncate(&c->out, mark);
        return set_error(c, RCS_ENOMEM, NULL);
    }
    c->next_msgid++;
    return 0;
}

/* The reply of a blocking call: NOT_LEADER moves to the leader and asks
 * again until the call's deadline; every other outcome is the caller's. */
static int call_recv(rcs_client *c, rcs_value **result)
{
    int rc;
    for (;;) {
        rc = rcs_recv(c, result);
        if (rc != RCS_ENOT_LEADER || !c->in_call)
            break;
        if (now_ns() >= c->call_deadline_ns) {
            size_t n = strlen(c->errmsg);
            snprintf(c->errmsg + n, sizeof(c->errmsg) - n, "; gave up after %d ms", c->failover_ms);
            break;
        }
        if ((rc = reconnect(c, c->call_deadline_ns)) < 0 || (rc = call_resend(c)) < 0)
            break;
    }
    c->in_call = 0;
    return rc;
}
