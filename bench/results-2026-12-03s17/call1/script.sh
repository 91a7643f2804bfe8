#!/usr/bin/env bash
# Prepared in the sixteenth session, not run (its device time was spent): main + next/value_tma_evict_first_experiment.patch
# (copy it to .device/value_tma_ef.patch). Three builds of the patched tree: `tma` (the value kernel's rows by one
# tensor copy per tile, call 2's experiment), `ef` (the same copies with an L2 evict-first policy,
# -DSTARKV_EXPERIMENT_VALUE_EVICT_FIRST) and `el` (tma, the probability tiles' cp.async with an L2 evict-last policy,
# -DSTARKV_EXPERIMENT_PROBS_EVICT_LAST). Modes: base (STARKV_NO_VALUE_TENSOR_STAGING=1), tma, ef, el. Question: does
# either hint remove the 0.12 GB of extra DRAM reads (1.35 -> 1.47 GB) the tensor copies caused (so: were they the
# probability tiles evicted from L2?), and does the value kernel then keep its 81% of peak (~347 us instead of 380)?
set -o pipefail
BT=/tmp/b-tma; BE=/tmp/b-ef; BL=/tmp/b-el; P=/tmp/src; LOG=/tmp/logs; rm -rf $LOG $P; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
mkdir -p $P && tar cf - --exclude=./build --exclude=./.git . | tar xf - -C $P && cp .device/row_slice_bw.cu $LOG/ 2>/dev/null; (cd $P && patch -p1 < .device/value_tma_ef.patch) > $LOG/patch.txt 2>&1 || { cat $LOG/patch.txt; exit 1; }
cfg() { cmake -S $P -B $1 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 "$2" > $LOG/cfg_$3.txt 2>&1; }
(nvcc -O3 -arch=sm_90 -std=c++17 -o /tmp/rsbw .device/row_slice_bw.cu > $LOG/rsbw_build.txt 2>&1) &
(cfg $BT "-DCMAKE_CUDA_FLAGS=" tma && ninja -C $BT -j5 decode_bench > $LOG/build_tma.txt 2>&1) &
(cfg $BL "-DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_PROBS_EVICT_LAST" el && ninja -C $BL -j5 decode_bench > $LOG/build_el.txt 2>&1) &
cfg $BE "-DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_VALUE_EVICT_FIRST" ef && ninja -C $BE -j6 decode_bench starkv_gpu_tests > $LOG/build_ef.txt 2>&1 || { grep -E "error" -A3 $LOG/build_ef.txt | head -40; exit 1; }
wait
el built
/tmp/rsbw > $LOG/row_slice_bw.txt 2>&1; cat $LOG/row_slice_bw.txt
el rsbw
timeout 200 $BE/tests/starkv_gpu_tests > $LOG/tests_ef.txt 2>&1; echo "tests ef rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_ef.txt | head
el tests
run() { local m=$1 bin=$BT/bench/decode_bench env=X=0; shift; [ $m = base ] && env=STARKV_NO_VALUE_TENSOR_STAGING=1; [ $m = ef ] && bin=$BE/bench/decode_bench; [ $m = el ] && bin=$BL/bench/decode_bench
  env $env timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for c in "llama2-7b 75% fp16 16" "llama2-7b 75% fp16 64" "llama2-7b 60% fp16 16" "llama2-7b 50% fp16 16" "llama3-8b 75% fp16 16" "llama2-7b 75% fp16 16" "llama3-8b 75% fp16 16"; do for m in base tma ef el; do run $m $c; done; done
cat $LOG/ab.txt
el ab
T="gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_sector_hit_rate.pct,smsp__inst_executed.sum"
for m in base tma ef el; do bin=$BT/bench/decode_bench; env=X=0; [ $m = base ] && env=STARKV_NO_VALUE_TENSOR_STAGING=1; [ $m = ef ] && bin=$BE/bench/decode_bench; [ $m = el ] && bin=$BL/bench/decode_bench
  env $env timeout 60 ncu --clock-control none --kernel-name regex:"decode_values" --launch-skip 1 --launch-count 1 --metrics "$T" \
    $bin --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_values_$m.txt 2>&1
  echo "== values $m"; grep -E "gpu__time|dram__|lts__|inst_" $LOG/ncu_values_$m.txt | cut -c1-110
done
el ncu
# sanitizers: in the call that lands a variant, on its committed tree
