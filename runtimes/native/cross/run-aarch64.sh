#!/usr/bin/env bash
# lrf-native's aarch64 build (build-aarch64.sh) under qemu-user on one emulated CPU model:
#   runtimes/native/cross/run-aarch64.sh cortex-a53 BUNDLE --selftest
# Models: cortex-a53 (NEON without dot product: low-end Android cores), cortex-a76 (sdot, fp16),
# max,sme=off (i8mm; qemu 7.2 gets SME's int8 outer product wrong, so SME stays off).
# Under qemu-user the guest reads the host's /proc/cpuinfo, and cpuinfo picks core-tuned kernels (the
# A53 ones) by the core it names: for a Cortex model a -L prefix holds an ARM-format proc/cpuinfo
# naming it; every other path falls through to the host's multiarch arm64 libc (-L /).
set -euo pipefail
cpu="$1"; shift
binary="$(cd "$(dirname "$0")/.." && pwd)/build-aarch64/lrf-native"
[ -x "$binary" ] || { echo "error: $binary is missing; run runtimes/native/cross/build-aarch64.sh first" >&2; exit 2; }
case "$cpu" in
    cortex-a53) part=0xd03 ;;
    cortex-a55) part=0xd05 ;;
    cortex-a76) part=0xd0b ;;
    *) part="" ;;
esac
root=/
if [ -n "$part" ]; then
    root="$(mktemp -d)"
    trap 'rm -rf "$root"' EXIT
    mkdir "$root/proc"
    for i in $(seq 0 $(($(nproc) - 1))); do
        printf 'processor\t: %d\nBogoMIPS\t: 38.40\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\n' "$i"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: %s\nCPU revision\t: 4\n\n' "$part"
    done > "$root/proc/cpuinfo"
fi
qemu="$(command -v qemu-aarch64-static || command -v qemu-aarch64)"
"$qemu" -L "$root" -cpu "$cpu" "$binary" "$@"
