package org.lrf.android;

/** Desktop twin of the Kotlin LrfOutOfMemoryException (lrf::OutOfMemory, std::bad_alloc). */
public class LrfOutOfMemoryException extends LrfException {
  private static final long serialVersionUID = 1L;

  public LrfOutOfMemoryException(String message) {
    super(message);
  }
}
