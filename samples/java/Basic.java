// The whole starkv round trip from Java: build a profile from (random) projection weights, create
// a pool, append a sequence's keys and values, attend, snapshot the sequence and restore it.
// The same scenario and numbers as samples/c/basic.c (same generator and seeds, same output).
// Run:  java -cp starkv.jar:. -Djava.library.path=<dir of libstarkv_jni.so> Basic
import java.math.BigDecimal;
import java.math.RoundingMode;
import org.starkv.Context;
import org.starkv.Pool;
import org.starkv.PoolParams;
import org.starkv.Profile;
import org.starkv.ProfileBuilder;
import org.starkv.ProfileInfo;
import org.starkv.ProfileParams;

public final class Basic {
  static final int LAYERS = 2, HEADS = 8, KV_HEADS = 2, HEAD_DIM = 64, HIDDEN = 256, TOKENS = 100;

  /** n reproducible values in [-scale, scale): the C sample's generator. */
  static float[] fill(int n, int seed, float scale) {
    float[] x = new float[n];
    int state = seed;
    for (int i = 0; i < n; ++i) {
      state = state * 1664525 + 1013904223; // uint32 arithmetic: Java ints wrap the same way
      x[i] = scale * ((float) ((state >>> 8) & 0xffff) / 32768.0f - 1.0f);
    }
    return x;
  }

  /** printf("%.Nf"): the exact binary value, rounded half-even, as C does. */
  static String fixed(double value, int digits) {
    return new BigDecimal(value).setScale(digits, RoundingMode.HALF_EVEN).toPlainString();
  }

  public static void main(String[] args) {
    int kvWidth = KV_HEADS * HEAD_DIM, qWidth = HEADS * HEAD_DIM;
    double diff = 0.0;
    try (Context ctx = new Context()) {
      // 1. A profile: 75% low-rank compression, 4-bit outliers and 3-bit inliers.
      ProfileParams pp = ProfileParams.defaults();
      pp.setNLayers(LAYERS);
      pp.setNHeads(HEADS);
      pp.setNKvHeads(KV_HEADS);
      pp.setHeadDim(HEAD_DIM);
      pp.setHiddenDim(HIDDEN);
      pp.setTargetCompression(0.75f);
      pp.setInlierBits(3);
      pp.setOutlierBits(4);
      Profile profile;
      try (ProfileBuilder builder = new ProfileBuilder(ctx, pp)) {
        for (int layer = 0; layer < LAYERS; ++layer) {
          // [G*D, d]: the layout of HF/Llama checkpoints
          builder.addLayer(layer, fill(kvWidth * HIDDEN, 11 + layer, 0.05f),
              fill(kvWidth * HIDDEN, 23 + layer, 0.05f));
        }
        profile = builder.finish();
      }
      ProfileInfo info = profile.info();
      System.out.println("profile: " + info.getBytesPerToken() + " bytes/token vs "
          + info.getDenseBytesPerToken() + " dense fp16: compression "
          + fixed(100.0 * info.getCompression(), 1) + "% (" + fixed(info.getCompressionFactor(), 1)
          + "x)");

      // 2. A pool and one sequence of TOKENS tokens in every layer.
      PoolParams poolParams = PoolParams.defaults();
      poolParams.setCapacityTokens(4096);
      try (Pool pool = new Pool(ctx, profile, poolParams)) {
        profile.close(); // the pool keeps its own reference
        int seq = pool.createSequence();
        int[] seqIds = new int[TOKENS], positions = new int[TOKENS];
        for (int t = 0; t < TOKENS; ++t) {
          seqIds[t] = seq;
          positions[t] = t;
        }
        for (int layer = 0; layer < LAYERS; ++layer) {
          pool.append(layer, seqIds, positions, fill(TOKENS * kvWidth, 101 + layer, 1.0f),
              fill(TOKENS * kvWidth, 202 + layer, 1.0f));
        }

        // 3. Attend with a post-RoPE query in the last layer.
        float[] query = fill(qWidth, 303, 1.0f);
        int[] kvLength = {TOKENS};
        float[] out = pool.attend(LAYERS - 1, new int[] {seq}, kvLength, query);

        // 4. Snapshot the sequence, restore it as a new sequence, attend again: identical output.
        byte[] snapshot = pool.exportSequence(seq);
        int restored = pool.importSequence(snapshot);
        float[] outRestored = pool.attend(LAYERS - 1, new int[] {restored}, kvLength, query);
        double norm = 0.0;
        for (int i = 0; i < qWidth; ++i) {
          diff += Math.abs((double) out[i] - (double) outRestored[i]);
          norm += Math.abs((double) out[i]);
        }
        System.out.println("attention output: out[0..3] = " + fixed(out[0], 6) + " "
            + fixed(out[1], 6) + " " + fixed(out[2], 6) + " " + fixed(out[3], 6)
            + ", mean |out| = " + fixed(norm / qWidth, 6));
        System.out.println("snapshot: " + snapshot.length + " bytes for " + TOKENS
            + " tokens; restored output differs by "
            + (diff == 0.0 ? "0" : String.format("%.3g", diff)));
      }
    }
    System.exit(diff == 0.0 ? 0 : 1);
  }
}
