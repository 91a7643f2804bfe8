#!/usr/bin/env bash
# Session 23 call 3. Trees: base = main 9d5a703's kernels/ and src/cuda/; new = the working tree: the recon wgmma of fp16
# keys at padded rank <= 32 reads rotation entries ((cos,sin),(-sin,cos) per pair; rows of 512 B shifted by 32 B x (t mod 4))
# and rotates each pair in one HMUL2 + one HFMA2; Ut unpadded in every recon wgmma instance (so that the table fits beside
# two buffers at two CTAs per SM); a debug print of the layout. (Call 1's form lost the second buffer; call 2's split
# score MMAs executed 11% fewer instructions and ran 8% slower.)
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs3; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs3.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_9d5a703.tar -C $S0
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
( ninja -C $B0 -j6 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
wait
grep -E " error" -A3 $LOG/build*.txt | head -30
el built
timeout 150 $B1/tests/starkv_gpu_tests > $LOG/tests_new.txt 2>&1; echo "new tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_new.txt | head -20
el tests
for c in "75% fp16" "75% 4/3" "60% fp16" "50% fp16"; do set -- $c
  STARKV_DEBUG_FOLD_LAYOUT=1 timeout 30 $B1/bench/decode_bench --shape llama3-8b --comp $1 --bits $2 --batch 16 --context 4096 --reps 1 --out /tmp/z.jsonl 2>&1 | grep 'fold layout' | sort -u | sed "s|^|$1 $2: |"; done | tee $LOG/layouts.txt
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b 75% fp16 16" "llama3-8b 75% 4/3 16" "llama3-8b 60% fp16 16" "llama3-8b 50% fp16 16" "llama3-8b 75% fp16 64" "llama3-8b 75% fp16 1" "llama2-7b 75% fp16 16"; do for m in base new; do run $m $c; done; done
done
cat $LOG/ab.txt
el ab
M="gpu__time_duration.sum,smsp__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__occupancy_limit_shared_mem"
for t in base new; do B=$B0; [ $t = new ] && B=$B1; for c in "75% fp16"; do set -- $c
  timeout 90 ncu --clock-control none --kernel-name regex:fold_scores --launch-skip 2 --launch-count 1 --metrics $M \
    $B/bench/decode_bench --shape llama3-8b --comp $1 --bits $2 --batch 16 --context 32768 --reps 1 --out /tmp/z.jsonl > $LOG/ncu_fold_${t}_${1%\%}_${2/\//}.txt 2>&1
  echo "== $t $c: $(grep -E "gpu__time|inst_executed|issue_active|dram__|occupancy" $LOG/ncu_fold_${t}_${1%\%}_${2/\//}.txt | awk '{printf "%s %s; ", $1, $NF}')"; done; done
el ncu
left 400 && for t in new; do B=$B1
timeout 150 ncu --kernel-name regex:fold_scores --launch-skip 2 --launch-count 1 --section SourceCounters --section WarpStateStats --section InstructionStats --page source --print-source sass --csv \
  $B/bench/decode_bench --shape llama3-8b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl > $LOG/recon_${t}_sass.csv 2>$LOG/ncu_src_$t.err
echo "src $t rc=$? $(wc -c < $LOG/recon_${t}_sass.csv)"
python3 bench/ncu_sass_profile.py $LOG/recon_${t}_sass.csv --top 30 > $LOG/recon_${t}_opcodes.txt 2>&1; head -3 $LOG/recon_${t}_opcodes.txt; gzip $LOG/recon_${t}_sass.csv; done
el ncu-source
left 460 && timeout 100 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*Recon*:*CudaDenseVsCpu*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 540 && timeout 50 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*/0:*CudaWideRecon*/1' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el done
