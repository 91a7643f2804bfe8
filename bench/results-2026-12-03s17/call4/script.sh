#!/usr/bin/env bash
# Session 17 call 4. Working tree = main + the value kernel's launch as one thread-block cluster per item
# (STARKV_EXPERIMENT_VALUE_CLUSTER=1, host code in kernels/split_values.cu) + the probe's cluster case.
# Probe; GPU tests with the cluster launch; A/B base / cl two rounds; ncu of the value kernel; memcheck, racecheck.
set -o pipefail
B=/tmp/b-main; LOG=/tmp/logs4; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs4.tgz .' EXIT
cp .device/row_slice_bw.cu $LOG/
(nvcc -O3 -arch=sm_90 -std=c++17 -o /tmp/rsbw .device/row_slice_bw.cu > $LOG/rsbw_build.txt 2>&1) &
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1 && ninja -C $B -j16 decode_bench starkv_gpu_tests > $LOG/build.txt 2>&1 || { grep error -A3 $LOG/build.txt | head -30; exit 1; }
wait
el built
/tmp/rsbw > $LOG/row_slice_bw.txt 2>&1; grep -E "value slices, 4 blocks|whole rows" $LOG/row_slice_bw.txt
el rsbw
STARKV_EXPERIMENT_VALUE_CLUSTER=1 timeout 150 $B/tests/starkv_gpu_tests > $LOG/tests_cl.txt 2>&1; echo "tests cl rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_cl.txt | head
el tests
run() { local m=$1 env=X=0; shift; [ $m = cl ] && env=STARKV_EXPERIMENT_VALUE_CLUSTER=1
  env $env timeout 60 $B/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama2-7b 75% fp16 64" "llama2-7b 75% fp16 1" "llama2-7b 60% fp16 16" "llama2-7b 50% fp16 16" "llama2-7b 75% 4/3 16" "llama3-8b 75% fp16 16"; do for m in base cl; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
for m in base cl; do env=X=0; [ $m = cl ] && env=STARKV_EXPERIMENT_VALUE_CLUSTER=1
  env $env timeout 60 ncu --clock-control none --kernel-name regex:decode_values --launch-skip 1 --launch-count 1 --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size,launch__cluster_dim_x \
  $B/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_values_$m.txt 2>&1
  echo "== values $m"; grep -E "gpu__time|dram__|launch__" $LOG/ncu_values_$m.txt | cut -c1-110; done
el ncu
export STARKV_EXPERIMENT_VALUE_CLUSTER=1
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 1 $B/tests/starkv_gpu_tests --gtest_filter='*CudaSplitPath*:*CudaLongSplit*:*CudaQuant*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
timeout 150 compute-sanitizer --tool racecheck --error-exitcode 1 $B/tests/starkv_gpu_tests --gtest_filter='*CudaSplitPath*:*CudaLongSplit*/2' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el sanitizers
