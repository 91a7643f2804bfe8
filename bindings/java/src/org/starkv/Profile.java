package org.starkv;

import java.lang.ref.Reference;
import java.nio.file.Path;

/**
 * How one model's keys and values are compressed: immutable, shareable across threads, saved as a
 * versioned, checksummed file. Pools keep their profile alive, so it may be closed once they exist.
 */
public final class Profile extends NativeHandle {
  Profile(long raw) {
    super(raw);
  }

  /** Reads a .starkv profile file. */
  public static Profile load(String path) {
    return new Profile(StarkvNative.skv_profile_load(checkPath(path)));
  }

  public static Profile load(Path path) {
    return load(path.toString());
  }

  /** Reads a profile from a byte[] or a direct ByteBuffer. */
  public static Profile fromBytes(Object data) {
    return new Profile(StarkvNative.skv_profile_load_from_buffer(data));
  }

  public void save(String path) {
    try {
      StarkvNative.skv_profile_save(raw(), checkPath(path));
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  public void save(Path path) {
    save(path.toString());
  }

  /** The profile file's contents. */
  public byte[] toBytes() {
    try {
      byte[] bytes = new byte[Math.toIntExact(StarkvNative.skv_profile_save_size(raw()))];
      long n = StarkvNative.skv_profile_save_to_buffer(raw(), bytes);
      return n == bytes.length ? bytes : java.util.Arrays.copyOf(bytes, (int) n);
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** Shape, bits, bytes per token and compression. */
  public ProfileInfo info() {
    try {
      return StarkvNative.skv_profile_info(raw());
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  public LayerInfo layerInfo(int layer) {
    try {
      return StarkvNative.skv_profile_layer_info(raw(), layer);
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** The ranks of a layer's key or value groups. */
  public int[] ranks(int layer, TensorKind kind) {
    try {
      int n = StarkvNative.skv_profile_group_count(raw(), layer, kind.swigValue());
      int[] ranks = new int[n];
      StarkvNative.skv_profile_get_ranks(raw(), layer, kind.swigValue(), ranks);
      return ranks;
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /**
   * One group's projection as float32, rotation folded in: DOWN is [in_dim x rank], UP is
   * [rank x in_dim] (in_dim = D head-wise, G*D joint).
   */
  public float[] projection(int layer, TensorKind kind, int group, Projection which) {
    try {
      long n = StarkvNative.skv_profile_projection_size(
          raw(), layer, kind.swigValue(), group, which.swigValue());
      float[] out = new float[Math.toIntExact(n)];
      projection(layer, kind, group, which, out);
      return out;
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** The same into a float[] or direct FloatBuffer of exactly the projection's size. */
  public void projection(int layer, TensorKind kind, int group, Projection which, Object out) {
    try {
      StarkvNative.skv_profile_get_projection(
          raw(), layer, kind.swigValue(), group, which.swigValue(), out);
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** Latent channels per token of a layer: the row width appendLatents expects. */
  public int latentWidth(int layer) {
    try {
      return StarkvNative.skv_profile_latent_width(raw(), layer);
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  static String checkPath(String path) {
    if (path != null && path.indexOf('\0') >= 0) {
      throw StarkvException.of(
          Status.INVALID_ARGUMENT.swigValue(), "path contains a NUL character");
    }
    return path;
  }
}
