#!/bin/sh
# cli_quantize.sh — `nexus quantize` on the bundled demo teacher: a Q8_0
# directory that generate and benchmark load, q4_k_m with calibration
# recording type, method and calibration hash (the demo teacher ties its head
# to the embeddings: 17 matrix groups), both as GGUF files nexus loads back
# with the same weights, and the clear errors for an
# unknown type, a missing --out, an output directory in use and a recipe
# that needs calibration without it.
M=models/demo-teacher
. tests/lib.sh
T=$(mktemp -d /tmp/nx_quant.XXXXXX)
trap 'rm -rf "$T"' EXIT

if $NEXUS quantize $M --type q8_0 --out $T/q8 > $T/out 2> $T/err &&
   [ "$(jq -r .type $T/q8/quantization.json)" = q8_0 ] && [ "$(jq -r .method $T/q8/quantization.json)" = rtn ] &&
   [ "$(jq -r '.tensors["model.layers.0.mlp.down_proj.weight"].type' $T/q8/quantization.json)" = Q8_0 ] &&
   [ -f $T/q8/tokenizer.json ] && grep -q "matrix groups: 18 Q8_0" $T/out
then ok "q8_0: a directory with quantization.json and the tokenizer"; else bad "q8_0"; cat $T/out $T/err; fi

if $NEXUS generate $T/q8 --prompt "The" --max-tokens 8 --json > $T/g.json 2> $T/err &&
   [ "$(jq '.token_ids | length' $T/g.json)" = 8 ]
then ok "generate runs the Q8_0 directory"; else bad "generate on q8_0"; cat $T/err; fi

if $NEXUS benchmark $T/q8 --reference $M --data data/demo/validation.jsonl --max-windows 2 --seq-len 64 --no-speed \
     --json > $T/b.json 2> $T/err && jq -e '.models[1].kl < 0.01 and .models[1].agreement > 0.9' $T/b.json > /dev/null
then ok "benchmark: Q8_0 KL $(jq .models[1].kl $T/b.json) against the f32 teacher"; else bad "benchmark on q8_0"; cat $T/err; fi

if $NEXUS quantize $M --type q4_k_m --calib data/demo/validation.jsonl --calib-windows 2 --calib-seq 64 \
     --out $T/q4 > $T/out 2> $T/err &&
   [ "$(jq -r .method $T/q4/quantization.json)" = "imatrix+kl-mixed" ] &&
   [ "$(jq -r .calibration.hash $T/q4/quantization.json | wc -c)" = 17 ] &&
   [ "$(jq -r .calibration.tokens $T/q4/quantization.json)" = 128 ] &&
   [ "$(jq '[.report.groups[] | select(.kl_alone != null)] | length' $T/q4/quantization.json)" = 17 ] &&
   [ "$(jq -r '.tensors["model.layers.0.mlp.down_proj.weight"].type' $T/q4/quantization.json)" != null ]
then ok "q4_k_m --calib: method, calibration hash and per-group KL recorded"; else bad "q4_k_m --calib"; cat $T/out $T/err; fi

# GGUF: the quantized directory exported as it is held (a copy of its blocks), loaded back by nexus
if $NEXUS export $T/q8 --format gguf --out $T/q8.gguf > $T/out 2> $T/err && grep -q "as quantized" $T/out &&
   $NEXUS info $T/q8.gguf 2> $T/err | grep -q "GGUF F32+Q8_0" &&
   $NEXUS generate $T/q8.gguf --prompt "The" --max-tokens 8 --json 2> $T/err | jq -c .token_ids > $T/g1 &&
   jq -c .token_ids $T/g.json > $T/g0 && cmp -s $T/g0 $T/g1
then ok "q8_0 directory -> GGUF: Q8_0 tensors, the same greedy tokens"; else bad "q8_0 -> GGUF"; cat $T/out $T/err; fi

if $NEXUS export $T/q4 --format gguf --out $T/q4.gguf > $T/out 2> $T/err &&
   $NEXUS benchmark $T/q4.gguf --teacher $T/q4 --data data/demo/validation.jsonl --max-windows 2 --seq-len 64 --no-speed \
     --json > $T/b4.json 2> $T/err && jq -e '.models[1].kl < 1e-9 and .models[1].agreement == 1' $T/b4.json > /dev/null
then ok "q4_k_m mix -> GGUF: the same model (KL $(jq .models[1].kl $T/b4.json) against the directory)"
else bad "q4_k_m -> GGUF"; cat $T/out $T/err; fi

$NEXUS export $T/q8 --format safetensors --out $T/st > /dev/null 2> $T/err; rc=$?
if [ $rc = 1 ] && grep -q "give --dtype" $T/err && [ ! -e $T/st ]
then ok "a quantized model to safetensors without --dtype: refused, nothing written"; else bad "quantized -> safetensors (rc $rc)"; cat $T/err; fi

$NEXUS export $M --format gguf --dtype q4_k --out $T/k.gguf > /dev/null 2> $T/err; rc=$?
if [ $rc = 1 ] && grep -q "not a whole number of Q4_K blocks" $T/err && [ ! -e $T/k.gguf ] && [ ! -e $T/k.gguf.tmp ]
then ok "Q4_K on rows of 192: a clear message, nothing written"; else bad "q4_k on 192 (rc $rc)"; cat $T/err; fi

$NEXUS quantize $M --type q3_k --out $T/x > /dev/null 2> $T/err; rc=$?
if [ $rc = 1 ] && grep -q "unknown quantization type 'q3_k'" $T/err && [ ! -e $T/x ]
then ok "unknown type: exit 1, named, nothing written"; else bad "unknown type (rc $rc)"; cat $T/err; fi

$NEXUS quantize $M --type q8_0 > /dev/null 2> $T/err; rc=$?
if [ $rc = 2 ]; then ok "missing --out: usage error"; else bad "missing --out (rc $rc)"; fi

$NEXUS quantize $M --type q8_0 --out $T/q8 > /dev/null 2> $T/err; rc=$?
if [ $rc = 1 ] && grep -q "not empty" $T/err && [ -f $T/q8/quantization.json ]
then ok "an output directory in use is refused and left alone"; else bad "existing output (rc $rc)"; cat $T/err; fi

$NEXUS quantize $M --type w8a8-static --out $T/s > /dev/null 2> $T/err; rc=$?
if [ $rc = 1 ] && grep -q "calib" $T/err && [ ! -e $T/s ]
then ok "w8a8-static without --calib: refused"; else bad "w8a8-static without calib (rc $rc)"; cat $T/err; fi

summary
