/* apply: the one place where a journal record changes a store. A request
 * handler decides everything first (the id a create gets, a token's random
 * bytes, a clamped ttl), builds the record of its change, and has it applied
 * here; recovery (and a replica) applies the same records read back from a
 * journal. So replaying a journal repeats exactly what was decided, never
 * decides again. The store's own decisions (expiry, the slices of an ended
 * session's release, the collector's frees) are recorded by the store and
 * gc through store_set_journal and made by the same store functions that
 * apply_record calls for their records. docs/persistence.md has the records.
 *
 * apply_record validates what a record names against the store (an object
 * that must exist, a session, a token) and fails with nothing changed when
 * something is missing; during recovery that is damage. Limits that are
 * policy, not state (maxmemory, max_refs, quotas a handler reports with its
 * own message), are the handler's to check before it builds the record. */
#ifndef RCS_SERVER_APPLY_H
#define RCS_SERVER_APPLY_H

#include "record.h"
#include "store.h"

#include <stdint.h>

/* What a change leaves that its reply reports. */
struct apply_out {
    uint64_t after; /* HOLD, DROP: the session's holds on the object after it;
                       RELEASE_ALL: holds dropped; CLAIM: the object */
    uint32_t len;   /* LINK, UNLINK: the length of the refs list after it */
};

/* Apply one journal record (REC_KIND_JOURNAL) to st. now_ms is the store
 * clock for the deadlines of tokens it makes; replay says a record comes
 * from a journal (no token has expired: the journal says when one did).
 * 0, or a negative RPC_E* code with nothing changed: RPC_ENOT_FOUND,
 * RPC_ENOT_HELD, RPC_ENAME_NOT_FOUND, RPC_ETOKEN_INVALID, RPC_EQUOTA_EXCEEDED,
 * RPC_EOUT_OF_MEMORY, or RPC_EBAD_PARAMS when the record names what cannot
 * be (a session that does not exist, an id the allocator could not give). */
int apply_record(struct store *st, const struct rec *r, uint64_t now_ms, int replay,
                 struct apply_out *out);

#endif
