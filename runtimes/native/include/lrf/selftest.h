// The bundle's self-test: its manifest's "checks" run through this runtime, the on-device proof
// of parity. The same list, metrics and table as lrf_export.checks (Python), the web page and
// the Swift package; tests/test_selftest_agreement.py compares their verdicts check by check.
#pragma once

#include <string>
#include <vector>

#include "lrf/bundle_runtime.h"

namespace lrf {

struct Check {
  std::string name;
  std::string metric;  // "rel" | "max_abs" (<= limit passes) | "psnr" (>= limit passes)
  double value = 0;
  double limit = 0;
  bool passed = false;
};

struct SelfTestReport {
  std::vector<Check> checks;
  bool passed() const;
  // The table every runtime prints (lrf_export.checks.table).
  std::string table() const;
};

SelfTestReport run_selftest(BundleRuntime& runtime);

// `metric` of got against ref, element by element in double (lrf_export.checks.metric): NaN when
// the sizes differ or a value is NaN.
double metric(const std::string& metric, const Tensor& got, const Tensor& ref);
bool passes(const std::string& metric, double value, double limit);

}  // namespace lrf
