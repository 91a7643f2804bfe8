#!/usr/bin/env bash
# Prepared in session 25 for session 26's first call (run from a main checkout; trees from the tars in .device/):
# base = the working tree (main); sm = wip/s26-softmax-pairs 7a8c033 (softmax pairs); ec = ef8d437 (softmax pairs +
# the isolated early first copy). GPU suite on ec; A/B three ways, two rounds; memcheck/racecheck on ec.
set -o pipefail
LOG=/tmp/logs1; rm -rf $LOG /tmp/src-sm /tmp/src-ec; mkdir -p $LOG /tmp/src-sm /tmp/src-ec
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs1.tgz .' EXIT
for t in sm ec; do tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C /tmp/src-$t; rm -rf /tmp/src-$t/kernels /tmp/src-$t/src/cuda; done
tar xf .device/kernels_7a8c033_softmax_pairs.tar -C /tmp/src-sm; tar xf .device/kernels_ef8d437_softmax_pairs_early_copy.tar -C /tmp/src-ec
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S . -B /tmp/b-base $CFG > /dev/null 2>&1; cmake -S /tmp/src-sm -B /tmp/b-sm $CFG > /dev/null 2>&1; cmake -S /tmp/src-ec -B /tmp/b-ec $CFG > /dev/null 2>&1
( ninja -C /tmp/b-base -j5 decode_bench > $LOG/build0.txt 2>&1; echo "base rc=$?" ) &
( ninja -C /tmp/b-sm -j5 decode_bench > $LOG/build1.txt 2>&1; echo "sm rc=$?" ) &
( ninja -C /tmp/b-ec -j6 decode_bench starkv_gpu_tests > $LOG/build2.txt 2>&1; echo "ec rc=$?" ) &
wait; grep -E " error" -A3 $LOG/build*.txt | head -20; rm -f $LOG/build*.txt
el built
timeout 90 /tmp/b-ec/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "ec tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head
run() { local m=$1; shift; timeout 40 /tmp/b-$m/bench/decode_bench --shape $1 --comp $5 --bits $2 --batch $3 --context $4 --reps 20 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b fp16 1 4096 75%" "llama3-8b fp16 1 32768 75%" "llama3-8b fp16 16 4096 75%" "llama3-8b fp16 16 32768 75%" "llama3-8b 4/3 16 32768 75%" "llama3-8b fp16 64 32768 75%" \
           "llama2-7b fp16 1 4096 75%" "llama2-7b fp16 16 32768 75%" "llama2-7b fp16 16 32768 60%" "llama3-8b fp16 16 32768 50%"; do
    for m in base sm ec; do left 330 && run $m $c; done; done
done
cat $LOG/ab.txt
el ab
left 420 && timeout 120 compute-sanitizer --tool memcheck --error-exitcode 1 /tmp/b-ec/tests/starkv_gpu_tests --gtest_filter='*FoldWgmma*:*WideRecon*:*SplitPath*:*LongSplit*:*CudaVsCpu16*:*LongContextSplits*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 520 && timeout 60 compute-sanitizer --tool racecheck --error-exitcode 1 /tmp/b-ec/tests/starkv_gpu_tests --gtest_filter='*WideRecon*/0:*FoldWgmma*/0:*SplitPath*/0' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el done
