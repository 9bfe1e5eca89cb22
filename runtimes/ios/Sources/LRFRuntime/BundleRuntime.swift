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
/// comes from `PortableNoise` or a fill; given an image, the plan's edit graph runs once (the
/// encoded image, the noised start, the mask on the latent grid); the loop graph runs once per
/// schedule interval from the strength's start (or a fixed count) with each feed taken from the
/// state, a plan input or the schedule as the plan says; then the end graph gives the pixels. It
/// names no graph, input or output itself, so a new plan needs no change here; the app calls
/// `Generator`, which calls this.
public final class BundleRuntime {
    /// The plan's state by name, carried from one loop iteration to the next.
    public typealias State = [String: Tensor]
    /// After each loop iteration: its index, the new state, the seconds of its graph call
    /// alone. Throwing (e.g. `CancellationError`) stops the loop with that error.
    public typealias StepCallback = (_ step: Int, _ state: State, _ seconds: Double) throws -> Void

    /// The plan's input values by name: a class as its index, a seed, a step count, a number,
    /// and the image and mask a user gave (inputs of those kinds left out stay numbers: the value
    /// every element takes).
    public struct Values: Equatable, Sendable {
        public var numbers: [String: Double] = [:]
        public var tensors: [String: Tensor] = [:]

        public init(numbers: [String: Double] = [:], tensors: [String: Tensor] = [:]) {
            self.numbers = numbers
            self.tensors = tensors
        }

        public subscript(name: String) -> Double? { numbers[name] }
    }

    /// What a user gives; anything left out takes the plan's default.
    public struct Request: Sendable {
        /// The class input, by name or index ("cat", "3").
        public var className: String?
        public var seed: Int?
        /// One of the bundle's offered step counts.
        public var steps: Int?
        /// Inputs of kind "number" and "strength", by name (e.g. a guidance scale); an unknown
        /// name is an error.
        public var numbers: [String: Double]
        /// Inputs of kind "image" (8-bit RGB, (1, H, W, 3)) and "mask" (0 keep / 1 regenerate,
        /// (1, 1, H, W)), by name, of the plan's shapes.
        public var tensors: [String: Tensor]

        public init(className: String? = nil, seed: Int? = nil, steps: Int? = nil, numbers: [String: Double] = [:],
                    tensors: [String: Tensor] = [:]) {
            self.className = className
            self.seed = seed
            self.steps = steps
            self.numbers = numbers
            self.tensors = tensors
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

    /// The plan's inputs for `request`, checked (class range, seed range, offered steps, strength
    /// in [0, 1], image and mask sizes, a mask or strength only with an image), the rest
    /// defaulted (`BundleRuntime.inputs`).
    public func inputs(_ request: Request = Request()) throws -> Values {
        var numbers = request.numbers
        var tensors = request.tensors
        let gives = { (kind: Manifest.Plan.Input.Kind) -> Bool in
            self.plan.inputs.contains { input in input.kind == kind && tensors[input.name] != nil }
        }
        let strength = plan.inputs.contains { input in
            guard input.kind == .strength, let v = numbers[input.name] else { return false }
            return v != 1
        }
        if !gives(.image) && (gives(.mask) || strength) {
            throw LRFError("a mask or a strength needs an input image; pick an image as well")
        }
        if gives(.image) && plan.edit == nil {
            throw LRFError("this bundle's plan cannot edit images (its loop is the \(plan.loop.graph) graph); export it with --graph step")
        }
        var values = Values()
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
            case .number, .strength:
                if let given = numbers.removeValue(forKey: input.name) {
                    v = given
                }
                if input.kind == .strength {
                    _ = try Self.startIndex(steps: 1, strength: v)
                }
            case .image, .mask:
                if let tensor = tensors.removeValue(forKey: input.name) {
                    let shape = input.shape ?? []
                    guard tensor.count == shape.reduce(1, *) else {
                        throw LRFError("the \(input.name) has \(tensor.count) values but this bundle takes \(shape); pass one of the model's size")
                    }
                    values.tensors[input.name] = Tensor(shape: shape, storage: tensor.storage)
                }
            }
            values.numbers[input.name] = v
        }
        if let unknown = (Array(numbers.keys) + Array(tensors.keys)).sorted().first {
            throw LRFError("this bundle's plan takes no input \(unknown); it takes \(plan.inputs.map { $0.name }.joined(separator: ", "))")
        }
        return values
    }

    /// Image-to-image's first schedule interval of `n`: `n - floor(n * strength + 0.5)`
    /// (`lrf_model/editing.py:start_index`, rounded half up as in every runtime).
    public static func startIndex(steps n: Int, strength: Double) throws -> Int {
        guard strength >= 0, strength <= 1 else {
            throw LRFError("strength \(describe(strength)) is out of range; use a number in [0, 1] (1 = ignore the image)")
        }
        return n - Int((Double(n) * strength + 0.5).rounded(.down))
    }

    /// Whether `values` hold an input image (the plan's edit then runs).
    public func edits(_ values: Values) -> Bool {
        plan.inputs.contains { $0.kind == .image && values.tensors[$0.name] != nil }
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

    /// The plan's start state (before any edit).
    public func start(_ values: Values) throws -> State {
        var state: State = [:]
        for (name, start) in plan.start {
            switch start.source {
            case .noise(let input):
                state[name] = try Self.noise(seed: Self.seed(given(input, values)), shape: start.shape)
            case .fill(let value):
                state[name] = try Tensor.filled(.float32, shape: start.shape, value: value)
            }
        }
        return state
    }

    /// The schedule intervals the loop runs for `values`: from the strength's start (given an
    /// image) to the end of the schedule, or 0..<count.
    public func intervals(_ values: Values) throws -> Range<Int> {
        switch plan.loop.repetition {
        case .count(let n):
            return 0..<n
        case .schedule(_, let strength):
            let count = Swift.max(try (loopSchedule(values) ?? []).count - 1, 0)
            guard let strength, edits(values) else { return 0..<count }
            return try Self.startIndex(steps: count, strength: given(strength, values))..<count
        }
    }

    /// How many times the loop runs for `values`.
    public func iterations(_ values: Values) throws -> Int {
        try intervals(values).count
    }

    /// The start state (edited, given an image) carried through every loop iteration; returns
    /// the final state. The callback's index counts the iterations run, from 0.
    public func iterate(_ values: Values, callback: StepCallback? = nil) throws -> State {
        let loop = plan.loop
        var state = try start(values)
        let ts = try loopSchedule(values)
        let intervals = try intervals(values)
        if edits(values), let edit = plan.edit {
            let outputs = try run(edit.graph, feeds(edit.feeds, of: edit.graph, state: state, values: values, schedule: ts,
                                                    at: intervals.lowerBound))
            try update(&state, from: outputs, next: edit.next, graph: edit.graph)
        }
        for i in intervals {
            let feeds = try feeds(loop.feeds, of: loop.graph, state: state, values: values, schedule: ts, at: i)
            let t0 = Self.seconds()
            let outputs = try run(loop.graph, feeds)
            let seconds = Self.seconds() - t0
            try update(&state, from: outputs, next: loop.next, graph: loop.graph)
            try callback?(i - intervals.lowerBound, state, seconds)
        }
        return state
    }

    /// The outputs of a graph run that become states (a plan's `next`).
    private func update(_ state: inout State, from outputs: [String: Tensor], next: [String: String], graph: String) throws {
        for (name, output) in next {
            guard let tensor = outputs[output] else {
                throw LRFError("the plan takes output \(output), which the \(graph) artifact did not give; re-export the bundle")
            }
            state[name] = tensor
        }
    }

    /// The plan's end on a final state: the pixels (1, H, W, 3). A NaN/Inf state is refused,
    /// its pixels would be garbage.
    public func finish(_ state: State, values: Values = Values()) throws -> Tensor {
        for (name, tensor) in state.sorted(by: { $0.key < $1.key }) where !tensor.isFinite {
            throw LRFError("the bundle produced NaN/Inf in its \(name); re-export it (its parity gate should have failed)")
        }
        let end = plan.end
        let feeds = try feeds(end.feeds, of: end.graph, state: state, values: values, schedule: nil, at: 0)
        guard let pixels = try run(end.graph, feeds)[end.output] else {
            throw LRFError("the plan's result \(end.output) is not among the \(end.graph) artifact's outputs; re-export the bundle")
        }
        return pixels
    }

    /// Execute the whole plan: `finish(iterate(values))`.
    public func generate(_ values: Values, callback: StepCallback? = nil) throws -> Tensor {
        try finish(iterate(values, callback: callback), values: values)
    }

    /// One graph's feeds, by input name, from their plan sources.
    private func feeds(_ sources: [String: Manifest.Plan.Feed], of graph: String, state: State, values: Values,
                       schedule ts: [Double]?, at i: Int) throws -> [String: Tensor] {
        var feeds: [String: Tensor] = [:]
        for (input, source) in sources {
            feeds[input] = try feed(input, of: graph, from: source, state: state, values: values, schedule: ts, at: i)
        }
        return feeds
    }

    /// The value of one graph input, from its plan source.
    private func feed(_ input: String, of graph: String, from source: Manifest.Plan.Feed, state: State, values: Values,
                      schedule ts: [Double]?, at i: Int) throws -> Tensor {
        guard let spec = manifest.artifacts[graph]?.inputs.first(where: { $0.name == input }) else {
            throw LRFError("the plan feeds \(input), which the \(graph) artifact does not take; re-export the bundle")
        }
        let scalar: Double
        switch source {
        case .state(let name):
            guard let tensor = state[name] else {
                throw LRFError("the plan feeds \(input) from a state \(name) it never set; re-export the bundle")
            }
            return tensor
        case .input(let name):
            if let tensor = values.tensors[name] {  // an image or mask the user gave: as it is, cast by run()
                return tensor
            }
            scalar = try given(name, values)
        case .schedule(let interval):
            // t of interval i (t_start: of the first interval run, which is ts.count - 1 when
            // strength 0 runs none); dt in Double, then cast once, as everywhere.
            guard let ts, i < ts.count, interval != .dt || i + 1 < ts.count else {
                throw LRFError("the plan feeds \(input) from a schedule outside its loop; re-export the bundle")
            }
            scalar = interval == .dt ? ts[i] - ts[i + 1] : ts[i]
        }
        return try Tensor.filled(spec.dtype, shape: spec.shape, value: scalar)
    }

    /// The schedule the loop walks, or nil when it repeats a fixed count.
    private func loopSchedule(_ values: Values) throws -> [Double]? {
        guard case .schedule(let input, _) = plan.loop.repetition else { return nil }
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
