#!/usr/bin/env bash
# Session 25 call 1. Trees: base = main f18f262's kernels/ and src/cuda/; new = the working tree: main + the wip test
# (CudaSplitPath also attends six queries) + the combine loading 8 up-matrix rows before using them.
# (1) whole GPU suite; which combine instances the split-path tests launch (ncu kernel names).
# (2) short contexts, where Llama-3-like b16 is slower than dense: the step against forced item sizes
#     (STARKV_SPLIT_TOKENS) at b16 x 4K/16K and b1 x 32K; per-kernel durations of one step (ncu, no cache control).
# (3) the fold's stall samples per source line at b16 x 4K and b16 x 32K (Llama-3-like 75% fp16): prologue vs tile loop.
set -o pipefail
B=/tmp/b-base; B1=/tmp/b-new; S0=/tmp/src-base; LOG=/tmp/logs1; rm -rf $LOG $S0; mkdir -p $LOG $S0
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs1.tgz .' EXIT
CFG="-G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
tar cf - --exclude=./.git --exclude=./build --exclude=./.device . | tar xf - -C $S0
rm -rf $S0/kernels $S0/src/cuda && tar xf .device/base_kernels_srccuda_f18f262.tar -C $S0
cmake -S $S0 -B $B $CFG > $LOG/cfg0.txt 2>&1
cmake -S . -B $B1 $CFG > $LOG/cfg1.txt 2>&1
( ninja -C $B -j6 decode_bench > $LOG/build0.txt 2>&1; echo "b0 rc=$?" ) &
( ninja -C $B1 -j10 decode_bench starkv_gpu_tests > $LOG/build1.txt 2>&1; echo "b1 rc=$?" ) &
wait
grep -E " error" -A3 $LOG/build*.txt | head -30; rm -f $LOG/build*.txt $LOG/cfg*.txt
el built
timeout 90 $B1/tests/starkv_gpu_tests > $LOG/tests.txt 2>&1; echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $LOG/tests.txt | head -20
grep -E "CudaSplitPath" $LOG/tests.txt | grep -E "OK|FAILED" | head
el tests
timeout 90 ncu --kernel-name regex:"combine_split|merge_split" --metrics gpu__time_duration.sum $B1/tests/starkv_gpu_tests --gtest_filter='*CudaSplitPath*' > $LOG/ncu_split_path_kernels.txt 2>&1
grep -oE "(combine|merge)_split_values_kernel<[0-9]+>" $LOG/ncu_split_path_kernels.txt | sort | uniq -c
el names
DB=$B/bench/decode_bench
run() { local m=$1 bin=$B/bench/decode_bench; shift; [ $m = new ] && bin=$B1/bench/decode_bench
  timeout 30 $bin --shape $1 --comp 75% --bits $2 --batch $3 --context $4 --reps 20 --out /tmp/ab.jsonl 2>&1 | grep -v "^#" | grep -v shape | grep -v append | sed "s|^|$m: |" >> $LOG/ab.txt; }
: > $LOG/ab.txt
for r in 1 2; do
  for c in "llama2-7b fp16 1 32768" "llama2-7b fp16 1 4096" "llama3-8b fp16 1 32768" "llama3-8b 4/3 1 4096" "llama2-7b fp16 4 32768" "llama2-7b fp16 16 32768" "llama3-8b fp16 16 4096"; do for m in base new; do left 200 && run $m $c; done; done
done
cat $LOG/ab.txt
el ab
for c in "llama3-8b fp16 16 4096" "llama3-8b 4/3 16 4096" "llama3-8b fp16 16 16384" "llama2-7b fp16 16 4096" "llama3-8b fp16 1 32768" "llama3-8b fp16 1 4096"; do set -- $c
  for s in 0 64 128 256 512 1024 2048; do
    left 300 && echo "split=$s $(STARKV_SPLIT_TOKENS=$s timeout 30 $DB --shape $1 --comp 75% --bits $2 --batch $3 --context $4 --reps 20 --out /tmp/x.jsonl 2>&1 | grep -v '^#' | grep -v shape | grep -v append)"
  done
done 2>&1 | tee $LOG/split_sweep.txt
el sweep
M="gpu__time_duration.sum,launch__grid_size,launch__block_size,sm__warps_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__inst_executed.sum,sm__cycles_active.avg"
for c in "llama3-8b fp16 16 4096" "llama3-8b fp16 1 4096" "llama3-8b fp16 1 32768" "llama2-7b fp16 1 4096" "llama2-7b fp16 1 32768"; do set -- $c; f=$LOG/ncu_step_${1}_${2/\//}_b$3_$4.txt
  left 400 && timeout 60 ncu --cache-control none --clock-control none --kernel-name regex:"fold_scores|values_kernel|split_values" --launch-skip 4 --launch-count 4 --metrics $M $DB --shape $1 --comp 75% --bits $2 --batch $3 --context $4 --reps 1 --out /tmp/z.jsonl > $f 2>&1
  echo "== $c"; grep -E "^  [a-zA-Z_:<>]|gpu__time|launch__grid|dram__thr|inst_exec" $f | tail -24
done 2>&1 | tee $LOG/ncu_step_summary.txt
el ncu-steps
mkdir -p $LOG/sass; ( cd $LOG/sass && for f in $DB $(find $B -maxdepth 2 -name "libstarkv*.so*" -type f); do cuobjdump -xelf all $f > /dev/null 2>&1; done; for f in *.cubin; do nvdisasm -g -c $f; done > $LOG/all.sass 2>/dev/null; rm -f *.cubin ); ls -la $LOG/all.sass
for c in "fold_scores 16 4096" "fold_scores 16 32768" "fold_scores 1 4096" "decode_values 1 4096" "merge_split 1 4096" "combine_split 1 4096" "combine_split 1 32768"; do set -- $c; n=$1_b$2_$3
  left 540 && timeout 90 ncu --kernel-name regex:$1 --launch-skip 2 --launch-count 1 --section SourceCounters --section WarpStateStats --page source --print-source sass --csv \
    $DB --shape llama3-8b --comp 75% --bits fp16 --batch $2 --context $3 --reps 1 --out /tmp/n.jsonl > $LOG/$n.csv 2> $LOG/ncu_src_$n.err
  python3 bench/ncu_sass_profile.py $LOG/$n.csv --lines $LOG/all.sass --dump $LOG/${n}_lines.tsv --top 40 > $LOG/${n}_profile.txt 2>&1; echo "== $n"; head -3 $LOG/${n}_profile.txt
  gzip $LOG/$n.csv
done
rm -f $LOG/all.sass
el done
