import Foundation

/// Reads the bundle's test vectors: NumPy `.npy` files (format 1.0, 2.0 or 3.0) holding
/// little-endian float32, int32 or int64 arrays in C order, as `np.save` writes them in
/// `export/bundle.py:save_array`. Anything else is a one-line error naming the file.
public enum NpyReader {
    public static func read(_ url: URL) throws -> Tensor {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw LRFError("test vector \(url.lastPathComponent) is missing or unreadable; re-export or re-copy the bundle")
        }
        return try parse(data, name: url.lastPathComponent)
    }

    public static func parse(_ data: Data, name: String = "array") throws -> Tensor {
        let bytes = [UInt8](data)
        func bad(_ why: String) -> LRFError {
            LRFError("\(name) is not a readable test vector (\(why)); re-export the bundle")
        }
        let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw bad("no .npy header")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | (Int(bytes[9]) << 8)
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw bad("truncated header") }
            headerLength = Int(le32(bytes, 8))
            headerStart = 12
        default:
            throw bad("unknown .npy version \(major)")
        }
        guard bytes.count >= headerStart + headerLength,
              let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: .utf8) else {
            throw bad("truncated header")
        }

        // The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
        guard let descrValue = value(of: "descr", in: header), descrValue.first == "'" else {
            throw bad("no dtype")
        }
        let descrBody = descrValue.dropFirst()
        guard let descrEnd = descrBody.firstIndex(of: "'") else { throw bad("no dtype") }
        let descr = String(descrBody[..<descrEnd])
        let dtype: Tensor.DType
        switch descr {
        case "<f4": dtype = .float32
        case "<i4": dtype = .int32
        case "<i8": dtype = .int64
        default:
            throw bad("unsupported dtype \(descr); expected little-endian float32, int32 or int64")
        }
        if let fortran = value(of: "fortran_order", in: header), fortran.hasPrefix("True") {
            throw bad("Fortran order")
        }
        guard let shapeValue = value(of: "shape", in: header), shapeValue.first == "(",
              let shapeEnd = shapeValue.firstIndex(of: ")") else {
            throw bad("no shape")
        }
        var shape: [Int] = []
        for part in shapeValue[shapeValue.index(after: shapeValue.startIndex)..<shapeEnd].split(separator: ",") {
            let text = part.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            guard let dim = Int(text), dim >= 0 else { throw bad("bad shape \(shapeValue[...shapeEnd])") }
            shape.append(dim)
        }

        let count = shape.reduce(1, *)
        let itemSize = dtype == .int64 ? 8 : 4
        let start = headerStart + headerLength
        guard bytes.count >= start + count * itemSize else {
            throw bad("truncated data: \(bytes.count - start) bytes for \(count) values")
        }
        switch dtype {
        case .float32:
            var values = [Float](repeating: 0, count: count)
            for i in 0..<count {
                values[i] = Float(bitPattern: le32(bytes, start + 4 * i))
            }
            return Tensor(shape: shape, floats: values)
        case .int32:
            var values = [Int32](repeating: 0, count: count)
            for i in 0..<count {
                values[i] = Int32(bitPattern: le32(bytes, start + 4 * i))
            }
            return Tensor(shape: shape, int32: values)
        case .int64:
            var values = [Int64](repeating: 0, count: count)
            for i in 0..<count {
                values[i] = Int64(bitPattern: le64(bytes, start + 8 * i))
            }
            return Tensor(shape: shape, int64: values)
        }
    }

    /// The text after `'key':` in the header dict, leading spaces dropped.
    static func value(of key: String, in header: String) -> Substring? {
        guard let keyRange = header.range(of: "'\(key)'") else { return nil }
        let afterKey = header[keyRange.upperBound...].drop(while: { $0 == " " })
        guard afterKey.first == ":" else { return nil }
        return afterKey.dropFirst().drop(while: { $0 == " " })
    }

    static func le32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        var value: UInt32 = 0
        for k in 0..<4 {
            value |= UInt32(bytes[offset + k]) << UInt32(8 * k)
        }
        return value
    }

    static func le64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for k in 0..<8 {
            value |= UInt64(bytes[offset + k]) << UInt64(8 * k)
        }
        return value
    }
}
