#include "lrf/manifest.h"

#include <fstream>

#include "lrf/error.h"
#include "lrf/sha256.h"

namespace lrf {
namespace {

using nlohmann::json;

TensorSpec tensor_spec(const json& j) {
  return {j.at("name").get<std::string>(), j.at("shape").get<std::vector<int64_t>>(), j.at("dtype").get<std::string>()};
}

std::vector<TensorSpec> tensor_specs(const json& list) {
  std::vector<TensorSpec> out;
  for (const auto& j : list) out.push_back(tensor_spec(j));
  return out;
}

void verify_files(const std::filesystem::path& root, const json& files) {
  for (const auto& [rel, digest] : files.items()) {
    const auto file = root / rel;
    if (!std::filesystem::is_regular_file(file))
      throw Error("bundle file " + rel + " is missing from " + root.string() + "; re-export or re-copy the bundle");
    if (sha256_file(file) != digest.get<std::string>())
      throw Error("bundle file " + rel +
                  " does not match its sha256 in the manifest (tampered or truncated); re-export or re-copy the bundle");
  }
}

}  // namespace

size_t TensorSpec::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

const std::vector<double>& Manifest::schedule(int n) const {
  if (n == 0) n = steps;
  auto it = schedules.find(n);
  if (it == schedules.end()) {
    std::string offered;
    for (const auto& [k, _] : schedules) offered += (offered.empty() ? "" : ", ") + std::to_string(k);
    throw Error("this bundle offers steps " + offered + ", not " + std::to_string(n) +
                "; pick one of those or re-export with --steps");
  }
  return it->second;
}

int Manifest::class_index(const std::string& name_or_index) const {
  // lrf_model.classes.class_index: a name (case-insensitive) or a decimal index.
  const size_t first = name_or_index.find_first_not_of(" \t\n\r");
  const size_t last = name_or_index.find_last_not_of(" \t\n\r");
  std::string key = first == std::string::npos ? "" : name_or_index.substr(first, last - first + 1);
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (size_t i = 0; i < class_names.size(); ++i)
    if (class_names[i] == key) return static_cast<int>(i);
  if (!key.empty() && key.size() < 9 && key.find_first_not_of("0123456789") == std::string::npos &&
      std::stoi(key) < static_cast<int>(class_names.size()))
    return std::stoi(key);
  std::string names;
  for (const auto& n : class_names) names += (names.empty() ? "" : ", ") + n;
  throw Error("unknown class '" + name_or_index + "'; use one of " + names + " or an index 0-" +
              std::to_string(class_names.size() - 1));
}

const Artifact& Manifest::artifact(const std::string& kind) const {
  auto it = artifacts.find(kind);
  if (it == artifacts.end()) throw Error("the bundle has no " + kind + " artifact; re-export it with lrf-export");
  return it->second;
}

uint64_t Manifest::artifact_bytes() const {
  uint64_t total = 0;
  for (const auto& [_, art] : artifacts) total += std::filesystem::file_size(root / art.file);
  return total;
}

Manifest load_manifest(const std::filesystem::path& root, bool verify) {
  const auto path = root / "manifest.json";
  if (!std::filesystem::is_regular_file(path))
    throw Error(root.string() + " is not a bundle: manifest.json is missing; export one with lrf-export");
  Manifest m;
  m.root = root;
  try {
    std::ifstream in(path);
    m.raw = json::parse(in);
  } catch (const json::exception& e) {
    throw Error(path.string() + " is corrupt (" + std::string(e.what()) + "); re-export the bundle");
  }
  const json& j = m.raw;
  if (!j.is_object()) throw Error(path.string() + " is not a JSON object; re-export the bundle");
  const json& version = j.contains("schema_version") ? j["schema_version"] : json();
  const int schema = version.is_number_integer() ? version.get<int>() : -1;
  if (schema != kSchemaVersion)
    throw Error(path.string() + ": schema version " + std::to_string(schema) + " is not " +
                std::to_string(kSchemaVersion) + "; re-export the bundle with this lrf-export");
  try {
    if (verify) verify_files(root, j.at("files"));
    m.model_name = j.at("model").at("name").get<std::string>();
    m.target = j.at("target").get<std::string>();
    m.precision = j.at("precision").get<std::string>();
    m.class_names = j.at("class_names").get<std::vector<std::string>>();
    const json& s = j.at("sampler");
    m.graph = s.at("graph").get<std::string>();
    m.steps = s.at("steps").get<int>();
    for (const auto& [n, ts] : s.at("schedules").items()) {
      if (n.empty() || n.size() > 6 || n.find_first_not_of("0123456789") != std::string::npos)
        throw Error(path.string() + ": sampler.schedules has a key '" + n + "' that is not a step count; re-export the bundle");
      m.schedules[std::stoi(n)] = ts.get<std::vector<double>>();
    }
    m.cfg = s.at("cfg").get<double>();
    m.latent_shape = j.at("latent").at("shape").get<std::vector<int64_t>>();
    m.image_shape = j.at("image").at("shape").get<std::vector<int64_t>>();
    m.step_rel_tolerance = j.at("tolerance").at("step_rel").get<double>();
    m.image_psnr_tolerance_db = j.at("tolerance").at("image_psnr_db").get<double>();
    for (const auto& [kind, a] : j.at("artifacts").items())
      m.artifacts[kind] = {a.at("file").get<std::string>(), tensor_specs(a.at("inputs")), tensor_specs(a.at("outputs"))};
  } catch (const json::exception& e) {
    throw Error(path.string() + " lacks a field this runtime needs (" + std::string(e.what()) +
                "); re-export the bundle with this lrf-export");
  }
  return m;
}

}  // namespace lrf
