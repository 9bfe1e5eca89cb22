// libFuzzer target over lrf-native's readers of untrusted bundle files: manifest.json
// (lrf::load_manifest, then what the runtime asks of it) and .npy test vectors (lrf::read_npy).
//
// Input: byte 0 picks the reader (even: manifest, odd: .npy), the rest is the file. A reader
// may throw lrf::Error (a one-line message, what lrf-native prints); anything else (another
// exception, a crash, an AddressSanitizer or UBSan report) is a finding.
//
//   cmake -S runtimes/native -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DLRF_NATIVE_FUZZ=ON
//   build-fuzz/lrf-fuzz-readers -max_total_time=60 corpus/
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "lrf/error.h"
#include "lrf/manifest.h"
#include "lrf/npy.h"

namespace {

const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("lrf-fuzz-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

void write(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

void exercise_manifest(const uint8_t* data, size_t size) {
  write(scratch() / "manifest.json", data, size);
  const lrf::Manifest m = lrf::load_manifest(scratch(), /*verify=*/false);
  (void)m.schedule();
  (void)m.class_index("cat");
  (void)m.class_index("3");
  for (const auto& [kind, art] : m.artifacts)
    for (const auto& t : art.inputs) (void)t.numel();
}

void exercise_npy(const uint8_t* data, size_t size) {
  write(scratch() / "vector.npy", data, size);
  const lrf::NpyArray a = lrf::read_npy(scratch() / "vector.npy");
  if (a.dtype == "float32") (void)a.floats();
  else (void)a.ints();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  try {
    if (data[0] % 2 == 0) exercise_manifest(data + 1, size - 1);
    else exercise_npy(data + 1, size - 1);
  } catch (const lrf::Error& e) {
    const std::string message = e.what();
    if (message.empty() || message.find('\n') != std::string::npos) {
      std::fprintf(stderr, "lrf::Error that is not one line: [%s]\n", message.c_str());
      std::abort();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "escaped as %s instead of lrf::Error: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
  return 0;
}
