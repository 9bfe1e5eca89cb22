// The bundle's test vectors, run through this runtime: the on-device proof of parity.
//
// The same checks and tolerances as lrf_export.parity (tolerances from the manifest), plus
// one the host gate cannot make: the C++ noise against the Python noise of the trajectory seed.
// The trajectory starts from this runtime's own noise, so PRNG, loop, step graph and decoder
// are all checked together.
#pragma once

#include <string>
#include <vector>

#include "lrf/bundle_runtime.h"

namespace lrf {

struct Check {
  std::string name;    // e.g. "trajectory step 2"
  std::string metric;  // "max_abs" | "rel" (<= limit passes) | "psnr_db" (>= limit passes)
  double value = 0;
  double limit = 0;
  bool passed = false;
};

struct SelfTestReport {
  std::vector<Check> checks;
  bool passed() const;
};

SelfTestReport run_selftest(BundleRuntime& runtime);

// max|got - ref| / max|ref| (lrf_export.parity.rel_error).
double rel_error(const std::vector<float>& got, const std::vector<float>& ref);
// PSNR of images in [-1, 1], peak-to-peak 2 (lrf_export.parity.psnr); +inf when identical.
double psnr_db(const std::vector<float>& got, const std::vector<float>& ref);

}  // namespace lrf
