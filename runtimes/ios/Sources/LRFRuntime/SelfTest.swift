import Foundation

/// The result of `SelfTest.run`: the numbers `export/parity.py:check_numeric` reports, plus the
/// portable-noise check, and every gate that failed as a readable line.
public struct SelfTestReport: Sendable, CustomStringConvertible {
    public struct Check: Sendable {
        public let name: String
        public let maxAbs: Double
        public let rel: Double
    }

    public let tolerance: Manifest.Tolerance
    /// `max|PortableNoise(seed) - trajectory_latents[0]|`; gate `SelfTest.noiseTolerance`.
    public let noiseMaxAbs: Double
    /// Each test-vector single step (step graphs only).
    public let singleSteps: [Check]
    /// The whole trajectory from the reference noise, one entry per step.
    public let trajectory: [Check]
    /// PSNR of decode(final latent of this runtime's trajectory) against the reference image.
    public let imagePSNR: Double
    /// PSNR of decode(reference final latent) against the reference image: the decoder alone.
    public let decoderPSNR: Double
    /// Encoder relative error (reported, not gated, as in parity.py); nil without an encoder.
    public let encoderRel: Double?
    public let worstStepRel: Double
    public let seconds: Double
    /// Every gate that failed; empty when `passed`.
    public let failures: [String]

    public var passed: Bool { failures.isEmpty }

    public var description: String {
        var lines = [passed ? "self-test PASSED" : "self-test FAILED"]
        lines.append("noise max abs \(fmt(noiseMaxAbs)) (gate \(fmt(SelfTest.noiseTolerance)))")
        for check in singleSteps {
            lines.append("\(check.name): rel \(fmt(check.rel)), max abs \(fmt(check.maxAbs))")
        }
        for check in trajectory {
            lines.append("trajectory \(check.name): rel \(fmt(check.rel)), max abs \(fmt(check.maxAbs))")
        }
        lines.append("worst step rel \(fmt(worstStepRel)) (gate \(fmt(tolerance.stepRel)))")
        lines.append("image PSNR \(db(imagePSNR)), decoder PSNR \(db(decoderPSNR)) (gate \(db(tolerance.imagePSNR)))")
        if let encoderRel {
            lines.append("encoder rel \(fmt(encoderRel)) (not gated)")
        }
        lines.append(String(format: "took %.2f s", seconds))
        lines.append(contentsOf: failures.map { "FAIL: " + $0 })
        return lines.joined(separator: "\n")
    }
}

private func fmt(_ x: Double) -> String {
    String(format: "%.3g", x)
}

private func db(_ x: Double) -> String {
    x.isInfinite ? "inf dB" : String(format: "%.1f dB", x)
}

/// Runs a bundle's test vectors through a `BundleRuntime`, as `export/parity.py:check_numeric`
/// does at export time, and gates with the manifest's `tolerance`:
/// - the portable noise for the trajectory seed against `trajectory_latents[0]` (max abs <= 1e-6);
/// - each single step against `step{k}_next_latent` (rel <= `tolerance.step_rel`);
/// - the whole trajectory from `trajectory_latents[0]`, every step against the reference
///   (rel <= `tolerance.step_rel`), through the same `denoise` loop the app uses;
/// - the decoder alone and the final image: PSNR >= `tolerance.image_psnr_db`, not NaN.
public enum SelfTest {
    /// Float32 noise from the same formula: identical up to libm rounding in the last bit.
    public static let noiseTolerance = 1e-6

    public static func run(_ rt: BundleRuntime, status: ((String) -> Void)? = nil) throws -> SelfTestReport {
        let started = BundleRuntime.seconds()
        let root = rt.root
        let m = rt.manifest
        let tol = m.tolerance
        let tv = m.testVectors
        func load(_ rel: String) throws -> Tensor {
            try NpyReader.read(root.appendingPathComponent(rel))
        }
        var failures: [String] = []

        // The portable noise: the Python noise made trajectory_latents[0].
        status?("noise")
        let refTraj = try load(tv.trajectory.latents)
        let refNoise = try refTraj.slice(0)
        let noise = rt.noise(seed: tv.trajectory.seed)
        let noiseMaxAbs = try Parity.maxAbs(noise.floatValues(), refNoise.floatValues())
        if !(noiseMaxAbs <= noiseTolerance) {
            failures.append("noise: PortableNoise(seed \(tv.trajectory.seed)) differs from trajectory_latents[0] by "
                            + "\(fmt(noiseMaxAbs)) > \(fmt(noiseTolerance)); it no longer mirrors lrf_model/noise.py")
        }

        // Single steps (parity.py: `if m["sampler"]["graph"] == "step"`).
        var singles: [SelfTestReport.Check] = []
        if m.sampler.graph == "step" {
            let step = try rt.require("step")
            for (k, vector) in tv.steps.enumerated() {
                status?("single step \(k)")
                var feeds: [String: Tensor] = [:]
                for (name, rel) in vector where name != "next_latent" {
                    feeds[name] = try load(rel)
                }
                guard let refRel = vector["next_latent"] else {
                    throw LRFError("test vector step \(k) has no next_latent; re-export the bundle")
                }
                let got = try BundleRuntime.output(step.run(feeds), "next_latent", of: "step").floatValues()
                let ref = try load(refRel).floatValues()
                let maxAbs = try Parity.maxAbs(got, ref)
                let rel = try Parity.relError(got, ref)
                singles.append(.init(name: "single step \(k)", maxAbs: maxAbs, rel: rel))
            }
        }

        // The whole trajectory from the reference noise (the bundle's own schedule), every step recorded.
        let ts = try rt.schedule()
        guard refTraj.shape.first == ts.count else {
            throw LRFError("trajectory_latents has \(refTraj.shape.first ?? 0) entries for a \(ts.count - 1)-step schedule; "
                           + "re-export the bundle")
        }
        var perStep: [SelfTestReport.Check] = []
        let finalLatent = try rt.denoise(refNoise, classID: tv.trajectory.classID) { i, z, _ in
            status?("trajectory step \(i)")
            let got = try z.floatValues()
            let ref = try refTraj.slice(i + 1).floatValues()
            let maxAbs = try Parity.maxAbs(got, ref)
            let rel = try Parity.relError(got, ref)
            perStep.append(.init(name: "step \(i)", maxAbs: maxAbs, rel: rel))
        }
        if m.sampler.graph == "fused" {
            let last = refTraj.shape[0] - 1
            let got = try finalLatent.floatValues()
            let ref = try refTraj.slice(last).floatValues()
            let maxAbs = try Parity.maxAbs(got, ref)
            let rel = try Parity.relError(got, ref)
            perStep = [.init(name: "step \(last - 1)", maxAbs: maxAbs, rel: rel)]
        }

        status?("decoder")
        let refImage = try load(tv.trajectory.image).floatValues()
        let imagePSNR = try Parity.psnr(rt.decode(finalLatent).floatValues(), refImage)
        let decoderPSNR = try Parity.psnr(rt.decode(refTraj.slice(refTraj.shape[0] - 1)).floatValues(), refImage)

        var encoderRel: Double?
        if let encoder = tv.encoder, rt.runners["encoder"] != nil {
            status?("encoder")
            let got = try rt.encode(load(encoder.image)).floatValues()
            encoderRel = try Parity.relError(got, load(encoder.latent).floatValues())
        }

        var worst = 0.0
        for check in perStep + singles {
            if check.rel.isNaN || check.rel > worst {
                worst = check.rel
            }
            if !(check.rel <= tol.stepRel) {
                failures.append("\(check.name): rel \(fmt(check.rel)) > \(fmt(tol.stepRel))")
            }
        }
        if imagePSNR.isNaN {
            failures.append("the final image is NaN")
        } else if !(imagePSNR >= tol.imagePSNR) {
            failures.append("final image PSNR \(db(imagePSNR)) < \(db(tol.imagePSNR))")
        }
        if !(decoderPSNR >= tol.imagePSNR) {
            failures.append("decoder PSNR \(db(decoderPSNR)) < \(db(tol.imagePSNR))")
        }
        return SelfTestReport(tolerance: tol, noiseMaxAbs: noiseMaxAbs, singleSteps: singles, trajectory: perStep,
                              imagePSNR: imagePSNR, decoderPSNR: decoderPSNR, encoderRel: encoderRel,
                              worstStepRel: worst, seconds: BundleRuntime.seconds() - started, failures: failures)
    }
}
