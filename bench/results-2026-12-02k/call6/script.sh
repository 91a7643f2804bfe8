#!/usr/bin/env bash
# Session 11, call 6: wip/s11-narrow-quant (narrow folds for quantized MHA keys only): GPU tests,
# A/B against its own switch, sanity rows; ncu source counters of the 4/3-bit fold and value kernels.
set -o pipefail
B=/tmp/starkv-build; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1
ninja -C $B -j16 starkv_gpu_tests decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
el built
timeout 120 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED|Failure|rel_error|Which is" $LOG/tests.txt | head -30
STARKV_NO_NARROW_FOLD=1 timeout 60 $B/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaSplitPath*:*CudaQuantized*:*CudaLongSplit*' > $LOG/tests_nonarrow.txt 2>&1; echo "NO_NARROW_FOLD tests rc=$?"
grep -E "^\[  (PASSED|FAILED) |^\[  FAILED" $LOG/tests_nonarrow.txt | head -3
el tests
run() { env $6 timeout 60 $B/bench/decode_bench --shape $2 --comp $3 --bits $4 --batch $5 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | sed "s|^|$1: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for c in "llama2-7b 75% 4/3 16" "llama2-7b 75% 4/4 16" "llama2-7b 75% 4/3 64"; do run new $c; run noNarrow $c STARKV_NO_NARROW_FOLD=1; done
for c in "llama2-7b 75% fp16 16" "llama2-7b 60% 4/3 16" "llama3-8b 75% 4/3 16" "llama3-8b 75% fp16 16"; do run new $c; done
grep -v append $LOG/ab.txt
el ab
for k in fold_scores split_values; do
  timeout 120 ncu --clock-control none --kernel-name regex:$k --launch-skip 1 --launch-count 1 --section SourceCounters --section WarpStateStats \
    --export $LOG/$k -f $B/bench/decode_bench --shape llama2-7b --comp 75% --bits 4/3 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl > $LOG/ncu_$k.txt 2>&1
  ncu --import $LOG/$k.ncu-rep --page source --print-source sass --csv > $LOG/${k}_sass.csv 2>&1
  ncu --import $LOG/$k.ncu-rep --page details > $LOG/${k}_details.txt 2>&1; rm -f $LOG/$k.ncu-rep
  grep -E "fold_scores_kernel<|split_values_kernel<|Duration|Issue Slots|Warp Cycles Per Issued" $LOG/${k}_details.txt | cut -c1-150 | head -6
done
el done
