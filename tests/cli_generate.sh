#!/bin/sh
# cli_generate.sh — `nexus generate` on a tiny random model with a tiny
# byte-level tokenizer (tests/fixtures/tiny-gen, context 64 tokens):
# determinism, streaming = JSON text, stop strings, seeds, and the clear
# errors for a prompt beyond the context, an empty prompt, a model dir
# without tokenizer.json and bad sampling options.
M=tests/fixtures/tiny-gen
. tests/lib.sh
T=$(mktemp -d /tmp/nx_gen.XXXXXX)
trap 'rm -rf "$T"' EXIT

$NEXUS generate $M --prompt "Hello world" --max-tokens 20 --json > $T/a.json 2> $T/err &&
$NEXUS generate $M --prompt "Hello world" --max-tokens 20 --json > $T/b.json 2>> $T/err
n=$(jq '.token_ids | length' $T/a.json)
if [ "$n" = 20 ] && [ "$(jq -c .token_ids $T/a.json)" = "$(jq -c .token_ids $T/b.json)" ] &&
   [ "$(jq .prompt_tokens $T/a.json)" -gt 0 ] && jq -e '.ttft_ms > 0 and .decode_tokens_per_s > 0' $T/a.json > /dev/null
then ok "greedy json: 20 ids, deterministic, timings"; else bad "greedy json ($n ids)"; cat $T/err; fi

$NEXUS generate $M -p "Hello world" -n 20 -t 1 --json > $T/short.json 2>> $T/err
if [ "$(jq -c .token_ids $T/short.json)" = "$(jq -c .token_ids $T/a.json)" ]
then ok "-p -n -t: the same ids as --prompt --max-tokens --threads"; else bad "short flags"; fi

$NEXUS generate $M --prompt "Hello world" --max-tokens 20 > $T/stream.txt 2> $T/err
printf '%s\n' "$(jq -r .text $T/a.json)" > $T/json.txt
if cmp -s $T/stream.txt $T/json.txt; then ok "streamed text equals the JSON text"; else bad "streamed text differs"; fi

# a stop string taken from the greedy text: output ends just before it
stop=$(jq -r .text $T/a.json | python3 -c '
import re, sys
t = sys.stdin.read()
m = re.search(r"[A-Za-z ]{2}", t[3:])
print(m.group(0) if m else "")')
$NEXUS generate $M --prompt "Hello world" --max-tokens 20 --stop "$stop" --json > $T/s.json 2> $T/err
full=$(jq -r .text $T/a.json); cut=$(jq -r .text $T/s.json)
expect=$(jq -r .text $T/a.json | STOP="$stop" python3 -c '
import os, sys
t = sys.stdin.read().rstrip("\n"); print(t[:t.find(os.environ["STOP"])])')
if [ -n "$stop" ] && [ "$cut" = "$expect" ] && [ "$(jq -r .stop_reason $T/s.json)" = stop ]; then
    ok "stop string cuts the text"; else bad "stop string: '$cut' vs '$expect'"; fi

$NEXUS generate $M --prompt "Hello" --temperature 0.9 --top-k 50 --top-p 0.95 --seed 7 --max-tokens 15 --json > $T/r1.json 2> $T/err
$NEXUS generate $M --prompt "Hello" --temperature 0.9 --top-k 50 --top-p 0.95 --seed 7 --max-tokens 15 --json > $T/r2.json 2>> $T/err
$NEXUS generate $M --prompt "Hello" --temperature 0.9 --top-k 50 --top-p 0.95 --seed 8 --max-tokens 15 --json > $T/r3.json 2>> $T/err
if [ "$(jq -c .token_ids $T/r1.json)" = "$(jq -c .token_ids $T/r2.json)" ] &&
   [ "$(jq -c .token_ids $T/r1.json)" != "$(jq -c .token_ids $T/r3.json)" ]; then
    ok "same seed same tokens, other seed other tokens"; else bad "seeded sampling"; fi

long=$(printf 'word %.0s' $(seq 1 80))
$NEXUS generate $M --prompt "$long" > /dev/null 2> $T/err; rc=$?
if [ $rc = 1 ] && grep -q "context is 64 tokens" $T/err; then ok "prompt beyond the context: clear error"; else bad "long prompt (rc $rc)"; cat $T/err; fi

$NEXUS generate $M --prompt "" > /dev/null 2> $T/err; rc=$?
if [ $rc = 1 ] && grep -q "empty" $T/err; then ok "empty prompt: clear error"; else bad "empty prompt (rc $rc)"; fi
$NEXUS generate $M --prompt "" --bos --max-tokens 3 --json > $T/bos.json 2> $T/err; rc=$?
if [ $rc = 0 ] && [ "$(jq -c .prompt_ids $T/bos.json)" = "[0]" ]; then ok "empty prompt with --bos starts from BOS"; else bad "--bos (rc $rc)"; fi

mkdir $T/notok && cp $M/config.json $M/model.safetensors $T/notok/
$NEXUS generate $T/notok --prompt "Hi" > /dev/null 2> $T/err; rc=$?
if [ $rc = 1 ] && grep -q "tokenizer.json not found" $T/err; then ok "no tokenizer: names the file"; else bad "no tokenizer (rc $rc)"; cat $T/err; fi

$NEXUS generate $M --prompt "Hi" --top-p 0 > /dev/null 2> $T/err; rc=$?
if [ $rc = 2 ] && grep -q "top-p" $T/err; then ok "bad sampling option is a usage error"; else bad "--top-p 0 (rc $rc)"; fi

near=$(printf 'a %.0s' $(seq 1 30))
$NEXUS generate $M --prompt "$near" --max-tokens 100 --ignore-eos --json > $T/c.json 2> $T/err; rc=$?
P=$(jq .prompt_tokens $T/c.json); G=$(jq .generated_tokens $T/c.json)
if [ $rc = 0 ] && [ "$(jq -r .stop_reason $T/c.json)" = context ] && [ $((P + G)) = 64 ]; then
    ok "generation stops at the end of the context"; else bad "context stop (rc $rc, $P + $G)"; fi

summary
