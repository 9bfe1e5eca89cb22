#include "lrf/manifest.h"

#include <fstream>

#include "lrf/error.h"
#include "lrf/sha256.h"

namespace lrf {
namespace {

using nlohmann::json;

// A declared tensor, with a shape no allocation can overflow on and no hostile manifest can turn
// into gigabytes: at most 2^26 elements (256 MiB of float32, a 4096 x 4096 RGBA image). At 2^28 a
// fuzzed manifest's 1 GiB inputs took the fuzzer past its 2 GiB RSS limit.
TensorSpec checked_spec(TensorSpec t) {
  uint64_t n = 1;
  for (int64_t d : t.shape) {
    if (d < 1 || d > (int64_t{1} << 26) || (n *= static_cast<uint64_t>(d)) > (uint64_t{1} << 26))
      throw Error("tensor " + t.name + " declares an impossible shape; re-export the bundle");
  }
  if (t.shape.empty() || t.shape.size() > 8) throw Error("tensor " + t.name + " declares no shape; re-export the bundle");
  return t;
}

TensorSpec tensor_spec(const json& j) {
  return checked_spec(
      {j.at("name").get<std::string>(), j.at("shape").get<std::vector<int64_t>>(), j.at("dtype").get<std::string>()});
}

std::vector<TensorSpec> tensor_specs(const json& list) {
  std::vector<TensorSpec> out;
  for (const auto& j : list) out.push_back(tensor_spec(j));
  return out;
}

// A file named by the manifest stays inside the bundle (the schema's relpath).
std::string relpath(const json& j) {
  const auto rel = j.get<std::string>();
  const std::filesystem::path p(rel);
  bool up = false;
  for (const auto& part : p) up |= part == "..";
  if (rel.empty() || p.is_absolute() || up) throw Error("the manifest names a file outside the bundle (" + rel + "); re-export it");
  return rel;
}

Feed feed(const json& j) {
  if (j.contains("state")) return {Feed::From::State, j.at("state").get<std::string>()};
  if (j.contains("input")) return {Feed::From::Input, j.at("input").get<std::string>()};
  const auto which = j.at("schedule").get<std::string>();
  if (which != "t" && which != "dt" && which != "t_start")
    throw Error("a plan feed takes schedule '" + which + "'; re-export the bundle");
  return {Feed::From::Schedule, which};
}

std::map<std::string, Feed> feeds(const json& j) {
  std::map<std::string, Feed> out;
  for (const auto& [name, f] : j.items()) out[name] = feed(f);
  return out;
}

// The plan, with every name it uses resolved: a graph it runs exists, each state and input it
// reads is declared, so executing it can only fail on the numbers.
Plan plan(const json& j, const std::map<std::string, Artifact>& artifacts) {
  Plan p;
  for (const auto& in : j.at("inputs")) {
    Plan::Input input{in.at("name").get<std::string>(), in.at("kind").get<std::string>(), in.at("default").get<double>(), {}};
    if (in.contains("shape")) input.shape = checked_spec({input.name, in.at("shape").get<std::vector<int64_t>>(), "float32"}).shape;
    if ((input.kind == "image" || input.kind == "mask") && input.shape.empty())
      throw Error("the plan's " + input.name + " input declares no shape; re-export the bundle");
    p.inputs.push_back(input);
  }
  for (const auto& [name, s] : j.at("start").items()) {
    Plan::Start start{s.value("noise", ""), s.value("fill", 0.0),
                      checked_spec({name, s.at("shape").get<std::vector<int64_t>>(), "float32"}).shape};
    if (start.noise_input.empty() && !s.contains("fill"))
      throw Error("the plan's state " + name + " starts from nothing; re-export the bundle");
    p.start[name] = start;
  }
  if (j.contains("edit")) {
    const json& e = j.at("edit");
    if (e.at("when").get<std::string>() != "image") throw Error("the plan edits on an unknown condition; update lrf-native");
    p.edit = Plan::Stage{e.at("graph").get<std::string>(), feeds(e.at("feeds")),
                         e.at("next").get<std::map<std::string, std::string>>()};
  }
  const json& loop = j.at("loop");
  p.loop_graph = loop.at("graph").get<std::string>();
  const json& repeat = loop.at("repeat");
  if (repeat.contains("schedule")) {
    p.repeat_schedule = repeat.at("schedule").get<std::string>();
    p.repeat_strength = repeat.value("strength", "");
  } else {
    p.repeat_count = repeat.at("count").get<int>();
  }
  if (p.repeat_schedule.empty() && (p.repeat_count < 1 || p.repeat_count > 1000))
    throw Error("the plan repeats its loop " + std::to_string(p.repeat_count) + " times; re-export the bundle");
  p.loop_feeds = feeds(loop.at("feeds"));
  p.next = loop.at("next").get<std::map<std::string, std::string>>();
  const json& end = j.at("end");
  p.end_graph = end.at("graph").get<std::string>();
  p.end_output = end.at("output").get<std::string>();
  p.end_feeds = feeds(end.at("feeds"));

  std::vector<std::string> graphs = {p.loop_graph, p.end_graph};
  if (p.edit) graphs.push_back(p.edit->graph);
  for (const auto& graph : graphs)
    if (!artifacts.count(graph)) throw Error("the plan runs a " + graph + " graph the bundle does not hold; re-export it");
  for (const auto& [state, s] : p.start)
    if (!s.noise_input.empty() && !p.input(s.noise_input))
      throw Error("the plan seeds " + state + " from an undeclared input; re-export it");
  if (!p.repeat_schedule.empty() && !p.input(p.repeat_schedule))
    throw Error("the plan's loop repeats over an undeclared input; re-export the bundle");
  if (!p.repeat_strength.empty() && !p.input(p.repeat_strength))
    throw Error("the plan's loop starts at an undeclared strength input; re-export the bundle");
  std::vector<const std::map<std::string, Feed>*> all_feeds = {&p.loop_feeds, &p.end_feeds};
  if (p.edit) all_feeds.push_back(&p.edit->feeds);
  for (const auto* fs : all_feeds)
    for (const auto& [name, f] : *fs) {
      if (f.from == Feed::From::State && !p.start.count(f.name))
        throw Error("the plan feeds " + name + " from an undeclared state " + f.name + "; re-export the bundle");
      if (f.from == Feed::From::Input && !p.input(f.name))
        throw Error("the plan feeds " + name + " from an undeclared input " + f.name + "; re-export the bundle");
      if (f.from == Feed::From::Schedule && p.repeat_schedule.empty())
        throw Error("the plan feeds " + name + " from a schedule but repeats a fixed count; re-export the bundle");
    }
  std::vector<const std::map<std::string, std::string>*> all_next = {&p.next};
  if (p.edit) all_next.push_back(&p.edit->next);
  for (const auto* ns : all_next)
    for (const auto& [state, output] : *ns)
      if (!p.start.count(state)) throw Error("the plan sets an undeclared state " + state + "; re-export the bundle");
  return p;
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

const Plan::Input* Plan::input(const std::string& name) const {
  for (const auto& in : inputs)
    if (in.name == name) return &in;
  return nullptr;
}

const Plan::Input* Plan::input_of_kind(const std::string& kind) const {
  for (const auto& in : inputs)
    if (in.kind == kind) return &in;
  return nullptr;
}

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
    m.steps = s.at("steps").get<int>();
    for (const auto& [n, ts] : s.at("schedules").items()) {
      if (n.empty() || n.size() > 6 || n.find_first_not_of("0123456789") != std::string::npos)
        throw Error(path.string() + ": sampler.schedules has a key '" + n + "' that is not a step count; re-export the bundle");
      m.schedules[std::stoi(n)] = ts.get<std::vector<double>>();
    }
    m.image_shape = j.at("image").at("shape").get<std::vector<int64_t>>();
    if (m.image_shape.size() != 4 || m.image_shape[3] != 3 || m.image_shape[1] < 1 || m.image_shape[2] < 1 ||
        m.image_shape[1] > 16384 || m.image_shape[2] > 16384)
      throw Error(path.string() + ": image.shape is not (1, H, W, 3) pixels; re-export the bundle");
    for (const auto& [kind, a] : j.at("artifacts").items())
      m.artifacts[kind] = {relpath(a.at("file")), tensor_specs(a.at("inputs")), tensor_specs(a.at("outputs"))};
    m.plan = plan(j.at("plan"), m.artifacts);
    for (const auto& [name, t] : j.at("tensors").items())
      m.tensors[name] = {relpath(t.at("file")),
                         checked_spec({name, t.at("shape").get<std::vector<int64_t>>(), t.at("dtype").get<std::string>()})};
  } catch (const json::exception& e) {
    throw Error(path.string() + " lacks a field this runtime needs (" + std::string(e.what()) +
                "); re-export the bundle with this lrf-export");
  }
  return m;
}

}  // namespace lrf
