import Foundation
import XCTest
@testable import LRFRuntime

/// A step "model" that records its feeds and returns latent - dt (any function would do: the
/// test is about what the loop feeds, not about the model).
final class RecordingStep: ArtifactRunner {
    var calls: [[String: Tensor]] = []

    func run(_ feeds: [String: Tensor]) throws -> [String: Tensor] {
        calls.append(feeds)
        guard let latent = feeds["latent"], let dt = try feeds["dt"]?.floatValues().first else {
            throw LRFError("RecordingStep: missing feeds")
        }
        let next = try latent.floatValues().map { $0 - dt }
        return ["next_latent": Tensor(shape: latent.shape, floats: next)]
    }
}

/// The loop of BundleRuntime against `export/run.py:BundleRuntime.denoise`: inputs, dtypes,
/// schedule handling and callbacks. Runs anywhere (no Core ML).
final class SamplerLoopTests: XCTestCase {
    private func runtime(_ step: RecordingStep, graph: String = "step") throws -> BundleRuntime {
        BundleRuntime(root: try temporaryDirectory(), manifest: try SyntheticBundle.manifest(graph: graph),
                      runners: ["step": step])
    }

    func testFeedsMirrorRunPy() throws {
        let step = RecordingStep()
        let rt = try runtime(step)
        let noise = rt.noise(seed: 5)
        XCTAssertEqual(noise.shape, [1, 4, 2, 2])
        XCTAssertEqual(try noise.floatValues(), PortableNoise.noiseArray(seed: 5, shape: [4, 2, 2]))

        var seen: [Int] = []
        let z = try rt.denoise(noise, classID: 1, steps: 3) { i, latent, seconds in
            seen.append(i)
            XCTAssertEqual(latent.shape, [1, 4, 2, 2])
            XCTAssertGreaterThanOrEqual(seconds, 0)
        }
        XCTAssertEqual(seen, [0, 1, 2])
        let ts = SyntheticBundle.schedule3
        XCTAssertEqual(step.calls.count, 3)
        for (i, feeds) in step.calls.enumerated() {
            XCTAssertEqual(Set(feeds.keys), ["latent", "t", "dt", "class_id", "cfg"])
            // np.array([ts[i]], np.float32) and np.array([ts[i] - ts[i + 1]], np.float32):
            // the difference is taken in Double, then rounded once.
            XCTAssertEqual(feeds["t"], Tensor(shape: [1], floats: [Float(ts[i])]))
            XCTAssertEqual(feeds["dt"], Tensor(shape: [1], floats: [Float(ts[i] - ts[i + 1])]))
            XCTAssertEqual(feeds["class_id"], Tensor(shape: [1], int64: [1]))
            XCTAssertEqual(feeds["cfg"], Tensor(shape: [1], floats: [3.0]))
        }
        // latent - dt summed over the schedule: noise - (Float dts), step by step in Float.
        var expected = try noise.floatValues()
        for i in 0..<(ts.count - 1) {
            let dt = Float(ts[i] - ts[i + 1])
            expected = expected.map { $0 - dt }
        }
        XCTAssertEqual(try z.floatValues(), expected)
    }

    func testScheduleComesFromTheManifest() throws {
        let rt = try runtime(RecordingStep())
        XCTAssertEqual(try rt.schedule(), [1.0, 0.5, 0.0])
        XCTAssertEqual(try rt.schedule(steps: 2), [1.0, 0.5, 0.0])
        XCTAssertEqual(try rt.schedule(steps: 3), SyntheticBundle.schedule3)
        assertThrows(["offers steps 1, 2, 3, not 5", "re-export with --steps"]) { try rt.schedule(steps: 5) }
    }

    func testDefaultStepsAndCancellation() throws {
        let step = RecordingStep()
        let rt = try runtime(step)
        _ = try rt.denoise(rt.noise(seed: 0), classID: 0)
        XCTAssertEqual(step.calls.count, 2, "the bundle's own steps")

        let again = RecordingStep()
        let rt2 = try runtime(again)
        XCTAssertThrowsError(try rt2.denoise(rt2.noise(seed: 0), classID: 0, steps: 3) { _, _, _ in
            throw CancellationError()
        }) { error in
            XCTAssertTrue(error is CancellationError)
        }
        XCTAssertEqual(again.calls.count, 1, "stops right after the step whose callback threw")
    }

    func testMissingRunnerMessage() throws {
        let rt = BundleRuntime(root: try temporaryDirectory(), manifest: try SyntheticBundle.manifest(), runners: [:])
        XCTAssertFalse(rt.executable)
        assertThrows(["cannot execute the coreml step artifact"]) { try rt.denoise(rt.noise(seed: 0), classID: 0) }
    }

    func testClassIndexMirrorsPython() throws {
        let rt = try runtime(RecordingStep())
        XCTAssertEqual(try rt.classIndex("cat"), 1)
        XCTAssertEqual(try rt.classIndex(" CAT "), 1)
        XCTAssertEqual(try rt.classIndex("0"), 0)
        assertThrows(["unknown class 'dog'", "airplane, cat", "0-1"]) { try rt.classIndex("dog") }
        assertThrows(["unknown class '2'"]) { try rt.classIndex("2") }
    }

    func testToUInt8MirrorsRunPy() throws {
        // np.round((np.clip(x, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0), from Python.
        let plane: [Float] = [-1.0, 1.0, 0.0, 2.0, -2.0, 0.5, -0.5, 0.00392157]
        let image = Tensor(shape: [1, 3, 2, 4], floats: plane + plane + plane)
        let rgb = try RGBImage(image: image)
        XCTAssertEqual(rgb.width, 4)
        XCTAssertEqual(rgb.height, 2)
        XCTAssertEqual(rgb.pixels, [0, 0, 0, 255, 255, 255, 128, 128, 128, 255, 255, 255,
                                    0, 0, 0, 191, 191, 191, 64, 64, 64, 128, 128, 128])
        let bad = Tensor(shape: [1, 3, 1, 1], floats: [0, .nan, 0])
        assertThrows(["NaN/Inf"]) { try RGBImage(image: bad) }
    }

    func testParityMeasures() throws {
        XCTAssertEqual(try Parity.relError([1, 2.5], [1, 2]), 0.25)
        XCTAssertEqual(try Parity.maxAbs([1, 2.5], [1, 2]), 0.5)
        XCTAssertEqual(try Parity.psnr([0.5, -0.25], [0.5, -0.25]), .infinity)
        XCTAssertEqual(try Parity.psnr([3.0], [1.0]), .infinity, "got is clipped to [-1, 1] first")
        XCTAssertEqual(try Parity.psnr([0.0], [1.0]), 10 * log10(4.0), accuracy: 1e-12)
        XCTAssertTrue(try Parity.relError([.nan, 0], [1, 1]).isNaN)
        assertThrows(["2 values", "1"]) { try Parity.relError([1, 2], [1]) }
    }
}
