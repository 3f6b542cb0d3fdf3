#!/bin/sh
# gpu_check.sh — the CUDA backend's exactness and quality on one GPU, in
# one go, for a device call before any speed figure is taken (then
# bench/gpu_compare.sh): the op-parity test (every CUDA op against the
# reference, fp32 and the bf16 paths), whole models' bf16 backward near the
# CPU's f32 one (test_model), generation (KV cache, replayed
# decode steps against op-by-op ones), the golden cases on the GPU in fp32,
# protocol P0 on the GPU, protocol P2 in bf16 (val ppl ≤ 98.2, agreement
# ≥ 0.61), greedy text on the GPU in bf16 against the CPU, and the same P2
# steps with recompute: true (equal losses). Prints a line per check and
# exits 1 if any failed.
#
#   BUILD=build-cuda sh bench/gpu_check.sh
#
# BUILD holds nexus and tests/ of a `make CUDA=1` build (default
# build-cuda). Needs ../shared (teacher-19m, golden, corpus).
set -u
BUILD=${BUILD:-build-cuda}
NEXUS=${NEXUS:-$BUILD/nexus}
M=../shared/models/teacher-19m
out=$(mktemp -d /tmp/gpu_check.XXXXXX)
trap 'rm -rf "$out"' EXIT
fails=0
check() { # name status detail
    if [ "$2" = ok ]; then echo "ok   $1  $3"; else echo "FAIL $1  $3"; fails=$((fails + 1)); fi
}
tail_of() { tail -n 1 "$1" | tr -s ' '; }

[ -x "$NEXUS" ] || { echo "gpu_check: no nexus at $NEXUS (make CUDA=1)"; exit 1; }
[ -d $M ] || { echo "gpu_check: needs ../shared (teacher-19m)"; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2> /dev/null
date -u
# test_backend again with the residual adds in passes of their own (the
# path taken where cuBLASLt has no algorithm for a product) and flash
# attention's forward on mma.sync (the path of GPUs other than sm_90)
NEXUS_CUDA_LT=0 NEXUS_CUDA_WGMMA=0 "$BUILD/tests/test_backend" > "$out/test_backend_nolt.log" 2>&1 && s=ok || s=fail
grep -q "^skip cuda" "$out/test_backend_nolt.log" && s=fail # no GPU
check "test_backend, NEXUS_CUDA_LT=0 NEXUS_CUDA_WGMMA=0" $s "$(tail_of "$out/test_backend_nolt.log")"
for t in test_backend test_model test_generate golden_model; do
    if "$BUILD/tests/$t" > "$out/$t.log" 2>&1; then s=ok; else s=fail; fi
    grep -q "^skip cuda" "$out/$t.log" && s=fail # a CUDA case that did not run: no GPU
    check "$t" $s "$(tail_of "$out/$t.log")"
    [ $s = ok ] || grep -E "FAIL|failed" "$out/$t.log" | head -5
done
if NEXUS=$NEXUS NEXUS_DEVICE=cuda sh tests/golden_p0.sh > "$out/p0.log" 2>&1; then s=ok; else s=fail; fi
check "P0 on the GPU (fp32)" $s "$(tail_of "$out/p0.log")"

p2() { # name overrides...
    n=$1
    shift
    "$NEXUS" distill bench/p2-l0246.yaml --set output.dir="$out/$n" --set checkpoint.dir="$out/$n-ck" "$@" \
        > "$out/$n.log" 2>&1
}
p2 p2
set -- $(sed -n 's/^student  *[0-9]* *[0-9.]* [KMG]iB *\([0-9.]*\) *\([0-9.]*\)$/\1 \2/p' "$out/p2.log")
ppl=${1:-999} agree=${2:-0}
s=$(awk -v p="$ppl" -v a="$agree" 'BEGIN { print (p <= 98.2 && a >= 0.61) ? "ok" : "fail" }')
check "P2 L0246 (bf16)" "$s" "val ppl $ppl, agreement $agree; $(grep '^trained' "$out/p2.log")"

short="--set optimizer.steps=60 --set optimizer.warmup_steps=10 --set log.every=10 --set eval.batches=2"
p2 plain $short
p2 recompute $short --set recompute=true
a=$(grep '^step' "$out/plain.log" | sed 's/ *[0-9]* tok\/s$//') b=$(grep '^step' "$out/recompute.log" | sed 's/ *[0-9]* tok\/s$//')
if [ -n "$a" ] && [ "$a" = "$b" ]; then s=ok; else s=fail; fi
check "recompute: true, the same losses" $s "$(echo "$a" | tail -n 1)"

# the text on stdout; the speed line on stderr
$NEXUS generate $M --prompt "The little dog" --max-tokens 40 --device cuda --precision bf16 > "$out/g1.txt" 2> "$out/g1.err"
$NEXUS generate $M --prompt "The little dog" --max-tokens 40 > "$out/g0.txt" 2> /dev/null
if [ -s "$out/g1.txt" ] && cmp -s "$out/g1.txt" "$out/g0.txt"; then s=ok; else s=fail; fi
check "greedy text, GPU bf16 = CPU" $s "$(sed -n 's/.*\(decode [0-9.]* tokens\/s\).*/\1/p' "$out/g1.err")"
date -u
[ $fails -eq 0 ] && echo "all GPU checks passed" || echo "$fails GPU check(s) failed"
[ $fails -eq 0 ]
