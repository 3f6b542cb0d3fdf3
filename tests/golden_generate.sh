#!/bin/sh
# golden_generate.sh — greedy `nexus generate` on teacher-19m produces
# exactly the ids of transformers' greedy generate (100 new tokens) stored
# in tests/fixtures/teacher19m_greedy.json ({"prompt", "prompt_ids",
# "generated_ids"}, prompt encoded without special tokens). A missing
# fixture or ../shared is a failure that names the file.
. tests/lib.sh
F=tests/fixtures/teacher19m_greedy.json
M=../shared/models/teacher-19m
need $F $M/config.json $M/model.safetensors $M/tokenizer.json || { summary; exit 1; }
T=$(mktemp -d /tmp/nx_ggen.XXXXXX)
trap 'rm -rf "$T"' EXIT
prompt=$(jq -r .prompt $F)
n=$(jq '.generated_ids | length' $F)
$NEXUS generate $M --prompt "$prompt" --max-tokens "$n" --json > $T/out.json 2> $T/err; rc=$?
if [ $rc = 0 ] && [ "$(jq -c .prompt_ids $T/out.json)" = "$(jq -c .prompt_ids $F)" ]; then
    ok "prompt ids match"
else bad "prompt ids: $(jq -c .prompt_ids $T/out.json) vs $(jq -c .prompt_ids $F)"; cat $T/err; fi
if [ "$(jq -c .token_ids $T/out.json)" = "$(jq -c .generated_ids $F)" ]; then
    ok "$n greedy tokens match transformers"
else
    first=$(jq -n --slurpfile a $T/out.json --slurpfile b $F \
        '[range(0; [$a[0].token_ids, $b[0].generated_ids] | map(length) | min) | select($a[0].token_ids[.] != $b[0].generated_ids[.])] | first')
    bad "greedy tokens differ from transformers, first at index $first"
fi
summary
