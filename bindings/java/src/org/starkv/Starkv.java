package org.starkv;

/**
 * starkv from Java: a compressed KV cache for LLM inference (STAR-KV).
 *
 * <pre>{@code
 * try (Context ctx = new Context()) {
 *   ProfileParams pp = ProfileParams.defaults();
 *   pp.setNLayers(2); pp.setNHeads(8); pp.setNKvHeads(2); pp.setHeadDim(64); pp.setHiddenDim(256);
 *   Profile profile;
 *   try (ProfileBuilder b = new ProfileBuilder(ctx, pp)) {
 *     for (int l = 0; l < 2; ++l) b.addLayer(l, wK[l], wV[l]);   // float[] [G*D, d]
 *     profile = b.finish();
 *   }
 *   try (profile; Pool pool = new Pool(ctx, profile)) {
 *     int seq = pool.createSequence();
 *     pool.append(0, seqIds, positions, keys, values);             // [n, G, D]
 *     float[] out = pool.attend(0, new int[] {seq}, null, query);  // [1, H, D]
 *   }
 * }
 * }</pre>
 *
 * <p>Tensors are {@code float[]} / {@code short[]} (16-bit values: float16, or bfloat16 with
 * {@link DType#BF16}) or direct NIO buffers in native byte order; they are pinned or used in
 * place, never copied, and their size and dtype are checked against the profile before the call.
 * Handles are {@link AutoCloseable}; a pool keeps its context and profile alive. Failures throw
 * {@link StarkvException}. A context and everything made from it are used by one thread at a time.
 */
public final class Starkv {
  private Starkv() {}

  /** The loaded library's version, e.g. "0.1.0". */
  public static String version() {
    return StarkvNative.starkv_version_string();
  }

  /** The version as a number (100 for 0.1.0). */
  public static long versionNumber() {
    return StarkvNative.starkv_version_number();
  }

  /** The loaded library's ABI version. */
  public static long abiVersion() {
    return StarkvNative.starkv_abi_version();
  }

  /** Whether the loaded library serves the dlopen function table of this ABI version. */
  public static boolean abiSupported(long abiVersion) {
    return StarkvNative.skv_abi_supported(abiVersion) != 0;
  }

  /** A short description of a status ("pool full"). */
  public static String statusString(Status status) {
    return StarkvNative.starkv_status_string(status);
  }

  /** Bytes per element of a dtype. */
  public static long dtypeSize(DType dtype) {
    return StarkvNative.starkv_dtype_size(dtype);
  }

  /** Whether this build has the backend (and, for CUDA, a usable device). */
  public static boolean backendAvailable(Backend backend) {
    return StarkvNative.starkv_backend_available(backend) != 0;
  }
}
