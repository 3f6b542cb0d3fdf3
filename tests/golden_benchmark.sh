#!/bin/sh
# golden_benchmark.sh — `nexus benchmark` perplexity of teacher-19m on the
# validation split equals transformers' 103.155 (PROTOCOLS.md) within 0.3%,
# over 705 windows of 256 tokens of the 180,547-token stream.
. tests/lib.sh
M=../shared/models/teacher-19m
D=../shared/data/corpus/validation.jsonl
need $M/config.json $M/model.safetensors $M/tokenizer.json $D || { summary; exit 1; }
T=$(mktemp -d /tmp/nx_gbench.XXXXXX)
trap 'rm -rf "$T"' EXIT
$NEXUS benchmark $M --data $D --no-speed --json > $T/b.json 2> $T/err; rc=$?
ppl=$(jq '.models[0].perplexity' $T/b.json 2>/dev/null)
if [ $rc = 0 ] && jq -e '(.models[0].perplexity / 103.155 - 1) | fabs < 0.003' $T/b.json > /dev/null; then
    ok "teacher-19m perplexity $ppl (transformers 103.155)"
else bad "teacher-19m perplexity $ppl, expected 103.155 ± 0.3% (rc $rc)"; cat $T/err; fi
if jq -e '.models[0].data_tokens == 180547 and .models[0].windows == 705' $T/b.json > /dev/null; then
    ok "token stream of 180547 tokens, 705 windows"
else bad "stream: $(jq -c '[.models[0].data_tokens, .models[0].windows]' $T/b.json)"; fi
summary
