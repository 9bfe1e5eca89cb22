import Foundation
import XCTest
@testable import LRFRuntime

final class ManifestTests: XCTestCase {
    // MARK: Synthetic bundles (no LRF_BUNDLE needed)

    func testLoadsAndVerifiesSyntheticBundle() throws {
        let root = try SyntheticBundle.make()
        let manifest = try Manifest.load(from: root)
        XCTAssertEqual(manifest.schemaVersion, Manifest.schemaVersion)
        XCTAssertEqual(manifest.classNames, ["airplane", "cat"])
        XCTAssertEqual(manifest.sampler.offeredSteps, [1, 2, 3])
        XCTAssertEqual(manifest.sampler.schedules["3"], SyntheticBundle.schedule3)
        XCTAssertEqual(manifest.image.dtype, .int32)
        XCTAssertEqual(manifest.artifacts["step"]?.inputs.map { $0.name }, ["z", "time", "delta", "label", "scale"])
        XCTAssertEqual(manifest.artifacts["step"]?.inputs[3].dtype, .int32)
        XCTAssertEqual(manifest.noise?.seedSalt, PortableNoise.seedSalt)

        let plan = manifest.plan
        XCTAssertEqual(plan.inputs.map { $0.name }, ["class", "seed", "steps", "guidance"])
        XCTAssertEqual(plan.inputs.map { $0.kind }, [.classIndex, .seed, .steps, .number])
        XCTAssertEqual(plan.inputs[3].fallback, 3.0)
        XCTAssertEqual(plan.start["x"]?.source, .noise("seed"))
        XCTAssertEqual(plan.loop.feeds["z"], .state("x"))
        XCTAssertEqual(plan.loop.feeds["time"], .schedule(.t))
        XCTAssertEqual(plan.loop.feeds["delta"], .schedule(.dt))
        XCTAssertEqual(plan.loop.feeds["scale"], .input("guidance"))
        XCTAssertEqual(plan.loop.next, ["x": "z_next"])
        guard case .schedule("steps", nil) = plan.loop.repetition else {
            return XCTFail("repeat is \(plan.loop.repetition)")
        }
        XCTAssertEqual(plan.end.output, "rgb")

        XCTAssertEqual(manifest.tensors["trajectory.states"]?.shape, [2, 1, 3, 2, 2])
        XCTAssertEqual(manifest.tensors["trajectory.pixels"]?.dtype, .uint8)
        XCTAssertEqual(manifest.checks.map { $0.name }, ["noise", "step0", "trajectory", "image", "decoder"])
        XCTAssertEqual(manifest.checks.map { $0.metric }, [.maxAbs, .rel, .rel, .psnr, .psnr])
        guard case .plan(let inputs, .states) = manifest.checks[2].kind else {
            return XCTFail("check 2 is \(manifest.checks[2].kind)")
        }
        XCTAssertEqual(inputs, ["class": 1, "seed": 7, "steps": 2])
    }

    func testFixedCountLoop() throws {
        let manifest = try SyntheticBundle.manifest { object in
            object["plan"] = ManifestTests.editing(object["plan"]) { plan in
                plan["loop"] = ManifestTests.editing(plan["loop"]) { loop in
                    loop["repeat"] = ["count": 1]
                    loop["feeds"] = ["z": ["state": "x"], "time": ["input": "guidance"], "delta": ["input": "guidance"],
                                     "label": ["input": "class"], "scale": ["input": "guidance"]]
                }
            }
        }
        guard case .count(1) = manifest.plan.loop.repetition else {
            return XCTFail("repeat is \(manifest.plan.loop.repetition)")
        }
    }

    func testTamperedFileIsRejectedByName() throws {
        let root = try SyntheticBundle.make()
        let rel = "step.mlpackage/Data/com.apple.CoreML/weights/weight.bin"
        var data = try Data(contentsOf: root.appendingPathComponent(rel))
        data[10] ^= 0xFF
        try data.write(to: root.appendingPathComponent(rel))
        assertThrows([rel, "does not match its sha256", "re-export or re-copy"]) {
            try Manifest.load(from: root)
        }
        XCTAssertNoThrow(try Manifest.load(from: root, verify: false), "verify: false skips the hashes, as in Python")
    }

    func testTruncatedAndMissingFilesAreRejected() throws {
        let root = try SyntheticBundle.make()
        try Data().write(to: root.appendingPathComponent("vectors/noise.bin"))
        assertThrows(["vectors/noise.bin", "sha256"]) { try Manifest.load(from: root) }

        let other = try SyntheticBundle.make()
        try FileManager.default.removeItem(at: other.appendingPathComponent("decoder.mlpackage/Manifest.json"))
        assertThrows(["decoder.mlpackage/Manifest.json", "is missing"]) { try Manifest.load(from: other) }
    }

    func testSchemaVersionIsCheckedFirst() throws {
        let root = try SyntheticBundle.make { object in
            object["schema_version"] = 2
            object["plan"] = nil  // a v2 manifest lacks the plan: the schema message must win
        }
        assertThrows(["schema version 2 is not 3", "re-export the bundle"]) { try Manifest.load(from: root) }
    }

    func testMissingManifestAndCorruptJSON() throws {
        let empty = try temporaryDirectory()
        assertThrows(["is not a bundle", "manifest.json is missing", "lrf-export"]) { try Manifest.load(from: empty) }

        try Data("{not json".utf8).write(to: empty.appendingPathComponent(Manifest.fileName))
        assertThrows(["is corrupt", "re-export"]) { try Manifest.load(from: empty) }
    }

    func testDecodingErrorsNameTheField() throws {
        assertThrows(["is corrupt", "plan.loop.next", "missing"]) {
            try SyntheticBundle.manifest { object in
                object["plan"] = ManifestTests.editing(object["plan"]) { plan in
                    plan["loop"] = ManifestTests.editing(plan["loop"]) { $0["next"] = nil }
                }
            }
        }
        assertThrows(["plan.loop.feeds.time", "exactly one of state, input, schedule"]) {
            try SyntheticBundle.manifest { object in
                object["plan"] = ManifestTests.editing(object["plan"]) { plan in
                    plan["loop"] = ManifestTests.editing(plan["loop"]) { loop in
                        loop["feeds"] = ManifestTests.editing(loop["feeds"]) { $0["time"] = ["schedule": "t", "input": "seed"] }
                    }
                }
            }
        }
        assertThrows(["checks", "metric"]) {
            try SyntheticBundle.manifest { object in
                var checks = object["checks"] as? [[String: Any]] ?? []
                checks[0]["metric"] = "ssim"
                object["checks"] = checks
            }
        }
        assertThrows(["image.dtype"]) {
            try SyntheticBundle.manifest { object in
                object["image"] = ["shape": [1, 2, 2, 3], "dtype": "float16", "layout": "NHWC"] as [String: Any]
            }
        }
    }

    /// Every name the plan uses must resolve, so running it can only fail on numbers.
    func testPlanReferencesAreResolvedAtLoad() throws {
        func plan(_ edit: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
            { object in object["plan"] = ManifestTests.editing(object["plan"], edit) }
        }
        func loop(_ edit: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
            plan { $0["loop"] = ManifestTests.editing($0["loop"], edit) }
        }
        let cases: [([String], (inout [String: Any]) -> Void)] = [
            (["runs a fused graph the bundle does not hold"], loop { $0["graph"] = "fused" }),
            (["feeds z from an undeclared state y"], loop { $0["feeds"] = ManifestTests.editing($0["feeds"]) { $0["z"] = ["state": "y"] } }),
            (["feeds label from an undeclared input klass"],
             loop { $0["feeds"] = ManifestTests.editing($0["feeds"]) { $0["label"] = ["input": "klass"] } }),
            (["takes scale, which the plan does not feed"], loop { $0["feeds"] = ManifestTests.editing($0["feeds"]) { $0["scale"] = nil } }),
            (["feeds extra, which the step graph does not take"],
             loop { $0["feeds"] = ManifestTests.editing($0["feeds"]) { $0["extra"] = ["input": "seed"] } }),
            (["from a schedule outside a loop over one"], loop { $0["repeat"] = ["count": 2] }),
            (["takes output latent, which the step graph does not give"], loop { $0["next"] = ["x": "latent"] }),
            (["seeds x from an undeclared input noise_seed"],
             plan { $0["start"] = ["x": ["noise": "noise_seed", "shape": [1, 3, 2, 2]] as [String: Any]] }),
            (["result pixels is not an output of the decoder graph"],
             plan { $0["end"] = ManifestTests.editing($0["end"]) { $0["output"] = "pixels" } }),
        ]
        for (parts, transform) in cases {
            assertThrows(parts + ["re-export the bundle"]) { try SyntheticBundle.manifest(transform: transform) }
        }
    }

    func testFilesOutsideTheBundleAndImpossibleShapesAreRejected() throws {
        assertThrows(["outside the bundle (../secret.bin)"]) {
            try SyntheticBundle.manifest { object in
                object["tensors"] = ManifestTests.editing(object["tensors"]) {
                    $0["noise"] = ["file": "../secret.bin", "dtype": "float32", "shape": [1, 3, 2, 2]] as [String: Any]
                }
            }
        }
        assertThrows(["outside the bundle (/etc/passwd)"]) {
            try SyntheticBundle.manifest { $0["files"] = ["/etc/passwd": String(repeating: "0", count: 64)] }
        }
        assertThrows(["tensor noise declares an impossible shape"]) {
            try SyntheticBundle.manifest { object in
                object["tensors"] = ManifestTests.editing(object["tensors"]) {
                    $0["noise"] = ["file": "noise.bin", "dtype": "float32", "shape": [1 << 20, 1 << 20]] as [String: Any]
                }
            }
        }
        assertThrows(["image is int32[1, 3, 2, 2], not (1, H, W, 3) 8-bit pixels"]) {
            try SyntheticBundle.manifest { $0["image"] = ["shape": [1, 3, 2, 2], "dtype": "int32", "layout": "NCHW"] as [String: Any] }
        }
    }

    func testForeignNoiseGeneratorIsRejected() throws {
        assertThrows(["seed_salt 12345", "PortableNoise"]) {
            try SyntheticBundle.manifest { $0["noise"] = ["seed_salt": 12345] as [String: Any] }
        }
    }

    func testScheduleAndClassIndexMirrorPython() throws {
        let manifest = try SyntheticBundle.manifest()
        XCTAssertEqual(try manifest.schedule(), [1.0, 0.5, 0.0])
        XCTAssertEqual(try manifest.schedule(steps: 3), SyntheticBundle.schedule3)
        assertThrows(["offers steps 1, 2, 3, not 5", "re-export with --steps"]) { try manifest.schedule(steps: 5) }
        XCTAssertEqual(try manifest.classIndex("cat"), 1)
        XCTAssertEqual(try manifest.classIndex(" CAT "), 1)
        XCTAssertEqual(try manifest.classIndex("0"), 0)
        assertThrows(["unknown class 'dog'", "airplane, cat", "0-1"]) { try manifest.classIndex("dog") }
        assertThrows(["unknown class '2'"]) { try manifest.classIndex("2") }
    }

    func testArtifactDigestCoversEveryFileOfThePackage() throws {
        let root = try SyntheticBundle.make()
        let manifest = try Manifest.load(from: root)
        let key = try manifest.artifactDigest("step")
        XCTAssertEqual(key.count, 64)
        XCTAssertNotEqual(key, try manifest.artifactDigest("decoder"))
        XCTAssertEqual(key, try manifest.artifactDigest("step"), "stable")
        assertThrows(["no encoder artifact"]) { try manifest.artifactDigest("encoder") }
    }

    // MARK: The LRF_BUNDLE bundle

    func testRealBundleVerifies() throws {
        let root = try TestBundle.root()
        let manifest = try Manifest.load(from: root)
        XCTAssertEqual(manifest.schemaVersion, Manifest.schemaVersion)
        XCTAssertFalse(manifest.files.isEmpty)
        XCTAssertFalse(manifest.checks.isEmpty)
        XCTAssertEqual(manifest.sampler.schedule, manifest.sampler.schedules[String(manifest.sampler.steps)])
        XCTAssertEqual(manifest.image.shape.last, 3)
        for kind in manifest.artifacts.keys {
            XCTAssertEqual(try manifest.artifactDigest(kind).count, 64)
        }
    }

    func testRealBundleTamperedFileRejected() throws {
        let root = try TestBundle.copy()
        let manifest = try Manifest.load(from: root)
        let loopFile = manifest.artifacts[manifest.plan.loop.graph]?.file ?? ""
        // A file inside the artifact (a .mlpackage directory) when there is one, else the artifact.
        let rel = manifest.files.keys.sorted().first { $0.hasPrefix(loopFile + "/") } ?? loopFile
        let url = root.appendingPathComponent(rel)
        var data = try Data(contentsOf: url)
        data.append(0)
        try data.write(to: url)
        assertThrows([rel, "does not match its sha256"]) { try Manifest.load(from: root) }
    }

    /// `value` (a JSON object from the synthetic manifest) after `edit`.
    static func editing(_ value: Any?, _ edit: (inout [String: Any]) -> Void) -> [String: Any] {
        var object = value as? [String: Any] ?? [:]
        edit(&object)
        return object
    }
}
