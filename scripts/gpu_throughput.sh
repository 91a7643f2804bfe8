#!/usr/bin/env bash
# End-to-end decode throughput on a GPU, dense fp16 KV against starkv, in one memory budget
# (llama_runner `throughput`; see samples/model_demo/llama_runner/decode_throughput.h).
#
#   scripts/gpu_throughput.sh RUNNER MODEL_DIR OUT_DIR PROFILE.starkv...
#
# For the budget (BUDGET_GIB, default 16) and context (CONTEXT, default 8192) it runs: dense at
# the largest batch that fits; each starkv profile at that same batch (same work, per-step
# speed) and at its own largest batch (the capacity the compression buys). SYNTHETIC=SEED runs
# random weights of MODEL_DIR/config.json's shape (for machines without the checkpoint; speed
# does not depend on the weights). Writes OUT_DIR/throughput.{log,jsonl,md}.
set -uo pipefail
[ $# -ge 3 ] || { sed -n 2,12p "$0"; exit 2; }
runner=$1 model=$2 out=$3
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
common=(--model-dir "$model" --context "${CONTEXT:-8192}" --kv-budget-gib "${BUDGET_GIB:-16}"
        --steps "${STEPS:-16}" --json)
[ -n "${SYNTHETIC:-}" ] && common+=(--synthetic-weights "$SYNTHETIC")
: > "$out/throughput.jsonl"
: > "$out/throughput.log"

run() {
  echo "== llama_runner throughput $*" | tee -a "$out/throughput.log"
  "$runner" throughput "${common[@]}" "$@" 2>&1 | tee -a "$out/throughput.log" \
    | grep '^RESULT ' | sed 's/^RESULT //' >> "$out/throughput.jsonl"
}

run --kv dense
dense_batch=$(python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])['batch'])" \
  "$out/throughput.jsonl") || { echo "the dense run failed"; exit 1; }
for profile in "$@"; do
  run --kv "starkv:$profile" --batch "$dense_batch"
  run --kv "starkv:$profile"
done
python3 "$here/samples/model_demo/throughput_table.py" "$out/throughput.jsonl" | tee "$out/throughput.md"
