// An edit's inputs (lrf_model/editing.py, the same rules): the image resized to the model's side
// with a one-line note, the mask refused unless it has the image's size, then made 0/1 (1 where
// the pixel's luma, PIL's integer ITU-R 601 formula, is above 127) and resized with nearest
// neighbour. The app layers (CLI, JNI) hand over decoded RGB; files are read by read_image.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "lrf/manifest.h"
#include "lrf/tensor.h"

namespace lrf {

struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // height * width * 3, row-major
};

// A PNG/JPEG file, decoded to RGB (alpha dropped); lrf::Error naming the file otherwise.
RgbImage read_image(const std::filesystem::path& path, const std::string& what = "image");

// The plan's "image" (uint8 (1, S, S, 3)) and, given a mask, "mask" (float32 (1, 1, S, S))
// inputs; `note` receives the one-line resize note, if any.
std::map<std::string, Tensor> edit_tensors(const Plan& plan, const RgbImage& image, const RgbImage* mask,
                                           std::string* note = nullptr);

}  // namespace lrf
