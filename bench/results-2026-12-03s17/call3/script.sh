#!/usr/bin/env bash
# Session 17 call 3: the memory system's ceiling for the split kernels' access patterns. (1) row_slice_bw (timing
# table; then one launch per case under ncu for DRAM bytes and L2 sectors); (2) the value kernel and the fold at the
# planner's items and at forced items of 1024 / 4096 tokens (STARKV_SPLIT_TOKENS), ncu and step times; (3) the value
# kernel taking G consecutive items per CTA through one staging ring (working tree's experiment, STARKV_VALUE_ITEMS_PER_CTA=G):
# split suites at G = 2 and 3, A/B G = 1 / 2 / 3, ncu of the value kernel.
set -o pipefail
B=/tmp/b-main; LOG=/tmp/logs3; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs3.tgz .' EXIT
cp .device/row_slice_bw.cu $LOG/
(nvcc -O3 -arch=sm_90 -std=c++17 -o /tmp/rsbw .device/row_slice_bw.cu > $LOG/rsbw_build.txt 2>&1) &
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1 && ninja -C $B -j16 decode_bench starkv_gpu_tests > $LOG/build.txt 2>&1 || { grep error -A3 $LOG/build.txt | head -30; exit 1; }
wait
el built
for g in 2 3; do STARKV_VALUE_ITEMS_PER_CTA=$g timeout 150 $B/tests/starkv_gpu_tests --gtest_filter='*CudaSplitPath*:*CudaLongSplit*:*CudaQuant*:*CudaWideRecon*:*CudaFold*' > $LOG/tests_g$g.txt 2>&1; echo "tests G=$g rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_g$g.txt | head; done
el tests
run() { local g=$1; shift; env STARKV_VALUE_ITEMS_PER_CTA=$g timeout 60 $B/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|g$g: |" >> $LOG/ab_items.txt; }
: > $LOG/ab_items.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama2-7b 75% fp16 64" "llama3-8b 75% fp16 16" "llama2-7b 75% 4/3 16"; do for g in 1 2 3; do run $g $c; done; done; done
cat $LOG/ab_items.txt
el ab_items
for g in 1 2; do STARKV_VALUE_ITEMS_PER_CTA=$g timeout 60 ncu --clock-control none --kernel-name regex:decode_values --launch-skip 1 --launch-count 1 --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size \
  $B/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_values_g$g.txt 2>&1
  echo "== values G=$g"; grep -E "gpu__time|dram__|launch__" $LOG/ncu_values_g$g.txt | cut -c1-110; done
el ncu_items
/tmp/rsbw > $LOG/row_slice_bw.txt 2>&1; cat $LOG/row_slice_bw.txt
el rsbw
RSBW_ONCE=1 timeout 200 ncu --clock-control none --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_requests_srcunit_tex_op_read.sum /tmp/rsbw > $LOG/row_slice_bw_ncu.txt 2>&1
grep -E "^[a-z].* \| |gpu__time|dram__|lts__" $LOG/row_slice_bw_ncu.txt | grep -v "==PROF==" | cut -c1-110 | head -200
el rsbw_ncu
T="gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size"
for sp in 0 1024 4096; do
  for k in decode_values fold_scores; do
    env STARKV_SPLIT_TOKENS=$sp timeout 60 ncu --clock-control none --kernel-name regex:"$k" --launch-skip 1 --launch-count 1 --metrics "$T" \
      $B/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_${k}_$sp.txt 2>&1
    echo "== $k split=$sp"; grep -E "gpu__time|dram__|launch__" $LOG/ncu_${k}_$sp.txt | cut -c1-110
  done
done
el ncu
: > $LOG/ab.txt
for sp in 0 1024 2048 3072 4096 0 4096; do
  env STARKV_SPLIT_TOKENS=$sp timeout 60 $B/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|split$sp: |" >> $LOG/ab.txt
done
cat $LOG/ab.txt
el ab
