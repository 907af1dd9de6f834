/* tls: the server's TLS context, built from --tls-cert-file, --tls-key-file
 * and --tls-ca-file, and rebuilt on SIGHUP. One SSL_CTX at a time is
 * current: new handshakes take it; OpenSSL reference-counts contexts, so a
 * connection keeps the one it started with after a reload. The per
 * connection record layer is common/tlsio's, the listeners are server.c's,
 * the handshakes conn.c's. */
#ifndef RCS_SERVER_TLS_H
#define RCS_SERVER_TLS_H

#include <openssl/types.h>
#include <stddef.h>

struct config;

/* Build a server context from cfg's tls files: TLS 1.2 at least, forward
 * secret AEAD cipher suites only, the certificate chain and its key (which
 * must match), and with a CA file, mutual TLS (a client must present a
 * certificate that CA signed). Returns 0 and a new reference in *out, or
 * -EINVAL (the files: missing, unreadable, not PEM, a key that does not match
 * or is encrypted) or -ENOMEM, with one line in err (errlen bytes) that
 * names the setting, the file and OpenSSL's reason. */
int tls_server_ctx(const struct config *cfg, SSL_CTX **out, char *err, size_t errlen);

/* Warnings about a context that loaded (at start-up and on each reload),
 * none of them a refusal: a --tls-key-file that group or others may read or
 * write, a certificate that has expired or is not valid yet (with its
 * dates). Logged at warn, one line each. */
void tls_warn_files(const struct config *cfg, SSL_CTX *ctx);

#endif
