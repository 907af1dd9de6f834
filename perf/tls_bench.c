/* tls_bench: what a tls:// connection costs the server per batch of
 * pipelined requests, in process, with no socket: a client tlsio and a
 * server tlsio in memory, the server's side timed in thread CPU time (so a
 * loaded machine's preemptions do not count). One batch is what
 * rcstore-bench -P 16 -t incref makes: 16 increfs in one record, 16
 * replies in one record; the server side is tlsio_feed, tlsio_read until
 * nothing is left, tlsio_write, and the ciphertext handed out and consumed
 * (as conn.c does), with the SSL_CTX options of server/tls.c. It prints the
 * server's nanoseconds per batch with OpenSSL's SSL_MODE_RELEASE_BUFFERS on
 * and off (rcstored keeps the buffers and trims idle connections instead).
 * usage: tls_bench [BATCHES] [ROUNDS] */
#include "tlsio.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PIPELINE 16

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "tls_bench: %s\n", what);
    exit(1);
}

/* A self-signed P-256 certificate, in memory. */
static void contexts(int release, SSL_CTX **sctx, SSL_CTX **cctx)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name;
    if (!key || !x)
        die("cannot make a key");
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    if (!X509_sign(x, key, EVP_sha256()))
        die("cannot sign");
    *sctx = SSL_CTX_new(TLS_server_method());
    *cctx = SSL_CTX_new(TLS_client_method());
    if (!*sctx || !*cctx || SSL_CTX_use_certificate(*sctx, x) != 1 ||
        SSL_CTX_use_PrivateKey(*sctx, key) != 1)
        die("cannot make the contexts");
    SSL_CTX_set_min_proto_version(*sctx, TLS1_2_VERSION);
    SSL_CTX_set_options(*sctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    if (release)
        SSL_CTX_set_mode(*sctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_num_tickets(*sctx, 1);
    SSL_CTX_set_verify(*cctx, SSL_VERIFY_NONE, NULL);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* Move what from has to send into to. */
static void move(struct tlsio *from, struct tlsio *to)
{
    const char *d;
    size_t n = tlsio_pending(from, &d);
    if (n && tlsio_feed(to, d, n) < 0)
        die("out of memory");
    tlsio_consume(from, n);
}

static size_t drain(struct tlsio *t, char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;
    while ((n = tlsio_read(t, buf + got, cap - got)) > 0)
        got += (size_t)n;
    if (n < 0)
        die(tlsio_error(t));
    return got;
}

/* ns of server CPU per batch over batches batches. */
static double run(int release, long batches)
{
    SSL_CTX *sctx, *cctx;
    struct tlsio *c, *s;
    char req[PIPELINE * 16], rep[PIPELINE * 8], buf[65536];
    uint64_t spent = 0;
    const char *d;

    contexts(release, &sctx, &cctx);
    if (tlsio_new(cctx, 0, NULL, &c) < 0 || tlsio_new(sctx, 1, NULL, &s) < 0)
        die("tlsio_new");
    for (int i = 0; i < 10; i++) { /* the handshake */
        drain(c, buf, sizeof(buf));
        move(c, s);
        drain(s, buf, sizeof(buf));
        move(s, c);
    }
    if (!tlsio_handshake_done(s) || !tlsio_handshake_done(c))
        die("no handshake");
    memset(req, 'q', sizeof(req));
    memset(rep, 'r', sizeof(rep));
    for (long b = 0; b < batches; b++) {
        uint64_t t0;
        size_t n;
        if (tlsio_write(c, req, sizeof(req)) < 0)
            die("client write");
        n = tlsio_pending(c, &d);
        t0 = cpu_ns();
        if (tlsio_feed(s, d, n) < 0 || drain(s, buf, sizeof(buf)) != sizeof(req) ||
            tlsio_write(s, rep, sizeof(rep)) < 0)
            die("server");
        n = tlsio_pending(s, &d);
        tlsio_consume(s, n); /* the kernel took it */
        spent += cpu_ns() - t0;
        /* (the client never reads the replies: the server's cost is the same) */
        tlsio_consume(c, tlsio_pending(c, &d));
    }
    tlsio_free(c);
    tlsio_free(s);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return (double)spent / (double)batches;
}

int main(int argc, char **argv)
{
    long batches = argc > 1 ? atol(argv[1]) : 200000;
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    for (int r = 0; r < rounds; r++)
        printf("batch of %d: server ns/batch: release_buffers %.0f, kept buffers %.0f\n", PIPELINE,
               run(1, batches), run(0, batches));
    return 0;
}
