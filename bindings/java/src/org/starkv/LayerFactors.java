package org.starkv;

/**
 * Factors computed elsewhere, for one layer (float32). Head-wise: one rank per KV head, down
 * matrices [D x r_g] concatenated over heads; joint: one rank, [G*D x r]. Up matrices are
 * [r x in_dim], or null for the transpose of down (orthonormal factors).
 */
public final class LayerFactors {
  Decomposition keyDecomposition = Decomposition.HEADWISE;
  int[] keyRanks;
  Object keyDown;
  Object keyUp;
  Decomposition valueDecomposition = Decomposition.JOINT;
  int[] valueRanks;
  Object valueDown;
  Object valueUp;

  public LayerFactors keys(Decomposition decomposition, int[] ranks, Object down, Object up) {
    this.keyDecomposition = decomposition;
    this.keyRanks = ranks;
    this.keyDown = down;
    this.keyUp = up;
    return this;
  }

  public LayerFactors values(Decomposition decomposition, int[] ranks, Object down, Object up) {
    this.valueDecomposition = decomposition;
    this.valueRanks = ranks;
    this.valueDown = down;
    this.valueUp = up;
    return this;
  }
}
