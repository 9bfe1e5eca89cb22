// libFuzzer target over lrf-native's readers of untrusted bundle files: manifest.json
// (lrf::load_manifest with its plan, then what the runtime asks of it) and raw tensor files
// (lrf::read_tensor, against the tensor specs of the last manifest that loaded).
//
// Input: byte 0 picks the reader (even: manifest, odd: tensor), the rest is the file. A reader
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
#include <optional>
#include <string>

#include "lrf/error.h"
#include "lrf/manifest.h"
#include "lrf/tensor.h"

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

// The last manifest that loaded: its tensor specs are what the tensor reader is fuzzed against.
std::optional<lrf::Manifest> last;

void exercise_manifest(const uint8_t* data, size_t size) {
  write(scratch() / "manifest.json", data, size);
  lrf::Manifest m = lrf::load_manifest(scratch(), /*verify=*/false);
  (void)m.schedule();
  (void)m.class_index("cat");
  (void)m.class_index("3");
  for (const auto& [kind, art] : m.artifacts)
    for (const auto& t : art.inputs) (void)lrf::Tensor::filled(t.dtype, t.shape, 1.0);
  for (const auto& [name, t] : m.tensors) (void)lrf::Tensor::itemsize(t.spec.dtype);
  last = std::move(m);
}

void exercise_tensor(const uint8_t* data, size_t size) {
  if (!last || last->tensors.empty()) return;
  const auto& [name, t] = *last->tensors.begin();
  const auto path = scratch() / t.file;
  if (path.lexically_normal().string().rfind(scratch().string(), 0) != 0) return;  // the schema forbids ".." paths
  std::filesystem::create_directories(path.parent_path());
  write(path, data, size);
  const lrf::Tensor a = lrf::read_tensor(*last, name);
  for (size_t i = 0; i < a.numel(); ++i) (void)a.at(i);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  try {
    if (data[0] % 2 == 0) exercise_manifest(data + 1, size - 1);
    else exercise_tensor(data + 1, size - 1);
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
