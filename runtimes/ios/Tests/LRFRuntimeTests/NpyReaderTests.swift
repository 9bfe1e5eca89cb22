import Foundation
import XCTest
@testable import LRFRuntime

/// Fixtures/small_*.npy were written by np.save / np.lib.format.write_array (README.md).
final class NpyReaderTests: XCTestCase {
    let expected: [Float] = [-1.0, -0.5, 0.0, 0.5, 1.0, 1e-7]

    func testFloat32() throws {
        let tensor = try NpyReader.read(Fixtures.url("small_f4.npy"))
        XCTAssertEqual(tensor.dtype, .float32)
        XCTAssertEqual(tensor.shape, [2, 3])
        XCTAssertEqual(try tensor.floatValues(), expected)
        XCTAssertEqual(try tensor.slice(1).floatValues(), Array(expected[3...]))
        XCTAssertEqual(try tensor.slice(1).shape, [3])
    }

    func testFormatVersion2() throws {
        let tensor = try NpyReader.read(Fixtures.url("small_f4_v2.npy"))
        XCTAssertEqual(tensor.shape, [2, 3])
        XCTAssertEqual(try tensor.floatValues(), expected)
    }

    func testInt64AndInt32() throws {
        let i8 = try NpyReader.read(Fixtures.url("small_i8.npy"))
        XCTAssertEqual(i8.dtype, .int64)
        XCTAssertEqual(i8.shape, [2])
        XCTAssertEqual(try i8.integerValues(), [3, -2])
        XCTAssertEqual(try i8.converted(to: .int32), Tensor(shape: [2], int32: [3, -2]))

        let i4 = try NpyReader.read(Fixtures.url("small_i4.npy"))
        XCTAssertEqual(i4.dtype, .int32)
        XCTAssertEqual(i4.shape, [2, 1])
        XCTAssertEqual(try i4.integerValues(), [7, -9])
    }

    func testRejectsBigEndianAndGarbage() throws {
        assertThrows(["small_f4_be.npy", "unsupported dtype >f4"]) {
            try NpyReader.read(Fixtures.url("small_f4_be.npy"))
        }
        assertThrows(["junk", "no .npy header"]) { try NpyReader.parse(Data("hello world".utf8), name: "junk") }
        var truncated = try Fixtures.data("small_f4.npy")
        truncated.removeLast(4)
        assertThrows(["truncated data"]) { try NpyReader.parse(truncated) }
        assertThrows(["missing or unreadable"]) {
            try NpyReader.read(URL(fileURLWithPath: "/nonexistent/step0_t.npy"))
        }
    }

    func testRealBundleVectors() throws {
        let root = try TestBundle.root()
        let manifest = try Manifest.load(from: root, verify: false)
        let tv = manifest.testVectors
        let latents = try NpyReader.read(root.appendingPathComponent(tv.trajectory.latents))
        XCTAssertEqual(latents.shape, [manifest.sampler.schedule.count] + manifest.latent.shape)
        let image = try NpyReader.read(root.appendingPathComponent(tv.trajectory.image))
        XCTAssertEqual(image.shape, manifest.image.shape)
        for vector in tv.steps {
            if let rel = vector["class_id"] {
                XCTAssertEqual(try NpyReader.read(root.appendingPathComponent(rel)).dtype, .int64)
            }
            if let rel = vector["t"] {
                XCTAssertEqual(try NpyReader.read(root.appendingPathComponent(rel)).shape, [1])
            }
        }
    }
}
