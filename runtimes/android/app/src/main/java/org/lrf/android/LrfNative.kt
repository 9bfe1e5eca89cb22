package org.lrf.android

/**
 * The JNI entry points of liblrf_jni.so (src/main/cpp/lrf_jni.cpp), which wraps the C++ runtime
 * of runtimes/native. Not thread-safe per handle: [LrfRuntime] calls them from one thread.
 *
 * The desktop check (runtimes/android/jni-check/java/org/lrf/android/LrfNative.java) declares
 * the same class, names and signatures; tests/test_android_jni.py keeps the two in step.
 */
object LrfNative {
    init {
        System.loadLibrary("lrf_jni")
    }

    /** Opens (and with [verify], sha256-checks) a bundle folder; returns a handle. */
    @JvmStatic external fun nativeOpen(bundleDir: String, verify: Boolean, threads: Int): Long

    @JvmStatic external fun nativeClose(handle: Long)

    /** model, target, precision, graph, class_names, steps, offered_steps, image_shape, ... */
    @JvmStatic external fun nativeManifestJson(handle: Long): String

    /** One image, ARGB_8888 pixels row-major; [steps] 0 = the bundle's own count. */
    @JvmStatic external fun nativeGenerate(
        handle: Long,
        classId: Int,
        steps: Int,
        seed: Long,
        listener: StepListener?,
    ): IntArray

    /** lrf::run_selftest on the bundle's test vectors: {"passed": bool, "checks": [...]}. */
    @JvmStatic external fun nativeSelfTestJson(handle: Long): String

    /** This process's {VmRSS, VmHWM, VmPeak} in KiB, from /proc/self/status. */
    @JvmStatic external fun nativeMemoryKib(): LongArray
}

/** Called on the generating thread after every denoising step; return false to cancel. */
fun interface StepListener {
    fun onStep(step: Int, total: Int, ms: Double): Boolean
}

/** An lrf::Error from the runtime: [message] is its one line (problem and fix). */
open class LrfException(message: String) : RuntimeException(message)

/** A [StepListener] returned false. */
class LrfCancelledException(message: String) : LrfException(message)

/** The model did not fit the memory left to the app (lrf::OutOfMemory, std::bad_alloc). */
class LrfOutOfMemoryException(message: String) : LrfException(message)
