import Foundation

/// The error measures of `export/parity.py`, so a device self-test gates exactly as the
/// export-time parity gate does.
public enum Parity {
    /// `parity.rel_error`: `max|got - ref| / max(max|ref|, 1e-8)`, in Double. NaN propagates.
    public static func relError(_ got: [Float], _ ref: [Float]) throws -> Double {
        let (maxDiff, maxRef) = try extremes(got, ref)
        return maxDiff / Swift.max(maxRef, 1e-8)
    }

    /// `max|got - ref|` (the reports' `max_abs`). NaN propagates.
    public static func maxAbs(_ got: [Float], _ ref: [Float]) throws -> Double {
        try extremes(got, ref).maxDiff
    }

    /// `parity.psnr`: PSNR of images in [-1, 1] (peak-to-peak 2); `got` is clipped first;
    /// infinity when identical, NaN when `got` holds NaN.
    public static func psnr(_ got: [Float], _ ref: [Float]) throws -> Double {
        try checkCounts(got, ref)
        var sum = 0.0
        for i in 0..<ref.count {
            let x = got[i]
            let clipped = x.isNaN ? x : Swift.min(Swift.max(x, -1), 1)
            let d = Double(clipped) - Double(ref[i])
            sum += d * d
        }
        let mse = sum / Double(Swift.max(ref.count, 1))
        return mse == 0 ? .infinity : 10 * log10(4.0 / mse)
    }

    private static func extremes(_ got: [Float], _ ref: [Float]) throws -> (maxDiff: Double, maxRef: Double) {
        try checkCounts(got, ref)
        var maxDiff = 0.0
        var maxRef = 0.0
        for i in 0..<ref.count {
            let d = abs(Double(got[i]) - Double(ref[i]))
            if d.isNaN || d > maxDiff {  // once NaN, `d > maxDiff` is false: NaN stays, as np.max
                maxDiff = d
            }
            maxRef = Swift.max(maxRef, abs(Double(ref[i])))
        }
        return (maxDiff, maxRef)
    }

    private static func checkCounts(_ got: [Float], _ ref: [Float]) throws {
        guard got.count == ref.count else {
            throw LRFError("a result has \(got.count) values where the test vector has \(ref.count); re-export the bundle")
        }
    }
}
