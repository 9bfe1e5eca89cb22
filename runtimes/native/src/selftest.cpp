#include "lrf/selftest.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace lrf {
namespace {

using nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// What this runtime gives for one check (lrf_export.checks.run_check).
Tensor run_check(BundleRuntime& rt, const json& check) {
  const Manifest& m = rt.manifest();
  const std::string kind = check.at("kind").get<std::string>();
  if (kind == "noise") {
    const auto& expected = check.at("expected").get<std::string>();
    auto it = m.tensors.find(expected);
    if (it == m.tensors.end()) throw Error("check noise expects an undeclared tensor " + expected + "; re-export the bundle");
    return BundleRuntime::noise(check.at("seed").get<uint64_t>(), it->second.spec.shape);
  }
  if (kind == "graph") {
    std::map<std::string, Tensor> feeds;
    for (const auto& [input, tensor] : check.at("feeds").items()) feeds[input] = read_tensor(m, tensor.get<std::string>());
    const auto graph = check.at("graph").get<std::string>();
    if (!m.has_artifact(graph)) throw Error("a check runs a " + graph + " graph the bundle does not hold; re-export it");
    auto out = rt.run(graph, feeds);
    auto it = out.find(check.at("output").get<std::string>());
    if (it == out.end()) throw Error("a check compares an output its graph does not give; re-export the bundle");
    return std::move(it->second);
  }
  Request request;  // kind "plan": its inputs by name, checked as a user's would be
  for (const auto& [name, value] : check.at("inputs").items()) {
    const Plan::Input* in = m.plan.input(name);
    const std::string kind = in ? in->kind : "";
    if (kind == "image" || kind == "mask") {  // a tensor of the bundle, by name
      request.tensors[name] = read_tensor(m, value.get<std::string>());
      continue;
    }
    const double v = value.get<double>();
    if (kind == "class") request.class_name = std::to_string(static_cast<long long>(v));
    else if (kind == "seed" && v >= 0 && v <= 4294967295.0) request.seed = static_cast<uint64_t>(v);
    else if (kind == "steps" && v >= 1 && v <= 100000) request.steps = static_cast<int>(v);
    else request.numbers[name] = v;
  }
  const Values values = rt.inputs(request);
  if (check.at("compare").get<std::string>() == "output") return rt.generate(values);
  Tensor stacked{"float32", {}, {}};  // the states the loop sets, after each iteration, stacked as the expected tensor
  rt.iterate(values, [&](int, const State& state, double) {
    for (const auto& [name, _] : m.plan.next) {
      const Tensor& t = state.at(name);
      stacked.bytes.insert(stacked.bytes.end(), t.bytes.begin(), t.bytes.end());
    }
    return true;
  });
  return stacked;
}

// Row i of a tensor stacked along its first axis (one loop iteration's state).
Tensor row(const Tensor& t, size_t i, size_t rows) {
  const size_t size = t.bytes.size() / rows;
  std::vector<int64_t> shape(t.shape.begin() + (t.shape.empty() ? 0 : 1), t.shape.end());
  return Tensor{t.dtype, shape, std::vector<uint8_t>(t.bytes.begin() + i * size, t.bytes.begin() + (i + 1) * size)};
}

// The metric iteration by iteration, the worst one (lrf_export.checks.worst): a late step's
// error is not hidden by the scale of the noise.
double worst_row(const std::string& name, const Tensor& got, const Tensor& ref) {
  const size_t rows = ref.shape.empty() ? 0 : static_cast<size_t>(ref.shape[0]);
  if (rows == 0 || got.bytes.size() != ref.bytes.size() || got.dtype != ref.dtype) return kNaN;
  double w = name == "psnr" ? std::numeric_limits<double>::infinity() : 0.0;
  for (size_t i = 0; i < rows; ++i) {
    const double v = metric(name, row(got, i, rows), row(ref, i, rows));
    if (std::isnan(v)) return kNaN;
    w = name == "psnr" ? std::min(w, v) : std::max(w, v);
  }
  return w;
}

std::string fmt(const std::string& metric, double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return "inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, metric == "psnr" ? "%.2f" : "%.3e", v);
  return buf;
}

}  // namespace

double metric(const std::string& name, const Tensor& got, const Tensor& ref) {
  const size_t n = ref.numel();
  if (got.numel() != n || n == 0) return kNaN;
  double max_diff = 0, peak = 0, sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs(got.at(i) - ref.at(i));
    if (std::isnan(d)) return kNaN;
    max_diff = std::max(max_diff, d);
    peak = std::max(peak, std::fabs(ref.at(i)));
    sum += d * d;
  }
  if (name == "max_abs") return max_diff;
  if (name == "rel") return max_diff / std::max(peak, 1e-8);
  if (name == "psnr") {
    const double mse = sum / static_cast<double>(n);
    return mse == 0 ? std::numeric_limits<double>::infinity() : 10.0 * std::log10(255.0 * 255.0 / mse);
  }
  throw Error("a check uses the metric " + name + ", which this runtime does not know; update lrf-native");
}

bool passes(const std::string& metric, double value, double limit) {
  if (std::isnan(value)) return false;
  return metric == "psnr" ? value >= limit : value <= limit;
}

bool SelfTestReport::passed() const {
  return !checks.empty() && std::all_of(checks.begin(), checks.end(), [](const Check& c) { return c.passed; });
}

std::string SelfTestReport::table() const {
  char line[160];
  std::snprintf(line, sizeof line, "%-12s %-8s %10s %10s  verdict\n", "check", "metric", "value", "limit");
  std::string out = line;
  for (const auto& c : checks) {
    std::snprintf(line, sizeof line, "%-12s %-8s %10s %10s  %s\n", c.name.c_str(), c.metric.c_str(),
                  fmt(c.metric, c.value).c_str(), fmt(c.metric, c.limit).c_str(), c.passed ? "pass" : "FAIL");
    out += line;
  }
  return out + "self-test: " + (passed() ? "PASS" : "FAIL");
}

SelfTestReport run_selftest(BundleRuntime& rt) {
  const Manifest& m = rt.manifest();
  SelfTestReport report;
  try {
    for (const auto& check : m.raw.at("checks")) {
      Check c{check.at("name").get<std::string>(), check.at("metric").get<std::string>(), kNaN,
              check.at("limit").get<double>(), false};
      const Tensor ref = read_tensor(m, check.at("expected").get<std::string>());
      const Tensor got = run_check(rt, check);
      const bool states = check.value("compare", "") == "states";
      c.value = states ? worst_row(c.metric, got, ref) : metric(c.metric, got, ref);
      c.passed = passes(c.metric, c.value, c.limit);
      report.checks.push_back(c);
    }
  } catch (const json::exception& e) {
    throw Error("the manifest's checks are malformed (" + std::string(e.what()) + "); re-export the bundle");
  }
  return report;
}

}  // namespace lrf
