#!/usr/bin/env bash
# Session 14, call 2: the fold-and-values step kernel (STARKV_FUSED_STEP=1, working tree) against the two launches
# (same build, env unset): GPU tests both ways, A/B, ncu of the fused kernel.
set -o pipefail
B=/tmp/starkv-build; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp .device/c52.sh $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1
ninja -C $B -j16 starkv_gpu_tests decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
el built
run() { local m=$1; shift; local env=""; [ $m = fused ] && env="STARKV_FUSED_STEP=1"
  env $env timeout 60 $B/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
run base llama2-7b 75% fp16 16; run fused llama2-7b 75% fp16 16
grep -v append $LOG/ab.txt
el ab0
STARKV_FUSED_STEP=1 timeout 240 $B/tests/starkv_gpu_tests > $LOG/tests_fused.txt 2>&1; echo "tests fused rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED" $LOG/tests_fused.txt | head -20
el tests_fused
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama3-8b 75% fp16 16" "llama2-7b 75% fp16 64" "llama2-7b 75% fp16 1" "llama3-8b 75% fp16 1" "llama3-8b 75% fp16 64"; do for m in base fused; do run $m $c; done; done; done
grep -v append $LOG/ab.txt
el ab
timeout 240 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED" $LOG/tests.txt | head -20
el tests
STARKV_FUSED_STEP=1 ncu --clock-control none --kernel-name regex:"fold_values|merge|combine" --launch-skip 6 --launch-count 3 --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats \
  $B/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_fused.txt 2>&1
grep -E "fold_values|merge_split|combine_split|Duration|DRAM Through|Issue Slots|L2 Cache Through" $LOG/ncu_fused.txt | cut -c1-120 | head -30
el ncu
