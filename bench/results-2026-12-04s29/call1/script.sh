#!/usr/bin/env bash
# Session 29 call 1. Trees: main = cb1c480's kernels (.device/k_main.tar); new = the working tree: the wgmma folds with
# quantized keys that keep their staged codes to the tile's end (the narrow MHA instances at padded rank 16/32/48, the
# reconstructing ones at 16/32/64 without compact rows) decode per warp the rows that the warp alone reads (its 16
# tokens of its warpgroup's heads), ordered by a warp barrier instead of a CTA barrier. GPU suite on new. Rows: the
# changed layouts (Llama-2-like 75%/60% quantized, Llama-3-like 75%/50% quantized) and two controls whose code is
# unchanged (Llama-3-like 60% 4/3: compact rows; Llama-2-like 50% 4/3: one CTA per SM, early refill).
set -o pipefail
bench/ab_trees.sh --rounds 2 --reps 20 --seconds 330 --tests new main=.device/k_main.tar new=. -- \
  "llama2-7b 4/3 16 32768 75%" "llama3-8b 4/3 16 32768 75%" "llama2-7b 4/4 16 32768 75%" "llama3-8b 4/4 16 32768 75%" \
  "llama2-7b 4/3 16 32768 60%" "llama3-8b 4/3 16 32768 50%" "llama2-7b 4/3 64 32768 75%" "llama3-8b 4/3 64 32768 75%" \
  "llama2-7b 4/3 1 32768 75%" "llama3-8b 4/3 16 32768 60%" "llama2-7b 4/3 16 32768 50%"
