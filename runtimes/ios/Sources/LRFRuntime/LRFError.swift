import Foundation

/// One-line error naming the file or input at fault and the fix, as `lrf_model.errors.LRFError`
/// in Python (the messages below repeat the Python ones where the same check exists).
public struct LRFError: Error, LocalizedError, CustomStringConvertible, Sendable {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var errorDescription: String? { message }
    public var description: String { message }
}
