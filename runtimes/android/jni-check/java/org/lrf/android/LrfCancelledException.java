package org.lrf.android;

/** Desktop twin of the Kotlin LrfCancelledException (a StepListener returned false). */
public class LrfCancelledException extends LrfException {
  private static final long serialVersionUID = 1L;

  public LrfCancelledException(String message) {
    super(message);
  }
}
