import SwiftUI
#if os(macOS)
import AppKit
#endif

/// The LRF demo: pick a class, a step count and a seed, watch the steps, see the image.
///
/// The same sources are the package's macOS executable (`swift run LRFApp`) and the files of an
/// iOS app target in Xcode (README.md, "The iOS app"). Remove the template's own `@main` App
/// struct when adding them to an Xcode project.
@main
struct LRFDemoApp: App {
    #if os(macOS)
    @NSApplicationDelegateAdaptor(MacAppDelegate.self) private var appDelegate
    #endif
    @StateObject private var model = AppModel()

    var body: some Scene {
        WindowGroup("LRF") {
            ContentView()
                .environmentObject(model)
                .task { await model.load() }
        }
    }
}

#if os(macOS)
/// `swift run LRFApp` starts a bare executable: make it a regular, frontmost app with a window
/// that takes keyboard input, and quit with its last window.
final class MacAppDelegate: NSObject, NSApplicationDelegate {
    func applicationDidFinishLaunching(_ notification: Notification) {
        NSApp.setActivationPolicy(.regular)
        NSApp.activate(ignoringOtherApps: true)
    }

    func applicationShouldTerminateAfterLastWindowClosed(_ sender: NSApplication) -> Bool {
        true
    }
}
#endif
