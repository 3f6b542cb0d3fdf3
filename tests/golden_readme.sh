#!/bin/sh
# golden_readme.sh — the README's "A run of your own" on teacher-19m: its
# command lines are taken from README.md as written, with the placeholders
# pointed at ../shared (the teacher, a 300-document slice of the corpus) and
# a scratch data/ directory. The distill lines get a test-sized run added by
# --set (a 2-layer student of width 64 instead of the 1.5 B preset, 4 steps
# of 2 x 64 tokens, checkpoints and output in the scratch directory); the
# paths, the preset config, the default data.validation and --resume are
# the README's own.
. tests/lib.sh
S=../shared
need $S/models/teacher-19m/config.json $S/data/corpus/train.jsonl.gz README.md || { summary; exit 1; }
T=$(mktemp -d /tmp/nx_golden_readme_XXXXXX)
trap 'rm -rf "$T"' EXIT
TEACHER=$(cd $S/models/teacher-19m && pwd)
zcat $S/data/corpus/train.jsonl.gz | head -300 | gzip > "$T/corpus.jsonl.gz"
# the indented `nexus ...` lines of the section
sed -n '/^## A run of your own/,/^## /p' README.md | sed -n 's/^    \(nexus .*\)$/\1/p' > "$T/recipe"
n=$(wc -l < "$T/recipe")
if [ "$n" = 3 ]; then ok "README recipe: 3 command lines"; else bad "README recipe: $n command lines, expected 3"; fi
SMALL="--set student.hidden_size=64 --set student.num_layers=2 --set student.num_heads=2 --set student.num_kv_heads=1 \
--set student.head_dim=32 --set student.intermediate_size=128 --set data.seq_len=64 --set data.batch_size=2 \
--set data.grad_accum=1 --set optimizer.tokens=512 --set optimizer.warmup_steps=1 --set eval.every=2 \
--set eval.tokens=256 --set checkpoint.every=2 --set output.dir=$T/run --set log.every=1 --set threads=2"
i=0
while IFS= read -r line; do
    i=$((i + 1))
    cmd=$(printf '%s' "$line" | sed "s#/path/to/teacher#$TEACHER#g; s#corpus.jsonl.gz#$T/corpus.jsonl.gz#g; s# data/# $T/data/#g; s#=data/#=$T/data/#g; s#^nexus #$NEXUS #")
    case "$line" in *distill*) cmd="$cmd $SMALL" ;; esac
    if eval "$cmd" > "$T/out$i" 2>&1; then ok "line $i: $line"
    else bad "line $i: $line"; tail -5 "$T/out$i"; fi
done < "$T/recipe"
[ -f "$T/data/train.bin" ] && [ -f "$T/data/val.bin" ] && ok "prepare-data wrote train.bin and val.bin" ||
    bad "prepare-data: no train.bin / val.bin in $T/data"
grep -q '"eval' "$T/run/metrics.jsonl" 2>/dev/null || grep -q 'ppl' "$T/run/metrics.jsonl" 2>/dev/null &&
    ok "evaluated on the default validation (val.bin)" || bad "no evaluation in $T/run/metrics.jsonl"
[ -f "$T/run/model.safetensors" ] && [ -f "$T/run/config.json" ] && ok "student written" || bad "no student in $T/run"
grep -q "no steps left\|resum" "$T/out3" && ok "--resume continued from the run's checkpoint" ||
    { bad "--resume: no sign of a resumed run"; tail -5 "$T/out3"; }
summary
