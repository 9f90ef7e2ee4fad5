/* core/dir.c - see core/dir.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "core/dir.h"

int sp_dir_create(const char *path, struct spate_error *err)
{
    char p[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0)
        return spate_error_set(err, -EINVAL, "empty directory path");
    if (n >= sizeof(p))
        return spate_error_set(err, -ENAMETOOLONG, "%s: path too long", path);
    memcpy(p, path, n + 1);
    /* Each prefix ending before a '/', then the whole path. */
    for (size_t i = 1; i <= n; i++) {
        if (i < n && p[i] != '/')
            continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            int e = errno;
            return spate_error_set(err, -e, "%s: cannot create directory '%s': %s", path, p,
                                   strerror(e));
        }
        p[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) < 0)
        return spate_error_set(err, -errno, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return spate_error_set(err, -ENOTDIR, "%s: not a directory", path);
    return 0;
}
