import Foundation

/// The portable seeded noise: a line-for-line mirror of `lrf_model/noise.py`.
///
/// A counter-based PRNG (Chris Wellons' `lowbias32` 32-bit integer hash) plus Box-Muller in
/// Double, rounded to Float at the end, so one seed gives the same latent noise in Python, C++,
/// JavaScript, Kotlin and Swift. The manifest's `noise` check holds the Python noise for a seed
/// (a raw tensor); `SelfTest` and the unit tests check this implementation against it. Keep it
/// a mirror: change the Python first.
public enum PortableNoise {
    /// `noise.SEED_SALT`: keeps seed 0 away from hash32's fixed point `hash32(0) == 0`.
    public static let seedSalt: UInt32 = 0x9E37_79B9

    /// `noise.hash32`: Chris Wellons' `lowbias32`. The Python works on uint64 and masks with
    /// 0xFFFFFFFF after each multiply; UInt32 wrapping multiplication (`&*`) is the same.
    @inlinable
    public static func hash32(_ value: UInt32) -> UInt32 {
        var x = value
        x ^= x >> 16
        x = x &* 0x7FEB_352D
        x ^= x >> 15
        x = x &* 0x846C_A68B
        x ^= x >> 16
        return x
    }

    /// `noise.uniform_bits`: 32 random bits per counter, `hash32(key ^ hash32(counter))` with
    /// `key = hash32((seed & 0xFFFFFFFF) ^ SEED_SALT)`. Counters are taken modulo 2^32 as the
    /// Python's `& _M32` does; `UInt32(truncatingIfNeeded:)` of a negative seed is its two's
    /// complement low 32 bits, which is what Python's `seed & 0xFFFFFFFF` gives.
    public static func uniformBits(seed: Int, counters: Range<Int>) -> [UInt32] {
        let key = hash32(UInt32(truncatingIfNeeded: seed) ^ seedSalt)
        return counters.map { counter in hash32(key ^ hash32(UInt32(truncatingIfNeeded: counter))) }
    }

    /// `noise.noise_array(seed, shape)`, flattened row-major: standard normal Floats.
    ///
    /// Values `2k` and `2k+1` come from one Box-Muller pair built from counters `2k` and `2k+1`:
    /// `u = ((bits >> 8) + 0.5) / 2**24` (never 0 or 1), `r = sqrt(-2 ln u1)`, values
    /// `r cos(2 pi u2)` and `r sin(2 pi u2)`, computed in Double and rounded to Float.
    public static func noiseArray(seed: Int, shape: [Int]) -> [Float] {
        let n = shape.reduce(1, *)                                          // n = int(np.prod(shape))
        let pairs = (n + 1) / 2                                             // pairs = (n + 1) // 2
        let bits = uniformBits(seed: seed, counters: 0..<(2 * pairs))       // uniform_bits(seed, np.arange(2 * pairs))
        let u = bits.map { (Double($0 >> 8) + 0.5) / 16777216.0 }           // u = ((bits >> 8) + 0.5) / 16777216.0
        var out = [Double](repeating: 0, count: 2 * pairs)                  // out = np.empty(2 * pairs, float64)
        for k in 0..<pairs {
            let u1 = u[2 * k], u2 = u[2 * k + 1]                            // u1, u2 = u[0::2], u[1::2]
            let r = (-2.0 * log(u1)).squareRoot()                           // r = np.sqrt(-2.0 * np.log(u1))
            out[2 * k] = r * cos(2.0 * Double.pi * u2)                      // out[0::2] = r * np.cos(2.0 * math.pi * u2)
            out[2 * k + 1] = r * sin(2.0 * Double.pi * u2)                  // out[1::2] = r * np.sin(2.0 * math.pi * u2)
        }
        return out[0..<n].map { Float($0) }                                 // out[:n].astype(np.float32)
    }
}
