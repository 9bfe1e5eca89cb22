"""lrf-native on ARM64, the ISA of phone CPUs, under qemu-user: the bundle's own self-test with
XNNPACK's ARM kernels, on three CPU models that pick three int8 kernel families.

- ``cortex-a53`` (low-end Android cores: NEON without dot product, smull/smlal kernels), with a
  ``/proc/cpuinfo`` that names the core (``runtimes/native/cross/run-aarch64.sh``): under qemu-user
  the guest otherwise reads the host's, and cpuinfo would never choose the A53-tuned kernels;
- ``cortex-a76`` (mid-range: ``sdot``, fp16 arithmetic);
- ``max,sme=off`` (flagship: ``i8mm``/``smmla``). SME is off because qemu 7.2 computes the SME int8
  outer product (SMOPA) wrongly; SME2 is not emulated at all.

lrf-native is cross-built by ``runtimes/native/cross/build-aarch64.sh`` against ExecuTorch's own
aarch64 wheel; the ARM image of a seed must match the x86 one within the bundle's own image tolerance.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lrf_export.checks import metric
from tests.test_native import lrf_native  # noqa: F401  (the x86 build, a fixture)

NATIVE = Path(__file__).resolve().parents[1] / "runtimes" / "native"
QEMU = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
ARM64_LIBS = Path("/usr/lib/aarch64-linux-gnu")
CPUS = ("cortex-a53", "cortex-a76", "max,sme=off")  # qemu CPU models (run-aarch64.sh says what each stands for)


def missing_tools() -> list[str]:
    missing = [] if QEMU else ["qemu-user-static"]
    if not shutil.which("aarch64-linux-gnu-g++"):
        missing.append("g++-aarch64-linux-gnu")
    missing += [f"{pkg}:arm64" for pkg, lib in (("libstdc++6", "libstdc++.so.6"), ("libssl-dev", "libcrypto.a"))
                if not (ARM64_LIBS / lib).exists()]
    return missing


@pytest.fixture(scope="module")
def arm_native() -> Path:
    """lrf-native for aarch64 (cross-built once into runtimes/native/build-aarch64/)."""
    if missing := missing_tools():
        pytest.skip(f"cannot cross-build and emulate ARM64 here: install {', '.join(missing)} (see .ci/run)")
    result = subprocess.run([str(NATIVE / "cross" / "build-aarch64.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def emulated(cpu: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(NATIVE / "cross" / "run-aarch64.sh"), cpu, *map(str, args)],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("cpu,quantize", [(cpu, q) for cpu in CPUS for q in ("none", "int8")] +
                         [("cortex-a76", "fp16"), ("cortex-a53", "fp16")])
def test_arm64_selftest_and_image_match_x86(arm_native, lrf_native, tiny_bundle, tmp_path, cpu, quantize):  # noqa: F811
    """fp16 runs on cortex-a76 (ARMv8.2 fp16 arithmetic, XNNPACK's f16 kernels) and on cortex-a53,
    which has none: there XNNPACK must still give the bundle's image (or the self-test says why not)."""
    bundle = tiny_bundle("executorch", quantize).path
    result = emulated(cpu, bundle, "--selftest", "--json", "--threads", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True and report["precision"] == {"none": "fp32"}.get(quantize, quantize)
    assert all(c["passed"] for c in report["selftest"]), report["selftest"]

    arm_png, x86_png = tmp_path / "arm.png", tmp_path / "x86.png"
    result = emulated(cpu, bundle, "--class", "3", "--seed", "5", "--out", arm_png)
    assert result.returncode == 0, result.stderr
    subprocess.run([str(lrf_native), bundle, "--class", "3", "--seed", "5", "--out", x86_png], check=True,
                   capture_output=True)
    psnr = metric("psnr", *(np.asarray(Image.open(p)) for p in (arm_png, x86_png)))
    limit = json.loads((bundle / "manifest.json").read_text())["tolerance"]["image_psnr_db"]
    assert psnr >= limit, f"{cpu} {quantize}: ARM image at {psnr:.1f} dB of the x86 one, limit {limit} dB"


def test_android_jni_links_for_arm64(arm_native):
    """The Android app's JNI glue, cross-built for aarch64 against ExecuTorch's aarch64 wheel with
    ``-Wl,--no-undefined``: every symbol it uses exists in an ARM build, and it exports exactly the
    natives the Kotlin app declares (the x86 build of the same file runs in test_android_jni.py)."""
    from tests.test_android_jni import kotlin_natives

    if shutil.which("javac") is None:
        pytest.skip("no JDK on the build host for jni.h: install openjdk-17-jdk-headless (see .ci/run)")
    result = subprocess.run([str(NATIVE / "cross" / "build-aarch64.sh"), "jni"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    lib = Path(result.stdout.strip().splitlines()[-1])
    header = lib.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183, "not an aarch64 ELF"  # EM_AARCH64
    nm = subprocess.run(["aarch64-linux-gnu-nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True)
    assert nm.returncode == 0, nm.stderr
    assert set(re.findall(r"\bJava_org_lrf_android_LrfNative_(\w+)\b", nm.stdout)) == set(kotlin_natives())
