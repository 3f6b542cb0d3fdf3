#!/bin/sh
# llama_compare.sh — nexus against llama.cpp on the same GGUF files, in one
# run on this machine: batch-1 decode of 128 tokens and prefill of a
# 256-token prompt (llama-bench -n 128 / -p 256), THREADS threads
# (default 2), for teacher-19m in F32, Q8_0, Q4_K_M and Q4_0 as nexus
# writes them (nexus quantize, round to nearest, then nexus export; built
# once under build/llama-compare/), plus any GGUF named in GGUFS="a.gguf
# b.gguf", or only those of FILES="f32 q8_0 ..." (the default: all four).
# Each round runs nexus benchmark and llama-bench (REPS repetitions each,
# default 2) on every file, alternating, and prints their figures; then the
# best of ROUNDS rounds (default 3) of each is printed with the ratio
# nexus ÷ llama.cpp.
#
# llama.cpp is built outside the project: point LLAMA_CPP at the directory
# that holds its llama-bench (e.g. a build of ikawrakow/ik_llama.cpp);
# without it this prints a line and exits 0. Needs ../shared (teacher-19m);
# run from the repo root with NEXUS (default ./nexus) built.
set -e
NEXUS=${NEXUS:-./nexus}
rounds=${ROUNDS:-3}
threads=${THREADS:-2}
reps=${REPS:-2}
if [ -z "$LLAMA_CPP" ] || [ ! -x "$LLAMA_CPP/llama-bench" ]; then
    echo "llama.cpp: skipped (set LLAMA_CPP to the directory holding llama-bench)"; exit 0
fi
if [ ! -d ../shared/models/teacher-19m ]; then echo "llama.cpp: skipped (needs ../shared)"; exit 0; fi
dir=build/llama-compare
mkdir -p $dir
T=../shared/models/teacher-19m
[ -f $dir/f32.gguf ] || $NEXUS export $T --format gguf --dtype f32 --out $dir/f32.gguf > /dev/null
for q in q8_0 q4_k_m q4_0; do
    if [ ! -f $dir/$q.gguf ]; then
        rm -rf $dir/$q
        $NEXUS quantize $T --type $q --out $dir/$q --quiet
        $NEXUS export $dir/$q --format gguf --out $dir/$q.gguf > /dev/null
        rm -rf $dir/$q
    fi
done
files=""
for q in ${FILES:-f32 q8_0 q4_k_m q4_0}; do files="$files $dir/$q.gguf"; done
files="$files $GGUFS"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }
i=0
while [ $i -lt "$rounds" ]; do
    k=0
    for f in $files; do
        $NEXUS benchmark "$f" --threads "$threads" --reps "$reps" --batch 1 --prompt-tokens 256 --decode-tokens 128 --json \
            > "$out/n" 2> /dev/null
        nd=$(jq '.models[0].decode_tokens_per_s.max' "$out/n")
        np=$(jq '.models[0].prefill_tokens_per_s.max' "$out/n")
        "$LLAMA_CPP/llama-bench" -m "$f" -t "$threads" -p 256 -n 128 -r "$reps" -o json > "$out/l" 2> /dev/null
        ld=$(jq '[.[] | select(.n_gen > 0)][0].avg_ts' "$out/l")
        lp=$(jq '[.[] | select(.n_prompt > 0)][0].avg_ts' "$out/l")
        echo "round $((i + 1)) $(basename "$f"): nexus decode $nd prefill $np, llama.cpp decode $ld prefill $lp" \
             "(load $(cut -d' ' -f1 /proc/loadavg))"
        eval "nd_$k=\$(best \${nd_$k:-0} $nd) np_$k=\$(best \${np_$k:-0} $np)"
        eval "ld_$k=\$(best \${ld_$k:-0} $ld) lp_$k=\$(best \${lp_$k:-0} $lp)"
        k=$((k + 1))
    done
    i=$((i + 1))
done
echo "nexus vs llama.cpp ($LLAMA_CPP), same GGUF files, $threads threads, best of $rounds alternating rounds," \
     "tokens/s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-28s %9s %9s %7s   %9s %9s %7s\n' file "dec nexus" llama ratio "pp nexus" llama ratio
k=0
for f in $files; do
    eval "nd=\$nd_$k np=\$np_$k ld=\$ld_$k lp=\$lp_$k"
    awk -v f="$(basename "$f")" -v nd="$nd" -v ld="$ld" -v np="$np" -v lp="$lp" 'BEGIN {
        printf "%-28s %9.1f %9.1f %7.3f   %9.1f %9.1f %7.3f\n", f, nd, ld, (ld > 0 ? nd / ld : 0), np, lp, (lp > 0 ? np / lp : 0) }'
    k=$((k + 1))
done
