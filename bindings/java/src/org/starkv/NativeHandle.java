package org.starkv;

import java.lang.ref.Cleaner;

/**
 * A native starkv handle. {@link #close()} releases it (use try-with-resources); a {@link Cleaner}
 * releases a handle the program lost, as a safety net only. A closed handle stays a valid object:
 * every call on it throws {@link StarkvException.Closed}.
 *
 * <p>Subclasses call native code with {@link #raw()} and keep {@code this} reachable until the
 * call returns ({@code Reference.reachabilityFence}), so the cleaner cannot release a handle that
 * is in use.
 */
abstract class NativeHandle implements AutoCloseable {
  private static final Cleaner CLEANER = Cleaner.create();

  /** Holds the raw handle apart from the object, so the cleaner does not keep it reachable. */
  private static final class Releaser implements Runnable {
    private volatile long raw;
    private volatile boolean explicit;

    Releaser(long raw) {
      this.raw = raw;
    }

    @Override
    public void run() {
      long handle = raw;
      raw = 0;
      if (handle == 0) {
        return;
      }
      if (explicit) {
        StarkvNative.skv_close(handle);
      } else {
        // a cleaner thread: the binding layer defers the destroy to the context's own thread
        StarkvNative.skv_finalize(handle);
      }
    }
  }

  private final Releaser releaser;
  private final Cleaner.Cleanable cleanable;

  NativeHandle(long raw) {
    releaser = new Releaser(raw);
    cleanable = CLEANER.register(this, releaser);
  }

  /** The raw handle; 0 once closed, which the native layer reports as a closed handle. */
  final long raw() {
    return releaser.raw;
  }

  /** Releases the handle now. Closing twice is harmless. */
  @Override
  public void close() {
    releaser.explicit = true;
    cleanable.clean();
  }

  /** Whether {@link #close()} was called. */
  public final boolean isClosed() {
    return releaser.raw == 0;
  }

  static int dtype(DType dtype) {
    return dtype == null ? StarkvNativeConstants.SKV_DTYPE_AUTO : dtype.swigValue();
  }
}
