#!/usr/bin/env python3
"""Merges decode_bench (starkv) and sdpa_baseline.py (dense) results into one table.
usage: merge_results.py starkv_results.jsonl sdpa_results.jsonl [--gpu nvidia-smi.csv] [--md table.md]
                        [--peak GB/s]   (HBM peak for the % column: 3350 H100 SXM, 4800 H200;
                                         default: decode_bench's, from the device, else 3350)"""
import json
import sys

PEAK_GBS = 3350.0


def load(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def main():
    sk, dense = load(sys.argv[1]), load(sys.argv[2])
    md = sys.argv[sys.argv.index("--md") + 1] if "--md" in sys.argv else None
    envs = [r for r in sk + dense if r["kind"].startswith("env")]
    device_peaks = [r["peak_gbs"] for r in envs if r.get("peak_gbs")]
    if "--peak" in sys.argv:
        peak = float(sys.argv[sys.argv.index("--peak") + 1])
    else:
        peak = float(device_peaks[0]) if device_peaks else PEAK_GBS
    best = {}
    for r in dense:
        if r["kind"] != "sdpa":
            continue
        key = (r["shape"], r["batch"], r["context"])
        if key not in best or r["us"] < best[key][0]:
            best[key] = (r["us"], r["backend"])
    # The same calls replayed from CUDA graphs (us_graph), where both sides were timed so.
    best_graph = {}
    for r in dense:
        if r["kind"] == "sdpa" and r.get("us_graph"):
            key = (r["shape"], r["batch"], r["context"])
            if key not in best_graph or r["us_graph"] < best_graph[key][0]:
                best_graph[key] = (r["us_graph"], r["backend"])
    graphs = any(r.get("us_graph") for r in sk if r["kind"] == "starkv")
    appends = {(r["shape"], r["compression"], r["bits"], r["batch"]): r["us_token"]
               for r in sk if r["kind"] == "append"}
    appends_call = {(r["shape"], r["compression"], r["bits"], r["batch"]): r["us_call"]
                    for r in sk if r["kind"] == "append"}
    lines = []
    if "--gpu" in sys.argv:
        try:
            with open(sys.argv[sys.argv.index("--gpu") + 1]) as f:
                lines.append("nvidia-smi: " + " / ".join(l.strip() for l in f if l.strip()))
        except OSError:
            pass
    for e in envs:
        lines.append("environment: " + json.dumps(e))
    lines.append("")
    hdr = (f"| shape | batch | context | low-rank | bits | ranks k/v | MB read/step | GB/s | % of {peak / 1000:.2f} TB/s "
           "| starkv µs | best dense µs (backend) | speedup | append µs/token | append share of step |")
    if graphs:
        hdr += " starkv graph µs | best dense graph µs (backend) | graph speedup |"
    lines.append(hdr)
    lines.append("|" + "---|" * (17 if graphs else 14))
    for r in sk:
        if r["kind"] != "starkv":
            continue
        gbs = r["bytes"] / (r["us"] * 1e-6) / 1e9
        key = (r["shape"], r["batch"], r["context"])
        d = best.get(key)
        dense_s = f"{d[0]:.1f} ({d[1]})" if d else "n/a"
        speed = f"{d[0] / r['us']:.2f}x" if d else "n/a"
        akey = (r["shape"], r["compression"], r["bits"], r["batch"])
        app = appends.get(akey)
        call = appends_call.get(akey)
        share = f"{100.0 * call / (call + r['us']):.0f}%" if call else "n/a"
        # "0%" rows are uncompressed layers (starkv's dense kernels); no_dense marks a run with
        # STARKV_NO_DENSE=1 (the same layer through the low-rank kernels).
        comp = r["compression"] + (" (STARKV_NO_DENSE)" if r.get("no_dense") else "")
        app_s = f"{app:.2f}" if app is not None else "n/a"
        share = share if app is not None else "n/a"
        row = (f"| {r['shape']} | {r['batch']} | {r['context']} | {comp} | {r['bits']} | "
               f"{r['key_rank']}/{r['value_rank']} | {r['bytes'] / 1e6:.1f} | {gbs:.0f} | "
               f"{100 * gbs / peak:.1f}% | {r['us']:.1f} | {dense_s} | {speed} | {app_s} | {share} |")
        if graphs:
            g, dg = r.get("us_graph"), best_graph.get(key)
            row += (f" {g:.1f} |" if g else " n/a |") + (f" {dg[0]:.1f} ({dg[1]}) |" if dg else " n/a |")
            row += f" {dg[0] / g:.2f}x |" if g and dg else " n/a |"
        lines.append(row)
    text = "\n".join(lines)
    print(text)
    if md:
        with open(md, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
