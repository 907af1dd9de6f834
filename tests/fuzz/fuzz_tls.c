/* fuzz_tls: arbitrary bytes fed to a tlsio as the peer's TLS records, the
 * way a tls:// listener (server side) or rcstore-bench (client side) feeds
 * what the network gave it. The first byte picks the side and how the rest
 * is cut into feeds; between feeds the owner's calls are made as conn.c
 * makes them (read until nothing, write a reply, drain the ciphertext,
 * every other time trim the idle buffers).
 * Checked: tlsio_read never returns more than asked; a failure is final
 * and has a one-line reason; nothing but TLSIO_EOF/EFAIL or a count comes
 * back. ASan and LeakSanitizer see tlsio's queues and BIO callbacks (OpenSSL
 * itself is not instrumented for coverage: the fuzzer's guidance is tlsio's
 * state machine and error paths, and the seeds are real handshakes). The
 * certificate is made in memory at start-up: no key is committed. */
#include "tlsio.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static SSL_CTX *server_ctx, *client_ctx;

/* A self-signed P-256 certificate for CN=localhost, made once. */
static void make_contexts(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name;
    if (!key || !x)
        abort();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    if (!X509_sign(x, key, EVP_sha256()))
        abort();
    server_ctx = SSL_CTX_new(TLS_server_method());
    client_ctx = SSL_CTX_new(TLS_client_method());
    if (!server_ctx || !client_ctx || SSL_CTX_use_certificate(server_ctx, x) != 1 ||
        SSL_CTX_use_PrivateKey(server_ctx, key) != 1)
        abort();
    SSL_CTX_set_min_proto_version(server_ctx, TLS1_2_VERSION);
    /* The client verifies nothing: a forged server flight gets further. */
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* Drain what t has to send, in two pieces (as a partial write would). */
static void drain(struct tlsio *t)
{
    const char *d;
    size_t n = tlsio_pending(t, &d);
    if (n > 1) {
        tlsio_consume(t, n / 2);
        n = tlsio_pending(t, &d);
    }
    tlsio_consume(t, n);
    if (tlsio_pending(t, &d) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tlsio *t;
    char buf[97];
    size_t off = 1, piece;
    int is_server, failed = 0;

    if (size == 0)
        return 0;
    if (!server_ctx)
        make_contexts();
    is_server = !(data[0] & 1);
    piece = (size_t)(data[0] >> 1) * 8 + 1; /* 1 to 1017 bytes a feed */
    if (tlsio_new(is_server ? server_ctx : client_ctx, is_server, is_server ? NULL : "localhost",
                  &t) < 0)
        abort();
    if (!is_server && tlsio_write(t, "hello", 5) < 0) /* held; sends the ClientHello */
        abort();
    drain(t);
    while (off < size) {
        size_t n = size - off < piece ? size - off : piece;
        ssize_t r;
        if (tlsio_feed(t, data + off, n) < 0)
            abort();
        off += n;
        while ((r = tlsio_read(t, buf, sizeof(buf))) > 0)
            if ((size_t)r > sizeof(buf))
                abort();
        if (r != 0 && r != TLSIO_EOF && r != TLSIO_EFAIL)
            abort();
        if (r == TLSIO_EFAIL) {
            const char *e = tlsio_error(t);
            if (!*e || strchr(e, '\n') || tlsio_read(t, buf, sizeof(buf)) != TLSIO_EFAIL ||
                tlsio_write(t, "x", 1) != TLSIO_EFAIL)
                abort();
            failed = 1;
        }
        if (!failed && tlsio_handshake_done(t)) {
            int w = tlsio_write(t, "reply", 5);
            if (w == TLSIO_EFAIL && !*tlsio_error(t))
                abort(); /* a failure always says why */
            if (w < 0 && w != TLSIO_EFAIL)
                abort();
            failed = w < 0;
        }
        drain(t);
        if (failed)
            break;
        if ((off / piece) & 1) /* the server's housekeeping of idle connections */
            tlsio_trim(t);
    }
    (void)tlsio_partial(t);
    (void)tlsio_peer_cn(t);
    tlsio_shutdown(t);
    drain(t);
    tlsio_free(t);
    return 0;
}
