import Foundation

/// A dense C-order array: the Swift stand-in for the NumPy arrays that `export/run.py` and
/// `export/parity.py` pass around (feeds and outputs keyed by the manifest's tensor names).
public struct Tensor: Equatable, Sendable {
    public enum DType: String, Sendable {
        case float32, int32, int64
    }

    public enum Storage: Equatable, Sendable {
        case float32([Float])
        case int32([Int32])
        case int64([Int64])
    }

    public let shape: [Int]
    public let storage: Storage

    public init(shape: [Int], storage: Storage) {
        self.shape = shape
        self.storage = storage
    }

    public init(shape: [Int], floats: [Float]) {
        self.init(shape: shape, storage: .float32(floats))
    }

    public init(shape: [Int], int32: [Int32]) {
        self.init(shape: shape, storage: .int32(int32))
    }

    public init(shape: [Int], int64: [Int64]) {
        self.init(shape: shape, storage: .int64(int64))
    }

    /// Number of elements the shape describes (1 for a scalar shape `[]`, as `np.prod(())`).
    public var count: Int { shape.reduce(1, *) }

    /// Number of elements actually stored.
    public var storedCount: Int {
        switch storage {
        case .float32(let v): return v.count
        case .int32(let v): return v.count
        case .int64(let v): return v.count
        }
    }

    public var dtype: DType {
        switch storage {
        case .float32: return .float32
        case .int32: return .int32
        case .int64: return .int64
        }
    }

    /// The values of a float32 tensor.
    public func floatValues() throws -> [Float] {
        guard case .float32(let values) = storage else {
            throw LRFError("expected a float32 tensor, got \(dtype.rawValue); re-export the bundle")
        }
        return values
    }

    /// The values of an integer tensor, widened to Int64.
    public func integerValues() throws -> [Int64] {
        switch storage {
        case .int32(let values): return values.map { Int64($0) }
        case .int64(let values): return values
        case .float32: throw LRFError("expected an integer tensor, got float32; re-export the bundle")
        }
    }

    /// `np.asarray(a, dtype=...)` as `export/targets/base.py:cast_feeds` uses it: integers to
    /// int32 wrap like NumPy's `astype`; floats are never cast to integers here.
    public func converted(to target: DType) throws -> Tensor {
        if target == dtype { return self }
        switch (storage, target) {
        case (.int32(let v), .float32): return Tensor(shape: shape, floats: v.map { Float($0) })
        case (.int64(let v), .float32): return Tensor(shape: shape, floats: v.map { Float($0) })
        case (.int64(let v), .int32): return Tensor(shape: shape, int32: v.map { Int32(truncatingIfNeeded: $0) })
        case (.int32(let v), .int64): return Tensor(shape: shape, int64: v.map { Int64($0) })
        default:
            throw LRFError("cannot cast a \(dtype.rawValue) tensor to \(target.rawValue); re-export the bundle")
        }
    }

    /// `a[i]` along the first axis (e.g. `trajectory_latents[0]`, shape `(1, C, S, S)`).
    public func slice(_ index: Int) throws -> Tensor {
        guard let first = shape.first, index >= 0, index < first else {
            throw LRFError("index \(index) is out of range for a tensor of shape \(shape); re-export the bundle")
        }
        let inner = Array(shape.dropFirst())
        let per = inner.reduce(1, *)
        let range = (index * per)..<((index + 1) * per)
        switch storage {
        case .float32(let v): return Tensor(shape: inner, floats: Array(v[range]))
        case .int32(let v): return Tensor(shape: inner, int32: Array(v[range]))
        case .int64(let v): return Tensor(shape: inner, int64: Array(v[range]))
        }
    }
}
