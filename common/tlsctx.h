/* tlsctx: the client side of TLS, for librcstore and rcstore-bench: an
 * OpenSSL context (TLS 1.2 or later, the server's CA from a file or the
 * system's store, an optional client certificate), the name one connection
 * expects its server to have, and one readable line for why a TLS call
 * failed. No I/O here, and not the server's context (server/tls). */
#ifndef RCS_COMMON_TLSCTX_H
#define RCS_COMMON_TLSCTX_H

#include <stddef.h>

#include <openssl/ssl.h>

/* A new client context in *out (free it with SSL_CTX_free). ca: a PEM file
 * of the certificates that may sign the server's (NULL: the system's default
 * store). cert and key: a PEM client certificate (chain) and its private
 * key, both or neither; they must match. insecure: do not verify the
 * server at all (for tests, as redis-cli --insecure). Returns 0, -EINVAL
 * with one line in err (errlen bytes) naming the file and what is wrong
 * with it (cannot be read, not PEM, the key does not match), or -ENOMEM. */
int tlsctx_client(const char *ca, const char *cert, const char *key, int insecure, SSL_CTX **out,
                  char *err, size_t errlen);

/* Say which server ssl (a client connection, before its handshake) expects:
 * host is a name (sent as SNI, and the certificate must carry it) or an IP
 * literal (IPv4 or IPv6 without brackets: the certificate must carry that
 * address; no SNI, which may not carry an address). A context made
 * insecure checks nothing. 0 or -ENOMEM. */
int tlsctx_set_peer(SSL *ssl, const char *host);

/* One line in buf (len bytes) saying why a TLS call on ssl failed, given
 * what SSL_get_error said of it (ssl_error), the thread's OpenSSL error
 * queue (which it empties) and errno: e.g. "certificate verify failed
 * (unable to get local issuer certificate)", "certificate verify failed
 * (hostname mismatch: the certificate is not for localhost)", "the server
 * closed the connection during the handshake (is the port plaintext?)",
 * "the server requires a client certificate (tlsv13 alert certificate
 * required)". handshaking: the call
 * was part of the handshake (an end of stream then hints at a plaintext
 * port). */
void tlsctx_error(const SSL *ssl, int ssl_error, int handshaking, char *buf, size_t len);

#endif
