#!/usr/bin/env bash
# Session 22 call 4. Trees: base = main 9c9b86e's kernels/ and src/cuda/; new = the working tree: the value kernel
# stages fp16 blocks of whole 128-byte columns by one 2-D tensor copy per column (box = 32 rows x 128 bytes, exactly
# inside the block, 128-byte swizzle in shared memory; a last partial block by cp.async into the same layout);
# STARKV_NO_VALUE_TENSOR_STAGING=1 keeps cp.async (new_cp). Whole GPU suite (+2 tests), A/B, ncu of the step's kernels,
# memcheck/racecheck of the value tests, then the quick grid + SDPA on new.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs4; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs4.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_9c9b86e.tar -C $S0
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
( ninja -C $B0 -j6 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
wait
grep -E " error|error:" -A3 $LOG/build0.txt $LOG/build1.txt | head -30
el built
timeout 150 $B1/tests/starkv_gpu_tests > $LOG/tests_new.txt 2>&1; echo "new tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_new.txt | head -20
grep -E "ValueTensorStaging|CudaFoldSmallTile.*/2 " -A3 $LOG/tests_new.txt | grep -E "OK|FAIL|rel" | head
el tests
run() { local m=$1 bin=$B0/bench/decode_bench e=""; shift; [ ${m%_cp} = new ] && bin=$B1/bench/decode_bench; [ $m = new_cp ] && e="STARKV_NO_VALUE_TENSOR_STAGING=1"
  env $e timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama2-7b 60% fp16 16" "llama3-8b 60% fp16 16" "llama2-7b 75% fp16 64" "llama2-7b 75% fp16 1" "llama3-8b 75% fp16 16" "llama2-7b 75% 4/3 16" "llama3-8b 75% 4/3 16"; do for m in base new new_cp; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
M="gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__inst_executed.sum"
for t in base new; do B=$B0; [ $t = new ] && B=$B1; for c in "75% fp16" "60% fp16"; do set -- $c; n=${1%\%}
  timeout 90 ncu --clock-control none --kernel-name regex:'decode_values' --launch-skip 3 --launch-count 2 --metrics $M \
    $B/bench/decode_bench --shape llama2-7b --comp $1 --bits $2 --batch 16 --context 32768 --reps 4 --out /tmp/z.jsonl > $LOG/ncu_values_${t}_$n.txt 2>&1
  echo "== values $t $c"; grep -E "gpu__time|dram__|inst_exec" $LOG/ncu_values_${t}_$n.txt | cut -c1-110; done; done
el ncu
left 400 && timeout 100 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*ValueTensorStaging*:*CudaFoldSmallTile*:*WideJoint*:*CudaSplitPath*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 440 && timeout 60 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*ValueTensorStaging*:*CudaFoldSmallTile*/2' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el sanitizers
left 470 || exit 0
B=$B1
timeout 100 $B/bench/decode_bench --quick --reps 10 --out $LOG/starkv_quick.jsonl > $LOG/quick.txt 2>&1
el starkv
PYTHONUNBUFFERED=1 timeout 60 python3 bench/sdpa_baseline.py --quick --reps 10 --out $LOG/sdpa_quick.jsonl > $LOG/sdpa.txt 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $LOG/gpu.txt
python3 bench/merge_results.py $LOG/starkv_quick.jsonl $LOG/sdpa_quick.jsonl --gpu $LOG/gpu.txt --md $LOG/table_quick.md --peak 4800 > $LOG/merge.txt 2>&1
el quick
grep "^|" $LOG/table_quick.md | head -30
