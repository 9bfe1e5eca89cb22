import Foundation
import LRFRuntime

/// Where the app looks for a bundle (a directory holding manifest.json), first match wins:
/// 1. the `LRF_BUNDLE` environment variable (Xcode scheme > Run > Environment, or the shell);
/// 2. a path given as a launch argument (`swift run LRFApp /path/to/bundle`);
/// 3. iOS: `Documents/bundle`, then any folder in Documents (copied in with the Files app or
///    Finder when the app sets UIFileSharingEnabled / LSSupportsOpeningDocumentsInPlace);
/// 4. a folder reference named `bundle` in the app's resources (Copy Bundle Resources).
enum BundleLocator {
    static let folderName = "bundle"

    static func candidates() -> [URL] {
        var urls: [URL] = []
        if let path = ProcessInfo.processInfo.environment["LRF_BUNDLE"], !path.isEmpty {
            urls.append(URL(fileURLWithPath: path, isDirectory: true))
        }
        for argument in CommandLine.arguments.dropFirst() where !argument.hasPrefix("-") {
            urls.append(URL(fileURLWithPath: argument, isDirectory: true))
        }
        #if os(iOS)
        let fileManager = FileManager.default
        if let documents = fileManager.urls(for: .documentDirectory, in: .userDomainMask).first {
            urls.append(documents.appendingPathComponent(folderName, isDirectory: true))
            if let entries = try? fileManager.contentsOfDirectory(at: documents, includingPropertiesForKeys: nil) {
                urls.append(contentsOf: entries.sorted { $0.lastPathComponent < $1.lastPathComponent })
            }
        }
        #endif
        if let resources = Bundle.main.resourceURL {
            urls.append(resources.appendingPathComponent(folderName, isDirectory: true))
        }
        return urls
    }

    static func find() throws -> URL {
        let all = candidates()
        for url in all where FileManager.default.fileExists(atPath: url.appendingPathComponent(Manifest.fileName).path) {
            return url
        }
        throw LRFError("no bundle found (looked in \(all.map { $0.path }.joined(separator: ", "))); make one with "
                       + "`lrf-export --target coreml --steps 4`, then add it to the app as a folder reference named "
                       + "\"bundle\", copy it into Documents, or set LRF_BUNDLE")
    }
}
