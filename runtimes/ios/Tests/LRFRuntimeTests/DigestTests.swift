import Foundation
import XCTest
@testable import LRFRuntime
#if canImport(CryptoKit)
import CryptoKit
#endif

final class DigestTests: XCTestCase {
    /// 2^20 + 100 bytes `(i * 31 + 7) & 0xFF`: crosses FileDigest's 1 MiB read chunk.
    static let pattern: [UInt8] = (0..<((1 << 20) + 100)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
    /// hashlib.sha256 of `pattern`, computed in Python.
    static let patternDigest = "d374c1936970031dbb8940eb08cb9813ca7396530459c16511dab946f7bb35c3"

    private func portable(_ bytes: [UInt8], chunk: Int) -> String {
        var hasher = PortableSHA256()
        var start = 0
        while start < bytes.count {
            let end = Swift.min(start + chunk, bytes.count)
            hasher.update(bytes: Array(bytes[start..<end]))
            start = end
        }
        return FileDigest.hex(hasher.finalize())
    }

    func testPortableSHA256KnownAnswers() {
        XCTAssertEqual(portable([], chunk: 1), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(portable(Array("abc".utf8), chunk: 1), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let fox = Array("The quick brown fox jumps over the lazy dog".utf8)
        for chunk in [1, 7, 64, 1000] {
            XCTAssertEqual(portable(fox, chunk: chunk), "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592")
        }
        XCTAssertEqual(portable(Self.pattern, chunk: 65_537), Self.patternDigest)
    }

    func testFileDigestMatchesPython() throws {
        let url = try temporaryDirectory().appendingPathComponent("pattern.bin")
        try Data(Self.pattern).write(to: url)
        XCTAssertEqual(try FileDigest.sha256Hex(of: url), Self.patternDigest)
        XCTAssertEqual(FileDigest.sha256Hex(of: Data(Self.pattern)), Self.patternDigest)
    }

    #if canImport(CryptoKit)
    func testPortableMatchesCryptoKit() {
        let bytes = Array(Self.pattern.prefix(200_003))
        let crypto = FileDigest.hex(Array(SHA256.hash(data: Data(bytes))))
        XCTAssertEqual(portable(bytes, chunk: 4096), crypto)
    }
    #endif
}
