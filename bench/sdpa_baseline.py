#!/usr/bin/env python3
"""Dense fp16 decode-attention baseline for bench/decode_bench: one query token per sequence,
torch.nn.functional.scaled_dot_product_attention over dense fp16 K/V (enable_gqa=True), with the
flash and cuDNN backends forced through torch.nn.attention.sdpa_kernel. Same shapes, batches and
contexts as decode_bench; CUDA events, median of >= 20 timed runs after warm-up, L2 flushed by
overwriting a 256 MB buffer before each run; and the same call captured into a CUDA graph and
replayed (us_graph), as decode_bench times starkv's step both ways. Writes one JSON object per line to --out."""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = [("llama2-7b", 32, 32, 128), ("llama3-8b", 32, 8, 128)]
# Run only when named with --shape (as in decode_bench).
ON_REQUEST = [("smollm2-135m", 9, 3, 64)]


def time_once(fn, flush):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    flush.fill_(1)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1000.0


def time_graph(fn, flush, reps):
    """fn captured once into a CUDA graph and replayed, timed as time_once times fn (None where the
    backend cannot be captured)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture stream, as torch.cuda.graphs asks
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            fn()
    except Exception as e:
        print(f"  graph capture failed ({str(e).splitlines()[0][:80]})", flush=True)
        return None
    for _ in range(3):
        graph.replay()
    torch.cuda.synchronize()
    return statistics.median(time_once(graph.replay, flush) for _ in range(reps))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="sdpa_results.jsonl")
    ap.add_argument("--reps", type=int, default=25)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--shape", help="only this shape (smollm2-135m runs only when named)")
    ap.add_argument("--batch", type=int, help="only this batch size")
    ap.add_argument("--context", type=int, help="only this context length")
    args = ap.parse_args()
    shapes = [s for s in SHAPES + ON_REQUEST if s[0] == args.shape] if args.shape else SHAPES
    batches = [16] if args.quick else [1, 16, 64]
    contexts = [32768] if args.quick else [4096, 16384, 32768, 131072]
    if args.batch:
        batches = [args.batch]
    if args.context:
        contexts = [args.context]
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
    out = open(args.out, "w")
    env = {"kind": "env_sdpa", "device": props.name, "torch": torch.__version__,
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    out.write(json.dumps(env) + "\n")
    print("#", env, flush=True)
    free_bytes = torch.cuda.mem_get_info()[0]
    for name, H, G, D in shapes:
        for b in batches:
            for t in contexts:
                kv_bytes = 2 * b * G * t * D * 2
                if kv_bytes > 0.8 * free_bytes:
                    print(f"{name} batch {b} context {t}: {kv_bytes/1e9:.0f} GB dense K/V does not fit; skipped",
                          flush=True)
                    continue
                q = torch.randn(b, H, 1, D, device=dev, dtype=torch.float16)
                k = torch.randn(b, G, t, D, device=dev, dtype=torch.float16)
                v = torch.randn(b, G, t, D, device=dev, dtype=torch.float16)
                for backend_name, backend in (("flash", SDPBackend.FLASH_ATTENTION),
                                              ("cudnn", SDPBackend.CUDNN_ATTENTION)):
                    def fn():
                        with sdpa_kernel(backend):
                            return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                    try:
                        for _ in range(3):
                            fn()
                        torch.cuda.synchronize()
                        times = [time_once(fn, flush) for _ in range(args.reps)]
                    except Exception as e:  # a backend may refuse a shape
                        print(f"{name} b={b} t={t} {backend_name}: unavailable ({str(e).splitlines()[0][:80]})",
                              flush=True)
                        continue
                    us = statistics.median(times)
                    graph_us = time_graph(fn, flush, args.reps)
                    rec = {"kind": "sdpa", "shape": name, "H": H, "G": G, "D": D, "batch": b,
                           "context": t, "backend": backend_name, "us": us, "us_min": min(times),
                           "bytes": kv_bytes}
                    if graph_us is not None:
                        rec["us_graph"] = graph_us
                    out.write(json.dumps(rec) + "\n")
                    out.flush()
                    graph_s = f"{graph_us:9.1f}" if graph_us is not None else "      n/a"
                    print(f"{name:10s} b={b:3d} t={t:6d} {backend_name:6s} {us:9.1f} us "
                          f"{kv_bytes/us/1e3:7.0f} GB/s  graph {graph_s} us", flush=True)
                del q, k, v
                torch.cuda.empty_cache()
    out.close()


if __name__ == "__main__":
    main()
