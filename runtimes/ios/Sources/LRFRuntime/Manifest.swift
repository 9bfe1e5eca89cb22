import Foundation

/// A named, static-shaped tensor of an artifact (`export/graphs.py:TensorSpec.as_dict`).
public struct TensorSpec: Decodable, Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let dtype: Tensor.DType

    public init(name: String, shape: [Int], dtype: Tensor.DType) {
        self.name = name
        self.shape = shape
        self.dtype = dtype
    }

    public var count: Int { shape.reduce(1, *) }
}

/// A bundle's `manifest.json`, whose one definition is export/schema/manifest.schema.json.
///
/// `Manifest.load(from:verify:)` does what `export/bundle.py:load_manifest` does, in the same
/// order and with the same messages: the manifest exists and parses, `schema_version` is this
/// runtime's, and (with `verify`) every file listed under `files` matches its sha256, files
/// inside the `.mlpackage` directories included. Then every name the plan uses is resolved
/// (as runtimes/native/src/manifest.cpp does), so that running it can only fail on numbers.
/// Nothing else reads a byte of a bundle before that.
public struct Manifest: Decodable, Sendable {
    /// `export/schema/manifest.schema.json` (tests/test_schema.py checks this copy).
    public static let schemaVersion = 4
    /// `export/bundle.py:MANIFEST`.
    public static let fileName = "manifest.json"

    public struct Model: Decodable, Sendable {
        public let name: String
    }

    public struct Sampler: Decodable, Sendable {
        /// The loop graph's kind ("step" or "fused"); the plan says how it runs.
        public let graph: String
        /// The bundle's own step count; `schedule` is its schedule.
        public let steps: Int
        public let schedule: [Double]
        /// `{"N": schedule(N)}` for every step count the bundle offers. Read, never computed.
        public let schedules: [String: [Double]]
        public let cfg: Double

        /// The offered step counts, ascending (the keys of `schedules`).
        public var offeredSteps: [Int] {
            schedules.keys.compactMap { Int($0) }.sorted()
        }
    }

    /// The plan's output: (1, H, W, 3) 8-bit RGB pixels, uint8, or int32 on Core ML.
    public struct ImageInfo: Decodable, Sendable {
        public let shape: [Int]
        public let dtype: Tensor.DType
        public let layout: String
        public let note: String?
    }

    public struct NoiseInfo: Decodable, Sendable {
        public let generator: String?
        public let seedSalt: UInt32?

        enum CodingKeys: String, CodingKey {
            case generator
            case seedSalt = "seed_salt"
        }
    }

    public struct Artifact: Decodable, Sendable {
        /// Path relative to the bundle root, e.g. "step.mlpackage" (a directory for Core ML).
        public let file: String
        public let inputs: [TensorSpec]
        public let outputs: [TensorSpec]
    }

    /// A reference tensor of the bundle: a raw little-endian C-order file (`RawTensor`).
    public struct TensorFile: Decodable, Sendable {
        public let file: String
        public let dtype: Tensor.DType
        public let shape: [Int]

        public var count: Int { shape.reduce(1, *) }
    }

    public let schemaVersion: Int
    public let model: Model
    public let classNames: [String]
    public let target: String
    public let precision: String
    public let sampler: Sampler
    public let image: ImageInfo
    public let noise: NoiseInfo?
    public let artifacts: [String: Artifact]
    /// How the graphs make an image; `BundleRuntime` executes it and nothing else.
    public let plan: Plan
    /// The reference tensors the `checks` compare against, by name.
    public let tensors: [String: TensorFile]
    /// The self-test as data (`SelfTest`).
    public let checks: [Check]
    /// sha256 (lowercase hex) of every bundle file but the manifest, by relative POSIX path.
    public let files: [String: String]

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case model
        case classNames = "class_names"
        case target, precision, sampler, image, noise, artifacts, plan, tensors, checks, files
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

    /// Parse manifest JSON: the schema version is checked before anything else is decoded, so a
    /// manifest of another schema gets the schema message rather than a decoding error.
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
        try manifest.validate { LRFError("\(path): \($0); re-export the bundle") }
        return manifest
    }

    /// What the schema promises and the plan executor relies on: files stay inside the bundle,
    /// shapes are ones an allocation can hold, the output is pixels, and every name the plan
    /// uses resolves. A manifest is input from outside, so this runs before anything uses it.
    func validate(_ fail: (String) -> LRFError) throws {
        var paths = Array(files.keys)
        paths += artifacts.values.map { $0.file }
        paths += tensors.values.map { $0.file }
        for rel in paths.sorted() where !Self.isInsideBundle(rel) {
            throw fail("it names a file outside the bundle (\(rel))")
        }
        var shapes: [(String, [Int])] = [("image", image.shape)]
        for (kind, artifact) in artifacts {
            for spec in artifact.inputs + artifact.outputs {
                shapes.append(("the \(kind) artifact's \(spec.name)", spec.shape))
            }
        }
        for (name, tensor) in tensors {
            shapes.append(("tensor \(name)", tensor.shape))
        }
        for (name, start) in plan.start {
            shapes.append(("the plan's start state \(name)", start.shape))
        }
        for (what, shape) in shapes where !Self.isPossible(shape) {
            throw fail("\(what) declares an impossible shape \(shape)")
        }
        let s = image.shape
        guard s.count == 4, s[0] == 1, s[3] == 3, s[1] <= 16384, s[2] <= 16384, image.dtype != .float32 else {
            throw fail("image is \(image.dtype.rawValue)\(s), not (1, H, W, 3) 8-bit pixels")
        }
        for (key, ts) in sampler.schedules {
            guard key.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(key), n >= 1, ts.count >= 2 else {
                throw fail("sampler.schedules has an entry '\(key)' that is not a step count with its time points")
            }
        }
        try plan.validate(artifacts: artifacts, fail)
    }

    /// The schema's relpath: relative, and no `..` component.
    static func isInsideBundle(_ rel: String) -> Bool {
        !rel.isEmpty && !rel.hasPrefix("/") && !rel.split(separator: "/", omittingEmptySubsequences: false).contains("..")
    }

    /// 1 to 8 dimensions of at least 1, at most 2^26 elements in all (as lrf-native).
    static func isPossible(_ shape: [Int]) -> Bool {
        guard (1...8).contains(shape.count) else { return false }
        var count = 1
        for d in shape {
            guard d >= 1, d <= 1 << 26 else { return false }
            count *= d  // both factors <= 2^26: no overflow
            guard count <= 1 << 26 else { return false }
        }
        return true
    }

    /// The schedule for `steps` (nil: the bundle's own); an error naming the offered ones otherwise.
    public func schedule(steps: Int? = nil) throws -> [Double] {
        guard let ts = sampler.schedules[String(steps ?? sampler.steps)] else {
            let offered = sampler.offeredSteps.map { String($0) }.joined(separator: ", ")
            throw LRFError("this bundle offers steps \(offered), not \(steps.map { String($0) } ?? "its own")"
                           + "; pick one of those or re-export with --steps")
        }
        return ts
    }

    /// `lrf_model/classes.py:class_index`: a class name ("cat", any case) or index ("3").
    public func classIndex(_ nameOrIndex: String) throws -> Int {
        let key = nameOrIndex.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        if let index = classNames.firstIndex(of: key) {
            return index
        }
        if !key.isEmpty, key.count < 9, key.allSatisfy({ $0.isASCII && $0.isNumber }), let index = Int(key), index < classNames.count {
            return index
        }
        throw LRFError("unknown class '\(nameOrIndex)'; use one of \(classNames.joined(separator: ", ")) "
                       + "or an index 0-\(classNames.count - 1)")
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

    /// A short, path-first description of a decoding error ("plan.loop.next: missing").
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
