import Foundation
import XCTest
@testable import LRFRuntime
#if canImport(CoreML)
import CoreML
#endif

/// Plays back a bundle's own reference outputs: input array -> recorded output. With it the
/// self-test logic (loading vectors, the loop, the gates) runs on any platform with LRF_BUNDLE.
final class ReplayRunner: ArtifactRunner {
    let input: String
    let output: String
    var table: [[Float]: Tensor] = [:]
    var offset: Float = 0

    init(input: String, output: String) {
        self.input = input
        self.output = output
    }

    func record(_ key: Tensor, _ value: Tensor) throws {
        let values = try key.floatValues()
        table[values] = value
    }

    func run(_ feeds: [String: Tensor]) throws -> [String: Tensor] {
        guard let key = try feeds[input]?.floatValues(), let value = table[key] else {
            throw LRFError("replay: no recorded output for this \(input)")
        }
        if offset == 0 {
            return [output: value]
        }
        let shifted = try value.floatValues().map { $0 + offset }
        return [output: Tensor(shape: value.shape, floats: shifted)]
    }
}

final class SelfTestTests: XCTestCase {
    private func replayRuntime(_ root: URL) throws -> (BundleRuntime, decoder: ReplayRunner) {
        let manifest = try Manifest.load(from: root)
        let tv = manifest.testVectors
        func load(_ rel: String) throws -> Tensor { try NpyReader.read(root.appendingPathComponent(rel)) }
        let step = ReplayRunner(input: "latent", output: "next_latent")
        let latents = try load(tv.trajectory.latents)
        let n = latents.shape[0]
        for i in 0..<(n - 1) {
            try step.record(latents.slice(i), latents.slice(i + 1))
        }
        for vector in tv.steps {
            if let input = vector["latent"], let output = vector["next_latent"] {
                try step.record(load(input), load(output))
            }
        }
        let decoder = ReplayRunner(input: "latent", output: "image")
        try decoder.record(latents.slice(n - 1), load(tv.trajectory.image))
        var runners: [String: any ArtifactRunner] = ["step": step, "decoder": decoder]
        if let encoderVectors = tv.encoder {
            let encoder = ReplayRunner(input: "image", output: "latent")
            try encoder.record(load(encoderVectors.image), load(encoderVectors.latent))
            runners["encoder"] = encoder
        }
        return (BundleRuntime(root: root, manifest: manifest, runners: runners), decoder)
    }

    /// The gates with exact reference outputs: everything passes, errors are zero.
    func testReplayPasses() throws {
        let root = try TestBundle.root()
        let manifest = try Manifest.load(from: root, verify: false)
        try XCTSkipIf(manifest.sampler.graph != "step", "the replay runner replays step graphs")
        let (rt, _) = try replayRuntime(root)
        let report = try SelfTest.run(rt)
        XCTAssertTrue(report.passed, report.description)
        XCTAssertLessThanOrEqual(report.noiseMaxAbs, SelfTest.noiseTolerance)
        XCTAssertEqual(report.trajectory.count, manifest.sampler.steps)
        XCTAssertEqual(report.singleSteps.count, manifest.testVectors.steps.count)
        XCTAssertEqual(report.worstStepRel, 0)
        XCTAssertEqual(report.imagePSNR, .infinity)
    }

    /// A decoder that is off by 0.5 fails the PSNR gate, and the report says so.
    func testReplayWithBadDecoderFails() throws {
        let root = try TestBundle.root()
        try XCTSkipIf(try Manifest.load(from: root, verify: false).sampler.graph != "step")
        let (rt, decoder) = try replayRuntime(root)
        decoder.offset = 0.5
        let report = try SelfTest.run(rt)
        XCTAssertFalse(report.passed)
        XCTAssertTrue(report.failures.contains { $0.contains("final image PSNR") }, report.description)
        XCTAssertTrue(report.failures.contains { $0.contains("decoder PSNR") }, report.description)
    }

    #if canImport(CoreML)
    /// The whole thing on Core ML (macOS, or an iOS simulator/device running the test bundle):
    /// compile + cache, self-test against the manifest's tolerance, and one generation.
    func testCoreMLSelfTestPasses() async throws {
        let root = try TestBundle.root()
        let manifest = try Manifest.load(from: root, verify: false)
        try XCTSkipIf(manifest.target != "coreml", "LRF_BUNDLE is a \(manifest.target) bundle, not Core ML")
        let cache = try temporaryDirectory()
        let generator = try await Generator.load(bundle: root, cacheDirectory: cache)
        XCTAssertEqual(Set(generator.loadReport.compileSeconds.keys), Set(manifest.artifacts.keys), "first load compiles")

        let report = try generator.selfTest()
        XCTAssertTrue(report.passed, report.description)

        let generation = try generator.generate(classIndex: manifest.testVectors.trajectory.classID,
                                                seed: manifest.testVectors.trajectory.seed)
        XCTAssertEqual(generation.stepSeconds.count, manifest.sampler.steps)
        XCTAssertEqual([1, 3, generation.rgb.height, generation.rgb.width], manifest.image.shape)

        // Second load: served from the cache, nothing compiled.
        let again = try await Generator.load(bundle: root, cacheDirectory: cache)
        XCTAssertTrue(again.loadReport.compileSeconds.isEmpty)
    }

    /// The progress callback sees every step and can stop the run.
    func testCoreMLProgressCanCancel() async throws {
        let root = try TestBundle.root()
        let manifest = try Manifest.load(from: root, verify: false)
        try XCTSkipIf(manifest.target != "coreml" || manifest.sampler.graph != "step" || manifest.sampler.steps < 2)
        let generator = try await Generator.load(bundle: root, cacheDirectory: try temporaryDirectory())
        var seen: [Int] = []
        XCTAssertThrowsError(try generator.generate(classIndex: 0, seed: 1, steps: manifest.sampler.steps) { progress in
            seen.append(progress.step)
            return progress.step < 1
        }) { error in
            XCTAssertTrue(error is CancellationError)
        }
        XCTAssertEqual(seen, [0, 1])
    }
    #endif
}
