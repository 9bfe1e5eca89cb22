// Runs an ExecuTorch bundle: the C++ mirror of lrf_export.run.BundleRuntime.
//
// It reads the verified manifest, opens the denoising graph (`step`, or `fused`) and the
// `decoder` .pte with the XNNPACK delegate, draws the noise with the portable PRNG and loops
// over the manifest's schedule. No sampler arithmetic lives here: the schedule, the CFG scale
// and the shapes come from the manifest, the Euler/CFG update is inside the step graph.
// ExecuTorch types stay out of this header (pimpl) so JNI and app code include it cheaply.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

#include "lrf/error.h"
#include "lrf/manifest.h"

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

// After each denoising step: the step index, the new latent and the step's wall time in ms.
// Return false to cancel (denoise then throws lrf::Cancelled).
using StepCallback = std::function<bool(int step, const std::vector<float>& latent, double ms)>;

class BundleRuntime {
 public:
  // `threads`: size of ExecuTorch's process-wide CPU thread pool (0 keeps its default).
  explicit BundleRuntime(const std::filesystem::path& root, bool verify = true, int threads = 0);
  ~BundleRuntime();
  BundleRuntime(const BundleRuntime&) = delete;
  BundleRuntime& operator=(const BundleRuntime&) = delete;

  const Manifest& manifest() const { return manifest_; }

  // The latent noise for `seed` (lrf_model.noise.noise_array of the latent shape).
  std::vector<float> noise(uint64_t seed) const;

  // The final latent from `noise` for `class_id`, over the schedule of `steps` (0: the bundle's).
  std::vector<float> denoise(const std::vector<float>& noise, int class_id, int steps = 0,
                             const StepCallback& callback = {});

  // One guided Euler step from t to t - dt (the `step` graph as exported).
  std::vector<float> step(const std::vector<float>& latent, float t, float dt, int64_t class_id, float cfg);

  // Model-space latent -> image (1, 3, H, W) in [-1, 1].
  std::vector<float> decode(const std::vector<float>& latent);

 private:
  struct Graph;
  // lrf::Error unless `values` has the element count `art` declares for `input`.
  void check_input(const char* what, const std::vector<float>& values, const Artifact& art, const std::string& input) const;
  void check_class(int64_t class_id) const;
  Manifest manifest_;
  std::unique_ptr<Graph> denoiser_;  // step or fused
  std::unique_ptr<Graph> decoder_;
};

// (1, 3, H, W) in [-1, 1] -> H*W*3 RGB bytes: round((clip(x, -1, 1) + 1) * 127.5), as lrf-run.
std::vector<uint8_t> to_uint8(const std::vector<float>& image, int height, int width);

// Routes ExecuTorch's own log lines to stderr (logcat on Android) when true; either way the
// last error is kept for our one-line messages.
void set_executorch_logging(bool verbose);

}  // namespace lrf
