package org.lrf.android

import android.app.Activity
import android.graphics.Bitmap
import android.graphics.Color
import android.graphics.drawable.BitmapDrawable
import android.os.Build
import android.os.Bundle
import android.os.Debug
import android.os.SystemClock
import android.view.View
import android.view.WindowInsets
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.EditText
import android.widget.ImageView
import android.widget.ProgressBar
import android.widget.Spinner
import android.widget.TextView
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Job
import kotlinx.coroutines.MainScope
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.cancel
import kotlinx.coroutines.job
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.util.Locale
import java.util.concurrent.Executors
import java.util.concurrent.atomic.AtomicBoolean
import kotlin.math.max

/**
 * One screen: pick class / steps / seed, generate with a per-step progress bar (cancellable),
 * see the 32x32 image upscaled without smoothing, per-step latency and memory, run the bundle's
 * self-test. Everything numeric happens in C++ (liblrf_jni.so); this class only wires views.
 */
class MainActivity : Activity() {
    // Every native call runs on this one thread: a runtime handle is not thread-safe.
    private val nativeExecutor = Executors.newSingleThreadExecutor { r -> Thread(r, "lrf-native") }
    private val nativeThread = nativeExecutor.asCoroutineDispatcher()
    private val scope = MainScope()

    @Volatile private var runtime: LrfRuntime? = null  // opened and closed on the native thread only
    private var busy: Job? = null
    private val cancelRequested = AtomicBoolean(false)

    private lateinit var bundleInfo: TextView
    private lateinit var classSpinner: Spinner
    private lateinit var stepsSpinner: Spinner
    private lateinit var seedInput: EditText
    private lateinit var generateButton: Button
    private lateinit var cancelButton: Button
    private lateinit var selfTestButton: Button
    private lateinit var reloadButton: Button
    private lateinit var progress: ProgressBar
    private lateinit var progressText: TextView
    private lateinit var image: ImageView
    private lateinit var errorText: TextView
    private lateinit var timingText: TextView
    private lateinit var memoryText: TextView
    private lateinit var selfTestText: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        bundleInfo = findViewById(R.id.bundleInfo)
        classSpinner = findViewById(R.id.classSpinner)
        stepsSpinner = findViewById(R.id.stepsSpinner)
        seedInput = findViewById(R.id.seedInput)
        generateButton = findViewById(R.id.generateButton)
        cancelButton = findViewById(R.id.cancelButton)
        selfTestButton = findViewById(R.id.selfTestButton)
        reloadButton = findViewById(R.id.reloadButton)
        progress = findViewById(R.id.progress)
        progressText = findViewById(R.id.progressText)
        image = findViewById(R.id.image)
        errorText = findViewById(R.id.errorText)
        timingText = findViewById(R.id.timingText)
        memoryText = findViewById(R.id.memoryText)
        selfTestText = findViewById(R.id.selfTestText)
        padForSystemBars(findViewById(R.id.root))

        generateButton.setOnClickListener { generate() }
        cancelButton.setOnClickListener {
            cancelRequested.set(true)
            progressText.text = "cancelling…"
        }
        selfTestButton.setOnClickListener { selfTest() }
        reloadButton.setOnClickListener { loadBundle() }
        loadBundle()
    }

    override fun onDestroy() {
        cancelRequested.set(true)  // a running generation stops at its next step
        scope.cancel()
        nativeExecutor.execute {
            runtime?.close()
            runtime = null
        }
        nativeExecutor.shutdown()
        super.onDestroy()
    }

    private fun loadBundle() {
        if (busy?.isActive == true) return
        setBusy(true, cancellable = false)
        showError(null)
        bundleInfo.text = getString(R.string.loading)
        busy = scope.launch {
            try {
                val found = withContext(nativeThread) {
                    runtime?.close()
                    runtime = null
                    val found = BundleLocator.locate(this@MainActivity)
                    runtime = LrfRuntime.open(found.dir)  // verifies every file's sha256 first
                    found
                }
                runtime?.let { showBundle(it, found) }
            } catch (e: CancellationException) {
                throw e
            } catch (e: Throwable) {
                bundleInfo.text = "No bundle loaded."
                showError(e)
            } finally {
                setBusy(false, cancellable = false)
            }
        }
    }

    private fun showBundle(rt: LrfRuntime, found: BundleLocator.Found) {
        val info = rt.info
        bundleInfo.text = String.format(
            Locale.US, "%s · %s %s · %s graph · %.1f MB\n%s (%s)",
            info.model, info.target, info.precision, info.graph, info.artifactBytes / 1e6, found.dir.path, found.source,
        )
        classSpinner.adapter = adapter(info.classNames.mapIndexed { i, name -> "$i  $name" })
        stepsSpinner.adapter = adapter(info.offeredSteps.map { if (it == info.steps) "$it (bundle default)" else "$it" })
        stepsSpinner.setSelection(max(0, info.offeredSteps.indexOf(info.steps)))
    }

    private fun generate() {
        val info = runtime?.info ?: return
        val classId = classSpinner.selectedItemPosition
        val steps = info.offeredSteps.getOrNull(stepsSpinner.selectedItemPosition) ?: info.steps
        val seed = seedInput.text.toString().toLongOrNull()
        if (seed == null || seed < 0) {
            showError(LrfException("seed '${seedInput.text}' is invalid; use a whole number ≥ 0"))
            return
        }
        cancelRequested.set(false)
        setBusy(true, cancellable = true)
        showError(null)
        progress.max = steps
        progress.progress = 0
        progressText.text = "step 0 / $steps"
        busy = scope.launch {
            val job = coroutineContext.job
            try {
                val t0 = SystemClock.elapsedRealtimeNanos()
                val (bitmap, stepMs) = withContext(nativeThread) {
                    val rt = runtime ?: throw LrfException("no bundle loaded; press Reload bundle")
                    val stepMs = ArrayList<Double>()
                    val bitmap = rt.generate(classId, steps, seed, StepListener { step, total, ms ->
                        stepMs += ms
                        runOnUiThread {
                            progress.max = total
                            progress.progress = step + 1
                            progressText.text = String.format(Locale.US, "step %d / %d  (%.1f ms)", step + 1, total, ms)
                        }
                        !cancelRequested.get() && job.isActive
                    })
                    bitmap to stepMs
                }
                val totalMs = (SystemClock.elapsedRealtimeNanos() - t0) / 1e6
                showImage(bitmap)
                showTimings(info, classId, steps, seed, stepMs, totalMs)
                progressText.text = "done"
                showMemory()
            } catch (e: LrfCancelledException) {
                progressText.text = "cancelled at step ${progress.progress} / ${progress.max}"
            } catch (e: CancellationException) {
                throw e
            } catch (e: Throwable) {
                progressText.text = ""
                showError(e)
            } finally {
                setBusy(false, cancellable = false)
            }
        }
    }

    private fun selfTest() {
        setBusy(true, cancellable = false)
        showError(null)
        selfTestText.text = "self-test running…"
        selfTestText.setTextColor(Color.DKGRAY)
        busy = scope.launch {
            try {
                val t0 = SystemClock.elapsedRealtimeNanos()
                val result = withContext(nativeThread) {
                    (runtime ?: throw LrfException("no bundle loaded; press Reload bundle")).selfTest()
                }
                val seconds = (SystemClock.elapsedRealtimeNanos() - t0) / 1e9
                val failed = result.checks.filter { !it.passed }
                selfTestText.text = buildString {
                    append(if (result.passed) "Self-test PASSED" else "Self-test FAILED")
                    append(String.format(Locale.US, ": %d/%d checks in %.1f s\n",
                        result.checks.size - failed.size, result.checks.size, seconds))
                    for (c in failed + result.checks.filter { it.passed }) {  // errors first
                        val bound = if (c.metric == "psnr_db") ">=" else "<="
                        append(String.format(Locale.US, "%-4s %-20s %-7s %10.4g (%s %g)\n",
                            if (c.passed) "ok" else "FAIL", c.name, c.metric, c.value, bound, c.limit))
                    }
                }
                selfTestText.setTextColor(if (result.passed) Color.rgb(0, 120, 0) else Color.rgb(176, 0, 32))
                showMemory()
            } catch (e: CancellationException) {
                throw e
            } catch (e: Throwable) {
                selfTestText.text = "Self-test could not run."
                selfTestText.setTextColor(Color.rgb(176, 0, 32))
                showError(e)
            } finally {
                setBusy(false, cancellable = false)
            }
        }
    }

    /** Nearest-neighbour upscale: the model's pixels stay square and sharp. */
    private fun showImage(bitmap: Bitmap) {
        val metrics = resources.displayMetrics
        val room = (if (image.width > 0) image.width else metrics.widthPixels).coerceAtMost(metrics.heightPixels / 2)
        val scale = max(1, room / bitmap.width)
        val big = Bitmap.createScaledBitmap(bitmap, bitmap.width * scale, bitmap.height * scale, false)
        image.setImageDrawable(BitmapDrawable(resources, big).apply { isFilterBitmap = false })
    }

    private fun showTimings(info: BundleInfo, classId: Int, steps: Int, seed: Long, stepMs: List<Double>, totalMs: Double) {
        val name = info.classNames.getOrElse(classId) { "$classId" }
        val sum = stepMs.sum()
        timingText.text = buildString {
            append("per-step ms: ").append(stepMs.joinToString(" ") { String.format(Locale.US, "%.1f", it) }).append('\n')
            append(String.format(Locale.US, "mean step %.1f ms · noise+decode+JNI %.1f ms · image %.1f ms\n",
                if (stepMs.isEmpty()) 0.0 else sum / stepMs.size, totalMs - sum, totalMs))
            append("$name, seed $seed, $steps steps")
        }
    }

    private fun showMemory() {
        val info = Debug.MemoryInfo().also { Debug.getMemoryInfo(it) }
        val vm = NativeMemory.read()
        memoryText.text = String.format(
            Locale.US,
            "PSS %.1f MiB (native %.1f, java %.1f) · Debug.getPss %.1f MiB\nVmRSS %.1f MiB · VmHWM (peak RSS) %.1f MiB",
            info.totalPss / 1024.0, info.nativePss / 1024.0, info.dalvikPss / 1024.0, Debug.getPss() / 1024.0,
            vm.rssKib / 1024.0, vm.peakRssKib / 1024.0,
        )
    }

    private fun showError(e: Throwable?) {
        if (e == null) {
            errorText.visibility = View.GONE
            return
        }
        errorText.text = when (e) {
            is LrfException -> e.message
            is LinkageError -> "liblrf_jni.so could not be loaded (${e.message}); was the app built for this ABI?"
            else -> "${e.javaClass.simpleName}: ${e.message}"
        }
        errorText.visibility = View.VISIBLE
    }

    private fun setBusy(isBusy: Boolean, cancellable: Boolean) {
        val ready = !isBusy && runtime != null
        generateButton.isEnabled = ready
        selfTestButton.isEnabled = ready
        reloadButton.isEnabled = !isBusy
        cancelButton.isEnabled = isBusy && cancellable
    }

    private fun adapter(items: List<String>) =
        ArrayAdapter(this, android.R.layout.simple_spinner_item, items).also {
            it.setDropDownViewResource(android.R.layout.simple_spinner_dropdown_item)
        }

    /** targetSdk 35+ draws edge to edge: keep the content clear of the status and navigation bars. */
    private fun padForSystemBars(root: View) {
        root.setOnApplyWindowInsetsListener { v, insets ->
            if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.R) {
                val bars = insets.getInsets(WindowInsets.Type.systemBars() or WindowInsets.Type.ime())
                v.setPadding(bars.left, bars.top, bars.right, bars.bottom)
            } else {
                @Suppress("DEPRECATION")
                v.setPadding(insets.systemWindowInsetLeft, insets.systemWindowInsetTop,
                    insets.systemWindowInsetRight, insets.systemWindowInsetBottom)
            }
            insets
        }
    }
}
