#!/usr/bin/env python3
"""Prints the markdown table of scripts/gpu_throughput.sh from llama_runner's RESULT lines."""
import json
import sys


def main() -> int:
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    if not rows:
        print("no results")
        return 1
    dense = next((r for r in rows if r["kv"] == "dense"), None)
    first = rows[0]
    print(f"{first['device']}; context {first['context']} tokens; KV budget "
          f"{first['kv_budget_gib']} GiB; {first['steps']} timed decode steps"
          + ("; SYNTHETIC weights" if first.get("synthetic_weights") else ""))
    print()
    print("| KV cache | bytes/token | batch | sequences that fit | KV MiB allocated "
          "| tokens/s | ms/step | attention ms/step | vs dense tokens/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = "dense fp16" if r["kv"] == "dense" else r["kv"].split("/")[-1]
        ratio = r["tokens_per_second"] / dense["tokens_per_second"] if dense else float("nan")
        print(f"| {name} | {r['kv_bytes_per_token']} | {r['batch']} | {r['sequences_fit_budget']} "
              f"| {r['kv_bytes_allocated'] / 2**20:.0f} | {r['tokens_per_second']:.0f} "
              f"| {r['ms_per_step']:.2f} | {r['attention_ms_per_step']:.2f} | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
