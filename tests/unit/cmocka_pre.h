/* cmocka_pre: what cmocka 1.1 needs included before cmocka.h, and the one
 * rule that splits a test program's tests into the default run and the slow
 * run: a test whose name begins with "million_" is slow. */
#ifndef RCS_TESTS_CMOCKA_PRE_H
#define RCS_TESTS_CMOCKA_PRE_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

/* Run only the slow tests when the program's first argument is "slow"
 * (ctest's <name>_slow, labelled slow), else only the others. */
static inline void rcs_test_select(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "slow") == 0)
        cmocka_set_test_filter("million_*");
    else
        cmocka_set_skip_filter("million_*");
}
#endif
