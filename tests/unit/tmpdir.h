/* tmpdir: what the tests of on-disk files share: removing a test's data
 * directory (files only, one level, as the journal and snapshot make). */
#ifndef RCS_TESTS_TMPDIR_H
#define RCS_TESTS_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

/* Unlink every file in d (names starting with '.' excepted), then d. */
static inline void rm_dir(const char *d)
{
    DIR *dp = opendir(d);
    struct dirent *e;
    char p[512];
    if (!dp)
        return;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        if (snprintf(p, sizeof(p), "%s/%s", d, e->d_name) < (int)sizeof(p))
            unlink(p);
    }
    closedir(dp);
    rmdir(d);
}

#endif
