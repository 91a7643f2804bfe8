#!/usr/bin/env python3
"""Summarizes an ncu source-counter profile of one kernel, per SASS opcode and per source line.

ncu's own source view of the CUDA lines came back without metrics on the GPU machine, so this
reads the SASS view and maps it to source lines itself:

  on the GPU machine (build with -lineinfo, as CMakeLists.txt does):
    ncu --kernel-name regex:fold --launch-skip 3 --launch-count 1 --section SourceCounters \
        --export fold -f decode_bench --quick --reps 1 --shape llama3-8b --comp 75% --bits fp16
    ncu --import fold.ncu-rep --page source --print-source sass --csv > fold_sass.csv
  here (the same compiler and flags give the same SASS; the script checks every opcode):
    nvcc ... -lineinfo -gencode arch=compute_90,code=sm_90 -cubin kernels/fold_scores.cu -o f.cubin
    nvdisasm -g -c f.cubin > f.sass
    bench/ncu_sass_profile.py fold_sass.csv --lines f.sass --function ILi16ELi64ELb1ELb0ELi16EE
  or, on the GPU machine, every cubin of the build at once (the function is then found by its
  machine code):
    cuobjdump -xelf all libstarkv.so; for f in *.cubin; do nvdisasm -g -c $f; done > all.sass
    bench/ncu_sass_profile.py fold_sass.csv --lines all.sass --dump fold_lines.tsv

Prints the share of executed warp instructions and of warp stall samples per opcode, and with
--lines per source line (file:line), the largest first.
"""
import argparse
import collections
import csv
import os
import re


def read_profile(path):
    """(SASS text, warp instructions executed, stall samples) per instruction, in address order."""
    rows = list(csv.reader(open(path, errors="replace")))
    header_at = next(i for i, r in enumerate(rows) if "Address" in r and "Source" in r)
    header = rows[header_at]
    src = header.index("Source")
    executed = header.index("Instructions Executed")
    stalls = header.index("Warp Stall Sampling (All Samples)")

    def number(text):
        try:
            return float(text.replace(",", ""))
        except ValueError:
            return 0.0

    return [(r[src].strip(), number(r[executed]), number(r[stalls]))
            for r in rows[header_at + 1:] if len(r) > stalls]


def opcode(sass):
    sass = re.sub(r"^@!?U?P\S+\s+", "", sass)  # predicate
    return sass.split(" ")[0].split(".")[0] if sass else "?"


def read_functions(path):
    """[(function header, [(SASS text, (file, line)), ...]), ...] of an nvdisasm -g listing (of one
    cubin or of several, concatenated: a header may then come more than once)."""
    functions, out, where = [], None, None
    for text in open(path, errors="replace"):
        if text.startswith("//---------------------"):
            out = []
            functions.append((text.strip(), out))
            continue
        if out is None:
            continue
        m = re.match(r'\s*//## File "(.*)", line (\d+)', text)
        if m:
            where = (m.group(1), int(m.group(2)))
            continue
        m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?);", text)
        if m:
            out.append((m.group(2).strip(), where))
    return functions


def read_lines(path, function, profile):
    """The instructions of the function whose name holds `function`; with an empty `function`, of
    the one function whose opcodes are the profile's, instruction for instruction."""
    functions = read_functions(path)
    if function:
        return next((f for name, f in functions if function in name), [])
    same = [f for _, f in functions
            if len(f) == len(profile)
            and all(opcode(a[0]) == opcode(b[0]) for a, b in zip(f, profile))]
    if len(same) != 1:
        raise SystemExit(f"{len(same)} functions of the listing match the profile's machine code")
    return same[0]


def source_text(where, cache={}):
    path, line = where
    if path not in cache:
        try:
            cache[path] = open(path, errors="replace").read().split("\n")
        except OSError:
            cache[path] = []
    lines = cache[path]
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def print_shares(title, executed, stalls, label, top):
    total_e, total_s = sum(executed.values()) or 1, sum(stalls.values()) or 1
    print(f"{title}: instr%  stall%")
    for key, _ in sorted(stalls.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {label(key):40s} {100 * executed[key] / total_e:6.2f} {100 * stalls[key] / total_s:6.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv", help="ncu --page source --print-source sass --csv output")
    ap.add_argument("--lines", help="nvdisasm -g output of the same kernel, built locally")
    ap.add_argument("--function", default="",
                    help="part of the kernel's mangled name (default: the one function of the "
                    "listing whose machine code is the profile's)")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--dump", help="with --lines: write each instruction's source line, warp "
                    "instructions and stall samples to this file (tab-separated)")
    args = ap.parse_args()

    profile = read_profile(args.csv)
    executed, stalls = collections.Counter(), collections.Counter()
    for sass, e, s in profile:
        executed[opcode(sass)] += e
        stalls[opcode(sass)] += s
    print(f"{len(profile)} instructions, {sum(executed.values()):.4g} warp instructions executed, "
          f"{sum(stalls.values()):.4g} stall samples")
    print_shares("per opcode (by stall samples)", executed, stalls, str, args.top)

    if args.lines:
        local = read_lines(args.lines, args.function, profile)
        if len(local) != len(profile):
            raise SystemExit(f"{len(local)} local instructions against {len(profile)} profiled: "
                             "not the same machine code")
        differ = sum(opcode(a[0]) != opcode(b[0]) for a, b in zip(local, profile))
        if differ:
            raise SystemExit(f"{differ} opcodes differ: not the same machine code")
        if args.dump:
            with open(args.dump, "w") as f:
                for (sass, where), (_, e, s) in zip(local, profile):
                    line = f"{os.path.basename(where[0])}:{where[1]}" if where else "?"
                    f.write(f"{line}\t{e:.0f}\t{s:.0f}\t{sass}\n")
        executed, stalls = collections.Counter(), collections.Counter()
        for (sass, where), (_, e, s) in zip(local, profile):
            executed[where] += e
            stalls[where] += s

        def label(where):
            if where is None:
                return "?"
            return f"{os.path.basename(where[0])}:{where[1]}  {source_text(where)[:60]}"

        print_shares("per source line (by stall samples)", executed, stalls, label, args.top)


if __name__ == "__main__":
    main()
