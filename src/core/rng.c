/* rng.c — xoshiro256** (Blackman & Vigna), seeded through splitmix64.
 * Every random choice in nexus (init, data windows, sampling, dropout of
 * layers) draws from an explicit nx_rng so that runs are reproducible and a
 * checkpoint can save the generator by value. */
#include "nexus/core.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void nx_rng_seed(nx_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nx_rng_u64(nx_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t nx_rng_below(nx_rng *r, uint64_t n) {
    NX_ASSERT(n > 0);
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* reject the biased tail */
    uint64_t x;
    do x = nx_rng_u64(r);
    while (x >= limit);
    return x % n;
}

double nx_rng_uniform(nx_rng *r) { return (nx_rng_u64(r) >> 11) * 0x1.0p-53; }

float nx_rng_normal(nx_rng *r) {
    double u1 = nx_rng_uniform(r), u2 = nx_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}
