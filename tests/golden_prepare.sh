#!/bin/sh
# golden_prepare.sh — PROTOCOLS.md token streams: `nexus prepare-data` with
# the teacher-19m tokenizer must give exactly 180,547 tokens for
# validation.jsonl and 3,361,520 for train.jsonl.gz (each document without
# special tokens, then <|endoftext|> = id 0). Also checks the EOS id and
# that the shard's first token is a document token and last is id 0.
: "${NEXUS:=./nexus}"
S=../shared
pass=0; fail=0
if [ ! -d "$S/models/teacher-19m" ] || [ ! -f "$S/data/corpus/validation.jsonl" ]; then
    echo "skipped: $S not present"; echo "0 passed, 0 failed"; exit 0
fi
T=$(mktemp -d /tmp/nx_golden_prep_XXXXXX)
trap 'rm -rf "$T"' EXIT
run() { # name input expected_tokens
    out=$($NEXUS prepare-data --model $S/models/teacher-19m --input "$2" --out "$T/$1" 2>&1)
    echo "$out"
    got=$(echo "$out" | sed -n 's/.*train.bin: [0-9]* documents, \([0-9]*\) tokens.*/\1/p')
    if [ "$got" = "$3" ]; then pass=$((pass + 1)); echo "ok   $1 tokens $got"
    else fail=$((fail + 1)); echo "FAIL $1: got '$got' tokens, want $3"; fi
    # header bytes 28..31 = EOS id 0; last token (u16) = 0
    eos=$(od -An -tu4 -j28 -N4 "$T/$1/train.bin" | tr -d ' ')
    last=$(tail -c 2 "$T/$1/train.bin" | od -An -tu2 | tr -d ' ')
    if [ "$eos" = 0 ] && [ "$last" = 0 ]; then pass=$((pass + 1)); echo "ok   $1 eos"
    else fail=$((fail + 1)); echo "FAIL $1: eos '$eos' last '$last'"; fi
}
run validation $S/data/corpus/validation.jsonl 180547
run train $S/data/corpus/train.jsonl.gz 3361520
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
