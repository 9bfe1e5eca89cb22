// SHA-256 of a file, to verify a bundle against its manifest before reading any artifact.
//
// Computed by OpenSSL's libcrypto (Debian's libssl-dev on Linux; the NDK's openssl prefab
// package in the Android app); every bundle load checks it against the digests Python's
// hashlib wrote.
#pragma once

#include <filesystem>
#include <string>

namespace lrf {

// Lower-case hex digest of the file's bytes; throws lrf::Error if it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace lrf
