/* utf8: strict UTF-8 validation, for names on the server and JSON output in
 * the CLI. */
#ifndef RCS_COMMON_UTF8_H
#define RCS_COMMON_UTF8_H

#include <stddef.h>

/* 1 if the len bytes at p are valid UTF-8 (no overlong forms, no surrogates,
 * nothing above U+10FFFF), else 0. */
int utf8_valid(const void *p, size_t len);

#endif
