// ExecuTorch's process-wide thread pool, which sizes XNNPACK's parallelism.
//
// The pip wheel ships libexecutorch_threadpool.so but not its header
// (extension/threadpool/threadpool.h); these are the two exported functions we call, declared
// exactly as upstream declares them so the linker resolves them from that library.
#pragma once

#include <cstddef>
#include <cstdint>

namespace executorch::extension::threadpool {

class ThreadPool {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};

ThreadPool* get_threadpool();

}  // namespace executorch::extension::threadpool
