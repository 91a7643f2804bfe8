#!/usr/bin/env bash
# Session 24 call 4. Trees: base = main adf34b5's kernels/ and src/cuda/; new = the working tree: the split merge takes
# 4 split lanes x 64 channels per CTA, block-reduced statistics and shared weights, unrolled row loads (call 3: at b1 the
# old one-thread-per-channel merge took ~50 us of Llama-3-like's 87-us step), and the combine's up-matrix loop unrolled 8.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs4; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs4.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_adf34b5.tar -C $S0
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
( ninja -C $B0 -j6 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
wait
grep -E " error" -A3 $LOG/build*.txt | head -30
el built
timeout 150 $B1/tests/starkv_gpu_tests > $LOG/tests_new.txt 2>&1; echo "new tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_new.txt | head -20
el tests
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context $5 --reps 20 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b 75% fp16 1 32768" "llama3-8b 75% 4/3 1 32768" "llama2-7b 75% fp16 1 32768" "llama2-7b 75% 4/3 1 32768" "llama3-8b 75% fp16 1 131072" "llama3-8b 75% fp16 1 4096" \
           "llama3-8b 75% fp16 16 32768" "llama2-7b 75% fp16 16 32768" "llama2-7b 75% 4/3 16 32768" "llama3-8b 75% 4/3 16 32768" "llama3-8b 75% fp16 64 32768" "llama2-7b 75% fp16 64 32768"; do for m in base new; do run $m $c; done; done
done
cat $LOG/ab.txt
el ab
for c in "llama3-8b 75% fp16" "llama2-7b 75% fp16" "llama3-8b 75% 4/3"; do set -- $c
  for s in 0 128 256 512 1024; do
    echo "new split=$s $(STARKV_SPLIT_TOKENS=$s timeout 30 $B1/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch 1 --context 32768 --reps 20 --out /tmp/x.jsonl 2>&1 | grep -v '^#' | grep -v shape | grep -v append)"
  done
done 2>&1 | tee $LOG/split_sweep_b1_new.txt
el sweep
M="gpu__time_duration.sum,launch__grid_size,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__inst_executed.sum"
for t in base new; do B=$B0; [ $t = new ] && B=$B1; for c in "llama3-8b 1" "llama2-7b 1" "llama2-7b 16"; do set -- $c; f=$LOG/ncu_${t}_${1}_b$2.txt
  timeout 120 ncu --clock-control none --kernel-name regex:"fold_scores|values_kernel" --launch-count 16 --metrics $M $B/bench/decode_bench --shape $1 --comp 75% --bits fp16 --batch $2 --context 32768 --reps 1 --out /tmp/z.jsonl > $f 2>&1
  echo "== $t $c"; grep -E "^  [a-zA-Z_:<>].*\(|gpu__time" $f | tail -8 | sed -e 's/(LayerView.*) (/ (/' -e 's/, Context.*//' | paste - - | awk '{print $1, $2, $NF}'
done; done 2>&1 | tee $LOG/ncu_summary.txt
el ncu
left 450 && timeout 120 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*LongSplit*:*SplitPath*:*CudaVsCpu16*:*CudaDenseVsCpu*' > $LOG/memcheck_new.txt 2>&1; echo "memcheck new rc=$?"; tail -2 $LOG/memcheck_new.txt
left 520 && timeout 60 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*SplitPath*/0:*CudaVsCpu16*/0' > $LOG/racecheck_new.txt 2>&1; echo "racecheck new rc=$?"; tail -2 $LOG/racecheck_new.txt
el done
