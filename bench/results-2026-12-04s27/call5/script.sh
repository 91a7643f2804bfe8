#!/usr/bin/env bash
# Session 27 call 5 (run from main 2ff86a6's tree, with the tars made by git archive REV kernels src/cuda):
#   git archive ee6bbcf kernels src/cuda > .device/k_main.tar   # "same": main again, built separately (A/A)
#   git archive 4d09a15 kernels src/cuda > .device/k_c2.tar     # call 2's split-pairs tree
#   git archive a52171d kernels src/cuda > .device/k_c3.tar     # call 3's split-pairs tree
bench/ab_trees.sh --rounds 2 --seconds 420 main=. same=.device/k_main.tar c2=.device/k_c2.tar c3=.device/k_c3.tar -- \
  "llama3-8b fp16 16 32768 75%" "llama3-8b 4/3 16 32768 75%" "llama3-8b fp16 16 32768 60%" "llama2-7b fp16 16 32768 75%"
