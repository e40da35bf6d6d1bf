/* dist.c - the generator and the delay distributions of failpoint rules (pure). */
#include <math.h>

#include "ringkv/failpoint.h"

/* A standard normal deviate (Box-Muller; the second deviate is not kept,
 * which costs a log and a sqrt per sample and keeps the state simple). */
static double std_normal(rk_rng *rng)
{
    double u1 = 1.0 - rk_rng_unit(rng); /* (0, 1]: log(u1) is finite */
    double u2 = rk_rng_unit(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double failpoint_dist_sample(const failpoint_dist *d, rk_rng *rng)
{
    double v = 0;
    switch (d->kind) {
    case FAILPOINT_DIST_CONST: v = d->a; break;
    case FAILPOINT_DIST_UNIFORM: v = d->a + (d->b - d->a) * rk_rng_unit(rng); break;
    case FAILPOINT_DIST_EXP: v = -d->a * log1p(-rk_rng_unit(rng)); break;
    case FAILPOINT_DIST_NORMAL: v = d->a + d->b * std_normal(rng); break;
    case FAILPOINT_DIST_LOGNORMAL: v = exp(d->a + d->b * std_normal(rng)); break;
    case FAILPOINT_DIST_PARETO:
        /* Inverse CDF: 1 - U is in (0, 1], so the power is finite. */
        v = d->a / pow(1.0 - rk_rng_unit(rng), 1.0 / d->b);
        break;
    }
    if (!(v > 0)) /* negative, or NaN */
        return 0;
    return v > FAILPOINT_DELAY_MAX_MS ? FAILPOINT_DELAY_MAX_MS : v;
}
