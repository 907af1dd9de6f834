/* metrics: GET /metrics in the Prometheus text format (version 0.0.4),
 * served by libmicrohttpd from its own thread so that a slow or hostile
 * scraper can never block the event loop. The loop renders a snapshot of its
 * counters once a second (metrics_render, then metrics_publish) and the HTTP
 * thread serves copies of the latest one: the loop never waits on HTTP, and
 * the only shared state is one pointer under a mutex held for a swap or a
 * copy. Values are therefore at most a second old. */
#ifndef RCS_SERVER_METRICS_H
#define RCS_SERVER_METRICS_H

#include "buf.h"
#include "cmd.h"

#include <stddef.h>
#include <stdint.h>

struct metrics; /* opaque */

/* Start serving on uri (tcp://HOST:PORT, HOST as addr.h takes it: IPv4,
 * [IPv6] or a name; port 0 picks a free one, logged). 0, or a negative
 * errno with a one-line message in err (errlen bytes): -EINVAL when uri is
 * malformed or its name does not resolve, else the system's code from
 * bind or listen (-EADDRINUSE, -EACCES, -EADDRNOTAVAIL, ...). */
int metrics_start(struct metrics **out, const char *uri, char *err, size_t errlen);
/* Stop the HTTP thread and free everything. NULL is ignored. */
void metrics_stop(struct metrics *m);
/* The port actually bound. */
int metrics_port(const struct metrics *m);
/* Render the counters of env (and its store) as Prometheus text into out. */
void metrics_render(const struct cmd_env *env, struct buf *out);
/* Make len bytes at text the snapshot served from now on (copied). */
void metrics_publish(struct metrics *m, const char *text, size_t len);

#endif
