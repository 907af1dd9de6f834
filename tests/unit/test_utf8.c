/* Unit tests for common/utf8. */
#include "cmocka_pre.h"

#include "utf8.h"

static void valid_and_invalid(void **state)
{
    (void)state;
    assert_true(utf8_valid("", 0));
    assert_true(utf8_valid("jobs/2026", 9));
    assert_true(utf8_valid("\xc3\xa9t\xc3\xa9", 6)); /* été */
    assert_true(utf8_valid("\xf0\x9f\x98\x80", 4));  /* U+1F600 */
    assert_false(utf8_valid("\xc0\xaf", 2));         /* overlong / */
    assert_false(utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(utf8_valid("\xc3", 1));             /* truncated */
    assert_false(utf8_valid("\x80", 1));             /* lone continuation */
    assert_false(utf8_valid("a\xff", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(valid_and_invalid)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
