#!/bin/sh
# golden_p0.sh — protocol P0 of ../shared/PROTOCOLS.md: the 10-step
# deterministic distillation of L0246 from teacher-19m. Every step's loss
# must be within 1e-4 relative of PyTorch's float64 run (listed there), and
# the gradient norm before clipping within 1e-4 too.
. tests/lib.sh
M=../shared/models/teacher-19m
need bench/p0.yaml $M/config.json $M/model.safetensors $M/tokenizer.json ../shared/data/corpus/validation.jsonl ||
    { summary; exit 1; }
T=$(mktemp -d /tmp/nx_p0.XXXXXX)
trap 'rm -rf "$T"' EXIT
# NEXUS_DEVICE=cuda runs the same trajectory on the GPU (a build with CUDA)
if ! $NEXUS distill bench/p0.yaml --set output.dir=$T/out --set data.validation=null \
    --set device=${NEXUS_DEVICE:-cpu} > $T/log 2>&1; then
    bad "nexus distill bench/p0.yaml"; cat $T/log; summary; exit 1
fi
ref="0 3.199752417 3.02956
1 3.301396120 3.48095
2 3.065374790 3.02151
3 3.262961649 2.71501
4 3.100533485 2.53240
5 3.219673492 2.30799
6 3.313476472 2.23225
7 3.117483039 2.14124
8 3.306430112 2.38558
9 3.334578400 2.15810"
got=$(grep -v '"eval"' $T/out/metrics.jsonl | sed -E 's/.*"step": ([0-9]+), "loss": ([^,]+),.*"grad_norm": ([^,]+),.*/\1 \2 \3/')
while read -r step loss gn; do
    line=$(echo "$got" | awk -v s=$step '$1 == s')
    if [ -z "$line" ]; then bad "step $step missing"; continue; fi
    v=$(echo "$line" | awk -v l=$loss -v g=$gn '{ e = ($2 - l) / l; if (e < 0) e = -e;
        f = ($3 - g) / g; if (f < 0) f = -f; printf "%s %.2e %.2e", (e <= 1e-4 && f <= 1e-4) ? "ok" : "no", e, f }')
    case "$v" in
        ok*) ok "P0 step $step loss $(echo $line | cut -d' ' -f2) (rel err ${v#ok })" ;;
        *) bad "P0 step $step: nexus $line vs PyTorch $loss $gn (${v#no })" ;;
    esac
done <<EOF2
$ref
EOF2
summary
