/* frame.c - sealing, opening, encoding and decoding of RPC frames. */
#include <string.h>

#include "rpc_internal.h"

/* crypto_kdf's context is exactly 8 bytes; a new key use gets a new one. */
#define FRAME_KDF_CONTEXT "rkv_rpc1"
#define FRAME_KDF_ID 1u
#define FRAME_LEN_BYTES 4u

/* The secret is hashed first because crypto_kdf wants exactly 32 bytes of
 * master key and the secret can be any length. It is not stretched: the
 * cluster secret must be random (docs/rpc.md), not a password. */
rk_err rpc_frame_key_derive(const void *secret, size_t secret_len, frame_key *out)
{
    if (secret == NULL || secret_len == 0)
        return RK_EINVAL;
    if (sodium_init() < 0)
        return RK_EIO;
    uint8_t master[crypto_kdf_KEYBYTES];
    crypto_generichash(master, sizeof master, secret, secret_len, NULL, 0);
    frame_key k = {.sealed = true};
    crypto_kdf_derive_from_key(k.key, sizeof k.key, FRAME_KDF_ID, FRAME_KDF_CONTEXT, master);
    sodium_memzero(master, sizeof master);
    *out = k;
    sodium_memzero(&k, sizeof k);
    return RK_OK;
}

void rpc_frame_key_insecure(frame_key *out)
{
    memset(out, 0, sizeof *out);
}

rk_err rpc_frame_key_from_options(const rpc_options *opts, frame_key *out)
{
    if (opts->insecure) {
        if (opts->secret_len > 0) {
            RK_ERROR("rpc", "both a cluster secret and insecure mode were given");
            return RK_EINVAL;
        }
        rpc_frame_key_insecure(out);
        return RK_OK;
    }
    if (opts->secret == NULL || opts->secret_len == 0) {
        RK_ERROR("rpc", "no cluster secret (and insecure mode not asked for)");
        return RK_EINVAL;
    }
    if (opts->secret_len < 16)
        RK_WARN("rpc", "the cluster secret is only %zu bytes; use 32 random bytes",
                opts->secret_len);
    return rpc_frame_key_derive(opts->secret, opts->secret_len, out);
}

void rpc_frame_key_wipe(frame_key *k)
{
    sodium_memzero(k, sizeof *k);
}

size_t rpc_frame_prefix_bytes(const frame_key *k)
{
    return FRAME_AD_BYTES + (k->sealed ? FRAME_NONCE_BYTES : 0);
}

size_t rpc_frame_suffix_bytes(const frame_key *k)
{
    return k->sealed ? FRAME_TAG_BYTES : 0;
}

void rpc_frame_seal(const frame_key *k, uint64_t sender, uint8_t *buf, size_t plain_len)
{
    buf[0] = 'R';
    buf[1] = 'K';
    buf[2] = FRAME_VERSION;
    buf[3] = k->sealed ? FRAME_FLAG_SEALED : 0;
    rk_store_be64(buf + 4, sender);
    if (!k->sealed)
        return;
    uint8_t *nonce = buf + FRAME_AD_BYTES;
    uint8_t *text = nonce + FRAME_NONCE_BYTES;
    /* A random 192-bit nonce per frame: no counter to keep across restarts
     * or threads, and collisions are negligible (that is why XChaCha). */
    randombytes_buf(nonce, FRAME_NONCE_BYTES);
    /* In place: libsodium allows the ciphertext to overwrite the message. */
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
        text, text + plain_len, NULL, text, plain_len, buf, FRAME_AD_BYTES, NULL, nonce, k->key);
}

rk_err rpc_frame_open(const frame_key *k, uint8_t *buf, size_t len, uint64_t *sender,
                      uint8_t **plain, size_t *plain_len, const uint8_t **nonce)
{
    if (len < rpc_frame_prefix_bytes(k) + rpc_frame_suffix_bytes(k))
        return RK_ECORRUPT;
    if (buf[0] != 'R' || buf[1] != 'K' || buf[2] != FRAME_VERSION)
        return RK_ECORRUPT;
    /* A sealed end never accepts a clear frame (that would be a downgrade),
     * and an insecure end cannot open a sealed one. */
    if (buf[3] != (k->sealed ? FRAME_FLAG_SEALED : 0))
        return RK_ECORRUPT;
    uint8_t *text = buf + rpc_frame_prefix_bytes(k);
    size_t text_len = len - rpc_frame_prefix_bytes(k) - rpc_frame_suffix_bytes(k);
    const uint8_t *n = NULL;
    if (k->sealed) {
        n = buf + FRAME_AD_BYTES;
        if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
                text, NULL, text, text_len, text + text_len, buf, FRAME_AD_BYTES, n, k->key) != 0)
            return RK_ECORRUPT;
    }
    *sender = rk_load_be64(buf + 4);
    *plain = text;
    *plain_len = text_len;
    *nonce = n;
    return RK_OK;
}

rk_err rpc_frame_encode(const frame_key *k, uint64_t sender, const Ringkv__FrameHeader *hdr,
                        const ProtobufCMessage *payload, size_t max_frame_bytes, nng_msg **out)
{
    size_t hlen = ringkv__frame_header__get_packed_size(hdr);
    size_t plen = payload != NULL ? protobuf_c_message_get_packed_size(payload) : 0;
    size_t over = rpc_frame_prefix_bytes(k) + FRAME_LEN_BYTES + hlen + rpc_frame_suffix_bytes(k);
    if (hlen > UINT32_MAX || plen > max_frame_bytes || over > max_frame_bytes - plen)
        return RK_ETOOBIG;
    size_t plain_len = FRAME_LEN_BYTES + hlen + plen;
    nng_msg *m;
    if (nng_msg_alloc(&m, over + plen) != 0)
        return RK_ENOMEM;
    uint8_t *buf = nng_msg_body(m);
    uint8_t *p = buf + rpc_frame_prefix_bytes(k);
    rk_store_be32(p, (uint32_t)hlen);
    ringkv__frame_header__pack(hdr, p + FRAME_LEN_BYTES);
    if (payload != NULL)
        protobuf_c_message_pack(payload, p + FRAME_LEN_BYTES + hlen);
    rpc_frame_seal(k, sender, buf, plain_len);
    *out = m;
    return RK_OK;
}

rk_err rpc_frame_decode(const frame_key *k, uint8_t *buf, size_t len, frame_view *out)
{
    frame_view v = {0};
    uint8_t *plain;
    size_t plain_len;
    rk_err err = rpc_frame_open(k, buf, len, &v.sender, &plain, &plain_len, &v.nonce);
    if (err != RK_OK)
        return err;
    if (plain_len < FRAME_LEN_BYTES)
        return RK_EINVAL;
    size_t hlen = rk_load_be32(plain);
    if (hlen > plain_len - FRAME_LEN_BYTES)
        return RK_EINVAL;
    v.hdr = ringkv__frame_header__unpack(NULL, hlen, plain + FRAME_LEN_BYTES);
    if (v.hdr == NULL)
        return RK_EINVAL;
    v.payload = plain + FRAME_LEN_BYTES + hlen;
    v.payload_len = plain_len - FRAME_LEN_BYTES - hlen;
    *out = v;
    return RK_OK;
}

void rpc_frame_view_fini(frame_view *v)
{
    if (v->hdr != NULL)
        ringkv__frame_header__free_unpacked(v->hdr, NULL);
    v->hdr = NULL;
}

bool rpc_batch_is(const uint8_t *buf, size_t len)
{
    return len >= 2 && buf[0] == 'R' && buf[1] == 'B';
}

bool rpc_message_sender(const uint8_t *buf, size_t len, uint64_t *out)
{
    if (rpc_batch_is(buf, len)) { /* the first member's */
        buf += RPC_BATCH_HEADER_BYTES + RPC_BATCH_LEN_BYTES;
        len = len >= RPC_BATCH_HEADER_BYTES + RPC_BATCH_LEN_BYTES
                  ? len - RPC_BATCH_HEADER_BYTES - RPC_BATCH_LEN_BYTES
                  : 0;
    }
    if (len < FRAME_AD_BYTES || buf[0] != 'R' || buf[1] != 'K')
        return false;
    *out = rk_load_be64(buf + 4);
    return true;
}

size_t rpc_batch_bytes(size_t n, size_t frame_bytes)
{
    return RPC_BATCH_HEADER_BYTES + n * RPC_BATCH_LEN_BYTES + frame_bytes;
}

uint8_t *rpc_batch_begin(uint8_t *buf, uint32_t n)
{
    buf[0] = 'R';
    buf[1] = 'B';
    buf[2] = RPC_BATCH_VERSION;
    buf[3] = 0;
    rk_store_be32(buf + 4, n);
    return buf + RPC_BATCH_HEADER_BYTES;
}

uint8_t *rpc_batch_add(uint8_t *at, const void *frame, size_t len)
{
    rk_store_be32(at, (uint32_t)len);
    memcpy(at + RPC_BATCH_LEN_BYTES, frame, len);
    return at + RPC_BATCH_LEN_BYTES + len;
}

rk_err rpc_batch_parse(uint8_t *buf, size_t len, batch_span *out, size_t cap, size_t *n)
{
    if (len < RPC_BATCH_HEADER_BYTES || !rpc_batch_is(buf, len) || buf[2] != RPC_BATCH_VERSION ||
        buf[3] != 0)
        return RK_ECORRUPT;
    uint32_t count = rk_load_be32(buf + 4);
    if (count == 0 || count > cap)
        return RK_ECORRUPT;
    size_t at = RPC_BATCH_HEADER_BYTES;
    for (uint32_t i = 0; i < count; i++) {
        if (len - at < RPC_BATCH_LEN_BYTES)
            return RK_ECORRUPT;
        size_t flen = rk_load_be32(buf + at);
        at += RPC_BATCH_LEN_BYTES;
        if (flen > len - at)
            return RK_ECORRUPT;
        out[i] = (batch_span){.frame = buf + at, .len = flen};
        at += flen;
    }
    if (at != len)
        return RK_ECORRUPT;
    *n = count;
    return RK_OK;
}

rk_err rpc_frame_check_time(uint64_t ts_ms, uint64_t now_ms, uint32_t window_ms)
{
    uint64_t diff = ts_ms > now_ms ? ts_ms - now_ms : now_ms - ts_ms;
    return diff <= window_ms ? RK_OK : RK_ETIMEDOUT;
}
