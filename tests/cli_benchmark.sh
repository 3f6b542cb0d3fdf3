#!/bin/sh
# cli_benchmark.sh — `nexus benchmark` on the tiny fixture model: JSON with
# every model's figures, teacher-relative figures (the model against itself:
# agreement 1, KL 0, ratio 1), the SVG plot, the table, and the clear error
# for data without one complete window.
: "${NEXUS:=./nexus}"
M=tests/fixtures/tiny-gen
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
T=$(mktemp -d /tmp/nx_bench.XXXXXX)
trap 'rm -rf "$T"' EXIT
for i in $(seq 1 20); do echo "{\"text\": \"Document $i says hello to the world and counts $i, $((i * 7)).\"}"; done > $T/d.jsonl
echo '{"text": "hi"}' > $T/tiny.jsonl
OPTS="--seq-len 16 --prompt-tokens 16 --decode-tokens 8 --batch 2 --reps 2 --threads 1"

$NEXUS benchmark $M $M --teacher $M --data $T/d.jsonl $OPTS --json --plot $T/p.svg > $T/b.json 2> $T/err; rc=$?
if [ $rc = 0 ] && jq -e '(.models | length) == 2 and .models[0].path == "tests/fixtures/tiny-gen"
      and .models[0].perplexity > 1 and .models[0].windows > 0 and .models[0].parameters > 10000
      and .models[0].disk_bytes > 10000 and .models[0].peak_rss_bytes > 1000000
      and .models[0].decode_tokens_per_s.median > 0 and .models[0].ttft_ms.min > 0
      and .models[0].latency_p99_ms >= .models[0].latency_p50_ms and .settings.seq_len == 16' $T/b.json > /dev/null
then ok "json: figures and settings per model"; else bad "json (rc $rc)"; cat $T/err; fi
if jq -e '.models[0].agreement == 1 and (.models[0].kl | fabs) < 1e-6 and
          ((.models[0].perplexity_ratio - 1) | fabs) < 1e-9' $T/b.json > /dev/null
then ok "against itself: agreement 1, KL 0, ratio 1"; else bad "teacher-relative figures"; fi
if grep -q "<svg" $T/p.svg && [ "$(grep -c "<circle" $T/p.svg)" = 2 ] && grep -q "perplexity" $T/p.svg && grep -q "tiny-gen" $T/p.svg
then ok "svg plot with two labelled markers"; else bad "svg plot"; fi

$NEXUS benchmark $M --data $T/d.jsonl $OPTS > $T/table.txt 2> $T/err; rc=$?
if [ $rc = 0 ] && grep -q "^model" $T/table.txt && grep -q "^tiny-gen" $T/table.txt; then ok "table"; else bad "table (rc $rc)"; fi

$NEXUS benchmark $M --data $T/tiny.jsonl --seq-len 256 --no-speed > /dev/null 2> $T/err; rc=$?
if [ $rc = 1 ] && grep -q "not one complete window" $T/err; then ok "no complete window: clear error"; else bad "no window (rc $rc)"; cat $T/err; fi

$NEXUS benchmark $T/missing --data $T/d.jsonl --no-speed > /dev/null 2> $T/err; rc=$?
if [ $rc = 1 ] && grep -q "missing" $T/err; then ok "missing model dir: error names it"; else bad "missing model (rc $rc)"; fi

echo "$pass passed, $fail failed"
[ $fail = 0 ]
