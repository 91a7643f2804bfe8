#!/usr/bin/env python3
"""An independent numpy implementation of the model's forward pass, written the way Hugging
Face's LlamaForCausalLM computes it (rotate_half RoPE, repeat_kv GQA, fp32), to cross-check
llama_runner on one short window:

    python3 reference_perplexity.py --tokens 256
    llama_runner ppl --max-tokens 256 --window 256 --kv dense-fp32     # same mean NLL

Slow and memory-hungry (full attention matrices): meant for a few hundred tokens.
"""

import argparse
import json
import os
import struct

import numpy as np


def cache_dir():
    root = os.environ.get("STARKV_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                          "starkv")
    return os.path.join(root, "smollm2-135m")


class Safetensors:
    def __init__(self, path):
        self.raw = open(path, "rb").read()
        (n,) = struct.unpack_from("<Q", self.raw, 0)
        self.header = json.loads(self.raw[8:8 + n])
        self.base = 8 + n

    def __getitem__(self, name):
        h = self.header[name]
        begin, end = h["data_offsets"]
        dtype = {"F16": np.float16, "F32": np.float32}[h["dtype"]]
        buf = self.raw[self.base + begin:self.base + end]
        return np.frombuffer(buf, dtype=dtype).reshape(h["shape"]).astype(np.float32)


def rope(x, cos, sin, style):
    """x: [n, heads, D]; cos/sin: [n, D/2]."""
    c, s = cos[:, None, :], sin[:, None, :]
    if style == "neox":
        half = x.shape[-1] // 2
        a, b = x[..., :half], x[..., half:]
        return np.concatenate([a * c - b * s, b * c + a * s], axis=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = a * c - b * s, b * c + a * s
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", default=cache_dir())
    ap.add_argument("--tokens", type=int, default=256, help="first N tokens of the file")
    ap.add_argument("--tokens-file", help="default: MODEL_DIR/eval_tokens.bin")
    ap.add_argument("--rope-style", help="override config.json (neox or gptj)")
    args = ap.parse_args()

    cfg = json.load(open(os.path.join(args.model_dir, "config.json")))
    w = Safetensors(os.path.join(args.model_dir, "model.safetensors"))
    path = args.tokens_file or os.path.join(args.model_dir, "eval_tokens.bin")
    toks = np.fromfile(path, dtype="<i4")[:args.tokens]
    style = args.rope_style or cfg.get("rope_style", "neox")
    n, H, G, D = len(toks), cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]

    inv_freq = 1.0 / cfg["rope_theta"] ** (np.arange(0, D, 2) / D)
    angles = np.arange(n)[:, None] * inv_freq[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    causal = np.triu(np.full((n, n), -np.inf), 1)

    def rms_norm(x, weight):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight

    embed = w["model.embed_tokens.weight"]
    x = embed[toks]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms_norm(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(n, H, D)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(n, G, D)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(n, G, D)
        q, k = rope(q, cos, sin, style), rope(k, cos, sin, style)
        k, v = np.repeat(k, H // G, axis=1), np.repeat(v, H // G, axis=1)
        s = np.einsum("nhd,mhd->hnm", q, k) / np.sqrt(D) + causal
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = np.einsum("hnm,mhd->nhd", s, v).reshape(n, H * D)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"])
        g, u = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"])
    lm_head = w["lm_head.weight"] if "lm_head.weight" in w.header else embed
    z = (x @ lm_head.T).astype(np.float64)
    zmax = z.max(-1)
    lse = np.log(np.exp(z - zmax[:, None]).sum(-1)) + zmax
    nll = lse[:-1] - z[np.arange(n - 1), toks[1:]]
    print(f"reference: {n - 1} tokens scored, rope {style}, mean NLL {nll.mean():.5f} nats, "
          f"perplexity {np.exp(nll.mean()):.4f}")


if __name__ == "__main__":
    main()
