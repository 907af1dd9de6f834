/* crc32c: the Castagnoli CRC-32 (iSCSI, ext4, RFC 3720) that checksums the
 * records and files of the persistence layer. It uses the SSE4.2 crc32
 * instruction where the CPU has it and a slicing-by-8 table elsewhere; both
 * give the same values. Not a cryptographic hash: it detects accidents (torn
 * writes, bit flips), not tampering. */
#ifndef RCS_COMMON_CRC32C_H
#define RCS_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend crc (0 to start) over n bytes of p; returns the new crc. Chaining
 * calls over consecutive pieces gives the crc of the whole. */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);
/* The portable table version, for tests that compare both paths. */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);

#endif
