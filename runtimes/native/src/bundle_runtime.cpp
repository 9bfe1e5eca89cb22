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
  if (dtype == "int32") return ScalarType::Int;
  if (dtype == "uint8") return ScalarType::Byte;
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

  Graph(const Manifest& m, const std::string& name) : spec(m.artifact(name)) {
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
      if (got != spec.outputs[i].shape || info->scalar_type() != scalar_type(spec.outputs[i].dtype))
        mismatch("output", i, spec.outputs[i], got);
    }
  }

  // Feeds by input name, each of the input's declared dtype and element count (checked here; the
  // load-time signature check guarantees the program agrees); every output, by name.
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& feeds) {
    std::vector<et::extension::TensorPtr> tensors;
    std::vector<EValue> values;
    for (const auto& in : spec.inputs) {
      auto feed = feeds.find(in.name);
      if (feed == feeds.end())
        throw Error(spec.file + " takes an input '" + in.name + "' the plan does not feed; re-export the bundle");
      const Tensor& t = feed->second;
      if (t.dtype != in.dtype || t.numel() != in.numel())
        throw Error(spec.file + " input " + in.name + " takes " + in.dtype + shape_str(in.shape) + ", got " + t.dtype + " with " +
                    std::to_string(t.numel()) + " values; pass a tensor of the manifest's shape");
      std::vector<et::aten::SizesType> sizes(in.shape.begin(), in.shape.end());
      // ExecuTorch never writes to inputs; from_blob wants a mutable pointer.
      tensors.push_back(et::extension::from_blob(const_cast<uint8_t*>(t.bytes.data()), sizes, scalar_type(in.dtype)));
      values.emplace_back(*tensors.back());
    }
    auto result = module->forward(values);
    if (!result.ok()) fail(spec.file, "running", result.error());
    std::map<std::string, Tensor> outputs;
    for (size_t i = 0; i < spec.outputs.size(); ++i) {
      const auto& out = result->at(i).toTensor();
      const auto& want = spec.outputs[i];
      const size_t nbytes = want.numel() * Tensor::itemsize(want.dtype);
      if (static_cast<size_t>(out.nbytes()) != nbytes)
        throw Error(spec.file + " returned " + std::to_string(out.nbytes()) + " bytes for " + want.name + ", expected " +
                    std::to_string(nbytes) + "; re-export the bundle");
      const auto* data = static_cast<const uint8_t*>(out.const_data_ptr());
      outputs[want.name] = Tensor{want.dtype, want.shape, std::vector<uint8_t>(data, data + nbytes)};
    }
    return outputs;
  }
};

BundleRuntime::BundleRuntime(const std::filesystem::path& root, bool verify, int threads)
    : manifest_(load_manifest(root, verify)) {
  install_log_once();
  if (manifest_.target != "executorch")
    throw Error("lrf-native runs ExecuTorch bundles, this one is for " + manifest_.target +
                "; export one with lrf-export --target executorch");
  if (threads > 0) et::extension::threadpool::get_threadpool()->_unsafe_reset_threadpool(static_cast<uint32_t>(threads));
  graph(manifest_.plan.loop_graph);  // open what every generation runs now, so load time is load time
  graph(manifest_.plan.end_graph);
}

BundleRuntime::~BundleRuntime() = default;

BundleRuntime::Graph& BundleRuntime::graph(const std::string& name) {
  auto& g = graphs_[name];
  if (!g) g = std::make_unique<Graph>(manifest_, name);
  return *g;
}

std::map<std::string, Tensor> BundleRuntime::run(const std::string& name, const std::map<std::string, Tensor>& feeds) {
  return graph(name).run(feeds);
}

Tensor BundleRuntime::noise(uint64_t seed, const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= static_cast<size_t>(shape[i]);  // per image, batch 1
  return Tensor::floats(shape, portable_noise(seed, n));
}

double Values::at(const std::string& name) const {
  auto it = numbers.find(name);
  if (it == numbers.end()) throw Error("the plan reads an input " + name + " it does not declare; re-export the bundle");
  return it->second;
}

int start_index(int num_steps, double strength) {
  if (!(strength >= 0.0 && strength <= 1.0))
    throw Error("strength " + std::to_string(strength) + " is out of range; use a number in [0, 1] (1 = ignore the image)");
  return num_steps - static_cast<int>(std::floor(num_steps * strength + 0.5));
}

Values BundleRuntime::inputs(const Request& request) const {
  const Plan& plan = manifest_.plan;
  Values values;
  std::map<std::string, double> numbers = request.numbers;
  std::map<std::string, Tensor> tensors = request.tensors;
  const bool image = tensors.count("image") > 0;
  if (!image && (tensors.count("mask") || (numbers.count("strength") && numbers.at("strength") != 1.0)))
    throw Error("a mask or a strength needs an input image; pass --init-image as well");
  if (image && !plan.edit)
    throw Error("this bundle's plan cannot edit images (its loop is the " + plan.loop_graph +
                " graph); export it with --graph step");
  for (const auto& in : plan.inputs) {
    double v = in.fallback;
    if (in.kind == "class") {
      if (!request.class_name.empty()) v = manifest_.class_index(request.class_name);
      if (v < 0 || v >= static_cast<double>(manifest_.class_names.size()) || v != std::floor(v))
        throw Error("class " + std::to_string(v) + " is out of range; use 0-" + std::to_string(manifest_.class_names.size() - 1));
    } else if (in.kind == "seed") {
      if (request.seed) v = static_cast<double>(*request.seed);
      if (v < 0 || v > 4294967295.0 || v != std::floor(v))
        throw Error("seed " + std::to_string(v) + " is invalid; use an integer in 0..4294967295");
    } else if (in.kind == "steps") {
      if (request.steps) v = request.steps;
      (void)manifest_.schedule(static_cast<int>(v));  // lrf::Error if not offered
    } else if (in.kind == "image" || in.kind == "mask") {
      if (auto it = tensors.find(in.name); it != tensors.end()) {
        size_t n = 1;
        for (int64_t d : in.shape) n *= static_cast<size_t>(d);
        if (it->second.numel() != n)
          throw Error("the " + in.name + " has " + std::to_string(it->second.numel()) + " values but this bundle takes " +
                      shape_str(in.shape) + "; pass one of the model's size");
        values.tensors[in.name] = std::move(it->second);
        tensors.erase(it);
        values.edit |= in.kind == "image";
      }
    } else if (auto it = numbers.find(in.name); it != numbers.end()) {
      v = it->second;
      numbers.erase(it);
    }
    if (in.kind == "strength") (void)start_index(1, v);  // lrf::Error outside [0, 1]
    values.numbers[in.name] = v;
  }
  if (!numbers.empty()) throw Error("this bundle's plan takes no input " + numbers.begin()->first);
  if (!tensors.empty()) throw Error("this bundle's plan takes no input " + tensors.begin()->first);
  return values;
}

Tensor BundleRuntime::feed(const std::string& graph_name, const std::string& input, const Feed& from, const State& state,
                           const Values& values, const std::vector<double>* ts, size_t i) {
  if (from.from == Feed::From::State) return state.at(from.name);
  const Artifact& art = manifest_.artifact(graph_name);
  const TensorSpec* spec = nullptr;
  for (const auto& s : art.inputs)
    if (s.name == input) spec = &s;
  if (spec == nullptr) throw Error("the plan feeds " + input + ", which " + art.file + " does not take; re-export the bundle");
  if (from.from == Feed::From::Input) {
    if (auto it = values.tensors.find(from.name); it != values.tensors.end()) {
      if (it->second.dtype != spec->dtype)
        throw Error("the " + from.name + " is " + it->second.dtype + " but " + art.file + " takes " + spec->dtype +
                    "; re-export the bundle");
      return Tensor{spec->dtype, spec->shape, it->second.bytes};
    }
    return Tensor::filled(spec->dtype, spec->shape, values.at(from.name));
  }
  if (ts == nullptr) throw Error("the plan feeds " + input + " from a schedule outside its loop; re-export the bundle");
  // The current schedule interval (t_start: that of the first interval run); dt in double, then
  // cast, as lrf_export.run.
  const double v = from.name == "dt" ? (*ts)[i] - (*ts)[i + 1] : (*ts)[i];
  return Tensor::filled(spec->dtype, spec->shape, v);
}

std::map<std::string, Tensor> BundleRuntime::feeds(const std::string& graph_name, const std::map<std::string, Feed>& from,
                                                   const State& state, const Values& values, const std::vector<double>* ts,
                                                   size_t i) {
  std::map<std::string, Tensor> out;
  for (const auto& [input, f] : from) out[input] = feed(graph_name, input, f, state, values, ts, i);
  return out;
}

namespace {

// The outputs of a graph run that become states (a plan's `next`).
void update(State& state, std::map<std::string, Tensor>& out, const std::map<std::string, std::string>& next,
            const std::string& graph) {
  for (const auto& [name, output] : next) {
    auto it = out.find(output);
    if (it == out.end()) throw Error("the plan takes output " + output + " the " + graph + " graph does not give; re-export the bundle");
    state[name] = std::move(it->second);
  }
}

}  // namespace

State BundleRuntime::iterate(const Values& values, const StepCallback& callback) {
  using clock = std::chrono::steady_clock;
  const Plan& plan = manifest_.plan;
  State state;
  for (const auto& [name, start] : plan.start)
    state[name] = start.noise_input.empty() ? Tensor::filled("float32", start.shape, start.fill)
                                            : noise(static_cast<uint64_t>(values.at(start.noise_input)), start.shape);
  const std::vector<double>* ts =
      plan.repeat_schedule.empty() ? nullptr : &manifest_.schedule(static_cast<int>(values.at(plan.repeat_schedule)));
  const size_t count = ts ? ts->size() - 1 : static_cast<size_t>(plan.repeat_count);
  size_t first = 0;
  if (values.edit && plan.edit) {
    if (ts && !plan.repeat_strength.empty())
      first = static_cast<size_t>(start_index(static_cast<int>(count), values.at(plan.repeat_strength)));
    auto out = run(plan.edit->graph, feeds(plan.edit->graph, plan.edit->feeds, state, values, ts, first));
    update(state, out, plan.edit->next, plan.edit->graph);
  }
  for (size_t i = first; i < count; ++i) {
    auto in = feeds(plan.loop_graph, plan.loop_feeds, state, values, ts, i);
    const auto t0 = clock::now();
    auto out = run(plan.loop_graph, in);
    const double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    update(state, out, plan.next, plan.loop_graph);
    if (callback && !callback(static_cast<int>(i - first), state, ms)) throw Cancelled();
  }
  return state;
}

Tensor BundleRuntime::finish(const State& state, const Values& values) {
  const Plan& plan = manifest_.plan;
  for (const auto& [name, value] : state)
    if (!value.all_finite())
      throw Error("the bundle produced NaN/Inf in its " + name + "; re-export it (its parity gate should have failed)");
  auto out = run(plan.end_graph, feeds(plan.end_graph, plan.end_feeds, state, values, nullptr, 0));
  auto it = out.find(plan.end_output);
  if (it == out.end()) throw Error("the plan's end takes output " + plan.end_output + " its graph does not give; re-export it");
  return std::move(it->second);
}

std::vector<uint8_t> rgb_bytes(const Tensor& pixels) {
  std::vector<uint8_t> rgb(pixels.numel());
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(pixels.at(i));
  return rgb;
}

void set_executorch_logging(bool verbose) {
  install_log_once();
  std::lock_guard<std::mutex> lock(log_mutex);
  log_verbose = verbose;
}

}  // namespace lrf
