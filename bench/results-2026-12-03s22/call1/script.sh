#!/usr/bin/env bash
# Session 22 call 1. Trees: base = main e50f4eb's kernels/ and src/cuda/; new = the working tree: the review mend
# (KeyColumns kept as such in the fold prologue's scratch, KeyColumns::is_gap) + the value kernel staging its rows by
# per-row bulk copies (cp.async.bulk, lane = token; STARKV_NO_VALUE_BULK_STAGING=1 keeps cp.async); vt = base + the
# sixteenth session's value tensor staging patch (2-D tensor copies, which read 10% more DRAM bytes then).
# (1) whole GPU suite on new; memcheck/racecheck of the split and quantized suites. (2) tma_slice_bw probe: value
# slices staged by cp.async, 2-D tensor copies (padded / fitted box), per-row bulk copies; timing and ncu DRAM bytes.
# (3) ncu of the value kernel on base, vt, new. (4) A/B base / new / new with cp.async / vt.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; B2=/tmp/b-vt; S0=/tmp/src-base; S2=/tmp/src-vt; LOG=/tmp/logs1; rm -rf $LOG $S0 $S2; mkdir -p $LOG $S0 $S2
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs1.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_e50f4eb.tar -C $S0
tar cf - -C $S0 . | tar xf - -C $S2
R=$(pwd); (cd $S2 && git apply $R/.device/vts.patch) > $LOG/patch.txt 2>&1; echo "patch rc=$?"
cp .device/tma_slice_bw.cu $LOG/
(nvcc -O3 -arch=sm_90a -std=c++17 -o /tmp/tsbw .device/tma_slice_bw.cu > $LOG/tsbw_build.txt 2>&1; echo "probe build rc=$?") &
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
cmake -S $S2 -B $B2 $CFG > $LOG/cfg2.txt 2>&1
( ninja -C $B0 -j5 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j6 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
( ninja -C $B2 -j5 decode_bench > $LOG/build2.txt 2>&1; echo "b2 rc=$?" ) &
wait
grep -E "error" -A3 $LOG/build0.txt $LOG/build1.txt $LOG/build2.txt | head -30
el built
timeout 150 $B1/tests/starkv_gpu_tests > $LOG/tests_new.txt 2>&1; echo "new tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_new.txt | head -20
el tests
run() { local m=$1 bin=$B0/bench/decode_bench e=""; shift; [ ${m%_cp} = new ] && bin=$B1/bench/decode_bench; [ $m = vt ] && bin=$B2/bench/decode_bench; [ $m = new_cp ] && e="STARKV_NO_VALUE_BULK_STAGING=1"
  env $e timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama3-8b 75% fp16 16" "llama2-7b 75% 4/3 16" "llama3-8b 75% 4/3 16" "llama2-7b 75% fp16 64" "llama2-7b 75% 4/3 1"; do for m in base new new_cp vt; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
/tmp/tsbw > $LOG/tsbw.txt 2>&1; cat $LOG/tsbw.txt
el probe
M1="gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_requests_srcunit_tex_op_read.sum"
M2="lts__t_sectors_op_read.sum,lts__t_sectors_op_read_lookup_miss.sum,lts__t_sectors_op_read_lookup_hit.sum"
TSBW_ONCE=1 timeout 100 ncu --clock-control none --metrics $M1 /tmp/tsbw > $LOG/tsbw_ncu1.txt 2>&1; echo "ncu1 rc=$?"
grep -E "^[a-z].* \| |gpu__time|dram__|lts__" $LOG/tsbw_ncu1.txt | grep -v "==PROF==" | cut -c1-120
TSBW_ONCE=1 timeout 100 ncu --clock-control none --metrics $M2 /tmp/tsbw > $LOG/tsbw_ncu2.txt 2>&1; echo "ncu2 rc=$?"
grep -E "^[a-z].* \| |lts__|ERR" $LOG/tsbw_ncu2.txt | grep -v "==PROF==" | cut -c1-120
el probe_ncu
for t in base vt new; do B=$B0; [ $t = vt ] && B=$B2; [ $t = new ] && B=$B1; for s in llama2-7b llama3-8b; do
  timeout 60 ncu --clock-control none --kernel-name regex:decode_values --launch-skip 1 --launch-count 1 --metrics $M1,$M2 \
    $B/bench/decode_bench --shape $s --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_values_${t}_$s.txt 2>&1
  echo "== values $t $s"; grep -E "gpu__time|dram__|lts__|ERR" $LOG/ncu_values_${t}_$s.txt | cut -c1-120; done; done
el ncu_values
left 480 && timeout 100 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaSplitPath*:*CudaQuantized*:*CudaLongSplit*:*CudaFoldWgmma*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 540 && timeout 50 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaSplitPath*/1:*CudaQuantized*/1:*CudaLongSplit*/0:*CudaFoldWgmma*/5' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el sanitizers
