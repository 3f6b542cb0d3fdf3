#!/bin/sh
# gpu_compare.sh — nexus against PyTorch on one GPU, in one run: the KD
# step of teacher-19m -> S7M at 64 x 256 and of the 1.1 B -> 0.2 B pair at
# 8 x 1024 (bench/torch_kd_step.py: bf16 autocast, eager and torch.compile),
# and decode of the 1.1 B model at batch 1 and BATCH (default 32) against
# transformers' generate with a static cache (bench/torch_decode.py). nexus
# runs in bf16 precision, once as built and once with its fast paths off
# (NEXUS_CUDA_FLASH=0 NEXUS_CUDA_BF16_WEIGHTS=0 NEXUS_CUDA_GRAPHS=0). Prints
# every figure and the ratios nexus / torch.compile and nexus / transformers.
# A step's "nexus" figure is the run's own (every step, the first included),
# "steady" the rate after the first WARM steps (default 3), which is how
# torch_kd_step.py measures PyTorch (after 3 eager or 8 compiled warm-up
# steps).
#
#   NEXUS=build-cuda/nexus sh bench/gpu_compare.sh
#
# CASES picks among "s7m 1b decode" (default: all). The random 1.1 B teacher
# is written once to T1B (default /tmp/nexus-t1b) by torch_kd_step.py, with
# teacher-19m's tokenizer beside it. Needs ../shared (teacher-19m, corpus),
# a CUDA build of nexus, PyTorch and transformers (PY, default python3).
# Each PyTorch run is bounded by TORCH_TIMEOUT seconds (default 300).
set -u
NEXUS=${NEXUS:-build-cuda/nexus}
PY=${PY:-python3}
T1B=${T1B:-/tmp/nexus-t1b}
BATCH=${BATCH:-32}
TO=${TORCH_TIMEOUT:-300}
M=../shared/models/teacher-19m
out=$(mktemp -d /tmp/gpu_compare.XXXXXX)
trap 'rm -rf "$out"' EXIT

# tokens/s of a nexus distill log ("trained N steps, M tokens, X tokens/s ...")
nexus_tps() { sed -n 's/^trained .* tokens, \([0-9]*\) tokens\/s.*/\1/p' "$1" | tail -1; }
# tokens/s of a run's steps after the first WARM (default 3, as PyTorch's
# eager warm-up) from its metrics.jsonl (tokens, step_s): the steady rate,
# as torch_kd_step.py measures PyTorch's after its warm-up steps
steady_tps() {
    "$PY" -c 'import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if "\"step_s\"" in l]
w = max(int(sys.argv[2]), 1)
t = sum(x["step_s"] for x in r[w:])
print(round((r[-1]["tokens"] - r[w - 1]["tokens"]) / t) if t > 0 else "")' "$1" "${WARM:-3}" 2> /dev/null
}
# a field of a JSON line printed by the torch scripts
field() { sed -n "s/.*\"$2\": \\([0-9.]*\\).*/\\1/p" "$1" | head -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else printf "-" }'; }

distill() { # name config overrides...
    name=$1 cfg=$2
    shift 2
    "$NEXUS" distill "$cfg" --set output.dir="$out/$name" --set checkpoint.dir="$out/$name-ck" "$@" > "$out/$name.log" 2>&1 ||
        { echo "nexus distill $cfg failed:"; tail -5 "$out/$name.log"; }
}

torch_step() { # name case [args]
    name=$1
    shift
    timeout "$TO" "$PY" bench/torch_kd_step.py "$@" > "$out/$name.json" 2> "$out/$name.err" ||
        { echo "torch_kd_step.py $* failed or timed out:"; tail -3 "$out/$name.err"; }
    grep '"mode": "eager"' "$out/$name.json" > "$out/$name.eager" || true
    grep '"mode": "compiled"' "$out/$name.json" > "$out/$name.compiled" || true
}

# model FLOPs utilisation of a rate: torch_kd_step.py's, which counts the
# same step's FLOPs per token (2·teacher + 6·student matrix parameters,
# attention) against the H200's bf16 dense peak, scaled by the rates
mfu() { # tokens/s, torch tokens/s, torch mfu
    awk -v a="$1" -v b="$2" -v m="$3" 'BEGIN { if (a > 0 && b > 0 && m > 0) printf "%.1f%%", 100 * m * a / b; else printf "-" }'
}

step_row() { # label run-name torch-name
    n=$(nexus_tps "$out/$2.log") s=$(steady_tps "$out/$2/metrics.jsonl") o=$(nexus_tps "$out/$2-off.log")
    e=$(field "$out/$3.eager" tokens_per_s) c=$(field "$out/$3.compiled" tokens_per_s)
    me=$(field "$out/$3.eager" mfu) mc=$(field "$out/$3.compiled" mfu)
    printf "%-28s nexus %9s  steady %9s  off %9s  eager %9s  compiled %9s  steady/compiled %s  nexus/compiled %s  steady/eager %s\n" \
        "$1" "${n:--}" "${s:--}" "${o:--}" "${e:--}" "${c:--}" "$(ratio "$s" "$c")" "$(ratio "$n" "$c")" "$(ratio "$s" "$e")"
    printf "%-28s MFU: nexus steady %s, nexus %s, eager %s, compiled %s\n" "" "$(mfu "$s" "$c" "$mc")" \
        "$(mfu "$n" "$c" "$mc")" "$(mfu "$e" "$e" "$me")" "$(mfu "$c" "$c" "$mc")"
}

need_t1b() {
    [ -f "$T1B/model.safetensors" ] && return 0
    timeout "$TO" "$PY" bench/torch_kd_step.py 1b --save-teacher "$T1B" --modes "" > /dev/null 2> "$out/t1b.err" ||
        { echo "could not write the 1.1 B teacher:"; tail -3 "$out/t1b.err"; return 1; }
    cp $M/tokenizer.json $M/tokenizer_config.json "$T1B/"
}

[ -x "$NEXUS" ] || { echo "gpu_compare: no nexus at $NEXUS (build with make CUDA=1)"; exit 1; }
[ -d $M ] || { echo "gpu_compare: needs ../shared (teacher-19m)"; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2> /dev/null
date -u
for c in ${CASES:-s7m 1b decode}; do
    case $c in
    s7m)
        set -- bench/p1-s7m-kd.yaml --set data.batch_size=64 --set device=cuda --set precision=bf16 \
            --set optimizer.steps=300
        distill s7m "$@"
        NEXUS_CUDA_FLASH=0 NEXUS_CUDA_BF16_WEIGHTS=0 NEXUS_CUDA_GRAPHS=0 distill s7m-off "$@"
        torch_step p2 p2 --steps 100 --teacher $M
        step_row "teacher-19m -> S7M 64x256" s7m p2
        ;;
    1b)
        need_t1b || continue
        distill 1b bench/kd-1b.yaml --set teacher.path="$T1B"
        NEXUS_CUDA_FLASH=0 NEXUS_CUDA_BF16_WEIGHTS=0 NEXUS_CUDA_GRAPHS=0 distill 1b-off bench/kd-1b.yaml --set teacher.path="$T1B"
        torch_step 1b 1b --steps 20
        step_row "1.1B -> 0.2B 8x1024" 1b 1b
        ;;
    decode)
        need_t1b || continue
        bench() { # name: nexus benchmark's JSON of the 1.1 B model at batch 1 and BATCH
            "$NEXUS" benchmark "$T1B" --data ../shared/data/corpus/validation.jsonl --max-windows 4 --device cuda \
                --precision bf16 --batch "$BATCH" --json > "$out/$1.json" 2> "$out/$1.err" ||
                { echo "nexus benchmark failed:"; tail -3 "$out/$1.err"; }
        }
        bench dec
        NEXUS_CUDA_GRAPHS=0 bench dec-off
        timeout "$TO" "$PY" bench/torch_decode.py "$T1B" --batches "1,$BATCH" > "$out/tdec.json" 2> "$out/tdec.err" ||
            { echo "torch_decode.py failed or timed out:"; tail -3 "$out/tdec.err"; }
        decode() { "$PY" -c 'import json, sys
m = json.load(open(sys.argv[1]))["models"][0]
print(m["decode_tokens_per_s"]["median"], m["decode_batch_tokens_per_s"]["median"])' "$1" 2> /dev/null; }
        set -- $(decode "$out/dec-off.json")
        o1=${1:-} ob=${2:-}
        set -- $(decode "$out/dec.json")
        n1=${1:-} nb=${2:-}
        t1=$(grep '"batch": 1,' "$out/tdec.json" | sed -n 's/.*"decode_tokens_per_s": \([0-9.]*\).*/\1/p')
        tb=$(grep "\"batch\": $BATCH," "$out/tdec.json" | sed -n 's/.*"decode_tokens_per_s": \([0-9.]*\).*/\1/p')
        printf "%-28s nexus %9s  graphs off %9s  transformers %9s  %s\n" "decode 1.1B batch 1" "${n1:--}" "${o1:--}" \
            "${t1:--}" "$(ratio "$n1" "$t1")"
        printf "%-28s nexus %9s  graphs off %9s  transformers %9s  %s\n" "decode 1.1B batch $BATCH" "${nb:--}" \
            "${ob:--}" "${tb:--}" "$(ratio "$nb" "$tb")"
        ;;
    *) echo "gpu_compare: unknown case '$c' (s7m, 1b, decode)" ;;
    esac
done
date -u
