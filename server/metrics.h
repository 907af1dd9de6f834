/* metrics: GET /metrics in the Prometheus text format (version 0.0.4), and
 * the probes GET /healthz and GET /readyz, served by libmicrohttpd from its
 * own thread so that a slow or hostile scraper can never block the event
 * loop. The loop renders a snapshot of its counters once a second
 * (metrics_render, then metrics_publish) and beats a heartbeat with its
 * readiness (metrics_heartbeat); the HTTP thread serves copies of the latest
 * snapshot, with the process_* families it reads from /proc itself when
 * scraped. The loop never waits on HTTP, and the only shared state is under
 * a mutex held for a swap or a copy. Values are therefore at most a second
 * old. /healthz answers 200 "ok" while the heartbeat is at most
 * METRICS_STALL_MS old, else 503 (the loop is stuck); /readyz answers 200
 * "ready" when, besides, the server serves requests, else 503 with why. */
#ifndef RCS_SERVER_METRICS_H
#define RCS_SERVER_METRICS_H

#include "buf.h"
#include "cmd.h"

#include <stddef.h>
#include <stdint.h>

struct metrics; /* opaque */

/* A heartbeat older than this makes /healthz and /readyz answer 503: the
 * loop beats once a second, and no request or slice holds it for more
 * than a few milliseconds. */
#define METRICS_STALL_MS 5000

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
/* The loop is turning: the heartbeat, and whether the server serves
 * requests (ready), else why not (one line, copied; NULL for none). */
void metrics_heartbeat(struct metrics *m, int ready, const char *why_not);
/* CLOCK_MONOTONIC in milliseconds: the heartbeat's clock. */
uint64_t metrics_clock_ms(void);
/* Make len bytes at text the snapshot served from now on (copied). */
void metrics_publish(struct metrics *m, const char *text, size_t len);

#endif
