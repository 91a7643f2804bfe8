#!/usr/bin/env bash
# Session 27 call 3: split rotary pairs with NR 48 restored (this tree, wip/s27-split-pairs) vs main ee6bbcf:
# A/B (60% = identical PTX: the noise control) and ncu of the fold kernel (opcode mix, stalls).
set -o pipefail
LOG=/tmp/logs3; rm -rf $LOG /tmp/src-base; mkdir -p $LOG /tmp/src-base
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs3.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C /tmp/src-base; rm -rf /tmp/src-base/kernels /tmp/src-base/src/cuda
tar xf .device/base_kernels_srccuda_ee6bbcf.tar -C /tmp/src-base
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S /tmp/src-base -B /tmp/b-base $CFG > /dev/null 2>&1; cmake -S . -B /tmp/b-split $CFG > /dev/null 2>&1
( ninja -C /tmp/b-base -j8 decode_bench > $LOG/build0.txt 2>&1; echo "base rc=$?" ) &
( ninja -C /tmp/b-split -j8 decode_bench > $LOG/build1.txt 2>&1; echo "split rc=$?" ) &
wait; grep -E " error" -A3 $LOG/build*.txt | head -20; rm -f $LOG/build*.txt
el built
run() { local m=$1; shift; timeout 40 /tmp/b-$m/bench/decode_bench --shape $1 --comp $5 --bits $2 --batch $3 --context $4 --reps 20 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b fp16 16 32768 75%" "llama3-8b 4/3 16 32768 75%" "llama3-8b fp16 16 32768 60%"; do
    for m in base split; do left 200 && run $m $c; done; done
done
cat $LOG/ab.txt
el ab
M="gpu__time_duration.sum,sm__warps_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__inst_executed.sum,sm__cycles_active.avg,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread"
for m in base split; do
  left 330 && timeout 60 ncu --kernel-name regex:fold_scores --launch-skip 2 --launch-count 1 --metrics $M /tmp/b-$m/bench/decode_bench --shape llama3-8b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl > $LOG/ncu_metrics_$m.txt 2>&1
  echo "== $m"; grep -E "gpu__time|inst_exec|issue_active|hmma|warps_active|dram__thr|registers" $LOG/ncu_metrics_$m.txt
  left 400 && timeout 90 ncu --kernel-name regex:fold_scores --launch-skip 2 --launch-count 1 --section SourceCounters --section WarpStateStats --page source --print-source sass --csv \
    /tmp/b-$m/bench/decode_bench --shape llama3-8b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl > $LOG/fold_$m.csv 2> $LOG/ncu_src_$m.err
  python3 bench/ncu_sass_profile.py $LOG/fold_$m.csv --top 30 > $LOG/fold_${m}_profile.txt 2>&1; head -40 $LOG/fold_${m}_profile.txt; gzip $LOG/fold_$m.csv
done
el done
