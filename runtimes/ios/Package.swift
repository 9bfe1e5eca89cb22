// swift-tools-version:5.9
// LRF on iOS/macOS: the LRFRuntime library (bundle manifest, portable noise, raw tensor reader,
// the plan executor, Core ML runners, self-test, memory) and, on a Mac, the LRFApp demo executable.
// See README.md for how to build, test and put the same App/ sources into an iOS app target.
import PackageDescription

var products: [Product] = [
    .library(name: "LRFRuntime", targets: ["LRFRuntime"]),
]

var targets: [Target] = [
    // Swift + Foundation; the Core ML, CoreGraphics and Mach parts are behind `#if canImport(...)`,
    // so the manifest, noise, tensors, plan and self-test also build on Linux, where swift-crypto
    // stands in for CryptoKit (SHA-256 of bundle files).
    .target(
        name: "LRFRuntime",
        dependencies: [.product(name: "Crypto", package: "swift-crypto", condition: .when(platforms: [.linux]))],
        path: "Sources/LRFRuntime"
    ),
    .testTarget(
        name: "LRFRuntimeTests",
        dependencies: ["LRFRuntime"],
        path: "Tests/LRFRuntimeTests",
        resources: [.copy("Fixtures")]
    ),
]

#if os(macOS)
// The SwiftUI demo as a macOS executable (`swift run LRFApp`). The same App/ sources go into an
// iOS app target in Xcode (README.md); SwiftPM alone cannot produce an installable iOS .app.
// The manifest is evaluated on the host, so on Linux this target does not exist at all.
products.append(.executable(name: "LRFApp", targets: ["LRFApp"]))
targets.append(.executableTarget(name: "LRFApp", dependencies: ["LRFRuntime"], path: "App"))
#endif

let package = Package(
    name: "LRFRuntime",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: products,
    dependencies: [.package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0")],
    targets: targets
)
