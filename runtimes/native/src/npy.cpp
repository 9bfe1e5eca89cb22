#include "lrf/npy.h"

#include <cstring>
#include <fstream>
#include <regex>

#include "lrf/error.h"

namespace lrf {
namespace {

[[noreturn]] void bad(const std::filesystem::path& path, const std::string& why) {
  throw Error(path.string() + " is not a readable test vector (" + why + "); re-export the bundle");
}

}  // namespace

size_t NpyArray::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

std::vector<float> NpyArray::floats() const {
  if (dtype != "float32") throw Error("expected a float32 test vector, got " + dtype + "; re-export the bundle");
  std::vector<float> out(numel());
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));  // empty: data() may be null
  return out;
}

std::vector<int64_t> NpyArray::ints() const {
  std::vector<int64_t> out(numel());
  if (out.empty()) {
    if (dtype != "int64" && dtype != "int32")
      throw Error("expected an integer test vector, got " + dtype + "; re-export the bundle");
  } else if (dtype == "int64") {
    std::memcpy(out.data(), bytes.data(), out.size() * sizeof(int64_t));
  } else if (dtype == "int32") {
    std::vector<int32_t> narrow(numel());
    std::memcpy(narrow.data(), bytes.data(), narrow.size() * sizeof(int32_t));
    out.assign(narrow.begin(), narrow.end());
  } else {
    throw Error("expected an integer test vector, got " + dtype + "; re-export the bundle");
  }
  return out;
}

NpyArray read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("test vector " + path.string() + " is missing; re-export or re-copy the bundle");
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) bad(path, "no .npy header");
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) bad(path, "truncated header");
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) bad(path, "truncated header");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (uint32_t(b[3]) << 24);
  } else {
    bad(path, "unknown .npy version " + std::to_string(major));
  }
  if (header_len > (1u << 16)) bad(path, "implausible header length " + std::to_string(header_len));
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) bad(path, "truncated header");

  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'<([fi]\\d)'"))) bad(path, "not a little-endian number array");
  const std::string kind = m[1].str();
  NpyArray a;
  if (kind == "f4") a.dtype = "float32";
  else if (kind == "i8") a.dtype = "int64";
  else if (kind == "i4") a.dtype = "int32";
  else bad(path, "unsupported dtype " + kind);
  if (header.find("'fortran_order': True") != std::string::npos) bad(path, "Fortran order");
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)"))) bad(path, "no shape");
  const std::string dims = m[1].str();
  const std::regex number("\\d+");
  for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it) {
    if (it->str().size() > 12) bad(path, "implausible dimension " + it->str());
    a.shape.push_back(std::stoll(it->str()));
  }

  // The data must be in the file: check its size before allocating what the header claims.
  const size_t item = a.dtype == "int64" ? 8 : 4;
  const auto data_start = in.tellg();
  in.seekg(0, std::ios::end);
  const auto available = static_cast<uint64_t>(in.tellg() - data_start);
  in.seekg(data_start);
  uint64_t need = item;
  for (int64_t d : a.shape) {
    if (d > 0 && need > available / static_cast<uint64_t>(d)) bad(path, "truncated data");
    need *= static_cast<uint64_t>(d);
  }
  if (need > available) bad(path, "truncated data");
  a.bytes.resize(a.numel() * item);
  if (!in.read(reinterpret_cast<char*>(a.bytes.data()), static_cast<std::streamsize>(a.bytes.size())))
    bad(path, "truncated data");
  return a;
}

}  // namespace lrf
