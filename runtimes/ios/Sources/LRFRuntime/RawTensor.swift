import Foundation

/// Reads a bundle's reference tensors: raw little-endian C-order files whose dtype and shape
/// the manifest's `tensors` declares (`export/bundle.py:load_tensor`). No header to parse, so
/// the one thing to check is the size: a file of any other length than numel * itemsize is a
/// one-line error naming it, with Python's wording.
public enum RawTensor {
    public static func read(_ spec: Manifest.TensorFile, in root: URL) throws -> Tensor {
        // Mapped, so even a huge wrong file costs nothing before its size is compared.
        guard let data = try? Data(contentsOf: root.appendingPathComponent(spec.file), options: .mappedIfSafe) else {
            throw sizeError(spec, "is missing")
        }
        return try decode(data, as: spec)
    }

    public static func decode(_ data: Data, as spec: Manifest.TensorFile) throws -> Tensor {
        guard data.count == spec.count * spec.dtype.itemSize else {
            throw sizeError(spec, "holds \(data.count) bytes")
        }
        let bytes = [UInt8](data)
        func word(_ i: Int) -> UInt32 {
            let o = 4 * i
            let low = UInt32(bytes[o]) | (UInt32(bytes[o + 1]) << 8)
            let high = (UInt32(bytes[o + 2]) << 16) | (UInt32(bytes[o + 3]) << 24)
            return low | high
        }
        switch spec.dtype {
        case .float32: return Tensor(shape: spec.shape, floats: (0..<spec.count).map { Float(bitPattern: word($0)) })
        case .int32: return Tensor(shape: spec.shape, int32: (0..<spec.count).map { Int32(bitPattern: word($0)) })
        case .uint8: return Tensor(shape: spec.shape, uint8: bytes)
        }
    }

    private static func sizeError(_ spec: Manifest.TensorFile, _ have: String) -> LRFError {
        LRFError("bundle tensor \(spec.file) \(have), its spec \(spec.dtype.rawValue)\(spec.shape) needs "
                 + "\(spec.count * spec.dtype.itemSize); re-export the bundle")
    }
}
