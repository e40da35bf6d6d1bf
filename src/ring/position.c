/* position.c - where a record lives on the ring. */
#include <sodium.h>
#include <string.h>

#include "ringkv/ring.h"

/* SipHash-2-4 (crypto_shorthash): 64 bits, ~50 ns, and keyed so positions
 * cannot be steered by a crafted key without knowing... nothing, in fact:
 * the key is public and fixed. What matters is uniformity and that every
 * node agrees; SipHash gives both cheaply. Changing this constant moves
 * every record, so it is part of the on-disk format. */
static const unsigned char ring_hash_key[crypto_shorthash_KEYBYTES] = "ringkv-ring-v01";

uint64_t ring_position(const char *table, size_t table_len, const char *key, size_t key_len)
{
    /* table and key are short (<= 64 and <= 1024 bytes): hash one buffer. */
    unsigned char msg[64 + 1 + 1024];
    unsigned char out[crypto_shorthash_BYTES];
    size_t len = 0;
    if (table_len > 64)
        table_len = 64;
    if (key_len > 1024)
        key_len = 1024;
    memcpy(msg, table, table_len);
    len += table_len;
    msg[len++] = '\0';
    memcpy(msg + len, key, key_len);
    len += key_len;
    crypto_shorthash(out, msg, len, ring_hash_key);
    return rk_load_be64(out);
}
