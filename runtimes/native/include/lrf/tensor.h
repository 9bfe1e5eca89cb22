// A tensor value of the plan and the checks: dtype, shape and its bytes, read from a bundle's raw
// little-endian file or made from a scalar. The dtypes are the manifest's: float32, int32, uint8.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "lrf/manifest.h"

namespace lrf {

struct Tensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  // Bytes per element of `dtype`; lrf::Error for a dtype bundles do not hold.
  static size_t itemsize(const std::string& dtype);
  // `value` cast to `dtype`, repeated over `shape` (a scalar feed such as t, cfg or the class).
  static Tensor filled(const std::string& dtype, const std::vector<int64_t>& shape, double value);
  static Tensor floats(const std::vector<int64_t>& shape, std::vector<float> values);

  size_t numel() const { return bytes.size() / itemsize(dtype); }
  // Element i as a double, whatever the dtype (for the metrics).
  double at(size_t i) const;
  bool all_finite() const;
  std::vector<float> to_floats() const;  // float32 tensors only
};

// The bundle tensor `name` (manifest "tensors"): its file must hold exactly numel * itemsize bytes.
Tensor read_tensor(const Manifest& m, const std::string& name);

}  // namespace lrf
