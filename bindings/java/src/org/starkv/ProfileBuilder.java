package org.starkv;

import java.lang.ref.Reference;

/**
 * Builds a {@link Profile} layer by layer from weights and/or calibration data, or from factors
 * computed elsewhere. Keeps its context alive.
 */
public final class ProfileBuilder extends NativeHandle {
  private final Context context;

  /** A builder whose linear algebra runs on the CPU. */
  public ProfileBuilder(ProfileParams params) {
    this(null, params, null);
  }

  /** context: where the linear algebra runs (null: the CPU). */
  public ProfileBuilder(Context context, ProfileParams params) {
    this(context, params, null);
  }

  /** uncompressedLayers: layers kept at full rank and 16 bits (may be null). */
  public ProfileBuilder(Context context, ProfileParams params, int[] uncompressedLayers) {
    super(create(context, params, uncompressedLayers));
    this.context = context;
  }

  private static long create(Context context, ProfileParams params, int[] uncompressedLayers) {
    if (context == null) {
      return StarkvNative.skv_builder_create(0L, 1, params, uncompressedLayers);
    }
    try {
      return StarkvNative.skv_builder_create(context.raw(), 0, params, uncompressedLayers);
    } finally {
      Reference.reachabilityFence(context);
    }
  }

  /** The context the builder runs on (null: the CPU). */
  public Context context() {
    return context;
  }

  /** Decomposes one layer from W_K and W_V ([G*D, d] each, float32 or 16-bit). */
  public ProfileBuilder addLayer(int layer, Object wK, Object wV) {
    return addLayer(layer, new LayerData().weights(wK, wV));
  }

  /** Decomposes one layer from its weights and/or calibration data. */
  public ProfileBuilder addLayer(int layer, LayerData data) {
    try {
      StarkvNative.skv_builder_add_layer(raw(), layer, data.weightLayout.swigValue(),
          dtype(data.weightDType), data.wK, data.wV, data.wQ, dtype(data.calibDType),
          data.calibHidden, data.calibK, data.calibV, data.calibQ);
    } finally {
      Reference.reachabilityFence(this);
    }
    return this;
  }

  /** Uses factors computed elsewhere for this layer (its ranks are fixed, not allocated). */
  public ProfileBuilder setLayerFactors(int layer, LayerFactors factors) {
    try {
      StarkvNative.skv_builder_set_layer_factors(raw(), layer, factors.keyDecomposition.swigValue(),
          factors.valueDecomposition.swigValue(), factors.keyRanks, factors.keyDown, factors.keyUp,
          factors.valueRanks, factors.valueDown, factors.valueUp);
    } finally {
      Reference.reachabilityFence(this);
    }
    return this;
  }

  /** Allocates ranks across the layers and returns the profile. A builder finishes once. */
  public Profile finish() {
    try {
      return new Profile(StarkvNative.skv_builder_finish(raw()));
    } finally {
      Reference.reachabilityFence(this);
    }
  }
}
