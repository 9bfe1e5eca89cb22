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
        XCTAssertEqual(manifest.tolerance.stepRel, 0.05)
        XCTAssertEqual(manifest.tolerance.imagePSNR, 30.0)
        XCTAssertEqual(manifest.artifacts["step"]?.inputs.map { $0.name }, ["latent", "t", "dt", "class_id", "cfg"])
        XCTAssertEqual(manifest.artifacts["step"]?.inputs[3].dtype, "int32")
        XCTAssertEqual(manifest.testVectors.trajectory.classID, 1)
        XCTAssertEqual(manifest.noise?.seedSalt, PortableNoise.seedSalt)
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
        try Data().write(to: root.appendingPathComponent("step.mlpackage/Manifest.json"))
        assertThrows(["step.mlpackage/Manifest.json", "sha256"]) { try Manifest.load(from: root) }

        let other = try SyntheticBundle.make()
        try FileManager.default.removeItem(at: other.appendingPathComponent("decoder.mlpackage/Manifest.json"))
        assertThrows(["decoder.mlpackage/Manifest.json", "is missing"]) { try Manifest.load(from: other) }
    }

    func testSchemaVersionIsCheckedFirst() throws {
        let root = try SyntheticBundle.make { object in
            object["schema_version"] = 1
            object["sampler"] = nil  // a v1 manifest lacks v2 fields: the schema message must win
        }
        assertThrows(["schema version 1 is not 2", "re-export the bundle"]) { try Manifest.load(from: root) }
    }

    func testMissingManifestAndCorruptJSON() throws {
        let empty = try temporaryDirectory()
        assertThrows(["is not a bundle", "manifest.json is missing", "lrf-export"]) { try Manifest.load(from: empty) }

        try Data("{not json".utf8).write(to: empty.appendingPathComponent(Manifest.fileName))
        assertThrows(["is corrupt", "re-export"]) { try Manifest.load(from: empty) }
    }

    func testDecodingErrorNamesTheField() throws {
        let root = try SyntheticBundle.make { object in
            var sampler = object["sampler"] as? [String: Any] ?? [:]
            sampler["cfg"] = nil
            object["sampler"] = sampler
        }
        assertThrows(["is corrupt", "sampler.cfg", "missing"]) { try Manifest.load(from: root) }
    }

    func testForeignNoiseGeneratorIsRejected() throws {
        let root = try SyntheticBundle.make { object in
            object["noise"] = ["seed_salt": 12345] as [String: Any]
        }
        assertThrows(["seed_salt 12345", "PortableNoise"]) { try Manifest.load(from: root) }
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
        XCTAssertNotNil(manifest.sampler.schedules[String(manifest.sampler.steps)])
        XCTAssertEqual(manifest.sampler.schedule, manifest.sampler.schedules[String(manifest.sampler.steps)])
        XCTAssertEqual(manifest.sampler.schedule.count, manifest.sampler.steps + 1)
        for kind in manifest.artifacts.keys {
            XCTAssertEqual(try manifest.artifactDigest(kind).count, 64)
        }
    }

    func testRealBundleTamperedFileRejected() throws {
        let root = try TestBundle.copy()
        let manifest = try Manifest.load(from: root)
        let stepFile = manifest.artifacts[manifest.sampler.graph]?.file ?? ""
        // A file inside the artifact (a .mlpackage directory) when there is one, else the artifact.
        let rel = manifest.files.keys.sorted().first { $0.hasPrefix(stepFile + "/") } ?? stepFile
        let url = root.appendingPathComponent(rel)
        var data = try Data(contentsOf: url)
        data.append(0)
        try data.write(to: url)
        assertThrows([rel, "does not match its sha256"]) { try Manifest.load(from: root) }
    }
}
