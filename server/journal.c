/* journal: segment files, group commit, failure and retry, scanning and
 * repair of a data directory (see journal.h).
 *
 * A segment is "journal-<seq, 16 hex digits>.log": a 64-byte header
 *   magic "RCSJRNL\0" | u32 version | u32 flags (0) | u64 seq |
 *   u64 index of its first record | zeros | u32 CRC32C of bytes 0-59
 * then records back to back, then zeros to the preallocated size. A zero
 * record header marks the end of the data. A new segment is made under a
 * temporary name, preallocated, given its header, synced, renamed and the
 * directory synced, so a segment name never shows a half-made file. */
#define _GNU_SOURCE /* fallocate */
#include "journal.h"
#include "crc32c.h"
#include "le.h"
#include "log.h"
#include "mem.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char seg_magic[8] = "RCSJRNL";

/* ---- I/O with failure injection ---- */

static atomic_long fail_after[JOURNAL_IO_KINDS] = {-1, -1, -1};
static atomic_long fail_times[JOURNAL_IO_KINDS];
static atomic_int fail_err[JOURNAL_IO_KINDS];
static atomic_uint_fast64_t io_calls[JOURNAL_IO_KINDS];

void journal_fail_io(enum journal_io kind, long after, long times, int err)
{
    atomic_store(&fail_err[kind], err);
    atomic_store(&fail_times[kind], times);
    atomic_store(&fail_after[kind], after);
}

uint64_t journal_io_calls(enum journal_io kind)
{
    return atomic_load(&io_calls[kind]);
}

/* 0, or the injected -errno for this call. */
static int injected(enum journal_io kind)
{
    long n = atomic_load(&fail_after[kind]), t;
    atomic_fetch_add(&io_calls[kind], 1);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&fail_after[kind], &n, n - 1))
            return 0;
    }
    if (n != 0)
        return 0;
    t = atomic_load(&fail_times[kind]);
    if (t > 0 && atomic_fetch_sub(&fail_times[kind], 1) == 1)
        atomic_store(&fail_after[kind], -1); /* that was the last one */
    return -atomic_load(&fail_err[kind]);
}

static int io_write(int fd, const void *p, size_t n, uint64_t off)
{
    const char *c = p;
    int rc;
    if ((rc = injected(JOURNAL_IO_WRITE)) < 0)
        return rc;
    while (n > 0) {
        ssize_t w = pwrite(fd, c, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c += w;
        off += (uint64_t)w;
        n -= (size_t)w;
    }
    return 0;
}

static int io_sync(int fd)
{
    int rc;
    if ((rc = injected(JOURNAL_IO_SYNC)) < 0)
        return rc;
    return fdatasync(fd) < 0 ? -errno : 0;
}

/* Reserve size bytes of disk for fd (a full disk answers here). */
static int io_alloc(int fd, uint64_t size)
{
    int rc;
    if ((rc = injected(JOURNAL_IO_ALLOC)) < 0)
        return rc;
    if (fallocate(fd, 0, 0, (off_t)size) == 0)
        return 0;
    if (errno != EOPNOTSUPP)
        return -errno;
    /* A file system without fallocate: the size, without the reservation. */
    return ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
}

/* ---- little helpers ---- */

static int all_zero(const uint8_t *p, size_t n)
{
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        if (w)
            return 0;
    }
    while (n--)
        if (*p++)
            return 0;
    return 1;
}

static void seg_name(char *out, size_t n, uint64_t seq, const char *ext)
{
    snprintf(out, n, "journal-%016" PRIx64 ".%s", seq, ext);
}

static void header_encode(uint8_t h[JOURNAL_HEADER_BYTES], uint64_t seq, uint64_t first)
{
    memset(h, 0, JOURNAL_HEADER_BYTES);
    memcpy(h, seg_magic, 8);
    le_put32(h + 8, JOURNAL_VERSION);
    le_put64(h + 16, seq);
    le_put64(h + 24, first);
    le_put32(h + 60, crc32c(0, h, 60));
}

/* NULL if h (n bytes) is a good header, else what is wrong. */
static const char *header_decode(const uint8_t *h, size_t n, uint64_t *seq, uint64_t *first)
{
    if (n < JOURNAL_HEADER_BYTES)
        return "file shorter than its header";
    if (memcmp(h, seg_magic, 8) != 0)
        return "not a journal segment (bad magic)";
    if (crc32c(0, h, 60) != le_get32(h + 60))
        return "header checksum mismatch";
    if (le_get32(h + 8) != JOURNAL_VERSION)
        return "journal format version not supported by this rcstored";
    *seq = le_get64(h + 16);
    *first = le_get64(h + 24);
    if (*first == 0)
        return "header names record index 0";
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sequence numbers of dir's segments, sorted: *out (mem_alloc'd, *cap
 * entries of room) holds *n. 0 or a negative errno. */
static int list_segments(int dirfd, uint64_t **out, size_t *n, size_t *cap)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d;
    struct dirent *e;

    *out = NULL;
    *n = *cap = 0;
    if (fd < 0 || !(d = fdopendir(fd))) {
        int rc = -errno;
        if (fd >= 0)
            close(fd);
        return rc;
    }
    while ((e = readdir(d))) {
        uint64_t seq;
        char tail[8], expect[64];
        if (sscanf(e->d_name, "journal-%16" SCNx64 ".%7s", &seq, tail) != 2)
            continue;
        seg_name(expect, sizeof(expect), seq, "log");
        if (strcmp(expect, e->d_name) != 0)
            continue;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            uint64_t *p = mem_realloc(*out, *cap * 8, nc * 8);
            if (!p) {
                closedir(d);
                mem_free(*out, *cap * 8);
                *out = NULL;
                return -ENOMEM;
            }
            *out = p;
            *cap = nc;
        }
        (*out)[(*n)++] = seq;
    }
    closedir(d);
    if (*n)
        qsort(*out, *n, 8, cmp_u64);
    return 0;
}

static int fsync_dir(int dirfd)
{
    int rc;
    if ((rc = injected(JOURNAL_IO_SYNC)) < 0)
        return rc;
    return fsync(dirfd) < 0 ? -errno : 0;
}

/* ---- scanning one segment ---- */

struct seg_scan {
    uint64_t end;     /* offset after the last good record */
    uint64_t records; /* good records */
    int rc;           /* 0, or the damage (not a torn tail) */
    int torn;         /* a torn tail begins at end */
    const char *why;  /* damage text */
};

/* Walk the records of segment m (size bytes, header checked), calling cb
 * with index first + k. last: the newest segment, where a torn tail may be.
 * Returns 0 or cb's error; the outcome is in *ss. */
static int scan_segment(const uint8_t *m, size_t size, int last, uint64_t first,
                        journal_record_cb cb, void *ud, struct seg_scan *ss)
{
    size_t off = JOURNAL_HEADER_BYTES;
    memset(ss, 0, sizeof(*ss));
    while (off < size) {
        struct rec r;
        size_t used, after;
        int rc;
        if (size - off < REC_HEADER_BYTES || all_zero(m + off, REC_HEADER_BYTES)) {
            /* The end of the data, if nothing but zeros follows. */
            if (all_zero(m + off, size - off))
                break;
            if (last) {
                ss->torn = 1;
                break;
            }
            ss->rc = REC_ECRC;
            ss->why = "data after the end of the records";
            break;
        }
        rc = rec_decode(m + off, size - off, REC_KIND_JOURNAL, &r, &used);
        if (rc == 0) {
            if (cb && (rc = cb(ud, first + ss->records, &r)) < 0) {
                ss->end = off;
                return rc;
            }
            ss->records++;
            off += used;
            continue;
        }
        /* A record cut short, or one whose checksum fails with only zeros
         * after the extent its length claims, is where a write stopped. */
        after = rc == REC_ECRC ? off + REC_HEADER_BYTES + le_get32(m + off) : size;
        if (last && (rc == REC_ETRUNC || rc == REC_ECRC) && all_zero(m + after, size - after)) {
            ss->torn = 1;
            break;
        }
        ss->rc = rc;
        ss->why = rec_strerror(rc);
        break;
    }
    ss->end = off;
    return 0;
}

/* A read-only map of a whole file; *size 0 maps nothing. */
static int map_file(int dirfd, const char *name, const uint8_t **m, size_t *size)
{
    struct stat sb;
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC), rc = 0;
    *m = NULL;
    *size = 0;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &sb) < 0) {
        rc = -errno;
    } else if (sb.st_size > 0) {
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            rc = -errno;
        } else {
            *m = p;
            *size = (size_t)sb.st_size;
        }
    }
    close(fd);
    return rc;
}

static void unmap_file(const uint8_t *m, size_t size)
{
    if (m)
        munmap((void *)(uintptr_t)m, size);
}

/* ---- the lock ---- */

/* The directories this process holds (see journal_lock_dir). */
#define MAX_LOCKED 16
static struct {
    dev_t dev;
    ino_t ino;
    int fd; /* -1: a free entry */
} locked[MAX_LOCKED] = {[0 ... MAX_LOCKED - 1] = {.fd = -1}};

static int locked_here(dev_t dev, ino_t ino)
{
    for (int i = 0; i < MAX_LOCKED; i++)
        if (locked[i].fd >= 0 && locked[i].dev == dev && locked[i].ino == ino)
            return 1;
    return 0;
}

/* A POSIX record lock (fcntl F_SETLK), not flock: a record lock belongs to
 * the process and is not inherited by fork(), so a snapshot child never
 * holds the directory, and a server killed with SIGKILL can be restarted at
 * once even while its child is still dying. Such a lock is the process's,
 * so a second open in this process would succeed and, worse, closing that
 * second descriptor would drop the lock: the directories this process
 * holds are kept in a table and refused before anything is opened. */
int journal_lock_dir(const char *dir, int *fd, char *err, size_t errlen)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    char path[4096];
    struct stat sb;
    int f, rc, slot = -1;

    snprintf(path, sizeof(path), "%s/%s", dir, JOURNAL_LOCK_FILE);
    if (stat(path, &sb) == 0 && locked_here(sb.st_dev, sb.st_ino)) {
        snprintf(err, errlen, "data directory %s is in use by another rcstored (%s is locked)", dir,
                 path);
        return -EWOULDBLOCK;
    }
    for (int i = 0; i < MAX_LOCKED && slot < 0; i++)
        if (locked[i].fd < 0)
            slot = i;
    if (slot < 0) {
        snprintf(err, errlen, "cannot lock %s: this process holds %d data directories already",
                 path, MAX_LOCKED);
        return -EMFILE;
    }
    if ((f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open lock file %s: %s", path, strerror(-rc));
        return rc;
    }
    if (fstat(f, &sb) < 0 || fcntl(f, F_SETLK, &fl) < 0) {
        rc = errno == EACCES || errno == EAGAIN ? -EWOULDBLOCK : -errno;
        close(f);
        if (rc == -EWOULDBLOCK)
            snprintf(err, errlen, "data directory %s is in use by another rcstored (%s is locked)",
                     dir, path);
        else
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(-rc));
        return rc;
    }
    locked[slot].dev = sb.st_dev;
    locked[slot].ino = sb.st_ino;
    locked[slot].fd = f;
    *fd = f;
    return 0;
}

void journal_unlock_dir(int fd)
{
    if (fd < 0)
        return;
    for (int i = 0; i < MAX_LOCKED; i++)
        if (locked[i].fd == fd)
            locked[i].fd = -1;
    close(fd); /* releases the lock */
}

/* ---- writing ---- */

static int set_failed(struct journal *j, int rc, const char *what)
{
    char name[64];
    seg_name(name, sizeof(name), j->seq, "log");
    if (!j->failed)
        log_error("journal failed: %s %s/%s: %s; changes are refused until it can write again",
                  what, j->dir, name, strerror(-rc));
    j->failed = rc;
    snprintf(j->last_error, sizeof(j->last_error), "%s %s/%s: %s", what, j->dir, name,
             strerror(-rc));
    return rc;
}

/* Make segment seq (first record index first) of size bytes and switch to
 * it. The old segment needs no more syncing (the caller saw to it). */
static int new_segment(struct journal *j, uint64_t seq, uint64_t first, uint64_t size)
{
    char tmp[64], name[64];
    uint8_t h[JOURNAL_HEADER_BYTES];
    int fd, rc;

    seg_name(tmp, sizeof(tmp), seq, "tmp");
    seg_name(name, sizeof(name), seq, "log");
    if ((fd = openat(j->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
        return set_failed(j, -errno, "create");
    header_encode(h, seq, first);
    /* On a nearly full disk a whole segment may not fit where the records
     * waiting would: a smaller one (1 MiB, or what they need) lets writes
     * resume as soon as a little room is free, not a segment's worth. */
    if ((rc = io_alloc(fd, size)) == -ENOSPC) {
        uint64_t need = JOURNAL_HEADER_BYTES + buf_pending(&j->out);
        if (need < JOURNAL_MIN_SEGMENT_BYTES)
            need = JOURNAL_MIN_SEGMENT_BYTES;
        if (need < size) {
            size = need;
            rc = io_alloc(fd, size);
        }
    }
    if (rc < 0 || (rc = io_write(fd, h, sizeof(h), 0)) < 0 || (rc = io_sync(fd)) < 0 ||
        (renameat(j->dirfd, tmp, j->dirfd, name) < 0 && (rc = -errno)) ||
        (rc = fsync_dir(j->dirfd)) < 0) {
        close(fd);
        unlinkat(j->dirfd, tmp, 0); /* whatever space it took goes back */
        j->seq = seq;               /* for the message */
        set_failed(j, rc, "new segment");
        j->seq = seq - 1;
        return rc;
    }
    if (j->fd >= 0)
        close(j->fd);
    j->fd = fd;
    j->seq = seq;
    j->seg_first = first;
    j->seg_size = size;
    j->off = j->synced_off = JOURNAL_HEADER_BYTES;
    j->bytes = 0;
    j->rotate = 0;
    return 0;
}

static void report_durable(struct journal *j, uint64_t index)
{
    if (index > j->durable_index) {
        j->durable_index = index;
        if (j->opts.on_durable)
            j->opts.on_durable(j->opts.ud, index);
    }
}

static int start_sync(struct journal *j);

static void resumed(struct journal *j)
{
    if (j->failed) {
        log_info("journal resumed: the disk takes records again");
        j->failed = 0;
    }
}

/* A sync of sync_bytes (up to index sync_idx) ended with rc. */
static void sync_done(struct journal *j, int rc)
{
    if (rc < 0) {
        /* After a failed fdatasync the kernel may have dropped the pages:
         * what it covered is written again from memory before it counts. */
        set_failed(j, rc, "fdatasync");
        j->rewrite = j->unsynced;
        j->rewrite_idx = j->written_index;
        j->off = j->synced_off;
        j->unsynced = 0;
        j->written_index = j->synced_idx;
        return;
    }
    j->syncs++;
    buf_consume(&j->out, j->sync_bytes);
    j->unsynced -= j->sync_bytes;
    j->synced_off += j->sync_bytes;
    j->synced_idx = j->sync_idx;
    /* A sync that succeeds ends a failure only when nothing is left
     * unwritten (a write may have failed while it ran). */
    if (!j->rewrite && buf_pending(&j->out) == j->unsynced)
        resumed(j);
    if (j->opts.fsync == JOURNAL_FSYNC_ALWAYS)
        report_durable(j, j->sync_idx);
}

static void on_sync_work(uv_work_t *w)
{
    struct journal *j = w->data;
    j->sync_rc = io_sync(j->fd);
}

static void on_sync_done(uv_work_t *w, int status)
{
    struct journal *j = w->data;
    j->sync_busy = 0;
    sync_done(j, status < 0 ? status : j->sync_rc);
    if (j->closing || j->failed)
        return; /* a failure is retried by the timer (or the next commit) */
    /* Records that came while it ran, or a rotation that waited for it. */
    journal_commit(j);
    if (!j->sync_busy && j->unsynced && j->opts.fsync == JOURNAL_FSYNC_ALWAYS)
        start_sync(j);
}

/* Sync what is written and unsynced: off the loop if there is one (0:
 * started), else inline (0 or the error). */
static int start_sync(struct journal *j)
{
    int rc;
    assert(!j->sync_busy);
    if (!j->unsynced)
        return 0;
    j->sync_bytes = j->unsynced;
    j->sync_idx = j->written_index;
    if (!j->opts.loop) {
        sync_done(j, rc = io_sync(j->fd));
        return rc;
    }
    j->sync_busy = 1;
    j->work.data = j;
    if (uv_queue_work(j->opts.loop, &j->work, on_sync_work, on_sync_done) < 0) {
        j->sync_busy = 0;
        sync_done(j, rc = io_sync(j->fd)); /* cannot happen with a live loop */
        return rc;
    }
    return 0;
}

int journal_commit(struct journal *j)
{
    size_t pending;
    int rc;

    if (j->closing)
        return j->failed;
    if (j->rewrite) {
        /* What a failed sync covered goes back where it was, then is synced
         * again like any new write. */
        if ((rc = io_write(j->fd, j->out.data + j->out.off, j->rewrite, j->off)) < 0)
            return set_failed(j, rc, "write");
        j->off += j->rewrite;
        j->unsynced = j->rewrite;
        j->written_index = j->rewrite_idx;
        j->rewrite = 0;
    }
    pending = buf_pending(&j->out) - (size_t)j->unsynced;
    if (pending == 0 && !j->failed && !j->rotate)
        return 0;
    if (j->rotate || j->off + pending > j->seg_size) {
        uint64_t size = j->opts.segment_bytes;
        /* The old segment must be durable before the new one takes records
         * (a reader trusts everything before the last segment). */
        if (j->opts.fsync != JOURNAL_FSYNC_NO && (j->unsynced || j->sync_busy)) {
            if (j->sync_busy)
                return j->failed; /* its completion commits again */
            if ((rc = start_sync(j)) < 0)
                return rc; /* what it covered is written again first */
            if (j->opts.loop)
                return j->failed; /* its completion commits again */
        }
        if (size < JOURNAL_HEADER_BYTES + pending)
            size = JOURNAL_HEADER_BYTES + pending;
        if (pending || j->rotate) {
            if ((rc = new_segment(j, j->seq + 1, j->written_index + 1, size)) < 0)
                return rc;
        }
    }
    if (pending) {
        const char *p = j->out.data + j->out.off + j->unsynced;
        if ((rc = io_write(j->fd, p, pending, j->off)) < 0)
            return set_failed(j, rc, "write");
        j->off += pending;
        j->bytes = j->off - JOURNAL_HEADER_BYTES;
        j->written_index = j->next_index - 1;
    }
    /* With --fsync always, only a sync proves the disk works again. */
    if (j->opts.fsync != JOURNAL_FSYNC_ALWAYS)
        resumed(j);
    if (j->opts.fsync == JOURNAL_FSYNC_NO) {
        buf_consume(&j->out, buf_pending(&j->out));
        j->synced_off = j->off;
        j->synced_idx = j->written_index;
        report_durable(j, j->written_index);
        return 0;
    }
    j->unsynced += pending;
    if (j->opts.fsync == JOURNAL_FSYNC_EVERYSEC)
        report_durable(j, j->written_index); /* the timer syncs */
    else if (!j->sync_busy)
        start_sync(j);
    return j->failed;
}

static void on_timer(uv_timer_t *t)
{
    struct journal *j = t->data;
    if (j->failed)
        journal_commit(j);
    else if (j->opts.fsync == JOURNAL_FSYNC_EVERYSEC && !j->sync_busy && j->unsynced)
        start_sync(j);
}

int journal_append(struct journal *j, const struct rec *r, uint64_t *index)
{
    int rc;
    if (j->failed)
        return j->failed;
    if ((rc = rec_encode(&j->out, r)) < 0)
        return rc;
    if (index)
        *index = j->next_index;
    j->next_index++;
    return 0;
}

int journal_reserve(struct journal *j, uint64_t bytes)
{
    return bytes > SIZE_MAX / 2 ? -ENOMEM : buf_reserve(&j->out, (size_t)bytes);
}

void journal_rotate(struct journal *j)
{
    j->rotate = 1;
}

/* Cut segment fd (size bytes) back to off: zeros from there on, size kept. */
static int cut_segment(int fd, uint64_t off, uint64_t size)
{
    int rc;
    if (ftruncate(fd, (off_t)off) < 0)
        return -errno;
    if ((rc = io_alloc(fd, size)) < 0)
        return rc;
    return io_sync(fd);
}

int journal_open(struct journal *j, const char *dir, const struct journal_opts *o, char *err,
                 size_t errlen)
{
    uint64_t *seqs = NULL;
    size_t nseg = 0, cap = 0;
    int rc;

    memset(j, 0, sizeof(*j));
    j->opts = *o;
    if (!j->opts.segment_bytes)
        j->opts.segment_bytes = JOURNAL_SEGMENT_BYTES;
    j->dirfd = j->lockfd = j->fd = -1;
    buf_init(&j->out);
    if (!(j->dir = mem_alloc(strlen(dir) + 1))) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    memcpy(j->dir, dir, strlen(dir) + 1);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "cannot create data directory %s: %s", dir, strerror(-rc));
        goto fail;
    }
    if ((j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open data directory %s: %s", dir, strerror(-rc));
        goto fail;
    }
    if (o->have_lock)
        j->lockfd = o->lockfd;
    else if ((rc = journal_lock_dir(dir, &j->lockfd, err, errlen)) < 0)
        goto fail;
    if ((rc = list_segments(j->dirfd, &seqs, &nseg, &cap)) < 0) {
        snprintf(err, errlen, "cannot list %s: %s", dir, strerror(-rc));
        goto fail;
    }
    if (!j->opts.first_index)
        j->opts.first_index = 1;
    if (nseg == 0) {
        if ((rc = new_segment(j, 1, j->opts.first_index, j->opts.segment_bytes)) < 0) {
            snprintf(err, errlen, "%s", j->last_error);
            goto fail;
        }
        j->next_index = j->opts.first_index;
    } else {
        char name[64];
        const uint8_t *m;
        size_t size;
        uint64_t seq, first;
        const char *why;
        struct seg_scan ss;

        seg_name(name, sizeof(name), seqs[nseg - 1], "log");
        if ((rc = map_file(j->dirfd, name, &m, &size)) < 0) {
            snprintf(err, errlen, "cannot read %s/%s: %s", dir, name, strerror(-rc));
            goto fail;
        }
        if ((why = header_decode(m, size, &seq, &first)) || seq != seqs[nseg - 1]) {
            snprintf(err, errlen, "%s/%s: offset 0: %s", dir, name,
                     why ? why : "sequence number differs from the file name");
            unmap_file(m, size);
            rc = -EBADMSG;
            goto fail;
        }
        scan_segment(m, size, 1, first, NULL, NULL, &ss);
        unmap_file(m, size);
        if (ss.rc) {
            snprintf(err, errlen, "%s/%s: offset %" PRIu64 ": %s", dir, name, ss.end, ss.why);
            rc = ss.rc;
            goto fail;
        }
        if ((j->fd = openat(j->dirfd, name, O_RDWR | O_CLOEXEC)) < 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot open %s/%s: %s", dir, name, strerror(-rc));
            goto fail;
        }
        if (ss.torn) {
            log_warn("journal %s/%s: a torn last record at offset %" PRIu64
                     " (%zu bytes to the end) is dropped",
                     dir, name, ss.end, size - (size_t)ss.end);
            if ((rc = cut_segment(j->fd, ss.end, size)) < 0) {
                snprintf(err, errlen, "cannot cut the torn tail of %s/%s: %s", dir, name,
                         strerror(-rc));
                goto fail;
            }
        }
        j->seq = seq;
        j->seg_first = first;
        j->seg_size = size;
        j->off = j->synced_off = ss.end;
        j->bytes = ss.end - JOURNAL_HEADER_BYTES;
        j->next_index = first + ss.records;
    }
    if (j->next_index < j->opts.first_index) {
        /* The snapshot covers more than the journal holds: go on after it,
         * in a segment whose header says where. */
        j->written_index = j->next_index - 1;
        if ((rc = new_segment(j, j->seq + 1, j->opts.first_index, j->opts.segment_bytes)) < 0) {
            snprintf(err, errlen, "%s", j->last_error);
            goto fail;
        }
        j->next_index = j->opts.first_index;
        j->written_index = j->next_index - 1;
        if ((rc = journal_drop_through(j, j->opts.first_index - 1)) < 0) {
            snprintf(err, errlen, "cannot drop segments before index %" PRIu64 " in %s: %s",
                     j->opts.first_index, dir, strerror(-rc));
            goto fail;
        }
    }
    j->written_index = j->durable_index = j->synced_idx = j->next_index - 1;
    mem_free(seqs, cap * 8);
    seqs = NULL;
    if (j->opts.loop) {
        uv_timer_init(j->opts.loop, &j->timer);
        j->timer.data = j;
        uv_timer_start(&j->timer, on_timer, 1000, 1000);
        uv_unref((uv_handle_t *)&j->timer); /* it never keeps a loop alive */
        j->timer_on = 1;
    }
    return 0;
fail:
    mem_free(seqs, cap * 8);
    if (j->fd >= 0)
        close(j->fd);
    journal_unlock_dir(j->lockfd);
    if (j->dirfd >= 0)
        close(j->dirfd);
    mem_free(j->dir, strlen(j->dir) + 1);
    buf_close(&j->out);
    j->dir = NULL;
    return rc;
}

void journal_close(struct journal *j)
{
    assert(!j->sync_busy && "run the loop until the sync in flight ends");
    if (!j->dir)
        return;
    /* A clean stop: everything written and synced, whatever the mode. */
    j->opts.loop = NULL;
    if (journal_commit(j) == 0 && j->unsynced)
        start_sync(j);
    j->closing = 1;
    if (j->failed)
        log_error("journal closed while failed: records after index %" PRIu64 " are lost (%s)",
                  j->written_index, j->last_error);
    if (j->timer_on)
        uv_close((uv_handle_t *)&j->timer, NULL);
    close(j->fd);
    close(j->dirfd);
    journal_unlock_dir(j->lockfd);
    buf_close(&j->out);
    mem_free(j->dir, strlen(j->dir) + 1);
    j->dir = NULL;
}

int journal_drop_through(struct journal *j, uint64_t index)
{
    uint64_t *seqs;
    size_t n, cap;
    int rc, dropped = 0;

    if ((rc = list_segments(j->dirfd, &seqs, &n, &cap)) < 0)
        return rc;
    /* Segment k holds indexes below the first index of segment k + 1. */
    for (size_t k = 0; k + 1 < n && seqs[k] < j->seq; k++) {
        char name[64];
        uint8_t h[JOURNAL_HEADER_BYTES];
        uint64_t seq, first;
        int fd;
        seg_name(name, sizeof(name), seqs[k + 1], "log");
        if ((fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC)) < 0)
            break;
        rc = pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
             !header_decode(h, sizeof(h), &seq, &first);
        close(fd);
        if (!rc || first - 1 > index)
            break;
        seg_name(name, sizeof(name), seqs[k], "log");
        if (unlinkat(j->dirfd, name, 0) == 0)
            dropped++;
    }
    mem_free(seqs, cap * 8);
    if (dropped && (rc = fsync_dir(j->dirfd)) < 0)
        return rc;
    return dropped;
}

/* ---- reading ---- */

static int damage(struct journal_scan *out, int rc, const char *dir, const char *name, uint64_t off,
                  const char *why)
{
    out->damaged = rc;
    snprintf(out->damage_file, sizeof(out->damage_file), "%s/%s", dir, name);
    out->damage_offset = off;
    snprintf(out->damage, sizeof(out->damage), "%s/%s: offset %" PRIu64 ": %s", dir, name, off,
             why);
    return rc;
}

int journal_scan(const char *dir, journal_record_cb cb, void *ud, struct journal_scan *out)
{
    uint64_t *seqs = NULL, expect = 0;
    size_t n = 0, cap = 0;
    int dirfd, rc = 0;

    memset(out, 0, sizeof(*out));
    if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -errno;
    if ((rc = list_segments(dirfd, &seqs, &n, &cap)) < 0)
        goto done;
    for (size_t k = 0; k < n; k++) {
        char name[64];
        const uint8_t *m;
        size_t size;
        uint64_t seq, first;
        const char *why;
        struct seg_scan ss;

        seg_name(name, sizeof(name), seqs[k], "log");
        if ((rc = map_file(dirfd, name, &m, &size)) < 0)
            goto done;
        out->segments++;
        why = header_decode(m, size, &seq, &first);
        if (!why && seq != seqs[k])
            why = "sequence number differs from the file name";
        if (!why && k > 0 && (seqs[k] != seqs[k - 1] + 1 || first != expect))
            why = "records missing between this segment and the one before";
        if (why) {
            unmap_file(m, size);
            rc = damage(out, -EBADMSG, dir, name, 0, why);
            goto done;
        }
        rc = scan_segment(m, size, k + 1 == n, first, cb, ud, &ss);
        unmap_file(m, size);
        if (ss.records) {
            if (!out->first_index)
                out->first_index = first;
            out->last_index = first + ss.records - 1;
        }
        out->records += ss.records;
        out->bytes += ss.end - JOURNAL_HEADER_BYTES;
        if (rc < 0)
            goto done;
        if (ss.rc) {
            rc = damage(out, ss.rc, dir, name, ss.end, ss.why);
            goto done;
        }
        if (ss.torn) {
            out->torn = 1;
            snprintf(out->torn_file, sizeof(out->torn_file), "%s/%s", dir, name);
            out->torn_offset = ss.end;
            out->torn_bytes = size - ss.end;
        }
        expect = first + ss.records;
    }
done:
    mem_free(seqs, cap * 8);
    close(dirfd);
    return rc;
}

int journal_check(const char *dir, int repair, struct journal_scan *out)
{
    int rc = journal_scan(dir, NULL, NULL, out), fd, dirfd;
    const char *file;
    uint64_t off;
    uint64_t *seqs;
    size_t n, cap;
    struct stat sb;

    if (!repair || (rc == 0 && !out->torn) || (rc < 0 && !out->damaged))
        return rc;
    file = out->damaged ? out->damage_file : out->torn_file;
    off = out->damaged ? out->damage_offset : out->torn_offset;
    if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -errno;
    if (off >= JOURNAL_HEADER_BYTES) {
        if ((fd = open(file, O_RDWR | O_CLOEXEC)) < 0 || fstat(fd, &sb) < 0) {
            rc = -errno;
            if (fd >= 0)
                close(fd);
            close(dirfd);
            return rc;
        }
        rc = cut_segment(fd, off, (uint64_t)sb.st_size);
        close(fd);
        if (rc < 0) {
            close(dirfd);
            return rc;
        }
        log_warn("repair: %s cut at offset %" PRIu64, file, off);
    }
    /* Later segments (and a segment whose header is bad) are set aside. */
    if ((rc = list_segments(dirfd, &seqs, &n, &cap)) == 0) {
        const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
        int after = 0;
        for (size_t k = 0; k < n; k++) {
            char name[64], bad[80];
            seg_name(name, sizeof(name), seqs[k], "log");
            if (strcmp(name, base) == 0) {
                after = 1;
                if (off >= JOURNAL_HEADER_BYTES)
                    continue;
            }
            if (!after)
                continue;
            snprintf(bad, sizeof(bad), "%s.bad", name);
            if (renameat(dirfd, name, dirfd, bad) == 0)
                log_warn("repair: %s/%s set aside as %s", dir, name, bad);
        }
        mem_free(seqs, cap * 8);
        rc = fsync_dir(dirfd);
    }
    close(dirfd);
    if (rc < 0)
        return rc;
    {
        struct journal_scan again;
        return journal_scan(dir, NULL, NULL, &again);
    }
}
