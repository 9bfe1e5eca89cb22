"""The Android app's JNI glue, built and run on desktop Linux.

runtimes/android/app/src/main/cpp/lrf_jni.cpp is compiled into liblrf_jni.so against
runtimes/native and the ExecuTorch of the pip wheel (runtimes/android/jni-check), loaded by a JVM
with System.loadLibrary through a Java twin of the app's Kotlin declarations (same package, class,
method names and JNI signatures), and driven through everything the app does: manifest, generate
with a per-step listener, cancel, errors as exceptions, self-test, memory, close. The image must
equal what the Python ExecuTorch runtime gives for the same bundle, class, steps and seed.

The Android app itself (Gradle, Kotlin UI, the NDK build of ExecuTorch) is not built here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("executorch")

from lrf_export.run import BundleRuntime  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ANDROID = ROOT / "runtimes" / "android"
JNI_CPP = ANDROID / "app" / "src" / "main" / "cpp" / "lrf_jni.cpp"
KOTLIN_NATIVE = ANDROID / "app" / "src" / "main" / "java" / "org" / "lrf" / "android" / "LrfNative.kt"
JAVA_SRC = ANDROID / "jni-check" / "java"
JAVA_NATIVE = JAVA_SRC / "org" / "lrf" / "android" / "LrfNative.java"
# Incremental across runs (ignored by runtimes/android/.gitignore); override for a scratch build.
BUILD_DIR = Path(os.environ.get("LRF_JNI_BUILD_DIR", ANDROID / "jni-check" / "build"))

KOTLIN_TO_JAVA = {"String": "String", "Boolean": "boolean", "Int": "int", "Long": "long", "Double": "double",
                  "IntArray": "int[]", "LongArray": "long[]", "StepListener?": "StepListener", "StepListener": "StepListener",
                  None: "void"}
CLASS_ID, STEPS, SEED = 3, 4, 7  # 4 is offered but not the tiny bundle's own 2: a non-default schedule


# --- the declarations agree (no tools needed) ----------------------------------------------------------

def kotlin_natives() -> dict[str, tuple[str, list[str]]]:
    text = KOTLIN_NATIVE.read_text()
    out = {}
    for m in re.finditer(r"@JvmStatic external fun (\w+)\((.*?)\)(?:\s*:\s*([\w?]+))?", text, re.S):
        params = [p.split(":")[1].strip() for p in m.group(2).split(",") if p.strip()]
        out[m.group(1)] = (KOTLIN_TO_JAVA[m.group(3)], [KOTLIN_TO_JAVA[p] for p in params])
    return out


def java_natives() -> dict[str, tuple[str, list[str]]]:
    out = {}
    for m in re.finditer(r"public static native (\S+) (\w+)\((.*?)\);", JAVA_NATIVE.read_text(), re.S):
        out[m.group(2)] = (m.group(1), [p.strip().rsplit(" ", 1)[0] for p in m.group(3).split(",") if p.strip()])
    return out


def test_kotlin_java_and_cpp_declare_the_same_jni_methods():
    kt, java = kotlin_natives(), java_natives()
    assert len(kt) == 6 and kt == java, (kt, java)
    cpp = JNI_CPP.read_text()
    assert set(re.findall(r"Java_org_lrf_android_LrfNative_(\w+)\(", cpp)) == set(kt)
    # The listener method and the exception classes the glue looks up by name.
    assert 'GetMethodID(lc, "onStep", "(IID)Z")' in cpp
    kotlin_text = KOTLIN_NATIVE.read_text()
    assert "fun onStep(step: Int, total: Int, ms: Double): Boolean" in kotlin_text
    assert "boolean onStep(int step, int total, double ms);" in (JAVA_NATIVE.parent / "StepListener.java").read_text()
    for cls in re.findall(r'"org/lrf/android/(Lrf\w*Exception)"', cpp):
        assert re.search(rf"class {cls}\(message: String\)", kotlin_text), cls
        assert f"public {cls}(String message)" in (JAVA_NATIVE.parent / f"{cls}.java").read_text(), cls


# --- built and run ------------------------------------------------------------------------------------

def run(cmd: list[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def harness(tiny_bundle, tmp_path_factory):
    missing = [t for t in ("cmake", "javac", "java") if shutil.which(t) is None]
    if shutil.which("c++") is None and shutil.which("g++") is None:
        missing.append("g++")
    if missing:
        pytest.skip(f"building and loading the JNI library needs {', '.join(missing)} on PATH")
    import executorch

    tmp = tmp_path_factory.mktemp("android_jni")
    # The C++ build runs while the session's tiny bundle is exported, if no test did that yet.
    build: dict[str, subprocess.CompletedProcess | BaseException] = {}

    def build_library():
        try:
            build["configure"] = run(["cmake", "-S", str(ANDROID / "jni-check"), "-B", str(BUILD_DIR),
                                      f"-DEXECUTORCH_ROOT={executorch.__path__[0]}",
                                      f"-DPython3_EXECUTABLE={sys.executable}"])
            if build["configure"].returncode == 0:
                build["build"] = run(["cmake", "--build", str(BUILD_DIR), "-j2"], timeout=900)
        except BaseException as e:  # e.g. a timeout: reported below, not lost in the thread
            build["error"] = e

    builder = threading.Thread(target=build_library)
    builder.start()
    try:
        classes = tmp / "classes"
        sources = sorted(str(p) for p in JAVA_SRC.rglob("*.java"))
        javac = run(["javac", "-Xlint:all", "-d", str(classes), *sources])
        assert javac.returncode == 0, javac.stdout + javac.stderr

        result = tiny_bundle("executorch")  # conftest: tiny random model, 2 steps, fp32
        assert result.ok, result.parity
    finally:
        builder.join()
    assert "error" not in build, f"building runtimes/android/jni-check failed: {build['error']!r}"
    for step in ("configure", "build"):
        proc = build.get(step)
        assert proc is not None and proc.returncode == 0, (
            f"cmake {step} of runtimes/android/jni-check failed:\n" + ((proc.stdout + proc.stderr)[-4000:] if proc else ""))
    lib = BUILD_DIR / "liblrf_jni.so"
    assert lib.is_file()
    return {"lib": lib, "classes": classes, "bundle": result.path, "tmp": tmp}


def run_check(h, classpath: str, out_png: Path) -> dict:
    proc = run(["java", f"-Djava.library.path={h['lib'].parent}", "-cp", classpath, "org.lrf.android.check.JniCheck",
                str(h["bundle"]), str(out_png), str(CLASS_ID), str(STEPS), str(SEED)], timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, rest = line.partition(" ")
        lines.setdefault(key, []).append(rest)
    assert "DONE" in lines, proc.stdout
    return lines


def reference_image(bundle: Path) -> np.ndarray:
    return BundleRuntime(bundle).generate({"class": CLASS_ID, "seed": SEED, "steps": STEPS})[0]


def test_jni_library_exports_exactly_the_kotlin_natives(harness):
    if shutil.which("nm") is None:
        pytest.skip("nm (binutils) is not on PATH")
    nm = run(["nm", "-D", "--defined-only", str(harness["lib"])])
    assert nm.returncode == 0, nm.stderr
    exported = set(re.findall(r"\bJava_org_lrf_android_LrfNative_(\w+)\b", nm.stdout))
    assert exported == set(kotlin_natives())


def test_jni_generates_the_python_runtimes_image_and_passes_selftest(harness):
    out = harness["tmp"] / "jni.png"
    r = run_check(harness, str(harness["classes"]), out)
    manifest = json.loads((harness["bundle"] / "manifest.json").read_text())

    # A bad bundle folder is the runtime's one-line LrfException, not a crash.
    assert r["OPEN_MISSING"][0].startswith("LrfException: ") and "manifest.json is missing" in r["OPEN_MISSING"][0]

    info = json.loads(r["MANIFEST"][0])
    assert info["class_names"] == manifest["class_names"]
    assert info["offered_steps"] == sorted(int(n) for n in manifest["sampler"]["schedules"])
    assert info["steps"] == 2 and info["target"] == "executorch" and info["graph"] == "step"
    assert info["image_shape"] == manifest["image"]["shape"]

    # One listener call per step, in order, with the step count and a wall time.
    steps = [s.split() for s in r["STEP"]]
    assert [int(s[0]) for s in steps] == list(range(STEPS)) and {int(s[1]) for s in steps} == {STEPS}
    assert all(float(s[2]) > 0 for s in steps)

    # The image: the same pixels as the Python ExecuTorch runtime (same .pte, same kernels).
    h, w = manifest["image"]["shape"][1:3]  # (1, H, W, 3) pixels
    assert r["IMAGE"][0].split()[:2] == [str(w), str(h)]
    got = np.asarray(Image.open(out).convert("RGB"), dtype=int)
    ref = reference_image(harness["bundle"]).astype(int)
    assert got.shape == ref.shape == (h, w, 3)
    assert np.abs(got - ref).max() <= 1, np.abs(got - ref).max()
    assert r["REPEAT_SAME"] == ["true"]  # deterministic, and the runtime survives the errors below

    assert r["CANCEL"][0] == "LrfCancelledException: generation cancelled"
    assert r["LISTENER_THROWS"][0] == "IllegalStateException: listener failed at step 0"
    assert r["BAD_CLASS"][0].startswith("LrfException: unknown class '1000'")
    assert r["BAD_STEPS"][0].startswith("LrfException: ") and "offers steps" in r["BAD_STEPS"][0]
    assert r["CLOSED"][0].startswith("LrfException: ") and "closed" in r["CLOSED"][0]

    report = json.loads(r["SELFTEST"][0])
    assert report["passed"] is True, report
    names = [c["name"] for c in report["checks"]]
    assert names == [c["name"] for c in manifest["checks"]] and all(c["passed"] for c in report["checks"])
    assert all(isinstance(float(c["value"]), float) for c in report["checks"])  # "Infinity" parses too

    rss, peak_rss, _ = (int(v) for v in r["MEMORY"][0].split())
    assert 0 < rss <= peak_rss


def test_the_apps_kotlin_declarations_bind_to_the_library(harness):
    """The app's own LrfNative.kt, compiled with kotlinc, in place of the Java twin."""
    if shutil.which("kotlinc") is None:
        pytest.skip("kotlinc is not on PATH (apt-get install kotlin); the Java twin was checked instead")
    src = harness["tmp"] / "kt"
    src.mkdir()
    text = KOTLIN_NATIVE.read_text()
    # Accepted by every kotlinc down to Debian's 1.3: a plain interface (same bytecode as the fun
    # interface) and no trailing commas.
    text = text.replace("fun interface StepListener", "interface StepListener")
    (src / "LrfNative.kt").write_text(re.sub(r",(\s*\))", r"\1", text))
    jar = harness["tmp"] / "lrf-kotlin.jar"
    kotlinc = run(["kotlinc", str(src / "LrfNative.kt"), "-include-runtime", "-d", str(jar)], timeout=300)
    assert kotlinc.returncode == 0, kotlinc.stdout + kotlinc.stderr
    # The jar first on the class path: LrfNative, StepListener and the exceptions are Kotlin's.
    r = run_check(harness, f"{jar}{os.pathsep}{harness['classes']}", harness["tmp"] / "kt.png")
    assert json.loads(r["SELFTEST"][0])["passed"] is True
    assert r["CANCEL"][0] == "LrfCancelledException: generation cancelled"
    got = np.asarray(Image.open(harness["tmp"] / "kt.png").convert("RGB"), dtype=int)
    assert np.abs(got - reference_image(harness["bundle"]).astype(int)).max() <= 1
