/* journal: the append-only record log of a data directory. Records (see
 * record.h) go into numbered segment files, each preallocated so that a
 * full disk shows up when a segment is made, not in the middle of a record.
 * Appends of one loop iteration are buffered and handed to the kernel with
 * one write(2) by journal_commit; with --fsync always one fdatasync, run off
 * the loop as a libuv work request, then serves all of them (group commit).
 * A write or sync that fails puts the journal in a failed state: appends are
 * refused, the records not yet durable stay in memory, and they are written
 * again (truncating back to the last synced offset) until the disk takes
 * them. The module also reads a data directory back (journal_scan), checks
 * and repairs it, and holds the directory's lock. It does not apply records
 * to a store. docs/persistence.md has the file layout and the argument.
 *
 * Single-threaded like the loop: every function runs on the loop's thread;
 * only the fdatasync of a work request runs on libuv's thread pool. */
#ifndef RCS_SERVER_JOURNAL_H
#define RCS_SERVER_JOURNAL_H

#include "buf.h"
#include "record.h"

#include <stdint.h>
#include <uv.h>

#define JOURNAL_VERSION           1
#define JOURNAL_HEADER_BYTES      64
#define JOURNAL_SEGMENT_BYTES     (64ull << 20) /* default preallocation */
#define JOURNAL_MIN_SEGMENT_BYTES (1ull << 20)  /* tried when that does not fit */
#define JOURNAL_LOCK_FILE         "LOCK"
#define JOURNAL_ERR_BYTES         256

enum journal_fsync { JOURNAL_FSYNC_NO, JOURNAL_FSYNC_EVERYSEC, JOURNAL_FSYNC_ALWAYS };

/* Records up to index are as durable as the fsync mode promises (written for
 * no and everysec, synced for always): their replies may leave. */
typedef void (*journal_durable_cb)(void *ud, uint64_t index);

struct journal_opts {
    enum journal_fsync fsync;
    uint64_t segment_bytes;        /* 0: JOURNAL_SEGMENT_BYTES */
    uv_loop_t *loop;               /* NULL: sync inline in journal_commit (tools, tests) */
    journal_durable_cb on_durable; /* may be NULL */
    void *ud;
    /* The index of the first record of an empty journal (0: 1): the last
     * index of the snapshot it follows, plus one, so that a record never
     * takes an index the snapshot covers. */
    uint64_t first_index;
    /* The directory's lock, already taken with journal_lock_dir (recovery
     * reads the directory under it first): the journal keeps it. */
    int have_lock, lockfd;
};

struct journal {
    /* read-only: */
    uint64_t next_index;                /* the index the next appended record gets */
    uint64_t written_index;             /* the last index handed to the kernel */
    uint64_t durable_index;             /* the last index reported to on_durable */
    uint64_t seq;                       /* the current segment's sequence number */
    uint64_t bytes;                     /* bytes of records in the current segment */
    uint64_t syncs;                     /* fdatasync calls that succeeded */
    int failed;                         /* 0, or the error (negative errno) that stopped writes */
    char last_error[JOURNAL_ERR_BYTES]; /* what failed, with the file; "" if never */
    /* private: */
    struct journal_opts opts;
    char *dir;
    int dirfd, lockfd, fd;
    uint64_t seg_first;   /* first index of the current segment */
    uint64_t seg_size;    /* its preallocated size */
    uint64_t off;         /* end of what was written to it */
    uint64_t synced_off;  /* end of what a sync covered */
    uint64_t synced_idx;  /* the last index a sync covered */
    struct buf out;       /* from synced_off: written-unsynced bytes, then pending */
    uint64_t unsynced;    /* bytes at the front of out written but not synced */
    uint64_t rewrite;     /* after a failed sync: bytes at the front of out to write again */
    uint64_t rewrite_idx; /* the last index among them */
    int rotate;           /* start a new segment at the next commit */
    uv_work_t work;
    int sync_busy, sync_rc, closing;
    uint64_t sync_bytes, sync_idx; /* what the work request in flight covers */
    uv_timer_t timer;              /* everysec syncs; retries while failed */
    int timer_on;
};

/* Lock the data directory dir (a record lock on dir/LOCK, created if missing) for
 * this process. 0 and *fd set (keep it open while using dir), or a negative
 * errno with a message in err: -EWOULDBLOCK when another process (or another
 * open in this one) holds it. */
int journal_lock_dir(const char *dir, int *fd, char *err, size_t errlen);
/* Release a lock journal_lock_dir took (closes fd; -1: nothing). */
void journal_unlock_dir(int fd);

/* Open the journal of data directory dir for appending: lock it, find the
 * end of the last segment (a torn last record is cut off with a warning in
 * the log), or make the first segment, starting at o->first_index. If the
 * records end before o->first_index (a repair set segments aside that a
 * snapshot covers), appends go on at o->first_index in a new segment. 0, or
 * a negative errno with a message in err (the lock is taken, a segment is
 * damaged: run journal_check). */
int journal_open(struct journal *j, const char *dir, const struct journal_opts *o, char *err,
                 size_t errlen);
/* Write out and sync what is pending (blocking), stop the timer, release
 * the lock. With a loop, the caller runs it after this until the close
 * completes (libuv's rule for the timer); journal_close returns at once. */
void journal_close(struct journal *j);
/* 0 while appends are taken, else the error that stops them (j->failed). */
static inline int journal_error(const struct journal *j)
{
    return j->failed;
}
/* Buffer one record; *index (may be NULL) gets its index. 0, j->failed
 * while the journal is failed (nothing buffered), -EMSGSIZE or -ENOMEM. */
int journal_append(struct journal *j, const struct rec *r, uint64_t *index);
/* End of a loop iteration: hand the buffered records to the kernel with one
 * write (making a new segment first when they do not fit), then start the
 * sync that --fsync always asks for. Also the retry of a failed journal.
 * 0, or the error now in j->failed. */
int journal_commit(struct journal *j);
/* Room for bytes more of records: after 0, appends of that many bytes
 * cannot fail for memory. 0 or -ENOMEM. */
int journal_reserve(struct journal *j, uint64_t bytes);
/* Start a new segment at the next commit (before a snapshot). */
void journal_rotate(struct journal *j);
/* Delete the segments whose records all have an index <= index (a
 * snapshot holds them now), never the current one. Returns how many, or a
 * negative errno. */
int journal_drop_through(struct journal *j, uint64_t index);

/* ---- reading a data directory ---- */

struct journal_scan {
    uint64_t segments, records, bytes;
    uint64_t first_index, last_index; /* 0 if there are no records */
    int torn;                         /* a torn tail was found (not an error) */
    char torn_file[256];
    uint64_t torn_offset, torn_bytes;
    int damaged; /* the error (negative) of the first damage, or 0 */
    char damage_file[256];
    uint64_t damage_offset;
    char damage[JOURNAL_ERR_BYTES]; /* "FILE: offset N: what" */
};
/* Called for each record in index order; a negative return stops the scan
 * and is returned by journal_scan. */
typedef int (*journal_record_cb)(void *ud, uint64_t index, const struct rec *r);
/* Read every record of dir's segments in order (cb may be NULL: verify only).
 * A torn tail (the last record of the last segment cut short or failing its
 * checksum, with nothing but zeros after it) ends the scan and is reported
 * in out->torn; any other damage (a bad checksum with records after it, an
 * unknown or malformed record, a bad header, a gap between segments) stops
 * it: 0, the damage's error (REC_E*, -EBADMSG for headers) with out->damage
 * naming the file and offset, a callback's error, or an I/O errno. */
int journal_scan(const char *dir, journal_record_cb cb, void *ud, struct journal_scan *out);
/* --check-data: journal_scan without a callback. With repair, the first bad
 * record and everything after it in its segment are cut off (zeros), later
 * segments are renamed *.bad, and a torn tail is cut too; out then
 * describes what was there before. 0 if dir is (now) clean, else the error. */
int journal_check(const char *dir, int repair, struct journal_scan *out);

/* ---- test hooks ---- */

enum journal_io { JOURNAL_IO_WRITE, JOURNAL_IO_SYNC, JOURNAL_IO_ALLOC, JOURNAL_IO_KINDS };
/* Make calls of this kind fail with -err (EIO, ENOSPC) as mem_fail_after
 * does for allocations: after the next `after` succeed, `times` calls fail
 * (-1: every one from then on); after -1 turns it off. Counted across all
 * journals of the process. */
void journal_fail_io(enum journal_io kind, long after, long times, int err);
/* Calls of this kind made so far (successful or not). */
uint64_t journal_io_calls(enum journal_io kind);

#endif
