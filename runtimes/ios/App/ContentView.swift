import LRFRuntime
import SwiftUI

struct ContentView: View {
    @EnvironmentObject private var model: AppModel

    var body: some View {
        NavigationStack {
            Form {
                bundleSection
                if !model.classNames.isEmpty {
                    generateSection
                    imageSection
                    metricsSection
                    selfTestSection
                }
            }
            .formStyle(.grouped)
            .navigationTitle("LRF")
        }
    }

    @ViewBuilder
    private var bundleSection: some View {
        Section("Bundle") {
            if let message = model.loadingMessage {
                HStack(spacing: 12) {
                    ProgressView()
                    Text(message)
                }
            } else if let message = model.failureMessage {
                Text(message)
                    .foregroundStyle(.red)
                    .textSelection(.enabled)
            } else {
                Text(model.bundleSummary)
                    .font(.footnote)
            }
        }
    }

    @ViewBuilder
    private var generateSection: some View {
        Section("Generate") {
            Picker("Class", selection: $model.classIndex) {
                ForEach(model.classNames.indices, id: \.self) { index in
                    Text(model.classNames[index]).tag(index)
                }
            }
            Picker("Steps", selection: $model.steps) {
                ForEach(model.offeredSteps, id: \.self) { count in
                    Text("\(count)").tag(count)
                }
            }
            .pickerStyle(.segmented)
            HStack {
                Text("Seed")
                TextField("seed", text: $model.seedText)
                    .multilineTextAlignment(.trailing)
                    #if os(iOS)
                    .keyboardType(.numberPad)
                    #endif
                Button("Random") { model.randomSeed() }
                    .buttonStyle(.borderless)
                    .disabled(model.isBusy)
            }
            HStack {
                // Borderless: two plain buttons in one Form row would both fire on a tap.
                Button("Generate") { model.generate() }
                    .buttonStyle(.borderless)
                    .disabled(model.isBusy)
                Spacer()
                if model.isGenerating {
                    Button("Cancel", role: .cancel) { model.cancel() }
                        .buttonStyle(.borderless)
                }
            }
            ProgressView(value: model.progress) {
                Text(model.stepLabel.isEmpty ? "progress" : model.stepLabel)
                    .font(.caption)
            }
            if let error = model.errorText {
                Text(error)
                    .foregroundStyle(.red)
            }
        }
    }

    @ViewBuilder
    private var imageSection: some View {
        Section("Image") {
            if let image = model.image {
                VStack(spacing: 8) {
                    // 32x32 pixels shown large: nearest-neighbour, never smoothed.
                    Image(decorative: image, scale: 1)
                        .resizable()
                        .interpolation(.none)
                        .aspectRatio(contentMode: .fit)
                        .frame(maxWidth: 320, maxHeight: 320)
                    Text(model.caption)
                        .font(.caption)
                }
                .frame(maxWidth: .infinity)
            } else {
                Text("no image yet")
                    .foregroundStyle(.secondary)
            }
        }
    }

    @ViewBuilder
    private var metricsSection: some View {
        Section("Latency and memory") {
            LabeledContent("Per step (ms)", value: model.stepMillis.isEmpty
                ? "–" : model.stepMillis.map { String(format: "%.2f", $0) }.joined(separator: "  "))
            LabeledContent("Decode (ms)", value: model.decodeMillis.map { String(format: "%.2f", $0) } ?? "–")
            LabeledContent("Footprint", value: Self.bytes(model.memory?.physFootprint))
            LabeledContent("Peak footprint (this run)", value: Self.bytes(model.peakFootprint))
            LabeledContent("Available to the app", value: Self.bytes(model.memory?.available))
        }
    }

    @ViewBuilder
    private var selfTestSection: some View {
        Section("Self-test") {
            Button("Run self-test") { model.runSelfTest() }
                .disabled(model.isBusy)
            if let stage = model.selfTestStage {
                HStack(spacing: 12) {
                    ProgressView()
                    Text("running: \(stage)")
                }
            }
            if let report = model.selfTestReport {
                Label(report.passed ? "PASS" : "FAIL",
                      systemImage: report.passed ? "checkmark.seal.fill" : "xmark.octagon.fill")
                    .foregroundStyle(report.passed ? Color.green : Color.red)
                    .font(.headline)
                // The table every runtime prints, so it can be compared with lrf-native's line by line.
                Text(report.table)
                    .font(.caption.monospaced())
                    .textSelection(.enabled)
            }
            if let error = model.selfTestError {
                Text(error)
                    .foregroundStyle(.red)
            }
        }
    }

    private static func bytes(_ value: UInt64?) -> String {
        guard let value else { return "n/a" }
        return ByteCountFormatter.string(fromByteCount: Int64(clamping: value), countStyle: .memory)
    }
}
