#!/usr/bin/env bash
# Session 11, call 2: profile of main e41a8cc: per-kernel times (llama3 fp16/4-3, llama2 fp16/4-3,
# 75%, b16 x 32K) and the source counters of the recon wgmma fold (llama3 fp16 75%).
set -o pipefail
B=/tmp/starkv-build; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1
ninja -C $B -j16 decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
el built
for a in "llama3-8b 75% fp16" "llama3-8b 75% 4/3" "llama2-7b 75% fp16" "llama2-7b 75% 4/3"; do set -- $a
  echo "== $a"
  timeout 90 ncu --clock-control none --metrics gpu__time_duration.sum,dram__bytes_read.sum,smsp__inst_executed.sum \
    $B/bench/decode_bench --shape $1 --comp $2 --bits $3 --batch 16 --context 32768 --reps 2 --out /tmp/n.jsonl 2>/dev/null \
    | grep -E "Context 1|gpu__time|dram__bytes|inst_exec" | cut -c1-160 | tail -40
done > $LOG/breakdown.txt 2>&1
el breakdown
timeout 150 ncu --clock-control none --kernel-name regex:fold_scores --launch-skip 1 --launch-count 1 \
  --section SourceCounters --section WarpStateStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
  --export $LOG/recon -f $B/bench/decode_bench --shape llama3-8b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl > $LOG/ncu_recon_run.txt 2>&1
ncu --import $LOG/recon.ncu-rep --page source --print-source sass --csv > $LOG/recon_sass.csv 2>&1
ncu --import $LOG/recon.ncu-rep --page details > $LOG/recon_details.txt 2>&1
rm -f $LOG/recon.ncu-rep
el profile
grep -E "Duration|Throughput|Issue Slots|Registers|Achieved Occupancy|Stall|Warp Cycles" $LOG/recon_details.txt | head -30
