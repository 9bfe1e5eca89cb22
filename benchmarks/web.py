"""Benchmark the web runtime (runtimes/web) in Debian's Chromium: per-step latency and decode time.

    python benchmarks/web.py [--images 20] [--warmup 3] [--threads 1,2] [--fresh]

Exports the shipped model's ONNX fp32 and int8 4-step bundles under benchmarks/.bundles/ (see
common.bundle: reused while they verify; --fresh re-exports), serves each with runtimes/web/serve.py
and drives runtimes/web/tests/e2e.mjs in bench mode: for each thread count a warm-up, then
--images images through the page's own Generate button, per-step latency (median, p90) and decode
time, and the page's Self-test. Writes benchmarks/results/web.json and web.md, and the page after
generating a cat (fp32) to runtimes/web/screenshot.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import BUNDLES, RESULTS, ROOT, STEPS  # noqa: E402

WEB = ROOT / "runtimes" / "web"
SCREENSHOT = WEB / "screenshot.png"


def node_modules() -> None:
    if not (WEB / "node_modules" / "onnxruntime-web").is_dir() or not (WEB / "node_modules" / "playwright-core").is_dir():
        print("npm ci in runtimes/web …", flush=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True)


def host_step_ms(path: Path, threads: int, images: int) -> dict:
    """The same bundle through lrf-run's loop (Python onnxruntime, native) right before the browser run:
    the host number under the same load, so the wasm overhead can be read off one run."""
    import numpy as np

    from lrf_export.run import BundleRuntime

    rt = BundleRuntime(path, threads=threads)
    ms: list[float] = []
    for seed in range(images + 2):
        rt.iterate(rt.inputs({"class": seed % len(rt.manifest["class_names"]), "seed": seed}),
                   callback=lambda i, state, s: ms.append(1000 * s))
    ms = ms[2 * STEPS:]  # two warm-up images
    return {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90, method="inverted_cdf")), "n": len(ms)}


def bench(path: Path, args: argparse.Namespace, screenshot: Path | None) -> dict:
    server = subprocess.Popen([sys.executable, str(WEB / "serve.py"), "--bundle", str(path), "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().strip()
        if not line.startswith("serving "):
            sys.exit(f"serve.py did not start: {line!r}")
        out = BUNDLES / f"{path.name}.bench.json"
        cmd = ["node", "tests/e2e.mjs", "--mode", "bench", "--url", line.split(" ", 1)[1], "--threads", args.threads,
               "--images", str(args.images), "--warmup", str(args.warmup), "--out", str(out)]
        if screenshot:
            cmd += ["--screenshot", str(screenshot), "--screenshot-class", "cat"]
        r = subprocess.run(cmd, cwd=WEB)
        report = json.loads(out.read_text())
        if r.returncode != 0:
            sys.exit(f"the benchmark of {path.name} failed: {report.get('failures') or report.get('error')}")
        return report
    finally:
        server.terminate()
        server.wait(timeout=10)


def markdown(results: dict) -> str:
    env = results["environment"]
    lines = [
        "# Web runtime (onnxruntime-web wasm in Chromium)",
        "",
        f"Shipped CIFAR-10 model, ONNX {STEPS}-step bundles, `python benchmarks/web.py` on {env['date']}: "
        f"Chromium {env['chromium']} headless, onnxruntime-web {env['onnxruntime_web']} (wasm backend, SIMD, threads through "
        f"COOP/COEP), {env['cores']} CPU cores ({env['cpu']}). Per-step latency is the time of one `session.run` of the "
        f"guided step graph measured in the page (`performance.now()`), over {results['images']} images x {STEPS} steps after "
        f"{results['warmup']} warm-up images; decode is one decoder run per image. Page memory is "
        "`performance.measureUserAgentSpecificMemory()` (wasm heap included); it never answers while onnxruntime-web's "
        "worker threads exist, hence n/a at 2 threads.",
        "",
        "| precision | threads | step median (ms) | step p90 (ms) | decode median (ms) | decode p90 (ms) | image median (ms) | page memory | self-test | host onnxruntime step median (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in results["bundles"]:
        for run in b["runs"]:
            mem = run["memory"]["page_bytes"]
            lines.append(f"| {b['precision']} | {run['threads']} | {run['step_ms']['median']:.2f} | {run['step_ms']['p90']:.2f} | "
                         f"{run['decode_ms']['median']:.2f} | {run['decode_ms']['p90']:.2f} | {run['image_ms']['median']:.1f} | "
                         f"{'n/a' if mem is None else f'{mem / 1048576:.1f} MB'} | "
                         f"{'pass' if run['selftest_passed'] else 'FAIL'} | {b['host_step_ms'][str(run['threads'])]['median']:.2f} |")
    lines += ["", "Host onnxruntime: the same bundle through `lrf-run`'s loop (Python onnxruntime, native MLAS kernels) at the "
              "same thread count, measured by this script just before the browser run, so both saw the same machine load.",
              "Image time includes the page's repaint between steps (a `setTimeout(0)` outside the step timing).",
              "Absolute numbers move with the machine's load; compare within one run.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", default="1,2", help="comma-separated wasm thread counts")
    p.add_argument("--fresh", action="store_true", help="re-export the bundles")
    args = p.parse_args(argv)
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed")
    if not Path("/usr/bin/chromium").is_file():
        sys.exit("/usr/bin/chromium is not installed")
    node_modules()
    bundles = {q: common.bundle("onnx", q, fresh=args.fresh) for q in ("none", "int8")}
    reports, host = [], []
    threads = [int(t) for t in args.threads.split(",")]
    for q, path in bundles.items():
        print(f"benchmarking {path.relative_to(ROOT)} …", flush=True)
        host.append({str(t): host_step_ms(path, t, args.images) for t in threads})
        reports.append(bench(path, args, SCREENSHOT if q == "none" else None))
    ort_web = json.loads((WEB / "node_modules" / "onnxruntime-web" / "package.json").read_text())["version"]
    cpu = common.cpu_line(common.machine())
    results = {
        "environment": {"date": time.strftime("%Y-%m-%d"), "chromium": reports[0].get("chromium"), "onnxruntime_web": ort_web,
                        "cores": reports[0]["browser"]["cores"], "cpu": cpu, "user_agent": reports[0]["browser"]["userAgent"]},
        "steps": STEPS, "images": args.images, "warmup": args.warmup,
        "bundles": [{"bundle": str(path.relative_to(ROOT)), "precision": r["precision"], "runs": r["runs"], "host_step_ms": h}
                    for path, r, h in zip(bundles.values(), reports, host)],
        "screenshot": str(SCREENSHOT.relative_to(ROOT)),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "web.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "web.md").write_text(markdown(results))
    print(markdown(results))
    print(f"wrote {RESULTS.relative_to(ROOT)}/web.json, web.md and {SCREENSHOT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
