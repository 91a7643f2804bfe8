#!/usr/bin/env bash
# Session 26 call 8 (run from main). base = the working tree (main); rr = wip/s27-relative-rope 1a0292f (RoPE relative to
# the tile in the recon wgmma fold at padded rank <= 32). GPU suite on rr; A/B two rounds, time-boxed (little device time left).
set -o pipefail
LOG=/tmp/logs8; rm -rf $LOG /tmp/src-rr; mkdir -p $LOG /tmp/src-rr
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs8.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C /tmp/src-rr; rm -rf /tmp/src-rr/kernels /tmp/src-rr/src/cuda
tar xf .device/kernels_relrope_1a0292f.tar -C /tmp/src-rr
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S . -B /tmp/b-base $CFG > /dev/null 2>&1; cmake -S /tmp/src-rr -B /tmp/b-rr $CFG > /dev/null 2>&1
( ninja -C /tmp/b-base -j6 decode_bench > $LOG/build0.txt 2>&1; echo "base rc=$?" ) &
( ninja -C /tmp/b-rr -j10 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "rr rc=$?" ) &
wait; grep -E " error" -A3 $LOG/build*.txt | head -20; rm -f $LOG/build*.txt
el built
timeout 40 /tmp/b-rr/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "rr tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head
el tests
run() { local m=$1; shift; timeout 20 /tmp/b-$m/bench/decode_bench --shape $1 --comp $5 --bits $2 --batch $3 --context $4 --reps 20 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b fp16 16 32768 75%" "llama3-8b 4/3 16 32768 75%" "llama3-8b fp16 1 4096 75%" "llama3-8b fp16 16 4096 75%" "llama3-8b fp16 64 32768 75%" "llama3-8b fp16 16 32768 60%"; do
    for m in base rr; do left 125 && run $m $c; done; done
done
cat $LOG/ab.txt
el ab
