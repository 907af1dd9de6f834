/* Unit tests for common/tlsio: a client endpoint against a server endpoint,
 * the bytes moved between them in memory by the test. Certificates are made
 * at test time with the openssl command into a temporary directory (a CA,
 * a server certificate for 127.0.0.1 and localhost, a client certificate
 * with CN=alice, and a second CA that signed nothing). Checked: the
 * handshake, a large round trip both ways, plaintext written before the
 * handshake, mutual TLS and the peer's CN (none when it holds a control
 * character or there are two), the wrong CA, the wrong host
 * name, a missing client certificate, garbage and a corrupted record,
 * close_notify, and what an idle endpoint keeps. */
#include "cmocka_pre.h"

#include "mem.h"
#include "tlsio.h"
#include "tmpdir.h"

#include <errno.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[] = "/tmp/test_tlsio.XXXXXX";

static const char *file(const char *name)
{
    static char p[4][128];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
    return p[i];
}

/* Run a shell command in dir; fail the test run if it fails. */
static int sh(const char *cmd)
{
    char full[1024];
    snprintf(full, sizeof(full), "cd %s && (%s) >/dev/null 2>&1", dir, cmd);
    return system(full);
}

static int make_certs(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
        /* EC keys: quick to make. */
#define KEY "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    if (sh("openssl req -x509 " KEY " -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca") ||
        sh("openssl req -x509 " KEY
           " -keyout wrong.key -out wrong.pem -days 2 -subj /CN=other-ca") ||
        sh("printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext") ||
        sh("openssl req " KEY " -keyout srv.key -out srv.csr -subj /CN=localhost") ||
        sh("openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
           "-extfile san.ext -out srv.pem") ||
        sh("openssl req " KEY " -keyout alice.key -out alice.csr -subj /O=test/CN=alice") ||
        sh("openssl x509 -req -in alice.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
           "-out alice.pem")) {
        fprintf(stderr, "test_tlsio: could not make certificates with openssl\n");
        return -1;
    }
#undef KEY
    return 0;
}

static int remove_certs(void **state)
{
    (void)state;
    rm_dir(dir);
    return 0;
}

/* The server's context; with a CA, clients must present a certificate. */
static SSL_CTX *server_ctx(const char *ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, file("srv.pem")), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, file("srv.key"), SSL_FILETYPE_PEM), 1);
    if (ca) {
        assert_int_equal(SSL_CTX_load_verify_locations(ctx, file(ca), NULL), 1);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
}

/* A client's context trusting ca, presenting cert (NULL: none). */
static SSL_CTX *client_ctx(const char *ca, const char *cert, int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (max_version)
        SSL_CTX_set_max_proto_version(ctx, max_version);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, file(ca), NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cert) {
        char key[64];
        snprintf(key, sizeof(key), "%.*s.key", (int)(strlen(cert) - 4), cert);
        assert_int_equal(SSL_CTX_use_certificate_file(ctx, file(cert), SSL_FILETYPE_PEM), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, file(key), SSL_FILETYPE_PEM), 1);
    }
    return ctx;
}

struct pair {
    struct tlsio *c, *s;
};

static void pair_new(struct pair *p, SSL_CTX *cctx, SSL_CTX *sctx, const char *host)
{
    assert_int_equal(tlsio_new(cctx, 0, host, &p->c), 0);
    assert_int_equal(tlsio_new(sctx, 1, NULL, &p->s), 0);
    /* The endpoints hold their own references. */
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void pair_free(struct pair *p)
{
    tlsio_free(p->c);
    tlsio_free(p->s);
}

/* Move what from has to send into to; returns the bytes moved. */
static size_t move(struct tlsio *from, struct tlsio *to)
{
    const char *d;
    size_t n = tlsio_pending(from, &d);
    if (n > 0) {
        assert_int_equal(tlsio_feed(to, d, n), 0);
        tlsio_consume(from, n);
    }
    return n;
}

/* Drive both sides until neither has anything to send. Returns the last
 * tlsio_read results of each side in rc[0] (client) and rc[1] (server);
 * plaintext read is appended to cbuf/sbuf (when given). */
struct sink {
    char *p;
    size_t len, cap;
};

static void drain(struct tlsio *t, struct sink *k, ssize_t *rc)
{
    char buf[16384];
    ssize_t n;
    while ((n = tlsio_read(t, buf, sizeof(buf))) > 0) {
        if (k) {
            assert_true(k->len + (size_t)n <= k->cap);
            memcpy(k->p + k->len, buf, (size_t)n);
            k->len += (size_t)n;
        }
    }
    *rc = n;
}

static void run(struct pair *p, struct sink *ck, struct sink *sk, ssize_t rc[2])
{
    for (int round = 0; round < 1000; round++) {
        size_t moved;
        drain(p->c, ck, &rc[0]);
        moved = move(p->c, p->s);
        drain(p->s, sk, &rc[1]);
        moved += move(p->s, p->c);
        if (moved == 0) {
            drain(p->c, ck, &rc[0]);
            if (tlsio_pending(p->c, &(const char *){0}) == 0)
                return;
        }
    }
    fail_msg("the endpoints never went quiet");
}

static void handshake_and_round_trip(void **state)
{
    struct pair p;
    ssize_t rc[2];
    size_t big = 3 * 1024 * 1024 + 17;
    char *up = malloc(big), *down = malloc(big);
    struct sink ck = {malloc(big), 0, big}, sk = {malloc(big), 0, big};
    (void)state;
    for (size_t i = 0; i < big; i++) {
        up[i] = (char)(i * 7 + 1);
        down[i] = (char)(i * 13 + 5);
    }
    pair_new(&p, client_ctx("ca.pem", NULL, 0), server_ctx(NULL), "localhost");
    assert_false(tlsio_handshake_done(p.c));
    run(&p, NULL, NULL, rc);
    assert_true(tlsio_handshake_done(p.c));
    assert_true(tlsio_handshake_done(p.s));
    assert_int_equal(rc[0], 0);
    assert_int_equal(rc[1], 0);
    assert_null(tlsio_peer_cn(p.s)); /* no client certificate */
    assert_string_equal(tlsio_error(p.c), "");

    /* Several MiB each way, written in uneven pieces. */
    for (size_t off = 0; off < big;) {
        size_t n = big - off < 100003 ? big - off : 100003;
        assert_int_equal(tlsio_write(p.c, up + off, n), 0);
        assert_int_equal(tlsio_write(p.s, down + off, n), 0);
        off += n;
        run(&p, &ck, &sk, rc);
    }
    assert_int_equal(sk.len, big);
    assert_int_equal(ck.len, big);
    assert_memory_equal(sk.p, up, big);
    assert_memory_equal(ck.p, down, big);

    /* Trimmed, both hold nothing of their queues, and still work. */
    tlsio_trim(p.c);
    tlsio_trim(p.s);
    assert_int_equal(tlsio_buffered(p.c), 0);
    assert_int_equal(tlsio_buffered(p.s), 0);
    sk.len = 0;
    assert_int_equal(tlsio_write(p.c, "after trim", 10), 0);
    run(&p, &ck, &sk, rc);
    assert_int_equal(sk.len, 10);
    assert_memory_equal(sk.p, "after trim", 10);

    /* close_notify reaches the other side as TLSIO_EOF. */
    tlsio_shutdown(p.c);
    assert_int_equal(tlsio_write(p.c, "x", 1), TLSIO_EFAIL);
    run(&p, NULL, NULL, rc);
    assert_int_equal(rc[1], TLSIO_EOF);

    /* Drained queues give back their burst-sized buffers. */
    assert_true(tlsio_buffered(p.s) <= 2 * (16384 + 1024));
    pair_free(&p);
    free(up);
    free(down);
    free(ck.p);
    free(sk.p);
}

/* Plaintext written before the handshake (a client's first request) is held
 * and arrives after it, in order; the same over TLS 1.2. */
static void write_before_handshake(void **state)
{
    for (int v = 0; v < 2; v++) {
        struct pair p;
        ssize_t rc[2];
        char buf[64];
        struct sink sk = {buf, 0, sizeof(buf)};
        (void)state;
        pair_new(&p, client_ctx("ca.pem", NULL, v ? TLS1_2_VERSION : 0), server_ctx(NULL),
                 "127.0.0.1");
        assert_int_equal(tlsio_write(p.c, "hello ", 6), 0);
        assert_true(tlsio_buffered(p.c) > 0);
        assert_int_equal(tlsio_write(p.c, "world", 5), 0);
        run(&p, NULL, &sk, rc);
        assert_int_equal(sk.len, 11);
        assert_memory_equal(buf, "hello world", 11);
        pair_free(&p);
    }
}

static void mutual_tls_gives_the_cn(void **state)
{
    struct pair p;
    ssize_t rc[2];
    (void)state;
    pair_new(&p, client_ctx("ca.pem", "alice.pem", 0), server_ctx("ca.pem"), "localhost");
    run(&p, NULL, NULL, rc);
    assert_true(tlsio_handshake_done(p.s));
    assert_int_equal(rc[1], 0);
    assert_non_null(tlsio_peer_cn(p.s));
    assert_string_equal(tlsio_peer_cn(p.s), "alice");
    pair_free(&p);
}

/* A client context whose certificate the test CA signed, with the subject
 * CN entries given (made with OpenSSL's API: the openssl command cannot
 * write a control character into a name). */
static SSL_CTX *client_ctx_cns(const char *const *cns, int ncns)
{
    SSL_CTX *ctx = client_ctx("ca.pem", NULL, 0);
    FILE *f = fopen(file("ca.pem"), "r");
    X509 *ca = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    EVP_PKEY *ca_key, *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);
    assert_non_null(ca);
    fclose(f);
    f = fopen(file("ca.key"), "r");
    assert_non_null(f);
    ca_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(ca_key);
    assert_non_null(key);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 77);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    for (int i = 0; i < ncns; i++)
        assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                                    (const unsigned char *)cns[i], -1, -1, 0),
                         1);
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    assert_true(X509_sign(x, ca_key, EVP_sha256()) > 0);
    assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    return ctx;
}

/* A CN is given only when it is one, without control characters. */
static void peer_cn_only_when_clean(void **state)
{
    static const char *const bob[] = {"bob"}, *const forged[] = {"al\nice"},
                             *const two[] = {"alice", "admin"}, *const utf8[] = {"J\xc3\xb6rg"};
    static const struct {
        const char *const *cns;
        int n;
        const char *expect;
    } cases[] = {{bob, 1, "bob"}, {forged, 1, NULL}, {two, 2, NULL}, {utf8, 1, "J\xc3\xb6rg"}};
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pair p;
        ssize_t rc[2];
        pair_new(&p, client_ctx_cns(cases[i].cns, cases[i].n), server_ctx("ca.pem"), "localhost");
        run(&p, NULL, NULL, rc);
        assert_true(tlsio_handshake_done(p.s)); /* the certificate is fine: only no name */
        assert_int_equal(rc[1], 0);
        if (cases[i].expect)
            assert_string_equal(tlsio_peer_cn(p.s), cases[i].expect);
        else
            assert_null(tlsio_peer_cn(p.s));
        pair_free(&p);
    }
}

static void assert_contains(const char *s, const char *part)
{
    if (!strstr(s, part))
        fail_msg("\"%s\" does not say \"%s\"", s, part);
}

static void wrong_ca_fails_readably(void **state)
{
    struct pair p;
    ssize_t rc[2];
    char buf[16];
    (void)state;
    pair_new(&p, client_ctx("wrong.pem", NULL, 0), server_ctx(NULL), "localhost");
    run(&p, NULL, NULL, rc);
    assert_int_equal(rc[0], TLSIO_EFAIL);
    assert_contains(tlsio_error(p.c), "certificate verify failed");
    assert_contains(tlsio_error(p.c), "local issuer");
    assert_null(strchr(tlsio_error(p.c), '\n'));
    /* The client's alert failed the server too, readably. */
    assert_int_equal(rc[1], TLSIO_EFAIL);
    assert_true(strlen(tlsio_error(p.s)) > 0);
    /* Failed for good. */
    assert_int_equal(tlsio_read(p.c, buf, sizeof(buf)), TLSIO_EFAIL);
    assert_int_equal(tlsio_write(p.c, "x", 1), TLSIO_EFAIL);
    pair_free(&p);
}

static void wrong_host_fails(void **state)
{
    struct pair p;
    ssize_t rc[2];
    (void)state;
    pair_new(&p, client_ctx("ca.pem", NULL, 0), server_ctx(NULL), "example.com");
    run(&p, NULL, NULL, rc);
    assert_int_equal(rc[0], TLSIO_EFAIL);
    assert_contains(tlsio_error(p.c), "hostname mismatch");
    pair_free(&p);
    pair_new(&p, client_ctx("ca.pem", NULL, 0), server_ctx(NULL), "127.0.0.2");
    run(&p, NULL, NULL, rc);
    assert_int_equal(rc[0], TLSIO_EFAIL);
    assert_contains(tlsio_error(p.c), "IP address mismatch");
    pair_free(&p);
}

/* The server requires a certificate: without one, or with one from another
 * CA, the server fails; the client learns it from the alert. */
static void client_certificate_required(void **state)
{
    struct pair p;
    ssize_t rc[2];
    (void)state;
    for (int v = 0; v < 2; v++) {
        pair_new(&p, client_ctx("ca.pem", NULL, v ? TLS1_2_VERSION : 0), server_ctx("ca.pem"),
                 "localhost");
        run(&p, NULL, NULL, rc);
        assert_int_equal(rc[1], TLSIO_EFAIL);
        assert_contains(tlsio_error(p.s), "did not return a certificate");
        assert_int_equal(rc[0], TLSIO_EFAIL);
        assert_null(tlsio_peer_cn(p.s));
        pair_free(&p);
    }
    pair_new(&p, client_ctx("ca.pem", "wrong.pem", 0), server_ctx("ca.pem"), "localhost");
    run(&p, NULL, NULL, rc);
    assert_int_equal(rc[1], TLSIO_EFAIL);
    assert_contains(tlsio_error(p.s), "certificate verify failed");
    pair_free(&p);
}

/* Garbage instead of a ClientHello: a clean failure with a readable reason
 * that quotes none of the input; nothing to read ever after. */
static void garbage_fails_cleanly(void **state)
{
#define IN(s)                                                                                      \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
    static const struct {
        const char *p;
        size_t n;
    } inputs[] = {
        IN("GET / HTTP/1.1\r\nHost: secret-host\r\n\r\n"),
        IN("\x94\x00\x01\xa4ping\x90"),             /* a msgpack-RPC request */
        IN("\x16\x03\x01\x00\x05zzzzz"),            /* a handshake message of 8 MB */
        IN("\x16\x03\x01\xff\xff"),                 /* a record longer than allowed */
        IN("\x17\x03\x03\x00\x10secretsecret1234"), /* data before a handshake */
    };
#undef IN
    (void)state;
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        struct tlsio *s;
        SSL_CTX *ctx = server_ctx(NULL);
        char buf[64];
        const char *d;
        assert_int_equal(tlsio_new(ctx, 1, NULL, &s), 0);
        SSL_CTX_free(ctx);
        assert_int_equal(tlsio_feed(s, inputs[i].p, inputs[i].n), 0);
        if (i == 1) {
            /* Its high bit makes an SSLv2-style header of 5120 bytes: it
             * waits for them (which is why the server looks at the first
             * byte itself), then fails. */
            static const char more[8192];
            assert_int_equal(tlsio_read(s, buf, sizeof(buf)), 0);
            assert_int_equal(tlsio_feed(s, more, sizeof(more)), 0);
        }
        assert_int_equal(tlsio_read(s, buf, sizeof(buf)), TLSIO_EFAIL);
        assert_true(strlen(tlsio_error(s)) > 0);
        assert_null(strstr(tlsio_error(s), "secret"));
        assert_null(strstr(tlsio_error(s), "ping"));
        if (i == 0)
            assert_contains(tlsio_error(s), "the peer does not speak TLS?");
        assert_int_equal(tlsio_read(s, buf, sizeof(buf)), TLSIO_EFAIL);
        assert_false(tlsio_handshake_done(s));
        (void)tlsio_pending(s, &d);
        tlsio_free(s);
    }
    /* Random bytes (a fixed seed) in pieces: always a failure, never a crash. */
    srand(17);
    for (int round = 0; round < 200; round++) {
        struct tlsio *s;
        SSL_CTX *ctx = server_ctx(NULL);
        char in[512], buf[64];
        ssize_t r = 0;
        for (size_t i = 0; i < sizeof(in); i++)
            in[i] = (char)rand();
        if (round % 2)
            in[0] = 0x16, in[1] = 0x03, in[2] = 0x01; /* past the first check */
        assert_int_equal(tlsio_new(ctx, 1, NULL, &s), 0);
        SSL_CTX_free(ctx);
        for (size_t off = 0; off < sizeof(in) && r >= 0; off += 64) {
            assert_int_equal(tlsio_feed(s, in + off, 64), 0);
            r = tlsio_read(s, buf, sizeof(buf));
            assert_true(r == 0 || r == TLSIO_EFAIL);
        }
        tlsio_free(s);
    }
}

/* A record damaged in flight after the handshake fails the receiver. */
static void corrupted_record_fails(void **state)
{
    struct pair p;
    ssize_t rc[2];
    const char *d;
    char buf[64], copy[256];
    size_t n;
    (void)state;
    pair_new(&p, client_ctx("ca.pem", NULL, 0), server_ctx(NULL), "localhost");
    run(&p, NULL, NULL, rc);
    assert_int_equal(tlsio_write(p.c, "secret request", 14), 0);
    n = tlsio_pending(p.c, &d);
    assert_true(n > 20 && n <= sizeof(copy));
    memcpy(copy, d, n);
    tlsio_consume(p.c, n);
    copy[n - 3] ^= 0x40;
    assert_int_equal(tlsio_feed(p.s, copy, n), 0);
    assert_int_equal(tlsio_read(p.s, buf, sizeof(buf)), TLSIO_EFAIL);
    assert_contains(tlsio_error(p.s), "bad record mac");
    assert_null(strstr(tlsio_error(p.s), "secret"));
    pair_free(&p);
}

static void out_of_memory(void **state)
{
    struct tlsio *s;
    SSL_CTX *ctx = server_ctx(NULL);
    (void)state;
    mem_fail_after(0);
    assert_int_equal(tlsio_new(ctx, 1, NULL, &s), -ENOMEM);
    mem_fail_after(-1);
    assert_int_equal(tlsio_new(ctx, 1, NULL, &s), 0);
    mem_fail_after(0);
    assert_int_equal(tlsio_feed(s, "\x16\x03\x01", 3), -ENOMEM);
    mem_fail_after(-1);
    assert_int_equal(tlsio_buffered(s), 0);
    tlsio_free(s);
    SSL_CTX_free(ctx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handshake_and_round_trip),    cmocka_unit_test(write_before_handshake),
        cmocka_unit_test(mutual_tls_gives_the_cn),     cmocka_unit_test(peer_cn_only_when_clean),
        cmocka_unit_test(wrong_ca_fails_readably),     cmocka_unit_test(wrong_host_fails),
        cmocka_unit_test(client_certificate_required), cmocka_unit_test(garbage_fails_cleanly),
        cmocka_unit_test(corrupted_record_fails),      cmocka_unit_test(out_of_memory),
    };
    rcs_test_select(argc, argv);
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
