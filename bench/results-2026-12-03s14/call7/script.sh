#!/usr/bin/env bash
# Session 14, call 7: which instructions of the Llama-2-like fp16 value kernel read the extra L2 sectors (1.5x its DRAM
# bytes, call 5): ncu source counters per SASS instruction.
set -o pipefail
B=/tmp/starkv-build; LOG=/tmp/logs; rm -rf $LOG; mkdir -p $LOG
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'cp .device/c57.sh $LOG/script.sh; cd $LOG && tar czf $OUT/logs.tgz .' EXIT
cmake -S . -B $B -G Ninja -DSTARKV_CUDA=ON -DSTARKV_BINDINGS=OFF -DSTARKV_BUILD_TOOLS=OFF \
  -DSTARKV_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > $LOG/cfg.txt 2>&1
ninja -C $B -j16 decode_bench > $LOG/build.txt 2>&1 || { grep -E "error" -A3 $LOG/build.txt | head -60; exit 1; }
el built
timeout 200 ncu --kernel-name regex:decode_values --launch-skip 3 --launch-count 1 --section SourceCounters --section MemoryWorkloadAnalysis_Tables --page source --print-source sass --csv \
  $B/bench/decode_bench --shape llama2-7b --comp 75% --bits fp16 --batch 16 --context 32768 --reps 1 --out /tmp/z.jsonl > $LOG/values_sass.csv 2> $LOG/ncu_err.txt
el ncu
python3 - $LOG/values_sass.csv <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], errors="replace")))
h = next(i for i, r in enumerate(rows) if "Address" in r and "Source" in r)
hd = rows[h]
print([c for c in hd])
cols = [i for i, c in enumerate(hd) if "Sector" in c or "Request" in c or "L2" in c]
def num(t):
    try: return float(t.replace(",", ""))
    except ValueError: return 0.0
body = [r for r in rows[h+1:] if len(r) == len(hd)]
for ci in cols:
    tot = sum(num(r[ci]) for r in body)
    print("==", hd[ci], "total", tot)
    for r in sorted(body, key=lambda r: -num(r[ci]))[:8]:
        if num(r[ci]) > 0: print("  ", r[hd.index("Address")], r[hd.index("Source")][:70], num(r[ci]))
PY
