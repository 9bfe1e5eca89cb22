#if canImport(CoreML)
import CoreML
import Foundation

/// After each step: which step, how long its Core ML call took, memory, and the latent.
public struct StepProgress: Sendable {
    /// 0-based step index (the Python callback's `i`).
    public let step: Int
    /// Number of steps in this run's schedule.
    public let total: Int
    /// Seconds of this step's graph call alone.
    public let seconds: Double
    public let memory: MemorySnapshot
    public let latent: Tensor

    /// Fraction done, for a progress bar.
    public var fraction: Double { Double(step + 1) / Double(Swift.max(total, 1)) }
}

/// One generated image and what it cost.
public struct Generation: Sendable {
    public let classIndex: Int
    public let className: String
    public let seed: Int
    public let steps: Int
    /// (1, 3, H, W) in [-1, 1], as the decoder returned it.
    public let image: Tensor
    /// `to_uint8(image)`.
    public let rgb: RGBImage
    /// Per-step seconds of the step graph call (`lrf-run`'s "per-step ms").
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
/// sampler loop (`BundleRuntime.denoise`, the mirror of `export/run.py`). Generation is
/// synchronous and blocking: call it off the main thread (see App/AppModel.swift).
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

    /// One image: `PortableNoise` for `seed`, the manifest's schedule for `steps` (nil: the
    /// bundle's own), the step graph per step, then the decoder (`lrf-run`).
    ///
    /// `progress` runs after every step on the calling thread; return false (or throw
    /// `CancellationError`) to stop, and this throws `CancellationError`. Cancelling the
    /// surrounding `Task` stops it too.
    public func generate(classIndex: Int, seed: Int, steps: Int? = nil,
                         progress: ((StepProgress) throws -> Bool)? = nil) throws -> Generation {
        let names = manifest.classNames
        guard names.indices.contains(classIndex) else {
            throw LRFError("unknown class \(classIndex); use an index 0-\(names.count - 1)")
        }
        let total = try runtime.schedule(steps: steps).count - 1
        var stepSeconds: [Double] = []
        let latent = try runtime.denoise(runtime.noise(seed: seed), classID: classIndex, steps: steps) { i, z, seconds in
            stepSeconds.append(seconds)
            try Task.checkCancellation()
            if let progress {
                let keepGoing = try progress(StepProgress(step: i, total: total, seconds: seconds,
                                                          memory: Memory.snapshot(), latent: z))
                if !keepGoing {
                    throw CancellationError()
                }
            }
        }
        let t0 = BundleRuntime.seconds()
        let image = try runtime.decode(latent)
        let decodeSeconds = BundleRuntime.seconds() - t0
        let rgb = try RGBImage(image: image)  // throws on NaN/Inf, as lrf-run
        return Generation(classIndex: classIndex, className: names[classIndex], seed: seed, steps: total,
                          image: image, rgb: rgb, stepSeconds: stepSeconds, decodeSeconds: decodeSeconds,
                          memory: Memory.snapshot())
    }

    /// The bundle's test vectors on this device (`SelfTest.run`).
    public func selfTest(status: ((String) -> Void)? = nil) throws -> SelfTestReport {
        try SelfTest.run(runtime, status: status)
    }
}
#endif
