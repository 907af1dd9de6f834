/* tls: the server's SSL_CTX (see tls.h). */
#include "tls.h"
#include "config.h"
#include "log.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* TLS 1.2's suites: ECDHE for forward secrecy, AEAD only (Mozilla's
 * "intermediate" list without the DHE ones). TLS 1.3's are OpenSSL's
 * defaults, all of them AEAD. */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* An encrypted key would make OpenSSL prompt on the terminal: a daemon
 * answers no passphrase (the load then fails, and says so). */
static int no_passphrase(char *buf, int size, int rwflag, void *ud)
{
    (void)buf, (void)size, (void)rwflag, (void)ud;
    return 0;
}

/* One line about file (the setting key) into err: where it was set, the
 * path, what failed, and why (errno when the file could not be opened,
 * else OpenSSL's first error). Clears OpenSSL's error queue. -EINVAL. */
static int file_error(const struct config *cfg, const char *key, const char *path, const char *what,
                      char *err, size_t errlen)
{
    char where[320], why[256];
    unsigned long e = ERR_get_error();
    FILE *f;
    if (config_source(cfg, key, where, sizeof(where)) < 0)
        snprintf(where, sizeof(where), "--%s ", key);
    if (!(f = fopen(path, "r"))) {
        snprintf(why, sizeof(why), "%s", strerror(errno));
    } else {
        fclose(f);
        if (e && ERR_reason_error_string(e))
            snprintf(why, sizeof(why), "%s", ERR_reason_error_string(e));
        else
            snprintf(why, sizeof(why), "OpenSSL error %lx", e);
    }
    ERR_clear_error();
    snprintf(err, errlen, "%s%s: %s: %s", where, path, what, why);
    return -EINVAL;
}

int tls_server_ctx(const struct config *cfg, SSL_CTX **out, char *err, size_t errlen)
{
    static const unsigned char sid_ctx[] = "rcstored";
    SSL_CTX *ctx;
    int rc, mismatch = 0;

    if (!cfg->tls_cert_file || !cfg->tls_key_file) {
        snprintf(err, errlen, "a tls:// listener needs --tls-cert-file and --tls-key-file");
        return -EINVAL;
    }
    ERR_clear_error();
    if (!(ctx = SSL_CTX_new(TLS_server_method()))) {
        ERR_clear_error();
        snprintf(err, errlen, "cannot make a TLS context: out of memory");
        return -ENOMEM;
    }
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS)) {
        ERR_clear_error();
        snprintf(err, errlen, "cannot set the TLS versions and cipher suites");
        rc = -ENOMEM;
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* No SSL_MODE_RELEASE_BUFFERS: it frees and allocates OpenSSL's two
     * record buffers around every read batch (about 8% of a batch's TLS cost
     * in perf/tls_bench); conn_trim_idle gives them back once a connection
     * has been idle for a second instead. */
    /* One TLS 1.3 ticket per handshake is enough to resume (the default
     * makes two, each an encryption). Tickets are keyed per context: a
     * reload makes earlier ones full handshakes again. */
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_file) != 1) {
        rc = file_error(cfg, "tls-cert-file", cfg->tls_cert_file, "cannot load the certificate",
                        err, errlen);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_file, SSL_FILETYPE_PEM) != 1) {
        int why = ERR_GET_REASON(ERR_peek_last_error());
        mismatch = ERR_GET_LIB(ERR_peek_last_error()) == ERR_LIB_X509 &&
                   (why == X509_R_KEY_VALUES_MISMATCH || why == X509_R_KEY_TYPE_MISMATCH);
        if (!mismatch) {
            rc = file_error(cfg, "tls-key-file", cfg->tls_key_file,
                            "cannot load the private key (PEM, not encrypted)", err, errlen);
            goto fail;
        }
    }
    /* A key of another type than the certificate's loads, into its own slot. */
    if (mismatch || SSL_CTX_check_private_key(ctx) != 1) {
        char cert[300];
        snprintf(cert, sizeof(cert), "does not match the certificate of %s", cfg->tls_cert_file);
        rc = file_error(cfg, "tls-key-file", cfg->tls_key_file, cert, err, errlen);
        goto fail;
    }
    if (cfg->tls_ca_file) {
        STACK_OF(X509_NAME) * names;
        if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca_file, NULL) != 1 ||
            !(names = SSL_load_client_CA_file(cfg->tls_ca_file))) {
            rc = file_error(cfg, "tls-ca-file", cfg->tls_ca_file, "cannot load the CA certificates",
                            err, errlen);
            goto fail;
        }
        /* Tells clients which CA to pick a certificate for. */
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return rc;
}

/* t as "YYYY-MM-DD HH:MM:SS UTC" into buf (n bytes). */
static void asn1_time_str(const ASN1_TIME *t, char *buf, size_t n)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, n, "(unreadable)");
}

void tls_warn_files(const struct config *cfg, SSL_CTX *ctx)
{
    struct stat sb;
    X509 *cert = SSL_CTX_get0_certificate(ctx);

    if (cfg->tls_key_file && stat(cfg->tls_key_file, &sb) == 0 && (sb.st_mode & 077))
        log_warn("--tls-key-file %s is %s by group or others (mode %03o): chmod 600 it",
                 cfg->tls_key_file, (sb.st_mode & 044) ? "readable" : "writable",
                 (unsigned)(sb.st_mode & 0777));
    if (cert) {
        const ASN1_TIME *nb = X509_get0_notBefore(cert), *na = X509_get0_notAfter(cert);
        char before[40], after[40];
        asn1_time_str(nb, before, sizeof(before));
        asn1_time_str(na, after, sizeof(after));
        /* X509_cmp_current_time: -1 earlier than now, 1 later, 0 an error. */
        if (na && X509_cmp_current_time(na) < 0)
            log_warn("--tls-cert-file %s expired on %s (notAfter): clients that check it "
                     "refuse the handshake; renew it and send SIGHUP",
                     cfg->tls_cert_file, after);
        else if (nb && X509_cmp_current_time(nb) > 0)
            log_warn("--tls-cert-file %s is not valid before %s (notBefore; notAfter %s): "
                     "clients that check it refuse the handshake until then",
                     cfg->tls_cert_file, before, after);
    }
}
