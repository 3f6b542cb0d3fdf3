#!/bin/sh
# seeds.sh OUT NEXUS — the seed corpus of each fuzz target, OUT/NAME, from
# the fixtures (tests/fixtures) and the shipped configs: what the readers
# accept, so the fuzzer starts from valid files and mutates inward. Token
# shards and a checkpoint are made by the nexus binary (prepare-data, and
# two steps of `nexus train` of a tiny student) from the fixture tokenizer
# and model. Run from the repository root (make fuzz does).
set -e
OUT=$1 NEXUS=$2
FX=tests/fixtures
rm -rf "$OUT" && mkdir -p "$OUT"
for n in config_json tokenizer encode run_config jsonl shard checkpoint; do mkdir -p "$OUT/$n"; done
i=0
for f in $FX/*/config.json models/demo-teacher/config.json; do i=$((i + 1)); cp "$f" "$OUT/config_json/$i.json"; done
i=0
for f in $FX/*/tokenizer.json; do i=$((i + 1)); cp "$f" "$OUT/tokenizer/$i.json"; done
i=0
for f in $FX/*/tokenizer_config.json $FX/tiny-gen/make.py; do i=$((i + 1)); head -c 512 "$f" > "$OUT/encode/$i.txt"; done
printf 'hello the world\n  na\303\257ve \346\227\245\346\234\254 <s>x</s>' > "$OUT/encode/text"
i=0
for f in configs/*.yaml bench/*.yaml; do i=$((i + 1)); cp "$f" "$OUT/run_config/$i.yaml"; done
# a file, then --set lines after a NUL byte
{ cat configs/demo.yaml; printf '\000optimizer.lr=3e-4\nstudent.init=random\nloss.hidden={weight: 1, layer_map: [[0, 1]]}'; } \
    > "$OUT/run_config/with-sets"
T=$(mktemp -d /tmp/nx_seeds_XXXXXX)
trap 'rm -rf "$T"' EXIT
# documents: the first byte is the mode (1 JSONL, 2 skip bad lines, 4 field "body")
printf '{"text": "hello the world"}\n\n{"text": " lll", "id": 2}\r\n{"body": "x", "text": "na\\u00efve"}\n' > $T/d.jsonl
{ printf '\001'; cat $T/d.jsonl; } > "$OUT/jsonl/jsonl"
{ printf '\001'; gzip -c $T/d.jsonl; } > "$OUT/jsonl/jsonl-gz"
{ printf '\003'; printf '{"text": "a"}\nnot json\n{"text": "b"} x\n'; } > "$OUT/jsonl/skip"
{ printf '\000'; printf 'plain text\n\nof one document'; } > "$OUT/jsonl/text"
{ printf '\000'; printf 'plain text, gzipped' | gzip -c; } > "$OUT/jsonl/text-gz"
# shards and their manifest
for k in 1 2 3 4 5 6; do echo "{\"text\": \"document $k says hello to the world $k times\"}"; done > $T/s.jsonl
$NEXUS prepare-data --model $FX/tok-bytelevel --input $T/s.jsonl --out $T/shards --val-docs 2 > /dev/null
cp $T/shards/train.bin $T/shards/val.bin $T/shards/manifest.json "$OUT/shard/"
# a checkpoint of a tiny student of the tiny-gen fixture
cat > $T/run.yaml <<YAML
teacher: {path: $PWD/$FX/tiny-gen}
student: {hidden_size: 8, num_layers: 1, num_heads: 2, num_kv_heads: 1, intermediate_size: 8,
          max_position_embeddings: 64, init: random}
data: {train: $T/s.jsonl, seq_len: 8, batch_size: 2}
optimizer: {steps: 2}
checkpoint: {every: 1, keep: 0}
output: {dir: $T/run}
log: {every: 1000}
YAML
$NEXUS train $T/run.yaml > /dev/null 2>&1
cp $T/run/checkpoints/step-00000001.nxck "$OUT/checkpoint/step1"
cp $T/run/checkpoints/step-00000002.nxck "$OUT/checkpoint/step2"
echo "fuzz seeds in $OUT: $(ls "$OUT" | while read n; do printf '%s %s, ' "$n" "$(ls "$OUT/$n" | wc -l)"; done)"
