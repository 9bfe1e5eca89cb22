// A reader for the .npy test vectors of a bundle (NumPy format 1.0-3.0).
//
// Only what bundles hold: little-endian float32 / int64 / int32, C order. Anything else is an
// lrf::Error naming the file, never a silent misread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lrf {

struct NpyArray {
  std::vector<int64_t> shape;
  std::string dtype;  // "float32" | "int64" | "int32"
  std::vector<uint8_t> bytes;

  size_t numel() const;
  // The values as floats (float32 arrays only).
  std::vector<float> floats() const;
  // The values as int64 (integer arrays only).
  std::vector<int64_t> ints() const;
};

NpyArray read_npy(const std::filesystem::path& path);

}  // namespace lrf
