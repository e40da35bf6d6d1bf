/* addr.c - where another node's HTTP gateway is reached from outside it. */
#include <stdio.h>
#include <string.h>

#include "ringkv/common.h"

void rk_reachable_http_addr(const char *http_addr, const char *rpc_addr, char *dst, size_t cap)
{
    const char *colon = strrchr(http_addr, ':');
    size_t hl = colon ? (size_t)(colon - http_addr) : 0;
    bool wildcard =
        colon != NULL && (hl == 0 || (hl == 7 && memcmp(http_addr, "0.0.0.0", 7) == 0) ||
                          (hl == 4 && memcmp(http_addr, "[::]", 4) == 0));
    const char *rpc_colon = strrchr(rpc_addr, ':');
    if (!wildcard || rpc_colon == NULL || rpc_colon == rpc_addr) {
        snprintf(dst, cap, "%s", http_addr);
        return;
    }
    snprintf(dst, cap, "%.*s%s", (int)(rpc_colon - rpc_addr), rpc_addr, colon);
}
