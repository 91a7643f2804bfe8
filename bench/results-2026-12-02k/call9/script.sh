#!/usr/bin/env bash
# Session 11, call 9: RoPE through the score MMAs (Q~) in the recon wgmma fold against main 4a79a2d.
set -o pipefail
B=/tmp/starkv-build; BB=/tmp/starkv-base; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
left() { echo $(( 250 - ($(date +%s) - t0) )); }
trap 'cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cfg() { cmake -S $1 -B $2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg_$3.txt 2>&1; }
(cfg .device/base $BB base && ninja -C $BB -j6 decode_bench > $LOG/build_base.txt 2>&1) &
cfg . $B new && ninja -C $B -j10 starkv_gpu_tests decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
wait
el built
timeout 120 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests new rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED|Failure|rel_error|Which is" $LOG/tests.txt | head -30
for e in STARKV_NO_RECON_WGMMA STARKV_NO_WIDE_RECON; do
env $e=1 timeout 60 $B/tests/starkv_gpu_tests --gtest_filter='*CudaQuantizedRecon*:*CudaWideRecon*:*CudaLongSplit*:*CudaSplitPath*:*CudaQuantized*' > $LOG/tests_$e.txt 2>&1; echo "$e tests rc=$?"
grep -E "^\[  (PASSED|FAILED) |^\[  FAILED" $LOG/tests_$e.txt | head -5; done
el tests
run() { # label shape comp bits batch [env]
  local bench=$B/bench/decode_bench; case $1 in base*) bench=$BB/bench/decode_bench;; esac
  env $6 timeout 60 $bench --shape $2 --comp $3 --bits $4 --batch $5 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | sed "s|^|$1: |" >> $LOG/ab.txt
}
: > $LOG/ab.txt
for c in "llama3-8b 75% fp16 16" "llama3-8b 60% fp16 16" "llama3-8b 50% fp16 16" "llama3-8b 75% 4/3 16" "llama3-8b 60% 4/3 16" "llama3-8b 50% 4/3 16" "llama3-8b 75% fp16 1" "llama3-8b 75% fp16 64" "llama3-8b 75% 4/3 64" "llama3-8b 75% fp16 16" "llama3-8b 75% 4/3 16" "llama2-7b 75% fp16 16"; do
  for m in base new; do run $m $c; done
done
el ab
grep -v append $LOG/ab.txt
for a in "llama3-8b 75% fp16"; do set -- $a
  echo "== $a"; timeout 60 ncu --clock-control none --kernel-name regex:"fold_scores|split_values" --launch-skip 2 --launch-count 2 --metrics gpu__time_duration.sum,smsp__inst_executed.sum,launch__registers_per_thread,launch__occupancy_limit_shared_mem,dram__bytes_read.sum \
    $B/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl 2>/dev/null | grep -E "fold_scores|split_values|gpu__time|inst_exec|registers|occupancy|dram"
done > $LOG/kernels.txt 2>&1; cut -c1-160 $LOG/kernels.txt
el ncu
F='*CudaQuantizedRecon*:*CudaWideRecon*:*CudaLongSplit*:*CudaSplitPath*'
T=$(left); [ $T -gt 20 ] && timeout $((T/2)) compute-sanitizer --tool memcheck $B/tests/starkv_gpu_tests --gtest_filter="$F" > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -1 $LOG/memcheck.txt
T=$(left); [ $T -gt 20 ] && timeout $T compute-sanitizer --tool racecheck $B/tests/starkv_gpu_tests --gtest_filter='*CudaQuantizedRecon*:*CudaWideRecon*' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -1 $LOG/racecheck.txt
el done
