/* addr: the TCP addresses of --listen and --metrics-listen, tcp://HOST:PORT
 * (and --listen's tls://HOST:PORT), turned into a socket address. One parser
 * for all, so that they accept the same forms. Not a listener: binding is
 * the caller's. */
#ifndef RCS_SERVER_ADDR_H
#define RCS_SERVER_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Resolve hostport ("HOST:PORT", the part after "tcp://" or "tls://") into *sa. HOST is
 * a numeric IPv4 address, an IPv6 address in brackets ("[::1]:7373"), or a
 * host name, resolved with getaddrinfo now (it blocks: call it at start-up
 * only); a name binds its first IPv4 address, or its first IPv6 address
 * when it has no IPv4 one. PORT is 0 to 65535.
 * Returns 0, or a negative code with a one-line message in err (errlen
 * bytes) that does not repeat hostport: -EINVAL when it is not HOST:PORT,
 * -ENOENT when the name does not resolve, -EAGAIN when the resolver failed
 * for now (try again later). */
int addr_resolve_tcp(const char *hostport, struct sockaddr_storage *sa, char *err, size_t errlen);

/* Write sa as "HOST:PORT" ("[v6]:PORT") into out (len bytes). */
void addr_format(const struct sockaddr_storage *sa, char *out, size_t len);

#endif
