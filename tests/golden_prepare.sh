#!/bin/sh
# golden_prepare.sh — PROTOCOLS.md token streams: `nexus prepare-data` with
# the teacher-19m tokenizer must give exactly 180,547 tokens for
# validation.jsonl and 3,361,520 for train.jsonl.gz (each document without
# special tokens, then <|endoftext|> = id 0). Also checks the EOS id and
# that the shard's first token is a document token and last is id 0.
. tests/lib.sh
S=../shared
need $S/models/teacher-19m/tokenizer.json $S/data/corpus/validation.jsonl $S/data/corpus/train.jsonl.gz ||
    { summary; exit 1; }
T=$(mktemp -d /tmp/nx_golden_prep_XXXXXX)
trap 'rm -rf "$T"' EXIT
run() { # name input expected_tokens
    out=$($NEXUS prepare-data --model $S/models/teacher-19m --input "$2" --out "$T/$1" 2>&1)
    echo "$out"
    got=$(echo "$out" | sed -n 's/.*train.bin: [0-9]* documents, \([0-9]*\) tokens.*/\1/p')
    if [ "$got" = "$3" ]; then ok "$1 tokens $got"
    else bad "$1: got '$got' tokens, want $3"; fi
    # header bytes 28..31 = EOS id 0; last token (u16) = 0
    eos=$(od -An -tu4 -j28 -N4 "$T/$1/train.bin" | tr -d ' ')
    last=$(tail -c 2 "$T/$1/train.bin" | od -An -tu2 | tr -d ' ')
    if [ "$eos" = 0 ] && [ "$last" = 0 ]; then ok "$1 eos"
    else bad "$1: eos '$eos' last '$last'"; fi
}
run validation $S/data/corpus/validation.jsonl 180547
run train $S/data/corpus/train.jsonl.gz 3361520
summary
