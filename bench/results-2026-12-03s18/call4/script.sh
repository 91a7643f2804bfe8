#!/usr/bin/env bash
# Session 18 call 4. Working tree = main d3cb39b + the deferred softmax of the MHA wgmma fold (kDeferSoftmax: a tile's
# softmax runs after the next tile's first wgmmas are issued; scores in two buffers). Base = d7f710c (same kernels as
# d3cb39b) from .device/main_d7f710c.tar. GPU tests; A/B two rounds; ncu of the fold; memcheck/racecheck of the fold
# suites; the quick grid with SDPA on the build the A/B favours.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs4; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs4.tgz .' EXIT
tar xf .device/main_d7f710c.tar -C $S0
cfg() { cmake -S $1 -B $2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg_$3.txt 2>&1; }
(cfg $S0 $B0 base && ninja -C $B0 -j6 decode_bench > $LOG/build_base.txt 2>&1) &
cfg . $B1 new && ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build_new.txt 2>&1 || { grep -E "error" -A3 $LOG/build_new.txt | head -40; exit 1; }
wait
ls $B0/bench/decode_bench > /dev/null || { grep -E "error" -A3 $LOG/build_base.txt | head -40; exit 1; }
el built
timeout 120 $B1/tests/starkv_gpu_tests > $LOG/tests_new.txt 2>&1; echo "tests new rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_new.txt | head
STARKV_NO_PAIRED_FOLD=1 timeout 60 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaSplitPath*:*CudaLongSplit*' > $LOG/tests_new_nopaired.txt 2>&1; echo "tests new no paired rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_new_nopaired.txt | head
el tests
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama2-7b 75% fp16 64" "llama2-7b 60% fp16 16" "llama2-7b 50% fp16 16" "llama2-7b 75% 4/3 16" "llama3-8b 75% fp16 16"; do for m in base new; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
T="gpu__time_duration.sum,sm__inst_issued.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed"
for m in base new; do bin=$B0/bench/decode_bench; [ $m = new ] && bin=$B1/bench/decode_bench
  for bits in fp16 4/3; do
  timeout 45 ncu --clock-control none --kernel-name regex:"fold_scores" --launch-skip 1 --launch-count 1 --metrics "$T" \
    $bin --shape llama2-7b --comp 75% --bits $bits --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_fold_${m}_${bits/\//}.txt 2>&1
  echo "== fold $m $bits"; grep -E "gpu__time|sm__|inst_|dram__" $LOG/ncu_fold_${m}_${bits/\//}.txt | cut -c1-120
  done
done
el ncu
timeout 80 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaSplitPath*:*CudaLongSplit*/1:*CudaQuant*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
timeout 60 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaSplitPath*' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el sanitizers
pick=$(awk '/llama2-7b  75%  fp16     16/ {m=$1; s[m]+=$8; n[m]++} END {b=s["base:"]/n["base:"]; w=s["new:"]/n["new:"]; print (w < 0.995*b) ? "new" : "base"}' $LOG/ab.txt)
echo "grid build: $pick" | tee $LOG/grid_build.txt
[ $pick = new ] || exit 0
B=$B1
timeout 120 $B/bench/decode_bench --quick --reps 10 --out $LOG/starkv_quick.jsonl > $LOG/quick.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do for bits in fp16 4/3; do
  timeout 30 $B/bench/decode_bench --shape $s --comp 75% --bits $bits --batch $b --context 32768 --reps 10 --out /tmp/x.jsonl >> $LOG/quick.txt 2>&1; cat /tmp/x.jsonl >> $LOG/starkv_quick.jsonl
done; done; done
el starkv
PYTHONUNBUFFERED=1 timeout 120 python3 bench/sdpa_baseline.py --quick --reps 10 --out $LOG/sdpa_quick.jsonl > $LOG/sdpa.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do
  timeout 30 python3 bench/sdpa_baseline.py --shape $s --batch $b --context 32768 --reps 10 --out /tmp/y.jsonl >> $LOG/sdpa.txt 2>&1; cat /tmp/y.jsonl >> $LOG/sdpa_quick.jsonl
done; done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $LOG/gpu.txt
python3 bench/merge_results.py $LOG/starkv_quick.jsonl $LOG/sdpa_quick.jsonl --gpu $LOG/gpu.txt --md $LOG/table_quick.md --peak 4800 > $LOG/merge.txt 2>&1
el quick
grep "^|" $LOG/table_quick.md | head -40
