/* rng.c - a small seeded random source for simulations and injected
 * faults: xoshiro256** (Blackman and Vigna), its state filled by
 * splitmix64. Repeatable from one seed; not for secrets (libsodium is). */
#include "ringkv/common.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rk_rng_seed(rk_rng *g, uint64_t seed)
{
    /* splitmix64 never yields four zero words in a row, so the state is
     * never the all-zero one xoshiro cannot leave */
    for (int i = 0; i < 4; i++)
        g->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t rk_rng_next(rk_rng *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t rk_rng_below(rk_rng *g, uint64_t bound)
{
    if (bound == 0)
        return 0;
    /* Lemire's multiply-and-reject: unbiased, one multiply most of the
     * time */
    unsigned __int128 m = (unsigned __int128)rk_rng_next(g) * bound;
    uint64_t low = (uint64_t)m;
    if (low < bound) {
        uint64_t floor = -bound % bound;
        while (low < floor) {
            m = (unsigned __int128)rk_rng_next(g) * bound;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double rk_rng_unit(rk_rng *g)
{
    return (double)(rk_rng_next(g) >> 11) * 0x1.0p-53;
}
