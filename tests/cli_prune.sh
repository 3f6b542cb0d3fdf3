#!/bin/sh
# cli_prune.sh — `nexus prune` on the tiny random model tests/fixtures/tiny-gen
# (V=320 C=16 L=2 NH=2 KVH=1 HS=8 F=32, context 64, byte-level tokenizer):
# each method writes a loadable model directory with its report (and, for
# magnitude / wanda, the mask with exactly the promised zeros); minitron
# writes the target shape; bad input fails with a clear message (exit 2 for
# flags, 1 for what the model cannot give) before anything is written.
M=tests/fixtures/tiny-gen
. tests/lib.sh
T=$(mktemp -d /tmp/nx_prune.XXXXXX)
trap 'rm -rf "$T"' EXIT
python3 -c '
import json, random
r = random.Random(1)
w = "the cat sat on a mat and then hello world of small tests".split()
with open("'"$T"'/d.jsonl", "w") as f:
    for _ in range(80): f.write(json.dumps({"text": " ".join(r.choice(w) for _ in range(30))}) + "\n")'

# expect NAME RC NEEDLE -- CMD...: exit code RC and NEEDLE in stdout+stderr
expect() {
    name=$1; want=$2; needle=$3; shift 4
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -ne "$want" ]; then bad "$name (exit $rc, want $want): $out"; return; fi
    case "$out" in *"$needle"*) ok "$name" ;; *) bad "$name (no '$needle' in: $out)" ;; esac
}
P="$NEXUS prune $M --calib $T/d.jsonl --calib-samples 8 --calib-len 32 --batch 4"

# magnitude 50%: half of the 4,608 layer weights, the mask beside the weights
expect magnitude 0 '"pruned":	2304' -- $P --out $T/mag --method magnitude --sparsity 0.5 --json
if [ -f $T/mag/config.json ] && [ -f $T/mag/model.safetensors ] && [ -f $T/mag/tokenizer.json ] &&
   [ -f $T/mag/sparsity_mask.safetensors ] && jq -e '.method == "magnitude"' $T/mag/prune_report.json > /dev/null
then ok "magnitude directory: config, weights, tokenizer, mask, report"; else bad "magnitude directory"; ls $T/mag; fi
# the pruned model runs
expect generate_pruned 0 "" -- $NEXUS generate $T/mag --prompt "the cat" --max-tokens 4
# wanda 2:4 with perplexity before and after
expect wanda_24 0 '"pattern":	"2:4"' -- $P --out $T/w24 --method wanda --pattern 2:4 --eval $T/d.jsonl --json
if jq -e '.eval.ppl_before > 0 and .eval.ppl_after > 0 and .sparsity.pruned == 2304' $T/w24/prune_report.json > /dev/null
then ok "wanda 2:4 report: perplexity before/after, half pruned"; else bad "wanda 2:4 report"; fi
expect global 0 "sparsity" -- $P --out $T/glob --method magnitude --sparsity 0.6 --scope global
# minitron to a shape, and to a parameter budget
expect minitron 0 "parameters" -- $P --out $T/mt --method minitron --hidden 12 --ffn 20 --layers 1 --layer-metric ppl
if jq -e '.hidden_size == 12 and .intermediate_size == 20 and .num_hidden_layers == 1 and .head_dim == 8' \
      $T/mt/config.json > /dev/null && [ ! -f $T/mt/sparsity_mask.safetensors ] &&
   jq -e '(.kept.layers | length) == 1 and .layer_metric == "ppl"' $T/mt/prune_report.json > /dev/null
then ok "minitron: the target shape in config.json, no mask"; else bad "minitron shape"; cat $T/mt/config.json; fi
expect generate_minitron 0 "" -- $NEXUS generate $T/mt --prompt "the cat" --max-tokens 4
expect fit 0 '"params_after"' -- $P --out $T/fit --method minitron --target-params 12000 --json
if [ "$(jq '.params_after <= 12000' $T/fit/prune_report.json)" = true ]; then ok "fit: at most the budget"
else bad "fit: $(jq .params_after $T/fit/prune_report.json) parameters"; fi
expect info_pruned 0 "C=12" -- $NEXUS info $T/mt

# bad input: nothing written
expect sparsity_range 2 "[0, 1)" -- $P --out $T/x1 --method magnitude --sparsity 1.5
expect nm_rows 1 "multiple of 5" -- $P --out $T/x2 --method wanda --pattern 2:5
expect nm_bad 2 "0 < N < M" -- $P --out $T/x3 --method wanda --pattern 4:2
expect heads_gqa 1 "larger than the model's 2" -- $P --out $T/x4 --method minitron --heads 3
expect heads_group 1 "not a whole number" -- $P --out $T/x5 --method minitron --heads 1
expect hidden_big 1 "larger than the model's 16" -- $P --out $T/x6 --method minitron --hidden 20
expect hidden_heads 1 "not a multiple of the 2 attention heads" -- $P --out $T/x15 --method minitron --hidden 11
expect target_big 1 "larger than the model's" -- $P --out $T/x7 --method minitron --target-params 99999999
expect no_target 1 "needs a target" -- $P --out $T/x8 --method minitron
expect wanda_calib 1 "give --calib" -- $NEXUS prune $M --out $T/x9 --method wanda --sparsity 0.5
expect own_dir 1 "model's own directory" -- $P --out $M --method magnitude --sparsity 0.5
expect no_method 2 "missing --method" -- $P --out $T/x10
expect bad_method 2 "unknown --method 'sparsegpt'" -- $P --out $T/x11 --method sparsegpt
expect shape_unstructured 1 "a target shape is for minitron" -- $P --out $T/x12 --method wanda --sparsity 0.5 --ffn 8
expect both 1 "not both" -- $P --out $T/x13 --method wanda --sparsity 0.5 --pattern 2:4
expect bad_data 1 "$T/none.jsonl" -- $NEXUS prune $M --out $T/x14 --method wanda --sparsity 0.5 --calib $T/none.jsonl
touch $T/file
expect out_file 1 "not a directory" -- $P --out $T/file --method magnitude --sparsity 0.5
n=$(ls -d $T/x* 2>/dev/null | wc -l)
if [ "$n" -eq 0 ]; then ok "failed runs wrote nothing"; else bad "failed runs left $(ls -d $T/x*)"; fi
summary
