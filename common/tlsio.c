/* tlsio: a TLS endpoint over two byte queues of our own (see tlsio.h). The
 * queues are plugged into OpenSSL as a minimal BIO method rather than
 * BIO_s_mem so that the ciphertext to send can be handed out in place
 * (tlsio_pending) and dropped without a copy (tlsio_consume), and so that
 * their memory is counted in MEM_CLIENT. */
#include "tlsio.h"

#include "mem.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

/* A queue starts at QUEUE_MIN bytes and doubles. One that drains empty keeps
 * its buffer only up to QUEUE_KEEP bytes (one full TLS record and its
 * overhead), so a burst does not stay allocated on an idle connection while
 * steady small traffic allocates nothing. */
#define QUEUE_MIN  4096
#define QUEUE_KEEP (16384 + 1024)
/* A TLS record carries at most RECORD_PLAINTEXT bytes and adds at most
 * RECORD_OVERHEAD with the AEAD suites offered here (29 with TLS 1.2's
 * GCM, 22 with TLS 1.3). */
#define RECORD_PLAINTEXT 16384
#define RECORD_OVERHEAD  64

/* Bytes at p + off, len of them, in a buffer of cap bytes (MEM_CLIENT). */
struct queue {
    char *p;
    size_t off, len, cap;
};

struct tlsio {
    SSL *ssl;
    struct queue in;   /* ciphertext from the network, not yet read by OpenSSL */
    struct queue out;  /* ciphertext for the network */
    struct queue hold; /* plaintext written before the handshake completed */
    unsigned is_server : 1, done : 1, failed : 1, shut : 1, has_cn : 1, eof : 1;
    char err[192];
    /* A CN is at most 64 characters (X.520): 4 UTF-8 bytes each at most. */
    char cn[257];
};

static void queue_free(struct queue *q)
{
    mem_free_in(MEM_CLIENT, q->p, q->cap);
    memset(q, 0, sizeof(*q));
}

/* Make room for n more bytes at the tail: 0 or -ENOMEM (the queue
 * unchanged). One allocation at most, to a power of two times QUEUE_MIN. */
static int queue_reserve(struct queue *q, size_t n)
{
    if (q->cap - q->off - q->len < n) {
        if (q->off > 0) {
            memmove(q->p, q->p + q->off, q->len);
            q->off = 0;
        }
        if (q->cap - q->len < n) {
            size_t cap = q->cap ? q->cap : QUEUE_MIN;
            char *p;
            while (cap - q->len < n) {
                if (cap > SIZE_MAX / 2)
                    return -ENOMEM;
                cap *= 2;
            }
            p = mem_realloc_in(MEM_CLIENT, q->p, q->cap, cap);
            if (!p)
                return -ENOMEM;
            q->p = p;
            q->cap = cap;
        }
    }
    return 0;
}

/* Append n bytes: 0 or -ENOMEM (the queue unchanged). */
static int queue_append(struct queue *q, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    if (queue_reserve(q, n) < 0)
        return -ENOMEM;
    memcpy(q->p + q->off + q->len, data, n);
    q->len += n;
    return 0;
}

static void queue_take(struct queue *q, size_t n)
{
    q->off += n;
    q->len -= n;
    if (q->len == 0) {
        q->off = 0;
        if (q->cap > QUEUE_KEEP)
            queue_free(q);
    }
}

/* The BIO method: a BIO's data is one of the endpoint's queues. Reading an
 * empty queue is "retry" (would block), never end of file: the end of the
 * stream is the owner's business (a socket EOF) or close_notify. */
static int bio_write(BIO *b, const char *data, int len)
{
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (queue_append(BIO_get_data(b), data, (size_t)len) < 0)
        return -1;
    return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
    struct queue *q = BIO_get_data(b);
    size_t n;
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (q->len == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    n = q->len < (size_t)len ? q->len : (size_t)len;
    memcpy(buf, q->p + q->off, n);
    queue_take(q, n);
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct queue *q = BIO_get_data(b);
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
    case BIO_CTRL_WPENDING:
        return q->len > LONG_MAX ? LONG_MAX : (long)q->len;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    (void)b;
    return 1;
}

static BIO_METHOD *bio_method;
static CRYPTO_ONCE bio_method_once = CRYPTO_ONCE_STATIC_INIT;

static void bio_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "rcs tlsio");
    if (!m)
        return;
    if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
        !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create) ||
        !BIO_meth_set_destroy(m, bio_destroy)) {
        BIO_meth_free(m);
        return;
    }
    bio_method = m;
}

/* A BIO of our method reading or writing q, or NULL. */
static BIO *bio_on(struct queue *q)
{
    BIO *b;
    if (!CRYPTO_THREAD_run_once(&bio_method_once, bio_method_make) || !bio_method)
        return NULL;
    b = BIO_new(bio_method);
    if (b)
        BIO_set_data(b, q);
    return b;
}

int tlsio_new(SSL_CTX *ctx, int is_server, const char *host, struct tlsio **out)
{
    struct tlsio *t = mem_calloc_in(MEM_CLIENT, sizeof(*t));
    BIO *rb = NULL, *wb = NULL;
    int rc = -ENOMEM;
    if (!t)
        return -ENOMEM;
    t->is_server = is_server != 0;
    t->ssl = SSL_new(ctx);
    rb = bio_on(&t->in);
    wb = bio_on(&t->out);
    if (!t->ssl || !rb || !wb)
        goto fail;
    SSL_set0_rbio(t->ssl, rb);
    SSL_set0_wbio(t->ssl, wb);
    rb = wb = NULL;
    /* A retried SSL_write may come from the hold queue, not the first buffer. */
    SSL_set_mode(t->ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* TLS 1.2 renegotiation would let a peer make us do handshakes at will. */
    SSL_set_options(t->ssl, SSL_OP_NO_RENEGOTIATION);
    /* OpenSSL takes what the queue holds in one read, not a record header
     * and then its body. */
    SSL_set_read_ahead(t->ssl, 1);
    if (is_server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if (host) {
            unsigned char addr[sizeof(struct in6_addr)];
            rc = -EPROTO;
            if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) {
                /* RFC 6066: no IP literal as SNI. */
                if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host))
                    goto fail;
            } else if (!SSL_set_tlsext_host_name(t->ssl, host) || !SSL_set1_host(t->ssl, host)) {
                goto fail;
            }
        }
    }
    *out = t;
    return 0;
fail:
    ERR_clear_error();
    BIO_free(rb);
    BIO_free(wb);
    tlsio_free(t);
    return rc;
}

void tlsio_free(struct tlsio *t)
{
    if (!t)
        return;
    SSL_free(t->ssl); /* frees the BIOs, not the queues */
    queue_free(&t->in);
    queue_free(&t->out);
    queue_free(&t->hold);
    mem_free_in(MEM_CLIENT, t, sizeof(*t));
}

int tlsio_feed(struct tlsio *t, const void *data, size_t len)
{
    return queue_append(&t->in, data, len);
}

/* Empty OpenSSL's error queue (of this thread) before an I/O call, whose
 * SSL_get_error would otherwise read whatever another caller left there.
 * ERR_clear_error itself walks all 16 slots and frees each one's strings:
 * a look first is an order of magnitude cheaper on the hot path. */
static void clear_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* Record why the endpoint failed (ssl_err: SSL_get_error's answer, read
 * before this clears OpenSSL's error queue) and fail it for good. */
static int fail(struct tlsio *t, int ssl_err)
{
    unsigned long e = ERR_get_error();
    if (e != 0) {
        const char *reason = ERR_reason_error_string(e);
        int lib = ERR_GET_LIB(e), why = ERR_GET_REASON(e);
        const char *more = "";
        if (lib == ERR_LIB_SSL && why == SSL_R_CERTIFICATE_VERIFY_FAILED)
            more = X509_verify_cert_error_string(SSL_get_verify_result(t->ssl));
        else if (lib == ERR_LIB_SSL &&
                 (why == SSL_R_WRONG_VERSION_NUMBER || why == SSL_R_HTTP_REQUEST ||
                  why == SSL_R_HTTPS_PROXY_REQUEST))
            more = t->is_server ? "the peer does not speak TLS?" : "is the port plaintext?";
        if (reason)
            snprintf(t->err, sizeof(t->err), "%s%s%s", reason, *more ? ": " : "", more);
        else
            snprintf(t->err, sizeof(t->err), "OpenSSL error %lx", e);
    } else if (ssl_err == SSL_ERROR_SYSCALL) {
        snprintf(t->err, sizeof(t->err), "out of memory in the TLS layer");
    } else {
        snprintf(t->err, sizeof(t->err), "TLS failure (SSL_get_error %d)", ssl_err);
    }
    ERR_clear_error();
    t->failed = 1;
    return TLSIO_EFAIL;
}

/* Once the handshake is done: the peer's verified certificate's CN. */
static void take_peer_cn(struct tlsio *t)
{
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    X509_NAME *name;
    const ASN1_STRING *s;
    unsigned char *u = NULL;
    int i, n;
    if (!x || SSL_get_verify_result(t->ssl) != X509_V_OK)
        return;
    name = X509_get_subject_name(x);
    i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
        return; /* none, or ambiguous */
    s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    n = ASN1_STRING_to_UTF8(&u, s);
    if (n > 0 && (size_t)n < sizeof(t->cn)) {
        /* A control character (a NUL cutting the name short, a newline
         * forging a log line) makes no name. */
        for (i = 0; i < n; i++)
            if (u[i] < 0x20 || u[i] == 0x7f)
                break;
        if (i == n) {
            memcpy(t->cn, u, (size_t)n);
            t->cn[n] = '\0';
            t->has_cn = 1;
        }
    }
    OPENSSL_free(u);
}

/* Encrypt len bytes now (the handshake is done). 0, -ENOMEM, TLSIO_EFAIL. */
static int encrypt(struct tlsio *t, const char *data, size_t len)
{
    /* Room for all the records at once, rather than a step of the queue's
     * growth every few records (RECORD_OVERHEAD bounds TLS 1.2 and 1.3's
     * AEAD header, nonce, tag and content type). */
    if (len > SIZE_MAX / 2 ||
        queue_reserve(&t->out, len + (len / RECORD_PLAINTEXT + 1) * RECORD_OVERHEAD) < 0)
        return -ENOMEM;
    while (len > 0) {
        size_t w = 0;
        int e;
        clear_errors();
        if (SSL_write_ex(t->ssl, data, len, &w)) {
            data += w;
            len -= w;
            continue;
        }
        e = SSL_get_error(t->ssl, 0);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            /* Not with our BIOs and renegotiation off; keep the bytes for
             * the next tlsio_read should OpenSSL ever ask. */
            ERR_clear_error();
            return queue_append(&t->hold, data, len);
        }
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
            fail(t, e);
            return -ENOMEM; /* our BIO could not grow its queue */
        }
        return fail(t, e);
    }
    return 0;
}

/* Advance the handshake. 1 done (now or before), 0 waiting for input,
 * or TLSIO_EFAIL. */
static int handshake(struct tlsio *t)
{
    int r, e;
    if (t->done)
        return 1;
    clear_errors();
    r = SSL_do_handshake(t->ssl);
    if (r != 1) {
        e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            ERR_clear_error();
            return 0;
        }
        return fail(t, e);
    }
    t->done = 1;
    take_peer_cn(t);
    return 1;
}

/* Encrypt what was held for the handshake. 0, -ENOMEM, TLSIO_EFAIL. */
static int flush_hold(struct tlsio *t)
{
    struct queue h = t->hold;
    int rc;
    if (h.len == 0)
        return 0;
    memset(&t->hold, 0, sizeof(t->hold));
    rc = encrypt(t, h.p + h.off, h.len);
    mem_free_in(MEM_CLIENT, h.p, h.cap);
    return rc;
}

ssize_t tlsio_read(struct tlsio *t, void *buf, size_t cap)
{
    size_t n = 0;
    int r, e;
    if (t->failed)
        return TLSIO_EFAIL;
    r = handshake(t);
    if (r <= 0)
        return r;
    if (t->hold.len > 0 && !t->shut && flush_hold(t) < 0) {
        if (!t->failed) {
            snprintf(t->err, sizeof(t->err), "out of memory in the TLS layer");
            t->failed = 1;
        }
        return TLSIO_EFAIL;
    }
    if (t->eof)
        return TLSIO_EOF;
    /* Nothing fed and nothing buffered: no record to read (the common end
     * of a drain), without a trip through OpenSSL to learn it. */
    if (cap == 0 || (t->in.len == 0 && !SSL_has_pending(t->ssl)))
        return 0;
    clear_errors();
    if (SSL_read_ex(t->ssl, buf, cap, &n))
        return (ssize_t)n;
    e = SSL_get_error(t->ssl, 0);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0; /* (no error was queued) */
    case SSL_ERROR_ZERO_RETURN:
        t->eof = 1;
        return TLSIO_EOF;
    default:
        return fail(t, e);
    }
}

int tlsio_write(struct tlsio *t, const void *data, size_t len)
{
    int r;
    if (t->failed || t->shut)
        return TLSIO_EFAIL;
    if (len == 0)
        return 0;
    /* A client's first write sends its ClientHello. */
    r = handshake(t);
    if (r < 0)
        return r;
    if (r == 0 || t->hold.len > 0)
        return queue_append(&t->hold, data, len);
    return encrypt(t, data, len);
}

void tlsio_shutdown(struct tlsio *t)
{
    if (t->done && !t->failed && !t->shut) {
        ERR_clear_error();
        (void)SSL_shutdown(t->ssl); /* 0: sent, the peer's not seen: fine */
        ERR_clear_error();
    }
    t->shut = 1;
}

size_t tlsio_pending(struct tlsio *t, const char **data)
{
    *data = t->out.len ? t->out.p + t->out.off : "";
    return t->out.len;
}

void tlsio_consume(struct tlsio *t, size_t n)
{
    assert(n <= t->out.len);
    if (n > 0)
        queue_take(&t->out, n);
}

void tlsio_trim(struct tlsio *t)
{
    if (!t->failed)
        (void)SSL_free_buffers(t->ssl); /* 0: in use, kept */
    if (t->in.len == 0)
        queue_free(&t->in);
    if (t->out.len == 0)
        queue_free(&t->out);
    if (t->hold.len == 0)
        queue_free(&t->hold);
}

int tlsio_partial(const struct tlsio *t)
{
    return t->in.len > 0 || SSL_has_pending(t->ssl);
}

int tlsio_handshake_done(const struct tlsio *t)
{
    return t->done;
}

const char *tlsio_error(const struct tlsio *t)
{
    return t->failed ? t->err : "";
}

const char *tlsio_peer_cn(const struct tlsio *t)
{
    return t->has_cn ? t->cn : NULL;
}

size_t tlsio_buffered(const struct tlsio *t)
{
    return t->in.cap + t->out.cap + t->hold.cap;
}
