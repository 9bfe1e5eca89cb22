#if canImport(CoreML)
import CoreML
import Foundation

/// `.mlpackage` -> `.mlmodelc`, compiled once with `MLModel.compileModel(at:)` and kept in
/// Application Support under the artifact's content digest (`Manifest.artifactDigest`), so the
/// first launch compiles and later launches load at once; a changed bundle gets a new key.
public enum CompiledModelCache {
    /// `Application Support/LRFRuntime/CompiledModels` of this app (or user, for a Mac executable).
    public static func defaultDirectory() throws -> URL {
        let base = try FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask,
                                               appropriateFor: nil, create: true)
        return base.appendingPathComponent("LRFRuntime", isDirectory: true)
            .appendingPathComponent("CompiledModels", isDirectory: true)
    }

    public static func location(key: String, in directory: URL) -> URL {
        directory.appendingPathComponent("\(key).mlmodelc", isDirectory: true)
    }

    /// The cached compiled model for `key`, compiling `source` first when there is none.
    /// Returns whether this call compiled it.
    public static func compiledModel(source: URL, key: String, in directory: URL) async throws -> (url: URL, compiled: Bool) {
        let fileManager = FileManager.default
        let destination = location(key: key, in: directory)
        if fileManager.fileExists(atPath: destination.path) {
            return (destination, false)
        }
        try fileManager.createDirectory(at: directory, withIntermediateDirectories: true)
        excludeFromBackup(directory)
        let temporary: URL
        do {
            temporary = try await MLModel.compileModel(at: source)
        } catch {
            throw LRFError("Core ML could not compile \(source.lastPathComponent) (\(error.localizedDescription)); "
                           + "this runtime needs iOS 17 / macOS 14, or re-export the bundle")
        }
        // Move next to the destination first, then rename: a crash never leaves a half-copied cache entry.
        let staging = directory.appendingPathComponent(".\(key)-\(UUID().uuidString).mlmodelc", isDirectory: true)
        try fileManager.moveItem(at: temporary, to: staging)
        do {
            try fileManager.moveItem(at: staging, to: destination)
        } catch {
            try? fileManager.removeItem(at: staging)
            if !fileManager.fileExists(atPath: destination.path) {  // else another load won the race
                throw error
            }
        }
        return (destination, true)
    }

    /// Drop one cached model (e.g. one that no longer loads after an OS update).
    public static func remove(key: String, in directory: URL) {
        try? FileManager.default.removeItem(at: location(key: key, in: directory))
    }

    /// Drop every cached model.
    public static func clear(directory: URL? = nil) throws {
        let target = try directory ?? defaultDirectory()
        if FileManager.default.fileExists(atPath: target.path) {
            try FileManager.default.removeItem(at: target)
        }
    }

    private static func excludeFromBackup(_ directory: URL) {
        var url = directory
        var values = URLResourceValues()
        values.isExcludedFromBackup = true
        try? url.setResourceValues(values)
    }
}
#endif
