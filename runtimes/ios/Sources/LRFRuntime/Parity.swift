import Foundation

/// The self-test's metrics, one implementation of each (`export/checks.py:metric`, lrf-native's
/// `lrf::metric`): every runtime computes them the same way over elements in Double, so their
/// verdicts on one bundle can be compared line by line.
public enum Parity {
    public enum Metric: String, Decodable, Sendable {
        /// max|got - ref| / max(max|ref|, 1e-8); passes at or below the limit.
        case rel
        /// max|got - ref|; passes at or below the limit.
        case maxAbs = "max_abs"
        /// 10 log10(255^2 / MSE) on 8-bit pixels, +inf when equal; passes at or above the limit.
        case psnr
    }

    /// `metric` of `got` against `ref`, element by element (shapes aside: a flat comparison).
    /// NaN when the element counts differ or any difference is NaN, so it never passes.
    public static func metric(_ metric: Metric, got: Tensor, ref: Tensor) -> Double {
        guard got.count == ref.count, ref.count > 0 else { return .nan }
        return Self.metric(metric, got: got, ref: ref, range: 0..<ref.count)
    }

    /// The metric iteration by iteration over tensors stacked along their first axis (a plan's
    /// states), the worst one (`export/checks.py:worst`): a late step's error is not hidden by
    /// the scale of the noise.
    public static func worstRow(_ metric: Metric, got: Tensor, ref: Tensor) -> Double {
        let rows = ref.shape.first ?? 0
        guard rows > 0, got.count == ref.count, ref.count % rows == 0 else { return .nan }
        let size = ref.count / rows
        var worst = metric == .psnr ? Double.infinity : 0
        for r in 0..<rows {
            let v = Self.metric(metric, got: got, ref: ref, range: (r * size)..<((r + 1) * size))
            if v.isNaN { return .nan }
            worst = metric == .psnr ? Swift.min(worst, v) : Swift.max(worst, v)
        }
        return worst
    }

    /// The metric over the elements in `range` of both tensors (same counts, checked by callers).
    static func metric(_ metric: Metric, got: Tensor, ref: Tensor, range: Range<Int>) -> Double {
        let n = range.count
        guard n > 0 else { return .nan }
        var maxDiff = 0.0
        var peak = 0.0
        var sum = 0.0
        for i in range {
            let r = ref.element(i)
            let d = abs(got.element(i) - r)
            if d.isNaN { return .nan }
            maxDiff = Swift.max(maxDiff, d)
            peak = Swift.max(peak, abs(r))
            sum += d * d
        }
        switch metric {
        case .maxAbs:
            return maxDiff
        case .rel:
            return maxDiff / Swift.max(peak, 1e-8)
        case .psnr:
            let mse = sum / Double(n)
            return mse == 0 ? .infinity : 10 * log10(255.0 * 255.0 / mse)
        }
    }

    /// `export/checks.py:passes`: NaN never passes.
    public static func passes(_ metric: Metric, value: Double, limit: Double) -> Bool {
        if value.isNaN { return false }
        return metric == .psnr ? value >= limit : value <= limit
    }
}
