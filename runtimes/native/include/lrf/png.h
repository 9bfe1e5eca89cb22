// PNG output through stb_image_write, written atomically (temporary file, then rename) so a
// failure never leaves a half-written image behind.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace lrf {

// `rgb`: height*width*3 bytes; `scale` >= 1 upscales with nearest neighbour (no smoothing).
void write_png(const std::filesystem::path& path, const std::vector<uint8_t>& rgb, int height, int width, int scale = 1);

}  // namespace lrf
