#!/usr/bin/env bash
# Session 26 call 3 (run from main 5b85f0c+bench commit). base = the working tree (main); df = wip/s26-recon-defer bbd0f79
# (the recon fold's softmax deferred into the next tile). GPU suite on df; A/B two rounds; the fold's layout per layer
# (ncu: shared memory per CTA, CTAs per SM) for base and df; memcheck/racecheck on df.
set -o pipefail
LOG=/tmp/logs3; rm -rf $LOG /tmp/src-df; mkdir -p $LOG /tmp/src-df
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs3.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C /tmp/src-df; rm -rf /tmp/src-df/kernels /tmp/src-df/src/cuda
tar xf .device/kernels_recon_defer_bbd0f79.tar -C /tmp/src-df
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S . -B /tmp/b-base $CFG > /dev/null 2>&1; cmake -S /tmp/src-df -B /tmp/b-df $CFG > /dev/null 2>&1
( ninja -C /tmp/b-base -j7 decode_bench > $LOG/build0.txt 2>&1; echo "base rc=$?" ) &
( ninja -C /tmp/b-df -j9 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "df rc=$?" ) &
wait; grep -E " error" -A3 $LOG/build*.txt | head -20; rm -f $LOG/build*.txt
el built
timeout 90 /tmp/b-df/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "df tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head
run() { local m=$1; shift; timeout 40 /tmp/b-$m/bench/decode_bench --shape $1 --comp $5 --bits $2 --batch $3 --context $4 --reps 20 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b fp16 1 4096 75%" "llama3-8b fp16 1 32768 75%" "llama3-8b fp16 16 4096 75%" "llama3-8b fp16 16 32768 75%" "llama3-8b 4/3 16 32768 75%" "llama3-8b 4/4 16 32768 75%" \
           "llama3-8b fp16 64 32768 75%" "llama3-8b fp16 16 32768 60%" "llama3-8b fp16 16 32768 50%" "llama3-8b 4/3 16 32768 50%" "llama2-7b fp16 16 32768 75%"; do
    for m in base df; do left 300 && run $m $c; done; done
done
cat $LOG/ab.txt
el ab
for m in base df; do for c in "fp16 75%" "4/3 75%" "fp16 60%" "fp16 50%"; do set -- $c
  left 380 && timeout 30 ncu --clock-control none --kernel-name regex:fold --launch-skip 3 --launch-count 1 --section LaunchStats --section Occupancy --metrics gpu__time_duration.sum \
    /tmp/b-$m/bench/decode_bench --shape llama3-8b --comp $2 --bits $1 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl 2>/dev/null \
    | grep -E "fold_scores|Dynamic Shared|Registers Per|Block Limit Shared|Theoretical Occ|gpu__time" | sed "s|^|$m $1 $2: |" >> $LOG/ncu_layout.txt
done; done
grep -E "Dynamic|Block Limit Shared|gpu__time" $LOG/ncu_layout.txt
el ncu
left 450 && timeout 100 compute-sanitizer --tool memcheck --error-exitcode 1 /tmp/b-df/tests/starkv_gpu_tests --gtest_filter='*FoldWgmma*:*WideRecon*:*SplitPath*:*CudaVsCpu16*:*CudaQuantized*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 540 && timeout 50 compute-sanitizer --tool racecheck --error-exitcode 1 /tmp/b-df/tests/starkv_gpu_tests --gtest_filter='*WideRecon*/0:*WideRecon*/4:*CudaQuantized*/2' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el done
