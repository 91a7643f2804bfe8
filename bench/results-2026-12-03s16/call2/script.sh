#!/usr/bin/env bash
# Session 16 call 2: main 50ad0b0 + the value kernel's tensor staging (working tree; STARKV_NO_VALUE_TENSOR_STAGING=1 = before).
# GPU tests both ways, A/B two rounds, ncu of the value kernel both ways, sanitizers on the split suites.
set -o pipefail
B=/tmp/b; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1
ninja -C $B -j16 starkv_gpu_tests decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
el built
timeout 200 $B/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head -12
STARKV_NO_VALUE_TENSOR_STAGING=1 timeout 200 $B/tests/starkv_gpu_tests > $LOG/tests_nvts.txt 2>&1; echo "tests no value tensor staging rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_nvts.txt | head -12
el tests
run() { local m=$1 env=X=0; shift; [ $m = base ] && env=STARKV_NO_VALUE_TENSOR_STAGING=1
  env $env timeout 60 $B/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama2-7b 75% fp16 64" "llama2-7b 75% fp16 1" "llama2-7b 60% fp16 16" "llama2-7b 50% fp16 16" "llama3-8b 75% fp16 16" "llama3-8b 75% fp16 64" "llama3-8b 50% fp16 16" "llama2-7b 75% 4/3 16"; do for m in base new; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
T="gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__inst_issued.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,lts__t_sectors_srcunit_tex_op_read.sum,launch__registers_per_thread,launch__grid_size"
for c in "base llama2-7b" "new llama2-7b" "base llama3-8b" "new llama3-8b"; do set -- $c; m=$1; env=X=0; [ $m = base ] && env=STARKV_NO_VALUE_TENSOR_STAGING=1
  env $env timeout 60 ncu --clock-control none --kernel-name regex:"decode_values" --launch-skip 1 --launch-count 1 --metrics "$T" \
    $B/bench/decode_bench --shape $2 --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_values_${m}_$2.txt 2>&1
  echo "== values $m $2"; grep -E "gpu__time|dram__|inst_|lts__|launch__" $LOG/ncu_values_${m}_$2.txt | cut -c1-110
done
el ncu
timeout 250 compute-sanitizer --tool memcheck --error-exitcode 1 $B/tests/starkv_gpu_tests --gtest_filter='*CudaSplitPath*:*CudaLongSplit*:*CudaVsCpu16*:*CudaWideRecon*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
timeout 250 compute-sanitizer --tool racecheck --error-exitcode 1 $B/tests/starkv_gpu_tests --gtest_filter='*CudaSplitPath*:*CudaLongSplit*/2:*CudaVsCpu16*' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el sanitizers
