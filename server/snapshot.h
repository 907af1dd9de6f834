/* snapshot: the whole state of a store in one file, for compaction and
 * recovery. A snapshot is written to a temporary name, synced, renamed over
 * the last one and the directory synced, so the name always shows a
 * complete file. The writer only reads the store, so it can run in a child
 * made by fork() while the parent goes on serving (copy-on-write, as Redis
 * does); snapshot_fork does exactly that. The reader streams the records
 * back to a callback and verifies the file whole; snapshot_load rebuilds a
 * store from them (store_load.c). Replaying the journal after it is the
 * apply layer's job (docs/persistence.md).
 *
 * The file: a 64-byte header (magic "RCSSNAP\0", u32 version, u32 flags,
 * u64 last journal index, u64 unix time, zeros, u32 CRC32C of bytes 0-59),
 * then snapshot records (record.h), each with its own CRC, in this order:
 * SNAP_HEAD, SNAP_IDS, SNAP_FREE*, SNAP_SESS*, SNAP_OBJ*, SNAP_HOLDS*,
 * SNAP_NAME*, SNAP_SHARE*, SNAP_END, and nothing after. */
#ifndef RCS_SERVER_SNAPSHOT_H
#define RCS_SERVER_SNAPSHOT_H

#include "record.h"
#include "store.h"

#include <stdint.h>
#include <sys/types.h>

#define SNAPSHOT_VERSION      1
#define SNAPSHOT_HEADER_BYTES 64
#define SNAPSHOT_FILE         "snapshot.rcs"
#define SNAPSHOT_TMP_FILE     "snapshot.tmp"
#define SNAPSHOT_CHUNK_ITEMS  4096 /* pairs per SNAP_FREE or SNAP_HOLDS record */

struct snapshot_info {
    uint64_t last_index; /* the journal index the snapshot includes */
    uint64_t unix_time;  /* when it was written */
    uint64_t bytes, records;
    uint64_t objects, names, sessions, shares;
};

/* Write st (as of journal index last_index; now_ms on the store clock, for
 * the tokens' time left) to dir/SNAPSHOT_FILE through dir/SNAPSHOT_TMP_FILE.
 * Only reads st. 0 with *info filled (may be NULL), or a negative errno with
 * a message in err; a failed write leaves the previous snapshot in place.
 * -EBUSY while a collection holds garbage it has not freed (OBJ_GARBAGE,
 * hide_white): its GC_FREE record is not written yet, so that state is no
 * journal index's; the caller starts the snapshot after the free phase. */
int snapshot_write(const struct store *st, const char *dir, uint64_t last_index, uint64_t now_ms,
                   struct snapshot_info *info, char *err, size_t errlen);
/* snapshot_write in a child process: fork, write, _exit(0) on success or
 * _exit(1) after logging why. The child touches no libuv handle. 0 and *pid
 * (reap it with waitpid), or -errno if fork failed. */
int snapshot_fork(const struct store *st, const char *dir, uint64_t last_index, uint64_t now_ms,
                  pid_t *pid);

/* Called for each record in file order; a negative return stops the read
 * and is returned. */
typedef int (*snapshot_record_cb)(void *ud, const struct rec *r);
/* Read and verify the snapshot at path, streaming its records to cb (may be
 * NULL). 0 with *info filled; -ENOENT if there is none; or the damage
 * (-EBADMSG for the header and the structure, REC_E* for a record) with
 * err naming the file and the offset. Nothing is trusted before the
 * SNAP_END record matched the counts, so a caller applies records to a
 * scratch store and throws it away on an error. */
int snapshot_read(const char *path, snapshot_record_cb cb, void *ud, struct snapshot_info *info,
                  char *err, size_t errlen);

/* Load the snapshot at path into st, a store fresh from store_init (and
 * nothing else): objects with their ids, refs and counts, the id allocator
 * as it was, sessions (detached and not queued for their lease's end: the
 * caller queues or ends them after replaying the journal; ending ones go
 * on releasing their holds through store_expire), names, and share tokens
 * whose ttl restarts at full from now_ms. Everything is verified as it
 * comes. 0 with *info filled (may be NULL); -ENOENT if there is none;
 * -EBADMSG or a REC_E* code for damage, -ENOMEM, or another -errno, with err
 * naming the file, the offset and what is wrong. On an error st is
 * half-built: the caller must store_close it (which frees all of it). */
int snapshot_load(struct store *st, const char *path, uint64_t now_ms, struct snapshot_info *info,
                  char *err, size_t errlen);

#endif
