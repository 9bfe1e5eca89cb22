import Dispatch
import Foundation

/// One executable artifact: named feeds in, named outputs out
/// (`export/targets/base.py:Runner`). `CoreMLRunner` is the Core ML one; tests use fakes.
public protocol ArtifactRunner {
    func run(_ feeds: [String: Tensor]) throws -> [String: Tensor]
}

/// A verified bundle with a runner per artifact: the Swift mirror of `export/run.py:BundleRuntime`,
/// THE sampler loop. Schedule from the manifest, noise from `PortableNoise`, the guided step
/// graph called N times with latent/t/dt/class_id/cfg, then the decoder. No sampler arithmetic
/// lives anywhere else in Swift (the app calls `Generator`, which calls this).
public final class BundleRuntime {
    public let root: URL
    public let manifest: Manifest
    public let runners: [String: any ArtifactRunner]

    public init(root: URL, manifest: Manifest, runners: [String: any ArtifactRunner]) {
        self.root = root
        self.manifest = manifest
        self.runners = runners
    }

    /// Whether every artifact has a runner (`BundleRuntime.executable`).
    public var executable: Bool {
        manifest.artifacts.keys.allSatisfy { runners[$0] != nil }
    }

    public var sampler: Manifest.Sampler { manifest.sampler }

    /// `lrf_model/classes.py:class_index`: a class name ("cat") or index ("3").
    public func classIndex(_ nameOrIndex: String) throws -> Int {
        let names = manifest.classNames
        let key = nameOrIndex.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        if let index = names.firstIndex(of: key) {
            return index
        }
        if !key.isEmpty, key.allSatisfy({ $0.isASCII && $0.isNumber }), let index = Int(key), index < names.count {
            return index
        }
        throw LRFError("unknown class '\(nameOrIndex)'; use one of \(names.joined(separator: ", ")) or an index 0-\(names.count - 1)")
    }

    /// `BundleRuntime._require`.
    public func require(_ kind: String) throws -> any ArtifactRunner {
        guard let runner = runners[kind] else {
            throw LRFError("this host cannot execute the \(manifest.target) \(kind) artifact (Core ML runs on macOS/iOS only)")
        }
        return runner
    }

    /// `BundleRuntime.schedule`: the manifest's schedule for `steps` (default: the bundle's own).
    public func schedule(steps: Int? = nil) throws -> [Double] {
        let s = sampler
        guard let steps, steps != s.steps else {
            return s.schedule
        }
        guard let ts = s.schedules[String(steps)] else {
            let offered = s.offeredSteps.map { String($0) }.joined(separator: ", ")
            throw LRFError("this bundle offers steps \(offered), not \(steps); pick one of those or re-export with --steps")
        }
        return ts
    }

    /// `BundleRuntime.noise`: `noise_array(seed, latent.shape[1:])[None]`.
    public func noise(seed: Int) -> Tensor {
        let shape = Array(manifest.latent.shape.dropFirst())
        return Tensor(shape: [1] + shape, floats: PortableNoise.noiseArray(seed: seed, shape: shape))
    }

    /// `BundleRuntime.denoise`: the final latent from `noise`; `callback(i, latent, seconds)`
    /// after each step (seconds: that step's graph call only). A throwing callback stops the loop.
    public func denoise(_ noise: Tensor, classID: Int, steps: Int? = nil,
                        callback: ((Int, Tensor, Double) throws -> Void)? = nil) throws -> Tensor {
        let s = sampler
        let ts = try schedule(steps: steps)
        let cfg = s.cfg
        guard ts.count >= 2 else {
            throw LRFError("the manifest's schedule \(ts) has fewer than 2 time points; re-export the bundle")
        }
        let cls = Tensor(shape: [1], int64: [Int64(classID)])                    // np.array([class_id], np.int64)
        if s.graph == "fused" {
            let t0 = Self.seconds()
            let z = try Self.output(require("fused").run(["noise": noise, "class_id": cls]), "latent", of: "fused")
            if let callback {
                try callback(ts.count - 2, z, Self.seconds() - t0)
            }
            return z
        }
        let step = try require("step")
        var z = noise
        for i in 0..<(ts.count - 1) {
            let t0 = Self.seconds()
            z = try Self.output(step.run([
                "latent": z,
                "t": Tensor(shape: [1], floats: [Float(ts[i])]),                   // np.array([ts[i]], np.float32)
                "dt": Tensor(shape: [1], floats: [Float(ts[i] - ts[i + 1])]),      // np.array([ts[i] - ts[i + 1]], np.float32)
                "class_id": cls,
                "cfg": Tensor(shape: [1], floats: [Float(cfg)]),                   // np.array([cfg], np.float32)
            ]), "next_latent", of: "step")
            if let callback {
                try callback(i, z, Self.seconds() - t0)
            }
        }
        return z
    }

    /// `BundleRuntime.decode`: model-space latent -> image in [-1, 1], shape (1, 3, H, W).
    public func decode(_ latent: Tensor) throws -> Tensor {
        try Self.output(require("decoder").run(["latent": latent]), "image", of: "decoder")
    }

    /// `BundleRuntime.encode`: image in [-1, 1] -> model-space latent.
    public func encode(_ image: Tensor) throws -> Tensor {
        try Self.output(require("encoder").run(["image": image]), "latent", of: "encoder")
    }

    static func output(_ outputs: [String: Tensor], _ name: String, of kind: String) throws -> Tensor {
        guard let tensor = outputs[name] else {
            throw LRFError("the \(kind) artifact returned no '\(name)' output; re-export the bundle")
        }
        return tensor
    }

    /// Monotonic seconds (`time.perf_counter`).
    static func seconds() -> Double {
        Double(DispatchTime.now().uptimeNanoseconds) / 1e9
    }
}

/// An 8-bit RGB image, row-major (H, W, 3).
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public let pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// `export/run.py:to_uint8`: (1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8,
    /// `round((clip(x, -1, 1) + 1) * 127.5)` in float32 with NumPy's round-half-to-even.
    /// Throws on NaN/Inf, as `lrf-run` does before converting.
    public init(image: Tensor) throws {
        let values = try image.floatValues()
        guard image.shape.count == 4, image.shape[0] == 1, image.shape[1] == 3 else {
            throw LRFError("the decoder returned shape \(image.shape), not (1, 3, H, W); re-export the bundle")
        }
        guard values.allSatisfy({ $0.isFinite }) else {
            throw LRFError("the bundle produced NaN/Inf; re-export it (its parity report should have failed)")
        }
        let height = image.shape[2], width = image.shape[3], plane = height * width
        var pixels = [UInt8](repeating: 0, count: plane * 3)
        for c in 0..<3 {
            for p in 0..<plane {
                let x = values[c * plane + p]
                let scaled: Float = (Swift.min(Swift.max(x, -1), 1) + 1) * 127.5
                pixels[p * 3 + c] = UInt8(scaled.rounded(.toNearestOrEven))
            }
        }
        self.init(width: width, height: height, pixels: pixels)
    }
}
