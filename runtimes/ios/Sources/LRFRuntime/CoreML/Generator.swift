#if canImport(CoreML)
import CoreML
import Foundation

/// After each loop iteration: which, how long its Core ML call took, memory, and the state.
public struct StepProgress: Sendable {
    /// 0-based iteration index (the Python callback's `i`).
    public let step: Int
    /// Number of iterations in this run.
    public let total: Int
    /// Seconds of this iteration's graph call alone.
    public let seconds: Double
    public let memory: MemorySnapshot
    /// The plan's state after this iteration, by name.
    public let state: BundleRuntime.State

    /// Fraction done, for a progress bar.
    public var fraction: Double { Double(step + 1) / Double(Swift.max(total, 1)) }
}

/// One generated image and what it cost.
public struct Generation: Sendable {
    /// The plan's input values it was made with, defaults filled in.
    public let values: BundleRuntime.Values
    /// The class it shows, when the plan takes one.
    public let className: String?
    /// The seed and the step count, when the plan takes them.
    public let seed: Int?
    public let steps: Int?
    /// Loop iterations run.
    public let iterations: Int
    /// The plan's output as the end graph returned it: (1, H, W, 3) pixels (int32 on Core ML).
    public let pixels: Tensor
    /// The same pixels as an image.
    public let rgb: RGBImage
    /// Seconds of each loop iteration's graph call (`lrf-run`'s "per-step ms").
    public let stepSeconds: [Double]
    public let decodeSeconds: Double
    /// Memory after decoding.
    public let memory: MemorySnapshot
}

/// Where the models of an opened bundle came from.
public struct LoadReport: Sendable {
    /// Artifact kind -> seconds spent compiling it (absent when the cache had it).
    public let compileSeconds: [String: Double]
    /// Total seconds for verify + compile + load.
    public let seconds: Double
    public let cacheDirectory: URL
}

/// A Core ML bundle opened on this device: verified manifest, compiled models, and the one
/// plan executor (`BundleRuntime`, the mirror of `export/run.py`). Generation is synchronous
/// and blocking: call it off the main thread (see App/AppModel.swift).
public final class Generator: @unchecked Sendable {
    public let runtime: BundleRuntime
    public let loadReport: LoadReport

    public var manifest: Manifest { runtime.manifest }

    init(runtime: BundleRuntime, loadReport: LoadReport) {
        self.runtime = runtime
        self.loadReport = loadReport
    }

    /// Verify the bundle at `root` (schema and every sha256), compile each `.mlpackage` once
    /// (cached in Application Support by content digest) and load every artifact.
    public static func load(bundle root: URL, verify: Bool = true, computeUnits: MLComputeUnits = .all,
                            cacheDirectory: URL? = nil,
                            status: (@Sendable (String) -> Void)? = nil) async throws -> Generator {
        let started = BundleRuntime.seconds()
        status?("verifying \(root.lastPathComponent)")
        let manifest = try Manifest.load(from: root, verify: verify)
        guard manifest.target == "coreml" else {
            throw LRFError("this is a \(manifest.target) bundle; the iOS runtime runs Core ML bundles: "
                           + "export one with lrf-export --target coreml")
        }
        let cache = try cacheDirectory ?? CompiledModelCache.defaultDirectory()
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits
        var runners: [String: any ArtifactRunner] = [:]
        var compileSeconds: [String: Double] = [:]
        for kind in manifest.artifacts.keys.sorted() {
            guard let artifact = manifest.artifacts[kind] else { continue }
            let key = try manifest.artifactDigest(kind)
            let source = root.appendingPathComponent(artifact.file)
            status?("preparing \(artifact.file)")
            let t0 = BundleRuntime.seconds()
            var (url, compiled) = try await CompiledModelCache.compiledModel(source: source, key: key, in: cache)
            let model: MLModel
            do {
                model = try MLModel(contentsOf: url, configuration: configuration)
            } catch {
                // A cached model that no longer loads (e.g. after an OS update): compile it again, once.
                guard !compiled else { throw error }
                CompiledModelCache.remove(key: key, in: cache)
                (url, compiled) = try await CompiledModelCache.compiledModel(source: source, key: key, in: cache)
                model = try MLModel(contentsOf: url, configuration: configuration)
            }
            if compiled {
                compileSeconds[kind] = BundleRuntime.seconds() - t0
            }
            runners[kind] = CoreMLRunner(kind: kind, model: model, inputs: artifact.inputs, outputs: artifact.outputs)
        }
        let runtime = BundleRuntime(root: root, manifest: manifest, runners: runners)
        let report = LoadReport(compileSeconds: compileSeconds, seconds: BundleRuntime.seconds() - started,
                                cacheDirectory: cache)
        return Generator(runtime: runtime, loadReport: report)
    }

    /// One image: the plan's inputs from `request` (defaults for the rest), its loop, its end
    /// (`lrf-run`).
    ///
    /// `progress` runs after every iteration on the calling thread; return false (or throw
    /// `CancellationError`) to stop, and this throws `CancellationError`. Cancelling the
    /// surrounding `Task` stops it too.
    public func generate(_ request: BundleRuntime.Request = .init(),
                         progress: ((StepProgress) throws -> Bool)? = nil) throws -> Generation {
        let values = try runtime.inputs(request)
        let total = try runtime.iterations(values)
        var stepSeconds: [Double] = []
        let finalState = try runtime.iterate(values) { i, state, seconds in
            stepSeconds.append(seconds)
            try Task.checkCancellation()
            if let progress {
                let keepGoing = try progress(StepProgress(step: i, total: total, seconds: seconds,
                                                          memory: Memory.snapshot(), state: state))
                if !keepGoing {
                    throw CancellationError()
                }
            }
        }
        let t0 = BundleRuntime.seconds()
        let pixels = try runtime.finish(finalState, values: values)  // refuses a NaN/Inf state, as lrf-run
        let decodeSeconds = BundleRuntime.seconds() - t0
        let rgb = try RGBImage(pixels: pixels)
        return Generation(values: values, className: runtime.className(values),
                          seed: runtime.value(of: .seed, in: values).flatMap { Int(exactly: $0) },
                          steps: runtime.value(of: .steps, in: values).flatMap { Int(exactly: $0) },
                          iterations: total, pixels: pixels, rgb: rgb, stepSeconds: stepSeconds,
                          decodeSeconds: decodeSeconds, memory: Memory.snapshot())
    }

    /// The manifest's checks on this device (`SelfTest.run`); `report.table` is the table
    /// every runtime prints.
    public func selfTest(status: ((String) -> Void)? = nil) throws -> SelfTestReport {
        try SelfTest.run(runtime, status: status)
    }
}
#endif
