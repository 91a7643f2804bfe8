#!/usr/bin/env bash
# Session 27 call 10 (main 7a6ecc2; .device/k_main.tar = git archive ee6bbcf kernels src/cuda): the mended ab_trees.sh, A/A, one round.
bench/ab_trees.sh --rounds 1 --tests main main=. same=.device/k_main.tar -- "llama3-8b fp16 16 32768 75%" "llama2-7b fp16 16 32768 75%" "llama3-8b 4/3 16 32768 75%"
