#include "lrf/selftest.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "lrf/npy.h"

namespace lrf {
namespace {

constexpr double kNoiseTolerance = 1e-6;  // float32 rounding of one float64 ulp of libm difference

std::vector<float> slice(const std::vector<float>& all, size_t index, size_t size) {
  return std::vector<float>(all.begin() + index * size, all.begin() + (index + 1) * size);
}

Check upper(std::string name, std::string metric, double value, double limit) {
  return {std::move(name), std::move(metric), value, limit, std::isfinite(value) && value <= limit};
}

Check lower(std::string name, double value, double limit) {
  return {std::move(name), "psnr_db", value, limit, !std::isnan(value) && value >= limit};
}

}  // namespace

bool SelfTestReport::passed() const {
  return !checks.empty() && std::all_of(checks.begin(), checks.end(), [](const Check& c) { return c.passed; });
}

double rel_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(got[i]) - ref[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(ref[i])));
    if (std::isnan(got[i])) return std::numeric_limits<double>::quiet_NaN();
  }
  return diff / std::max(scale, 1e-8);
}

double psnr_db(const std::vector<float>& got, const std::vector<float>& ref) {
  double sum = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::clamp(static_cast<double>(got[i]), -1.0, 1.0) - ref[i];
    sum += d * d;
  }
  const double mse = sum / static_cast<double>(ref.size());
  return mse == 0 ? std::numeric_limits<double>::infinity() : 10.0 * std::log10(4.0 / mse);
}

SelfTestReport run_selftest(BundleRuntime& rt) {
  const Manifest& m = rt.manifest();
  const auto& tv = m.raw.at("test_vectors");
  const double step_tol = m.step_rel_tolerance, psnr_tol = m.image_psnr_tolerance_db;
  auto load = [&](const nlohmann::json& rel) { return read_npy(m.path(rel.get<std::string>())); };
  SelfTestReport report;

  // Each single guided step at points of a real trajectory.
  if (m.graph == "step") {
    int k = 0;
    for (const auto& c : tv.at("steps")) {
      const auto t = load(c.at("t")).floats(), dt = load(c.at("dt")).floats(), cfg = load(c.at("cfg")).floats();
      const auto cls = load(c.at("class_id")).ints();
      const auto got = rt.step(load(c.at("latent")).floats(), t[0], dt[0], cls[0], cfg[0]);
      report.checks.push_back(
          upper("single step " + std::to_string(k++), "rel", rel_error(got, load(c.at("next_latent")).floats()), step_tol));
    }
  }

  // The whole trajectory, from this runtime's own noise.
  const auto& traj = tv.at("trajectory");
  const auto seed = traj.at("seed").get<uint64_t>();
  const auto ref = load(traj.at("latents")).floats();
  const size_t latent = rt.noise(0).size();
  const size_t points = ref.size() / latent;  // N + 1
  const auto noise = rt.noise(seed);
  double noise_diff = 0;
  for (size_t i = 0; i < latent; ++i) noise_diff = std::max(noise_diff, std::fabs(double(noise[i]) - ref[i]));
  report.checks.push_back(upper("noise of seed " + std::to_string(seed), "max_abs", noise_diff, kNoiseTolerance));

  const auto final_latent = rt.denoise(noise, traj.at("class_id").get<int>(), 0, [&](int i, const std::vector<float>& z, double) {
    if (m.graph == "step" || static_cast<size_t>(i) == points - 2)
      report.checks.push_back(upper("trajectory step " + std::to_string(i), "rel", rel_error(z, slice(ref, i + 1, latent)), step_tol));
    return true;
  });

  const auto ref_image = load(traj.at("image")).floats();
  report.checks.push_back(lower("decoder", psnr_db(rt.decode(slice(ref, points - 1, latent)), ref_image), psnr_tol));
  report.checks.push_back(lower("final image", psnr_db(rt.decode(final_latent), ref_image), psnr_tol));
  return report;
}

}  // namespace lrf
