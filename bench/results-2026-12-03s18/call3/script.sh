#!/usr/bin/env bash
# Session 18 call 3. Working tree = main 8cd8641 + the fold ablation switch (STARKV_ABLATE bits: 1 = no Z wgmmas,
# 2 = no CS rotation, 4 = no softmax, 8 = no scores; timing only, results wrong). Builds a0 (= main), 1, 2, 4, 8, 6, 15.
# Step time and ncu fold time / issue / tensor for each, Llama-2-like 75% fp16 and 4/3 b16.
set -o pipefail
LOG=/tmp/logs3; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs3.tgz .' EXIT
A="0 1 2 4 8 6 15"
for a in $A; do
  (cmake -S . -B /tmp/b-a$a -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 "-DCMAKE_CUDA_FLAGS=-DSTARKV_ABLATE=$a" > $LOG/cfg_a$a.txt 2>&1 && \
    ninja -C /tmp/b-a$a -j3 decode_bench > $LOG/build_a$a.txt 2>&1) &
done
wait
for a in $A; do ls /tmp/b-a$a/bench/decode_bench > /dev/null || { grep -E "error" -A3 $LOG/build_a$a.txt | head -20; exit 1; }; done
el built
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama2-7b 75% 4/3 16"; do for a in $A; do
  set -- $c
  timeout 60 /tmp/b-a$a/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|a$a: |" >> $LOG/ab.txt
done; done; done
cat $LOG/ab.txt
el ab
T="gpu__time_duration.sum,sm__inst_issued.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed"
for a in $A; do for bits in fp16 4/3; do
  timeout 45 ncu --clock-control none --kernel-name regex:"fold_scores" --launch-skip 1 --launch-count 1 --metrics "$T" \
    /tmp/b-a$a/bench/decode_bench --shape llama2-7b --comp 75% --bits $bits --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_fold_a${a}_${bits/\//}.txt 2>&1
  echo "== fold a$a $bits"; grep -E "gpu__time|sm__|inst_|dram__" $LOG/ncu_fold_a${a}_${bits/\//}.txt | cut -c1-120
done; done
el ncu
