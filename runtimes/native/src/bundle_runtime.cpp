#include "lrf/bundle_runtime.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <utility>

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/platform/platform.h>

#ifdef __ANDROID__
#include <android/log.h>
#endif

#include "et_threadpool.h"
#include "lrf/noise.h"

namespace lrf {
namespace {

namespace et = ::executorch;
using et::extension::Module;
using et::runtime::EValue;
using ScalarType = et::aten::ScalarType;

// --- ExecuTorch's log: quiet unless asked, but its errors go into our one-line messages.
std::mutex log_mutex;
std::vector<std::string> log_errors;  // since the last take_log_errors()
bool log_verbose = false;

void emit_log(et_timestamp_t, et_pal_log_level_t level, const char* file, const char*, size_t line,
              const char* message, size_t length) {
  std::lock_guard<std::mutex> lock(log_mutex);
  std::string text(message, length);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (log_verbose) {
#ifdef __ANDROID__
    __android_log_print(level == kError || level == kFatal ? ANDROID_LOG_ERROR : ANDROID_LOG_INFO, "executorch",
                        "%s:%zu %s", file, line, text.c_str());
#else
    std::fprintf(stderr, "[executorch %c] %s:%zu %s\n", static_cast<char>(level), file, line, text.c_str());
#endif
  }
  if (level == kError || level == kFatal) log_errors.push_back(text);
}

void install_log_once() {
  static const bool installed = et::runtime::register_pal(et::runtime::PalImpl::create(emit_log, __FILE__));
  (void)installed;
}

std::vector<std::string> take_log_errors() {
  std::lock_guard<std::mutex> lock(log_mutex);
  return std::exchange(log_errors, {});
}

ScalarType scalar_type(const std::string& dtype) {
  if (dtype == "float32") return ScalarType::Float;
  if (dtype == "int64") return ScalarType::Long;
  if (dtype == "int32") return ScalarType::Int;
  throw Error("manifest declares dtype " + dtype + ", which this runtime does not handle; re-export the bundle");
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

[[noreturn]] void fail(const std::string& file, const std::string& what, et::runtime::Error err) {
  // The first error ExecuTorch logged is the cause (later ones say which layer gave up).
  const auto logged = take_log_errors();
  const std::string detail = std::string(et::runtime::to_string(err)) + (logged.empty() ? "" : ": " + logged.front());
  bool out_of_memory = err == et::runtime::Error::MemoryAllocationFailed;
  // XNNPACK says xnn_status_out_of_memory; the mmap loader says "Failed to map" (ENOMEM: the
  // file was verified readable a moment before, so what is missing is address space).
  for (const auto& line : logged)
    out_of_memory |= line.find("out_of_memory") != std::string::npos || line.find("Failed to map") != std::string::npos;
  if (out_of_memory)
    throw OutOfMemory("out of memory while " + what + " " + file + " (" + detail +
                      "); free memory or use a smaller model / an int8 bundle");
  throw Error(what + " " + file + " failed (" + detail + "); re-export the bundle with this lrf-export");
}

}  // namespace

// One .pte program and its declared named inputs/outputs.
struct BundleRuntime::Graph {
  Artifact spec;
  std::unique_ptr<Module> module;

  Graph(const Manifest& m, const std::string& kind) : spec(m.artifact(kind)) {
    const std::string path = m.path(spec.file).string();
    try {
      // Mmap: weights are paged in from the file instead of copied onto the heap.
      module = std::make_unique<Module>(path, Module::LoadMode::Mmap);
    } catch (const std::bad_alloc&) {
      throw OutOfMemory("out of memory while opening " + spec.file + "; free memory or use an int8 bundle");
    }
    if (auto err = module->load_method("forward"); err != et::runtime::Error::Ok) fail(spec.file, "loading", err);
    check_signature();
  }

  // The program's tensors must be the manifest's, or every later number would be garbage.
  void check_signature() {
    auto meta = module->method_meta("forward");
    if (!meta.ok()) fail(spec.file, "reading the signature of", meta.error());
    auto mismatch = [&](const char* io, size_t i, const TensorSpec& want, std::vector<int64_t> got) {
      throw Error(spec.file + " " + io + " " + std::to_string(i) + " (" + want.name + ") has shape " + shape_str(got) +
                  " but the manifest declares " + shape_str(want.shape) + "; the bundle is inconsistent, re-export it");
    };
    if (meta->num_inputs() != spec.inputs.size() || meta->num_outputs() != spec.outputs.size())
      throw Error(spec.file + " takes " + std::to_string(meta->num_inputs()) + " inputs and gives " +
                  std::to_string(meta->num_outputs()) + " outputs, the manifest declares " +
                  std::to_string(spec.inputs.size()) + " and " + std::to_string(spec.outputs.size()) +
                  "; re-export the bundle");
    for (size_t i = 0; i < spec.inputs.size(); ++i) {
      auto info = meta->input_tensor_meta(i);
      if (!info.ok()) fail(spec.file, "reading input meta of", info.error());
      std::vector<int64_t> got(info->sizes().begin(), info->sizes().end());
      if (got != spec.inputs[i].shape || info->scalar_type() != scalar_type(spec.inputs[i].dtype))
        mismatch("input", i, spec.inputs[i], got);
    }
    for (size_t i = 0; i < spec.outputs.size(); ++i) {
      auto info = meta->output_tensor_meta(i);
      if (!info.ok()) fail(spec.file, "reading output meta of", info.error());
      std::vector<int64_t> got(info->sizes().begin(), info->sizes().end());
      if (got != spec.outputs[i].shape) mismatch("output", i, spec.outputs[i], got);
    }
  }

  // Feeds by input name, each pointing at numel() values of the input's declared dtype (the
  // load-time signature check guarantees the program agrees), as lrf_export's cast_feeds.
  std::vector<float> run(const std::map<std::string, const void*>& feeds) {
    std::vector<et::extension::TensorPtr> tensors;
    std::vector<EValue> values;
    for (const auto& in : spec.inputs) {
      auto feed = feeds.find(in.name);
      if (feed == feeds.end())
        throw Error(spec.file + " takes an input '" + in.name + "' this runtime does not know; update lrf-native");
      std::vector<et::aten::SizesType> sizes(in.shape.begin(), in.shape.end());
      // ExecuTorch never writes to inputs; from_blob wants a mutable pointer.
      tensors.push_back(et::extension::from_blob(const_cast<void*>(feed->second), sizes, scalar_type(in.dtype)));
      values.emplace_back(*tensors.back());
    }
    auto result = module->forward(values);
    if (!result.ok()) fail(spec.file, "running", result.error());
    const auto& out = result->at(0).toTensor();
    const size_t n = spec.outputs[0].numel();
    if (static_cast<size_t>(out.numel()) != n)
      throw Error(spec.file + " returned " + std::to_string(out.numel()) + " values, expected " + std::to_string(n) +
                  "; re-export the bundle");
    const float* data = out.const_data_ptr<float>();
    std::vector<float> copy(data, data + n);
    for (float v : copy)
      if (!std::isfinite(v))
        throw Error(spec.file + " produced NaN/Inf; re-export the bundle (its parity report should have failed)");
    return copy;
  }
};

BundleRuntime::BundleRuntime(const std::filesystem::path& root, bool verify, int threads)
    : manifest_(load_manifest(root, verify)) {
  install_log_once();
  if (manifest_.target != "executorch")
    throw Error("lrf-native runs ExecuTorch bundles, this one is for " + manifest_.target +
                "; export one with lrf-export --target executorch");
  if (threads > 0) et::extension::threadpool::get_threadpool()->_unsafe_reset_threadpool(static_cast<uint32_t>(threads));
  denoiser_ = std::make_unique<Graph>(manifest_, manifest_.graph);
  decoder_ = std::make_unique<Graph>(manifest_, "decoder");
}

BundleRuntime::~BundleRuntime() = default;

std::vector<float> BundleRuntime::noise(uint64_t seed) const {
  size_t n = 1;
  for (int64_t d : manifest_.latent_shape) n *= static_cast<size_t>(d);
  return portable_noise(seed, n);
}

void BundleRuntime::check_input(const char* what, const std::vector<float>& values, const Artifact& art,
                                const std::string& input) const {
  for (const auto& spec : art.inputs)
    if (spec.name == input && spec.numel() != values.size())
      throw Error(std::string(what) + " has " + std::to_string(values.size()) + " values but " + art.file + " takes " +
                  shape_str(spec.shape) + "; pass a tensor of the manifest's shape");
}

void BundleRuntime::check_class(int64_t class_id) const {
  if (class_id < 0 || class_id >= static_cast<int64_t>(manifest_.class_names.size()))
    throw Error("class id " + std::to_string(class_id) + " is out of range; use 0-" +
                std::to_string(manifest_.class_names.size() - 1));
}

std::vector<float> BundleRuntime::step(const std::vector<float>& latent, float t, float dt, int64_t class_id, float cfg) {
  check_input("the latent", latent, denoiser_->spec, "latent");
  check_class(class_id);
  return denoiser_->run({{"latent", latent.data()}, {"t", &t}, {"dt", &dt}, {"class_id", &class_id}, {"cfg", &cfg}});
}

std::vector<float> BundleRuntime::denoise(const std::vector<float>& noise, int class_id, int steps,
                                          const StepCallback& callback) {
  using clock = std::chrono::steady_clock;
  const auto& ts = manifest_.schedule(steps);
  const int64_t cls = class_id;
  check_input("the noise", noise, denoiser_->spec, manifest_.graph == "fused" ? "noise" : "latent");
  check_class(cls);
  if (manifest_.graph == "fused") {  // one graph, the bundle's own schedule baked in
    const auto t0 = clock::now();
    auto z = denoiser_->run({{"noise", noise.data()}, {"class_id", &cls}});
    const double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (callback && !callback(static_cast<int>(ts.size()) - 2, z, ms)) throw Cancelled();
    return z;
  }
  const float cfg = static_cast<float>(manifest_.cfg);
  std::vector<float> z = noise;
  for (size_t i = 0; i + 1 < ts.size(); ++i) {
    const auto t0 = clock::now();
    // float32 t and dt exactly as lrf_export.run: np.float32(ts[i]), np.float32(ts[i] - ts[i+1]).
    z = step(z, static_cast<float>(ts[i]), static_cast<float>(ts[i] - ts[i + 1]), cls, cfg);
    const double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (callback && !callback(static_cast<int>(i), z, ms)) throw Cancelled();
  }
  return z;
}

std::vector<float> BundleRuntime::decode(const std::vector<float>& latent) {
  check_input("the latent", latent, decoder_->spec, "latent");
  return decoder_->run({{"latent", latent.data()}});
}

std::vector<uint8_t> to_uint8(const std::vector<float>& image, int height, int width) {
  // lrf_export.run.to_uint8: float32 arithmetic, round half to even (np.round), CHW -> HWC.
  std::vector<uint8_t> rgb(static_cast<size_t>(height) * width * 3);
  const size_t plane = static_cast<size_t>(height) * width;
  for (int c = 0; c < 3; ++c)
    for (size_t p = 0; p < plane; ++p) {
      const float v = (std::clamp(image[c * plane + p], -1.0f, 1.0f) + 1.0f) * 127.5f;
      rgb[p * 3 + c] = static_cast<uint8_t>(std::nearbyint(v));
    }
  return rgb;
}

void set_executorch_logging(bool verbose) {
  install_log_once();
  std::lock_guard<std::mutex> lock(log_mutex);
  log_verbose = verbose;
}

}  // namespace lrf
