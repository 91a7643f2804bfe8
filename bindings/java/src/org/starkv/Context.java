package org.starkv;

import java.lang.ref.Reference;

/** Where the work runs: {@code new Context()} (the CPU) or a CUDA device and stream. */
public final class Context extends NativeHandle {
  /** The CPU backend, one worker thread per core. */
  public Context() {
    this(Backend.CPU, 0, 0L, 0);
  }

  /** A backend with its defaults (device 0, the default stream). */
  public Context(Backend backend) {
    this(backend, 0, 0L, 0);
  }

  /**
   * @param device CUDA device ordinal (CUDA only)
   * @param stream a cudaStream_t as a long; 0 is the default stream (CUDA only)
   * @param nThreads CPU worker threads; 0 = one per core
   */
  public Context(Backend backend, int device, long stream, int nThreads) {
    super(create(backend, device, stream, nThreads));
  }

  /** From a full params struct ({@link ContextParams#defaults()}) and a stream. */
  public Context(ContextParams params, long stream) {
    super(StarkvNative.skv_context_create(params, stream));
  }

  private static long create(Backend backend, int device, long stream, int nThreads) {
    ContextParams params = new ContextParams();
    try {
      params.setBackend(backend);
      params.setDevice(device);
      params.setNThreads(nThreads);
      return StarkvNative.skv_context_create(params, stream);
    } finally {
      params.delete();
    }
  }

  /** The backend this context runs on. */
  public Backend backend() {
    try {
      return Backend.swigToEnum(StarkvNative.skv_context_backend(raw()));
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** Work issued afterwards goes to this CUDA stream; the caller keeps owning it. */
  public void setStream(long stream) {
    try {
      StarkvNative.skv_context_set_stream(raw(), stream);
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** Waits until the context's work has finished (a no-op on the CPU). */
  public void synchronize() {
    try {
      StarkvNative.skv_context_synchronize(raw());
    } finally {
      Reference.reachabilityFence(this);
    }
  }
}
