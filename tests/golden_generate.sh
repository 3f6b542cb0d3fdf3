#!/bin/sh
# golden_generate.sh — greedy `nexus generate` on teacher-19m produces
# exactly the ids of transformers' greedy generate (100 new tokens) stored
# in tests/fixtures/teacher19m_greedy.json ({"prompt", "prompt_ids",
# "generated_ids"}, prompt encoded without special tokens). Skips (counted
# as passed, with a note) when the fixture or ../shared is absent.
: "${NEXUS:=./nexus}"
F=tests/fixtures/teacher19m_greedy.json
M=../shared/models/teacher-19m
pass=0; fail=0
if [ ! -f "$F" ] || [ ! -d "$M" ]; then
    echo "ok   greedy generate vs transformers (SKIPPED: $F or $M absent)"
    echo "1 passed, 0 failed"
    exit 0
fi
T=$(mktemp -d /tmp/nx_ggen.XXXXXX)
trap 'rm -rf "$T"' EXIT
prompt=$(jq -r .prompt $F)
n=$(jq '.generated_ids | length' $F)
$NEXUS generate $M --prompt "$prompt" --max-tokens "$n" --json > $T/out.json 2> $T/err; rc=$?
if [ $rc = 0 ] && [ "$(jq -c .prompt_ids $T/out.json)" = "$(jq -c .prompt_ids $F)" ]; then
    pass=$((pass + 1)); echo "ok   prompt ids match"
else fail=$((fail + 1)); echo "FAIL prompt ids: $(jq -c .prompt_ids $T/out.json) vs $(jq -c .prompt_ids $F)"; cat $T/err; fi
if [ "$(jq -c .token_ids $T/out.json)" = "$(jq -c .generated_ids $F)" ]; then
    pass=$((pass + 1)); echo "ok   $n greedy tokens match transformers"
else
    fail=$((fail + 1))
    first=$(jq -n --slurpfile a $T/out.json --slurpfile b $F \
        '[range(0; [$a[0].token_ids, $b[0].generated_ids] | map(length) | min) | select($a[0].token_ids[.] != $b[0].generated_ids[.])] | first')
    echo "FAIL greedy tokens differ from transformers, first at index $first"
fi
echo "$pass passed, $fail failed"
[ $fail = 0 ]
