#!/usr/bin/env bash
# Session 26 call 5 (run from main). base = the working tree (main); df = wip/s26-recon-defer ae4a838
# (the recon fold's softmax deferred only with quantized keys or at padded rank 64; scores into the tile's buffer, the bug of calls 3-4 fixed). GPU suite on df; A/B two rounds; the fold's layout per layer
# (ncu: shared memory per CTA, CTAs per SM) for base and df; memcheck/racecheck on df.
set -o pipefail
LOG=/tmp/logs5; rm -rf $LOG /tmp/src-df; mkdir -p $LOG /tmp/src-df
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs5.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C /tmp/src-df; rm -rf /tmp/src-df/kernels /tmp/src-df/src/cuda
tar xf .device/kernels_recon_defer_fix_ae4a838.tar -C /tmp/src-df
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
  for c in "llama3-8b 4/3 1 4096 75%" "llama3-8b 4/3 1 32768 75%" "llama3-8b 4/3 16 4096 75%" "llama3-8b 4/3 16 32768 75%" "llama3-8b 4/4 16 32768 75%" "llama3-8b 4/3 64 32768 75%" \
           "llama3-8b 4/3 16 32768 60%" "llama3-8b 4/4 16 32768 60%" "llama3-8b fp16 16 32768 50%" "llama3-8b 4/3 16 32768 50%" "llama3-8b fp16 16 32768 75%" "llama3-8b fp16 16 32768 60%"; do
    for m in base df; do left 300 && run $m $c; done; done
done
cat $LOG/ab.txt
el ab
left 330 && timeout 100 compute-sanitizer --tool memcheck --error-exitcode 1 /tmp/b-df/tests/starkv_gpu_tests --gtest_filter='*FoldWgmma*:*WideRecon*:*SplitPath*:*CudaVsCpu16*:*CudaQuantized*:*CudaLongSplit*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 440 && timeout 120 compute-sanitizer --tool racecheck --error-exitcode 1 /tmp/b-df/tests/starkv_gpu_tests --gtest_filter='*WideRecon*/0:*WideRecon*/4:*CudaQuantized*/2:*CudaLongSplit*/0:*CudaLongSplit*/2' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el done
