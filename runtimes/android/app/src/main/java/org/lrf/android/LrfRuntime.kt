package org.lrf.android

import android.graphics.Bitmap
import org.json.JSONObject
import java.io.File

/** What the UI needs from manifest.json, as the C++ runtime read and verified it. */
class BundleInfo(json: String) {
    private val doc = JSONObject(json)
    val model: String = doc.getString("model")
    val target: String = doc.getString("target")
    val precision: String = doc.getString("precision")
    val graph: String = doc.getString("graph")
    val classNames: List<String> = doc.getJSONArray("class_names").let { a -> List(a.length()) { a.getString(it) } }
    val steps: Int = doc.getInt("steps")
    val offeredSteps: List<Int> = doc.getJSONArray("offered_steps").let { a -> List(a.length()) { a.getInt(it) } }
    val height: Int = doc.getJSONArray("image_shape").getInt(1) // (1, H, W, 3) pixels
    val width: Int = doc.getJSONArray("image_shape").getInt(2)
    val artifactBytes: Long = doc.getLong("artifact_bytes")
}

data class SelfTestCheck(val name: String, val metric: String, val value: Double, val limit: Double, val passed: Boolean)

data class SelfTestResult(val passed: Boolean, val checks: List<SelfTestCheck>)

/** /proc/self/status as the native runtime reads it (KiB; -1 where the kernel does not say). */
data class NativeMemory(val rssKib: Long, val peakRssKib: Long, val peakVmKib: Long) {
    companion object {
        fun read(): NativeMemory = LrfNative.nativeMemoryKib().let { NativeMemory(it[0], it[1], it[2]) }
    }
}

/**
 * One opened bundle. All calls block (they run the model): make them off the main thread, from
 * one thread at a time. Every runtime error is an [LrfException] with a one-line message.
 */
class LrfRuntime private constructor(private var handle: Long, val bundleDir: File) : AutoCloseable {
    val info: BundleInfo = BundleInfo(LrfNative.nativeManifestJson(handle))

    /** The image for [classId] and [seed] over [steps] (0: the bundle's own), [info] width x height. */
    fun generate(classId: Int, steps: Int, seed: Long, listener: StepListener?): Bitmap {
        val argb = LrfNative.nativeGenerate(live(), classId, steps, seed, listener)
        return Bitmap.createBitmap(argb, info.width, info.height, Bitmap.Config.ARGB_8888)
    }

    fun selfTest(): SelfTestResult {
        val doc = JSONObject(LrfNative.nativeSelfTestJson(live()))
        val checks = doc.getJSONArray("checks").let { a ->
            List(a.length()) { i ->
                val c = a.getJSONObject(i)
                // Non-finite values arrive as "Infinity"/"NaN", which getDouble parses.
                SelfTestCheck(c.getString("name"), c.getString("metric"), c.getDouble("value"),
                    c.getDouble("limit"), c.getBoolean("passed"))
            }
        }
        return SelfTestResult(doc.getBoolean("passed"), checks)
    }

    override fun close() {
        if (handle != 0L) {
            LrfNative.nativeClose(handle)
            handle = 0L
        }
    }

    private fun live(): Long = handle  // 0 after close(): the native side refuses it with an LrfException

    companion object {
        /** Opens [dir] (manifest.json + artifacts), checking every file's sha256 first. */
        fun open(dir: File, verify: Boolean = true, threads: Int = 0): LrfRuntime {
            val handle = LrfNative.nativeOpen(dir.absolutePath, verify, threads)
            try {
                return LrfRuntime(handle, dir)
            } catch (e: Throwable) {
                LrfNative.nativeClose(handle)
                throw e
            }
        }
    }
}
