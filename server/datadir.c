/* datadir: the --check-data logic (see datadir.h). */
#include "datadir.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int datadir_check(const char *dir, int repair, struct datadir_report *out)
{
    char path[4096], err[512];
    int lockfd, rc;
    uint64_t after;

    memset(out, 0, sizeof(*out));
    if ((rc = journal_lock_dir(dir, &lockfd, err, sizeof(err))) < 0) {
        snprintf(out->message, sizeof(out->message), "%s", err);
        return rc;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, SNAPSHOT_FILE);
    rc = snapshot_read(path, NULL, NULL, &out->snapshot, err, sizeof(err));
    if (rc < 0 && rc != -ENOENT) {
        snprintf(out->message, sizeof(out->message), "%s (a snapshot cannot be repaired)", err);
        goto done;
    }
    out->has_snapshot = rc == 0;
    rc = journal_check(dir, 0, &out->journal);
    if (repair && (rc < 0 || out->journal.torn) && (out->journal.damaged || out->journal.torn)) {
        struct journal_scan ignored;
        rc = journal_check(dir, 1, &ignored);
        out->repaired = 1;
    }
    if (rc < 0) {
        snprintf(out->message, sizeof(out->message), "%s",
                 out->journal.damaged ? out->journal.damage : strerror(-rc));
        goto done;
    }
    /* The journal must hold every record after the snapshot's index. */
    after = out->has_snapshot ? out->snapshot.last_index + 1 : 1;
    if (out->journal.records && out->journal.first_index > after) {
        snprintf(out->message, sizeof(out->message),
                 "%s: the journal starts at index %" PRIu64 " but %s ends at %" PRIu64
                 ": records in between are missing",
                 dir, out->journal.first_index, out->has_snapshot ? SNAPSHOT_FILE : "nothing",
                 after - 1);
        rc = -EBADMSG;
        goto done;
    }
    snprintf(out->message, sizeof(out->message),
             "%s: %s%" PRIu64 " objects in the snapshot (index %" PRIu64 "), %" PRIu64
             " journal records%s%s",
             dir, out->has_snapshot ? "" : "no snapshot, ", out->snapshot.objects,
             out->snapshot.last_index, out->journal.records,
             out->journal.torn
                 ? (out->repaired ? ", a torn tail cut" : ", a torn tail (dropped at start)")
                 : "",
             out->repaired && out->journal.damaged ? ", cut at the first bad record" : "");
    rc = 0;
done:
    journal_unlock_dir(lockfd);
    return rc;
}
