import Foundation

extension Manifest {
    /// One entry of the manifest's `checks` (export/checks.py): what to run through this
    /// runtime, the bundle tensor it must match, and how closely.
    public struct Check: Decodable, Sendable {
        public enum Kind: Sendable {
            /// The portable noise for `seed`, of the expected tensor's shape.
            case noise(seed: UInt32)
            /// One graph on bundle tensors (graph input name -> tensor name); its `output`.
            case graph(String, feeds: [String: String], output: String)
            /// The whole plan on `inputs` (by plan input name), compared by `compare`.
            case plan(inputs: [String: Value], compare: Compare)
        }

        /// A plan check's input: a number, or for the image and mask inputs a bundle tensor's name.
        public enum Value: Decodable, Hashable, Sendable {
            case number(Double)
            case tensor(String)

            public init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let v = try? c.decode(Double.self) {
                    self = .number(v)
                } else {
                    self = try .tensor(c.decode(String.self))
                }
            }
        }

        public enum Compare: String, Decodable, Sendable {
            /// The state after each loop iteration, concatenated in order, judged iteration by
            /// iteration (the worst one is the check's value).
            case states
            /// The end graph's pixels.
            case output
        }

        public let name: String
        public let kind: Kind
        public let expected: String
        public let metric: Parity.Metric
        public let limit: Double

        enum CodingKeys: String, CodingKey {
            case name, kind, expected, metric, limit, seed, graph, feeds, output, inputs, compare
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            expected = try c.decode(String.self, forKey: .expected)
            metric = try c.decode(Parity.Metric.self, forKey: .metric)
            limit = try c.decode(Double.self, forKey: .limit)
            switch try c.decode(String.self, forKey: .kind) {
            case "noise":
                kind = try .noise(seed: c.decode(UInt32.self, forKey: .seed))
            case "graph":
                kind = try .graph(c.decode(String.self, forKey: .graph), feeds: c.decode([String: String].self, forKey: .feeds),
                                  output: c.decode(String.self, forKey: .output))
            case "plan":
                kind = try .plan(inputs: c.decode([String: Value].self, forKey: .inputs),
                                 compare: c.decode(Compare.self, forKey: .compare))
            case let other:
                throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown check kind \(other)")
            }
        }
    }
}

/// The self-test's outcome: one result per check, printed as the table every runtime prints
/// (`export/checks.py:table`, lrf-native's `SelfTestReport::table`), so the runtimes' verdicts
/// on one bundle compare line by line.
public struct SelfTestReport: Sendable, CustomStringConvertible {
    public struct Result: Sendable {
        public let name: String
        public let metric: Parity.Metric
        public let value: Double
        public let limit: Double

        public init(name: String, metric: Parity.Metric, value: Double, limit: Double) {
            self.name = name
            self.metric = metric
            self.value = value
            self.limit = limit
        }

        public var passed: Bool { Parity.passes(metric, value: value, limit: limit) }
    }

    public let results: [Result]

    public init(results: [Result]) {
        self.results = results
    }

    public var passed: Bool { !results.isEmpty && results.allSatisfy { $0.passed } }

    /// `%-12s %-8s %10s %10s  verdict`, one line per check, then `self-test: PASS` or `FAIL`.
    public var table: String {
        var lines = [Self.row("check", "metric", "value", "limit") + "  verdict"]
        for r in results {
            lines.append(Self.row(r.name, r.metric.rawValue, Self.format(r.metric, r.value), Self.format(r.metric, r.limit))
                         + "  " + (r.passed ? "pass" : "FAIL"))
        }
        lines.append("self-test: " + (passed ? "PASS" : "FAIL"))
        return lines.joined(separator: "\n")
    }

    public var description: String { table }

    /// "%.2f" for psnr, "%.3e" otherwise, "nan" and "inf" spelled out (`export/checks.py:fmt`).
    public static func format(_ metric: Parity.Metric, _ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return "inf" }
        return String(format: metric == .psnr ? "%.2f" : "%.3e", value)
    }

    /// Padded by hand: `%s` in `String(format:)` wants C strings, not Swift ones.
    private static func row(_ check: String, _ metric: String, _ value: String, _ limit: String) -> String {
        func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
            let fill = String(repeating: " ", count: Swift.max(width - s.count, 0))
            return right ? fill + s : s + fill
        }
        return [pad(check, 12), pad(metric, 8), pad(value, 10, right: true), pad(limit, 10, right: true)].joined(separator: " ")
    }
}

/// Runs the manifest's `checks` through a `BundleRuntime`: the on-device proof that this
/// runtime computes what the exporter's reference did (`export/checks.py:run_checks`).
public enum SelfTest {
    /// `status(name)` before each check runs.
    public static func run(_ rt: BundleRuntime, status: ((String) -> Void)? = nil) throws -> SelfTestReport {
        var results: [SelfTestReport.Result] = []
        for check in rt.manifest.checks {
            status?(check.name)
            results.append(try result(of: check, rt))
        }
        return SelfTestReport(results: results)
    }

    /// One check's result (`export/checks.py:run_checks`, for one check).
    static func result(of check: Manifest.Check, _ rt: BundleRuntime) throws -> SelfTestReport.Result {
        let ref = try tensor(check.expected, of: rt)
        let got = try output(of: check, rt, expected: ref)
        let states: Bool
        if case .plan(_, .states) = check.kind { states = true } else { states = false }
        let value = states ? Parity.worstRow(check.metric, got: got, ref: ref)
                           : Parity.metric(check.metric, got: got, ref: ref)
        return .init(name: check.name, metric: check.metric, value: value, limit: check.limit)
    }

    /// What this runtime gives for `check` (`export/checks.py:run_check`).
    static func output(of check: Manifest.Check, _ rt: BundleRuntime, expected: Tensor) throws -> Tensor {
        switch check.kind {
        case .noise(let seed):
            return BundleRuntime.noise(seed: Int(seed), shape: expected.shape)
        case .graph(let graph, let feeds, let output):
            var tensors: [String: Tensor] = [:]
            for (input, name) in feeds {
                tensors[input] = try tensor(name, of: rt)
            }
            guard let got = try rt.run(graph, tensors)[output] else {
                throw LRFError("check \(check.name) compares an output \(output) the \(graph) artifact does not give; re-export the bundle")
            }
            return got
        case .plan(let inputs, let compare):
            let values = try rt.inputs(request(inputs, check: check.name, rt))
            if compare == .output {
                return try rt.generate(values)
            }
            var states: [Tensor] = []
            _ = try rt.iterate(values) { _, state, _ in
                // The states the loop sets, in name order (as lrf-native's std::map).
                states += rt.plan.loop.next.keys.sorted().compactMap { state[$0] }
            }
            return try Tensor.concatenated(states)
        }
    }

    /// A check's plan inputs as a user's request (image and mask read from the bundle's
    /// tensors), so they are checked as a user's would be.
    static func request(_ inputs: [String: Manifest.Check.Value], check: String, _ rt: BundleRuntime) throws -> BundleRuntime.Request {
        func integer(_ name: String, _ v: Double) throws -> Int {
            guard let n = Int(exactly: v) else {
                throw LRFError("check \(check) gives \(name) = \(v), not an integer; re-export the bundle")
            }
            return n
        }
        var request = BundleRuntime.Request()
        for (name, value) in inputs {
            let kind = rt.plan.inputs.first(where: { $0.name == name })?.kind
            switch (value, kind) {
            case (.tensor(let tensorName), .image?), (.tensor(let tensorName), .mask?):
                request.tensors[name] = try tensor(tensorName, of: rt)
            case (.tensor, _):
                throw LRFError("check \(check) gives \(name) a tensor, which only an image or mask input takes; re-export the bundle")
            case (.number(let v), .classIndex?): request.className = BundleRuntime.describe(v)
            case (.number(let v), .seed?): request.seed = try integer(name, v)
            case (.number(let v), .steps?): request.steps = try integer(name, v)
            case (.number(let v), _): request.numbers[name] = v
            }
        }
        return request
    }

    static func tensor(_ name: String, of rt: BundleRuntime) throws -> Tensor {
        guard let spec = rt.manifest.tensors[name] else {
            throw LRFError("a check names a tensor \(name) the manifest does not declare; re-export the bundle")
        }
        return try RawTensor.read(spec, in: rt.root)
    }
}
