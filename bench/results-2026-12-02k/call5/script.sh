#!/usr/bin/env bash
# Session 11, call 5: narrow MHA folds (chunks of 4 heads on the wgmma instances at padded ranks
# <= 32, fp16 and quantized; two staging buffers at two CTAs per SM) against main ce7f9ad.
set -o pipefail
B=/tmp/starkv-build; BB=/tmp/starkv-base; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
left() { echo $(( 540 - ($(date +%s) - t0) )); }
trap 'cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cfg() { cmake -S $1 -B $2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg_$3.txt 2>&1; }
(cfg .device/base $BB base && ninja -C $BB -j6 decode_bench > $LOG/build_base.txt 2>&1) &
cfg . $B new && ninja -C $B -j10 starkv_gpu_tests decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
wait
el built
timeout 120 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests new rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED|Failure|rel_error|Which is" $LOG/tests.txt | head -30
for e in STARKV_NO_NARROW_FOLD STARKV_NO_TENSOR_STAGING; do
env $e=1 timeout 60 $B/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaSplitPath*:*CudaQuantized*:*CudaVsCpu16*:*CudaLongSplit*' > $LOG/tests_$e.txt 2>&1; echo "$e tests rc=$?"
grep -E "^\[  (PASSED|FAILED) |^\[  FAILED" $LOG/tests_$e.txt | head -5; done
el tests
run() { # label shape comp bits batch [env]
  local bench=$B/bench/decode_bench; case $1 in base*) bench=$BB/bench/decode_bench;; esac
  env $6 timeout 60 $bench --shape $2 --comp $3 --bits $4 --batch $5 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | sed "s|^|$1: |" >> $LOG/ab.txt
}
: > $LOG/ab.txt
for c in "llama2-7b 75% fp16 16" "llama2-7b 60% fp16 16" "llama2-7b 75% 4/3 16" "llama2-7b 75% 4/4 16" "llama2-7b 75% fp16 64" "llama2-7b 75% fp16 1" "llama2-7b 75% 4/3 64" "llama2-7b 75% 4/3 1" "llama3-8b 75% fp16 16"; do
  for m in base new; do run $m $c; done
done
run newNoNarrow llama2-7b 75% fp16 16 STARKV_NO_NARROW_FOLD=1
run newNoNarrow llama2-7b 75% 4/3 16 STARKV_NO_NARROW_FOLD=1
el ab
grep -v append $LOG/ab.txt
for a in "llama2-7b 75% fp16" "llama2-7b 75% 4/3"; do set -- $a
  echo "== $a"; timeout 60 ncu --clock-control none --kernel-name regex:"fold_scores|split_values" --launch-skip 2 --launch-count 2 --metrics gpu__time_duration.sum,smsp__inst_executed.sum,launch__registers_per_thread,launch__occupancy_limit_shared_mem,launch__shared_mem_per_block_dynamic,dram__bytes_read.sum \
    $B/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl 2>/dev/null | grep -E "fold_scores|split_values|gpu__time|inst_exec|registers|occupancy|shared_mem|dram"
done > $LOG/kernels.txt 2>&1; cut -c1-160 $LOG/kernels.txt
el ncu
F='*CudaFoldWgmma*:*CudaSplitPath*'
T=$(left); [ $T -gt 20 ] && timeout $((T/2)) compute-sanitizer --tool memcheck $B/tests/starkv_gpu_tests --gtest_filter="$F" > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -1 $LOG/memcheck.txt
T=$(left); [ $T -gt 20 ] && timeout $T compute-sanitizer --tool racecheck $B/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -1 $LOG/racecheck.txt
el done
