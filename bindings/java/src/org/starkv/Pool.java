package org.starkv;

import java.lang.ref.Reference;

/**
 * Pages of quantized latents and the sequences stored in them. Keeps its context and profile
 * alive. Tensors: float[] / short[] or direct NIO buffers in the context's memory (host memory on
 * the CPU); sizes are checked against the profile: keys and values [n, G, D], queries and outputs
 * [n, H, D], latents [n, latentWidth(layer)].
 */
public final class Pool extends NativeHandle {
  private final Context context;
  private final Profile profile;
  private final int rowWidth; // H * D

  public Pool(Context context, Profile profile) {
    this(context, profile, null);
  }

  /** params: {@link PoolParams#defaults()} with page size and capacity set (null: defaults). */
  public Pool(Context context, Profile profile, PoolParams params) {
    super(create(context, profile, params));
    this.context = context;
    this.profile = profile;
    ProfileInfo info = profile.info();
    this.rowWidth = info.getNHeads() * info.getHeadDim();
    info.delete();
  }

  private static long create(Context context, Profile profile, PoolParams params) {
    try {
      return StarkvNative.skv_pool_create(context.raw(), profile.raw(), params);
    } finally {
      Reference.reachabilityFence(context);
      Reference.reachabilityFence(profile);
    }
  }

  public Context context() {
    return context;
  }

  public Profile profile() {
    return profile;
  }

  /** Capacity, tokens and bytes in use, pages, sequences. */
  public PoolUsage usage() {
    try {
      return StarkvNative.skv_pool_usage(raw());
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** A new, empty sequence; returns its id. */
  public int createSequence() {
    try {
      return StarkvNative.skv_seq_create(raw());
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** A new sequence sharing all of parent's tokens (copy-on-write). */
  public int fork(int parent) {
    try {
      return StarkvNative.skv_seq_fork(raw(), parent);
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  public void release(int seq) {
    try {
      StarkvNative.skv_seq_release(raw(), seq);
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** Tokens stored in every layer of the sequence. */
  public int length(int seq) {
    try {
      return StarkvNative.skv_seq_length(raw(), seq);
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** A snapshot of the sequence (zstd-compressed, checksummed). */
  public byte[] exportSequence(int seq) {
    try {
      byte[] bytes = new byte[Math.toIntExact(StarkvNative.skv_seq_export_size(raw(), seq))];
      long n = StarkvNative.skv_seq_export(raw(), seq, bytes);
      return n == bytes.length ? bytes : java.util.Arrays.copyOf(bytes, (int) n);
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** Restores a snapshot (byte[] or direct ByteBuffer) as a new sequence; returns its id. */
  public int importSequence(Object snapshot) {
    try {
      return StarkvNative.skv_seq_import(raw(), snapshot);
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** Stores new tokens' pre-RoPE keys and values, each [n, G, D], dtype from the data. */
  public void append(int layer, int[] seqIds, int[] positions, Object keys, Object values) {
    append(layer, seqIds, positions, keys, values, null);
  }

  /** dtype: BF16 for short[] bfloat16 data (null: from the data; short[] means float16). */
  public void append(
      int layer, int[] seqIds, int[] positions, Object keys, Object values, DType dtype) {
    try {
      StarkvNative.skv_append(raw(), layer, seqIds, positions, keys, values, dtype(dtype));
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** Stores latents computed with the DOWN projections: [n, latentWidth(layer)]. */
  public void appendLatents(int layer, int[] seqIds, int[] positions, Object latents) {
    appendLatents(layer, seqIds, positions, latents, null);
  }

  public void appendLatents(int layer, int[] seqIds, int[] positions, Object latents, DType dtype) {
    try {
      StarkvNative.skv_append_latents(raw(), layer, seqIds, positions, latents, dtype(dtype));
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /**
   * Attention of post-RoPE queries [n, H, D] over the stored tokens of seqIds (one per query);
   * kvLengths (may be null): attend to the first kvLengths[i] tokens. Writes out [n, H, D].
   */
  public void attend(int layer, int[] seqIds, int[] kvLengths, Object queries, Object out) {
    attend(layer, seqIds, kvLengths, queries, null, out, null);
  }

  public void attend(int layer, int[] seqIds, int[] kvLengths, Object queries, DType queryDType,
      Object out, DType outDType) {
    try {
      StarkvNative.skv_attend(
          raw(), layer, seqIds, kvLengths, queries, dtype(queryDType), out, dtype(outDType));
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** The same with a new float32 output. */
  public float[] attend(int layer, int[] seqIds, int[] kvLengths, float[] queries) {
    float[] out = new float[Math.multiplyExact(seqIds == null ? 0 : seqIds.length, rowWidth)];
    attend(layer, seqIds, kvLengths, queries, out);
    return out;
  }

  /** A decode step on this pool: plan a batch once, run it per layer. */
  public DecodeStep decodeStep() {
    return new DecodeStep(this);
  }

  int rowWidth() {
    return rowWidth;
  }
}
