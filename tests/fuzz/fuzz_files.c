/* fuzz_files: damaged data-directory files through the readers. The first
 * input byte picks the kind; the rest becomes, in a scratch directory, a
 * journal segment (journal-0000000000000001.log, after a valid header when
 * bit 1 of the first byte is set, so the fuzzer reaches the records) or a
 * snapshot (snapshot.rcs). Properties: the readers never crash or read out
 * of bounds; a journal that journal_check(repair) accepts scans clean
 * afterwards with every record before the first damage, and opens; a snapshot that reads
 * cleanly has an end record whose counts match. Any violation aborts. */
#include "crc32c.h"
#include "journal.h"
#include "snapshot.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], seg[128], snap[128];

static void put(const char *path, const uint8_t *pre, size_t npre, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (npre && write(fd, pre, npre) != (ssize_t)npre) ||
        (n && write(fd, p, n) != (ssize_t)n))
        abort();
    close(fd);
}

static int count_records(void *ud, uint64_t index, const struct rec *r)
{
    (void)index, (void)r;
    ++*(uint64_t *)ud;
    return 0;
}

/* At exit: the scratch directory and whatever is left in it. */
static void cleanup(void)
{
    char p[200];
    static const char *names[] = {"journal-0000000000000001.log",
                                  "journal-0000000000000001.log.bad",
                                  "journal-0000000000000002.log", SNAPSHOT_FILE, "LOCK"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/rcs-fuzz-files-XXXXXX");
        if (!mkdtemp(dir))
            abort();
        snprintf(seg, sizeof(seg), "%s/journal-0000000000000001.log", dir);
        snprintf(snap, sizeof(snap), "%s/%s", dir, SNAPSHOT_FILE);
        atexit(cleanup);
    }
    if (size == 0)
        return 0;
    unlink(seg);
    unlink(snap);
    if (data[0] & 1) {
        struct snapshot_info info;
        put(snap, NULL, 0, data + 1, size - 1);
        if (snapshot_read(snap, NULL, NULL, &info, err, sizeof(err)) == 0 && info.bytes != size - 1)
            abort();
    } else {
        uint8_t h[JOURNAL_HEADER_BYTES] = "RCSJRNL";
        struct journal_scan before, after;
        uint64_t n = 0;
        int rc;
        if (data[0] & 2) {
            h[8] = JOURNAL_VERSION;
            h[16] = 1; /* seq */
            h[24] = 1; /* first index */
            uint32_t c = crc32c(0, h, 60);
            memcpy(h + 60, &c, 4);
        }
        put(seg, h, (data[0] & 2) ? sizeof(h) : 0, data + 1, size - 1);
        rc = journal_scan(dir, count_records, &n, &before);
        if (n != before.records || (rc == 0 && before.damaged))
            abort();
        if (journal_check(dir, 1, &before) == 0) {
            /* Repaired (or clean): it scans clean, keeps every record
             * before the first damage, and a journal opens on it. */
            struct journal j;
            struct journal_opts o = {.fsync = JOURNAL_FSYNC_NO, .segment_bytes = 1 << 16};
            if (journal_scan(dir, NULL, NULL, &after) != 0 || after.torn ||
                after.records != before.records)
                abort();
            if (journal_open(&j, dir, &o, err, sizeof(err)) != 0 ||
                j.next_index != 1 + after.records)
                abort();
            journal_close(&j);
        }
        /* what repair set aside */
        {
            char bad[160];
            snprintf(bad, sizeof(bad), "%s.bad", seg);
            unlink(bad);
        }
    }
    return 0;
}
