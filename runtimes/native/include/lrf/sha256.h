// SHA-256 of a file, to verify a bundle against its manifest before reading any artifact.
//
// Written out (FIPS 180-4) rather than taken from OpenSSL so the same code builds unchanged
// for Linux, the Android NDK and iOS without a crypto dependency; every bundle load checks
// it against the digests Python's hashlib wrote.
#pragma once

#include <filesystem>
#include <string>

namespace lrf {

// Lower-case hex digest of the file's bytes; throws lrf::Error if it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

// Lower-case hex digest of a byte string.
std::string sha256_hex(const void* data, size_t size);

}  // namespace lrf
