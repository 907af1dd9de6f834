/* Unit tests for server/journal: records come back in order across
 * reopenings and rotations; a torn last record is dropped at every byte
 * where a write could have stopped; a bit flip in the middle of a segment
 * or its header is damage that names the file and offset, and repair cuts
 * there; the lock refuses a second opener; group commit serves many appends
 * with one fdatasync off the loop; injected write, sync and preallocation
 * errors fail the journal without losing or duplicating a record, and it
 * resumes when the disk heals; and a real full disk (a small tmpfs, when
 * this test may mount one) shows up at rotation and passes when space is
 * freed. */
#define _GNU_SOURCE
#include "cmocka_pre.h"
#include "tmpdir.h"

#include "journal.h"
#include "mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256], base_dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/rcs-test-journal-XXXXXX");
    assert_non_null(mkdtemp(dir));
    memcpy(base_dir, dir, sizeof(dir));
    for (int k = 0; k < JOURNAL_IO_KINDS; k++)
        journal_fail_io(k, -1, 0, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char mnt[300];
    /* A failed tmpfs test leaves dir pointing into its mount, and the
     * mount: never leave either behind. */
    memcpy(dir, base_dir, sizeof(dir));
    snprintf(mnt, sizeof(mnt), "%.200s/mnt", dir);
    if (access(mnt, F_OK) == 0) {
        rm_dir(mnt);
        umount2(mnt, MNT_DETACH);
        rmdir(mnt);
    }
    rm_dir(dir);
    for (int k = 0; k < JOURNAL_IO_KINDS; k++)
        journal_fail_io(k, -1, 0, 0);
    assert_int_equal(mem_used(), 0);
    return 0;
}

/* Record number k of a test: its type and fields follow from k. */
static struct rec nth(uint64_t k, uint8_t *data)
{
    struct rec r = {0};
    switch (k % 3) {
    case 0:
        r.type = REC_CREATE;
        r.id = k;
        r.sess = 1;
        memset(data, (int)(k & 0xff), k % 50);
        r.bytes = data;
        r.nbytes = (uint32_t)(k % 50);
        break;
    case 1:
        r.type = REC_HOLD;
        r.sess = 2;
        r.id = k;
        r.a = k * 7;
        break;
    default:
        r.type = REC_LINK;
        r.id = k;
        r.target = k + 1;
        break;
    }
    return r;
}

static struct journal_opts opts(enum journal_fsync f, uint64_t seg)
{
    struct journal_opts o = {.fsync = f, .segment_bytes = seg};
    return o;
}

static void open_j(struct journal *j, const struct journal_opts *o)
{
    char err[512];
    int rc = journal_open(j, dir, o, err, sizeof(err));
    if (rc != 0)
        fail_msg("journal_open: %d %s", rc, err);
}

/* Append records first..last (by number), committing every `every`. */
static void append_range(struct journal *j, uint64_t first, uint64_t last, uint64_t every)
{
    uint8_t data[64];
    for (uint64_t k = first; k <= last; k++) {
        struct rec r = nth(k, data);
        uint64_t idx;
        assert_int_equal(journal_append(j, &r, &idx), 0);
        assert_int_equal(idx, k);
        if (k % every == 0)
            assert_int_equal(journal_commit(j), 0);
    }
    assert_int_equal(journal_commit(j), 0);
}

/* The scan checks each record against nth(index). */
static int check_rec(void *ud, uint64_t index, const struct rec *r)
{
    uint8_t data[64];
    struct rec want = nth(index, data);
    uint64_t *seen = ud;
    if (index != *seen + 1 || r->type != want.type || r->id != want.id || r->sess != want.sess ||
        r->a != want.a || r->target != want.target || r->nbytes != want.nbytes ||
        (r->nbytes && memcmp(r->bytes, want.bytes, r->nbytes) != 0))
        return -EINVAL;
    *seen = index;
    return 0;
}

/* Scan dir; every record must be right and there must be n of them. */
static void expect_records(uint64_t n)
{
    struct journal_scan s;
    uint64_t seen = 0;
    int rc = journal_scan(dir, check_rec, &seen, &s);
    if (rc != 0)
        fail_msg("scan: %d (%s) after %llu records", rc, s.damage, (unsigned long long)seen);
    assert_int_equal(seen, n);
    assert_int_equal(s.records, n);
    assert_int_equal(s.last_index, n);
}

static void round_trip_and_reopen(void **state)
{
    (void)state;
    struct journal j;
    struct journal_opts o = opts(JOURNAL_FSYNC_NO, 0);
    open_j(&j, &o);
    assert_int_equal(j.next_index, 1);
    append_range(&j, 1, 500, 10);
    assert_int_equal(j.written_index, 500);
    assert_int_equal(j.durable_index, 500);
    journal_close(&j);
    expect_records(500);

    open_j(&j, &o);
    assert_int_equal(j.next_index, 501);
    append_range(&j, 501, 700, 1000);
    journal_close(&j);
    expect_records(700);
}

/* Records only reach the file at a commit, in one write. */
static void one_write_per_commit(void **state)
{
    (void)state;
    struct journal j;
    struct journal_opts o = opts(JOURNAL_FSYNC_NO, 0);
    uint64_t writes;
    open_j(&j, &o);
    writes = journal_io_calls(JOURNAL_IO_WRITE);
    append_range(&j, 1, 100, 1000);
    assert_int_equal(journal_io_calls(JOURNAL_IO_WRITE), writes + 1);
    journal_close(&j);
    expect_records(100);
}

static void rotation_and_drop(void **state)
{
    (void)state;
    struct journal j;
    struct journal_opts o = opts(JOURNAL_FSYNC_ALWAYS, 4096);
    struct journal_scan s;
    open_j(&j, &o);
    append_range(&j, 1, 2000, 7);
    assert_true(j.seq > 5);
    assert_int_equal(j.durable_index, 2000);
    journal_close(&j);
    expect_records(2000);
    assert_int_equal(journal_scan(dir, NULL, NULL, &s), 0);
    assert_true(s.segments > 5);

    /* A record larger than a segment gets a segment of its own size. */
    open_j(&j, &o);
    {
        static uint8_t big[10000];
        struct rec r = {.type = REC_SET_DATA, .id = 1, .bytes = big, .nbytes = sizeof(big)};
        assert_int_equal(journal_append(&j, &r, NULL), 0);
        assert_int_equal(journal_commit(&j), 0);
    }
    /* After a snapshot through 1000, segments wholly before it go. */
    uint64_t segs_before = j.seq;
    int dropped = journal_drop_through(&j, 1000);
    assert_true(dropped > 0);
    journal_close(&j);
    assert_int_equal(journal_scan(dir, NULL, NULL, &s), 0);
    assert_true(s.first_index > 1 && s.first_index <= 1001);
    assert_int_equal(s.last_index, 2001);
    assert_true(s.segments < segs_before);
}

/* Path of the only segment, and where its last record starts and ends. */
static void last_record(char *path, size_t n, uint64_t *start, uint64_t *end, uint64_t records)
{
    uint8_t data[64];
    snprintf(path, n, "%s/journal-%016x.log", dir, 1);
    *start = JOURNAL_HEADER_BYTES;
    for (uint64_t k = 1; k < records; k++) {
        struct rec r = nth(k, data);
        *start += rec_size(&r);
    }
    struct rec r = nth(records, data);
    *end = *start + rec_size(&r);
}

static void read_file(const char *path, uint8_t **p, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *p = malloc(*n);
    assert_int_equal(fread(*p, 1, *n, f), *n);
    fclose(f);
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* A write that stopped after c bytes of the last record leaves those bytes
 * and the preallocated zeros after them: at every c, the scan reports a
 * torn tail at the record (c = 0 is a clean end), and opening the journal
 * cuts it, after which the next append takes its index. */
static void torn_tail_at_every_byte(void **state)
{
    (void)state;
    struct journal j;
    struct journal_opts o = opts(JOURNAL_FSYNC_NO, 1 << 16);
    char path[512];
    uint64_t start, end;
    uint8_t *orig, *copy;
    size_t size;
    const uint64_t n = 30; /* record 30 is a CREATE with 30 bytes of data */

    open_j(&j, &o);
    append_range(&j, 1, n, 1000);
    journal_close(&j);
    last_record(path, sizeof(path), &start, &end, n);
    read_file(path, &orig, &size);
    copy = malloc(size);
    for (uint64_t c = 0; c < end - start; c++) {
        struct journal_scan s;
        memcpy(copy, orig, size);
        memset(copy + start + c, 0, end - start - c);
        write_file(path, copy, size);
        assert_int_equal(journal_scan(dir, NULL, NULL, &s), 0);
        if (memcmp(copy, orig, size) == 0) {
            /* The bytes not written were zeros anyway (the empty refs
             * array's count): the record is whole. */
            assert_int_equal(s.records, n);
            assert_false(s.torn);
            continue;
        }
        assert_int_equal(s.records, n - 1);
        assert_int_equal(s.torn, c > 0);
        if (c > 0)
            assert_int_equal(s.torn_offset, start);
        open_j(&j, &o);
        assert_int_equal(j.next_index, n);
        append_range(&j, n, n, 1);
        journal_close(&j);
        expect_records(n);
    }
    /* And a cut file (no preallocated zeros: another file system). */
    for (uint64_t c = 1; c < end - start; c += 5) {
        struct journal_scan s;
        write_file(path, orig, start + c);
        assert_int_equal(journal_scan(dir, NULL, NULL, &s), 0);
        assert_int_equal(s.records, n - 1);
        assert_true(s.torn);
    }
    free(copy);
    free(orig);
}

static void flip(const char *path, uint64_t off, int bit)
{
    uint8_t *p;
    size_t n;
    read_file(path, &p, &n);
    p[off] ^= (uint8_t)(1 << bit);
    write_file(path, p, n);
    free(p);
}

static void bit_flip_in_the_middle(void **state)
{
    (void)state;
    struct journal j;
    struct journal_opts o = opts(JOURNAL_FSYNC_NO, 1 << 16);
    struct journal_scan s;
    char path[512], err[512];
    uint64_t start, end;

    open_j(&j, &o);
    append_range(&j, 1, 40, 1000);
    journal_close(&j);
    last_record(path, sizeof(path), &start, &end, 20); /* record 20 */
    flip(path, start + (end - start) / 2, 3);
    assert_int_equal(journal_scan(dir, NULL, NULL, &s), REC_ECRC);
    assert_int_equal(s.damaged, REC_ECRC);
    assert_int_equal(s.damage_offset, start);
    assert_int_equal(s.records, 19);
    assert_non_null(strstr(s.damage, "journal-0000000000000001.log"));
    assert_non_null(strstr(s.damage, "offset"));
    /* The journal will not open on it; check without repair changes nothing. */
    assert_int_equal(journal_open(&j, dir, &o, err, sizeof(err)), REC_ECRC);
    assert_non_null(strstr(err, "journal-0000000000000001.log: offset"));
    assert_int_equal(journal_check(dir, 0, &s), REC_ECRC);
    assert_int_equal(journal_check(dir, 0, &s), REC_ECRC);
    /* Repair cuts at the bad record. */
    assert_int_equal(journal_check(dir, 1, &s), 0);
    expect_records(19);
    open_j(&j, &o);
    assert_int_equal(j.next_index, 20);
    journal_close(&j);
}

static void bit_flip_in_a_header(void **state)
{
    (void)state;
    struct journal j;
    struct journal_opts o = opts(JOURNAL_FSYNC_NO, 4096);
    struct journal_scan s;
    char path[512];

    open_j(&j, &o);
    append_range(&j, 1, 400, 5);
    journal_close(&j);
    snprintf(path, sizeof(path), "%s/journal-%016x.log", dir, 2);
    flip(path, 20, 0); /* the sequence number */
    assert_int_equal(journal_scan(dir, NULL, NULL, &s), -EBADMSG);
    assert_int_equal(s.damage_offset, 0);
    assert_non_null(strstr(s.damage, "journal-0000000000000002.log: offset 0: header checksum"));
    /* Repair sets it and everything after it aside. */
    assert_int_equal(journal_check(dir, 1, &s), 0);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(journal_scan(dir, NULL, NULL, &s), 0);
    assert_int_equal(s.segments, 1);
}

/* A segment missing from the middle is damage, not a shorter journal. */
static void missing_segment(void **state)
{
    (void)state;
    struct journal j;
    struct journal_opts o = opts(JOURNAL_FSYNC_NO, 4096);
    struct journal_scan s;
    char path[512];
    open_j(&j, &o);
    append_range(&j, 1, 400, 5);
    journal_close(&j);
    snprintf(path, sizeof(path), "%s/journal-%016x.log", dir, 2);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(journal_scan(dir, NULL, NULL, &s), -EBADMSG);
    assert_non_null(strstr(s.damage, "journal-0000000000000003.log: offset 0: records missing"));
}

/* After a snapshot through index 500 and a repair that set every segment
 * aside, new records start at 501, never at an index the snapshot covers;
 * the same when the journal is simply behind the snapshot. */
static void empty_journal_starts_after_the_snapshot(void **state)
{
    (void)state;
    struct journal j;
    struct journal_opts o = {.fsync = JOURNAL_FSYNC_NO, .first_index = 501};
    struct journal_scan s;
    uint8_t data[64];
    struct rec r = nth(1, data);
    uint64_t idx;
    open_j(&j, &o);
    assert_int_equal(j.next_index, 501);
    assert_int_equal(journal_append(&j, &r, &idx), 0);
    assert_int_equal(idx, 501);
    journal_close(&j);
    assert_int_equal(journal_scan(dir, NULL, NULL, &s), 0);
    assert_int_equal(s.first_index, 501);
    assert_int_equal(s.last_index, 501);

    o.first_index = 900; /* a newer snapshot than the journal */
    open_j(&j, &o);
    assert_int_equal(j.next_index, 900);
    assert_int_equal(journal_append(&j, &r, &idx), 0);
    assert_int_equal(idx, 900);
    journal_close(&j);
    /* The old segment, which the snapshot covers, is gone: no hole. */
    assert_int_equal(journal_scan(dir, NULL, NULL, &s), 0);
    assert_int_equal(s.segments, 1);
    assert_int_equal(s.first_index, 900);
    assert_int_equal(s.last_index, 900);
}

static void lock_refuses_second_opener(void **state)
{
    (void)state;
    struct journal j, k;
    struct journal_opts o = opts(JOURNAL_FSYNC_NO, 0);
    char err[512];
    int fd;
    open_j(&j, &o);
    assert_int_equal(journal_open(&k, dir, &o, err, sizeof(err)), -EWOULDBLOCK);
    assert_non_null(strstr(err, "in use by another rcstored"));
    assert_int_equal(journal_lock_dir(dir, &fd, err, sizeof(err)), -EWOULDBLOCK);
    journal_close(&j);
    assert_int_equal(journal_lock_dir(dir, &fd, err, sizeof(err)), 0);
    journal_unlock_dir(fd);
}

static uint64_t durable_seen, durable_calls;

static void on_durable(void *ud, uint64_t index)
{
    (void)ud;
    assert_true(index > durable_seen);
    durable_seen = index;
    durable_calls++;
}

/* --fsync always: a loop iteration's appends cost one write and one
 * fdatasync, which runs on the thread pool; nothing is durable before it. */
static void group_commit_off_the_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct journal j;
    struct journal_opts o = {
        .fsync = JOURNAL_FSYNC_ALWAYS, .loop = &loop, .on_durable = on_durable};
    uint8_t data[64];
    uint64_t syncs, writes;

    assert_int_equal(uv_loop_init(&loop), 0);
    durable_seen = durable_calls = 0;
    open_j(&j, &o);
    syncs = journal_io_calls(JOURNAL_IO_SYNC);
    writes = journal_io_calls(JOURNAL_IO_WRITE);
    for (uint64_t k = 1; k <= 100; k++) {
        struct rec r = nth(k, data);
        assert_int_equal(journal_append(&j, &r, NULL), 0);
    }
    assert_int_equal(journal_commit(&j), 0);
    assert_int_equal(j.written_index, 100);
    assert_int_equal(durable_calls, 0); /* the sync is in flight, off the loop */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(durable_seen, 100);
    assert_int_equal(durable_calls, 1);
    assert_int_equal(journal_io_calls(JOURNAL_IO_SYNC), syncs + 1);
    assert_int_equal(journal_io_calls(JOURNAL_IO_WRITE), writes + 1);

    /* Appends while a sync is in flight are synced by the next one. */
    for (uint64_t k = 101; k <= 110; k++) {
        struct rec r = nth(k, data);
        assert_int_equal(journal_append(&j, &r, NULL), 0);
        assert_int_equal(journal_commit(&j), 0);
    }
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(durable_seen, 110);
    assert_true(journal_io_calls(JOURNAL_IO_SYNC) <= syncs + 3);
    journal_close(&j);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    expect_records(110);
}

/* --fsync everysec: durable (for its promise) at the write; synced later. */
static void everysec_reports_at_write(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct journal j;
    struct journal_opts o = {
        .fsync = JOURNAL_FSYNC_EVERYSEC, .loop = &loop, .on_durable = on_durable};
    assert_int_equal(uv_loop_init(&loop), 0);
    durable_seen = durable_calls = 0;
    open_j(&j, &o);
    append_range(&j, 1, 50, 1000);
    assert_int_equal(durable_seen, 50);
    assert_int_equal(j.unsynced > 0, 1);
    journal_close(&j);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    expect_records(50);
}

/* --fsync always on a loop with small segments: rotations that must wait
 * for the sync in flight are postponed to its completion, and every record
 * lands once, in order. */
static void rotation_waits_for_the_sync_in_flight(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct journal j;
    struct journal_opts o = {.fsync = JOURNAL_FSYNC_ALWAYS,
                             .segment_bytes = 4096,
                             .loop = &loop,
                             .on_durable = on_durable};
    uint8_t data[64];
    assert_int_equal(uv_loop_init(&loop), 0);
    durable_seen = durable_calls = 0;
    open_j(&j, &o);
    for (uint64_t k = 1; k <= 3000; k++) {
        struct rec r = nth(k, data);
        assert_int_equal(journal_append(&j, &r, NULL), 0);
        if (k % 10 == 0) {
            assert_int_equal(journal_commit(&j), 0);
            uv_run(&loop, UV_RUN_NOWAIT); /* a loop iteration: maybe a sync completes */
        }
    }
    assert_int_equal(journal_commit(&j), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(durable_seen, 3000);
    assert_int_equal(j.written_index, 3000);
    assert_true(j.seq >= 2); /* a postponed rotation sizes its segment to what waited */
    journal_close(&j);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    expect_records(3000);
}

struct check {
    struct journal *j;
    uint64_t deadline;
};

static void on_check_timer(uv_timer_t *t)
{
    struct check *c = t->data;
    if (c->j->syncs > 0 || uv_now(t->loop) > c->deadline)
        uv_close((uv_handle_t *)t, NULL);
}

/* --fsync everysec: the journal's own timer syncs what was written, off the
 * loop. The test waits for that event (a sync counted), not for a time. */
static void everysec_timer_syncs(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_timer_t check;
    struct journal j;
    struct journal_opts o = {.fsync = JOURNAL_FSYNC_EVERYSEC, .loop = &loop};
    assert_int_equal(uv_loop_init(&loop), 0);
    open_j(&j, &o);
    append_range(&j, 1, 10, 1000);
    assert_int_equal(j.syncs, 0);
    assert_true(j.unsynced > 0);
    /* Something must keep the loop running: a check every 10 ms, which
     * ends when the sync has happened (or after 10 s of loop time). */
    struct check c = {&j, uv_now(&loop) + 10000};
    uv_timer_init(&loop, &check);
    check.data = &c;
    uv_timer_start(&check, on_check_timer, 10, 10);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(j.syncs, 1);
    assert_int_equal(j.unsynced, 0);
    journal_close(&j);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    expect_records(10);
}

/* A write that fails: nothing is durable, appends are refused with the
 * error, and when the disk heals the same records land once. */
static void injected_write_error_then_resume(void **state)
{
    (void)state;
    struct journal j;
    struct journal_opts o = {.fsync = JOURNAL_FSYNC_NO, .on_durable = on_durable};
    uint8_t data[64];
    struct rec r = nth(11, data);
    durable_seen = durable_calls = 0;
    open_j(&j, &o);
    append_range(&j, 1, 10, 1000);
    assert_int_equal(durable_seen, 10);
    journal_fail_io(JOURNAL_IO_WRITE, 0, -1, EIO);
    assert_int_equal(journal_append(&j, &r, NULL), 0);
    assert_int_equal(journal_commit(&j), -EIO);
    assert_int_equal(j.failed, -EIO);
    assert_non_null(strstr(j.last_error, "write"));
    assert_non_null(strstr(j.last_error, "Input/output error"));
    assert_int_equal(journal_error(&j), -EIO);
    r = nth(12, data);
    assert_int_equal(journal_append(&j, &r, NULL), -EIO); /* refused, not buffered */
    assert_int_equal(journal_commit(&j), -EIO);           /* still broken */
    assert_int_equal(durable_seen, 10);
    journal_fail_io(JOURNAL_IO_WRITE, -1, 0, 0);
    assert_int_equal(journal_commit(&j), 0);
    assert_int_equal(j.failed, 0);
    assert_int_equal(durable_seen, 11);
    assert_int_equal(journal_append(&j, &r, NULL), 0);
    assert_int_equal(journal_commit(&j), 0);
    journal_close(&j);
    expect_records(12);
}

/* A failed fdatasync (--fsync always): the records it covered are not
 * acknowledged, are written again from memory and synced on the retry. */
static void injected_sync_error_then_resume(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct journal j;
    struct journal_opts o = {
        .fsync = JOURNAL_FSYNC_ALWAYS, .loop = &loop, .on_durable = on_durable};
    uint64_t writes;
    assert_int_equal(uv_loop_init(&loop), 0);
    durable_seen = durable_calls = 0;
    open_j(&j, &o);
    append_range(&j, 1, 20, 1000);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(durable_seen, 20);
    journal_fail_io(JOURNAL_IO_SYNC, 0, -1, EIO);
    append_range(&j, 21, 30, 1000);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(j.failed, -EIO);
    assert_non_null(strstr(j.last_error, "fdatasync"));
    assert_int_equal(durable_seen, 20);
    journal_fail_io(JOURNAL_IO_SYNC, -1, 0, 0);
    writes = journal_io_calls(JOURNAL_IO_WRITE);
    /* What the retry timer calls: the records are written again and
     * synced; only that sync clears the failure. */
    assert_int_equal(journal_commit(&j), -EIO);
    assert_int_equal(journal_io_calls(JOURNAL_IO_WRITE), writes + 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(j.failed, 0);
    assert_int_equal(durable_seen, 30);
    journal_close(&j);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    expect_records(30);
}

/* The disk refuses to preallocate the next segment: the journal fails at
 * rotation with the records still in memory, then goes on. */
/* A disk with no room for a whole segment: the segment made is the smallest
 * that takes what waits (1 MiB), so writes go on with a little room free. */
static void full_disk_takes_a_smaller_segment(void **state)
{
    (void)state;
    struct journal j;
    struct journal_opts o = opts(JOURNAL_FSYNC_NO, 8ull << 20);
    journal_fail_io(JOURNAL_IO_ALLOC, 0, 1, ENOSPC);
    open_j(&j, &o);
    journal_fail_io(JOURNAL_IO_ALLOC, -1, 0, 0);
    assert_int_equal(j.seg_size, JOURNAL_MIN_SEGMENT_BYTES);
    append_range(&j, 1, 20, 5);
    assert_int_equal(journal_error(&j), 0);
    journal_close(&j);
    open_j(&j, &o);
    assert_int_equal(j.next_index, 21);
    journal_close(&j);
}

static void injected_enospc_at_rotation(void **state)
{
    (void)state;
    struct journal j;
    struct journal_opts o = opts(JOURNAL_FSYNC_ALWAYS, 4096);
    uint64_t seq;
    open_j(&j, &o);
    append_range(&j, 1, 50, 1);
    seq = j.seq;
    journal_fail_io(JOURNAL_IO_ALLOC, 0, -1, ENOSPC);
    uint8_t data[64];
    int rc = 0;
    uint64_t k = 51;
    for (; k < 1000 && rc == 0; k++) {
        struct rec r = nth(k, data);
        assert_int_equal(journal_append(&j, &r, NULL), 0);
        rc = journal_commit(&j);
    }
    assert_int_equal(rc, -ENOSPC);
    assert_int_equal(j.seq, seq);
    assert_non_null(strstr(j.last_error, "new segment"));
    assert_non_null(strstr(j.last_error, "No space left on device"));
    journal_fail_io(JOURNAL_IO_ALLOC, -1, 0, 0);
    assert_int_equal(journal_commit(&j), 0);
    assert_int_equal(j.seq, seq + 1);
    journal_close(&j);
    expect_records(k - 1);
}

/* --fsync everysec without a loop syncs only when a segment is full: one
 * failed fdatasync of the old segment there must stop the rotation (its
 * unsynced records are written again into it, not into the new segment),
 * and the retry goes on with every record exactly once. */
static void sync_failure_at_rotation(void **state)
{
    (void)state;
    struct journal j;
    struct journal_opts o = opts(JOURNAL_FSYNC_EVERYSEC, 4096);
    uint8_t data[64];
    uint64_t k = 1, seq;
    int rc = 0;
    open_j(&j, &o);
    seq = j.seq;
    journal_fail_io(JOURNAL_IO_SYNC, 0, 1, EIO); /* the next sync, once */
    for (; k < 1000 && rc == 0; k++) {
        struct rec r = nth(k, data);
        assert_int_equal(journal_append(&j, &r, NULL), 0);
        rc = journal_commit(&j);
    }
    assert_int_equal(rc, -EIO);
    assert_int_equal(j.seq, seq); /* no rotation past a failed sync */
    assert_non_null(strstr(j.last_error, "fdatasync"));
    assert_int_equal(journal_commit(&j), 0);
    assert_int_equal(j.seq, seq + 1);
    append_range(&j, k, k + 100, 1);
    journal_close(&j);
    expect_records(k + 100);
}

/* A real full disk: a 1 MiB tmpfs, filled by another file. */
static void full_tmpfs_then_space_freed(void **state)
{
    (void)state;
    char mnt[200], filler[300];
    struct journal j;
    struct journal_opts o = opts(JOURNAL_FSYNC_ALWAYS, 64 << 10);
    static uint8_t chunk[4096];
    uint8_t data[64];
    int fd, rc = 0;
    uint64_t k = 1;

    snprintf(mnt, sizeof(mnt), "%.150s/mnt", dir);
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m") < 0) {
        int e = errno;
        rmdir(mnt);
        print_message("skipped: cannot mount a tmpfs here (%s); run as root for this test\n",
                      strerror(e));
        skip();
    }
    snprintf(filler, sizeof(filler), "%s/filler", mnt);
    /* The journal lives in mnt itself. */
    char saved[256];
    memcpy(saved, dir, sizeof(saved));
    snprintf(dir, sizeof(dir), "%s", mnt);
    open_j(&j, &o);
    fd = open(filler, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    while (write(fd, chunk, sizeof(chunk)) == (ssize_t)sizeof(chunk))
        ;
    assert_int_equal(errno, ENOSPC);
    close(fd);
    /* The preallocated segment still takes records; the next one cannot be made. */
    for (; k < 100000 && rc == 0; k++) {
        struct rec r = nth(k, data);
        assert_int_equal(journal_append(&j, &r, NULL), 0);
        rc = journal_commit(&j);
    }
    assert_int_equal(rc, -ENOSPC);
    assert_true(k > 100); /* the first segment filled up first */
    assert_non_null(strstr(j.last_error, "No space left on device"));
    {
        struct rec r = nth(k, data);
        assert_int_equal(journal_append(&j, &r, NULL), -ENOSPC);
    }
    assert_int_equal(unlink(filler), 0);
    assert_int_equal(journal_commit(&j), 0);
    assert_int_equal(j.failed, 0);
    append_range(&j, k, k + 10, 1);
    journal_close(&j);
    expect_records(k + 10);
    rm_dir(mnt); /* only files: empties the tmpfs */
    mkdir(mnt, 0700);
    assert_int_equal(umount2(mnt, 0), 0);
    rmdir(mnt);
    memcpy(dir, saved, sizeof(saved));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(round_trip_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(one_write_per_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(rotation_and_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(full_disk_takes_a_smaller_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(torn_tail_at_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(bit_flip_in_the_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(bit_flip_in_a_header, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(empty_journal_starts_after_the_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(lock_refuses_second_opener, setup, teardown),
        cmocka_unit_test_setup_teardown(group_commit_off_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(everysec_reports_at_write, setup, teardown),
        cmocka_unit_test_setup_teardown(rotation_waits_for_the_sync_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(everysec_timer_syncs, setup, teardown),
        cmocka_unit_test_setup_teardown(injected_write_error_then_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(injected_sync_error_then_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(injected_enospc_at_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(sync_failure_at_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(full_tmpfs_then_space_freed, setup, teardown),
    };
    rcs_test_select(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
