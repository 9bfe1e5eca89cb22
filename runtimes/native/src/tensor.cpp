#include "lrf/tensor.h"

#include <cmath>
#include <fstream>

#include "lrf/error.h"

namespace lrf {

size_t Tensor::itemsize(const std::string& dtype) {
  if (dtype == "float32" || dtype == "int32") return 4;
  if (dtype == "uint8") return 1;
  throw Error("dtype " + dtype + " is not one this runtime handles (float32, int32, uint8); re-export the bundle");
}

Tensor Tensor::filled(const std::string& dtype, const std::vector<int64_t>& shape, double value) {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  Tensor t{dtype, shape, std::vector<uint8_t>(n * itemsize(dtype))};
  for (size_t i = 0; i < n; ++i) {
    if (dtype == "float32") {
      const float v = static_cast<float>(value);
      std::memcpy(t.bytes.data() + 4 * i, &v, 4);
    } else if (dtype == "int32") {
      const int32_t v = static_cast<int32_t>(value);
      std::memcpy(t.bytes.data() + 4 * i, &v, 4);
    } else {
      t.bytes[i] = static_cast<uint8_t>(value);
    }
  }
  return t;
}

Tensor Tensor::floats(const std::vector<int64_t>& shape, std::vector<float> values) {
  Tensor t{"float32", shape, std::vector<uint8_t>(values.size() * 4)};
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

double Tensor::at(size_t i) const {
  if (dtype == "uint8") return bytes[i];
  if (dtype == "int32") {
    int32_t v;
    std::memcpy(&v, bytes.data() + 4 * i, 4);
    return v;
  }
  float v;
  std::memcpy(&v, bytes.data() + 4 * i, 4);
  return v;
}

bool Tensor::all_finite() const {
  if (dtype != "float32") return true;
  for (size_t i = 0, n = numel(); i < n; ++i)
    if (!std::isfinite(at(i))) return false;
  return true;
}

std::vector<float> Tensor::to_floats() const {
  if (dtype != "float32") throw Error("expected a float32 tensor, got " + dtype + "; re-export the bundle");
  std::vector<float> out(numel());
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

Tensor read_tensor(const Manifest& m, const std::string& name) {
  auto it = m.tensors.find(name);
  if (it == m.tensors.end()) throw Error("the bundle has no tensor " + name + "; re-export it");
  const auto& [file, spec] = it->second;
  const size_t want = spec.numel() * Tensor::itemsize(spec.dtype);
  const auto path = m.path(file);
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || size != want)
    throw Error("bundle tensor " + file + (ec ? " is missing" : " holds " + std::to_string(size) + " bytes") + ", its spec " +
                spec.dtype + " needs " + std::to_string(want) + "; re-export the bundle");
  Tensor t{spec.dtype, spec.shape, std::vector<uint8_t>(want)};
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(t.bytes.data()), static_cast<std::streamsize>(want)))
    throw Error("bundle tensor " + file + " could not be read; re-copy the bundle");
  return t;
}

}  // namespace lrf
