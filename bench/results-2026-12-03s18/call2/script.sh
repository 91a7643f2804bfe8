#!/usr/bin/env bash
# Session 18 call 2. Working tree = wip/s18-rope-table (main d7f710c + the global cos/sin table) + an L2 prefetch of the
# table rows STARKV_EXPERIMENT_TABLE_PREFETCH tiles ahead. Builds: base (d7f710c, .device/main_d7f710c.tar: main's GPU
# suite with default settings, memcheck/racecheck), p2 (-D...=2), p4 (-D...=4). A/B two rounds; ncu of the fold;
# fold suites on p2; the fixed wgmma probe.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-p2; B2=/tmp/b-p4; S0=/tmp/src-base; LOG=/tmp/logs2; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs2.tgz .' EXIT
tar xf .device/main_d7f710c.tar -C $S0
cp .device/wgmma_rate.cu $LOG/
(nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -std=c++17 -I. -o /tmp/wgmma_rate .device/wgmma_rate.cu > $LOG/wgmma_rate_build.txt 2>&1) &
cfg() { cmake -S $1 -B $2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 "$4" > $LOG/cfg_$3.txt 2>&1; }
(cfg $S0 $B0 base "-DCMAKE_CUDA_FLAGS=" && ninja -C $B0 -j6 decode_bench starkv_gpu_tests > $LOG/build_base.txt 2>&1) &
(cfg . $B2 p4 "-DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_TABLE_PREFETCH=4" && ninja -C $B2 -j4 decode_bench > $LOG/build_p4.txt 2>&1) &
cfg . $B1 p2 "-DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_TABLE_PREFETCH=2" && ninja -C $B1 -j6 decode_bench starkv_gpu_tests > $LOG/build_p2.txt 2>&1 || { grep -E "error" -A3 $LOG/build_p2.txt | head -40; exit 1; }
wait
ls $B0/tests/starkv_gpu_tests $B2/bench/decode_bench > /dev/null || { grep -E "error" -A3 $LOG/build_base.txt $LOG/build_p4.txt | head -40; exit 1; }
el built
timeout 30 /tmp/wgmma_rate > $LOG/wgmma_rate.txt 2>&1; cat $LOG/wgmma_rate.txt
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = p2 ] && bin=$B1/bench/decode_bench; [ $m = p4 ] && bin=$B2/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama2-7b 75% fp16 64" "llama2-7b 60% fp16 16" "llama2-7b 75% 4/3 16"; do for m in base p2 p4; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
T="gpu__time_duration.sum,sm__inst_issued.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_sector_hit_rate.pct"
for m in base p2; do bin=$B0/bench/decode_bench; [ $m = p2 ] && bin=$B1/bench/decode_bench
  for bits in fp16 4/3; do
  timeout 45 ncu --clock-control none --kernel-name regex:"fold_scores" --launch-skip 1 --launch-count 1 --metrics "$T" \
    $bin --shape llama2-7b --comp 75% --bits $bits --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_fold_${m}_${bits/\//}.txt 2>&1
  echo "== fold $m $bits"; grep -E "gpu__time|sm__|inst_|dram__|lts__" $LOG/ncu_fold_${m}_${bits/\//}.txt | cut -c1-120
  done
done
el ncu
timeout 60 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaFold*:*CudaLongSplit*:*CudaQuant*:*CudaSplitPath*:RopeFragments*' > $LOG/tests_p2.txt 2>&1; echo "tests p2 rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_p2.txt | head
timeout 150 $B0/tests/starkv_gpu_tests > $LOG/tests_base.txt 2>&1; echo "tests base (main d7f710c, default settings) rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_base.txt | head
el tests
timeout 100 compute-sanitizer --tool memcheck --error-exitcode 1 $B0/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaSplitPath*:*CudaLongSplit*/1:*CudaQuant*' > $LOG/memcheck_base.txt 2>&1; echo "memcheck base rc=$?"; tail -2 $LOG/memcheck_base.txt
timeout 80 compute-sanitizer --tool racecheck --error-exitcode 1 $B0/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaSplitPath*' > $LOG/racecheck_base.txt 2>&1; echo "racecheck base rc=$?"; tail -2 $LOG/racecheck_base.txt
el sanitizers
