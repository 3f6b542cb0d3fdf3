#!/bin/sh
# cli_export.sh — `nexus export` and GGUF models in the other commands, on
# the tiny fixture tests/fixtures/tiny-gen (random Llama, byte-level
# tokenizer): directory → GGUF → directory gives back model.safetensors byte
# for byte; generate gives the same tokens from the directory and from the
# GGUF; info reads a GGUF; distill with a GGUF teacher runs the same losses,
# bit for bit, as with the directory teacher and writes the tokenizer beside
# the student; usage errors exit 2, bad models exit 1 naming the file, and
# a failed export leaves nothing at --out.
M=tests/fixtures/tiny-gen
. tests/lib.sh
T=$(mktemp -d /tmp/nx_export.XXXXXX)
trap 'rm -rf "$T"' EXIT
# expect NAME RC NEEDLE -- CMD...: exit code RC and NEEDLE in stdout+stderr
expect() {
    name=$1; want=$2; needle=$3; shift 4
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -ne "$want" ]; then bad "$name (exit $rc, want $want): $out"; return; fi
    case "$out" in *"$needle"*) ok "$name" ;; *) bad "$name (no '$needle' in: $out)" ;; esac
}

expect to-gguf 0 "wrote $T/tiny.gguf (GGUF, F32, 21 tensors" -- $NEXUS export $M --format gguf --out $T/tiny.gguf
expect info-gguf 0 "V=320 C=16 L=2 NH=2 KVH=1 HS=8 F=32 max_pos=64" -- $NEXUS info $T/tiny.gguf
expect info-gguf-types 0 "(1 file, GGUF F32)" -- $NEXUS info $T/tiny.gguf
expect back-to-dir 0 "safetensors directory" -- $NEXUS export $T/tiny.gguf --format safetensors --out $T/back
expect dir-to-dir 0 "wrote" -- $NEXUS export $M --format safetensors --out $T/copy
if cmp -s $T/copy/model.safetensors $T/back/model.safetensors && cmp -s $M/tokenizer.json $T/copy/tokenizer.json
then ok "directory -> GGUF -> directory = directory -> directory: model.safetensors byte for byte"
else bad "model.safetensors after the round trip differs"; fi
if grep -q '"eos_token_id": ' $T/back/generation_config.json 2>/dev/null; then ok "a directory from a GGUF has generation_config.json"
else bad "no generation_config.json from the GGUF"; fi
expect bad-dtype 2 "give one of F32, F16" -- $NEXUS export $M --format gguf --dtype i32 --out $T/x.gguf
expect again 0 "wrote" -- $NEXUS export $T/copy --format safetensors --out $T/copy2
if cmp -s $T/copy/model.safetensors $T/copy2/model.safetensors; then ok "an exported directory exports to the same bytes"
else bad "re-export differs"; fi
expect bf16 0 "BF16" -- $NEXUS export $M --format gguf --dtype bf16 --out $T/tiny-bf16.gguf
expect info-bf16 0 "GGUF F32+BF16" -- $NEXUS info $T/tiny-bf16.gguf

for src in $M $T/tiny.gguf $T/back; do
    $NEXUS generate $src --prompt "Hello world" --max-tokens 20 --json 2> $T/err | jq -c .token_ids >> $T/ids
done
if [ "$(sort -u $T/ids | wc -l)" = 1 ] && [ "$(head -c 2 $T/ids)" = "[1" ] || [ "$(sort -u $T/ids | wc -l)" = 1 ]
then ok "generate: the same 20 tokens from the directory, the GGUF and the directory made from it"
else bad "generate differs between formats: $(cat $T/ids)"; cat $T/err; fi

# bad input
expect no-format 2 "give --format" -- $NEXUS export $M --out $T/x.gguf
expect bad-format 2 "give --format" -- $NEXUS export $M --format onnx --out $T/x
expect bad-dtype 2 "--dtype 'q3'" -- $NEXUS export $M --format gguf --dtype q3 --out $T/x.gguf
expect no-model 1 "nope" -- $NEXUS export $T/nope --format gguf --out $T/x.gguf
expect no-tokenizer 1 "has no tokenizer.json" -- $NEXUS export tests/fixtures/tiny-llama --format gguf --out $T/x.gguf
if [ ! -e $T/x.gguf ] && [ ! -e $T/x.gguf.tmp ]; then ok "a failed export leaves nothing"; else bad "a failed export left a file"; fi
head -c 3000 $T/tiny.gguf > $T/cut.gguf
expect truncated 1 "$T/cut.gguf: key 'tokenizer.ggml.tokens' (byte 788) claims 320 strings" -- $NEXUS info $T/cut.gguf
expect truncated-generate 1 "truncated" -- $NEXUS generate $T/cut.gguf --prompt hi
head -c 20000 $T/tiny.gguf > $T/cut2.gguf
expect truncated-data 1 "runs past the end of the file" -- $NEXUS benchmark $T/cut2.gguf --no-speed --data $T/cut2.gguf
printf 'GGUF\003\000\000\000\377\377\377\377\377\377\377\377\000\000\000\000\000\000\000\000' > $T/lie.gguf
expect lying-count 1 "claims 18446744073709551615 tensors" -- $NEXUS generate $T/lie.gguf --prompt hi

# distill with a GGUF teacher = with the directory teacher, bit for bit
for i in $(seq 1 60); do echo '{"text": "the cat sat on a mat and then hello world the end"}'; done > $T/data.jsonl
for t in dir gguf; do
    [ $t = dir ] && tp=$PWD/$M || tp=$T/tiny.gguf
    cat > $T/run-$t.yaml <<YAML
teacher: {path: $tp}
student: {from_teacher: true, num_layers: 1, init: {copy_layers: [1]}}
data: {train: data.jsonl, validation: data.jsonl, seq_len: 16, batch_size: 4}
optimizer: {lr: 3.0e-3, warmup_steps: 2, steps: 12}
eval: {every: 6, batches: 2}
checkpoint: {every: 100, keep: 1}
output: {dir: out-$t}
seed: 5
YAML
    $NEXUS distill $T/run-$t.yaml > $T/distill-$t.log 2>&1 || { bad "distill with the $t teacher failed"; cat $T/distill-$t.log; }
done
l1=$(grep -o '"loss": [^,]*' $T/out-dir/metrics.jsonl); l2=$(grep -o '"loss": [^,]*' $T/out-gguf/metrics.jsonl)
if [ -n "$l1" ] && [ "$l1" = "$l2" ]; then ok "distill from the GGUF teacher: the same $(echo "$l1" | wc -l) losses bit for bit"
else bad "distill losses differ between the directory and the GGUF teacher"; fi
if [ -s $T/out-gguf/tokenizer.json ] && [ -s $T/out-gguf/tokenizer_config.json ] &&
   $NEXUS generate $T/out-gguf --prompt "the cat" --max-tokens 3 > /dev/null 2>&1
then ok "the student of a GGUF teacher has its tokenizer files and generates"; else bad "student tokenizer files"; fi
summary
