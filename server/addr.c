/* addr: tcp://HOST:PORT into a socket address (see addr.h). */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Split "HOST:PORT" ("[v6]:PORT" too) into host and port. */
static int split(const char *rest, char *host, size_t hostlen, int *port)
{
    const char *colon;
    char *end;
    long p;
    size_t n;

    if (rest[0] == '[') {
        const char *close = strchr(rest, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        n = (size_t)(close - rest - 1);
        if (n == 0 || n >= hostlen)
            return -EINVAL;
        memcpy(host, rest + 1, n);
        host[n] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(rest, ':');
        if (!colon)
            return -EINVAL;
        n = (size_t)(colon - rest);
        if (n == 0 || n >= hostlen)
            return -EINVAL;
        memcpy(host, rest, n);
        host[n] = '\0';
    }
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || colon[1] == '-' || colon[1] == '+' || p < 0 ||
        p > 65535)
        return -EINVAL;
    *port = (int)p;
    return 0;
}

int addr_resolve_tcp(const char *hostport, struct sockaddr_storage *sa, char *err, size_t errlen)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
    struct addrinfo hints, *res, *ai, *pick = NULL;
    char host[256];
    int port, rc;

    if (split(hostport, host, sizeof(host), &port) < 0) {
        snprintf(err, errlen, "not tcp://HOST:PORT, tls://HOST:PORT or unix:///PATH");
        return -EINVAL;
    }
    memset(sa, 0, sizeof(*sa));
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, NULL, &hints, &res)) != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return rc == EAI_AGAIN || rc == EAI_MEMORY || rc == EAI_SYSTEM ? -EAGAIN : -ENOENT;
    }
    for (ai = res; ai; ai = ai->ai_next)
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    for (ai = res; ai && !pick; ai = ai->ai_next)
        if (ai->ai_family == AF_INET6)
            pick = ai;
    if (!pick) {
        freeaddrinfo(res);
        snprintf(err, errlen, "cannot resolve %s: no IPv4 or IPv6 address", host);
        return -ENOENT;
    }
    memcpy(sa, pick->ai_addr, pick->ai_addrlen);
    freeaddrinfo(res);
    if (sa->ss_family == AF_INET)
        v4->sin_port = htons((uint16_t)port);
    else
        v6->sin6_port = htons((uint16_t)port);
    return 0;
}

void addr_format(const struct sockaddr_storage *sa, char *out, size_t len)
{
    char name[INET6_ADDRSTRLEN];
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, name, sizeof(name));
        snprintf(out, len, "[%s]:%d", name, ntohs(v6->sin6_port));
    } else {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, name, sizeof(name));
        snprintf(out, len, "%s:%d", name, ntohs(v4->sin_port));
    }
}
