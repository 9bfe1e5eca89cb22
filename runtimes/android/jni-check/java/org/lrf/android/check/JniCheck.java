package org.lrf.android.check;

import java.awt.image.BufferedImage;
import java.io.File;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import org.lrf.android.LrfCancelledException;
import org.lrf.android.LrfException;
import org.lrf.android.LrfNative;

/**
 * Drives liblrf_jni.so on the desktop through the same JNI entry points the Android app calls:
 * open, manifest, generate (with a per-step listener), cancel, errors, self-test, memory, close.
 * One result per line, "KEY value", for tests/test_android_jni.py to parse.
 *
 * <p>usage: JniCheck BUNDLE OUT.png [CLASS_ID] [STEPS] [SEED]
 */
public final class JniCheck {
  private JniCheck() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: JniCheck BUNDLE OUT.png [CLASS_ID] [STEPS] [SEED]");
      System.exit(2);
    }
    String bundle = args[0];
    File out = new File(args[1]);
    int classId = args.length > 2 ? Integer.parseInt(args[2]) : 0;
    int steps = args.length > 3 ? Integer.parseInt(args[3]) : 0;
    long seed = args.length > 4 ? Long.parseLong(args[4]) : 0L;

    // A bad bundle is an LrfException with the runtime's one-line message, not a crash.
    try {
      LrfNative.nativeOpen(bundle + "/does-not-exist", true, 0);
      System.out.println("OPEN_MISSING no-exception");
    } catch (LrfException e) {
      System.out.println("OPEN_MISSING " + e.getClass().getSimpleName() + ": " + e.getMessage());
    }

    long handle = LrfNative.nativeOpen(bundle, true, 0);
    System.out.println("MANIFEST " + LrfNative.nativeManifestJson(handle));

    List<String> stepLines = new ArrayList<>();
    long t0 = System.nanoTime();
    int[] argb =
        LrfNative.nativeGenerate(
            handle,
            classId,
            steps,
            seed,
            (step, total, ms) -> {
              stepLines.add("STEP " + step + " " + total + " " + ms);
              return true;
            });
    double totalMs = (System.nanoTime() - t0) / 1e6;
    for (String line : stepLines) System.out.println(line);
    int side = (int) Math.round(Math.sqrt(argb.length));
    BufferedImage image = new BufferedImage(side, side, BufferedImage.TYPE_INT_RGB);
    image.setRGB(0, 0, side, side, argb, 0, side);
    ImageIO.write(image, "png", out);
    System.out.println("IMAGE " + side + " " + side + " " + out.getPath() + " " + totalMs);

    // Cancel from the listener at the first step.
    try {
      LrfNative.nativeGenerate(handle, classId, steps, seed, (step, total, ms) -> false);
      System.out.println("CANCEL no-exception");
    } catch (LrfCancelledException e) {
      System.out.println("CANCEL " + e.getClass().getSimpleName() + ": " + e.getMessage());
    }

    // A listener's own exception stops the loop and propagates unchanged.
    try {
      LrfNative.nativeGenerate(
          handle,
          classId,
          steps,
          seed,
          (step, total, ms) -> {
            throw new IllegalStateException("listener failed at step " + step);
          });
      System.out.println("LISTENER_THROWS no-exception");
    } catch (IllegalStateException e) {
      System.out.println("LISTENER_THROWS " + e.getClass().getSimpleName() + ": " + e.getMessage());
    }

    // User errors: an unknown class, a step count the bundle does not offer.
    try {
      LrfNative.nativeGenerate(handle, 1000, steps, seed, null);
      System.out.println("BAD_CLASS no-exception");
    } catch (LrfException e) {
      System.out.println("BAD_CLASS " + e.getClass().getSimpleName() + ": " + e.getMessage());
    }
    try {
      LrfNative.nativeGenerate(handle, classId, 7, seed, null);
      System.out.println("BAD_STEPS no-exception");
    } catch (LrfException e) {
      System.out.println("BAD_STEPS " + e.getClass().getSimpleName() + ": " + e.getMessage());
    }

    // The runtime is still usable after all of that, and without a listener.
    int[] again = LrfNative.nativeGenerate(handle, classId, steps, seed, null);
    System.out.println("REPEAT_SAME " + java.util.Arrays.equals(argb, again));

    System.out.println("SELFTEST " + LrfNative.nativeSelfTestJson(handle));
    long[] mem = LrfNative.nativeMemoryKib();
    System.out.println("MEMORY " + mem[0] + " " + mem[1] + " " + mem[2]);

    LrfNative.nativeClose(handle);
    try {
      LrfNative.nativeManifestJson(0L);
      System.out.println("CLOSED no-exception");
    } catch (LrfException e) {
      System.out.println("CLOSED " + e.getClass().getSimpleName() + ": " + e.getMessage());
    }
    System.out.println("DONE");
  }
}
