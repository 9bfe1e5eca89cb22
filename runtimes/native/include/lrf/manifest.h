// A bundle's manifest.json, read and verified (schema, sha256 of every file) before any
// artifact is opened: the same checks as lrf_export.bundle.load_manifest in Python.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lrf {

constexpr int kSchemaVersion = 3;  // export/schema/manifest.schema.json (tests/test_schema.py checks it)

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;  // "float32" | "int64" | "int32"
  size_t numel() const;
};

struct Artifact {
  std::string file;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

struct Manifest {
  std::filesystem::path root;
  nlohmann::json raw;  // the whole document, e.g. for the test-vector index

  std::string model_name, target, precision;
  std::vector<std::string> class_names;
  std::string graph;  // "step" (the runtime loops) | "fused" (one graph for all steps)
  int steps = 0;      // the bundle's own step count
  std::map<int, std::vector<double>> schedules;  // every step count offered -> its time points
  double cfg = 0;
  std::vector<int64_t> latent_shape, image_shape;
  double step_rel_tolerance = 0, image_psnr_tolerance_db = 0;
  std::map<std::string, Artifact> artifacts;

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
