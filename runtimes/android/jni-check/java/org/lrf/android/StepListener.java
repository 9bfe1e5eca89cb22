package org.lrf.android;

/** Desktop twin of the Kotlin fun interface StepListener: called after every denoising step. */
public interface StepListener {
  /** Returns false to cancel (the native call then throws LrfCancelledException). */
  boolean onStep(int step, int total, double ms);
}
