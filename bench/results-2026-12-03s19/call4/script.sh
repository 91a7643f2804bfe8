#!/usr/bin/env bash
# Session 19 call 4. Tree = main ab23d8c (code = f33ea03). ncu warp-state (stall reasons), scheduler, occupancy and
# speed-of-light sections of the value kernel and the fold: Llama-2-like 75% fp16 and 4/3, Llama-3-like 75% fp16;
# batch 16, 32K.
set -o pipefail
B=/tmp/b-main; LOG=/tmp/logs4; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs4.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1
ninja -C $B -j16 decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -40; exit 1; }
el built
for c in "llama2-7b fp16 decode_values" "llama2-7b fp16 fold_scores" "llama2-7b 4/3 decode_values" "llama2-7b 4/3 fold_scores" "llama3-8b fp16 fold_scores" "llama3-8b fp16 decode_values"; do
  left 420 || break; set -- $c; f=$LOG/ncu_${1}_${2/\//}_$3.txt
  timeout 60 ncu --clock-control none --kernel-name regex:"$3" --launch-skip 1 --launch-count 1 \
    --section WarpStateStats --section SchedulerStats --section Occupancy --section SpeedOfLight --section LaunchStats --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
    $B/bench/decode_bench --shape $1 --comp 75% --bits $2 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $f 2>&1
  echo "== $1 $2 $3"; grep -E "Duration|Memory Throughput|DRAM Throughput|Compute \(SM\)|Achieved Occupancy|Theoretical Occupancy|Eligible Warps|Issued Warp|No Eligible|Warp Cycles Per Issued|Registers Per|Block Limit" $f | sed 's/  */ /g' | head -20; grep -E "stalled" $f | sed 's/  */ /g' | awk '{print $NF, $1}' | sed 's/smsp__average_warps_issue_stalled_//; s/_per_issue_active.ratio//' | sort -g -r | head -8
done
el ncu
