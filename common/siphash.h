/* siphash: SipHash-2-4, a keyed hash for tables whose keys come from clients,
 * so that nobody can choose keys that all collide. */
#ifndef RCS_COMMON_SIPHASH_H
#define RCS_COMMON_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t siphash24(const void *in, size_t len, const uint8_t key[16]);

#endif
