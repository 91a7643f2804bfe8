#!/usr/bin/env bash
# Session 27 call 2: split rotary pairs (wip/s27-split-pairs 4d09a15, this tree) vs main ee6bbcf (kernels+src/cuda tar).
set -o pipefail
LOG=/tmp/logs2; rm -rf $LOG /tmp/src-base; mkdir -p $LOG /tmp/src-base
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs2.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C /tmp/src-base; rm -rf /tmp/src-base/kernels /tmp/src-base/src/cuda
tar xf .device/base_kernels_srccuda_ee6bbcf.tar -C /tmp/src-base
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S /tmp/src-base -B /tmp/b-base $CFG > /dev/null 2>&1; cmake -S . -B /tmp/b-split $CFG > /dev/null 2>&1
( ninja -C /tmp/b-base -j8 decode_bench starkv_gpu_tests > $LOG/build0.txt 2>&1; echo "base rc=$?" ) &
( ninja -C /tmp/b-split -j8 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "split rc=$?" ) &
wait; grep -E " error" -A3 $LOG/build*.txt | head -20; rm -f $LOG/build*.txt
el built
timeout 90 /tmp/b-split/tests/starkv_gpu_tests > $LOG/tests_split.txt 2>&1; echo "split tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_split.txt | head -20
run() { local m=$1; shift; timeout 40 /tmp/b-$m/bench/decode_bench --shape $1 --comp $5 --bits $2 --batch $3 --context $4 --reps 20 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b fp16 16 32768 75%" "llama3-8b 4/3 16 32768 75%" "llama3-8b fp16 64 32768 75%" "llama3-8b fp16 1 4096 75%" "llama3-8b fp16 16 4096 75%" "llama3-8b 4/3 1 32768 75%" "llama3-8b fp16 16 32768 60%" "llama2-7b fp16 16 32768 75%"; do
    for m in base split; do left 330 && run $m $c; done; done
done
cat $LOG/ab.txt
el ab
left 380 && timeout 120 compute-sanitizer --tool memcheck --error-exitcode 1 /tmp/b-split/tests/starkv_gpu_tests --gtest_filter='*WideRecon*:*CudaVsCpu16*:*CudaQuantized*:*CudaLongSplit*' > $LOG/memcheck_split.txt 2>&1; echo "split memcheck rc=$?"; tail -2 $LOG/memcheck_split.txt
left 470 && timeout 60 compute-sanitizer --tool racecheck --error-exitcode 1 /tmp/b-split/tests/starkv_gpu_tests --gtest_filter='*WideRecon*/3:*CudaQuantized*/2:*CudaLongSplit*/0' > $LOG/racecheck_split.txt 2>&1; echo "split racecheck rc=$?"; tail -2 $LOG/racecheck_split.txt
el done
