"""The Python binding through its public API: every call, every error class, lifetimes, and the
attention output against a dense numpy reference.

Numerical tolerance: a profile with identity factors at full rank and fp32 latents
(inlier_bits=32) stores keys and values exactly up to the fp32 rounding of the folded Hadamard
rotation (~1e-7 relative), and the CPU backend accumulates in fp32 over at most a few hundred
tokens, so attention outputs agree with a float64 reference to 1e-5 (absolute, outputs are O(1)).
float16 inputs/outputs add the half-precision rounding of the output (2^-11 relative): 2e-3;
bfloat16 (2^-8): 2e-2.
"""
import gc
import os
import threading
from array import array

import numpy as np
import pytest

import starkv
from starkv import native

L, H, G, D = 2, 4, 2, 16  # two layers, GQA with two query heads per KV head


# ---- helpers ---------------------------------------------------------------------------------


def exact_builder(rope_style="none", **extra):
    """A builder whose layers are identity factors at full rank with fp32 latents."""
    b = starkv.ProfileBuilder(n_layers=L, n_heads=H, n_kv_heads=G, head_dim=D, hidden_dim=0,
                              inlier_bits=32, rope_style=rope_style, **extra)
    eye = np.eye(D, dtype=np.float32)
    for layer in range(L):
        b.set_layer_factors(layer, [D] * G, np.concatenate([eye] * G), [G * D],
                            np.eye(G * D, dtype=np.float32))
    return b


@pytest.fixture
def ctx():
    with starkv.Context() as c:
        yield c


@pytest.fixture
def profile():
    with exact_builder() as b:
        p = b.finish()
    yield p
    p.close()


@pytest.fixture
def pool(ctx, profile):
    with starkv.Pool(ctx, profile, capacity_tokens=1024, page_tokens=16) as p:
        yield p


def rope_neox(x, positions, theta=10000.0):
    """RoPE, rotate-halves style, on [n, heads, D] at the given positions (float64)."""
    half = x.shape[-1] // 2
    freq = theta ** (-np.arange(half, dtype=np.float64) * 2.0 / x.shape[-1])
    angle = np.asarray(positions, dtype=np.float64)[:, None] * freq[None, :]
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    a, b = x[..., :half].astype(np.float64), x[..., half:].astype(np.float64)
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


def dense_attention(q, k, v, rope=False):
    """q [H, D] post-RoPE; k, v [n, G, D] pre-RoPE keys at positions 0..n-1 -> [H, D]."""
    k = rope_neox(k, np.arange(k.shape[0])) if rope else k.astype(np.float64)
    out = np.zeros((H, D))
    for h in range(H):
        g = h // (H // G)
        s = k[:, g, :] @ q[h].astype(np.float64) / np.sqrt(D)
        w = np.exp(s - s.max())
        out[h] = (w / w.sum()) @ v[:, g, :].astype(np.float64)
    return out


def random_kv(rng, n):
    return (rng.standard_normal((n, G, D), dtype=np.float32),
            rng.standard_normal((n, G, D), dtype=np.float32))


def to_bf16_bits(x):
    """float32 -> bfloat16 bit patterns, rounded to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def from_bf16_bits(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


# ---- library functions -----------------------------------------------------------------------


def test_library_functions():
    assert starkv.version() == starkv.__version__
    assert starkv.version_number() == native.STARKV_VERSION_NUMBER
    assert starkv.abi_version() == native.STARKV_ABI_VERSION
    assert starkv.abi_supported(native.STARKV_ABI_VERSION)
    assert not starkv.abi_supported(native.STARKV_ABI_VERSION + 1000)
    assert starkv.status_string(starkv.Status.POOL_FULL) == "pool full"
    assert starkv.dtype_size("f32") == 4 and starkv.dtype_size(starkv.DType.F16) == 2
    assert starkv.dtype_size("bfloat16") == 2 and starkv.dtype_size(np.dtype("float32")) == 4
    assert starkv.backend_available("cpu")
    assert isinstance(starkv.backend_available(starkv.Backend.CUDA), bool)
    assert starkv.context_params_defaults().backend == starkv.Backend.CPU
    assert starkv.profile_params_defaults().min_key_rank == 8
    assert starkv.pool_params_defaults().page_tokens == 64
    assert starkv.error_class(starkv.Status.POOL_FULL) is starkv.PoolFullError
    # the raw layer's own access to the C error state
    native.starkv_clear_error()
    assert native.starkv_last_error() == ""


def test_enums_match_the_header():
    assert starkv.Status.OK == 0 and starkv.Status.INTERNAL == native.STARKV_ERR_INTERNAL
    assert [m.name for m in starkv.RopeStyle] == ["NEOX", "GPTJ", "NONE"]
    assert [m.name for m in starkv.RopeScaling] == ["NONE", "LINEAR", "LLAMA3"]
    assert [m.name for m in starkv.RankAllocator] == ["SOFT_THRESHOLD", "STATIC", "GREEDY"]
    assert [m.name for m in starkv.WeightLayout] == ["OUT_IN", "IN_OUT"]
    assert [m.name for m in starkv.DType] == ["F32", "F16", "BF16"]


def test_error_hierarchy():
    e = starkv.errors._from_status(starkv.Status.SIZE_MISMATCH, "x")
    assert isinstance(e, starkv.SizeError) and isinstance(e, starkv.InvalidArgumentError)
    assert isinstance(e, ValueError) and e.status == starkv.Status.SIZE_MISMATCH
    assert isinstance(starkv.errors._from_status(starkv.Status.DTYPE, ""), TypeError)
    assert isinstance(starkv.errors._from_status(starkv.Status.IO, ""), OSError)
    assert issubclass(starkv.ClosedError, starkv.StateError)
    assert issubclass(starkv.PoolFullError, starkv.ResourceError)
    assert issubclass(starkv.CorruptDataError, starkv.DataError)
    for status in starkv.Status:
        if status != starkv.Status.OK:
            assert issubclass(starkv.error_class(status), starkv.StarkvError)


# ---- context -----------------------------------------------------------------------------------


def test_context(ctx):
    assert ctx.backend == starkv.Backend.CPU
    ctx.set_stream(0)  # the CPU ignores streams
    ctx.synchronize()
    with starkv.Context("cpu", n_threads=1) as one:
        assert one.backend == starkv.Backend.CPU
    assert one.closed


def test_cuda_context_without_cuda_is_an_error():
    if starkv.backend_available("cuda"):
        pytest.skip("this machine has CUDA")
    with pytest.raises(starkv.BackendError):
        starkv.Context("cuda")


def test_context_argument_errors():
    with pytest.raises(starkv.InvalidArgumentError):
        starkv.Context("tpu")
    with pytest.raises(starkv.InvalidArgumentError):
        starkv.Context(n_threads=-1)


# ---- profiles ----------------------------------------------------------------------------------


def build_from_weights(context=None, **extra):
    """A small profile from random weights (the library's own SVD and rank allocation)."""
    rng = np.random.default_rng(7)
    d = 64
    params = dict(n_layers=L, n_heads=H, n_kv_heads=G, head_dim=D, hidden_dim=d,
                  target_compression=0.5, inlier_bits=4, outlier_bits=8, min_key_rank=2)
    params.update(extra)
    with starkv.ProfileBuilder(context=context, **params) as b:
        for layer in range(L):
            w_k = rng.standard_normal((G * D, d), dtype=np.float32)
            w_v = rng.standard_normal((G * D, d), dtype=np.float32)
            b.add_layer(layer, w_k=w_k, w_v=w_v)
        return b.finish()


def test_builder_from_weights(ctx):
    with build_from_weights(context=ctx) as p:
        info = p.info
        assert (info.n_layers, info.n_heads, info.n_kv_heads, info.head_dim) == (L, H, G, D)
        assert (p.n_layers, p.n_heads, p.n_kv_heads, p.head_dim) == (L, H, G, D)
        assert info.inlier_bits == 4 and info.outlier_bits == 8
        assert 0 < info.bytes_per_token < info.dense_bytes_per_token
        li = p.layer_info(0)
        assert li.compressed is True and li.key_decomposition == starkv.Decomposition.HEADWISE
        assert li.value_decomposition == starkv.Decomposition.JOINT
        assert len(p.ranks(0, "keys")) == G and len(p.ranks(0, starkv.TensorKind.VALUES)) == 1
        assert sum(p.ranks(0, "keys")) + sum(p.ranks(0, "values")) == p.latent_width(0)


def test_builder_inputs_of_every_kind():
    """float16 weights, bfloat16 bit patterns, w_q, calibration data, an uncompressed layer."""
    rng = np.random.default_rng(3)
    d, m = 32, 48
    with starkv.ProfileBuilder(n_layers=L, n_heads=H, n_kv_heads=G, head_dim=D, hidden_dim=d,
                               target_compression=0.5, min_key_rank=2, st_max_steps=20,
                               uncompressed_layers=[1]) as b:
        w = rng.standard_normal((3, G * D, d), dtype=np.float32)
        w_q = rng.standard_normal((H * D, d), dtype=np.float32).astype(np.float16)
        b.add_layer(0, w_k=w[0].astype(np.float16), w_v=w[1].astype(np.float16), w_q=w_q,
                    calib_hidden=rng.standard_normal((m, d), dtype=np.float32))
        b.add_layer(1, w_k=to_bf16_bits(w[0]), w_v=to_bf16_bits(w[2]), weight_dtype="bf16",
                    weight_layout=starkv.WeightLayout.OUT_IN,
                    calib_k=rng.standard_normal((m, G, D), dtype=np.float32),
                    calib_v=rng.standard_normal((m, G, D), dtype=np.float32),
                    calib_q=rng.standard_normal((m, H, D), dtype=np.float32))
        with b.finish() as p:
            assert p.info.n_uncompressed_layers == 1
            assert p.layer_info(1).compressed is False


def test_builder_from_params_struct_and_in_out_layout():
    params = starkv.profile_params_defaults()
    params.n_layers, params.n_heads, params.n_kv_heads, params.head_dim = 1, H, G, D
    params.hidden_dim, params.target_compression = 32, 0.5
    params.min_key_rank = 2
    rng = np.random.default_rng(5)
    with starkv.ProfileBuilder(params, allocator="static") as b:
        b.add_layer(0, w_k=rng.standard_normal((32, G * D), dtype=np.float32),
                    w_v=rng.standard_normal((32, G * D), dtype=np.float32),
                    weight_layout="in_out")
        with b.finish() as p:
            assert p.n_layers == 1


def test_builder_errors():
    with pytest.raises(starkv.InvalidArgumentError):
        starkv.ProfileBuilder(n_layers=1, no_such_field=3)
    with pytest.raises(starkv.InvalidArgumentError):
        starkv.ProfileBuilder(n_layers=1, allocator="nonsense")
    with pytest.raises(starkv.InvalidArgumentError):
        starkv.ProfileBuilder(params=object())
    with starkv.ProfileBuilder(n_layers=1, n_heads=H, n_kv_heads=G, head_dim=D,
                               hidden_dim=32) as b:
        good = np.zeros((G * D, 32), np.float32)
        with pytest.raises(starkv.SizeError):  # a weight one row short
            b.add_layer(0, w_k=np.zeros((G * D - 1, 32), np.float32), w_v=good)
        with pytest.raises(starkv.DTypeError):  # float64 weights
            b.add_layer(0, w_k=good.astype(np.float64), w_v=good)
        with pytest.raises(starkv.DTypeError):  # float32 and float16 mixed
            b.add_layer(0, w_k=good, w_v=good.astype(np.float16))
        with pytest.raises(starkv.DTypeError):  # float32 data said to be bfloat16
            b.add_layer(0, w_k=good, w_v=good, weight_dtype="bf16")
        with pytest.raises(starkv.SizeError):  # calibration rows that do not divide
            b.add_layer(0, w_k=good, w_v=good, calib_hidden=np.zeros(33, np.float32))
        with pytest.raises(starkv.SizeError):  # calibration keys and values of different m
            b.add_layer(0, calib_k=np.zeros((4, G, D), np.float32),
                        calib_v=np.zeros((5, G, D), np.float32))
        with pytest.raises(starkv.SizeError):  # head-wise keys need one rank per KV head
            b.set_layer_factors(0, [D], np.zeros(D * D, np.float32), [G * D],
                                np.zeros(G * D * G * D, np.float32))
        with pytest.raises(starkv.SizeError):  # a down matrix that does not match the ranks
            b.set_layer_factors(0, [4] * G, np.zeros(D * 4 * G - 1, np.float32), [8],
                                np.zeros(G * D * 8, np.float32))
        with pytest.raises(starkv.DTypeError):  # factors are float32 only
            b.set_layer_factors(0, [4] * G, np.zeros(D * 4 * G, np.float16), [8],
                                np.zeros(G * D * 8, np.float32))
        with pytest.raises(starkv.InvalidArgumentError):
            b.set_layer_factors(0, [-1] * G, np.zeros(1, np.float32), [8],
                                np.zeros(G * D * 8, np.float32))
        with pytest.raises(starkv.StarkvError):  # layer 0 was never added
            b.finish()


def test_builder_finishes_once():
    with exact_builder() as b:
        b.finish().close()
        with pytest.raises(starkv.StateError):
            b.finish()


def test_profile_files(profile, tmp_path):
    path = tmp_path / "p.starkv"
    profile.save(path)
    with starkv.Profile.load(str(path)) as loaded:
        assert loaded.info == profile.info
    data = profile.to_bytes()
    assert data == path.read_bytes()
    with starkv.Profile.from_bytes(data) as p2, starkv.Profile.from_bytes(memoryview(data)) as p3:
        assert p2.info == p3.info == profile.info
    with pytest.raises(starkv.InvalidArgumentError):
        profile.save("bad\0name")


def test_profile_projection(profile):
    down = profile.projection(0, "keys", 1, "down")
    assert len(down) == D * D
    up = np.empty(D * D, np.float32)
    assert profile.projection(0, starkv.TensorKind.KEYS, 1, starkv.Projection.UP, out=up) is up
    # identity factors with the Hadamard rotation folded in: down is orthonormal, up its transpose
    m = np.frombuffer(down, np.float32).reshape(D, D)
    np.testing.assert_allclose(m @ up.reshape(D, D), np.eye(D), atol=1e-5)
    with pytest.raises(starkv.SizeError):
        profile.projection(0, "keys", 0, "down", out=np.empty(D * D - 1, np.float32))
    with pytest.raises(starkv.InvalidArgumentError):
        profile.projection(0, "keys", G, "down")  # no such group
    with pytest.raises(starkv.InvalidArgumentError):
        profile.latent_width(L)


def test_corrupt_and_foreign_files(profile, tmp_path):
    data = bytearray(profile.to_bytes())
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "corrupt.starkv"
    path.write_bytes(data)
    with pytest.raises(starkv.CorruptDataError):
        starkv.Profile.load(path)
    with pytest.raises(starkv.CorruptDataError):
        starkv.Profile.from_bytes(data)
    with pytest.raises(starkv.DataError):
        starkv.Profile.from_bytes(b"certainly not a starkv profile")
    with pytest.raises(starkv.DataError):
        starkv.Profile.from_bytes(b"")
    with pytest.raises(starkv.StarkvIOError) as e:
        starkv.Profile.load(tmp_path / "missing.starkv")
    assert isinstance(e.value, OSError)


# ---- pool, sequences, attention ---------------------------------------------------------------


def test_exact_attention_matches_dense_reference(pool):
    rng = np.random.default_rng(11)
    n = 37
    k, v = random_kv(rng, n)
    seq = pool.create_sequence()
    for layer in range(L):
        pool.append(layer, [seq] * n, np.arange(n, dtype=np.int32), k * (layer + 1), v)
    assert pool.length(seq) == n
    q = rng.standard_normal((1, H, D), dtype=np.float32)
    for layer in range(L):
        out = pool.attend(layer, seq, q)
        assert isinstance(out, np.ndarray) and out.shape == (1, H, D)
        np.testing.assert_allclose(out[0], dense_attention(q[0], k * (layer + 1), v), atol=1e-5)
    # a prefix: the first 10 tokens only
    out = pool.attend(0, seq, q, kv_lengths=[10])
    np.testing.assert_allclose(out[0], dense_attention(q[0], k[:10], v[:10]), atol=1e-5)


def test_exact_attention_with_rope(ctx):
    """Keys are stored pre-RoPE and rotated at attention time (NEOX, theta 10000)."""
    rng = np.random.default_rng(12)
    with exact_builder(rope_style="neox", rope_theta=10000.0) as b, b.finish() as p, \
            starkv.Pool(ctx, p, capacity_tokens=256) as pool:
        n = 25
        k, v = random_kv(rng, n)
        seq = pool.create_sequence()
        pool.append(0, [seq] * n, range(n), k, v)
        q = rng.standard_normal((1, H, D), dtype=np.float32)
        out = pool.attend(0, seq, q)
        np.testing.assert_allclose(out[0], dense_attention(q[0], k, v, rope=True), atol=1e-5)


def test_batches_decode_step_and_dtypes(pool):
    rng = np.random.default_rng(13)
    lengths = [5, 17, 33]
    data, seqs = [], []
    for n in lengths:
        seq = pool.create_sequence()
        k, v = random_kv(rng, n)
        for layer in range(L):
            pool.append(layer, np.full(n, seq, np.int32), range(n), k, v)
        data.append((k, v))
        seqs.append(seq)
    q = rng.standard_normal((3, H, D), dtype=np.float32)
    ref = np.stack([dense_attention(q[i], *data[i]) for i in range(3)])

    out = np.empty((3, H, D), np.float32)
    assert pool.attend(1, seqs, q, out) is out
    np.testing.assert_allclose(out, ref, atol=1e-5)

    with pool.decode_step() as step:
        assert step.n_queries == -1
        step.plan(array("i", seqs))
        assert step.n_queries == 3
        for layer in range(L):
            np.testing.assert_allclose(step.run(layer, q), ref, atol=1e-5)
        # float16 queries and output
        out16 = step.run(0, q.astype(np.float16))
        assert out16.dtype == np.float16
        np.testing.assert_allclose(out16.astype(np.float32), ref, atol=2e-3)
        # bfloat16 as uint16 bit patterns, float32 output
        out32 = np.empty((3, H, D), np.float32)
        step.run(0, to_bf16_bits(q), out32, dtype="bf16")
        ref_bf16 = np.stack([dense_attention(from_bf16_bits(to_bf16_bits(q))[i], *data[i])
                             for i in range(3)])
        np.testing.assert_allclose(out32, ref_bf16, atol=1e-4)
        # float32 queries, bfloat16 output
        out_bf = step.run(0, q, out_dtype="bf16")
        np.testing.assert_allclose(from_bf16_bits(np.asarray(out_bf)).reshape(3, H, D), ref,
                                   atol=2e-2)
        step.plan(seqs[:1], kv_lengths=[3])
        np.testing.assert_allclose(step.run(0, q[:1])[0],
                                   dense_attention(q[0], data[0][0][:3], data[0][1][:3]),
                                   atol=1e-5)
        with pytest.raises(starkv.SizeError):  # planned 1 query, given 3
            step.run(0, q)


def test_append_f16_and_latents(pool, profile):
    rng = np.random.default_rng(14)
    n = 9
    k, v = random_kv(rng, n)
    s1, s2 = pool.create_sequence(), pool.create_sequence()
    pool.append(0, [s1] * n, range(n), k.astype(np.float16), v.astype(np.float16))
    # the same tokens as latents computed with the exported DOWN projections
    latents = np.concatenate(
        [k[:, g, :] @ np.frombuffer(profile.projection(0, "keys", g, "down"), np.float32)
         .reshape(D, -1) for g in range(G)]
        + [v.reshape(n, G * D) @ np.frombuffer(profile.projection(0, "values", 0, "down"),
                                              np.float32).reshape(G * D, -1)], axis=1)
    assert latents.shape == (n, profile.latent_width(0))
    pool.append_latents(0, [s2] * n, range(n), latents.astype(np.float32))
    q = rng.standard_normal((1, H, D), dtype=np.float32)
    ref = dense_attention(q[0], k, v)
    np.testing.assert_allclose(pool.attend(0, s2, q)[0], ref, atol=1e-5)
    k16, v16 = k.astype(np.float16).astype(np.float32), v.astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(pool.attend(0, s1, q)[0], dense_attention(q[0], k16, v16),
                               atol=1e-5)
    with pytest.raises(starkv.SizeError):
        pool.append_latents(0, [s2], [n], latents[:1, :-1].copy())


def test_sequences_fork_release_snapshot(ctx, profile, pool):
    rng = np.random.default_rng(15)
    n = 20
    k, v = random_kv(rng, n)
    seq = pool.create_sequence()
    for layer in range(L):
        pool.append(layer, [seq] * n, range(n), k, v)
    child = pool.fork(seq)
    assert pool.length(child) == n
    q = rng.standard_normal((1, H, D), dtype=np.float32)
    np.testing.assert_array_equal(pool.attend(1, child, q), pool.attend(1, seq, q))
    usage = pool.usage()
    assert usage.n_sequences == 2 and usage.stored_tokens >= n
    assert usage.page_tokens == 16 and usage.total_pages == usage.capacity_tokens // 16
    snapshot = pool.export_sequence(seq)
    assert isinstance(snapshot, bytes)
    pool.release(seq)
    pool.release(child)
    assert pool.usage().n_sequences == 0
    restored = pool.import_sequence(snapshot)
    assert pool.length(restored) == n
    np.testing.assert_allclose(pool.attend(1, restored, q)[0], dense_attention(q[0], k, v),
                               atol=1e-5)
    # into another pool of the same profile, from a bytearray
    with starkv.Pool(ctx, profile) as other:
        other_seq = other.import_sequence(bytearray(snapshot))
        np.testing.assert_array_equal(other.attend(1, other_seq, q), pool.attend(1, restored, q))
    # a corrupt snapshot, and one from another profile
    bad = bytearray(snapshot)
    bad[-3] ^= 0x5A
    with pytest.raises(starkv.CorruptDataError):
        pool.import_sequence(bad)
    with pytest.raises(starkv.DataError):
        pool.import_sequence(b"garbage")
    with build_from_weights() as foreign, starkv.Pool(ctx, foreign) as foreign_pool:
        with pytest.raises(starkv.InvalidArgumentError):
            foreign_pool.import_sequence(snapshot)


def test_pool_full_writes_nothing(ctx, profile):
    rng = np.random.default_rng(16)
    with starkv.Pool(ctx, profile, capacity_tokens=32, page_tokens=16) as small:
        seq = small.create_sequence()
        k, v = random_kv(rng, 20)
        for layer in range(L):  # a page holds 16 tokens of every layer: 2 of the 2 pages
            small.append(layer, [seq] * 20, range(20), k, v)
        used = small.usage()
        assert used.free_pages == 0 and used.stored_tokens == 20
        with pytest.raises(starkv.PoolFullError) as e:
            small.append(0, [seq] * 20, range(20, 40), k, v)
        assert e.value.status == starkv.Status.POOL_FULL
        assert isinstance(e.value, starkv.ResourceError)
        assert small.usage() == used and small.length(seq) == 20  # nothing was written
        other = small.create_sequence()
        with pytest.raises(starkv.PoolFullError):
            small.append(0, [other], [0], k[:1], v[:1])


def test_pool_argument_errors(pool):
    rng = np.random.default_rng(17)
    k, v = random_kv(rng, 4)
    seq = pool.create_sequence()
    q = rng.standard_normal((1, H, D), dtype=np.float32)
    with pytest.raises(starkv.SizeError):  # keys for 3 tokens, ids for 4
        pool.append(0, [seq] * 4, range(4), k[:3], v)
    with pytest.raises(starkv.SizeError):  # positions shorter than seq_ids
        pool.append(0, [seq] * 4, range(3), k, v)
    with pytest.raises(starkv.DTypeError):
        pool.append(0, [seq] * 4, range(4), k.astype(np.float64), v)
    with pytest.raises(starkv.DTypeError):
        pool.append(0, [seq] * 4, range(4), k, v.astype(np.float16))
    with pytest.raises(starkv.DTypeError):
        pool.append(0, [seq] * 4, range(4), k.astype(np.int32), v.astype(np.int32))
    with pytest.raises(starkv.DTypeError):  # explicit dtype that contradicts the data
        pool.append(0, [seq] * 4, range(4), k, v, dtype="f16")
    with pytest.raises(starkv.DTypeError):  # a list is not a buffer
        pool.append(0, [seq] * 4, range(4), k.tolist(), v)
    with pytest.raises(starkv.DTypeError):  # untyped bytes need a dtype
        pool.append(0, [seq] * 4, range(4), k.tobytes(), v.tobytes())
    for layer in range(L):  # ... and with one, work
        pool.append(layer, [seq] * 4, range(4), k.tobytes(), v.tobytes(), dtype="f32")
    with pytest.raises(starkv.InvalidArgumentError):  # non-contiguous
        pool.append(0, [seq] * 2, [4, 5], k[::2], v[::2])
    with pytest.raises(starkv.InvalidArgumentError):  # a layer that does not exist
        pool.append(L, [seq] * 4, range(4), k, v)
    with pytest.raises(starkv.InvalidArgumentError):  # positions must continue the sequence
        pool.append(0, [seq] * 4, range(10, 14), k, v)
    with pytest.raises(starkv.InvalidArgumentError):  # an unknown sequence
        pool.append(0, [12345] * 4, range(4), k, v)
    with pytest.raises(starkv.InvalidArgumentError):
        pool.length(12345)
    with pytest.raises(starkv.InvalidArgumentError):  # attending to tokens not stored
        pool.attend(0, seq, q, kv_lengths=[100])
    with pytest.raises(starkv.InvalidArgumentError):  # out is read-only
        pool.attend(0, seq, q, out=bytes(H * D * 4))
    with pytest.raises(starkv.SizeError):
        pool.attend(0, seq, q, out=np.empty((1, H, D - 1), np.float32))
    with pytest.raises(starkv.SizeError):
        pool.attend(0, seq, q, kv_lengths=[1, 2])
    with pytest.raises(starkv.InvalidArgumentError):
        pool.attend(0, [2**40], q)  # not an int32
    with pytest.raises(starkv.InvalidArgumentError):  # device memory on a CPU pool
        pool.attend(0, seq, starkv.DeviceArray(0x1000, (1, H, D), "f32"),
                    out=starkv.DeviceArray(0x2000, (1, H, D), "f32"))
    with pytest.raises(starkv.InvalidArgumentError):  # device arrays need an explicit out
        pool.attend(0, seq, starkv.DeviceArray(0x1000, (1, H, D), "f32"))

    class FakeCudaArray:  # e.g. a CuPy array: device memory, described by an interface
        __cuda_array_interface__ = {"shape": (1, H, D), "typestr": "<f4", "data": (0x1000, False),
                                    "version": 3, "strides": None}

    with pytest.raises(starkv.InvalidArgumentError):
        pool.attend(0, seq, FakeCudaArray(), out=FakeCudaArray())
    with pytest.raises(starkv.DTypeError):
        starkv.DeviceArray.from_cuda_array(type("F64", (), {"__cuda_array_interface__": {
            "shape": (2,), "typestr": "<f8", "data": (0x1000, False), "version": 3}})())
    with pytest.raises(starkv.InvalidArgumentError):
        starkv.DeviceArray(0, (4,), "f32")
    assert pool.length(seq) == 4  # none of the failed calls wrote anything


def test_run_before_plan(pool):
    with pool.decode_step() as step:
        with pytest.raises(starkv.StateError):
            step.run(0, np.zeros((1, H, D), np.float32))
        with pytest.raises(starkv.StateError):
            native.skv_step_run(step._raw, 0, np.zeros((1, H, D), np.float32), -1,
                                np.zeros((1, H, D), np.float32), -1)


# ---- lifetimes -------------------------------------------------------------------------------


def test_closed_handles_raise(ctx):
    b = exact_builder()
    p = b.finish()
    pool = starkv.Pool(ctx, p)
    step = pool.decode_step()
    for h in (step, pool, p, b):
        h.close()
        h.close()  # twice is harmless
        assert h.closed
    with pytest.raises(starkv.ClosedError):
        b.finish()
    with pytest.raises(starkv.ClosedError):
        b.add_layer(0)
    with pytest.raises(starkv.ClosedError):
        p.info
    with pytest.raises(starkv.ClosedError):
        p.to_bytes()
    with pytest.raises(starkv.ClosedError):
        pool.create_sequence()
    with pytest.raises(starkv.ClosedError):
        pool.attend(0, 0, np.zeros((1, H, D), np.float32))
    with pytest.raises(starkv.ClosedError):
        step.plan([0])
    with pytest.raises(starkv.ClosedError):
        starkv.Pool(ctx, p)
    ctx2 = starkv.Context()
    ctx2.close()
    with pytest.raises(starkv.ClosedError):
        ctx2.synchronize()
    with pytest.raises(starkv.ClosedError):
        starkv.ProfileBuilder(n_layers=1, n_heads=H, n_kv_heads=G, head_dim=D, context=ctx2)
    with pytest.raises(starkv.InvalidArgumentError):
        starkv.Pool(ctx, "not a profile")
    assert "closed" in repr(pool)


def test_pool_keeps_profile_and_context_alive():
    rng = np.random.default_rng(18)
    ctx = starkv.Context()
    with exact_builder() as b:
        profile = b.finish()
    pool = starkv.Pool(ctx, profile)
    assert pool.profile is profile and pool.context is ctx
    profile.close()
    ctx.close()  # the pool holds both
    step = pool.decode_step()
    pool.close()  # the step holds the pool
    assert step.pool is pool
    with pytest.raises(starkv.ClosedError):
        pool.create_sequence()
    with pytest.raises(starkv.InvalidArgumentError):
        step.plan([7])  # the pool is alive (no such sequence), not closed
    step.close()
    # a profile the program dropped (garbage-collected) stays alive in its pool
    with starkv.Context() as c2, exact_builder() as b2:
        p2 = b2.finish()
        pool2 = starkv.Pool(c2, p2)
        del p2
        gc.collect()
        seq = pool2.create_sequence()
        k, v = random_kv(rng, 3)
        pool2.append(0, [seq] * 3, range(3), k, v)
        pool2.close()


def test_garbage_collection_is_a_safety_net():
    """Handles dropped without close() are released by finalizers, on this or another thread."""
    rng = np.random.default_rng(19)
    ctx = starkv.Context()
    with exact_builder() as b:
        profile = b.finish()
    keep = starkv.Pool(ctx, profile)
    for _ in range(5):
        pool = starkv.Pool(ctx, profile)  # dropped while `keep` uses the same context
        pool.decode_step()
        del pool
    gc.collect()
    seq = keep.create_sequence()  # runs the context's deferred releases
    k, v = random_kv(rng, 2)
    keep.append(0, [seq] * 2, range(2), k, v)

    # a finalizer on another thread only queues the release
    orphan = starkv.Pool(ctx, profile)
    raw = orphan._raw
    orphan._raw = None
    t = threading.Thread(target=native.skv_finalize, args=(raw,))
    t.start()
    t.join()
    keep.usage()
    del keep, ctx, profile
    gc.collect()


def test_raw_layer_refuses_wrong_handle_kinds(ctx, profile):
    with pytest.raises(starkv.InvalidArgumentError):
        native.skv_seq_create(profile._raw)
    assert native.skv_handle_kind(ctx._raw) == native.SKV_HANDLE_CONTEXT
    assert native.skv_handle_kind(None) == 0


def test_many_threads_each_with_its_own_context():
    errors = []

    def work(i):
        try:
            rng = np.random.default_rng(100 + i)
            with starkv.Context(n_threads=1) as c, exact_builder() as b, b.finish() as p, \
                    starkv.Pool(c, p, capacity_tokens=128) as pool:
                seq = pool.create_sequence()
                k, v = random_kv(rng, 8)
                pool.append(0, [seq] * 8, range(8), k, v)
                q = rng.standard_normal((1, H, D), dtype=np.float32)
                np.testing.assert_allclose(pool.attend(0, seq, q)[0], dense_attention(q[0], k, v),
                                           atol=1e-5)
                with pytest.raises(starkv.SizeError):
                    pool.attend(0, seq, q[:, :1])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_array_module_without_numpy(ctx, profile):
    """Plain array.array buffers work too, and attend then returns an array.array."""
    with starkv.Pool(ctx, profile) as pool:
        seq = pool.create_sequence()
        k = array("f", [0.5] * (2 * G * D))
        pool.append(0, array("i", [seq, seq]), array("i", [0, 1]), k, k)
        out = pool.attend(0, seq, array("f", [1.0] * (H * D)))
        assert isinstance(out, array) and out.typecode == "f" and len(out) == H * D
        assert all(abs(x - 0.5) < 1e-6 for x in out)
