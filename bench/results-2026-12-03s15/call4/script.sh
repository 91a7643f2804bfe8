#!/usr/bin/env bash
# Session 15 call 4: main ebb853f + a STARKV_EXPERIMENT_FOLD_NO_ROWS switch (working tree), and a copy with
# .device/paired.patch (the paired fold: one CTA of 2 x 256 threads, two items of one query sharing AB, each half with
# two staging buffers; STARKV_PAIRED_FOLD=1). Builds: base, nr (-DSTARKV_EXPERIMENT_FOLD_NO_ROWS), paired.
set -o pipefail
BB=/tmp/b-base; BN=/tmp/b-nr; BP=/tmp/b-paired; P=/tmp/src-paired; LOG=/tmp/logs; rm -rf $LOG $P; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
mkdir -p $P && tar cf - --exclude=./build --exclude=./.git . | tar xf - -C $P && (cd $P && patch -p1 < .device/paired.patch > $LOG/patch.txt) || { cat $LOG/patch.txt; exit 1; }
cfg() { cmake -S $1 -B $2 -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 "$3" > $LOG/cfg_$4.txt 2>&1; }
(cfg . $BB "-DCMAKE_CUDA_FLAGS=" base && ninja -C $BB -j4 decode_bench > $LOG/build_base.txt 2>&1) &
(cfg . $BN "-DCMAKE_CUDA_FLAGS=-DSTARKV_EXPERIMENT_FOLD_NO_ROWS" nr && ninja -C $BN -j4 decode_bench > $LOG/build_nr.txt 2>&1) &
cfg $P $BP "-DCMAKE_CUDA_FLAGS=" paired && ninja -C $BP -j8 decode_bench starkv_gpu_tests > $LOG/build_paired.txt 2>&1 || { grep -E "error" -A3 $LOG/build_paired.txt | head -60; exit 1; }
wait
ls $BB/bench/decode_bench $BN/bench/decode_bench || { tail -20 $LOG/build_base.txt $LOG/build_nr.txt; }
el built
STARKV_PAIRED_FOLD=1 timeout 200 $BP/tests/starkv_gpu_tests > $LOG/tests_paired.txt 2>&1; echo "tests paired rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests_paired.txt | head -12
el tests
STARKV_PAIRED_FOLD=1 timeout 120 ncu --kernel-name regex:"fold_scores" --metrics launch__block_size,launch__grid_size $BP/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaFoldSmallTile*' > $LOG/ncu_tests_launches.txt 2>&1
echo "paired launches in the fold suites: $(grep -c 'Lb1EEEv\|, 1>(' $LOG/ncu_tests_launches.txt) of $(grep -c 'fold_scores_kernel' $LOG/ncu_tests_launches.txt)"; grep -E "fold_scores_kernel" $LOG/ncu_tests_launches.txt | sed 's/(LayerView.*//' | sort | uniq -c | head
el launches
run() { local m=$1 bin=$BB/bench/decode_bench env=X=0; shift; [ $m = paired ] && { bin=$BP/bench/decode_bench; env=STARKV_PAIRED_FOLD=1; }
  env $env timeout 60 $bin --shape $1 --comp $2 --bits $3 --batch $4 --context 32768 --reps 10 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do for c in "llama2-7b 75% fp16 16" "llama2-7b 75% fp16 64" "llama2-7b 75% fp16 1" "llama2-7b 60% fp16 16" "llama3-8b 75% fp16 16"; do for m in base paired; do run $m $c; done; done; done
cat $LOG/ab.txt
el ab
T="gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__inst_issued.avg.pct_of_peak_sustained_active,launch__block_size,launch__grid_size"
for m in base nr paired; do bin=$BB/bench/decode_bench; env=X=0; [ $m = nr ] && bin=$BN/bench/decode_bench; [ $m = paired ] && { bin=$BP/bench/decode_bench; env=STARKV_PAIRED_FOLD=1; }
  env $env timeout 60 ncu --clock-control none --kernel-name regex:"fold_scores" --launch-skip 1 --launch-count 1 --metrics "$T" \
    $bin --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 2 --out /tmp/z.jsonl > $LOG/ncu_fold_$m.txt 2>&1
  echo "== fold $m"; grep -E "gpu__time|dram__|inst_issued|launch__" $LOG/ncu_fold_$m.txt | cut -c1-110
done
el fold
STARKV_PAIRED_FOLD=1 timeout 150 compute-sanitizer --tool memcheck $BP/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaFoldSmallTile*' > $LOG/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -3 $LOG/memcheck.txt
STARKV_PAIRED_FOLD=1 timeout 150 compute-sanitizer --tool racecheck $BP/tests/starkv_gpu_tests --gtest_filter='*CudaFoldWgmma*:*CudaFoldSmallTile*' > $LOG/racecheck.txt 2>&1; echo "racecheck rc=$?"; tail -3 $LOG/racecheck.txt
el sanitizers
