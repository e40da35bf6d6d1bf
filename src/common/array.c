/* array.c - growth of malloc'd arrays, written once for every module. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringkv/common.h"

rk_err rk_array_grow(void **items, size_t *cap, size_t need, size_t item_size)
{
    if (need <= *cap)
        return RK_OK;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n = n * 2 > n ? n * 2 : need;
    if (item_size == 0 || n > SIZE_MAX / item_size)
        return RK_ENOMEM;
    /* *items is really a T *, not a void *: read and write it with memcpy
     * rather than through a void * lvalue, which strict aliasing forbids.
     * Every platform we build on represents all object pointers alike. */
    void *old;
    memcpy(&old, items, sizeof old);
    void *p = realloc(old, n * item_size);
    if (p == NULL)
        return RK_ENOMEM;
    memcpy(items, &p, sizeof p);
    *cap = n;
    return RK_OK;
}
