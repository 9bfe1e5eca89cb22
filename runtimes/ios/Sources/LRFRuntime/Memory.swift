import Foundation
#if canImport(Darwin)
import Darwin
#endif
#if os(iOS) || os(tvOS) || os(watchOS)
import os
#endif

/// Memory of this process at one moment.
public struct MemorySnapshot: Sendable, Equatable, CustomStringConvertible {
    /// `task_vm_info.phys_footprint`: the number Xcode's memory gauge and jetsam use. nil off Darwin.
    public let physFootprint: UInt64?
    /// `os_proc_available_memory()`: bytes this app may still allocate before its limit.
    /// iOS/tvOS/watchOS only (nil on macOS, where the call does not exist, and on Linux).
    public let available: UInt64?

    public init(physFootprint: UInt64?, available: UInt64?) {
        self.physFootprint = physFootprint
        self.available = available
    }

    public var description: String {
        func mib(_ bytes: UInt64?) -> String {
            bytes.map { String(format: "%.1f MiB", Double($0) / 1_048_576) } ?? "n/a"
        }
        return "footprint \(mib(physFootprint)), available \(mib(available))"
    }
}

public enum Memory {
    public static func snapshot() -> MemorySnapshot {
        MemorySnapshot(physFootprint: physFootprint(), available: available())
    }

    /// `phys_footprint` from `task_info(TASK_VM_INFO)`.
    public static func physFootprint() -> UInt64? {
        #if canImport(Darwin)
        var info = task_vm_info_data_t()
        // TASK_VM_INFO_COUNT is a macro Swift does not import: the struct size in natural_t units.
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<natural_t>.size)
        let result: kern_return_t = withUnsafeMutablePointer(to: &info) { pointer in
            pointer.withMemoryRebound(to: integer_t.self, capacity: Int(count)) { reboundPointer in
                task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), reboundPointer, &count)
            }
        }
        guard result == KERN_SUCCESS else { return nil }
        return UInt64(info.phys_footprint)
        #else
        return nil
        #endif
    }

    /// `os_proc_available_memory()` (iOS 13+); nil where it does not exist or returns 0
    /// (not an app, or already over the limit).
    public static func available() -> UInt64? {
        #if os(iOS) || os(tvOS) || os(watchOS)
        let bytes = os_proc_available_memory()
        return bytes > 0 ? UInt64(bytes) : nil
        #else
        return nil
        #endif
    }
}
