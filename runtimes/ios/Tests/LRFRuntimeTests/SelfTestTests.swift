import Foundation
import XCTest
@testable import LRFRuntime
#if canImport(CoreML)
import CoreML
#endif

/// Plays back a bundle's own reference tensors: the recorded outputs whose `key` input is
/// nearest the one fed. With it the self-test (tensors, checks, the plan, the metrics) runs on
/// a real bundle on any platform, Core ML or not.
final class ReplayRunner: ArtifactRunner {
    let key: String
    private var entries: [(input: Tensor, outputs: [String: Tensor])] = []

    init(key: String) {
        self.key = key
    }

    /// Outputs for `input`; recorded again for the same input (two checks of one graph on the
    /// same tensors, e.g. its two outputs), the outputs are merged.
    func record(_ input: Tensor, _ outputs: [String: Tensor]) {
        if let i = entries.firstIndex(where: { $0.input == input }) {
            entries[i].outputs.merge(outputs) { _, new in new }
        } else {
            entries.append((input: input, outputs: outputs))
        }
    }

    func run(_ feeds: [String: Tensor]) throws -> [String: Tensor] {
        guard let fed = feeds[key] else {
            throw LRFError("replay: no \(key) fed")
        }
        func distance(_ entry: (input: Tensor, outputs: [String: Tensor])) -> Double {
            let d = Parity.metric(.maxAbs, got: fed, ref: entry.input)
            return d.isNaN ? .infinity : d
        }
        guard let best = entries.min(by: { distance($0) < distance($1) }), distance(best) <= 1e-3 else {
            throw LRFError("replay: nothing recorded for this \(key)")
        }
        return best.outputs
    }
}

final class SelfTestTests: XCTestCase {
    // MARK: Python's metrics and table (fixtures)

    private struct MetricFixture: Decodable {
        struct Case: Decodable {
            let metric: Parity.Metric
            let gotDtype: Tensor.DType
            let got: [String]
            let refDtype: Tensor.DType
            let ref: [String]
            let value: String

            enum CodingKeys: String, CodingKey {
                case metric, got, ref, value
                case gotDtype = "got_dtype"
                case refDtype = "ref_dtype"
            }
        }

        let cases: [Case]
    }

    private struct TableFixture: Decodable {
        struct Row: Decodable {
            let name: String
            let metric: Parity.Metric
            let value: String
            let limit: String
        }

        let results: [Row]
        let table: String
    }

    private static func number(_ text: String) throws -> Double {
        try XCTUnwrap(Double(text), "\(text) is not a number")
    }

    func testMetricsMatchPython() throws {
        let fixture = try JSONDecoder().decode(MetricFixture.self, from: Fixtures.data("metrics.json"))
        XCTAssertFalse(fixture.cases.isEmpty)
        for item in fixture.cases {
            let got = try Tensor.cast(item.got.map(Self.number), to: item.gotDtype, shape: [item.got.count])
            let ref = try Tensor.cast(item.ref.map(Self.number), to: item.refDtype, shape: [item.ref.count])
            let value = Parity.metric(item.metric, got: got, ref: ref)
            let want = try Self.number(item.value)
            if want.isNaN {
                XCTAssertTrue(value.isNaN, "\(item.metric): \(value), Python nan")
            } else if want.isInfinite {
                XCTAssertEqual(value, want, "\(item.metric)")
            } else {
                XCTAssertEqual(value, want, accuracy: 1e-12 * Swift.max(abs(want), 1), "\(item.metric)")
            }
        }
    }

    func testSizeMismatchAndNaNNeverPass() {
        let value = Parity.metric(.rel, got: Tensor(shape: [2], floats: [1, 2]), ref: Tensor(shape: [1], floats: [1]))
        XCTAssertTrue(value.isNaN)
        XCTAssertFalse(Parity.passes(.rel, value: .nan, limit: 1))
        XCTAssertFalse(Parity.passes(.psnr, value: .nan, limit: 1))
        XCTAssertTrue(Parity.passes(.psnr, value: .infinity, limit: 40))
        XCTAssertTrue(Parity.passes(.maxAbs, value: 1e-6, limit: 1e-6), "at the limit passes")
        XCTAssertFalse(SelfTestReport(results: []).passed, "no checks is no proof")
    }

    func testTableMatchesPython() throws {
        let fixture = try JSONDecoder().decode(TableFixture.self, from: Fixtures.data("selftest_table.json"))
        let results = try fixture.results.map { row in
            try SelfTestReport.Result(name: row.name, metric: row.metric, value: Self.number(row.value), limit: Self.number(row.limit))
        }
        let report = SelfTestReport(results: results)
        XCTAssertEqual(report.table, fixture.table)
        XCTAssertEqual(report.description, fixture.table)
        XCTAssertFalse(report.passed)
    }

    // MARK: The synthetic bundle (no LRF_BUNDLE needed)

    private func syntheticRuntime(decoder: FakeDecoder = FakeDecoder()) throws -> BundleRuntime {
        let root = try SyntheticBundle.make()
        return BundleRuntime(root: root, manifest: try Manifest.load(from: root),
                             runners: ["step": FakeStep(), "decoder": decoder])
    }

    func testSyntheticChecksPass() throws {
        var stages: [String] = []
        let report = try SelfTest.run(syntheticRuntime()) { stages.append($0) }
        XCTAssertEqual(stages, ["noise", "step0", "trajectory", "image", "decoder"])
        XCTAssertTrue(report.passed, report.table)
        XCTAssertEqual(report.results.map { $0.value }, [0, 0, 0, .infinity, .infinity])
        let lines = report.table.split(separator: "\n")
        XCTAssertEqual(lines.count, report.results.count + 2)
        XCTAssertEqual(lines.first, "check        metric        value      limit  verdict")
        XCTAssertEqual(lines[1], "noise        max_abs   0.000e+00  1.000e-06  pass")
        XCTAssertEqual(lines.last, "self-test: PASS")
    }

    /// A decoder that is off by 20 levels fails both pixel checks, and the table says so.
    func testBadDecoderFailsThePixelChecks() throws {
        let decoder = FakeDecoder()
        decoder.offset = 20
        let report = try SelfTest.run(syntheticRuntime(decoder: decoder))
        XCTAssertFalse(report.passed)
        XCTAssertEqual(report.results.filter { !$0.passed }.map { $0.name }, ["image", "decoder"])
        XCTAssertEqual(report.results[3].value, 10 * log10(255.0 * 255.0 / 400), accuracy: 1e-9)
        XCTAssertTrue(report.table.contains("image        psnr          22.11      40.00  FAIL"), report.table)
        XCTAssertTrue(report.table.hasSuffix("self-test: FAIL"))
    }

    func testMissingTensorFileIsOneLine() throws {
        let root = try SyntheticBundle.make()
        let manifest = try Manifest.load(from: root)
        try FileManager.default.removeItem(at: root.appendingPathComponent("vectors/noise.bin"))
        let rt = BundleRuntime(root: root, manifest: manifest, runners: ["step": FakeStep(), "decoder": FakeDecoder()])
        assertThrows(["bundle tensor vectors/noise.bin is missing", "float32[1, 3, 2, 2] needs 48"]) { try SelfTest.run(rt) }
    }

    // MARK: The LRF_BUNDLE bundle

    /// Whether a check runs the plan on an image: the bundle holds no reference for the edit
    /// graph's outputs on that check's own inputs, so the replay leaves the edits to Core ML.
    private func edits(_ check: Manifest.Check) -> Bool {
        guard case .plan(let inputs, _) = check.kind else { return false }
        return inputs.values.contains { value in
            if case .tensor = value { return true }
            return false
        }
    }

    /// The runtime on replayed reference tensors: the graph checks' own, and the plain
    /// trajectories (noise, each state, the pixels) from the plan checks'. Every name comes from
    /// the plan; a call is recognised by its input fed from the state the loop sets.
    private func replayRuntime(_ root: URL) throws -> BundleRuntime {
        let manifest = try Manifest.load(from: root)
        let plan = manifest.plan
        try XCTSkipIf(plan.loop.next.count != 1, "the replay follows a plan whose loop sets one state")
        let (stateName, next) = try XCTUnwrap(plan.loop.next.first)
        let start = try XCTUnwrap(plan.start[stateName])
        guard case .noise(let seedInput) = start.source else {
            throw XCTSkip("the replay follows a state that starts from noise")
        }
        func stateInput(_ feeds: [String: Manifest.Plan.Feed]) -> String? {
            feeds.keys.sorted().first { feeds[$0] == .state(stateName) }
        }
        func tensor(_ name: String) throws -> Tensor {
            try RawTensor.read(try XCTUnwrap(manifest.tensors[name]), in: root)
        }
        var runners: [String: ReplayRunner] = [:]
        func runner(_ graph: String, key: String) -> ReplayRunner {
            if let existing = runners[graph] { return existing }
            let made = ReplayRunner(key: key)
            runners[graph] = made
            return made
        }
        let loopKey = try XCTUnwrap(stateInput(plan.loop.feeds))
        let endKey = try XCTUnwrap(stateInput(plan.end.feeds))
        for check in manifest.checks {
            guard case .graph(let graph, let feeds, let output) = check.kind else { continue }
            let key = graph == plan.loop.graph ? loopKey : graph == plan.end.graph ? endKey : feeds.keys.sorted()[0]
            let input = try tensor(XCTUnwrap(feeds[key]))
            let expected = try tensor(check.expected)
            runner(graph, key: key).record(input, [output: expected])
        }
        var finals: [[String: Manifest.Check.Value]: Tensor] = [:]
        for check in manifest.checks where !edits(check) {
            guard case .plan(let inputs, .states) = check.kind else { continue }
            var seed = plan.inputs.first { $0.name == seedInput }?.fallback ?? 0
            if case .number(let v)? = inputs[seedInput] {
                seed = v
            }
            var state = BundleRuntime.noise(seed: Int(seed), shape: start.shape)
            let states = try tensor(check.expected).floatValues()
            let per = start.shape.reduce(1, *)
            for i in 0..<(states.count / per) {
                let after = Tensor(shape: start.shape, floats: Array(states[(i * per)..<((i + 1) * per)]))
                runner(plan.loop.graph, key: loopKey).record(state, [next: after])
                state = after
            }
            finals[inputs] = state
        }
        for check in manifest.checks where !edits(check) {
            guard case .plan(let inputs, .output) = check.kind, let state = finals[inputs] else { continue }
            let pixels = try tensor(check.expected)
            runner(plan.end.graph, key: endKey).record(state, [plan.end.output: pixels])
        }
        return BundleRuntime(root: root, manifest: manifest, runners: runners.mapValues { $0 as any ArtifactRunner })
    }

    /// With exact reference outputs every check of the real bundle but the edits passes.
    func testRealBundleReplayPasses() throws {
        let rt = try replayRuntime(TestBundle.root())
        let checks = rt.manifest.checks.filter { !edits($0) }
        let report = SelfTestReport(results: try checks.map { try SelfTest.result(of: $0, rt) })
        XCTAssertGreaterThan(report.results.count, 0)
        XCTAssertTrue(report.passed, report.table)
    }

    #if canImport(CoreML)
    /// The whole thing on Core ML (macOS, or an iOS simulator/device running the test bundle):
    /// compile + cache, the bundle's checks, and one generation.
    func testCoreMLSelfTestPasses() async throws {
        let root = try TestBundle.root()
        let manifest = try Manifest.load(from: root, verify: false)
        try XCTSkipIf(manifest.target != "coreml", "LRF_BUNDLE is a \(manifest.target) bundle, not Core ML")
        let cache = try temporaryDirectory()
        let generator = try await Generator.load(bundle: root, cacheDirectory: cache)
        XCTAssertEqual(Set(generator.loadReport.compileSeconds.keys), Set(manifest.artifacts.keys), "first load compiles")

        let report = try generator.selfTest()
        print(report.table)
        XCTAssertTrue(report.passed, report.table)

        let generation = try generator.generate()
        XCTAssertEqual(generation.stepSeconds.count, generation.iterations)
        XCTAssertEqual(generation.pixels.dtype, manifest.image.dtype)
        XCTAssertEqual([1, generation.rgb.height, generation.rgb.width, 3], manifest.image.shape)

        // Second load: served from the cache, nothing compiled.
        let again = try await Generator.load(bundle: root, cacheDirectory: cache)
        XCTAssertTrue(again.loadReport.compileSeconds.isEmpty)
    }

    /// The progress callback sees every iteration and can stop the run.
    func testCoreMLProgressCanCancel() async throws {
        let root = try TestBundle.root()
        let manifest = try Manifest.load(from: root, verify: false)
        try XCTSkipIf(manifest.target != "coreml" || !manifest.plan.repeatsOverSchedule || manifest.sampler.steps < 2)
        let generator = try await Generator.load(bundle: root, cacheDirectory: try temporaryDirectory())
        var seen: [Int] = []
        XCTAssertThrowsError(try generator.generate(.init(seed: 1, steps: manifest.sampler.steps)) { progress in
            seen.append(progress.step)
            return progress.step < 1
        }) { error in
            XCTAssertTrue(error is CancellationError)
        }
        XCTAssertEqual(seen, [0, 1])
    }
    #endif
}
