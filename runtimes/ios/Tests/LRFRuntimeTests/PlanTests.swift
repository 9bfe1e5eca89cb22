import Foundation
import XCTest
@testable import LRFRuntime

/// The plan executor against `export/run.py:BundleRuntime` on the synthetic bundle, whose graph
/// tensors are named nothing a runtime could guess: inputs, feeds, casts, the schedule, the
/// end, callbacks and cancellation. Runs anywhere (no Core ML).
final class PlanTests: XCTestCase {
    func testInputsDefaultAndAreChecked() throws {
        let rt = try SyntheticBundle.runtime()
        XCTAssertEqual(try rt.inputs().numbers, ["class": 0, "seed": 7, "steps": 2, "guidance": 3])
        XCTAssertEqual(try rt.inputs(.init(className: "cat", seed: 5, steps: 3, numbers: ["guidance": 1.5])).numbers,
                       ["class": 1, "seed": 5, "steps": 3, "guidance": 1.5])
        XCTAssertEqual(try rt.inputs(.init(className: "1"))["class"], 1)
        assertThrows(["unknown class 'dog'", "airplane, cat"]) { try rt.inputs(.init(className: "dog")) }
        assertThrows(["seed -1 is invalid", "0..4294967295"]) { try rt.inputs(.init(seed: -1)) }
        assertThrows(["seed 4294967296 is invalid"]) { try rt.inputs(.init(seed: 1 << 32)) }
        XCTAssertEqual(try rt.inputs(.init(seed: 4_294_967_295))["seed"], 4_294_967_295)
        assertThrows(["offers steps 1, 2, 3, not 5", "re-export with --steps"]) { try rt.inputs(.init(steps: 5)) }
        assertThrows(["takes no input cfg", "class, seed, steps, guidance"]) { try rt.inputs(.init(numbers: ["cfg": 1])) }
    }

    /// What each graph input gets, from where the plan says: the state, the schedule interval
    /// (dt subtracted in Double, then rounded once), inputs filled to the declared shape and dtype.
    func testFeedsFollowThePlan() throws {
        let step = FakeStep()
        let rt = try SyntheticBundle.runtime(step: step)
        let values = try rt.inputs(.init(className: "cat", seed: 5, steps: 3))
        XCTAssertEqual(try rt.iterations(values), 3)
        var seen: [Int] = []
        var states: [[Float]] = []
        let last = try rt.iterate(values) { i, state, seconds in
            seen.append(i)
            XCTAssertEqual(Array(state.keys), ["x"])
            states.append(try state["x"]?.floatValues() ?? [])
            XCTAssertGreaterThanOrEqual(seconds, 0)
        }
        XCTAssertEqual(seen, [0, 1, 2])
        let ts = SyntheticBundle.schedule3
        XCTAssertEqual(step.calls.count, 3)
        for (i, feeds) in step.calls.enumerated() {
            XCTAssertEqual(Set(feeds.keys), ["z", "time", "delta", "label", "scale"])
            XCTAssertEqual(feeds["time"], Tensor(shape: [1], floats: [Float(ts[i])]))
            XCTAssertEqual(feeds["delta"], Tensor(shape: [1], floats: [Float(ts[i] - ts[i + 1])]))
            XCTAssertEqual(feeds["label"], Tensor(shape: [1], int32: [1]))
            XCTAssertEqual(feeds["scale"], Tensor(shape: [1, 1], floats: [3]))
        }
        XCTAssertEqual(step.calls[0]["z"], BundleRuntime.noise(seed: 5, shape: [1, 3, 2, 2]))
        XCTAssertEqual(try BundleRuntime.noise(seed: 5, shape: [1, 3, 2, 2]).floatValues(),
                       PortableNoise.noiseArray(seed: 5, shape: [3, 2, 2]))
        let expected = FakeModels.trajectory(label: 1, seed: 5, steps: 3, scale: 3)
        XCTAssertEqual(states, expected.states)
        XCTAssertEqual(last["x"], Tensor(shape: [1, 3, 2, 2], floats: expected.states[2]))

        let pixels = try rt.finish(last, values: values)
        XCTAssertEqual(pixels, Tensor(shape: [1, 2, 2, 3], int32: expected.pixels))
        XCTAssertEqual(try rt.generate(values), pixels)
        XCTAssertEqual(rt.className(values), "cat")
    }

    func testFixedCountLoopRunsThatManyTimes() throws {
        let step = FakeStep()
        let rt = try SyntheticBundle.runtime(step: step) { object in
            object["plan"] = ManifestTests.editing(object["plan"]) { plan in
                plan["loop"] = ManifestTests.editing(plan["loop"]) { loop in
                    loop["repeat"] = ["count": 4]
                    loop["feeds"] = ManifestTests.editing(loop["feeds"]) { feeds in
                        feeds["time"] = ["input": "guidance"]
                        feeds["delta"] = ["input": "seed"]
                    }
                }
            }
        }
        let values = try rt.inputs(.init(seed: 2))
        XCTAssertEqual(try rt.iterations(values), 4)
        _ = try rt.iterate(values)
        XCTAssertEqual(step.calls.count, 4)
        XCTAssertEqual(step.calls[3]["delta"], Tensor(shape: [1], floats: [2]))
    }

    func testCancellationStopsAfterTheIterationWhoseCallbackThrew() throws {
        let step = FakeStep()
        let rt = try SyntheticBundle.runtime(step: step)
        XCTAssertThrowsError(try rt.iterate(rt.inputs(.init(steps: 3))) { _, _, _ in throw CancellationError() }) { error in
            XCTAssertTrue(error is CancellationError)
        }
        XCTAssertEqual(step.calls.count, 1)
    }

    func testMissingRunnerAndNaNStateAreOneLine() throws {
        let manifest = try SyntheticBundle.manifest()
        let rt = BundleRuntime(root: try temporaryDirectory(), manifest: manifest, runners: [:])
        XCTAssertFalse(rt.executable)
        assertThrows(["cannot execute the coreml step artifact"]) { try rt.iterate(rt.inputs()) }

        let ok = try SyntheticBundle.runtime()
        let bad: BundleRuntime.State = ["x": Tensor(shape: [1, 3, 2, 2], floats: [0, .nan] + Array(repeating: 0, count: 10))]
        assertThrows(["NaN/Inf in its x", "re-export"]) { try ok.finish(bad) }
        let short: BundleRuntime.State = ["x": Tensor(shape: [1, 3], floats: [0, 0, 0])]
        assertThrows(["does not fit its declared shape", "z takes float32[1, 3, 2, 2], got 3 values"]) { try ok.finish(short) }
    }

    /// The pixels are the image: no conversion, whatever their integer dtype.
    func testRGBImageIsThePixelsAsTheyAre() throws {
        let values: [Int32] = [0, 1, 2, 253, 254, 255, 10, 20, 30, 128, 128, 128]
        let image = try RGBImage(pixels: Tensor(shape: [1, 2, 2, 3], int32: values))
        XCTAssertEqual(image.width, 2)
        XCTAssertEqual(image.height, 2)
        XCTAssertEqual(image.pixels, values.map { UInt8($0) })
        let wide = try RGBImage(pixels: Tensor(shape: [1, 1, 2, 3], uint8: [1, 2, 3, 4, 5, 6]))
        XCTAssertEqual([wide.width, wide.height], [2, 1])
        XCTAssertEqual(wide.pixels, [1, 2, 3, 4, 5, 6])
        assertThrows(["pixel value 256 outside 0-255"]) { try RGBImage(pixels: Tensor(shape: [1, 1, 1, 3], int32: [0, 256, 0])) }
        assertThrows(["not (1, H, W, 3) 8-bit pixels"]) { try RGBImage(pixels: Tensor(shape: [1, 1, 1, 3], floats: [0, 0, 0])) }
        assertThrows(["not (1, H, W, 3) 8-bit pixels"]) { try RGBImage(pixels: Tensor(shape: [1, 3, 1, 1], int32: [0, 0, 0])) }
    }
}
