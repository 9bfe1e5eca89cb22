// A bundle's manifest.json, read and verified (schema, sha256 of every file) before any
// artifact is opened: the same checks as lrf_export.bundle.load_manifest in Python.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lrf {

constexpr int kSchemaVersion = 4;  // export/schema/manifest.schema.json (tests/test_schema.py checks it)

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;  // "float32" | "int32" | "uint8"
  size_t numel() const;
};

// A reference tensor of the bundle: a raw little-endian C-order file (manifest "tensors").
struct TensorFile {
  std::string file;
  TensorSpec spec;
};

// Where a plan feed comes from: a state, a user input, or the current schedule interval.
struct Feed {
  enum class From { State, Input, Schedule } from = From::State;
  std::string name;  // the state or input name; "t" | "dt" | "t_start" for the schedule
};

// The bundle's plan (export/plan.py): the runtime executes it and nothing else.
struct Plan {
  struct Input {
    std::string name, kind;      // kind: "class" | "seed" | "steps" | "number" | "strength" | "image" | "mask"
    double fallback = 0;         // the manifest's "default" (for image and mask: every element's value)
    std::vector<int64_t> shape;  // image and mask: the tensor a user gives
  };
  struct Start {
    std::string noise_input;  // the input whose value seeds the portable noise; empty: filled with `fill`
    double fill = 0;
    std::vector<int64_t> shape;
  };
  // A graph run: where each input comes from and which outputs become which states.
  struct Stage {
    std::string graph;
    std::map<std::string, Feed> feeds;
    std::map<std::string, std::string> next;  // state name -> graph output that becomes it
  };
  std::vector<Input> inputs;
  std::map<std::string, Start> start;  // state name -> how it begins
  std::optional<Stage> edit;           // run once when the user gives an image (step bundles)
  std::string loop_graph;
  std::string repeat_schedule;  // the "steps" input choosing the schedule, or empty: repeat_count times
  std::string repeat_strength;  // the input whose strength skips the schedule's first intervals (edits)
  int repeat_count = 0;
  std::map<std::string, Feed> loop_feeds;
  std::map<std::string, std::string> next;  // state name -> loop output that becomes it
  std::string end_graph, end_output;
  std::map<std::string, Feed> end_feeds;

  const Input* input(const std::string& name) const;
  const Input* input_of_kind(const std::string& kind) const;
};

struct Artifact {
  std::string file;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

struct Manifest {
  std::filesystem::path root;
  nlohmann::json raw;  // the whole document, e.g. for the checks

  std::string model_name, target, precision;
  std::vector<std::string> class_names;
  int steps = 0;      // the bundle's own step count
  std::map<int, std::vector<double>> schedules;  // every step count offered -> its time points
  std::vector<int64_t> image_shape;              // (1, H, W, 3): the plan's output pixels
  std::map<std::string, Artifact> artifacts;
  Plan plan;
  std::map<std::string, TensorFile> tensors;

  // The schedule for `steps` (0: the bundle's own); lrf::Error if the bundle does not offer it.
  const std::vector<double>& schedule(int steps = 0) const;
  // "cat" or "3" -> 3; lrf::Error naming the valid classes otherwise.
  int class_index(const std::string& name_or_index) const;
  const Artifact& artifact(const std::string& kind) const;
  bool has_artifact(const std::string& kind) const { return artifacts.count(kind) > 0; }
  std::filesystem::path path(const std::string& rel) const { return root / rel; }
  // Bytes of the artifacts' files (the weights a runtime maps).
  uint64_t artifact_bytes() const;
};

// Reads root/manifest.json; with `verify`, checks every listed file's sha256 first.
Manifest load_manifest(const std::filesystem::path& root, bool verify = true);

}  // namespace lrf
