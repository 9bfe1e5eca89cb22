// User-facing errors of the LRF native runtime.
//
// Every problem a user can cause (missing file, hash mismatch, wrong shapes, unknown class,
// out of memory) is thrown as an lrf::Error whose message is one line naming the problem and
// the fix; the command-line runner prints it and exits non-zero instead of crashing.
#pragma once

#include <stdexcept>
#include <string>

namespace lrf {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace lrf
