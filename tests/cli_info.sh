#!/bin/sh
# cli_info.sh — `nexus info` on the committed fixture tests/fixtures/tiny-llama
# (V=32 C=16 L=2 NH=2 KVH=1 HS=8 F=32, BF16; made by tests/fixtures/make_tiny.py):
# counts, sizes, the KV-cache formula, --json, and exit codes (1 runtime, 2 usage).
FIX=tests/fixtures/tiny-llama
. tests/lib.sh
# expect NAME RC NEEDLE -- CMD...: exit code RC and NEEDLE in stdout+stderr
expect() {
    name=$1; want=$2; needle=$3; shift 4
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -ne "$want" ]; then bad "$name (exit $rc, want $want): $out"; return; fi
    case "$out" in *"$needle"*) ok "$name" ;; *) bad "$name (no '$needle' in: $out)" ;; esac
}
TMP=$(mktemp -d /tmp/nx_cli_info_XXXXXX)
trap 'rm -rf "$TMP"' EXIT

expect shape 0 "V=32 C=16 L=2 NH=2 KVH=1 HS=8 F=32" -- $NEXUS info $FIX
expect total 0 "5,712" -- $NEXUS info $FIX
expect mlp 0 "3,072" -- $NEXUS info $FIX
expect disk 0 "(1 file, BF16)" -- $NEXUS info $FIX
expect group32 0 "f16 scale per group of 32" -- $NEXUS info $FIX
# KV cache = 4·2·L·B·T·KVH·HS = 4·2·2·2·16·1·8 = 4096 bytes
expect kv 0 "KV cache 4.00 KiB" -- $NEXUS info $FIX --batch 2 --seq-len 16
expect json_total 0 '"total":	5712' -- $NEXUS info $FIX --json
expect json_kv 0 '"inference_kv_cache":	4096' -- $NEXUS info $FIX --json --batch 2 --seq-len 16
# training = 16N + 4·B·T·(L·A + C + 1 + 2V), A = 4C+2+2·NH·HS+2·KVH·HS+3F+NH·T
#          = 91392 + 4·2·16·(2·(64+2+32+16+96+32) + 16 + 1 + 64) = 91392 + 72320
expect json_train 0 '"train_total":	195200' -- $NEXUS info $FIX --json --batch 2 --seq-len 16
expect json_eps 0 '"rms_norm_eps":	1e-05' -- $NEXUS info $FIX --json
expect config_only 0 "config only" -- $NEXUS info $FIX/config.json
expect help 0 "usage: nexus info" -- $NEXUS info --help

expect missing_dir 1 "$TMP/nope" -- $NEXUS info "$TMP/nope"
mkdir "$TMP/noweights"; cp $FIX/config.json "$TMP/noweights/"
expect no_weights 0 "no safetensors" -- $NEXUS info "$TMP/noweights"
mkdir "$TMP/trunc"; cp $FIX/config.json "$TMP/trunc/"
head -c 2000 $FIX/model.safetensors > "$TMP/trunc/model.safetensors"
expect truncated 1 "$TMP/trunc/model.safetensors" -- $NEXUS info "$TMP/trunc"
mkdir "$TMP/shape"; cp $FIX/model.safetensors "$TMP/shape/"
sed 's/"intermediate_size": 32/"intermediate_size": 48/' $FIX/config.json > "$TMP/shape/config.json"
expect shape_mismatch 1 "gate_proj.weight' has shape [32, 16] but config.json implies [48, 16]" -- $NEXUS info "$TMP/shape"
mkdir "$TMP/gpt"; sed 's/"model_type": "llama"/"model_type": "gpt2"/' $FIX/config.json > "$TMP/gpt/config.json"
expect model_type 1 "'model_type' is 'gpt2'" -- $NEXUS info "$TMP/gpt"
printf '{"model_type": "llama",\n "vocab_size": }' > "$TMP/bad.json"
expect bad_json 1 "$TMP/bad.json: not valid JSON" -- $NEXUS info "$TMP/bad.json"

# issue 15, item 11: 65536 heads of head_dim 65536 (q_proj: 2^32 rows) overflow; refused, not counted as 0
mkdir "$TMP/huge"; sed 's/"num_attention_heads": 2/"num_attention_heads": 65536/; s/"head_dim": 8/"head_dim": 65536/' \
    $FIX/config.json > "$TMP/huge/config.json"
expect huge_heads 1 "too large" -- $NEXUS info "$TMP/huge"
expect bad_flag 2 "unknown option '--bogus'" -- $NEXUS info $FIX --bogus
expect no_arg 2 "missing argument" -- $NEXUS info
expect bad_batch 2 "--batch" -- $NEXUS info $FIX --batch 0
expect bad_int 2 "not an integer" -- $NEXUS info $FIX --seq-len ten
summary
