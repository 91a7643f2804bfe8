#!/usr/bin/env bash
# Session 29 call 4. Trees: main = cb1c480's kernels (.device/k_main.tar); new = the working tree: the value kernel
# splits a tile's work into units (m-tile of 16 channels, k-step of 16 tokens) spread evenly over the 8 warps (a
# 320-channel block: 5 units each, where whole m-tiles gave four warps 3 and four warps 2), each warp decoding the Z
# region of its own units. GPU suite on new; rows of every value-block shape (75%: 20 m-tiles; 60%/50%: others).
set -o pipefail
bench/ab_trees.sh --rounds 2 --reps 20 --seconds 330 --tests new main=.device/k_main.tar new=. -- \
  "llama2-7b fp16 16 32768 75%" "llama3-8b fp16 16 32768 75%" "llama2-7b 4/3 16 32768 75%" "llama3-8b 4/3 16 32768 75%" \
  "llama2-7b 4/3 16 32768 60%" "llama3-8b 4/3 16 32768 60%" "llama2-7b fp16 16 32768 50%" "llama3-8b 4/3 16 32768 50%" \
  "llama3-8b fp16 64 32768 75%" "llama2-7b fp16 1 32768 75%" "llama3-8b 4/3 1 32768 75%"
