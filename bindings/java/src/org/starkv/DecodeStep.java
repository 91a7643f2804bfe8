package org.starkv;

import java.lang.ref.Reference;

/** A planned batch of queries: plan once per step, run per layer. Keeps its pool alive. */
public final class DecodeStep extends NativeHandle {
  private final Pool pool;

  public DecodeStep(Pool pool) {
    super(create(pool));
    this.pool = pool;
  }

  private static long create(Pool pool) {
    try {
      return StarkvNative.skv_step_create(pool.raw());
    } finally {
      Reference.reachabilityFence(pool);
    }
  }

  public Pool pool() {
    return pool;
  }

  /** Plans queries over seqIds, each attending to the sequence's tokens at plan time. */
  public void plan(int[] seqIds) {
    plan(seqIds, null);
  }

  /** kvLengths (may be null): query i attends to the first kvLengths[i] tokens. */
  public void plan(int[] seqIds, int[] kvLengths) {
    try {
      StarkvNative.skv_step_plan(raw(), seqIds, kvLengths);
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** Queries in the current plan (-1 before the first plan). */
  public int plannedQueries() {
    try {
      return StarkvNative.skv_step_planned(raw());
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** Runs the plan for one layer: queries and out [plannedQueries, H, D]. */
  public void run(int layer, Object queries, Object out) {
    run(layer, queries, null, out, null);
  }

  public void run(int layer, Object queries, DType queryDType, Object out, DType outDType) {
    try {
      StarkvNative.skv_step_run(raw(), layer, queries, dtype(queryDType), out, dtype(outDType));
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** The same with a new float32 output. */
  public float[] run(int layer, float[] queries) {
    int n = Math.max(plannedQueries(), 0);
    float[] out = new float[Math.multiplyExact(n, pool.rowWidth())];
    run(layer, queries, out);
    return out;
  }
}
