#!/usr/bin/env bash
# Session 11, call 10: call 9 with the c and s score terms in two MMA chains, against main 4a79a2d.
set -o pipefail
B=/tmp/starkv-build; BB=/tmp/starkv-base; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
left() { echo $(( 150 - ($(date +%s) - t0) )); }
trap 'cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cfg() { cmake -S $1 -B $2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg_$3.txt 2>&1; }
(cfg .device/base $BB base && ninja -C $BB -j6 decode_bench > $LOG/build_base.txt 2>&1) &
cfg . $B new && ninja -C $B -j10 starkv_gpu_tests decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
wait
el built
timeout 120 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests new rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED|Failure|rel_error|Which is" $LOG/tests.txt | head -30
el tests
run() { # label shape comp bits batch [env]
  local bench=$B/bench/decode_bench; case $1 in base*) bench=$BB/bench/decode_bench;; esac
  env $6 timeout 60 $bench --shape $2 --comp $3 --bits $4 --batch $5 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | sed "s|^|$1: |" >> $LOG/ab.txt
}
: > $LOG/ab.txt
for c in "llama3-8b 75% fp16 16" "llama3-8b 60% fp16 16" "llama3-8b 50% fp16 16" "llama3-8b 75% 4/3 16" "llama3-8b 75% fp16 64" "llama3-8b 75% fp16 16" "llama3-8b 75% 4/3 16"; do
  for m in base new; do run $m $c; done
done
el ab
grep -v append $LOG/ab.txt
el ncu
F='*CudaQuantizedRecon*:*CudaWideRecon*:*CudaLongSplit*:*CudaSplitPath*'
T=$(left); [ $T -gt 20 ] && timeout $((T/2)) compute-sanitizer --tool memcheck $B/tests/starkv_gpu_tests --gtest_filter="$F" > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -1 $LOG/memcheck.txt
T=$(left); [ $T -gt 20 ] && timeout $T compute-sanitizer --tool racecheck $B/tests/starkv_gpu_tests --gtest_filter='*CudaQuantizedRecon*:*CudaWideRecon*' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -1 $LOG/racecheck.txt
el done
