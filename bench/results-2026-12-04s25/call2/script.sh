#!/usr/bin/env bash
# Session 25 call 2. Trees: base = main f18f262's kernels/ and src/cuda/; new = the working tree: the fold's prologue
# (call 1: 63% of the Llama-3-like fold's stall samples at b1 x 4K, 31% at b16 x 4K) with the wgmma instances' padded
# rank as a constant (no divisions in the Ut/AB index arithmetic), the recon queries loaded 8 at a time, and the
# fold's and value kernel's shared-memory zeroing in 16-byte stores.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs2; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs2.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_f18f262.tar -C $S0
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
( ninja -C $B0 -j6 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
wait
grep -E " error" -A3 $LOG/build*.txt | head -30; rm -f $LOG/build*.txt $LOG/cfg*.txt
el built
timeout 90 $B1/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "new tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head -20
el tests
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 30 $bin --shape $1 --comp $5 --bits $2 --batch $3 --context $4 --reps 20 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b fp16 1 4096 75%" "llama3-8b fp16 1 32768 75%" "llama3-8b fp16 16 4096 75%" "llama3-8b fp16 16 32768 75%" "llama3-8b 4/3 16 32768 75%" "llama3-8b 4/3 1 4096 75%" \
           "llama2-7b fp16 1 4096 75%" "llama2-7b fp16 16 4096 75%" "llama2-7b fp16 16 32768 75%" "llama2-7b 4/3 16 32768 75%" "llama3-8b fp16 16 32768 50%" "llama2-7b fp16 16 32768 60%"; do
    for m in base new; do left 300 && run $m $c; done; done
done
cat $LOG/ab.txt
el ab
M="gpu__time_duration.sum,launch__grid_size,smsp__inst_executed.sum"
for m in base new; do B=$B0; [ $m = new ] && B=$B1
for c in "llama3-8b fp16 1 4096" "llama3-8b fp16 16 4096" "llama3-8b fp16 16 32768" "llama2-7b fp16 1 4096"; do set -- $c; f=$LOG/ncu_step_${m}_${1}_${2/\//}_b$3_$4.txt
  left 380 && timeout 60 ncu --cache-control none --clock-control none --kernel-name regex:"fold_scores|values_kernel|split_values" --launch-skip 4 --launch-count 4 --metrics $M $B/bench/decode_bench --shape $1 --comp 75% --bits $2 --batch $3 --context $4 --reps 1 --out /tmp/z.jsonl > $f 2>&1
  echo "== $m $c"; grep -E "^  [a-zA-Z_:<>]|gpu__time|inst_exec" $f | awk '/\(/{k=substr($2,1,40)} /gpu__time/{t=$NF} /inst_exec/{print k, "us", t, "inst", $NF}'
done; done 2>&1 | tee $LOG/ncu_step_summary.txt
el ncu
left 420 && timeout 120 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*FoldWgmma*:*WideRecon*:*SplitPath*:*CudaVsCpu16*:*Quantized*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 520 && timeout 60 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*WideRecon*/0:*FoldWgmma*/0' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el done
