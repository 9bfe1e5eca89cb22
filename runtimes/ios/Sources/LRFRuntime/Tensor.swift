import Foundation

/// A dense C-order tensor of one of the manifest's dtypes: the plan's state, what a graph takes
/// and gives, what a check compares (the Swift counterpart of `lrf::Tensor` in
/// runtimes/native). Storage is typed rather than raw bytes, so Core ML and the metrics read
/// values without reinterpreting memory.
public struct Tensor: Equatable, Sendable {
    /// The manifest's dtypes (`$defs/dtype` in export/schema/manifest.schema.json).
    public enum DType: String, Decodable, Sendable {
        case float32, int32, uint8

        /// Bytes per element in a bundle's raw tensor file.
        public var itemSize: Int { self == .uint8 ? 1 : 4 }
    }

    public enum Storage: Equatable, Sendable {
        case float32([Float])
        case int32([Int32])
        case uint8([UInt8])
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

    public init(shape: [Int], uint8: [UInt8]) {
        self.init(shape: shape, storage: .uint8(uint8))
    }

    public var dtype: DType {
        switch storage {
        case .float32: return .float32
        case .int32: return .int32
        case .uint8: return .uint8
        }
    }

    /// Number of elements stored.
    public var count: Int {
        switch storage {
        case .float32(let v): return v.count
        case .int32(let v): return v.count
        case .uint8(let v): return v.count
        }
    }

    /// Element `i` as a Double, whatever the dtype: the metrics compare in Double.
    public func element(_ i: Int) -> Double {
        switch storage {
        case .float32(let v): return Double(v[i])
        case .int32(let v): return Double(v[i])
        case .uint8(let v): return Double(v[i])
        }
    }

    /// False when a float tensor holds NaN or Inf; integer tensors are always finite.
    public var isFinite: Bool {
        guard case .float32(let values) = storage else { return true }
        return values.allSatisfy { $0.isFinite }
    }

    /// The values of a float32 tensor.
    public func floatValues() throws -> [Float] {
        guard case .float32(let values) = storage else {
            throw LRFError("expected a float32 tensor, got \(dtype.rawValue); re-export the bundle")
        }
        return values
    }

    /// `values` as a `dtype` tensor, the way `np.asarray(values, dtype)` casts a feed: floats
    /// round to nearest, integers truncate toward zero. A value an integer dtype cannot hold
    /// (NaN, Inf, out of range) is an error rather than a wrapped number.
    public static func cast(_ values: [Double], to dtype: DType, shape: [Int]) throws -> Tensor {
        switch dtype {
        case .float32:
            return Tensor(shape: shape, floats: values.map { Float($0) })
        case .int32:
            return try Tensor(shape: shape, int32: values.map { try Int32(integer($0, in: -2_147_483_648...2_147_483_647, dtype)) })
        case .uint8:
            return try Tensor(shape: shape, uint8: values.map { try UInt8(integer($0, in: 0...255, dtype)) })
        }
    }

    /// `value` cast to `dtype` and repeated over `shape`: a scalar feed (a plan input, t or dt)
    /// filled to whatever shape the graph declares for it.
    public static func filled(_ dtype: DType, shape: [Int], value: Double) throws -> Tensor {
        try cast(Array(repeating: value, count: shape.reduce(1, *)), to: dtype, shape: shape)
    }

    /// The same values as `target` (uint8 reference pixels fed to a Core ML graph that takes int32).
    public func converted(to target: DType) throws -> Tensor {
        try target == dtype ? self : Self.cast((0..<count).map { element($0) }, to: target, shape: shape)
    }

    /// The parts' values one after another, flat: the states after each loop iteration, as a
    /// `states` check concatenates them. The parts must share a dtype.
    public static func concatenated(_ parts: [Tensor]) throws -> Tensor {
        let dtype = parts.first?.dtype ?? .float32
        guard parts.allSatisfy({ $0.dtype == dtype }) else {
            throw LRFError("the plan's states mix dtypes (\(parts.map { $0.dtype.rawValue })); re-export the bundle")
        }
        let values = parts.flatMap { part in (0..<part.count).map { part.element($0) } }
        return try cast(values, to: dtype, shape: [values.count])
    }

    private static func integer(_ value: Double, in range: ClosedRange<Double>, _ dtype: DType) throws -> Double {
        let truncated = value.rounded(.towardZero)
        guard truncated.isFinite, range.contains(truncated) else {
            throw LRFError("the value \(value) does not fit a graph input declared \(dtype.rawValue); pass a value in range")
        }
        return truncated
    }
}
