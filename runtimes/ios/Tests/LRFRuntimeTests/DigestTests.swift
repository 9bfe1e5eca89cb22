import Foundation
import XCTest
@testable import LRFRuntime

final class DigestTests: XCTestCase {
    /// 2^20 + 100 bytes `(i * 31 + 7) & 0xFF`: crosses FileDigest's 1 MiB read chunk.
    static let pattern: [UInt8] = (0..<((1 << 20) + 100)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
    /// hashlib.sha256 of `pattern`, computed in Python.
    static let patternDigest = "d374c1936970031dbb8940eb08cb9813ca7396530459c16511dab946f7bb35c3"

    func testKnownAnswers() {
        XCTAssertEqual(FileDigest.sha256Hex(of: Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(FileDigest.sha256Hex(of: Data("abc".utf8)),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testFileDigestMatchesPython() throws {
        let url = try temporaryDirectory().appendingPathComponent("pattern.bin")
        try Data(Self.pattern).write(to: url)
        XCTAssertEqual(try FileDigest.sha256Hex(of: url), Self.patternDigest)
        XCTAssertEqual(FileDigest.sha256Hex(of: Data(Self.pattern)), Self.patternDigest)
    }
}
