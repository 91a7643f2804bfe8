#!/usr/bin/env bash
# wip/s10-quant-wgmma: the run that has to pass before the branch merges (device machine, from the
# repository root, OUT set). GPU tests (the two new quantized CudaFoldWgmma cases reach the
# kQuantWgmma instances), memcheck and racecheck over the fold suite, the kernel names that run at
# 60% and 50% 4/3 bits (they must be the kQuantWgmma instances), and the A/B against
# STARKV_NO_QUANT_WGMMA=1.
set -o pipefail
B=/tmp/starkv-build; LOG=$OUT; mkdir -p $LOG
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1 || exit 1
ninja -C $B -j16 starkv_gpu_tests decode_bench > $LOG/build.txt 2>&1 || { grep -A3 error $LOG/build.txt | head -40; exit 1; }
timeout 150 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED)" $LOG/tests.txt
timeout 200 compute-sanitizer --tool memcheck $B/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*' > $LOG/memcheck.txt 2>&1; tail -1 $LOG/memcheck.txt
timeout 200 compute-sanitizer --tool racecheck $B/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*' > $LOG/racecheck.txt 2>&1; tail -1 $LOG/racecheck.txt
for c in 60% 50%; do
  ncu --kernel-name regex:fold_scores --launch-count 1 --metrics gpu__time_duration.sum,launch__shared_mem_per_block_dynamic \
    $B/bench/decode_bench --quick --reps 1 --shape llama2-7b --comp $c --bits 4/3 --out /tmp/n.jsonl 2>/dev/null | grep -E "fold_scores|gpu__time|shared_mem"
done > $LOG/kernels.txt; cat $LOG/kernels.txt
for r in 1 2; do for c in 60% 50%; do for m in wgmma mmasync; do
  env $([ $m = mmasync ] && echo STARKV_NO_QUANT_WGMMA=1) $B/bench/decode_bench --shape llama2-7b --comp $c --bits 4/3 \
    --batch 16 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | sed "s|^|$m: |"
done; done; done | tee $LOG/ab.txt
