package org.starkv;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/**
 * The Java binding through its public API: every call, every error class, lifetimes, and the
 * attention output against a dense reference.
 *
 * <p>Tolerance: with identity factors at full rank and fp32 latents the cache holds keys and
 * values exactly up to the fp32 rounding of the folded Hadamard rotation, and the CPU backend
 * accumulates in fp32 over a few dozen tokens, so outputs agree with a double-precision reference
 * to 1e-5 (outputs are O(1)). float16 queries are compared with a reference computed from the
 * same rounded queries; a float16 output adds 2^-11 relative rounding (2e-3 absolute).
 */
public class StarkvTest {
  static final int L = 2, H = 4, G = 2, D = 16;

  Context ctx;
  Profile exact;
  Pool pool;

  @Before
  public void setUp() {
    ctx = new Context();
    exact = exactProfile(RopeStyle.NONE);
    PoolParams params = PoolParams.defaults();
    params.setCapacityTokens(1024);
    params.setPageTokens(16);
    pool = new Pool(ctx, exact, params);
  }

  @After
  public void tearDown() {
    pool.close();
    exact.close();
    ctx.close();
  }

  // ---- helpers -------------------------------------------------------------------------------

  static ProfileParams exactParams(RopeStyle rope) {
    ProfileParams p = ProfileParams.defaults();
    p.setNLayers(L);
    p.setNHeads(H);
    p.setNKvHeads(G);
    p.setHeadDim(D);
    p.setHiddenDim(0);
    p.setInlierBits(32);
    p.setRopeStyle(rope);
    return p;
  }

  static float[] identity(int n, int copies) {
    float[] m = new float[copies * n * n];
    for (int c = 0; c < copies; ++c) {
      for (int i = 0; i < n; ++i) {
        m[c * n * n + i * n + i] = 1.0f;
      }
    }
    return m;
  }

  static LayerFactors identityFactors() {
    int[] keyRanks = new int[G];
    java.util.Arrays.fill(keyRanks, D);
    return new LayerFactors()
        .keys(Decomposition.HEADWISE, keyRanks, identity(D, G), null)
        .values(Decomposition.JOINT, new int[] {G * D}, identity(G * D, 1), null);
  }

  /** Identity factors at full rank, fp32 latents: the cache stores keys and values exactly. */
  static Profile exactProfile(RopeStyle rope) {
    try (ProfileBuilder b = new ProfileBuilder(exactParams(rope))) {
      for (int l = 0; l < L; ++l) {
        b.setLayerFactors(l, identityFactors());
      }
      return b.finish();
    }
  }

  static float[] gaussian(Random rng, int n) {
    float[] x = new float[n];
    for (int i = 0; i < n; ++i) {
      x[i] = (float) rng.nextGaussian();
    }
    return x;
  }

  static int[] fill(int n, int value) {
    int[] a = new int[n];
    java.util.Arrays.fill(a, value);
    return a;
  }

  static int[] range(int from, int to) {
    int[] a = new int[to - from];
    for (int i = 0; i < a.length; ++i) {
      a[i] = from + i;
    }
    return a;
  }

  /** Dense attention in double: q [H*D] post-RoPE, k and v [n*G*D] (no RoPE) -> [H*D]. */
  static double[] dense(float[] q, int qOffset, float[] k, float[] v, int n) {
    double[] out = new double[H * D];
    for (int h = 0; h < H; ++h) {
      int g = h / (H / G);
      double[] s = new double[n];
      double max = Double.NEGATIVE_INFINITY;
      for (int t = 0; t < n; ++t) {
        double dot = 0;
        for (int i = 0; i < D; ++i) {
          dot += (double) q[qOffset + h * D + i] * k[(t * G + g) * D + i];
        }
        s[t] = dot / Math.sqrt(D);
        max = Math.max(max, s[t]);
      }
      double sum = 0;
      for (int t = 0; t < n; ++t) {
        s[t] = Math.exp(s[t] - max);
        sum += s[t];
      }
      for (int t = 0; t < n; ++t) {
        for (int i = 0; i < D; ++i) {
          out[h * D + i] += s[t] / sum * v[(t * G + g) * D + i];
        }
      }
    }
    return out;
  }

  static void assertClose(double[] expected, float[] actual, int offset, double tolerance) {
    for (int i = 0; i < expected.length; ++i) {
      assertEquals("element " + i, expected[i], actual[offset + i], tolerance);
    }
  }

  /** float -> IEEE half bits, round to nearest even (normal and subnormal range). */
  static short toHalf(float f) {
    int bits = Float.floatToIntBits(f);
    int sign = (bits >>> 16) & 0x8000;
    int exp = ((bits >>> 23) & 0xff) - 127 + 15;
    int mant = bits & 0x7fffff;
    if (exp >= 31) {
      return (short) (sign | 0x7c00);
    }
    int shift = 13;
    int base;
    if (exp <= 0) {
      if (exp < -10) {
        return (short) sign;
      }
      mant |= 0x800000;
      shift = 14 - exp;
      base = 0;
    } else {
      base = exp << 10;
    }
    int half = base | (mant >> shift);
    int rem = mant & ((1 << shift) - 1);
    int halfway = 1 << (shift - 1);
    if (rem > halfway || (rem == halfway && (half & 1) != 0)) {
      half++;
    }
    return (short) (sign | half);
  }

  static float fromHalf(short h) {
    int sign = (h & 0x8000) << 16;
    int exp = (h >>> 10) & 0x1f;
    int mant = h & 0x3ff;
    if (exp == 0) {
      float value = mant * (float) Math.pow(2, -24);
      return sign != 0 ? -value : value;
    }
    return Float.intBitsToFloat(sign | ((exp - 15 + 127) << 23) | (mant << 13));
  }

  /** A sequence of n random tokens in every layer; returns {keys, values}. */
  float[][] storeSequence(Pool p, int seq, int n, Random rng) {
    float[] k = gaussian(rng, n * G * D), v = gaussian(rng, n * G * D);
    for (int l = 0; l < L; ++l) {
      p.append(l, fill(n, seq), range(0, n), k, v);
    }
    return new float[][] {k, v};
  }

  static ProfileParams weightParams() {
    ProfileParams p = ProfileParams.defaults();
    p.setNLayers(L);
    p.setNHeads(H);
    p.setNKvHeads(G);
    p.setHeadDim(D);
    p.setHiddenDim(32);
    p.setTargetCompression(0.5f);
    p.setMinKeyRank(2);
    p.setInlierBits(4);
    p.setOutlierBits(8);
    return p;
  }

  /** A small profile from random weights: the library's own SVD and rank allocation. */
  static Profile weightProfile(Context context) {
    Random rng = new Random(7);
    try (ProfileBuilder b = new ProfileBuilder(context, weightParams())) {
      assertSame(context, b.context());
      for (int l = 0; l < L; ++l) {
        b.addLayer(l, gaussian(rng, G * D * 32), gaussian(rng, G * D * 32));
      }
      return b.finish();
    }
  }

  // ---- library functions ---------------------------------------------------------------------

  @Test
  public void libraryFunctions() {
    assertEquals(StarkvNativeConstants.STARKV_VERSION_NUMBER, Starkv.versionNumber());
    assertTrue(Starkv.version().startsWith(StarkvNativeConstants.STARKV_VERSION_MAJOR + "."));
    assertEquals(StarkvNativeConstants.STARKV_ABI_VERSION, Starkv.abiVersion());
    assertTrue(Starkv.abiSupported(Starkv.abiVersion()));
    assertFalse(Starkv.abiSupported(Starkv.abiVersion() + 1000));
    assertEquals("pool full", Starkv.statusString(Status.POOL_FULL));
    assertEquals(4, Starkv.dtypeSize(DType.F32));
    assertEquals(2, Starkv.dtypeSize(DType.BF16));
    assertTrue(Starkv.backendAvailable(Backend.CPU));
    assertEquals(Backend.CPU, ContextParams.defaults().getBackend());
    assertEquals(64, PoolParams.defaults().getPageTokens());
    assertEquals(8, ProfileParams.defaults().getMinKeyRank());
    assertEquals(6, Status.POOL_FULL.swigValue());
  }

  // ---- context -------------------------------------------------------------------------------

  @Test
  public void contexts() {
    assertEquals(Backend.CPU, ctx.backend());
    ctx.setStream(0L);
    ctx.synchronize();
    try (Context cpu = new Context(Backend.CPU)) {
      assertEquals(Backend.CPU, cpu.backend());
    }
    try (Context one = new Context(Backend.CPU, 0, 0L, 1)) {
      assertEquals(Backend.CPU, one.backend());
    }
    ContextParams params = ContextParams.defaults();
    params.setNThreads(2);
    try (Context two = new Context(params, 0L)) {
      assertFalse(two.isClosed());
    }
    if (!Starkv.backendAvailable(Backend.CUDA)) {
      StarkvException e =
          assertThrows(StarkvException.BackendFailure.class, () -> new Context(Backend.CUDA));
      assertEquals(Status.BACKEND_UNAVAILABLE, e.getStatus());
    }
    assertThrows(StarkvException.InvalidArgument.class, () -> new Context(Backend.CPU, 0, 0L, -1));
  }

  // ---- profiles ------------------------------------------------------------------------------

  @Test
  public void profileFromWeights() {
    try (Profile p = weightProfile(ctx)) {
      ProfileInfo info = p.info();
      assertEquals(L, info.getNLayers());
      assertEquals(H, info.getNHeads());
      assertEquals(4, info.getInlierBits());
      assertTrue(info.getBytesPerToken() < info.getDenseBytesPerToken());
      LayerInfo li = p.layerInfo(0);
      assertEquals(1, li.getCompressed());
      assertEquals(Decomposition.HEADWISE, li.getKeyDecomposition());
      int[] keyRanks = p.ranks(0, TensorKind.KEYS), valueRanks = p.ranks(0, TensorKind.VALUES);
      assertEquals(G, keyRanks.length);
      assertEquals(1, valueRanks.length);
      int total = valueRanks[0];
      for (int r : keyRanks) {
        total += r;
      }
      assertEquals(total, p.latentWidth(0));
      float[] down = p.projection(1, TensorKind.KEYS, 0, Projection.DOWN);
      assertEquals(D * keyRanks[0], down.length);
    }
  }

  @Test
  public void builderInputsOfEveryKind() {
    Random rng = new Random(3);
    ProfileParams params = weightParams();
    params.setStMaxSteps(20);
    try (ProfileBuilder b = new ProfileBuilder(null, params, new int[] {1})) {
      short[] wk = new short[G * D * 32], wv = new short[G * D * 32];
      float[] f = gaussian(rng, G * D * 32);
      for (int i = 0; i < wk.length; ++i) {
        wk[i] = toHalf(f[i]);
        wv[i] = toHalf(-f[i] * 0.5f);
      }
      ByteBuffer wq = ByteBuffer.allocateDirect(H * D * 32 * 4).order(ByteOrder.nativeOrder());
      wq.asFloatBuffer().put(gaussian(rng, H * D * 32));
      b.addLayer(0,
          new LayerData()
              .weights(wk, wv)
              .weightDType(DType.F16)
              .weightLayout(WeightLayout.OUT_IN)
              .calibrationHidden(gaussian(rng, 40 * 32)));
      FloatBuffer ck = ByteBuffer.allocateDirect(40 * G * D * 4)
                           .order(ByteOrder.nativeOrder())
                           .asFloatBuffer()
                           .put(gaussian(rng, 40 * G * D));
      ck.flip();
      b.addLayer(1,
          new LayerData()
              .weights(gaussian(rng, G * D * 32), gaussian(rng, G * D * 32))
              .queryWeights(wq.asFloatBuffer())
              .calibrationKeysValues(ck, gaussian(rng, 40 * G * D))
              .calibrationQueries(gaussian(rng, 40 * H * D))
              .calibrationDType(DType.F32));
      try (Profile p = b.finish()) {
        assertEquals(1, p.info().getNUncompressedLayers());
        assertEquals(0, p.layerInfo(1).getCompressed());
      }
    }
  }

  @Test
  public void builderErrors() {
    try (ProfileBuilder b = new ProfileBuilder(weightParams())) {
      float[] good = new float[G * D * 32];
      assertThrows(
          StarkvException.SizeMismatch.class, () -> b.addLayer(0, new float[G * D * 32 - 1], good));
      assertThrows(StarkvException.WrongDType.class, () -> b.addLayer(0, new double[10], good));
      assertThrows(
          StarkvException.WrongDType.class, () -> b.addLayer(0, good, new short[G * D * 32]));
      assertThrows(StarkvException.WrongDType.class, () -> b.addLayer(0, "weights", good));
      assertThrows(StarkvException.SizeMismatch.class,
          ()
              -> b.setLayerFactors(0,
                  new LayerFactors()
                      .keys(Decomposition.HEADWISE, new int[] {D}, new float[D * D], null)
                      .values(Decomposition.JOINT, new int[] {8}, new float[G * D * 8], null)));
      assertThrows(StarkvException.WrongDType.class,
          ()
              -> b.setLayerFactors(0,
                  new LayerFactors()
                      .keys(Decomposition.HEADWISE, new int[] {4, 4}, new short[D * 8], null)
                      .values(Decomposition.JOINT, new int[] {8}, new float[G * D * 8], null)));
      assertThrows(StarkvException.class, b::finish); // no layer was added
    }
    assertThrows(StarkvException.InvalidArgument.class, () -> new ProfileBuilder(null));
    try (ProfileBuilder b = new ProfileBuilder(exactParams(RopeStyle.NONE))) {
      for (int l = 0; l < L; ++l) {
        b.setLayerFactors(l, identityFactors());
      }
      b.finish().close();
      assertThrows(StarkvException.InvalidState.class, b::finish);
    }
  }

  @Test
  public void profileFiles() throws Exception {
    Path base = Path.of(System.getProperty("starkv.test.tmp", System.getProperty("java.io.tmpdir")))
                    .toAbsolutePath();
    Files.createDirectories(base);
    Path dir = Files.createTempDirectory(base, "starkv");
    try (Profile p = weightProfile(null)) {
      Path file = dir.resolve("p.starkv");
      p.save(file);
      byte[] bytes = p.toBytes();
      assertArrayEquals(bytes, Files.readAllBytes(file));
      try (Profile a = Profile.load(file); Profile b = Profile.load(file.toString());
           Profile c = Profile.fromBytes(bytes)) {
        assertEquals(p.info().getBytesPerToken(), a.info().getBytesPerToken());
        assertEquals(p.latentWidth(1), b.latentWidth(1));
        assertArrayEquals(p.ranks(1, TensorKind.KEYS), c.ranks(1, TensorKind.KEYS));
      }
      ByteBuffer direct = ByteBuffer.allocateDirect(bytes.length);
      direct.put(bytes).flip();
      try (Profile d = Profile.fromBytes(direct)) {
        assertEquals(L, d.info().getNLayers());
      }
      // corrupt and foreign files
      bytes[bytes.length / 2] ^= (byte) 0xff;
      Path corrupt = dir.resolve("corrupt.starkv");
      Files.write(corrupt, bytes);
      assertThrows(StarkvException.CorruptData.class, () -> Profile.load(corrupt));
      assertThrows(StarkvException.CorruptData.class, () -> Profile.fromBytes(bytes));
      assertThrows(StarkvException.BadData.class,
          () -> Profile.fromBytes("not a profile".getBytes("UTF-8")));
      assertThrows(
          StarkvException.IOFailure.class, () -> Profile.load(dir.resolve("missing.starkv")));
      assertThrows(StarkvException.InvalidArgument.class, () -> p.save("bad\0name"));
    } finally {
      try (java.util.stream.Stream<Path> files = Files.walk(dir)) {
        files.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
      }
    }
  }

  // ---- attention -----------------------------------------------------------------------------

  @Test
  public void exactAttentionMatchesDenseReference() {
    Random rng = new Random(11);
    int n = 29;
    int seq = pool.createSequence();
    float[][] kv = storeSequence(pool, seq, n, rng);
    assertEquals(n, pool.length(seq));
    float[] q = gaussian(rng, H * D);
    double[] ref = dense(q, 0, kv[0], kv[1], n);
    for (int l = 0; l < L; ++l) {
      assertClose(ref, pool.attend(l, new int[] {seq}, null, q), 0, 1e-5);
    }
    // a prefix, into a direct FloatBuffer at a position
    FloatBuffer out =
        ByteBuffer.allocateDirect((H * D + 3) * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
    out.position(3);
    pool.attend(0, new int[] {seq}, new int[] {7}, q, out);
    float[] got = new float[H * D + 3];
    out.position(0);
    out.get(got);
    assertClose(dense(q, 0, kv[0], kv[1], 7), got, 3, 1e-5);
  }

  @Test
  public void decodeStepBatchesAndHalfPrecision() {
    Random rng = new Random(13);
    int[] lengths = {5, 17, 33};
    int[] seqs = new int[3];
    float[][][] data = new float[3][][];
    for (int i = 0; i < 3; ++i) {
      seqs[i] = pool.createSequence();
      data[i] = storeSequence(pool, seqs[i], lengths[i], rng);
    }
    float[] q = gaussian(rng, 3 * H * D);
    try (DecodeStep step = pool.decodeStep()) {
      assertSame(pool, step.pool());
      assertEquals(-1, step.plannedQueries());
      step.plan(seqs);
      assertEquals(3, step.plannedQueries());
      for (int l = 0; l < L; ++l) {
        float[] out = step.run(l, q);
        for (int i = 0; i < 3; ++i) {
          assertClose(
              dense(q, i * H * D, data[i][0], data[i][1], lengths[i]), out, i * H * D, 1e-5);
        }
      }
      // float16 queries (short[]) and a float16 output (a direct ShortBuffer)
      short[] q16 = new short[q.length];
      float[] qRounded = new float[q.length];
      for (int i = 0; i < q.length; ++i) {
        q16[i] = toHalf(q[i]);
        qRounded[i] = fromHalf(q16[i]);
      }
      ShortBuffer out16 =
          ByteBuffer.allocateDirect(q.length * 2).order(ByteOrder.nativeOrder()).asShortBuffer();
      step.run(0, q16, DType.F16, out16, null);
      float[] out = new float[q.length];
      for (int i = 0; i < q.length; ++i) {
        out[i] = fromHalf(out16.get(i));
      }
      for (int i = 0; i < 3; ++i) {
        assertClose(
            dense(qRounded, i * H * D, data[i][0], data[i][1], lengths[i]), out, i * H * D, 2e-3);
      }
      step.plan(new int[] {seqs[2]}, new int[] {4});
      assertClose(dense(q, 0, data[2][0], data[2][1], 4),
          step.run(1, java.util.Arrays.copyOf(q, H * D)), 0, 1e-5);
      assertThrows(StarkvException.SizeMismatch.class, () -> step.run(0, q));
    }
    try (DecodeStep fresh = new DecodeStep(pool)) {
      assertThrows(StarkvException.InvalidState.class,
          () -> fresh.run(0, new float[H * D], new float[H * D]));
    }
  }

  @Test
  public void appendLatentsAndBf16() {
    Random rng = new Random(14);
    int n = 6;
    float[] k = gaussian(rng, n * G * D), v = gaussian(rng, n * G * D);
    int width = exact.latentWidth(0);
    float[] latents = new float[n * width];
    for (int t = 0; t < n; ++t) {
      int col = 0;
      for (int g = 0; g < G; ++g) {
        float[] down = exact.projection(0, TensorKind.KEYS, g, Projection.DOWN); // [D x D]
        for (int c = 0; c < D; ++c, ++col) {
          for (int i = 0; i < D; ++i) {
            latents[t * width + col] += k[(t * G + g) * D + i] * down[i * D + c];
          }
        }
      }
      float[] down = new float[G * D * G * D];
      exact.projection(0, TensorKind.VALUES, 0, Projection.DOWN, down);
      for (int c = 0; c < G * D; ++c, ++col) {
        for (int i = 0; i < G * D; ++i) {
          latents[t * width + col] += v[t * G * D + i] * down[i * G * D + c];
        }
      }
    }
    int seq = pool.createSequence();
    pool.appendLatents(0, fill(n / 2, seq), range(0, n / 2),
        java.util.Arrays.copyOf(latents, n / 2 * width), DType.F32);
    pool.appendLatents(0, fill(n - n / 2, seq), range(n / 2, n),
        java.util.Arrays.copyOfRange(latents, n / 2 * width, n * width));
    float[] q = gaussian(rng, H * D);
    assertClose(dense(q, 0, k, v, n), pool.attend(0, new int[] {seq}, null, q), 0, 1e-5);
    assertThrows(StarkvException.SizeMismatch.class,
        () -> pool.appendLatents(0, new int[] {seq}, new int[] {n}, new float[width - 1]));

    // bfloat16 keys and values as short[] bit patterns (truncated: exact in float)
    short[] kb = new short[k.length], vb = new short[v.length];
    float[] kt = new float[k.length], vt = new float[v.length];
    for (int i = 0; i < k.length; ++i) {
      kb[i] = (short) (Float.floatToIntBits(k[i]) >>> 16);
      vb[i] = (short) (Float.floatToIntBits(v[i]) >>> 16);
      kt[i] = Float.intBitsToFloat((kb[i] & 0xffff) << 16);
      vt[i] = Float.intBitsToFloat((vb[i] & 0xffff) << 16);
    }
    int seq2 = pool.createSequence();
    pool.append(0, fill(n, seq2), range(0, n), kb, vb, DType.BF16);
    float[] out = new float[H * D];
    pool.attend(0, new int[] {seq2}, null, q, DType.F32, out, DType.F32);
    assertClose(dense(q, 0, kt, vt, n), out, 0, 1e-5);
    // the same bytes, untyped, in a direct ByteBuffer with their dtype
    ByteBuffer kbytes = ByteBuffer.allocateDirect(k.length * 4).order(ByteOrder.nativeOrder());
    ByteBuffer vbytes = ByteBuffer.allocateDirect(v.length * 4).order(ByteOrder.nativeOrder());
    kbytes.asFloatBuffer().put(k);
    vbytes.asFloatBuffer().put(v);
    int seq3 = pool.createSequence();
    pool.append(0, fill(n, seq3), range(0, n), kbytes, vbytes, DType.F32);
    assertClose(dense(q, 0, k, v, n), pool.attend(0, new int[] {seq3}, null, q), 0, 1e-5);
    assertThrows(StarkvException.WrongDType.class,
        () -> pool.append(0, fill(n, seq3), range(n, 2 * n), kbytes, vbytes));
  }

  @Test
  public void sequencesForkReleaseSnapshot() {
    Random rng = new Random(15);
    int n = 20;
    int seq = pool.createSequence();
    float[][] kv = storeSequence(pool, seq, n, rng);
    int child = pool.fork(seq);
    assertEquals(n, pool.length(child));
    float[] q = gaussian(rng, H * D);
    assertArrayEquals(
        pool.attend(1, new int[] {seq}, null, q), pool.attend(1, new int[] {child}, null, q), 0.0f);
    PoolUsage usage = pool.usage();
    assertEquals(2, usage.getNSequences());
    assertEquals(16, usage.getPageTokens());
    byte[] snapshot = pool.exportSequence(seq);
    pool.release(seq);
    pool.release(child);
    assertEquals(0, pool.usage().getNSequences());
    int restored = pool.importSequence(snapshot);
    assertClose(
        dense(q, 0, kv[0], kv[1], n), pool.attend(1, new int[] {restored}, null, q), 0, 1e-5);
    try (Pool other = new Pool(ctx, exact)) {
      assertSame(ctx, other.context());
      assertSame(exact, other.profile());
      ByteBuffer direct = ByteBuffer.allocateDirect(snapshot.length);
      direct.put(snapshot).flip();
      int s = other.importSequence(direct);
      assertEquals(n, other.length(s));
    }
    byte[] bad = snapshot.clone();
    bad[bad.length - 3] ^= 0x5a;
    assertThrows(StarkvException.CorruptData.class, () -> pool.importSequence(bad));
    assertThrows(StarkvException.BadData.class, () -> pool.importSequence(new byte[] {1, 2, 3}));
    try (Profile foreign = weightProfile(ctx); Pool foreignPool = new Pool(ctx, foreign)) {
      assertThrows(
          StarkvException.InvalidArgument.class, () -> foreignPool.importSequence(snapshot));
    }
  }

  @Test
  public void poolFullWritesNothing() {
    PoolParams params = PoolParams.defaults();
    params.setCapacityTokens(32);
    params.setPageTokens(16);
    try (Pool small = new Pool(ctx, exact, params)) {
      int seq = small.createSequence();
      float[][] kv = storeSequence(small, seq, 20, new Random(16));
      StarkvException e = assertThrows(StarkvException.PoolFull.class,
          () -> small.append(0, fill(20, seq), range(20, 40), kv[0], kv[1]));
      assertEquals(Status.POOL_FULL, e.getStatus());
      assertTrue(e instanceof StarkvException.OutOfResources);
      assertNotNull(e.getDetail());
      assertEquals(20, small.length(seq));
      assertEquals(0, small.usage().getFreePages());
    }
  }

  @Test
  public void argumentErrors() {
    Random rng = new Random(17);
    int seq = pool.createSequence();
    float[][] kv = storeSequence(pool, seq, 4, rng);
    float[] q = gaussian(rng, H * D);
    assertThrows(StarkvException.SizeMismatch.class,
        () -> pool.append(0, fill(4, seq), range(4, 8), new float[3 * G * D], kv[1]));
    assertThrows(StarkvException.SizeMismatch.class,
        () -> pool.append(0, fill(4, seq), range(4, 7), kv[0], kv[1]));
    assertThrows(StarkvException.WrongDType.class,
        () -> pool.append(0, fill(4, seq), range(4, 8), new double[4 * G * D], kv[1]));
    assertThrows(StarkvException.WrongDType.class,
        () -> pool.append(0, fill(4, seq), range(4, 8), kv[0], kv[1], DType.F16));
    assertThrows(StarkvException.WrongDType.class,
        () -> pool.append(0, fill(4, seq), range(4, 8), kv[0], new int[4 * G * D]));
    assertThrows(StarkvException.InvalidArgument.class,
        () -> pool.append(L, fill(4, seq), range(4, 8), kv[0], kv[1]));
    assertThrows(StarkvException.InvalidArgument.class,
        () -> pool.append(0, fill(4, seq), range(10, 14), kv[0], kv[1]));
    assertThrows(StarkvException.InvalidArgument.class,
        () -> pool.append(0, fill(4, 4242), range(0, 4), kv[0], kv[1]));
    assertThrows(StarkvException.InvalidArgument.class, () -> pool.length(4242));
    assertThrows(StarkvException.InvalidArgument.class,
        () -> pool.attend(0, new int[] {seq}, new int[] {100}, q));
    assertThrows(StarkvException.SizeMismatch.class,
        () -> pool.attend(0, new int[] {seq}, null, q, new float[H * D - 1]));
    assertThrows(StarkvException.SizeMismatch.class,
        () -> pool.attend(0, new int[] {seq}, new int[] {1, 2}, q));
    assertThrows(StarkvException.InvalidArgument.class, // read-only output
        ()
            -> pool.attend(0, new int[] {seq}, null, q,
                ByteBuffer.allocateDirect(H * D * 4)
                    .order(ByteOrder.nativeOrder())
                    .asFloatBuffer()
                    .asReadOnlyBuffer()));
    assertThrows(StarkvException.InvalidArgument.class, // a heap buffer
        () -> pool.attend(0, new int[] {seq}, null, FloatBuffer.wrap(q), new float[H * D]));
    assertThrows(StarkvException.WrongDType.class, // not the platform's byte order
        ()
            -> pool.attend(0, new int[] {seq}, null,
                ByteBuffer.allocateDirect(H * D * 4).order(ByteOrder.BIG_ENDIAN).asFloatBuffer(),
                new float[H * D]));
    assertThrows(StarkvException.InvalidArgument.class, // seq_ids are required
        () -> pool.attend(0, null, null, q, new float[H * D]));
    assertEquals(4, pool.length(seq)); // no failed call wrote anything
  }

  // ---- lifetimes -----------------------------------------------------------------------------

  @Test
  public void closedHandlesThrow() {
    ProfileBuilder b = new ProfileBuilder(exactParams(RopeStyle.NONE));
    Profile p = exactProfile(RopeStyle.NONE);
    Pool pl = new Pool(ctx, p);
    DecodeStep step = pl.decodeStep();
    Context c = new Context();
    for (NativeHandle h : new NativeHandle[] {step, pl, p, b, c}) {
      h.close();
      h.close();
      assertTrue(h.isClosed());
    }
    assertThrows(StarkvException.Closed.class, b::finish);
    assertThrows(StarkvException.Closed.class, () -> b.setLayerFactors(0, identityFactors()));
    assertThrows(StarkvException.Closed.class, p::info);
    assertThrows(StarkvException.Closed.class, p::toBytes);
    assertThrows(StarkvException.Closed.class, pl::createSequence);
    assertThrows(
        StarkvException.Closed.class, () -> pl.attend(0, new int[] {0}, null, new float[H * D]));
    assertThrows(StarkvException.Closed.class, () -> step.plan(new int[] {0}));
    assertThrows(StarkvException.Closed.class, c::synchronize);
    assertThrows(StarkvException.Closed.class, () -> new Pool(ctx, p));
    assertThrows(StarkvException.Closed.class, () -> new Pool(c, exact));
    assertThrows(StarkvException.Closed.class, () -> new ProfileBuilder(c, weightParams()));
    StarkvException e = assertThrows(StarkvException.InvalidState.class, pl::usage);
    assertEquals(Status.NULL_HANDLE, e.getStatus());
  }

  @Test
  public void poolKeepsProfileAndContextAlive() {
    Context c = new Context();
    Profile p = exactProfile(RopeStyle.NONE);
    Pool pl = new Pool(c, p);
    p.close();
    c.close();
    int seq = pl.createSequence();
    storeSequence(pl, seq, 3, new Random(18));
    DecodeStep step = pl.decodeStep();
    pl.close();
    step.plan(new int[] {seq}); // the step holds the pool
    assertEquals(H * D, step.run(0, new float[H * D]).length);
    step.close();
  }

  @Test
  public void cleanerIsASafetyNet() throws Exception {
    for (int i = 0; i < 20; ++i) {
      Pool dropped = new Pool(ctx, exact);
      dropped.decodeStep();
    }
    for (int i = 0; i < 5; ++i) {
      System.gc();
      Thread.sleep(20);
      // each call on the context's thread runs the releases the cleaner deferred
      pool.usage();
    }
    int seq = pool.createSequence();
    storeSequence(pool, seq, 2, new Random(19));
  }

  @Test
  public void threadsWithTheirOwnContexts() throws Exception {
    Thread[] threads = new Thread[3];
    Throwable[] failures = new Throwable[threads.length];
    for (int i = 0; i < threads.length; ++i) {
      final int index = i;
      threads[i] = new Thread(() -> {
        try (Context c = new Context(Backend.CPU, 0, 0L, 1);
             Profile p = exactProfile(RopeStyle.NONE); Pool pl = new Pool(c, p)) {
          Random rng = new Random(100 + index);
          int seq = pl.createSequence();
          float[][] kv = storeSequence(pl, seq, 8, rng);
          float[] q = gaussian(rng, H * D);
          assertClose(
              dense(q, 0, kv[0], kv[1], 8), pl.attend(0, new int[] {seq}, null, q), 0, 1e-5);
          assertThrows(StarkvException.SizeMismatch.class,
              () -> pl.attend(0, new int[] {seq}, null, new float[3]));
        } catch (Throwable t) {
          failures[index] = t;
        }
      });
      threads[i].start();
    }
    for (int i = 0; i < threads.length; ++i) {
      threads[i].join();
      if (failures[i] != null) {
        throw new AssertionError("thread " + i, failures[i]);
      }
    }
  }
}
