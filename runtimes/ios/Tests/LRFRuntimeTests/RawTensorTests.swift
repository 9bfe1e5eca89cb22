import Foundation
import XCTest
@testable import LRFRuntime

/// RawTensor on Fixtures/small_*.bin, written by numpy's tofile with their specs, values and
/// export/bundle.py's error messages in tensors.json (scripts/make_fixtures.py).
final class RawTensorTests: XCTestCase {
    private struct Fixture: Decodable {
        let tensors: [String: Manifest.TensorFile]
        let values: [String: [Double]]
        let errors: [String: String]
    }

    private func fixture() throws -> Fixture {
        try JSONDecoder().decode(Fixture.self, from: Fixtures.data("tensors.json"))
    }

    func testReadsEveryDtype() throws {
        let fixture = try fixture()
        let root = try Fixtures.url("tensors.json").deletingLastPathComponent()
        XCTAssertEqual(Set(fixture.tensors.keys), ["small_f4", "small_i4", "small_u1"])
        for (name, spec) in fixture.tensors {
            let tensor = try RawTensor.read(spec, in: root)
            XCTAssertEqual(tensor.dtype, spec.dtype, name)
            XCTAssertEqual(tensor.shape, spec.shape, name)
            XCTAssertEqual((0..<tensor.count).map { tensor.element($0) }, fixture.values[name], name)
        }
        let f4 = try RawTensor.read(fixture.tensors["small_f4"]!, in: root)
        XCTAssertEqual(try f4.floatValues(), [-1.0, -0.5, 0.0, 0.5, 1.0, 1e-7])
        XCTAssertEqual(try RawTensor.read(fixture.tensors["small_i4"]!, in: root), Tensor(shape: [2, 1], int32: [7, -9]))
        XCTAssertEqual(try RawTensor.read(fixture.tensors["small_u1"]!, in: root), Tensor(shape: [4], uint8: [0, 1, 128, 255]))
    }

    /// A file of any other size is refused with Python's message, word for word.
    func testWrongSizeAndMissingFilesSayWhatPythonSays() throws {
        let fixture = try fixture()
        let spec = try XCTUnwrap(fixture.tensors["small_f4"])
        var truncated = try Fixtures.data("small_f4.bin")
        truncated.removeLast(4)
        let root = try temporaryDirectory()
        try truncated.write(to: root.appendingPathComponent(spec.file))
        XCTAssertThrowsError(try RawTensor.read(spec, in: root)) { error in
            XCTAssertEqual(String(describing: error), fixture.errors["truncated"])
        }
        let absent = try JSONDecoder().decode(Manifest.TensorFile.self,
                                              from: Data(#"{"file": "absent.bin", "dtype": "float32", "shape": [2, 3]}"#.utf8))
        XCTAssertThrowsError(try RawTensor.read(absent, in: root)) { error in
            XCTAssertEqual(String(describing: error), fixture.errors["missing"])
        }
        assertThrows(["holds 25 bytes", "needs 24"]) { try RawTensor.decode(Data(count: 25), as: spec) }
    }

    /// Casts as np.asarray(feed, dtype): floats round, integers truncate, and what an integer
    /// dtype cannot hold is an error, not a wrapped number.
    func testCastsAndFills() throws {
        XCTAssertEqual(try Tensor.filled(.int32, shape: [1, 2], value: 3), Tensor(shape: [1, 2], int32: [3, 3]))
        XCTAssertEqual(try Tensor.filled(.float32, shape: [1], value: 0.7 - 0.3), Tensor(shape: [1], floats: [Float(0.7 - 0.3)]))
        XCTAssertEqual(try Tensor.cast([2.9, -2.9], to: .int32, shape: [2]), Tensor(shape: [2], int32: [2, -2]))
        XCTAssertEqual(try Tensor(shape: [2], uint8: [0, 255]).converted(to: .int32), Tensor(shape: [2], int32: [0, 255]))
        assertThrows(["does not fit", "uint8"]) { try Tensor.filled(.uint8, shape: [1], value: 256) }
        assertThrows(["does not fit", "int32"]) { try Tensor.filled(.int32, shape: [1], value: .nan) }
        XCTAssertEqual(try Tensor.concatenated([Tensor(shape: [1, 2], floats: [1, 2]), Tensor(shape: [1, 1], floats: [3])]),
                       Tensor(shape: [3], floats: [1, 2, 3]))
        assertThrows(["mix dtypes"]) { try Tensor.concatenated([Tensor(shape: [1], floats: [1]), Tensor(shape: [1], int32: [1])]) }
    }

    /// Every tensor the LRF_BUNDLE manifest declares reads at its declared size.
    func testRealBundleTensors() throws {
        let root = try TestBundle.root()
        let manifest = try Manifest.load(from: root, verify: false)
        XCTAssertFalse(manifest.tensors.isEmpty)
        for (name, spec) in manifest.tensors {
            let tensor = try RawTensor.read(spec, in: root)
            XCTAssertEqual(tensor.shape, spec.shape, name)
            XCTAssertEqual(tensor.count, spec.count, name)
        }
    }
}
