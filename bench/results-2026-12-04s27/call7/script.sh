#!/usr/bin/env bash
# Session 27 call 7: the whole GPU suite and run_gpu.sh's memcheck (23 tests) and racecheck (16) subsets on main 2ff86a6 (kernels ee6bbcf).
OUT=$OUT timeout 560 bench/run_gpu.sh tests sanitize
