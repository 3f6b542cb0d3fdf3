#!/bin/sh
# cli_inputs.sh — issue 15, item 10: where a file is expected, a FIFO, a
# device or a directory is refused at once (never read forever, never
# waited on), and what is read is bounded. Run under a 4 GB address-space
# limit (not for an ASan build, which reserves terabytes of shadow address
# space; its allocator then stops a runaway read) and a timeout, so a
# regression fails here instead of eating the machine.
. tests/lib.sh
T=$(mktemp -d /tmp/nx_cli_in_XXXXXX)
trap 'rm -rf "$T"' EXIT
FX=tests/fixtures
# an ASan build reads the bounded 64-256 MiB before refusing several times slower
if ldd "$NEXUS" 2>/dev/null | grep -q libasan; then TMO=180; else TMO=10; ulimit -v 4000000 2>/dev/null; fi
# expect NAME RC PATTERN -- CMD...: exit status and a message within TMO s
expect() {
    name=$1 want=$2 pat=$3; shift 4
    out=$(timeout -k 2 $TMO "$@" 2>&1 </dev/null); rc=$?
    case "$rc:$out" in "$want:"*"$pat"*) ok "$name" ;; *) bad "$name: exit $rc, said: $(echo "$out" | head -c 300)" ;; esac
}
mkfifo "$T/fifo"
mkdir -p "$T/fifo-model" && mkfifo "$T/fifo-model/tokenizer.json"
truncate -s 2G "$T/big.txt"
printf '{"text": "x' > "$T/line.jsonl" && truncate -s 2G "$T/line.jsonl"
expect "generate --prompt-file /dev/zero" 1 "not a regular file" -- $NEXUS generate $FX/tiny-gen --prompt-file /dev/zero
expect "generate --prompt-file FIFO" 1 "not a regular file" -- $NEXUS generate $FX/tiny-gen --prompt-file "$T/fifo"
expect "generate --prompt-file 2 GiB" 1 "larger than" -- $NEXUS generate $FX/tiny-gen --prompt-file "$T/big.txt"
expect "tokenize --file /dev/zero" 1 "not a regular file" -- $NEXUS tokenize --model $FX/tok-bytelevel --file /dev/zero
expect "tokenize --file 2 GiB" 1 "larger than" -- $NEXUS tokenize --model $FX/tok-bytelevel --file "$T/big.txt"
expect "tokenize --file DIR" 1 "is a directory" -- $NEXUS tokenize --model $FX/tok-bytelevel --file "$T"
expect "tokenizer.json a FIFO" 1 "not a regular file" -- $NEXUS tokenize --model "$T/fifo-model" --text x
expect "prepare-data --input /dev/zero" 1 "not a regular file" -- \
    $NEXUS prepare-data --model $FX/tok-bytelevel --input /dev/zero --out "$T/o"
expect "prepare-data 2 GiB text document" 1 "larger than" -- \
    $NEXUS prepare-data --model $FX/tok-bytelevel --input "$T/big.txt" --out "$T/o"
expect "prepare-data 2 GiB JSONL line" 1 "line longer than" -- \
    $NEXUS prepare-data --model $FX/tok-bytelevel --input "$T/line.jsonl" --out "$T/o"
expect "info /dev/zero" 1 "not a regular file" -- $NEXUS info /dev/zero
expect "info FIFO config.json" 1 "not a regular file" -- $NEXUS info "$T/fifo"

# issue 15, item 13: the smaller ones
M=tests/fixtures/tiny-gen
mkdir "$T/inf"; sed 's/"rope_theta": 10000.0/"rope_theta": 1e999/' $FX/tiny-llama/config.json > "$T/inf/config.json"
expect "rope_theta 1e999" 1 "rope_theta" -- $NEXUS info "$T/inf"
expect "generate --threads -1" 2 "--threads" -- $NEXUS generate $M --prompt hi --threads -1
expect "generate --max-tokens 2^32+1" 2 "--max-tokens" -- $NEXUS generate $M --prompt hi --max-tokens 4294967297
expect "prepare-data --val-docs -1" 2 "--val-docs" -- \
    $NEXUS prepare-data --model $FX/tok-bytelevel --input "$T/big.txt" --out "$T/o" --val-docs -1
expect "duplicate --prompt" 2 "given twice" -- $NEXUS generate $M --prompt a --prompt b
n_arg=$($NEXUS generate $M --prompt "Hello world" --max-tokens 1 --json 2>/dev/null | jq .prompt_tokens)
n_std=$(printf 'Hello world' | $NEXUS generate $M --prompt-file - --max-tokens 1 --json 2>/dev/null | jq .prompt_tokens)
[ -n "$n_arg" ] && [ "$n_arg" = "$n_std" ] && ok "--prompt-file - reads stdin" || bad "--prompt-file -: $n_std tokens, --prompt: $n_arg"
printf 'Hello\0world' > "$T/nul.txt"
n_nul=$($NEXUS generate $M --prompt-file "$T/nul.txt" --max-tokens 1 --json 2>/dev/null | jq .prompt_tokens)
n_tok=$($NEXUS tokenize --model $M --file "$T/nul.txt" --no-special | wc -w)
[ -n "$n_nul" ] && [ "$n_nul" = "$n_tok" ] && ok "--prompt-file reads past a NUL" || bad "NUL prompt: $n_nul tokens, the file has $n_tok"
summary
