/* cmocka_pre: what cmocka 1.1 needs included before cmocka.h. */
#ifndef RCS_TESTS_CMOCKA_PRE_H
#define RCS_TESTS_CMOCKA_PRE_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#endif
