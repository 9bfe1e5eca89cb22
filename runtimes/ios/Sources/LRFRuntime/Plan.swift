import Foundation

extension Manifest {
    /// How the bundle's graphs make an image (export/plan.py), as data: what a user gives, the
    /// start state, the edit (run once when the user gives an image), the loop graph with the
    /// source of each of its inputs, and the end graph.
    /// Graph and tensor names appear only here, never in code, so a new way of sampling is a
    /// new plan rather than a change to every runtime.
    public struct Plan: Decodable, Sendable {
        public struct Input: Decodable, Sendable {
            public enum Kind: String, Decodable, Sendable {
                /// An index into `class_names` (given by name or index).
                case classIndex = "class"
                /// The portable noise's seed, 0...2^32-1.
                case seed
                /// A key of `sampler.schedules`.
                case steps
                /// Any number, e.g. a guidance scale.
                case number
                /// Image-to-image's strength in [0, 1]: where in the schedule the loop starts.
                case strength
                /// An 8-bit RGB image of `shape` to edit.
                case image
                /// An inpainting mask of `shape`: 0 keep, 1 regenerate.
                case mask
            }

            public let name: String
            public let kind: Kind
            /// The manifest's `default`, taken when a request leaves the input out (for an image
            /// or a mask: the value of every element).
            public let fallback: Double
            /// The tensor an image or mask input takes; nil for every other kind.
            public let shape: [Int]?

            enum CodingKeys: String, CodingKey {
                case name, kind, shape
                case fallback = "default"
            }

            /// Whether a user gives this input as a tensor (an image or a mask).
            public var isTensor: Bool { kind == .image || kind == .mask }
        }

        /// A state's initial value, of `shape`: the portable noise seeded by an input, or a fill.
        public struct Start: Decodable, Sendable {
            public enum Source: Sendable, Equatable {
                /// `noise_array(values[input], shape[1:])`.
                case noise(String)
                /// Every element this value.
                case fill(Double)
            }

            public let source: Source
            public let shape: [Int]

            enum CodingKeys: String, CodingKey {
                case noise, fill, shape
            }

            public init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                shape = try c.decode([Int].self, forKey: .shape)
                let noise = try c.decodeIfPresent(String.self, forKey: .noise)
                let fill = try c.decodeIfPresent(Double.self, forKey: .fill)
                switch (noise, fill) {
                case (let input?, nil): source = .noise(input)
                case (nil, let value?): source = .fill(value)
                default:
                    throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath,
                                                            debugDescription: "a start names exactly one of noise, fill"))
                }
            }
        }

        /// Where one graph input comes from.
        public enum Feed: Decodable, Equatable, Sendable {
            /// The current value of a state.
            case state(String)
            /// A plan input, filled to the input's declared shape and dtype.
            case input(String)
            /// The loop's current schedule interval: its start t, or dt = ts[i] - ts[i + 1]; in the
            /// edit, t_start is t of the first interval the loop runs.
            case schedule(Interval)

            public enum Interval: String, Decodable, Sendable {
                case t, dt
                case tStart = "t_start"
            }

            enum CodingKeys: String, CodingKey {
                case state, input, schedule
            }

            public init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                guard c.allKeys.count == 1, let key = c.allKeys.first else {
                    throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath,
                                                            debugDescription: "a feed names exactly one of state, input, schedule"))
                }
                switch key {
                case .state: self = try .state(c.decode(String.self, forKey: .state))
                case .input: self = try .input(c.decode(String.self, forKey: .input))
                case .schedule: self = try .schedule(c.decode(Interval.self, forKey: .schedule))
                }
            }
        }

        /// How often the loop runs.
        public enum Repeat: Decodable, Sendable {
            /// Once per interval of the schedule that this (steps) input chooses; given an image,
            /// from interval N - floor(N * strength + 0.5) of the `strength` input on.
            case schedule(String, strength: String?)
            /// A fixed number of times (a fused graph: once).
            case count(Int)

            enum CodingKeys: String, CodingKey {
                case schedule, strength, count
            }

            public init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                if let input = try c.decodeIfPresent(String.self, forKey: .schedule) {
                    self = try .schedule(input, strength: c.decodeIfPresent(String.self, forKey: .strength))
                    return
                }
                let n = try c.decode(Int.self, forKey: .count)
                guard (1...1000).contains(n) else {
                    throw DecodingError.dataCorruptedError(forKey: .count, in: c, debugDescription: "\(n) is not in 1...1000")
                }
                self = .count(n)
            }
        }

        public struct Loop: Decodable, Sendable {
            public let graph: String
            public let repetition: Repeat
            /// Graph input name -> its source.
            public let feeds: [String: Feed]
            /// State name -> the loop output that becomes it.
            public let next: [String: String]

            enum CodingKeys: String, CodingKey {
                case graph, feeds, next
                case repetition = "repeat"
            }
        }

        /// Run once before the loop when the user gives an image: its outputs replace states
        /// (the encoded image, the noised start latent, the mask on the latent grid).
        public struct Edit: Decodable, Sendable {
            /// The condition: "image" (the only one so far).
            public let when: String
            public let graph: String
            public let feeds: [String: Feed]
            /// State name -> the edit graph output that becomes it.
            public let next: [String: String]
        }

        public struct End: Decodable, Sendable {
            public let graph: String
            public let feeds: [String: Feed]
            /// The output that is the result: the pixels.
            public let output: String
        }

        public let inputs: [Input]
        /// State name -> how it begins.
        public let start: [String: Start]
        /// Absent from plans that cannot edit (a fused graph has its schedule baked in).
        public let edit: Edit?
        public let loop: Loop
        public let end: End

        var repeatsOverSchedule: Bool {
            if case .schedule = loop.repetition { return true }
            return false
        }

        /// Every name the plan uses resolves (lrf-native's manifest.cpp does the same): its
        /// graphs exist, each graph input is fed exactly from a declared state, input or (in a
        /// loop over a schedule) the schedule, and the outputs it reads are ones the graphs give.
        func validate(artifacts: [String: Artifact], _ fail: (String) -> LRFError) throws {
            let inputNames = Set(inputs.map { $0.name })
            for input in inputs where input.isTensor && input.shape == nil {
                throw fail("the plan's \(input.name) input declares no shape")
            }
            for (state, s) in start.sorted(by: { $0.key < $1.key }) {
                if case .noise(let input) = s.source, !inputNames.contains(input) {
                    throw fail("the plan seeds \(state) from an undeclared input \(input)")
                }
            }
            if case .schedule(let input, let strength) = loop.repetition {
                if !inputNames.contains(input) {
                    throw fail("the plan's loop repeats over an undeclared input \(input)")
                }
                if let strength, !inputNames.contains(strength) {
                    throw fail("the plan's loop starts at an undeclared strength input \(strength)")
                }
            }
            if let edit, edit.when != "image" {
                throw fail("the plan edits on an unknown condition \(edit.when); update this runtime")
            }
            // (graph, feeds, whether the schedule may feed it): the loop and the edit before it may.
            var graphs: [(String, [String: Feed], Bool)] = [(loop.graph, loop.feeds, true), (end.graph, end.feeds, false)]
            if let edit {
                graphs.append((edit.graph, edit.feeds, true))
            }
            for (graph, feeds, inLoop) in graphs {
                guard let artifact = artifacts[graph] else {
                    throw fail("the plan runs a \(graph) graph the bundle does not hold")
                }
                let takes = Set(artifact.inputs.map { $0.name })
                for (name, feed) in feeds.sorted(by: { $0.key < $1.key }) {
                    guard takes.contains(name) else {
                        throw fail("the plan feeds \(name), which the \(graph) graph does not take")
                    }
                    switch feed {
                    case .state(let s) where start[s] == nil:
                        throw fail("the plan feeds \(name) from an undeclared state \(s)")
                    case .input(let i) where !inputNames.contains(i):
                        throw fail("the plan feeds \(name) from an undeclared input \(i)")
                    case .schedule where !(inLoop && repeatsOverSchedule):
                        throw fail("the plan feeds \(name) from a schedule outside a loop over one")
                    default:
                        break
                    }
                }
                if let missing = takes.subtracting(feeds.keys).sorted().first {
                    throw fail("the \(graph) graph takes \(missing), which the plan does not feed")
                }
            }
            var setters: [(String, [String: String])] = [(loop.graph, loop.next)]
            if let edit {
                setters.append((edit.graph, edit.next))
            }
            for (graph, next) in setters {
                let outputs = Set(artifacts[graph]?.outputs.map { $0.name } ?? [])
                for (state, output) in next.sorted(by: { $0.key < $1.key }) {
                    guard start[state] != nil else {
                        throw fail("the plan sets an undeclared state \(state)")
                    }
                    guard outputs.contains(output) else {
                        throw fail("the plan takes output \(output), which the \(graph) graph does not give")
                    }
                }
            }
            guard artifacts[end.graph]?.outputs.contains(where: { $0.name == end.output }) == true else {
                throw fail("the plan's result \(end.output) is not an output of the \(end.graph) graph")
            }
        }
    }
}
