#!/usr/bin/env bash
# Session 22 call 7. decode_bench's %peak column from the device's memory clock and bus width (--peak overrides).
set -o pipefail
B=/tmp/b-main; LOG=/tmp/logs7; rm -rf $LOG; mkdir -p $LOG
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs7.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head; exit 1; }
rm -f $LOG/build.txt
timeout 30 $B/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 5 --out $LOG/a.jsonl 2>&1 | tee $LOG/default.txt
timeout 30 $B/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 5 --peak 4800 --out $LOG/b.jsonl 2>&1 | tee $LOG/peak4800.txt
head -1 $LOG/a.jsonl; nvidia-smi --query-gpu=name,clocks.max.mem,clocks.mem --format=csv
