"""The shipped model's ExecuTorch bundles on ARM64 CPU models, under qemu-user: each bundle's own
self-test with XNNPACK's ARM kernels, and its image against the x86 one.

    python benchmarks/arm64.py

lrf-native is cross-built for aarch64 (runtimes/native/cross/build-aarch64.sh) and run by
runtimes/native/cross/run-aarch64.sh on ``cortex-a53`` (NEON without dot product, with an
ARM-format /proc/cpuinfo so the A53-tuned kernels are chosen), ``cortex-a76`` (``sdot``, fp16
arithmetic) and ``max,sme=off`` (``i8mm``). For the fp32, int8 and fp16 4-step bundles: the
self-test's verdict, worst per-step error and image PSNR, the seconds it took under emulation
(qemu translates every instruction: not a phone's speed), and the PSNR of the ARM image of class
3, seed 0 against lrf-native's on x86. Writes benchmarks/results/arm64.{json,md}.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from parity import native_selftest  # noqa: E402

from lrf_export.checks import metric  # noqa: E402

CROSS = common.ROOT / "runtimes" / "native" / "cross"
CPUS = {"cortex-a53": "NEON, no dot product (low-end Android)", "cortex-a76": "sdot, fp16 arithmetic (mid-range)",
        "max,sme=off": "i8mm (flagship; SME off: qemu 7.2 miscomputes its int8 outer product)"}


def main() -> None:
    built = subprocess.run([str(CROSS / "build-aarch64.sh")], capture_output=True, text=True)
    if built.returncode != 0:
        sys.exit(f"cross build failed: {built.stderr.strip()[-400:]} (needs .ci/run's apt packages)")
    x86 = common.build_native()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for quantize in ("none", "int8", "fp16"):
            path = common.bundle("executorch", quantize)
            reference = Path(tmp) / f"x86-{quantize}.png"
            subprocess.run([str(x86), str(path), "--class", "3", "--seed", "0", "--out", str(reference)], check=True,
                           capture_output=True)
            for cpu in CPUS:
                runner = [str(CROSS / "run-aarch64.sh"), cpu]
                t0 = time.perf_counter()
                report = native_selftest(path, runner)
                seconds = time.perf_counter() - t0
                image = Path(tmp) / f"arm-{quantize}-{cpu}.png"
                subprocess.run([*runner, str(path), "--class", "3", "--seed", "0", "--out", str(image)], check=True,
                               capture_output=True)
                psnr = metric("psnr", *(np.asarray(Image.open(p)) for p in (image, reference)))
                rows.append({"precision": common.precision_label(quantize), "cpu": cpu, **report,
                             "selftest_seconds": seconds, "image_vs_x86_psnr_db": float(psnr)})
                print(f"{rows[-1]['precision']:5s} {cpu:12s} {'pass' if report['passed'] else 'FAIL'} "
                      f"worst {report['worst_step_rel']:.1e} image {report['image_psnr_db']:.1f} dB, "
                      f"vs x86 {psnr:.1f} dB, {seconds:.0f} s", flush=True)
    m = common.machine()
    md = ["# ARM64 (qemu-user) self-tests of the shipped model's ExecuTorch bundles", "",
          f"`python benchmarks/arm64.py` on {common.machine_line(m)}: lrf-native cross-built for aarch64 against "
          "ExecuTorch's aarch64 wheel, under qemu-aarch64 7.2, 1 thread. Self-test: the bundle's own checks "
          "(worst per-step rel. error of the trajectory and edits, image PSNR against the PyTorch reference). "
          "\"vs x86\": the ARM image of class 3, seed 0 against lrf-native's on this x86 CPU (inf: identical). "
          "Seconds are emulated time, not a phone's.", "",
          "| precision | CPU model | kernels | self-test | worst step | image PSNR (dB) | vs x86 (dB) | seconds |",
          "|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['precision']} | `{r['cpu']}` | {CPUS[r['cpu']]} | {'pass' if r['passed'] else 'FAIL'} | "
           f"{r['worst_step_rel']:.1e} | {r['image_psnr_db']:.1f} | {r['image_vs_x86_psnr_db']:.1f} | "
           f"{r['selftest_seconds']:.0f} |" for r in rows]
    common.write_results("arm64", {"machine": m, "rows": rows}, "\n".join(md) + "\n")
    if not all(r["passed"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
