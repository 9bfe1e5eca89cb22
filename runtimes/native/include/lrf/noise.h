// The portable seeded noise: a line-for-line mirror of lrf_model/noise.py.
//
// One seed gives the same latent noise in Python, C++, JavaScript, Kotlin and Swift: a
// counter-based PRNG (the lowbias32 integer hash) and Box-Muller in double precision, rounded
// to float at the end. The bundle's test vectors hold the Python noise for one seed, and
// `lrf-native --selftest` checks this implementation against it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lrf {

constexpr uint32_t kSeedSalt = 0x9E3779B9u;  // noise.SEED_SALT

// noise.hash32: Chris Wellons' lowbias32.
uint32_t hash32(uint32_t x);

// noise.uniform_bits for one counter.
uint32_t uniform_bits(uint32_t seed, uint32_t counter);

// noise.noise_array(seed, shape) flattened: `count` standard normal floats, row-major.
// `seed` is taken modulo 2^32, as Python's `seed & 0xFFFFFFFF`.
std::vector<float> portable_noise(uint64_t seed, size_t count);

}  // namespace lrf
