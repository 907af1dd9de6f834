/* tlsio: one TLS endpoint (OpenSSL 3) driven entirely through memory, with
 * no knowledge of sockets or event loops. The owner feeds it the bytes that
 * came from the network, reads the plaintext out, writes plaintext in and
 * sends the ciphertext it hands back; the handshake advances as a side
 * effect of those calls. Used by the server's TLS listeners and by
 * rcstore-bench. It does not build SSL_CTXs (server/tls.c and
 * common/tlsctx.c do) and it never blocks.
 *
 * Memory: the two byte queues (network in, network out) are allocated in
 * MEM_CLIENT and a queue that drains empty gives back all but a small
 * buffer, so an idle endpoint holds little beyond OpenSSL's own state. */
#ifndef RCS_COMMON_TLSIO_H
#define RCS_COMMON_TLSIO_H

#include <openssl/types.h>
#include <stddef.h>
#include <sys/types.h>

/* tlsio_read's outcomes beside a byte count. */
#define TLSIO_EOF   (-1) /* the peer closed cleanly (close_notify) */
#define TLSIO_EFAIL (-2) /* the handshake or a record failed: see tlsio_error */

struct tlsio;

/* Start a TLS endpoint on ctx (which it takes a reference on: the caller may
 * free or replace its own afterwards): the server side (is_server 1) or the
 * client side, with host the name to send as SNI and to verify the server's
 * certificate against (an IP literal is checked against the certificate's IP
 * addresses and sent as no SNI); NULL: neither. Whether the peer is verified
 * at all is the ctx's setting. Returns 0 and the endpoint in *out, -ENOMEM,
 * or -EPROTO (OpenSSL refused: e.g. a host it cannot check). */
int tlsio_new(SSL_CTX *ctx, int is_server, const char *host, struct tlsio **out);
/* Free t and everything it holds (NULL is ignored). Sends nothing: a clean
 * close is tlsio_shutdown then draining tlsio_pending. */
void tlsio_free(struct tlsio *t);

/* Queue len bytes that arrived from the network (copied). 0, or -ENOMEM
 * (nothing queued). */
int tlsio_feed(struct tlsio *t, const void *data, size_t len);

/* Plaintext that arrived: up to cap bytes into buf, advancing the handshake
 * first. Returns > 0: that many bytes; 0: nothing more until more input is
 * fed (call tlsio_pending: the handshake may have produced bytes to send);
 * TLSIO_EOF: the peer closed cleanly (close_notify); TLSIO_EFAIL: the
 * handshake or a record failed, and every later call fails the same way:
 * tlsio_error says why (whatever alert OpenSSL queued for the peer is in
 * tlsio_pending). */
ssize_t tlsio_read(struct tlsio *t, void *buf, size_t cap);

/* Encrypt all len bytes of plaintext into the queue for the network. Before
 * the handshake is done they are held (copied) and encrypted once it is, in
 * order. 0, -ENOMEM, or TLSIO_EFAIL (the endpoint failed earlier or now). */
int tlsio_write(struct tlsio *t, const void *data, size_t len);

/* Queue a close_notify for the peer (once the handshake is done; before, or
 * after a failure, nothing). Plaintext written later is refused. */
void tlsio_shutdown(struct tlsio *t);

/* The ciphertext waiting to go to the network: its length, and a pointer to
 * it in *data, valid until the next call on t. */
size_t tlsio_pending(struct tlsio *t, const char **data);
/* Drop the first n bytes of what tlsio_pending gave (n <= its length), once
 * they were handed to the kernel or copied. */
void tlsio_consume(struct tlsio *t, size_t n);

/* Give back what an idle endpoint holds beyond its state: OpenSSL's record
 * buffers (about 34 KiB, unless a record is under way in them) and the
 * queues' empty buffers. The next record allocates them again: for an
 * owner's housekeeping of connections idle for a while, not after every
 * read (SSL_MODE_RELEASE_BUFFERS does that, at about 10% of a small
 * record's cost). */
void tlsio_trim(struct tlsio *t);
/* 1 while part of a TLS record from the peer waits for the rest (queued
 * here or buffered by OpenSSL), else 0: an owner with an idle timeout treats
 * it as a message under way. */
int tlsio_partial(const struct tlsio *t);
/* 1 once the handshake completed, else 0. */
int tlsio_handshake_done(const struct tlsio *t);
/* Why the endpoint failed, in one line without a newline (e.g.
 * "certificate verify failed: unable to get local issuer certificate",
 * "wrong version number: is the port plaintext?"), or "" while it has not.
 * Holds no plaintext byte of the connection. */
const char *tlsio_error(const struct tlsio *t);
/* After the handshake: the common name in the subject of the peer's
 * certificate, if the peer presented one, it verified, and its subject holds
 * exactly one CN, of at most 256 bytes of UTF-8 without a control character
 * (no NUL, no newline); else NULL. Valid as long as t. */
const char *tlsio_peer_cn(const struct tlsio *t);
/* Bytes this endpoint holds in its queues (input not yet decrypted, output
 * not yet sent, plaintext held for the handshake): for MEM_CLIENT accounting
 * and output bounds. OpenSSL's own per-connection state is not counted. */
size_t tlsio_buffered(const struct tlsio *t);

#endif
