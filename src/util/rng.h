/* Deterministic random numbers.
 *
 * Two kinds: a sequential xoshiro256** stream (md_rng_t) for work done in
 * one order, and md_hash64(), a counter-based generator for work spread over
 * threads: draw number i of stream s under seed k is md_hash64(k, s, i),
 * so results never depend on the thread count or scheduling.
 */
#ifndef MD_UTIL_RNG_H
#define MD_UTIL_RNG_H

#include <stdint.h>

typedef struct md_rng { uint64_t s[4]; } md_rng_t;

static inline uint64_t md_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void md_rng_seed(md_rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = md_splitmix64(&seed);
}

static inline uint64_t md_rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t md_rng_next(md_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = md_rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = md_rotl64(s[3], 45);
    return result;
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double md_u01(uint64_t x) { return (x >> 11) * 0x1.0p-53; }
static inline double md_rng_uniform(md_rng_t *r) { return md_u01(md_rng_next(r)); }

/* Uniform integer in [0, n) without modulo bias (Lemire's method). */
static inline uint64_t md_bounded(uint64_t x, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)x * n) >> 64);
}
static inline uint64_t md_rng_below(md_rng_t *r, uint64_t n) { return md_bounded(md_rng_next(r), n); }

/* Standard normal draw (Box-Muller; one of the pair is discarded for simplicity). */
double md_rng_normal(md_rng_t *r);

/* Counter-based: a well-mixed 64-bit value for (seed, stream, index). */
static inline uint64_t md_hash64(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint64_t x = seed ^ md_rotl64(stream * 0xd1b54a32d192ed03ULL, 17) ^ (index * 0x9e3779b97f4a7c15ULL);
    uint64_t a = md_splitmix64(&x);
    return a ^ md_splitmix64(&x);
}

#endif
