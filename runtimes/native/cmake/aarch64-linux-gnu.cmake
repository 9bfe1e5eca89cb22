# Cross-compile lrf-native for 64-bit ARM Linux (phone CPUs' ISA) on an x86 Debian host; used by
# runtimes/native/cross/build-aarch64.sh, which also fetches ExecuTorch's aarch64 wheel for EXECUTORCH_ROOT:
#   apt install g++-aarch64-linux-gnu qemu-user-static libssl-dev:arm64 libstdc++6:arm64
#   (after dpkg --add-architecture arm64)
#   cmake -S runtimes/native -B BUILD -DCMAKE_TOOLCHAIN_FILE=$PWD/runtimes/native/cmake/aarch64-linux-gnu.cmake \
#     -DEXECUTORCH_ROOT=<the executorch/ folder of the manylinux aarch64 wheel: lib/, include/, share/>
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Debian keeps the cross libc in /usr/aarch64-linux-gnu and multiarch packages (libssl-dev:arm64) in
# /usr/lib/aarch64-linux-gnu; the header-only nlohmann-json and stb come from the host's /usr/include.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# libcrypto linked statically: the emulated binary then needs only the cross libc and ExecuTorch.
set(OPENSSL_USE_STATIC_LIBS TRUE)
