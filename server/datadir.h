/* datadir: what `rcstored --check-data DIR [--repair]` runs, as a function:
 * take the directory's lock, verify the snapshot, verify (or repair) the
 * journal, and check that the journal continues the snapshot without a
 * hole. It reads files only; it builds no store. */
#ifndef RCS_SERVER_DATADIR_H
#define RCS_SERVER_DATADIR_H

#include "journal.h"
#include "snapshot.h"

struct datadir_report {
    int has_snapshot;
    struct snapshot_info snapshot;
    struct journal_scan journal; /* as found, before any repair */
    int repaired;                /* --repair changed something */
    char message[768];           /* the first problem (file and offset), or a summary */
};

/* Verify data directory dir; with repair, cut the journal at its first bad
 * record (journal_check). 0 if dir is (now) fit to start from, with a
 * summary in out->message; else the error with the problem in
 * out->message: -EWOULDBLOCK while a server holds dir, a snapshot's damage
 * (never repaired: a snapshot is whole or useless), a journal's damage
 * (without repair), or -EBADMSG when the journal does not continue the
 * snapshot (records missing between them). */
int datadir_check(const char *dir, int repair, struct datadir_report *out);

#endif
