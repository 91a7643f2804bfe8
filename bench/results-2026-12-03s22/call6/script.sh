#!/usr/bin/env bash
# Session 22 call 6. Why call 4's swizzled-column tensor staging left the value kernel no faster: ncu stall and
# scheduler sections of the value kernel, main f766725 (base) against base + call4/value_swizzled_columns_experiment.patch
# (swz), Llama-2-like 60% and 75% fp16, batch 16 x 32K, one launch each.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-swz; S1=/tmp/src-swz; LOG=/tmp/logs6; rm -rf $LOG $S1; mkdir -p $LOG $S1
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs6.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S1
R=$(pwd); (cd $S1 && git apply $R/.device/swz.patch) > $LOG/patch.txt 2>&1; echo "patch rc=$?"
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S . -B $B0 $CFG > /dev/null 2>&1; cmake -S $S1 -B $B1 $CFG > /dev/null 2>&1
( ninja -C $B0 -j8 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j8 decode_bench > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
wait; rm -f $LOG/build*.txt
el built
for t in base swz; do B=$B0; [ $t = swz ] && B=$B1; for c in 60% 75%; do n=${c%\%}
  timeout 60 ncu --clock-control none --kernel-name regex:decode_values --launch-skip 1 --launch-count 1 \
    --section WarpStateStats --section SchedulerStats --section SpeedOfLight --section Occupancy \
    $B/bench/decode_bench --shape llama2-7b --comp $c --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_${t}_${n}.txt 2>&1
  echo "== $t $c"; grep -E "Duration|DRAM Throughput|Issued Warp|Eligible Warps|No Eligible|Achieved Occupancy|Warp Cycles Per Issued|Stall" $LOG/ncu_${t}_${n}.txt | cut -c1-120 | head -14; done; done
el ncu
