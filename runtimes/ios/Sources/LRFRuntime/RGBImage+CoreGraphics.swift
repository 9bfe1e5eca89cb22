#if canImport(CoreGraphics)
import CoreGraphics
import Foundation

extension RGBImage {
    /// The pixels as an opaque 8-bit device-RGB CGImage that asks not to be interpolated, for
    /// `Image(decorative:scale:)` in SwiftUI; upscale it there with `.interpolation(.none)`.
    public func cgImage() -> CGImage? {
        var rgbx = [UInt8](repeating: 255, count: width * height * 4)
        for p in 0..<(width * height) {
            rgbx[4 * p] = pixels[3 * p]
            rgbx[4 * p + 1] = pixels[3 * p + 1]
            rgbx[4 * p + 2] = pixels[3 * p + 2]
        }
        guard let provider = CGDataProvider(data: Data(rgbx) as CFData) else { return nil }
        return CGImage(width: width, height: height, bitsPerComponent: 8, bitsPerPixel: 32, bytesPerRow: width * 4,
                       space: CGColorSpaceCreateDeviceRGB(),
                       bitmapInfo: CGBitmapInfo(rawValue: CGImageAlphaInfo.noneSkipLast.rawValue),
                       provider: provider, decode: nil, shouldInterpolate: false, intent: .defaultIntent)
    }
}
#endif
