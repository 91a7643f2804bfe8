#!/usr/bin/env bash
# Session 19 call 5 (little device time left). Working tree = main c28dbff + stage_at_cursor's copy loop unrolled by 4
# (kernels/tile_staging.cuh). Base = c28dbff (.device/main_c28dbff.tar). A/B two rounds; then the split/fold/quantized
# GPU suites of the new tree if time allows.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs5; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs5.tgz .' EXIT
tar xf .device/main_c28dbff.tar -C $S0
cfg() { cmake -S $1 -B $2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg_$3.txt 2>&1; }
(cfg $S0 $B0 base && ninja -C $B0 -j7 decode_bench > $LOG/build_base.txt 2>&1) &
cfg . $B1 new && ninja -C $B1 -j9 decode_bench starkv_gpu_tests > $LOG/build_new.txt 2>&1 || { grep -E "error" -A3 $LOG/build_new.txt | head -40; exit 1; }
wait
el built
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 40 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama2-7b 75% 4/3 16" "llama3-8b 75% fp16 16"; do for m in base new; do run $m $c; done; done; el "ab $r"; done
cat $LOG/ab.txt
timeout 60 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaLongSplit*:*CudaFoldSmallTile*:*CudaSplitPath*:*CudaQuantized*:*CudaWideRecon*:*CudaVsCpu16*' > $LOG/tests.txt 2>&1; echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head
el tests
