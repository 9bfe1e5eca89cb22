package org.lrf.android;

/**
 * Desktop twin of app/src/main/java/org/lrf/android/LrfNative.kt: the same package, class and
 * native method names and JNI signatures, so the liblrf_jni.so built by jni-check/ exports exactly
 * the symbols the Kotlin app binds (tests/test_android_jni.py checks the two declarations agree).
 */
public final class LrfNative {
  static {
    System.loadLibrary("lrf_jni");
  }

  private LrfNative() {}

  public static native long nativeOpen(String bundleDir, boolean verify, int threads);

  public static native void nativeClose(long handle);

  public static native String nativeManifestJson(long handle);

  public static native int[] nativeGenerate(long handle, int classId, int steps, long seed, StepListener listener);

  public static native String nativeSelfTestJson(long handle);

  public static native long[] nativeMemoryKib();
}
