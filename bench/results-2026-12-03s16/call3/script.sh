#!/usr/bin/env bash
# Session 16 call 3. Working tree = main 50ad0b0 + the fold's latent loads before the wgmma wait (.device/load_head.patch)
# + 32 bytes of slack after the fused kernel's staged rows (decode_attention.cu). Base = the same without load_head.patch.
# GPU tests, A/B two rounds, ncu of the fold both ways, memcheck/racecheck of the fold suites and of CudaVsCpu16.
set -o pipefail
BN=/tmp/b-new; BB=/tmp/b-base; P=/tmp/src-base; LOG=/tmp/logs; rm -rf $LOG $P; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
mkdir -p $P && tar cf - --exclude=./build --exclude=./.git . | tar xf - -C $P && (cd $P && patch -R -p1 < .device/load_head.patch > $LOG/patch.txt) || { cat $LOG/patch.txt; exit 1; }
cfg() { cmake -S $1 -B $2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg_$3.txt 2>&1; }
(cfg $P $BB base && ninja -C $BB -j6 decode_bench > $LOG/build_base.txt 2>&1) &
cfg . $BN new && ninja -C $BN -j10 starkv_gpu_tests decode_bench > $LOG/build_new.txt 2>&1 || { grep -E "error" -A3 $LOG/build_new.txt | head -60; exit 1; }
wait
ls $BB/bench/decode_bench > /dev/null || { grep -E "error" -A3 $LOG/build_base.txt | head -40; exit 1; }
el built
timeout 200 $BN/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head -12
STARKV_NO_PAIRED_FOLD=1 timeout 200 $BN/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaFoldSmallTile*:*CudaSplitPath*' > $LOG/tests_nopaired.txt 2>&1; echo "tests no paired rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_nopaired.txt | head -12
el tests
run() { local m=$1 bin=$BB/bench/decode_bench; shift; [ $m = new ] && bin=$BN/bench/decode_bench
  timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama2-7b 75% fp16 64" "llama2-7b 75% fp16 1" "llama2-7b 60% fp16 16" "llama2-7b 75% 4/3 16"; do for m in base new; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
T="gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__inst_issued.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,launch__grid_size"
for m in base new; do bin=$BB/bench/decode_bench; [ $m = new ] && bin=$BN/bench/decode_bench
  timeout 60 ncu --clock-control none --kernel-name regex:"fold_scores" --launch-skip 1 --launch-count 1 --metrics "$T" \
    $bin --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_fold_$m.txt 2>&1
  echo "== fold $m"; grep -E "gpu__time|dram__|inst_|launch__" $LOG/ncu_fold_$m.txt | cut -c1-110
done
el ncu
timeout 120 compute-sanitizer --tool memcheck --error-exitcode 1 $BN/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaFoldSmallTile*:*CudaVsCpu16*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $LOG/memcheck.txt
timeout 120 compute-sanitizer --tool racecheck --error-exitcode 1 $BN/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaFoldSmallTile*:*CudaVsCpu16*' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -2 $LOG/racecheck.txt
el sanitizers
# The quick grid with SDPA in the same call (the README's table), on the build the A/B favours (new only if its
# Llama-2-like 75% fp16 b16 mean is at least 0.5% below base's).
pick=$(awk '/llama2-7b  75%  fp16     16/ {m=$1; s[m]+=$8; n[m]++} END {b=s["base:"]/n["base:"]; w=s["new:"]/n["new:"]; print (w < 0.995*b) ? "new" : "base"}' $LOG/ab.txt)
echo "grid build: $pick" | tee $LOG/grid_build.txt
B=$BB; [ $pick = new ] && B=$BN
timeout 120 $B/bench/decode_bench --quick --reps 10 --out $LOG/starkv_quick.jsonl > $LOG/quick.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do for bits in fp16 4/3; do
  timeout 30 $B/bench/decode_bench --shape $s --comp 75% --bits $bits --batch $b --context 32768 --reps 10 --out /tmp/x.jsonl >> $LOG/quick.txt 2>&1; cat /tmp/x.jsonl >> $LOG/starkv_quick.jsonl
done; done; done
el starkv
PYTHONUNBUFFERED=1 timeout 120 python3 bench/sdpa_baseline.py --quick --reps 10 --out $LOG/sdpa_quick.jsonl > $LOG/sdpa.txt 2>&1
for b in 1 64; do for s in llama2-7b llama3-8b; do
  timeout 30 python3 bench/sdpa_baseline.py --shape $s --batch $b --context 32768 --reps 10 --out /tmp/y.jsonl >> $LOG/sdpa.txt 2>&1; cat /tmp/y.jsonl >> $LOG/sdpa_quick.jsonl
done; done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $LOG/gpu.txt
python3 bench/merge_results.py $LOG/starkv_quick.jsonl $LOG/sdpa_quick.jsonl --gpu $LOG/gpu.txt --md $LOG/table_quick.md --peak 4800 > $LOG/merge.txt 2>&1
el quick
grep "^|" $LOG/table_quick.md | head -40
