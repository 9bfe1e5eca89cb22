// Runs an ExecuTorch bundle: the C++ plan executor, the mirror of lrf_export.run.BundleRuntime.
//
// It reads the verified manifest and executes its plan: the start state from the portable
// noise, the loop graph once per schedule interval (or a fixed count), each feed taken from the
// state, a user input or the schedule as the plan says, then the end graph's pixels. It names
// no graph input or output itself, so a new plan needs no change here. Graphs are opened (with
// the XNNPACK delegate) on first use. ExecuTorch types stay out of this header (pimpl) so JNI
// and app code include it cheaply.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lrf/error.h"
#include "lrf/manifest.h"
#include "lrf/tensor.h"

namespace lrf {

// The user stopped the loop from a StepCallback.
class Cancelled : public Error {
 public:
  Cancelled() : Error("generation cancelled") {}
};

// A runtime allocation failed (the model does not fit the memory left to the process).
class OutOfMemory : public Error {
 public:
  using Error::Error;
};

using State = std::map<std::string, Tensor>;

// The plan's input values by name: numbers (a class as its index, a seed, a step count, cfg, a
// strength) and the tensors a user gave (the image and mask of an edit).
struct Values {
  std::map<std::string, double> numbers;
  std::map<std::string, Tensor> tensors;
  bool edit = false;  // an image was given: the plan's edit runs and the loop starts at its strength

  double at(const std::string& name) const;
};

// After each loop iteration: its index, the new state and the iteration's wall time in ms.
// Return false to cancel (the plan then throws lrf::Cancelled).
using StepCallback = std::function<bool(int step, const State& state, double ms)>;

// What a user gives: any input left out takes the manifest's default. `class_name` is a name or
// an index ("cat", "3"); `steps` 0 means the bundle's own. An edit gives `tensors` "image"
// (uint8 (1, H, W, 3)) and optionally "mask" (float32 (1, 1, H, W), 1 = regenerate), and
// `numbers` "strength".
struct Request {
  std::string class_name;
  std::optional<uint64_t> seed;
  int steps = 0;
  std::map<std::string, double> numbers;  // e.g. {"cfg", 2.0}, {"strength", 0.5}
  std::map<std::string, Tensor> tensors;  // {"image", ...}, {"mask", ...}
};

// Image-to-image's first schedule interval of N for `strength`: N - floor(N * strength + 0.5)
// (lrf_model.editing.start_index); lrf::Error outside [0, 1].
int start_index(int num_steps, double strength);

class BundleRuntime {
 public:
  // `threads`: size of ExecuTorch's process-wide CPU thread pool (0 keeps its default).
  explicit BundleRuntime(const std::filesystem::path& root, bool verify = true, int threads = 0);
  ~BundleRuntime();
  BundleRuntime(const BundleRuntime&) = delete;
  BundleRuntime& operator=(const BundleRuntime&) = delete;

  const Manifest& manifest() const { return manifest_; }

  // The plan's inputs for `request`, checked (class range, offered steps, strength, the image's and
  // mask's sizes), the rest defaulted.
  Values inputs(const Request& request) const;
  // The start state (edited, given an image) carried through every loop iteration; returns the final state.
  State iterate(const Values& values, const StepCallback& callback = {});
  // The plan's end on a final state: the pixels (1, H, W, 3). A NaN/Inf state is refused.
  Tensor finish(const State& state, const Values& values);
  Tensor generate(const Values& values, const StepCallback& callback = {}) {
    return finish(iterate(values, callback), values);
  }

  // Every output of artifact `graph` on `feeds` (by input name, of the declared dtypes and shapes).
  std::map<std::string, Tensor> run(const std::string& graph, const std::map<std::string, Tensor>& feeds);
  // The portable noise for `seed` of `shape` (lrf_model.noise.noise_array).
  static Tensor noise(uint64_t seed, const std::vector<int64_t>& shape);

 private:
  struct Graph;
  Graph& graph(const std::string& name);
  Tensor feed(const std::string& graph, const std::string& input, const Feed& from, const State& state,
              const Values& values, const std::vector<double>* ts, size_t i);
  std::map<std::string, Tensor> feeds(const std::string& graph, const std::map<std::string, Feed>& from, const State& state,
                                      const Values& values, const std::vector<double>* ts, size_t i);
  Manifest manifest_;
  std::map<std::string, std::unique_ptr<Graph>> graphs_;
};

// The plan's pixels as H*W*3 RGB bytes (uint8 as they are; int32 pixels on a Core ML-style
// target narrowed, the values are 0..255 either way).
std::vector<uint8_t> rgb_bytes(const Tensor& pixels);

// Routes ExecuTorch's own log lines to stderr (logcat on Android) when true; either way the
// last error is kept for our one-line messages.
void set_executorch_logging(bool verbose);

}  // namespace lrf
