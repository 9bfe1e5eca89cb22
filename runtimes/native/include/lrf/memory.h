// The process's memory as the kernel accounts it, for the per-stage report.
//
// On Linux and Android, /proc/self/status: VmRSS (now), VmHWM (peak RSS so far: what a phone's
// low-memory killer compares against) and VmPeak (peak address space, what an address-space
// cap such as `prlimit --as` enforces). Elsewhere every field is -1.
#pragma once

#include <cstdint>

namespace lrf {

struct MemoryReading {
  int64_t rss_kib = -1;
  int64_t peak_rss_kib = -1;
  int64_t peak_vm_kib = -1;
};

MemoryReading read_memory();

}  // namespace lrf
