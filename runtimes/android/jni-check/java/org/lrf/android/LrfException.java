package org.lrf.android;

/** Desktop twin of the Kotlin LrfException: an lrf::Error with its one-line message. */
public class LrfException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public LrfException(String message) {
    super(message);
  }
}
