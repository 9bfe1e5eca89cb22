#if canImport(CoreML)
import CoreML
import Foundation

/// One Core ML artifact as an `ArtifactRunner`: the Swift counterpart of the macOS runner in
/// `export/targets/coreml.py` (feeds ordered as the manifest's inputs and cast to their declared
/// dtypes, `cast_feeds`; outputs read by the manifest's names as float32).
public final class CoreMLRunner: ArtifactRunner {
    public let kind: String
    public let model: MLModel
    public let inputs: [TensorSpec]
    public let outputs: [TensorSpec]

    public init(kind: String, model: MLModel, inputs: [TensorSpec], outputs: [TensorSpec]) {
        self.kind = kind
        self.model = model
        self.inputs = inputs
        self.outputs = outputs
    }

    public func run(_ feeds: [String: Tensor]) throws -> [String: Tensor] {
        var features: [String: MLFeatureValue] = [:]
        for spec in inputs {
            guard let tensor = feeds[spec.name] else {
                throw LRFError("\(kind): no value for input '\(spec.name)'; the manifest and the runtime disagree, re-export the bundle")
            }
            let array = try Self.multiArray(tensor, as: spec, kind: kind)
            features[spec.name] = MLFeatureValue(multiArray: array)
        }
        let provider = try MLDictionaryFeatureProvider(dictionary: features)
        let result = try model.prediction(from: provider)
        var out: [String: Tensor] = [:]
        for spec in outputs {
            guard let array = result.featureValue(for: spec.name)?.multiArrayValue else {
                throw LRFError("\(kind): the Core ML model returned no '\(spec.name)' array; re-export the bundle")
            }
            out[spec.name] = Self.tensor(array)
        }
        return out
    }

    /// `np.ascontiguousarray(feed, dtype=declared)` as an MLMultiArray of the declared shape.
    static func multiArray(_ tensor: Tensor, as spec: TensorSpec, kind: String) throws -> MLMultiArray {
        guard tensor.storedCount == spec.count else {
            throw LRFError("\(kind): input '\(spec.name)' has \(tensor.storedCount) values, the manifest declares \(spec.shape)")
        }
        switch spec.dtype {
        case "float32":
            let values = try tensor.converted(to: .float32).floatValues()
            return MLMultiArray(MLShapedArray<Float>(scalars: values, shape: spec.shape))
        case "int32":
            guard case .int32(let values) = try tensor.converted(to: .int32).storage else {
                throw LRFError("\(kind): input '\(spec.name)' could not be cast to int32")
            }
            return MLMultiArray(MLShapedArray<Int32>(scalars: values, shape: spec.shape))
        default:
            throw LRFError("\(kind): input '\(spec.name)' is declared \(spec.dtype), which Core ML does not take "
                           + "(class_id is int32 on Core ML); re-export the bundle with this lrf-export")
        }
    }

    /// Any MLMultiArray (float32 or float16, any strides) as a C-order float32 tensor,
    /// `np.asarray(result[name], dtype=np.float32)`.
    static func tensor(_ array: MLMultiArray) -> Tensor {
        let shaped = MLShapedArray<Float>(converting: array)
        return Tensor(shape: shaped.shape, floats: shaped.scalars)
    }
}
#endif
