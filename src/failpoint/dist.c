/* dist.c - the generator and the delay distributions of failpoint rules (pure). */
#include <math.h>

#include "ringkv/failpoint.h"

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* splitmix64: spreads one seed over xoshiro's four words, as its authors
 * advise (an all-zero state would stay zero). */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void failpoint_rng_seed(failpoint_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

/* xoshiro256** (Blackman and Vigna). */
uint64_t failpoint_rng_next(failpoint_rng *rng)
{
    uint64_t *s = rng->s;
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

double failpoint_rng_unit(failpoint_rng *rng)
{
    return (double)(failpoint_rng_next(rng) >> 11) * 0x1.0p-53;
}

/* A standard normal deviate (Box-Muller; the second deviate is not kept,
 * which costs a log and a sqrt per sample and keeps the state simple). */
static double std_normal(failpoint_rng *rng)
{
    double u1 = 1.0 - failpoint_rng_unit(rng); /* (0, 1]: log(u1) is finite */
    double u2 = failpoint_rng_unit(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double failpoint_dist_sample(const failpoint_dist *d, failpoint_rng *rng)
{
    double v = 0;
    switch (d->kind) {
    case FAILPOINT_DIST_CONST: v = d->a; break;
    case FAILPOINT_DIST_UNIFORM: v = d->a + (d->b - d->a) * failpoint_rng_unit(rng); break;
    case FAILPOINT_DIST_EXP: v = -d->a * log1p(-failpoint_rng_unit(rng)); break;
    case FAILPOINT_DIST_NORMAL: v = d->a + d->b * std_normal(rng); break;
    case FAILPOINT_DIST_LOGNORMAL: v = exp(d->a + d->b * std_normal(rng)); break;
    case FAILPOINT_DIST_PARETO:
        /* Inverse CDF: 1 - U is in (0, 1], so the power is finite. */
        v = d->a / pow(1.0 - failpoint_rng_unit(rng), 1.0 / d->b);
        break;
    }
    if (!(v > 0)) /* negative, or NaN */
        return 0;
    return v > FAILPOINT_DELAY_MAX_MS ? FAILPOINT_DELAY_MAX_MS : v;
}
