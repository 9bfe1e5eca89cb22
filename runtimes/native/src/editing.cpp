#include "lrf/editing.h"

#include <fstream>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#include <stb_image.h>
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image_resize.h>

#include "lrf/error.h"

namespace lrf {

RgbImage read_image(const std::filesystem::path& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!std::filesystem::is_regular_file(path) || !in)
    throw Error(what + " " + path.string() + " does not exist; pass a PNG or JPEG file");
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  int w = 0, h = 0, channels = 0;
  uint8_t* data = bytes.size() > static_cast<size_t>(INT32_MAX) ? nullptr
                  : stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &channels, 3);
  if (data == nullptr)
    throw Error(what + " " + path.string() + " is not a readable image (" + (stbi_failure_reason() ? stbi_failure_reason() : "?") +
                "); pass a PNG or JPEG file");
  RgbImage image{w, h, std::vector<uint8_t>(data, data + static_cast<size_t>(w) * h * 3)};
  stbi_image_free(data);
  return image;
}

namespace {

RgbImage resized(const RgbImage& image, int side, bool nearest) {
  if (image.width == side && image.height == side) return image;
  RgbImage out{side, side, std::vector<uint8_t>(static_cast<size_t>(side) * side * 3)};
  if (nearest) {  // masks: values stay 0/255 (PIL's NEAREST picks the pixel under each centre)
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x) {
        const int sy = static_cast<int>((y + 0.5) * image.height / side), sx = static_cast<int>((x + 0.5) * image.width / side);
        for (int c = 0; c < 3; ++c)
          out.rgb[(static_cast<size_t>(y) * side + x) * 3 + c] = image.rgb[(static_cast<size_t>(sy) * image.width + sx) * 3 + c];
      }
    return out;
  }
  stbir_resize_uint8_srgb(image.rgb.data(), image.width, image.height, 0, out.rgb.data(), side, side, 0, 3,
                          STBIR_ALPHA_CHANNEL_NONE, 0);
  return out;
}

}  // namespace

std::map<std::string, Tensor> edit_tensors(const Plan& plan, const RgbImage& image, const RgbImage* mask, std::string* note) {
  const Plan::Input* in = plan.input_of_kind("image");
  if (in == nullptr || in->shape.size() != 4 || in->shape[1] != in->shape[2])
    throw Error("this bundle's plan takes no input image; export it with this lrf-export to edit images");
  const int side = static_cast<int>(in->shape[1]);
  if (image.width < 1 || image.height < 1 || image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3)
    throw Error("the image is empty; pass a PNG or JPEG file");
  std::map<std::string, Tensor> out;
  if (mask != nullptr) {  // checked first: a mismatched mask is refused before any image is resized
    if (mask->width != image.width || mask->height != image.height)
      throw Error("the mask is " + std::to_string(mask->width) + "x" + std::to_string(mask->height) + " but the image is " +
                  std::to_string(image.width) + "x" + std::to_string(image.height) + "; draw the mask at the image's size");
    const RgbImage m = resized(*mask, side, true);
    std::vector<float> values(static_cast<size_t>(side) * side);
    for (size_t i = 0; i < values.size(); ++i) {
      const uint8_t* p = &m.rgb[i * 3];
      const uint32_t luma = (p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16;  // PIL's "L"
      values[i] = luma > 127 ? 1.0f : 0.0f;
    }
    out["mask"] = Tensor::floats({1, 1, side, side}, std::move(values));
  }
  if ((image.width != side || image.height != side) && note != nullptr)
    *note = "note: image resized from " + std::to_string(image.width) + "x" + std::to_string(image.height) + " to " +
            std::to_string(side) + "x" + std::to_string(side) + ", the model's size";
  out["image"] = Tensor{"uint8", {1, side, side, 3}, resized(image, side, false).rgb};
  return out;
}

}  // namespace lrf
