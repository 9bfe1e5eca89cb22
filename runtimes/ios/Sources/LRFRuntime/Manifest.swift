import Foundation

/// A named, static-shaped tensor of an artifact (`export/graphs.py:TensorSpec.as_dict`).
public struct TensorSpec: Codable, Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    /// NumPy dtype name: "float32" | "int32" | "int64" (class_id is int32 on Core ML).
    public let dtype: String

    public init(name: String, shape: [Int], dtype: String) {
        self.name = name
        self.shape = shape
        self.dtype = dtype
    }

    public var count: Int { shape.reduce(1, *) }
}

/// A bundle's `manifest.json` (written by `export/exporter.py` and `export/bundle.py`).
///
/// `Manifest.load(from:verify:)` does what `export/bundle.py:load_manifest` does, in the same
/// order and with the same messages: the manifest exists and parses, `schema_version` is 2, and
/// (with `verify`) every file listed under `files` exists and matches its sha256, files inside
/// the `.mlpackage` directories included. Nothing else reads a byte of a bundle before that.
public struct Manifest: Codable, Sendable {
    /// `export/schema/manifest.schema.json` (tests/test_schema.py checks this copy).
    public static let schemaVersion = 3
    /// `export/bundle.py:MANIFEST`.
    public static let fileName = "manifest.json"

    public struct Model: Codable, Sendable {
        public let name: String
    }

    public struct Sampler: Codable, Sendable {
        /// "step" (the runtime loops over the step graph) or "fused" (one graph for all steps).
        public let graph: String
        /// The bundle's own step count; `schedule` is its schedule.
        public let steps: Int
        public let schedule: [Double]
        /// `{"N": schedule(N)}` for every step count the bundle offers. Read, never computed.
        public let schedules: [String: [Double]]
        public let shift: Double?
        public let cfg: Double
        public let recursions: Int?
        public let solver: String?
        public let prediction: String?

        /// The offered step counts, ascending (the keys of `schedules`).
        public var offeredSteps: [Int] {
            schedules.keys.compactMap { Int($0) }.sorted()
        }
    }

    public struct Tolerance: Codable, Sendable {
        /// Per-step gate on `rel = max|got - ref| / max|ref|`.
        public let stepRel: Double
        /// Gate on the final image's PSNR (peak-to-peak 2), in dB.
        public let imagePSNR: Double

        enum CodingKeys: String, CodingKey {
            case stepRel = "step_rel"
            case imagePSNR = "image_psnr_db"
        }
    }

    public struct LatentInfo: Codable, Sendable {
        public let shape: [Int]
        public let scalingFactor: Double?
        public let shiftFactor: Double?

        enum CodingKeys: String, CodingKey {
            case shape
            case scalingFactor = "scaling_factor"
            case shiftFactor = "shift_factor"
        }
    }

    public struct ImageInfo: Codable, Sendable {
        public let shape: [Int]
        public let range: [Double]?
    }

    public struct NoiseInfo: Codable, Sendable {
        public let generator: String?
        public let seedSalt: UInt32?
        public let perImageSeed: Bool?

        enum CodingKeys: String, CodingKey {
            case generator
            case seedSalt = "seed_salt"
            case perImageSeed = "per_image_seed"
        }
    }

    public struct Artifact: Codable, Sendable {
        /// Path relative to the bundle root, e.g. "step.mlpackage" (a directory for Core ML).
        public let file: String
        public let target: String?
        public let precision: String?
        public let inputs: [TensorSpec]
        public let outputs: [TensorSpec]
    }

    /// The index of `test_vectors/*.npy` (`export/test_vectors.py:write`).
    public struct TestVectors: Codable, Sendable {
        public struct Trajectory: Codable, Sendable {
            public let seed: Int
            public let classID: Int
            /// (N+1, 1, C, S, S): index 0 is the noise, then the latent after every step.
            public let latents: String
            /// (1, 3, H, W): the decoded final latent.
            public let image: String

            enum CodingKeys: String, CodingKey {
                case seed
                case classID = "class_id"
                case latents
                case image
            }
        }

        public struct Encoder: Codable, Sendable {
            public let image: String
            public let latent: String
        }

        public let trajectory: Trajectory
        /// Single guided steps: input name (latent, t, dt, class_id, cfg) and "next_latent" -> file.
        public let steps: [[String: String]]
        public let encoder: Encoder?
    }

    public let schemaVersion: Int
    public let model: Model?
    public let classNames: [String]
    public let nullClass: Int?
    public let target: String
    public let precision: String
    public let sampler: Sampler
    public let tolerance: Tolerance
    public let latent: LatentInfo
    public let image: ImageInfo
    public let noise: NoiseInfo?
    public let artifacts: [String: Artifact]
    public let testVectors: TestVectors
    /// sha256 (lowercase hex) of every bundle file but the manifest, by relative POSIX path.
    public let files: [String: String]
    public let tools: [String: String]?

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case model
        case classNames = "class_names"
        case nullClass = "null_class"
        case target
        case precision
        case sampler
        case tolerance
        case latent
        case image
        case noise
        case artifacts
        case testVectors = "test_vectors"
        case files
        case tools
    }

    private struct SchemaProbe: Decodable {
        let schemaVersion: Int?

        enum CodingKeys: String, CodingKey {
            case schemaVersion = "schema_version"
        }
    }

    /// Read and verify `root/manifest.json` (`export/bundle.py:load_manifest`).
    public static func load(from root: URL, verify: Bool = true) throws -> Manifest {
        let path = root.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: path.path) else {
            throw LRFError("\(root.path) is not a bundle: \(fileName) is missing; export one with lrf-export")
        }
        let data: Data
        do {
            data = try Data(contentsOf: path)
        } catch {
            throw LRFError("\(path.path) cannot be read (\(error.localizedDescription)); re-copy the bundle")
        }
        let manifest = try parse(data, path: path.path)
        if verify {
            try manifest.verifyFiles(in: root)
        }
        return manifest
    }

    /// Parse manifest JSON: the schema is checked before anything else is decoded, so a manifest
    /// of another schema gets the schema message rather than a decoding error.
    public static func parse(_ data: Data, path: String = fileName) throws -> Manifest {
        let decoder = JSONDecoder()
        let probe: SchemaProbe
        do {
            probe = try decoder.decode(SchemaProbe.self, from: data)
        } catch {
            throw LRFError("\(path) is corrupt (\(describe(error))); re-export the bundle")
        }
        guard probe.schemaVersion == schemaVersion else {
            let found = probe.schemaVersion.map { "\($0)" } ?? "None"
            throw LRFError("\(path): schema version \(found) is not \(schemaVersion); re-export the bundle with this lrf-export")
        }
        let manifest: Manifest
        do {
            manifest = try decoder.decode(Manifest.self, from: data)
        } catch {
            throw LRFError("\(path) is corrupt (\(describe(error))); re-export the bundle")
        }
        if let salt = manifest.noise?.seedSalt, salt != PortableNoise.seedSalt {
            throw LRFError("\(path): the bundle's noise generator (seed_salt \(salt)) is not the one PortableNoise mirrors "
                           + "(\(PortableNoise.seedSalt)); update this runtime together with lrf_model/noise.py")
        }
        return manifest
    }

    /// Every file listed under `files` exists and matches its sha256 (the `verify` branch of
    /// `load_manifest`). Files inside `.mlpackage` directories are listed one by one.
    public func verifyFiles(in root: URL) throws {
        for (rel, digest) in files.sorted(by: { $0.key < $1.key }) {
            let url = root.appendingPathComponent(rel)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
                throw LRFError("bundle file \(rel) is missing from \(root.path); re-export or re-copy the bundle")
            }
            guard try FileDigest.sha256Hex(of: url) == digest.lowercased() else {
                throw LRFError("bundle file \(rel) does not match its sha256 in the manifest (tampered or truncated); "
                               + "re-export or re-copy the bundle")
            }
        }
    }

    /// A content key for one artifact: its own sha256 for a single file, or, for a directory
    /// such as `step.mlpackage`, the sha256 of the sorted "path digest" lines of every file in it.
    /// The compiled-model cache is keyed by it, so a changed artifact is never served stale.
    public func artifactDigest(_ kind: String) throws -> String {
        guard let artifact = artifacts[kind] else {
            throw LRFError("this bundle has no \(kind) artifact (it has \(artifacts.keys.sorted().joined(separator: ", "))); re-export it")
        }
        let prefix = artifact.file + "/"
        let entries = files
            .filter { $0.key == artifact.file || $0.key.hasPrefix(prefix) }
            .sorted { $0.key < $1.key }
        guard !entries.isEmpty else {
            throw LRFError("artifact \(artifact.file) has no sha256 in the manifest; re-export the bundle")
        }
        if entries.count == 1, entries[0].key == artifact.file {
            return entries[0].value.lowercased()
        }
        let lines = entries.map { "\($0.key) \($0.value.lowercased())\n" }.joined()
        return FileDigest.sha256Hex(of: Data(lines.utf8))
    }

    /// A short, path-first description of a decoding error ("sampler.cfg: missing").
    static func describe(_ error: Error) -> String {
        guard let error = error as? DecodingError else {
            return error.localizedDescription
        }
        func path(_ codingPath: [CodingKey]) -> String {
            let joined = codingPath.map { key in key.intValue.map { "[\($0)]" } ?? key.stringValue }.joined(separator: ".")
            return joined.isEmpty ? "top level" : joined
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])): missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return String(describing: error)
        }
    }
}
