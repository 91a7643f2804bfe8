#!/usr/bin/env bash
# Session 24 call 8. main e81b407 (5da5f32) as committed: which existing launch-shape switches help batch 1, where each of
# the step's four launches is one or two waves of latency-bound CTAs (call 3/5). Env switches only, same binary, two
# rounds: STARKV_NO_WIDE_VALUES=1 (256-channel value blocks: more value CTAs), STARKV_NO_WIDE_RECON=1 (reconstruction in
# the model's chunks: more fold CTAs), STARKV_NO_PAIRED_FOLD=1 (two CTAs per SM, one item each), at b1 x 32K and b16.
set -o pipefail
B=/tmp/b-main; LOG=/tmp/logs8; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs8.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -20; exit 1; }
rm -f $LOG/build.txt
el built
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b fp16 1" "llama3-8b 4/3 1" "llama2-7b fp16 1" "llama2-7b 4/3 1" "llama3-8b fp16 16" "llama2-7b fp16 16"; do set -- $c
    for v in main STARKV_NO_WIDE_VALUES STARKV_NO_WIDE_RECON STARKV_NO_PAIRED_FOLD; do
      case "$v:$1" in STARKV_NO_WIDE_RECON:llama2-7b|STARKV_NO_PAIRED_FOLD:llama3-8b) continue;; esac
      e=""; [ $v != main ] && e="$v=1"
      env $e timeout 40 $B/bench/decode_bench --shape $1 --comp 75% --bits $2 --batch $3 --context 32768 --reps 20 --out /tmp/x.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$v: |" >> $LOG/ab.txt
    done
  done
done
cat $LOG/ab.txt
el done
