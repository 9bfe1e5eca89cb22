// lrf-native: generate an image from an ExecuTorch bundle, or run its test vectors, natively.
//
//   lrf-native BUNDLE --class 3 --seed 0 --out img.png     per-step latency on stdout
//   lrf-native BUNDLE --init-image IN.png --strength S [--mask MASK.png] --out OUT.png   an edit
//   lrf-native BUNDLE --selftest                            exit 1 on a parity failure
//   lrf-native BUNDLE --json [--repeat 50 --warmup 5]       machine-readable report with peak RSS
//
// Exit codes: 0 ok, 1 self-test failed, 2 bad input (one line on stderr), 3 out of memory.
#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "et_threadpool.h"
#include "lrf/bundle_runtime.h"
#include "lrf/editing.h"
#include "lrf/memory.h"
#include "lrf/png.h"
#include "lrf/selftest.h"

namespace {

using nlohmann::json;
using clock_type = std::chrono::steady_clock;

const char* kUsage =
    "usage: lrf-native BUNDLE [--class C] [--seed S] [--steps N] [--out PNG] [--scale K]\n"
    "                         [--threads T] [--repeat R] [--warmup W] [--selftest] [--json]\n"
    "                         [--init-image PNG [--strength S] [--mask PNG]] [--no-verify] [--verbose]\n"
    "  --class C     class name or index (default 0)\n"
    "  --seed S      noise seed (default 0); one seed gives one image on every runtime\n"
    "  --steps N     one of the step counts the manifest offers (default: the bundle's own)\n"
    "  --out PNG     image to write (default out.png); --scale K upscales without smoothing\n"
    "  --init-image PNG  edit this image (PNG/JPEG, resized to the model's size); --strength S in [0, 1]\n"
    "                how much of it to regenerate (default 1); --mask PNG (the image's size, white =\n"
    "                regenerate) inpaints, keeping the image outside the mask\n"
    "  --threads T   ExecuTorch CPU threads (default: the runtime's choice)\n"
    "  --repeat R    generate R times after W warm-up runs and report median/p90 latency\n"
    "  --selftest    run the bundle's checks; exit 1 on a parity failure\n"
    "  --json        print a machine-readable report (latency, peak RSS per stage) on stdout\n"
    "  --no-verify   skip the sha256 check of the bundle's files\n"
    "  --verbose     show ExecuTorch's own log\n";

struct Options {
  std::string bundle, cls = "0", out = "out.png", init_image, mask;
  std::optional<double> strength;
  uint64_t seed = 0;
  int steps = 0, scale = 1, threads = 0, repeat = 1, warmup = 0;
  bool selftest = false, json = false, verify = true, verbose = false;
};

long long parse_int(const std::string& flag, const std::string& value, long long min) {
  try {
    size_t used = 0;
    long long v = std::stoll(value, &used);
    if (used == value.size() && v >= min) return v;
  } catch (const std::exception&) {
  }
  throw lrf::Error(flag + " " + value + " is invalid; use an integer >= " + std::to_string(min));
}

double parse_number(const std::string& flag, const std::string& value) {
  try {
    size_t used = 0;
    const double v = std::stod(value, &used);
    if (used == value.size()) return v;
  } catch (const std::exception&) {
  }
  throw lrf::Error(flag + " " + value + " is not a number");
}

Options parse(int argc, char** argv) {
  Options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw lrf::Error(a + " needs a value; see lrf-native --help");
      return args[++i];
    };
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      std::exit(0);
    } else if (a == "--class") o.cls = value();
    else if (a == "--seed") o.seed = static_cast<uint64_t>(parse_int(a, value(), 0));
    else if (a == "--steps") o.steps = static_cast<int>(parse_int(a, value(), 1));
    else if (a == "--out") o.out = value();
    else if (a == "--init-image") o.init_image = value();
    else if (a == "--mask") o.mask = value();
    else if (a == "--strength") o.strength = parse_number(a, value());
    else if (a == "--scale") o.scale = static_cast<int>(parse_int(a, value(), 1));
    else if (a == "--threads") o.threads = static_cast<int>(parse_int(a, value(), 1));
    else if (a == "--repeat") o.repeat = static_cast<int>(parse_int(a, value(), 1));
    else if (a == "--warmup") o.warmup = static_cast<int>(parse_int(a, value(), 0));
    else if (a == "--selftest") o.selftest = true;
    else if (a == "--json") o.json = true;
    else if (a == "--no-verify") o.verify = false;
    else if (a == "--verbose") o.verbose = true;
    else if (!a.empty() && a[0] == '-') throw lrf::Error("unknown option " + a + "; see lrf-native --help");
    else if (o.bundle.empty()) o.bundle = a;
    else throw lrf::Error("unexpected argument " + a + "; pass one bundle folder");
  }
  if (o.bundle.empty()) throw lrf::Error("no bundle given; usage: lrf-native BUNDLE [--class C] [--seed S] [--out PNG]");
  return o;
}

json memory_json(const lrf::MemoryReading& r) {
  return {{"rss_kib", r.rss_kib}, {"peak_rss_kib", r.peak_rss_kib}, {"peak_vm_kib", r.peak_vm_kib}};
}

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(pos), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

int selftest(lrf::BundleRuntime& rt, const Options& o, json report) {
  const auto result = lrf::run_selftest(rt);
  report["selftest"] = json::array();
  // JSON has no NaN or Infinity: those values are written as strings ("nan", "inf"), as in the table.
  auto number = [](double v) { return std::isfinite(v) ? json(v) : json(std::isnan(v) ? "nan" : "inf"); };
  for (const auto& c : result.checks)
    report["selftest"].push_back({{"name", c.name}, {"metric", c.metric}, {"value", number(c.value)},
                                  {"limit", number(c.limit)}, {"passed", c.passed}});
  report["passed"] = result.passed();
  report["memory"]["after_selftest"] = memory_json(lrf::read_memory());
  if (o.json) std::cout << report.dump(2) << "\n";
  else std::printf("%s\n", result.table().c_str());
  return result.passed() ? 0 : 1;
}

int generate(lrf::BundleRuntime& rt, const Options& o, json report) {
  const auto& m = rt.manifest();
  lrf::Request request;
  request.class_name = o.cls;
  request.seed = o.seed;
  request.steps = o.steps;
  if (o.strength) request.numbers["strength"] = *o.strength;
  if (!o.init_image.empty()) {
    const lrf::RgbImage image = lrf::read_image(o.init_image);
    std::optional<lrf::RgbImage> mask;
    if (!o.mask.empty()) mask = lrf::read_image(o.mask, "mask");
    std::string note;
    request.tensors = lrf::edit_tensors(m.plan, image, mask ? &*mask : nullptr, &note);
    if (!note.empty()) std::fprintf(stderr, "%s\n", note.c_str());
  } else if (!o.mask.empty()) {
    throw lrf::Error("--mask needs an input image; pass --init-image as well");
  }
  const lrf::Values values = rt.inputs(request);
  std::vector<std::vector<double>> steps_ms;
  std::vector<double> decode_ms, image_ms;
  lrf::Tensor pixels;
  for (int run = 0; run < o.warmup + o.repeat; ++run) {
    std::vector<double> per_step;
    const auto t0 = clock_type::now();
    const auto state = rt.iterate(values, [&](int, const lrf::State&, double ms) {
      per_step.push_back(ms);
      return true;
    });
    if (run == 0) report["memory"]["after_denoise"] = memory_json(lrf::read_memory());
    const auto t1 = clock_type::now();
    pixels = rt.finish(state, values);
    if (run == 0) report["memory"]["after_decode"] = memory_json(lrf::read_memory());
    if (run < o.warmup) continue;
    decode_ms.push_back(ms_since(t1));
    image_ms.push_back(ms_since(t0));
    steps_ms.push_back(per_step);
  }
  const int h = static_cast<int>(m.image_shape[1]), w = static_cast<int>(m.image_shape[2]);
  lrf::write_png(o.out, lrf::rgb_bytes(pixels), h, w, o.scale);
  int cls = 0;
  for (const auto& in : m.plan.inputs)
    if (in.kind == "class") cls = static_cast<int>(values.at(in.name));

  std::vector<double> all_steps;
  for (const auto& run : steps_ms) all_steps.insert(all_steps.end(), run.begin(), run.end());
  report.update({{"class", m.class_names[cls]}, {"class_id", cls}, {"seed", o.seed},
                 {"steps", static_cast<int>(steps_ms.back().size())}, {"out", o.out}, {"repeat", o.repeat}, {"warmup", o.warmup},
                 {"steps_ms", steps_ms}, {"decode_ms", decode_ms}, {"image_ms", image_ms},
                 {"summary", {{"step_ms_median", percentile(all_steps, 0.5)}, {"step_ms_p90", percentile(all_steps, 0.9)},
                              {"decode_ms_median", percentile(decode_ms, 0.5)},
                              {"image_ms_median", percentile(image_ms, 0.5)}}}});
  if (o.json) {
    std::cout << report.dump(2) << "\n";
    return 0;
  }
  std::string per_step;
  for (double ms : steps_ms.back()) per_step += (per_step.empty() ? "" : " ") + std::to_string(ms).substr(0, 5);
  std::printf("%s %s %s: per-step ms [%s], decode %.2f ms, image %.2f ms -> %s (%s, seed %llu)\n", m.target.c_str(),
              m.precision.c_str(), m.plan.loop_graph.c_str(), per_step.c_str(), decode_ms.back(), image_ms.back(), o.out.c_str(),
              m.class_names[cls].c_str(), static_cast<unsigned long long>(o.seed));
  if (o.repeat > 1)
    std::printf("over %d runs: step median %.3f ms (p90 %.3f), decode median %.3f ms, image median %.3f ms\n", o.repeat,
                percentile(all_steps, 0.5), percentile(all_steps, 0.9), percentile(decode_ms, 0.5),
                percentile(image_ms, 0.5));
  const auto mem = lrf::read_memory();
  std::printf("peak RSS %.1f MiB (after load %.1f MiB)\n", mem.peak_rss_kib / 1024.0,
              report["memory"]["after_load"]["peak_rss_kib"].get<int64_t>() / 1024.0);
  return 0;
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  lrf::set_executorch_logging(o.verbose);
  const auto t0 = clock_type::now();
  lrf::BundleRuntime rt(o.bundle, o.verify, o.threads);
  const auto& m = rt.manifest();
  json report = {{"bundle", o.bundle}, {"model", m.model_name}, {"target", m.target}, {"precision", m.precision},
                 {"graph", m.plan.loop_graph}, {"load_ms", ms_since(t0)}, {"weights_bytes", m.artifact_bytes()},
                 {"threads", executorch::extension::threadpool::get_threadpool()->get_thread_count()}};
  report["memory"]["after_load"] = memory_json(lrf::read_memory());
  return o.selftest ? selftest(rt, o, report) : generate(rt, o, report);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const lrf::OutOfMemory& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 3;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory; free memory or use a smaller model / an int8 bundle\n");
    return 3;
  } catch (const lrf::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {  // a library's own exception: still one line, never a crash
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
