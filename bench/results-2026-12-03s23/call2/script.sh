#!/usr/bin/env bash
# Session 23 call 2. Trees: base = main 9d5a703's kernels/ and src/cuda/; mend = base + the review mend; new2 = the
# working tree (mend + RoPE folded into the recon wgmma's score MMA: S = Q.(k c) + Q'.(k s), Q' = (q1, -q0) per pair,
# two HMUL2 per pair, a second MMA chain; Ut unpadded so Q' fits); new1 = new2 with one MMA chain
# (-DSTARKV_EXPERIMENT_ONE_CHAIN). Call 1's rotation-entries form lost its second buffer (smem), this one should not.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new2; B2=/tmp/b-mend; B3=/tmp/b-new1; S0=/tmp/src-base; S2=/tmp/src-mend; LOG=/tmp/logs2; rm -rf $LOG $S0 $S2; mkdir -p $LOG $S0 $S2
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs2.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_9d5a703.tar -C $S0
tar cf - -C $S0 . | tar xf - -C $S2
rm -rf $S2/kernels $S2/src/cuda && tar xf .device/mend23_kernels_srccuda.tar -C $S2
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
cmake -S $S2 -B $B2 $CFG > $LOG/cfg2.txt 2>&1
cmake -S . -B $B3 $CFG -DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_ONE_CHAIN > $LOG/cfg3.txt 2>&1
( ninja -C $B0 -j4 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j5 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
( ninja -C $B2 -j3 decode_bench > $LOG/build2.txt 2>&1; echo "b2 rc=$?" ) &
( ninja -C $B3 -j4 decode_bench starkv_gpu_tests > $LOG/build3.txt 2>&1; echo "b3 rc=$?" ) &
wait
grep -E " error" -A3 $LOG/build*.txt | head -30
el built
timeout 150 $B1/tests/starkv_gpu_tests > $LOG/tests_new2.txt 2>&1; echo "new2 tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_new2.txt | head -20
timeout 100 $B3/tests/starkv_gpu_tests --gtest_filter='*Recon*:*CudaDenseVsCpu*:*CudaVsCpu*:*CudaQuantized*' > $LOG/tests_new1.txt 2>&1; echo "new1 tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_new1.txt | head -20
el tests
for c in "75% fp16" "75% 4/3" "60% fp16" "50% fp16" "50% 4/3"; do set -- $c
  STARKV_DEBUG_FOLD_LAYOUT=1 timeout 30 $B1/bench/decode_bench --shape llama3-8b --comp $1 --bits $2 --batch 16 --context 4096 --reps 1 --out /tmp/z.jsonl 2>&1 | grep 'fold layout' | sort -u | sed "s|^|$1 $2: |"; done | tee $LOG/layouts.txt
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = mend ] && bin=$B2/bench/decode_bench; [ $m = new2 ] && bin=$B1/bench/decode_bench; [ $m = new1 ] && bin=$B3/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b 75% fp16 16" "llama3-8b 75% 4/3 16" "llama3-8b 60% fp16 16" "llama3-8b 50% fp16 16" "llama3-8b 50% 4/3 16" "llama3-8b 75% fp16 64" "llama3-8b 75% fp16 1"; do for m in base new2 new1; do run $m $c; done; done
  for c in "llama2-7b 50% 4/3 16" "llama2-7b 75% fp16 16"; do for m in base mend; do run $m $c; done; done
done
cat $LOG/ab.txt
el ab
M="gpu__time_duration.sum,smsp__inst_executed.sum,sm__inst_executed_pipe_alu.sum,sm__inst_executed_pipe_fma.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active"
for t in base new2 new1; do B=$B0; [ $t = new2 ] && B=$B1; [ $t = new1 ] && B=$B3; for c in "75% fp16" "75% 4/3" "50% fp16"; do set -- $c
  timeout 90 ncu --clock-control none --kernel-name regex:fold_scores --launch-skip 2 --launch-count 1 --metrics $M \
    $B/bench/decode_bench --shape llama3-8b --comp $1 --bits $2 --batch 16 --context 32768 --reps 1 --out /tmp/z.jsonl > $LOG/ncu_fold_${t}_${1%\%}_${2/\//}.txt 2>&1
  echo "== $t $c: $(grep -E "gpu__time|inst_executed|issue_active|hmma" $LOG/ncu_fold_${t}_${1%\%}_${2/\//}.txt | awk '{printf "%s %s; ", $1, $NF}')"; done; done
el ncu
left 400 && for t in new2; do B=$B1
timeout 150 ncu --kernel-name regex:fold_scores --launch-skip 2 --launch-count 1 --section SourceCounters --section WarpStateStats --section InstructionStats --page source --print-source sass --csv \
  $B/bench/decode_bench --shape llama3-8b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl > $LOG/recon_${t}_sass.csv 2>$LOG/ncu_src_$t.err
echo "src $t rc=$? $(wc -c < $LOG/recon_${t}_sass.csv)"
python3 bench/ncu_sass_profile.py $LOG/recon_${t}_sass.csv --top 30 > $LOG/recon_${t}_opcodes.txt 2>&1; head -3 $LOG/recon_${t}_opcodes.txt; gzip $LOG/recon_${t}_sass.csv; done
el ncu-source
left 480 && timeout 100 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*Recon*:*CudaDenseVsCpu*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 540 && timeout 50 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*/0:*CudaWideRecon*/4' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el done
