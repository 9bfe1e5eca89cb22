#!/usr/bin/env bash
# Cross-build lrf-native for 64-bit ARM Linux (the ISA of phone CPUs) against ExecuTorch's
# manylinux aarch64 wheel, into runtimes/native/build-aarch64/ (git-ignored):
#   runtimes/native/cross/build-aarch64.sh        -> runtimes/native/build-aarch64/lrf-native
#   runtimes/native/cross/build-aarch64.sh jni    -> runtimes/native/build-aarch64/liblrf_jni.so
#     (the Android app's JNI glue, runtimes/android/jni-check, linked against the same wheel:
#      proof that every symbol it uses exists in an ARM build; the JDK's headers come from the host)
# Needs (Debian): g++-aarch64-linux-gnu, and for libcrypto and the emulated run
#   dpkg --add-architecture arm64 && apt-get update && apt-get install libssl-dev:arm64 libstdc++6:arm64
# Run it under emulation with the multiarch arm64 libc (not the cross toolchain's copy: mixing the two
# hangs the process at start-up):
#   qemu-aarch64-static -L / -cpu cortex-a76 runtimes/native/build-aarch64/lrf-native BUNDLE --selftest
set -euo pipefail
native="$(cd "$(dirname "$0")/.." && pwd)"
build="$native/build-aarch64"
version="$(python -c 'import importlib.metadata as m; print(m.version("executorch"))')"
root="$build/executorch-$version-aarch64"
if [ ! -f "$root/executorch/lib/cmake/executorch/executorch-config.cmake" ]; then
    # The wheel of the same ExecuTorch version as the host's, for aarch64: its lib/ (shared libraries
    # needing only libc, libm, libstdc++, libgcc_s), include/ and share/ (the CMake config finds its root there).
    mkdir -p "$build/wheel"
    python -m pip download -q --no-deps --platform manylinux_2_28_aarch64 --only-binary=:all: \
        --python-version "$(python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" \
        "executorch==$version" -d "$build/wheel"
    rm -rf "$root.tmp" && mkdir -p "$root.tmp"
    python - "$build/wheel" "$root.tmp" <<'PY'
import sys, zipfile
from pathlib import Path
(wheel,) = Path(sys.argv[1]).glob("executorch-*aarch64*.whl")
with zipfile.ZipFile(wheel) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith(("executorch/lib/", "executorch/include/", "executorch/share/"))])
PY
    rm -rf "$root" && mv "$root.tmp" "$root"
fi
product="${1:-lrf-native}"
case "$product" in
    lrf-native) source_dir="$native"; out="$build/cmake"; file=lrf-native ;;
    jni) source_dir="$native/../android/jni-check"; out="$build/jni"; file=liblrf_jni.so ;;
    *) echo "error: unknown product '$product'; use lrf-native or jni" >&2; exit 2 ;;
esac
cmake -S "$source_dir" -B "$out" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE="$native/cmake/aarch64-linux-gnu.cmake" -DEXECUTORCH_ROOT="$root/executorch" >/dev/null
cmake --build "$out" -j"$(nproc)" >/dev/null
cp "$out/$file" "$build/$file"
echo "$build/$file"
