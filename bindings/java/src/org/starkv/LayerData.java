package org.starkv;

/**
 * What one layer contributes to a profile build: projection weights and/or calibration data.
 * Tensors are float[] / short[] arrays or direct NIO buffers (see {@link Starkv}).
 */
public final class LayerData {
  Object wK;
  Object wV;
  Object wQ;
  DType weightDType;
  WeightLayout weightLayout = WeightLayout.OUT_IN;
  Object calibHidden;
  Object calibK;
  Object calibV;
  Object calibQ;
  DType calibDType;

  /** W_K and W_V, each [G*D, d] (OUT_IN, the layout of HF checkpoints) or [d, G*D] (IN_OUT). */
  public LayerData weights(Object wK, Object wV) {
    this.wK = wK;
    this.wV = wV;
    return this;
  }

  /** W_Q [H*D, d] (optional): queries for the distillation loss from calibration states. */
  public LayerData queryWeights(Object wQ) {
    this.wQ = wQ;
    return this;
  }

  /** The weights' dtype when they are short[] (F16 or BF16); null: from the data. */
  public LayerData weightDType(DType dtype) {
    this.weightDType = dtype;
    return this;
  }

  public LayerData weightLayout(WeightLayout layout) {
    this.weightLayout = layout;
    return this;
  }

  /** Calibration hidden states [n, d]: the layer's attention input after its norm. */
  public LayerData calibrationHidden(Object hidden) {
    this.calibHidden = hidden;
    return this;
  }

  /** Calibration pre-RoPE keys and values, each [m, G, D] (either may be null). */
  public LayerData calibrationKeysValues(Object keys, Object values) {
    this.calibK = keys;
    this.calibV = values;
    return this;
  }

  /** Calibration post-RoPE queries [m, H, D]. */
  public LayerData calibrationQueries(Object queries) {
    this.calibQ = queries;
    return this;
  }

  /** The calibration data's dtype when it is short[]; null: from the data. */
  public LayerData calibrationDType(DType dtype) {
    this.calibDType = dtype;
    return this;
  }
}
