import Foundation
#if canImport(CryptoKit)
import CryptoKit
#else
import Crypto  // apple/swift-crypto: CryptoKit's API on Linux
#endif

/// sha256 of bundle files, as `export/bundle.py:sha256_file` (lowercase hex), by the platform's
/// CryptoKit (iOS, macOS) or, elsewhere (Linux), swift-crypto, which has the same API.
public enum FileDigest {
    /// Hex sha256 of the file at `url`, read in 1 MiB chunks like the Python.
    public static func sha256Hex(of url: URL) throws -> String {
        let handle: FileHandle
        do {
            handle = try FileHandle(forReadingFrom: url)
        } catch {
            throw LRFError("bundle file \(url.lastPathComponent) cannot be read (\(error.localizedDescription)); re-copy the bundle")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        return hex(Array(hasher.finalize()))
    }

    /// Hex sha256 of bytes in memory.
    public static func sha256Hex(of data: Data) -> String {
        return hex(Array(SHA256.hash(data: data)))
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var out = ""
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return out
    }
}
