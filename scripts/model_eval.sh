#!/usr/bin/env bash
# The model benchmark of issue 4: SmolLM2-135M perplexity on 16,384 tokens of *Persuasion*,
# dense vs starkv over the grid in samples/model_demo/evaluate.py (50/60/75% low-rank x
# allocators soft/static/greedy x with/without calibration at fp16 latents, plus 4-bit and
# 3/4-bit latents), greedy-generation agreement dense vs 75%, and the soft-threshold allocator's
# rank map. Writes samples/model_demo/results/model_eval.{md,json}, ppl_vs_compression.png and
# rank_heatmap.png. About 30 minutes on a 2-core CPU; run scripts/demo.sh once first (it
# installs, builds and prepares the model).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${STARKV_DEMO_BUILD:-build/demo}
if [[ ! -x $build/samples/model_demo/llama_runner || ! -x $build/tools/starkv ]]; then
  echo "model_eval.sh: $build has no llama_runner/starkv yet; run scripts/demo.sh first" >&2
  exit 1
fi
cmake --build "$build" -j"$(nproc)" --target starkv_cli llama_runner
python3 samples/model_demo/prepare_model.py
# The plots need matplotlib for the python3 on PATH (which may not be Debian's).
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install --quiet matplotlib

python3 samples/model_demo/evaluate.py --grid full --jobs "$(nproc)" --plots \
  --runner "$build/samples/model_demo/llama_runner" --starkv "$build/tools/starkv" \
  --work-dir "$build/model_eval" --out-dir samples/model_demo/results "$@"
