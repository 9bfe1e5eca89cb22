#include "lrf/noise.h"

#include <cmath>

namespace lrf {

uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

uint32_t uniform_bits(uint32_t seed, uint32_t counter) {
  const uint32_t key = hash32(seed ^ kSeedSalt);
  return hash32(key ^ hash32(counter));
}

std::vector<float> portable_noise(uint64_t seed, size_t count) {
  const uint32_t s = static_cast<uint32_t>(seed & 0xFFFFFFFFu);
  const size_t pairs = (count + 1) / 2;
  const double two_pi = 2.0 * 3.141592653589793;  // math.pi
  std::vector<float> out(2 * pairs);
  for (size_t k = 0; k < pairs; ++k) {
    // u = ((bits >> 8) + 0.5) / 2^24, never 0 or 1
    const double u1 = (static_cast<double>(uniform_bits(s, static_cast<uint32_t>(2 * k)) >> 8) + 0.5) / 16777216.0;
    const double u2 = (static_cast<double>(uniform_bits(s, static_cast<uint32_t>(2 * k + 1)) >> 8) + 0.5) / 16777216.0;
    const double r = std::sqrt(-2.0 * std::log(u1));
    out[2 * k] = static_cast<float>(r * std::cos(two_pi * u2));
    out[2 * k + 1] = static_cast<float>(r * std::sin(two_pi * u2));
  }
  out.resize(count);
  return out;
}

}  // namespace lrf
