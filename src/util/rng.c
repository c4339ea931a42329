#include "util/rng.h"

#include <math.h>

double md_rng_normal(md_rng_t *r)
{
    double u1 = md_rng_uniform(r), u2 = md_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
