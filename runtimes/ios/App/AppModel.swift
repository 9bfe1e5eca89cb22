import CoreGraphics
import Foundation
import LRFRuntime

/// The app's state. All sampling happens in `LRFRuntime.Generator` (the bundle's plan, executed
/// as `export/run.py` does) on a detached task; this class only moves numbers to the screen.
@MainActor
final class AppModel: ObservableObject {
    enum Phase: Equatable {
        case loading(String)
        case ready
        case generating
        case selfTesting(String)
        case failed(String)
    }

    @Published private(set) var phase: Phase = .loading("looking for a bundle")
    @Published private(set) var bundleSummary = ""
    @Published private(set) var classNames: [String] = []
    @Published private(set) var offeredSteps: [Int] = []
    @Published var classIndex = 0
    @Published var steps = 4
    @Published var seedText = "0"

    @Published private(set) var progress = 0.0
    @Published private(set) var stepLabel = ""
    @Published private(set) var stepMillis: [Double] = []
    @Published private(set) var decodeMillis: Double?
    @Published private(set) var memory: MemorySnapshot?
    @Published private(set) var peakFootprint: UInt64?
    @Published private(set) var image: CGImage?
    @Published private(set) var caption = ""
    @Published private(set) var errorText: String?

    @Published private(set) var selfTestReport: SelfTestReport?
    @Published private(set) var selfTestError: String?

    private var generator: Generator?
    private var running: Task<Generation, Error>?
    private var runID = 0

    var isBusy: Bool {
        switch phase {
        case .loading, .generating, .selfTesting: return true
        case .ready, .failed: return false
        }
    }

    var isGenerating: Bool { phase == .generating }

    var selfTestStage: String? {
        if case .selfTesting(let stage) = phase { return stage }
        return nil
    }

    var loadingMessage: String? {
        if case .loading(let message) = phase { return message }
        return nil
    }

    var failureMessage: String? {
        if case .failed(let message) = phase { return message }
        return nil
    }

    // MARK: - Loading

    func load() async {
        guard generator == nil else { return }
        do {
            let root = try BundleLocator.find()
            phase = .loading("verifying \(root.lastPathComponent) and preparing its Core ML models (the first launch compiles them)")
            let generator = try await Generator.load(bundle: root)
            self.generator = generator
            let manifest = generator.manifest
            classNames = manifest.classNames
            offeredSteps = manifest.sampler.offeredSteps
            steps = manifest.sampler.steps
            classIndex = Swift.min(classIndex, Swift.max(manifest.classNames.count - 1, 0))
            let report = generator.loadReport
            let compiled = report.compileSeconds.isEmpty
                ? "models from the compile cache"
                : "compiled " + report.compileSeconds.keys.sorted().joined(separator: ", ")
            bundleSummary = "\(root.lastPathComponent): \(manifest.model.name), \(manifest.precision), "
                + "\(manifest.plan.loop.graph) graph, cfg \(manifest.sampler.cfg); \(compiled); "
                + String(format: "ready in %.1f s", report.seconds)
            memory = Memory.snapshot()
            phase = .ready
        } catch {
            phase = .failed(Self.describe(error))
        }
    }

    // MARK: - Generating

    func generate() {
        guard let generator, !isBusy else { return }
        guard let seed = Int(seedText.trimmingCharacters(in: .whitespaces)) else {
            errorText = "the seed must be a whole number"
            return
        }
        let request = BundleRuntime.Request(className: String(classIndex), seed: seed, steps: steps)
        runID += 1
        let id = runID
        phase = .generating
        progress = 0
        stepLabel = ""
        stepMillis = []
        decodeMillis = nil
        peakFootprint = nil
        errorText = nil
        let work = Task.detached(priority: .userInitiated) { () throws -> Generation in
            try generator.generate(request) { step in
                let fraction = step.fraction
                let label = "step \(step.step + 1)/\(step.total)"
                let millis = step.seconds * 1000
                let memory = step.memory
                _ = Task { @MainActor in
                    self.stepFinished(id: id, fraction: fraction, label: label, millis: millis, memory: memory)
                }
                return true  // keep going; cancel() cancels this task, which the loop checks after each step
            }
        }
        running = work
        Task {
            do {
                let generation = try await work.value
                self.finish(id: id, generation)
            } catch is CancellationError {
                self.phase = .ready
                self.errorText = "cancelled"
            } catch {
                self.phase = .ready
                self.errorText = Self.describe(error)
            }
            self.running = nil
        }
    }

    func cancel() {
        running?.cancel()
    }

    func randomSeed() {
        seedText = String(Int.random(in: 0..<1_000_000))
    }

    private func stepFinished(id: Int, fraction: Double, label: String, millis: Double, memory: MemorySnapshot) {
        guard id == runID, phase == .generating else { return }
        progress = fraction
        stepLabel = label
        stepMillis.append(millis)
        self.memory = memory
        if let footprint = memory.physFootprint {
            peakFootprint = Swift.max(peakFootprint ?? 0, footprint)
        }
    }

    private func finish(id: Int, _ generation: Generation) {
        guard id == runID else { return }
        progress = 1
        stepLabel = "done"
        stepMillis = generation.stepSeconds.map { $0 * 1000 }
        decodeMillis = generation.decodeSeconds * 1000
        memory = generation.memory
        if let footprint = generation.memory.physFootprint {
            peakFootprint = Swift.max(peakFootprint ?? 0, footprint)
        }
        image = generation.rgb.cgImage()
        caption = "\(generation.className ?? "image"), seed \(generation.seed.map { String($0) } ?? "-"), "
            + "\(generation.steps ?? generation.iterations) steps"
        phase = .ready
    }

    // MARK: - Self-test

    func runSelfTest() {
        guard let generator, !isBusy else { return }
        phase = .selfTesting("starting")
        selfTestReport = nil
        selfTestError = nil
        let work = Task.detached(priority: .userInitiated) { () throws -> SelfTestReport in
            try generator.selfTest { stage in
                _ = Task { @MainActor in
                    if case .selfTesting = self.phase {
                        self.phase = .selfTesting(stage)
                    }
                }
            }
        }
        Task {
            do {
                self.selfTestReport = try await work.value
            } catch {
                self.selfTestError = Self.describe(error)
            }
            self.phase = .ready
        }
    }

    static func describe(_ error: Error) -> String {
        if let error = error as? LRFError {
            return error.message
        }
        return (error as NSError).localizedDescription
    }
}
