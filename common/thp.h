/* thp: transparent huge pages made off the event loop. A page fault that
 * makes a 2 MiB huge page zeroes 2 MiB at once: about 0.25 ms where the
 * memory was used before, but 1-5 ms on a virtual machine whose host backs
 * guest memory on its first touch (these machines), a stall no request
 * should cause. So one helper thread makes them ahead, for the pool's
 * arenas (most of the heap): it maps a 2 MiB chunk aligned to 2 MiB,
 * advises MADV_HUGEPAGE and populates it (MADV_POPULATE_WRITE) before the
 * pool needs one. It never touches memory the loop uses: it shares with it
 * only the ready chunk under a mutex. It is not an allocator: the pool
 * decides what to map and free. */
#ifndef RCS_COMMON_THP_H
#define RCS_COMMON_THP_H

#include <stddef.h>

#define THP_BYTES ((size_t)2 << 20) /* a huge page (x86-64, arm64 with 4 KiB pages) */

/* A chunk of THP_BYTES aligned to THP_BYTES, advised MADV_HUGEPAGE and
 * resident, taken by the caller (who unmaps it); NULL if none is ready (the
 * helper is then asked for another). Never waits; in a forked child it
 * returns NULL. Starts the helper at the first call (NULL then). */
void *thp_chunk_take(void);
/* For a fork(): a fork waits for every page fault in flight in the process,
 * the helper's too (1-5 ms on fresh VM memory). thp_hold(1) stops the
 * helper from starting a chunk, thp_busy() says whether one is still being
 * made (1 also when the helper holds its mutex that instant), thp_hold(0)
 * lets it go on. A snapshot that calls thp_hold(1) and forks at the first
 * loop iteration where thp_busy() is 0 never waits for the helper. */
void thp_hold(int on);
int thp_busy(void);
/* One round of the helper's work on the calling thread, for tests: make
 * chunks until READY of them wait. */
void thp_step(void);

#endif
