#!/usr/bin/env bash
# Builds and installs ExecuTorch for one Android ABI, as the app's CMake links it:
# static libraries + headers + lib/cmake/ExecuTorch under <executorch>/cmake-out-android-<ABI>,
# the same prefix and the same configure line (preset android-<ABI>, XNNPACK on) that
# ExecuTorch's own scripts/build_android_library.sh uses to build the AAR's libexecutorch.so.
#
#   usage: build_executorch_android.sh EXECUTORCH_CHECKOUT [ABI ...]      (default ABI: arm64-v8a)
#   needs: ANDROID_NDK (the NDK the app builds with: app/build.gradle.kts ndkVersion),
#          a Python with torch (the kernel registration is generated at configure time),
#          a checkout at the tag of the executorch that exported the bundle, with submodules:
#            git clone --branch v1.5.1 https://github.com/pytorch/executorch.git
#            git -C executorch submodule update --init --recursive
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 EXECUTORCH_CHECKOUT [ABI ...]   (ABIs: arm64-v8a x86_64; default arm64-v8a)" >&2
  exit 2
fi
ET="$(cd "$1" && pwd)"
shift
ABIS=("${@:-arm64-v8a}")
: "${ANDROID_NDK:?set ANDROID_NDK to the NDK root (e.g. \$ANDROID_HOME/ndk/28.2.13676358)}"
PYTHON="${PYTHON_EXECUTABLE:-$(command -v python3 || command -v python)}"
JOBS="${JOBS:-$(( $(nproc 2>/dev/null || sysctl -n hw.ncpu) ))}"

for ABI in "${ABIS[@]}"; do
  OUT="cmake-out-android-${ABI}"
  echo "== ExecuTorch for ${ABI} -> ${ET}/${OUT}"
  # minSdk 26 and the static libc++ match the app (app/build.gradle.kts). The last five -D
  # switch off what only the AAR's Java API and the LLM runner use; drop them to build exactly
  # what build_android_library.sh builds.
  (cd "${ET}" && cmake . --preset "android-${ABI}" -B "${OUT}" \
      -DCMAKE_TOOLCHAIN_FILE="${ANDROID_NDK}/build/cmake/android.toolchain.cmake" \
      -DANDROID_ABI="${ABI}" \
      -DANDROID_PLATFORM=android-26 \
      -DANDROID_STL=c++_static \
      -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_INSTALL_PREFIX="${OUT}" \
      -DPYTHON_EXECUTABLE="${PYTHON}" \
      -DEXECUTORCH_BUILD_XNNPACK=ON \
      -DEXECUTORCH_BUILD_KERNELS_OPTIMIZED=ON \
      -DEXECUTORCH_BUILD_KERNELS_QUANTIZED=ON \
      -DEXECUTORCH_BUILD_EXTENSION_MODULE=ON \
      -DEXECUTORCH_BUILD_EXTENSION_TENSOR=ON \
      -DEXECUTORCH_BUILD_EXTENSION_DATA_LOADER=ON \
      -DEXECUTORCH_BUILD_ANDROID_JNI=OFF \
      -DEXECUTORCH_BUILD_EXTENSION_LLM=OFF \
      -DEXECUTORCH_BUILD_EXTENSION_LLM_RUNNER=OFF \
      -DEXECUTORCH_BUILD_KERNELS_LLM=OFF \
      -DEXECUTORCH_BUILD_EXTENSION_TRAINING=OFF)
  cmake --build "${ET}/${OUT}" -j "${JOBS}" --target install --config Release
  test -f "${ET}/${OUT}/lib/cmake/ExecuTorch/executorch-config.cmake" || {
    echo "error: ${ET}/${OUT} has no lib/cmake/ExecuTorch/executorch-config.cmake after install" >&2
    exit 1
  }
done
echo "done: set lrf.executorchDir=${ET} in runtimes/android/gradle.properties (or EXECUTORCH_DIR=${ET})"
