/* vmflags: what the kernel says of the mapping that holds an address, for
 * the tests of the allocators' huge-page advice (test_pool, test_mem). */
#ifndef RCS_TESTS_VMFLAGS_H
#define RCS_TESTS_VMFLAGS_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Whether the kernel has transparent huge pages at all (without them,
 * madvise(MADV_HUGEPAGE) fails and the allocators go on with 4 KiB pages). */
static inline int thp_in_kernel(void)
{
    return access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0;
}

/* 1 if the mapping holding p carries VmFlag `flag` (two letters: "hg" for
 * MADV_HUGEPAGE), 0 if not, -1 if /proc/self/smaps has no mapping for p. */
static inline int vma_has_flag(const void *p, const char *flag)
{
    char line[512], want[8];
    uintptr_t a = (uintptr_t)p, lo, hi;
    int in = 0, found = -1;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    snprintf(want, sizeof(want), " %s", flag);
    while (fgets(line, sizeof(line), f)) {
        /* A mapping's first line is "lo-hi perms ..."; its fields ("Size:",
         * "AnonHugePages:") never scan as two hex numbers around a '-'. */
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) == 2) {
            in = a >= lo && a < hi;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            found = strstr(line + 8, want) != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}

/* The bounds [*lo, *hi) of the mapping holding p: 0, or -1 if none. */
static inline int vma_bounds(const void *p, uintptr_t *lo, uintptr_t *hi)
{
    char line[512];
    uintptr_t a = (uintptr_t)p;
    int rc = -1;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    while (rc < 0 && fgets(line, sizeof(line), f))
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, lo, hi) == 2 && a >= *lo && a < *hi)
            rc = 0;
    fclose(f);
    return rc;
}

#endif
