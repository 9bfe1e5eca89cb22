package org.lrf.android

import android.content.Context
import android.content.res.AssetManager
import java.io.File

/**
 * Where the app finds its bundle (an lrf-export --target executorch folder). ExecuTorch maps the
 * .pte files, so the bundle has to be a real folder, not an APK asset:
 *
 *  1. pushed: `adb push <bundle>/. /sdcard/Android/data/org.lrf.android/files/bundle/`
 *     (the app's external files dir, writable by adb without root), used as is;
 *  2. shipped: `app/src/main/assets/bundle/` in the APK, copied once to the app's internal
 *     files dir (again whenever the shipped manifest.json changes);
 *  3. placed: the internal files dir's `bundle/` without a shipped one, e.g. copied there with
 *     `adb shell run-as org.lrf.android cp -r /data/local/tmp/bundle files/` (debug builds).
 */
object BundleLocator {
    const val ASSET_DIR = "bundle"
    private const val MANIFEST = "manifest.json"

    class Found(val dir: File, val source: String)

    fun pushedDir(context: Context): File? = context.getExternalFilesDir(null)?.let { File(it, "bundle") }

    /** Blocking (may copy a few MB): call off the main thread. */
    fun locate(context: Context): Found {
        pushedDir(context)?.let { dir ->
            if (File(dir, MANIFEST).isFile) return Found(dir, "pushed with adb")
        }
        val assets = context.assets
        val target = File(context.filesDir, ASSET_DIR)
        if (!assets.list(ASSET_DIR).orEmpty().contains(MANIFEST)) {
            if (File(target, MANIFEST).isFile) return Found(target, "placed in the app's files")
            throw LrfException(
                "no bundle: push one with adb push <bundle>/. ${pushedDir(context)?.path ?: "<external files>/bundle"}/ " +
                    "or put it in app/src/main/assets/bundle/ and rebuild (see runtimes/android/README.md)"
            )
        }
        val shipped = assets.open("$ASSET_DIR/$MANIFEST").use { it.readBytes() }
        val copied = File(target, MANIFEST)
        if (!copied.isFile || !copied.readBytes().contentEquals(shipped)) {
            // Copy beside, then swap: a copy cut short never looks like a complete bundle.
            val staging = File(context.filesDir, "$ASSET_DIR.partial")
            staging.deleteRecursively()
            copyAssets(assets, ASSET_DIR, staging)
            target.deleteRecursively()
            if (!staging.renameTo(target)) throw LrfException("could not move the bundle into ${target.path}; free storage and retry")
        }
        return Found(target, "copied from the APK's assets")
    }

    private fun copyAssets(assets: AssetManager, path: String, to: File) {
        val children = assets.list(path).orEmpty()
        if (children.isEmpty()) {  // a file (AssetManager lists files as having no children)
            to.parentFile?.mkdirs()
            assets.open(path).use { input -> to.outputStream().use { input.copyTo(it) } }
            return
        }
        to.mkdirs()
        for (child in children) copyAssets(assets, "$path/$child", File(to, child))
    }
}
