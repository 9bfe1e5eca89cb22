#include "lrf/png.h"

#include <system_error>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

#include "lrf/error.h"

namespace lrf {

void write_png(const std::filesystem::path& path, const std::vector<uint8_t>& rgb, int height, int width, int scale) {
  if (scale < 1) throw Error("--scale " + std::to_string(scale) + " is invalid; use 1 or more");
  const int h = height * scale, w = width * scale;
  std::vector<uint8_t> big(static_cast<size_t>(h) * w * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        big[(static_cast<size_t>(y) * w + x) * 3 + c] = rgb[(static_cast<size_t>(y / scale) * width + x / scale) * 3 + c];
  const auto tmp = std::filesystem::path(path.string() + ".partial");
  if (!stbi_write_png(tmp.string().c_str(), w, h, 3, big.data(), w * 3)) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw Error("cannot write " + path.string() + "; check that its folder exists and is writable");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace lrf
