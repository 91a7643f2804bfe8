#!/usr/bin/env bash
# Session 28 call 4 (main 0ab265f, kernels as ee6bbcf): where the quantized layers' extra instructions go. ncu source
# counters (per SASS instruction, mapped to source lines) of the fold and the value kernel, Llama-3-like b16 x 32K 75%,
# 4/3 against fp16 (call 2: fold 153.4 M vs 107.7 M warp instructions, value kernel 66.4 M vs 46.7 M).
set -o pipefail
B=/tmp/b4; LOG=/tmp/logs4; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); left() { [ $(( $(date +%s) - t0 )) -lt $1 ]; }; el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp "$0" $LOG/script.sh; cd $LOG && tar czf $OUT/logs4.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF -DSTARKV_BUILD_SAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null 2>&1
ninja -C $B -j16 decode_bench > $LOG/build.txt 2>&1 || { grep error -A3 $LOG/build.txt | head; exit 1; }
rm -f $LOG/build.txt; el built
DB=$B/bench/decode_bench
mkdir -p $LOG/sass; ( cd $LOG/sass && for f in $DB $(find $B -maxdepth 2 -name "libstarkv*.so*" -type f); do cuobjdump -xelf all $f > /dev/null 2>&1; done; for f in *.cubin; do nvdisasm -g -c $f; done > $LOG/all.sass 2>/dev/null; rm -f *.cubin ); ls -la $LOG/all.sass
for c in "fold_scores 4/3" "fold_scores fp16" "decode_values 4/3" "decode_values fp16"; do set -- $c; n=$1_${2/\//-}
  left 500 && timeout 100 ncu --kernel-name regex:$1 --launch-skip 2 --launch-count 1 --section SourceCounters --section WarpStateStats --page source --print-source sass --csv \
    $DB --shape llama3-8b --comp 75% --bits $2 --batch 16 --context 32768 --reps 1 --out /tmp/n.jsonl > $LOG/$n.csv 2> $LOG/ncu_src_$n.err
  python3 bench/ncu_sass_profile.py $LOG/$n.csv --lines $LOG/all.sass --dump $LOG/${n}_lines.tsv --top 45 > $LOG/${n}_profile.txt 2>&1; echo "== $n"; head -30 $LOG/${n}_profile.txt
  gzip $LOG/$n.csv $LOG/${n}_lines.tsv
  el $n
done
rm -f $LOG/all.sass
