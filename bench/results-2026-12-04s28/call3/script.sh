#!/usr/bin/env bash
# Session 28 call 3 (main 0ab265f): the GQA reconstruction fold in the model's chunks (2 KV heads, STARKV_NO_WIDE_RECON=1)
# against the wide chunks (4 KV heads, main's choice) on Llama-3-like layers. Call 2 found the 60% 4/3 layer's wide fold
# at 139.5 KB of shared memory, one CTA per SM (455 us against the fp16 fold's 229 us at two CTAs per SM).
set -o pipefail
B=/tmp/b3; LOG=/tmp/logs3; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs3.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 decode_bench > $LOG/build.txt 2>&1 || { grep error -A3 $LOG/build.txt | head; exit 1; }
el built
run() { local m=$1; shift; local env=""; [ $m = model ] && env="STARKV_NO_WIDE_RECON=1"
  env $env timeout 60 $B/bench/decode_bench --shape llama3-8b --comp $1 --bits $2 --batch $3 --context $4 --reps 20 --out /tmp/ab.jsonl 2>&1 |
    grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "75% fp16 16 32768" "75% 4/3 16 32768" "60% fp16 16 32768" "60% 4/3 16 32768" "60% 4/4 16 32768" "50% fp16 16 32768" "50% 4/3 16 32768" \
           "60% 4/3 64 32768" "60% 4/3 1 32768" "60% 4/3 16 4096"; do
    left 420 || continue
    for m in wide model; do run $m $c; done
  done
done
cat $LOG/ab.txt
el ab
for cfg in "60% 4/3" "50% 4/3" "60% fp16"; do set -- $cfg
  left 540 || continue
  STARKV_NO_WIDE_RECON=1 timeout 60 ncu --clock-control none --kernel-name regex:"fold" --launch-skip 1 --launch-count 1 \
    --metrics gpu__time_duration.sum,smsp__inst_executed.sum,sm__warps_active.avg.pct_of_peak_sustained_active,launch__shared_mem_per_block_dynamic,launch__registers_per_thread,launch__grid_size \
    $B/bench/decode_bench --quick --reps 1 --shape llama3-8b --comp $1 --bits $2 --out /tmp/n.jsonl 2>&1 | grep -E "^  [a-zA-Z_].*\(|gpu__time|inst_exec|warps_active|shared_mem|registers|grid_size" | sed -E 's/\(LayerView.*//' | sed "s|^|model $1 $2: |"
done | tee $LOG/ncu_model.txt
