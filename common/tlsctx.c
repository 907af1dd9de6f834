/* tlsctx: the client's OpenSSL context, the peer name a connection checks,
 * and failures as one line (see tlsctx.h). */
#include "tlsctx.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* The reason of the oldest error queued (the one that started the
 * failure), or 0; the queue is emptied. */
static unsigned long first_error(void)
{
    unsigned long e = ERR_get_error(), next;
    while ((next = ERR_get_error()) != 0) {
        if (ERR_GET_LIB(e) != ERR_LIB_SSL && ERR_GET_LIB(next) == ERR_LIB_SSL)
            e = next; /* a system or PEM detail first: the SSL reason says more */
    }
    return e;
}

static const char *reason(unsigned long e)
{
    const char *r = ERR_reason_error_string(e);
    return r ? r : "unknown error";
}

/* A file the caller named: readable at all? One line in err if not. */
static int readable(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -EINVAL;
    }
    fclose(f);
    return 0;
}

/* A file OpenSSL refused, with its oldest error, which says the most. */
static int fail_file(const char *what, const char *path, const char *expect, char *err,
                     size_t errlen)
{
    unsigned long e = ERR_get_error();
    snprintf(err, errlen, "%s %s: no usable %s in it (%s)", what, path, expect,
             e ? reason(e) : "no reason given");
    ERR_clear_error();
    return -EINVAL;
}

int tlsctx_client(const char *ca, const char *cert, const char *key, int insecure, SSL_CTX **out,
                  char *err, size_t errlen)
{
    SSL_CTX *ctx;
    int rc = -EINVAL;

    *out = NULL;
    if (!cert != !key) {
        snprintf(err, errlen, "a client certificate needs its key, and a key its certificate");
        return -EINVAL;
    }
    if ((ca && readable("CA file", ca, err, errlen) < 0) ||
        (cert && readable("certificate file", cert, err, errlen) < 0) ||
        (key && readable("key file", key, err, errlen) < 0))
        return -EINVAL;
    ERR_clear_error();
    if (!(ctx = SSL_CTX_new(TLS_client_method()))) {
        snprintf(err, errlen, "cannot make a TLS context: out of memory");
        return -ENOMEM;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        snprintf(err, errlen, "cannot require TLS 1.2: %s", reason(first_error()));
        goto fail;
    }
    if (ca) {
        if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
            rc = fail_file("CA file", ca, "PEM certificate", err, errlen);
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, errlen, "cannot load the system's CA store: %s", reason(first_error()));
        goto fail;
    }
    if (cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
            rc = fail_file("certificate file", cert, "PEM certificate", err, errlen);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            if (ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
                rc = fail_file("key file", key, "PEM private key", err, errlen);
                goto fail;
            }
            ERR_clear_error(); /* said below, with both names */
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            snprintf(err, errlen, "key file %s does not match certificate file %s", key, cert);
            goto fail;
        }
    }
    SSL_CTX_set_verify(ctx, insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return rc;
}

int tlsctx_set_peer(SSL *ssl, const char *host)
{
    unsigned char addr[16];
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1 ? 0 : -ENOMEM;
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1)
        return -ENOMEM;
    return 0;
}

/* What a handshake that failed on this reason most likely means. */
static const char *hint(int r, int handshaking)
{
    switch (r) {
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return handshaking ? " (is the port plaintext?)" : "";
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
        return " (does the server require a client certificate?)";
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
        return ": the server refused the client certificate";
    default:
        return "";
    }
}

void tlsctx_error(const SSL *ssl, int ssl_error, int handshaking, char *buf, size_t len)
{
    int saved = errno;
    unsigned long e = first_error();
    long vr;

    switch (ssl_error) {
    case SSL_ERROR_ZERO_RETURN:
        snprintf(buf, len, "the server closed the TLS session");
        return;
    case SSL_ERROR_SYSCALL:
        if (e)
            break;
        if (saved == 0)
            snprintf(buf, len, "the server closed the connection%s",
                     handshaking ? " during the handshake (is the port plaintext?)" : "");
        else
            snprintf(buf, len, "%s", strerror(saved));
        return;
    case SSL_ERROR_SSL:
        break;
    default:
        if (!e) {
            snprintf(buf, len, "TLS error %d", ssl_error);
            return;
        }
    }
    if (!e) {
        snprintf(buf, len, "a TLS error with no reason given");
        return;
    }
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
        (vr = SSL_get_verify_result(ssl)) != X509_V_OK) {
        const char *name = X509_VERIFY_PARAM_get0_host(SSL_get0_param((SSL *)ssl), 0);
        char *ip = X509_VERIFY_PARAM_get1_ip_asc(SSL_get0_param((SSL *)ssl));
        if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
            snprintf(buf, len, "certificate verify failed (%s: the certificate is not for %s)",
                     X509_verify_cert_error_string(vr),
                     name ? name
                     : ip ? ip
                          : "this server");
        else
            snprintf(buf, len, "certificate verify failed (%s)", X509_verify_cert_error_string(vr));
        OPENSSL_free(ip);
        return;
    }
    if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED) {
        snprintf(buf, len, "the server requires a client certificate (%s)", reason(e));
        return;
    }
    snprintf(buf, len, "%s%s", reason(e),
             ERR_GET_LIB(e) == ERR_LIB_SSL ? hint(ERR_GET_REASON(e), handshaking) : "");
}
