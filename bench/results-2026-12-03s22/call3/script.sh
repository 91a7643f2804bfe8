#!/usr/bin/env bash
# Session 22 call 3. Trees: base = main e50f4eb's kernels/ and src/cuda/; mend = base + the review mend alone (the commit
# candidate: KeyColumns kept as such in the fold prologue's scratch, KeyColumns::is_gap); new = the working tree (mend +
# the value kernel's fitted-box tensor staging). (1) mend: whole GPU suite, A/B against base. (2) Why call 2's value
# kernel, 4% faster alone under ncu, left the step unchanged (75%) or slower (50%): ncu of every kernel of a step
# (default cache control, as the bench flushes L2 before each step) on base and new.
set -o pipefail
B0=/tmp/b-base; B1=/tmp/b-new; B2=/tmp/b-mend; S0=/tmp/src-base; S2=/tmp/src-mend; LOG=/tmp/logs3; rm -rf $LOG $S0 $S2; mkdir -p $LOG $S0 $S2
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs3.tgz .' EXIT
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_e50f4eb.tar -C $S0
tar cf - -C $S0 . | tar xf - -C $S2
rm -rf $S2/kernels $S2/src/cuda && tar xf .device/mend_kernels_srccuda.tar -C $S2
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
cmake -S $S0 -B $B0 $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
cmake -S $S2 -B $B2 $CFG > $LOG/cfg2.txt 2>&1
( ninja -C $B0 -j5 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j5 decode_bench > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
( ninja -C $B2 -j6 decode_bench starkv_gpu_tests > $LOG/build2.txt 2>&1; echo "b2 rc=$?" ) &
wait
grep -E " error" -A3 $LOG/build0.txt $LOG/build1.txt $LOG/build2.txt | head -30
el built
timeout 150 $B2/tests/starkv_gpu_tests > $LOG/tests_mend.txt 2>&1; echo "mend tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_mend.txt | head -20
el tests
M="gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed"
for t in base new; do B=$B0; [ $t = new ] && B=$B1; for c in "75% fp16" "50% fp16"; do set -- $c; n=${1%\%}
  timeout 90 ncu --clock-control none --kernel-name regex:'fold|values|combine|merge|split' --launch-skip 12 --launch-count 12 --metrics $M \
    $B/bench/decode_bench --shape llama2-7b --comp $1 --bits $2 --batch 16 --context 32768 --reps 4 --out /tmp/z.jsonl > $LOG/ncu_step_${t}_$n.txt 2>&1
  echo "== $t $c"; grep -E "^  [a-z_].*\(|gpu__time|dram__bytes" $LOG/ncu_step_${t}_$n.txt | sed 's/(.*//' | paste - - - | awk '{print $1, $(NF-3), $(NF-2), $NF}' | head -12; done; done
el ncu
run() { local m=$1 bin=$B0/bench/decode_bench; shift; [ $m = mend ] && bin=$B2/bench/decode_bench; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama3-8b 75% fp16 16" "llama2-7b 75% 4/3 16" "llama3-8b 75% 4/3 16" "llama2-7b 50% 4/3 16" "llama2-7b 75% 4/3 1"; do for m in base mend; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
