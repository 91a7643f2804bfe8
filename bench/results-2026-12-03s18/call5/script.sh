#!/usr/bin/env bash
# Session 18 call 5. Working tree = main d3cb39b + the deferred softmax at padded key rank > 32 only (kDeferSoftmax
# = kWgmma && !kRecon && NR > 32). Base = d7f710c (.device/main_d7f710c.tar). GPU tests; A/B two rounds of the
# layers it applies to (60%, 50% fp16; 60% 4/3) and the 75% control, one round (little device time left);
# memcheck of the wgmma fold suite if time allows.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs5; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs5.tgz .' EXIT
tar xf .device/main_d7f710c.tar -C $S0
cfg() { cmake -S $1 -B $2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg_$3.txt 2>&1; }
(cfg $S0 $B0 base && ninja -C $B0 -j6 decode_bench > $LOG/build_base.txt 2>&1) &
cfg . $B1 new && ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build_new.txt 2>&1 || { grep -E "error" -A3 $LOG/build_new.txt | head -40; exit 1; }
wait
el built
timeout 120 $B1/tests/starkv_gpu_tests > $LOG/tests_new.txt 2>&1; echo "tests new rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_new.txt | head
el tests
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1; do for c in "llama2-7b 60% fp16 16" "llama2-7b 50% fp16 16" "llama2-7b 60% 4/3 16" "llama2-7b 75% fp16 16"; do for m in base new; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
timeout 40 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*/3:*CudaFoldWgmma*/7:*CudaFoldWgmma*/8' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el sanitizers
