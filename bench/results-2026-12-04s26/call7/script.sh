#!/usr/bin/env bash
# Session 26 call 7: main with decode_bench's timing loop shared by both timings (host code only): build and two cells.
set -o pipefail
B=/tmp/b-main
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 decode_bench > /tmp/build.txt 2>&1 || { grep -E "error" -A3 /tmp/build.txt | head -20; exit 1; }
for c in "llama3-8b 1 4096" "llama2-7b 16 32768"; do set -- $c
  $B/bench/decode_bench --shape $1 --comp 75% --bits fp16 --batch $2 --context $3 --reps 20 --out $OUT/x_$1.jsonl 2>&1 | grep -v "^#"
done
