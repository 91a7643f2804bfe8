#!/usr/bin/env bash
# Session 16 call 1. Working tree = main cd31fe5 + the wide recon chunks' tensor maps (host) + the pipelined recon
# wgmma block (.device/recon_pipe.patch). Base = the same with recon_pipe.patch reversed.
# Modes: main = base with STARKV_NO_TENSOR_STAGING=1 (for the Llama-3-like rows: main's behaviour), maps = base,
# pipe = working tree. GPU tests, A/B, ncu, sanitizers; ncu source counters of the four fp16 75% b16 kernels.
set -o pipefail
BN=/tmp/b-new; BB=/tmp/b-base; P=/tmp/src-base; LOG=/tmp/logs; rm -rf $LOG $P; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
mkdir -p $P && tar cf - --exclude=./build --exclude=./.git . | tar xf - -C $P && (cd $P && patch -R -p1 < .device/recon_pipe.patch > $LOG/patch.txt) || { cat $LOG/patch.txt; exit 1; }
cfg() { cmake -S $1 -B $2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg_$3.txt 2>&1; }
(cfg $P $BB base && ninja -C $BB -j6 decode_bench starkv_gpu_tests > $LOG/build_base.txt 2>&1) &
cfg . $BN new && ninja -C $BN -j10 starkv_gpu_tests decode_bench > $LOG/build_new.txt 2>&1 || { grep -E "error" -A3 $LOG/build_new.txt | head -60; exit 1; }
wait
ls $BB/bench/decode_bench > /dev/null || { grep -E "error" -A3 $LOG/build_base.txt | head -40; exit 1; }
grep -i "spill\|serializ" $LOG/build_new.txt | head -5
el built
timeout 200 $BN/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests new rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head -12
STARKV_NO_TENSOR_STAGING=1 timeout 200 $BN/tests/starkv_gpu_tests --gtest_filter='*Recon*:*CudaFoldWgmma*:*CudaQuantized*:*CudaSplitPath*' > $LOG/tests_nts.txt 2>&1; echo "tests new, no tensor staging rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_nts.txt | head -12
timeout 200 $BB/tests/starkv_gpu_tests --gtest_filter='*Recon*:*CudaFoldWgmma*:*CudaSplitPath*' > $LOG/tests_base.txt 2>&1; echo "tests base (maps) rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_base.txt | head -12
el tests
timeout 120 ncu --kernel-name regex:"fold_scores" --metrics launch__block_size,launch__grid_size $BN/tests/starkv_gpu_tests --gtest_filter='*CudaWideRecon*' > $LOG/ncu_recon_launches.txt 2>&1
grep -E "fold_scores_kernel" $LOG/ncu_recon_launches.txt | sed 's/(LayerView.*//' | sort | uniq -c | head
run() { local m=$1 bin=$BB/bench/decode_bench env=X=0; shift; [ $m = main ] && env=STARKV_NO_TENSOR_STAGING=1; [ $m = pipe ] && bin=$BN/bench/decode_bench
  env $env timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama3-8b 75% fp16 16" "llama3-8b 75% fp16 64" "llama3-8b 75% fp16 1" "llama3-8b 60% fp16 16" "llama3-8b 50% fp16 16" "llama3-8b 75% 4/3 16" "llama2-7b 75% fp16 16"; do for m in main maps pipe; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
T="gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__inst_issued.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,launch__registers_per_thread,launch__grid_size"
for c in "main fp16" "maps fp16" "pipe fp16" "maps 4/3" "pipe 4/3"; do set -- $c; m=$1; bits=$2; bin=$BB/bench/decode_bench; env=X=0; [ $m = main ] && env=STARKV_NO_TENSOR_STAGING=1; [ $m = pipe ] && bin=$BN/bench/decode_bench
  env $env timeout 60 ncu --clock-control none --kernel-name regex:"fold_scores" --launch-skip 1 --launch-count 1 --metrics "$T" \
    $bin --shape llama3-8b --comp 75% --bits $bits --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_recon_${m}_${bits/\//}.txt 2>&1
  echo "== recon fold $m $bits"; grep -E "gpu__time|dram__|inst_|hmma|launch__" $LOG/ncu_recon_${m}_${bits/\//}.txt | cut -c1-110
done
el ncu-ab
for s in "llama3-8b fold_scores" "llama3-8b decode_values" "llama2-7b fold_scores" "llama2-7b decode_values"; do set -- $s
timeout 150 ncu --kernel-name regex:$2 --launch-skip 3 --launch-count 1 --section SourceCounters --section WarpStateStats --section InstructionStats --page source --print-source sass --csv \
  $BN/bench/decode_bench --shape $1 --comp 75% --bits fp16 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl > $OUT/${1}_${2}_sass.csv 2>$LOG/ncu_${1}_$2.err
echo "$1 $2 rc=$? $(wc -c < $OUT/${1}_${2}_sass.csv)"
python3 bench/ncu_sass_profile.py $OUT/${1}_${2}_sass.csv --top 25 > $LOG/${1}_${2}_opcodes.txt 2>&1; head -3 $LOG/${1}_${2}_opcodes.txt
done
cuobjdump -sass $BN/CMakeFiles/starkv_sm90a_objects.dir/kernels/sm90a/fold_scores_wgmma.cu.o > $LOG/wgmma_new.sass 2>&1; gzip $LOG/wgmma_new.sass
el ncu-source
timeout 200 compute-sanitizer --tool memcheck --error-exitcode 1 $BN/tests/starkv_gpu_tests --gtest_filter='*Recon*:*CudaFoldWgmma*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
timeout 200 compute-sanitizer --tool racecheck --error-exitcode 1 $BN/tests/starkv_gpu_tests --gtest_filter='*Recon*' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el sanitizers
