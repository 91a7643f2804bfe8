"""The whole starkv round trip from Python: build a profile from (random) projection weights,
create a pool, append a sequence's keys and values, attend, snapshot the sequence and restore it.

The same scenario and numbers as samples/c/basic.c: the same pseudo-random generator and seeds, so
the printed lines match the C sample's. Run:  python3 samples/python/basic.py
"""
import sys
from array import array

import starkv

LAYERS, HEADS, KV_HEADS, HEAD_DIM, HIDDEN, TOKENS = 2, 8, 2, 64, 256, 100


def fill(n, seed, scale):
    """n reproducible float32 values in [-scale, scale): the C sample's generator."""
    scale = array("f", [scale])[0]  # the float32 value, as C's 0.05f
    out = array("f", bytes(4 * n))
    state = seed
    for i in range(n):
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = scale * (((state >> 8) & 0xFFFF) / 32768.0 - 1.0)
    return out


def main():
    kv_width, q_width = KV_HEADS * HEAD_DIM, HEADS * HEAD_DIM
    with starkv.Context() as ctx:
        # 1. A profile: 75% low-rank compression, 4-bit outliers and 3-bit inliers.
        with starkv.ProfileBuilder(n_layers=LAYERS, n_heads=HEADS, n_kv_heads=KV_HEADS,
                                   head_dim=HEAD_DIM, hidden_dim=HIDDEN, target_compression=0.75,
                                   inlier_bits=3, outlier_bits=4, context=ctx) as builder:
            for layer in range(LAYERS):
                # [G*D, d]: the layout of HF/Llama checkpoints
                builder.add_layer(layer, w_k=fill(kv_width * HIDDEN, 11 + layer, 0.05),
                                  w_v=fill(kv_width * HIDDEN, 23 + layer, 0.05))
            profile = builder.finish()
        info = profile.info
        print(f"profile: {info.bytes_per_token} bytes/token vs {info.dense_bytes_per_token} dense "
              f"fp16: compression {100.0 * info.compression:.1f}% ({info.compression_factor:.1f}x)")

        # 2. A pool and one sequence of TOKENS tokens in every layer.
        with starkv.Pool(ctx, profile, capacity_tokens=4096) as pool:
            profile.close()  # the pool keeps its own reference
            seq = pool.create_sequence()
            for layer in range(LAYERS):
                pool.append(layer, [seq] * TOKENS, range(TOKENS),
                            fill(TOKENS * kv_width, 101 + layer, 1.0),
                            fill(TOKENS * kv_width, 202 + layer, 1.0))

            # 3. Attend with a post-RoPE query in the last layer.
            query = fill(q_width, 303, 1.0)
            out = pool.attend(LAYERS - 1, seq, query, kv_lengths=TOKENS)

            # 4. Snapshot the sequence, restore it as a new sequence, attend again: identical.
            snapshot = pool.export_sequence(seq)
            restored = pool.import_sequence(snapshot)
            out_restored = pool.attend(LAYERS - 1, restored, query, kv_lengths=TOKENS)
            diff = sum(abs(a - b) for a, b in zip(out, out_restored))
            norm = sum(abs(a) for a in out)
            print(f"attention output: out[0..3] = {out[0]:.6f} {out[1]:.6f} {out[2]:.6f} "
                  f"{out[3]:.6f}, mean |out| = {norm / q_width:.6f}")
            print(f"snapshot: {len(snapshot)} bytes for {TOKENS} tokens; restored output differs "
                  f"by {diff:.3g}")
    return 0 if diff == 0.0 else 1


if __name__ == "__main__":
    sys.exit(main())
