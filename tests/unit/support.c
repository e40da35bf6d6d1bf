/* support.c - temporary directories and polling for the unit tests. */
#include "support.h"

#include <ftw.h>
#include <stdio.h>

#include "ringkv/common.h"

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void rm_tree(const char *dir)
{
    /* Depth first so a directory is empty when its turn comes. */
    if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "warning: could not remove %s\n", dir);
}

bool wait_for(bool (*cond)(void *), void *arg, unsigned timeout_ms)
{
    uint64_t deadline_ns = rk_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    while (!cond(arg)) {
        if (rk_mono_ns() >= deadline_ns)
            return false;
        rk_sleep_ms(2);
    }
    return true;
}
