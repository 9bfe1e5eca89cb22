#if canImport(CoreML)
import CoreML
import Foundation

/// One Core ML artifact as an `ArtifactRunner`: the Swift counterpart of the macOS runner in
/// `export/targets/coreml.py`. Feeds arrive of the declared dtypes and shapes; outputs are read
/// by the manifest's names as the declared dtype (float32 states, int32 pixels: Core ML
/// multiarrays have no uint8).
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
            features[spec.name] = try MLFeatureValue(multiArray: Self.multiArray(tensor, as: spec, kind: kind))
        }
        let result: MLFeatureProvider
        do {
            result = try model.prediction(from: MLDictionaryFeatureProvider(dictionary: features))
        } catch {
            let gist = error.localizedDescription.split(separator: "\n").first.map { String($0) } ?? "\(error)"
            throw LRFError("the \(kind) artifact failed on Core ML (\(gist)); the bundle is damaged or inconsistent, re-export it")
        }
        var out: [String: Tensor] = [:]
        for spec in outputs {
            guard let array = result.featureValue(for: spec.name)?.multiArrayValue else {
                throw LRFError("\(kind): the Core ML model returned no '\(spec.name)' array; re-export the bundle")
            }
            out[spec.name] = try Self.tensor(array, as: spec, kind: kind)
        }
        return out
    }

    /// The tensor as an MLMultiArray of the declared shape.
    static func multiArray(_ tensor: Tensor, as spec: TensorSpec, kind: String) throws -> MLMultiArray {
        guard tensor.count == spec.count else {
            throw LRFError("\(kind): input '\(spec.name)' has \(tensor.count) values, the manifest declares \(spec.shape)")
        }
        switch tensor.storage {
        case .float32(let values):
            return MLMultiArray(MLShapedArray<Float>(scalars: values, shape: spec.shape))
        case .int32(let values):
            return MLMultiArray(MLShapedArray<Int32>(scalars: values, shape: spec.shape))
        case .uint8:
            throw LRFError("\(kind): input '\(spec.name)' is uint8, which Core ML does not take (pixels are int32 on Core ML); "
                           + "re-export the bundle with this lrf-export")
        }
    }

    /// Any MLMultiArray (float16 included, any strides) as a C-order tensor of the declared
    /// dtype and shape.
    static func tensor(_ array: MLMultiArray, as spec: TensorSpec, kind: String) throws -> Tensor {
        let storage: Tensor.Storage
        switch spec.dtype {
        case .float32:
            storage = .float32(MLShapedArray<Float>(converting: array).scalars)
        case .int32:
            storage = .int32(MLShapedArray<Int32>(converting: array).scalars)
        case .uint8:
            throw LRFError("\(kind): output '\(spec.name)' is declared uint8, which Core ML cannot return; re-export the bundle")
        }
        let tensor = Tensor(shape: spec.shape, storage: storage)
        guard tensor.count == spec.count else {
            throw LRFError("\(kind): output '\(spec.name)' has \(tensor.count) values, the manifest declares \(spec.shape); "
                           + "re-export the bundle")
        }
        return tensor
    }
}
#endif
