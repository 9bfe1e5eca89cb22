#include "lrf/memory.h"

#include <fstream>
#include <sstream>
#include <string>

namespace lrf {

MemoryReading read_memory() {
  MemoryReading r;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key;
    int64_t kib = -1;
    fields >> key >> kib;
    if (key == "VmRSS:") r.rss_kib = kib;
    else if (key == "VmHWM:") r.peak_rss_kib = kib;
    else if (key == "VmPeak:") r.peak_vm_kib = kib;
  }
  return r;
}

}  // namespace lrf
