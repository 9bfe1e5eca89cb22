import Dispatch
import Foundation

/// One executable artifact: named feeds in, named outputs out (`export/targets/base.py:Runner`).
/// `CoreMLRunner` is the Core ML one; tests use fakes. Feeds arrive already of the declared
/// dtypes and shapes (`BundleRuntime.run` sees to it).
public protocol ArtifactRunner {
    func run(_ feeds: [String: Tensor]) throws -> [String: Tensor]
}

/// A verified bundle with a runner per artifact, executing the manifest's plan: the Swift
/// mirror of `export/run.py:BundleRuntime` and of lrf-native's `BundleRuntime`. The start state
/// comes from `PortableNoise`, the loop graph runs once per schedule interval (or a fixed
/// count) with each feed taken from the state, a plan input or the schedule as the plan says,
/// then the end graph gives the pixels. It names no graph, input or output itself, so a new
/// plan needs no change here; the app calls `Generator`, which calls this.
public final class BundleRuntime {
    /// The plan's state by name, carried from one loop iteration to the next.
    public typealias State = [String: Tensor]
    /// The plan's input values by name: a class as its index, a seed, a step count, a number.
    public typealias Values = [String: Double]
    /// After each loop iteration: its index, the new state, the seconds of its graph call
    /// alone. Throwing (e.g. `CancellationError`) stops the loop with that error.
    public typealias StepCallback = (_ step: Int, _ state: State, _ seconds: Double) throws -> Void

    /// What a user gives; anything left out takes the plan's default.
    public struct Request: Sendable {
        /// The class input, by name or index ("cat", "3").
        public var className: String?
        public var seed: Int?
        /// One of the bundle's offered step counts.
        public var steps: Int?
        /// Inputs of kind "number", by name (e.g. a guidance scale); an unknown name is an error.
        public var numbers: [String: Double]

        public init(className: String? = nil, seed: Int? = nil, steps: Int? = nil, numbers: [String: Double] = [:]) {
            self.className = className
            self.seed = seed
            self.steps = steps
            self.numbers = numbers
        }
    }

    public let root: URL
    public let manifest: Manifest
    public let runners: [String: any ArtifactRunner]

    public init(root: URL, manifest: Manifest, runners: [String: any ArtifactRunner]) {
        self.root = root
        self.manifest = manifest
        self.runners = runners
    }

    public var plan: Manifest.Plan { manifest.plan }

    /// Whether every artifact has a runner.
    public var executable: Bool {
        manifest.artifacts.keys.allSatisfy { runners[$0] != nil }
    }

    /// `BundleRuntime._require`.
    public func require(_ graph: String) throws -> any ArtifactRunner {
        guard manifest.artifacts[graph] != nil else {
            throw LRFError("the plan runs a \(graph) graph the bundle does not hold; re-export the bundle")
        }
        guard let runner = runners[graph] else {
            throw LRFError("this host cannot execute the \(manifest.target) \(graph) artifact (Core ML runs on macOS/iOS only)")
        }
        return runner
    }

    /// Every output of artifact `graph` on `feeds` (by input name), each feed cast to the
    /// declared dtype and given the declared shape, as `np.asarray(feed, dtype).reshape(shape)`.
    public func run(_ graph: String, _ feeds: [String: Tensor]) throws -> [String: Tensor] {
        let runner = try require(graph)
        var prepared: [String: Tensor] = [:]
        for spec in manifest.artifacts[graph]?.inputs ?? [] {
            guard let tensor = feeds[spec.name] else {
                throw LRFError("the \(graph) artifact takes an input \(spec.name) that the plan does not feed; re-export the bundle")
            }
            guard tensor.count == spec.count else {
                throw LRFError("a feed of the \(graph) artifact does not fit its declared shape (\(spec.name) takes "
                               + "\(spec.dtype.rawValue)\(spec.shape), got \(tensor.count) values); pass a tensor of the manifest's shape")
            }
            prepared[spec.name] = try Tensor(shape: spec.shape, storage: tensor.converted(to: spec.dtype).storage)
        }
        return try runner.run(prepared)
    }

    /// The portable noise for `seed` of `shape`: `noise_array(seed, shape[1:])[None]`, one
    /// image's noise per seed whatever the batch dimension says.
    public static func noise(seed: Int, shape: [Int]) -> Tensor {
        Tensor(shape: shape, floats: PortableNoise.noiseArray(seed: seed, shape: Array(shape.dropFirst())))
    }

    /// The plan's inputs for `request`, checked (class range, seed range, offered steps), the
    /// rest defaulted (`BundleRuntime.inputs`).
    public func inputs(_ request: Request = Request()) throws -> Values {
        var numbers = request.numbers
        var values: Values = [:]
        for input in plan.inputs {
            var v = input.fallback
            switch input.kind {
            case .classIndex:
                if let name = request.className {
                    v = try Double(manifest.classIndex(name))
                }
                guard let index = Int(exactly: v), manifest.classNames.indices.contains(index) else {
                    throw LRFError("class \(Self.describe(v)) is out of range; use 0-\(manifest.classNames.count - 1)")
                }
            case .seed:
                if let seed = request.seed {
                    v = Double(seed)
                }
                _ = try Self.seed(v)
            case .steps:
                if let steps = request.steps {
                    v = Double(steps)
                }
                _ = try manifest.schedule(steps: Self.steps(v))
            case .number:
                if let given = numbers.removeValue(forKey: input.name) {
                    v = given
                }
            }
            values[input.name] = v
        }
        if let unknown = numbers.keys.sorted().first {
            throw LRFError("this bundle's plan takes no input \(unknown); it takes \(plan.inputs.map { $0.name }.joined(separator: ", "))")
        }
        return values
    }

    /// The name of the class `values` picks, when the plan takes one (for captions).
    public func className(_ values: Values) -> String? {
        guard let v = value(of: .classIndex, in: values), let i = Int(exactly: v), manifest.classNames.indices.contains(i) else {
            return nil
        }
        return manifest.classNames[i]
    }

    /// The value of the first plan input of `kind` (e.g. the seed), if the plan has one.
    public func value(of kind: Manifest.Plan.Input.Kind, in values: Values) -> Double? {
        plan.inputs.first { $0.kind == kind }.flatMap { values[$0.name] }
    }

    /// The plan's start state.
    public func start(_ values: Values) throws -> State {
        var state: State = [:]
        for (name, start) in plan.start {
            state[name] = try Self.noise(seed: Self.seed(given(start.noise, values)), shape: start.shape)
        }
        return state
    }

    /// How many times the loop runs for `values`.
    public func iterations(_ values: Values) throws -> Int {
        switch plan.loop.repetition {
        case .count(let n): return n
        case .schedule: return try (loopSchedule(values) ?? []).count - 1
        }
    }

    /// The start state carried through every loop iteration; returns the final state.
    public func iterate(_ values: Values, callback: StepCallback? = nil) throws -> State {
        let loop = plan.loop
        var state = try start(values)
        let ts = try loopSchedule(values)
        let count = try iterations(values)
        for i in 0..<Swift.max(count, 0) {
            var feeds: [String: Tensor] = [:]
            for (input, source) in loop.feeds {
                feeds[input] = try feed(input, of: loop.graph, from: source, state: state, values: values, schedule: ts, at: i)
            }
            let t0 = Self.seconds()
            let outputs = try run(loop.graph, feeds)
            let seconds = Self.seconds() - t0
            for (name, output) in loop.next {
                guard let tensor = outputs[output] else {
                    throw LRFError("the plan takes output \(output), which the \(loop.graph) artifact did not give; re-export the bundle")
                }
                state[name] = tensor
            }
            try callback?(i, state, seconds)
        }
        return state
    }

    /// The plan's end on a final state: the pixels (1, H, W, 3). A NaN/Inf state is refused,
    /// its pixels would be garbage.
    public func finish(_ state: State, values: Values = [:]) throws -> Tensor {
        for (name, tensor) in state.sorted(by: { $0.key < $1.key }) where !tensor.isFinite {
            throw LRFError("the bundle produced NaN/Inf in its \(name); re-export it (its parity gate should have failed)")
        }
        let end = plan.end
        var feeds: [String: Tensor] = [:]
        for (input, source) in end.feeds {
            feeds[input] = try feed(input, of: end.graph, from: source, state: state, values: values, schedule: nil, at: 0)
        }
        guard let pixels = try run(end.graph, feeds)[end.output] else {
            throw LRFError("the plan's result \(end.output) is not among the \(end.graph) artifact's outputs; re-export the bundle")
        }
        return pixels
    }

    /// Execute the whole plan: `finish(iterate(values))`.
    public func generate(_ values: Values, callback: StepCallback? = nil) throws -> Tensor {
        try finish(iterate(values, callback: callback), values: values)
    }

    /// The value of one graph input, from its plan source.
    private func feed(_ input: String, of graph: String, from source: Manifest.Plan.Feed, state: State, values: Values,
                      schedule ts: [Double]?, at i: Int) throws -> Tensor {
        let scalar: Double
        switch source {
        case .state(let name):
            guard let tensor = state[name] else {
                throw LRFError("the plan feeds \(input) from a state \(name) it never set; re-export the bundle")
            }
            return tensor
        case .input(let name):
            scalar = try given(name, values)
        case .schedule(let interval):
            guard let ts, i + 1 < ts.count else {
                throw LRFError("the plan feeds \(input) from a schedule outside its loop; re-export the bundle")
            }
            // The current interval; dt in Double, then cast once, as everywhere.
            scalar = interval == .t ? ts[i] : ts[i] - ts[i + 1]
        }
        guard let spec = manifest.artifacts[graph]?.inputs.first(where: { $0.name == input }) else {
            throw LRFError("the plan feeds \(input), which the \(graph) artifact does not take; re-export the bundle")
        }
        return try Tensor.filled(spec.dtype, shape: spec.shape, value: scalar)
    }

    /// The schedule the loop walks, or nil when it repeats a fixed count.
    private func loopSchedule(_ values: Values) throws -> [Double]? {
        guard case .schedule(let input) = plan.loop.repetition else { return nil }
        return try manifest.schedule(steps: Self.steps(given(input, values)))
    }

    private func given(_ name: String, _ values: Values) throws -> Double {
        guard let v = values[name] else {
            throw LRFError("the plan reads an input \(name) that has no value; pass the values from inputs()")
        }
        return v
    }

    private static func seed(_ v: Double) throws -> Int {
        guard let seed = Int(exactly: v), (0...0xFFFF_FFFF).contains(seed) else {
            throw LRFError("seed \(describe(v)) is invalid; use an integer in 0..4294967295")
        }
        return seed
    }

    private static func steps(_ v: Double) throws -> Int {
        guard let steps = Int(exactly: v) else {
            throw LRFError("steps \(describe(v)) is not a step count; pick one the bundle offers")
        }
        return steps
    }

    /// `3` rather than `3.0` for whole numbers, in messages.
    static func describe(_ v: Double) -> String {
        Int(exactly: v).map { String($0) } ?? "\(v)"
    }

    /// Monotonic seconds (`time.perf_counter`).
    static func seconds() -> Double {
        Double(DispatchTime.now().uptimeNanoseconds) / 1e9
    }
}

/// An 8-bit RGB image, row-major (H, W, 3).
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public let pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// The plan's output as it is: (1, H, W, 3) pixel values 0...255, uint8, or int32 on Core
    /// ML (which has no uint8 arrays). The decoder rounds and clips inside its graph, so no
    /// arithmetic happens here; a value outside 0...255 means a damaged bundle.
    public init(pixels tensor: Tensor) throws {
        let s = tensor.shape
        guard s.count == 4, s[0] == 1, s[3] == 3, tensor.count == s.reduce(1, *), tensor.dtype != .float32 else {
            throw LRFError("the plan's output is \(tensor.dtype.rawValue)\(s), not (1, H, W, 3) 8-bit pixels; re-export the bundle")
        }
        var rgb = [UInt8](repeating: 0, count: tensor.count)
        for i in 0..<tensor.count {
            let v = tensor.element(i)
            guard v >= 0, v <= 255 else {
                throw LRFError("the plan's output holds a pixel value \(BundleRuntime.describe(v)) outside 0-255; re-export the bundle")
            }
            rgb[i] = UInt8(v)
        }
        self.init(width: s[2], height: s[1], pixels: rgb)
    }
}
