#!/usr/bin/env bash
# Session 24 call 9. Trees: base = main 9013373's kernels/ and src/cuda/ (e81b407's kernels); new = the working tree: the
# split combine runs 32 warps per CTA instead of 8 when the batch is one block of queries (b <= 4), so that 4x as many
# up-matrix rows are in flight (call 5's ncu: the combine took 24 us of the Llama-2-like b1 x 32K step, on 128 CTAs).
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs9; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs9.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_9013373.tar -C $S0
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
( ninja -C $B0 -j6 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
wait
grep -E " error" -A3 $LOG/build*.txt | head -30; rm -f $LOG/build*.txt $LOG/cfg*.txt
el built
timeout 60 $B1/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "new tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head -20
el tests
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 30 $bin --shape $1 --comp 75% --bits $2 --batch $3 --context 32768 --reps 20 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama2-7b fp16 1" "llama2-7b 4/3 1" "llama3-8b fp16 1" "llama3-8b 4/3 1" "llama2-7b fp16 4" "llama2-7b fp16 16"; do for m in base new; do left 150 && run $m $c; done; done
done
cat $LOG/ab.txt
el ab
left 150 && timeout 30 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*LongContextSplits*:*SplitPath*/0' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 165 && timeout 25 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*LongContextSplits*' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el done
