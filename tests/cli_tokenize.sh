#!/bin/sh
# cli_tokenize.sh — `nexus tokenize` and `nexus prepare-data` on the small
# fixture tokenizers: outputs, exit codes (2 usage, 1 runtime) and messages;
# the model as the first argument (--model kept as an alias), short flags.
. tests/lib.sh
check() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2' want '$3'"; fi; }
T=$(mktemp -d /tmp/nx_cli_tok_XXXXXX)
trap 'rm -rf "$T"' EXIT
FX=tests/fixtures

check "ids" "$($NEXUS tokenize $FX/tok-bytelevel --text 'hello the world')" "261 258 262 111 114 108 100"
check "--model alias" "$($NEXUS tokenize --model $FX/tok-bytelevel --text 'hello the world')" "261 258 262 111 114 108 100"
check "-p for the text" "$($NEXUS tokenize $FX/tok-bytelevel -p 'hello the world')" "261 258 262 111 114 108 100"
check "template adds bos/eos by default" "$($NEXUS tokenize $FX/tok-split --text hello)" "300 261 301"
check "--no-special" "$($NEXUS tokenize $FX/tok-split --text hello --no-special)" "261"
check "--json" "$($NEXUS tokenize $FX/tok-spm/tokenizer.json --text 'hello wx' --json)" \
      '{"ids":[1,268,259,269,123],"decoded":"<s> hello wx"}'
printf 'lll' > "$T/in.txt"
check "--file" "$($NEXUS tokenize $FX/tok-bytelevel --file "$T/in.txt")" "259 108"
$NEXUS tokenize $FX/tok-bytelevel >/dev/null 2>&1; check "missing --text is usage error" "$?" "2"
msg=$($NEXUS tokenize $FX/tok-bytelevel --model $FX/tok-split -p x 2>&1); rc=$?
check "model twice is usage error" "$rc" "2"
case "$msg" in *"not both"*) ok "model twice: says so";; *) bad "model twice message: $msg";; esac
msg=$($NEXUS tokenize -p x 2>&1); rc=$?
check "no model is usage error" "$rc" "2"
case "$msg" in *"model is required"*) ok "no model: says so";; *) bad "no model message: $msg";; esac
printf 'a\377b' > "$T/bad.txt"
msg=$($NEXUS tokenize --model $FX/tok-bytelevel --file "$T/bad.txt" 2>&1); rc=$?
check "invalid UTF-8 exit 1" "$rc" "1"
case "$msg" in *"byte offset 1"*) ok "invalid UTF-8 names the offset";; *) bad "invalid UTF-8 message: $msg";; esac
$NEXUS tokenize "$T/nothing" --text x >/dev/null 2>&1; check "missing model exit 1" "$?" "1"

printf '{"text": "hello"}\n{"text": " the"}\n{"text": "lll"}\n{"text": "hello"}\n' > "$T/c.jsonl"
out=$($NEXUS prepare-data $FX/tok-bytelevel -i "$T/c.jsonl" -o "$T/o" -t 1 --val-docs 1); rc=$?
check "prepare-data exit 0" "$rc" "0"
case "$out" in *"train.bin: 3 documents, 7 tokens"*"val.bin: 1 documents, 2 tokens"*) ok "prepare-data counts";;
    *) bad "prepare-data output: $out";; esac
[ -s "$T/o/train.bin" ] && [ -s "$T/o/val.bin" ] && ok "shards written" || bad "shards written"
# 64-byte header + 7 u16 tokens
check "train.bin size" "$(wc -c < "$T/o/train.bin" | tr -d ' ')" "78"
printf '{"text": "hello"}\nnot json\n{"text": "lll"}\n' > "$T/b.jsonl"
msg=$($NEXUS prepare-data $FX/tok-bytelevel --input "$T/b.jsonl" --out "$T/o2" 2>&1); rc=$?
check "bad line exit 1" "$rc" "1"
case "$msg" in *"b.jsonl:2:"*"not valid JSON"*) ok "bad line names file:line";; *) bad "bad line message: $msg";; esac
out=$($NEXUS prepare-data --model $FX/tok-bytelevel --input "$T/b.jsonl" --out "$T/o2" --skip-bad-lines); rc=$?
check "--skip-bad-lines exit 0" "$rc" "0"
case "$out" in *"train.bin: 2 documents, 5 tokens"*"1 bad lines skipped"*) ok "--skip-bad-lines counts";;
    *) bad "--skip-bad-lines output: $out";; esac
msg=$($NEXUS prepare-data --model $FX/tok-split --input "$T/c.jsonl" --out "$T/o3" 2>&1); rc=$?
check "tok-split has eos from template" "$rc" "0"
# issue 15, item 8: a shard set is written as a whole: re-run without a
# validation split, the earlier val.bin must not stay beside the new train.bin
$NEXUS prepare-data --model $FX/tok-bytelevel --input "$T/c.jsonl" --out "$T/o" >/dev/null; rc=$?
check "prepare-data again exit 0" "$rc" "0"
[ ! -e "$T/o/val.bin" ] && ok "no stale val.bin" || bad "the earlier val.bin is still beside the new train.bin"
grep -q '"train.bin"' "$T/o/manifest.json" 2>/dev/null && ! grep -q '"val.bin"' "$T/o/manifest.json" \
    && ok "manifest lists the set" || bad "manifest.json: $(cat "$T/o/manifest.json" 2>&1)"
ls -a "$T/o" | grep -q '\.new$\|\.tmp$' && bad "staging files left in $T/o" || ok "no staging files left"
$NEXUS prepare-data --model $FX/tok-bytelevel --input "$T/c.jsonl" >/dev/null 2>&1; check "missing --out is usage error" "$?" "2"
$NEXUS prepare-data --input "$T/c.jsonl" -o "$T/o5" >/dev/null 2>&1; check "prepare-data without a model is usage error" "$?" "2"
$NEXUS prepare-data --model $FX/tok-bytelevel --input "$T/c.jsonl" --out "$T/o4" --val-fraction 1.5 >/dev/null 2>&1
check "bad --val-fraction is usage error" "$?" "2"
summary
