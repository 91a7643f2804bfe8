#!/usr/bin/env bash
# Session 23 call 1. Trees: base = main 9d5a703's kernels/ and src/cuda/; mend = base + the review mend (fold prologue's
# AB/Ut builders store through one at(group, k) helper, dst/kRankStep gone); new = the working tree (mend + CS rotation
# entries for the recon wgmma: (cos,sin),(-sin,cos) per pair, RoPE in one HMUL2 + one HFMA2; Ut unpadded; debug print).
# (1) GPU suites on mend and new; memcheck/racecheck of the recon suites on new. (2) layouts. (3) A/B. (4) ncu of the
# recon fold (base/new) and new's SASS source profile. (5) static SASS opcode counts of the recon instance.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; B2=/tmp/b-mend; S0=/tmp/src-base; S2=/tmp/src-mend; LOG=/tmp/logs1; rm -rf $LOG $S0 $S2; mkdir -p $LOG $S0 $S2
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs1.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_9d5a703.tar -C $S0
tar cf - -C $S0 . | tar xf - -C $S2
rm -rf $S2/kernels $S2/src/cuda && tar xf .device/mend23_kernels_srccuda.tar -C $S2
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
cmake -S $S2 -B $B2 $CFG > $LOG/cfg2.txt 2>&1
( ninja -C $B0 -j4 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j6 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
( ninja -C $B2 -j6 decode_bench starkv_gpu_tests > $LOG/build2.txt 2>&1; echo "b2 rc=$?" ) &
wait
grep -E " error" -A3 $LOG/build0.txt $LOG/build1.txt $LOG/build2.txt | head -30
el built
timeout 150 $B1/tests/starkv_gpu_tests > $LOG/tests_new.txt 2>&1; echo "new tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_new.txt | head -20
timeout 150 $B2/tests/starkv_gpu_tests > $LOG/tests_mend.txt 2>&1; echo "mend tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_mend.txt | head -20
el tests
for c in "75% fp16" "75% 4/3" "60% fp16" "50% fp16" "50% 4/3"; do set -- $c
  STARKV_DEBUG_FOLD_LAYOUT=1 timeout 30 $B1/bench/decode_bench --shape llama3-8b --comp $1 --bits $2 --batch 16 --context 4096 --reps 1 --out /tmp/z.jsonl 2>&1 | grep 'fold layout' | sort -u | sed "s|^|$1 $2: |"; done | tee $LOG/layouts.txt
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = mend ] && bin=$B2/bench/decode_bench; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama3-8b 75% fp16 16" "llama3-8b 75% 4/3 16" "llama3-8b 60% fp16 16" "llama3-8b 50% fp16 16" "llama3-8b 75% fp16 64" "llama3-8b 75% fp16 1"; do for m in base new; do run $m $c; done; done
  for c in "llama2-7b 75% fp16 16" "llama2-7b 75% 4/3 16" "llama2-7b 50% 4/3 16" "llama3-8b 75% fp16 16"; do for m in base mend; do run $m $c; done; done
done
cat $LOG/ab.txt
el ab
M="gpu__time_duration.sum,smsp__inst_executed.sum,sm__inst_executed_pipe_alu.sum,sm__inst_executed_pipe_fma.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed"
for t in base new; do B=$B0; [ $t = new ] && B=$B1; for bits in fp16 4/3; do
  timeout 90 ncu --clock-control none --kernel-name regex:fold_scores --launch-skip 2 --launch-count 1 --metrics $M \
    $B/bench/decode_bench --shape llama3-8b --comp 75% --bits $bits --batch 16 --context 32768 --reps 1 --out /tmp/z.jsonl > $LOG/ncu_fold_${t}_${bits/\//}.txt 2>&1
  echo "== $t $bits"; grep -E "gpu__time|inst_executed|issue_active|dram__" $LOG/ncu_fold_${t}_${bits/\//}.txt | awk '{print $1, $(NF-1), $NF}'; done; done
el ncu
left 420 && for t in new base; do B=$B0; [ $t = new ] && B=$B1
timeout 150 ncu --kernel-name regex:fold_scores --launch-skip 2 --launch-count 1 --section SourceCounters --section WarpStateStats --section InstructionStats --page source --print-source sass --csv \
  $B/bench/decode_bench --shape llama3-8b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl > $LOG/recon_${t}_sass.csv 2>$LOG/ncu_src_$t.err
echo "src $t rc=$? $(wc -c < $LOG/recon_${t}_sass.csv)"
python3 bench/ncu_sass_profile.py $LOG/recon_${t}_sass.csv --top 30 > $LOG/recon_${t}_opcodes.txt 2>&1; head -3 $LOG/recon_${t}_opcodes.txt; gzip $LOG/recon_${t}_sass.csv; done
el ncu-source
for t in base new; do B=$B0; [ $t = new ] && B=$B1
cuobjdump -sass $B/CMakeFiles/starkv_sm90a_objects.dir/kernels/sm90a/fold_scores_wgmma.cu.o > $LOG/wgmma_$t.sass 2>&1
awk '/Function :/ {on = ($0 ~ /ELb1ELb1ELi32ELb0/)} on && /\/\*[0-9a-f]+\*\// {for(i=1;i<=NF;i++) if ($i ~ /^[A-Z][A-Z0-9_.]+$/) {split($i,a,"."); c[a[1]]++; n++; break}} END {print "total", n; for (k in c) print k, c[k]}' $LOG/wgmma_$t.sass | sort -k2 -nr | head -25 > $LOG/static_$t.txt; gzip $LOG/wgmma_$t.sass; done
paste $LOG/static_base.txt $LOG/static_new.txt | head -25
left 500 && timeout 120 compute-sanitizer --tool memcheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*Recon*:*CudaDenseVsCpu*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
left 540 && timeout 50 compute-sanitizer --tool racecheck --error-exitcode 1 $B1/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*/0:*CudaWideRecon*/4' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el done
