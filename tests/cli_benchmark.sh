#!/bin/sh
# cli_benchmark.sh — `nexus benchmark` on the tiny fixture model: JSON with
# every model's figures, teacher-relative figures (the model against itself:
# a copy of it as the student: agreement 1, KL 0, ratio 1; the teacher is
# measured as the first row), the SVG plot, the table, and the clear error
# for data without one complete window.
M=tests/fixtures/tiny-gen
. tests/lib.sh
T=$(mktemp -d /tmp/nx_bench.XXXXXX)
trap 'rm -rf "$T"' EXIT
for i in $(seq 1 20); do echo "{\"text\": \"Document $i says hello to the world and counts $i, $((i * 7)).\"}"; done > $T/d.jsonl
echo '{"text": "hi"}' > $T/tiny.jsonl
OPTS="--seq-len 16 --prompt-tokens 16 --decode-tokens 8 --batch 2 --reps 2 --threads 1"

mkdir $T/student && cp $M/* $T/student/
$NEXUS benchmark $T/student --teacher $M --data $T/d.jsonl $OPTS --json --plot $T/p.svg > $T/b.json 2> $T/err; rc=$?
if [ $rc = 0 ] && jq -e '(.models | length) == 2 and .models[0].path == "tests/fixtures/tiny-gen" and .models[0].is_teacher
      and (.models[1].is_teacher | not)
      and .models[0].perplexity > 1 and .models[0].windows > 0 and .models[0].parameters > 10000
      and .models[0].disk_bytes > 10000 and .models[0].peak_rss_bytes > 1000000
      and .models[0].decode_tokens_per_s.median > 0 and .models[0].ttft_ms.min > 0
      and .models[0].latency_p99_ms >= .models[0].latency_p50_ms and .settings.seq_len == 16' $T/b.json > /dev/null
then ok "json: figures and settings per model"; else bad "json (rc $rc)"; cat $T/err; fi
if jq -e '.models[1].agreement == 1 and (.models[1].kl | fabs) < 1e-6 and
          ((.models[1].perplexity_ratio - 1) | fabs) < 1e-9 and .models[1].perplexity == .teacher_perplexity' $T/b.json > /dev/null
then ok "against itself: agreement 1, KL 0, ratio 1"; else bad "teacher-relative figures"; fi
if grep -q "<svg" $T/p.svg && [ "$(grep -c "<circle" $T/p.svg)" = 2 ] && grep -q "perplexity" $T/p.svg && grep -q "tiny-gen" $T/p.svg && grep -q ">student" $T/p.svg
then ok "svg plot with two labelled markers"; else bad "svg plot"; fi

$NEXUS benchmark $T/student --teacher $M --data $T/d.jsonl $OPTS > $T/table.txt 2> $T/err; rc=$?
if [ $rc = 0 ] && grep -q "^model .*ppl/tch" $T/table.txt && grep -q "^tiny-gen (teacher)" $T/table.txt &&
   grep -q "^student .* 1.000  1.0000" $T/table.txt; then ok "table"; else bad "table (rc $rc)"; cat $T/table.txt; fi

# --data as prepare-data tokens (a shard directory: its val.bin, else train.bin), --field for JSONL: the same perplexity
for i in $(seq 1 20); do echo "{\"body\": \"Document $i says hello to the world and counts $i, $((i * 7)).\"}"; done > $T/f.jsonl
$NEXUS prepare-data $M -i $T/d.jsonl -o $T/shards > /dev/null 2>&1 || true
p_text=$($NEXUS benchmark $M --data $T/d.jsonl --seq-len 16 --no-speed --json 2>/dev/null | jq .models[0].perplexity)
p_shard=$($NEXUS benchmark $M --data $T/shards --seq-len 16 --no-speed --json 2>/dev/null | jq .models[0].perplexity)
p_field=$($NEXUS benchmark $M --data $T/f.jsonl --field body --seq-len 16 --no-speed --json 2>/dev/null | jq .models[0].perplexity)
if [ -n "$p_text" ] && [ "$p_text" != null ] && [ "$p_text" = "$p_shard" ] && [ "$p_text" = "$p_field" ]
then ok "--data shard directory and --field give the JSONL's perplexity"; else bad "shard/field: '$p_text' '$p_shard' '$p_field'"; fi
$NEXUS benchmark $M --data $T/shards --seq-len 16 --no-speed > $T/table2.txt 2> $T/err
if grep -q "disk MiB  RSS MiB" $T/table2.txt && grep -q "evaluation windows" $T/err
then ok "table in MiB, progress on stderr"; else bad "units/progress"; cat $T/table2.txt $T/err; fi

$NEXUS benchmark $M --data $T/tiny.jsonl --seq-len 256 --no-speed > /dev/null 2> $T/err; rc=$?
if [ $rc = 1 ] && grep -q "fewer than one window of 256" $T/err; then ok "no complete window: clear error"; else bad "no window (rc $rc)"; cat $T/err; fi

$NEXUS benchmark $T/missing --data $T/d.jsonl --no-speed > /dev/null 2> $T/err; rc=$?
if [ $rc = 1 ] && grep -q "missing" $T/err; then ok "missing model dir: error names it"; else bad "missing model (rc $rc)"; fi

# issue 15, item 12
grep -q "b2 tok/s" $T/table.txt && ! grep -q "b8 tok/s" $T/table.txt && ok "header names --batch" ||
    bad "header: $(head -1 $T/table.txt)"
for o in "--seq-len 4294967298" "--prompt-tokens 4294967304" "--batch 4294967297" "--max-windows -3" "--threads -1"; do
    $NEXUS benchmark $M --data $T/d.jsonl $o > /dev/null 2> $T/err; rc=$?
    [ $rc = 2 ] && grep -q -- "${o% *}" $T/err && ok "$o: usage error" || bad "$o: exit $rc, $(cat $T/err | head -2)"
done
# up front: a usage error (2) and nothing measured (no table), not a wall-clock
# bound (a sanitized build on a loaded machine takes seconds just to start)
timeout -k 2 20 $NEXUS benchmark $M --data $T/d.jsonl --no-speed --plot $T/q.svg > $T/out 2> $T/err; rc=$?
[ $rc = 2 ] && grep -q -- "--plot" $T/err && [ ! -s $T/out ] && ok "--plot with --no-speed refused up front" ||
    bad "--plot --no-speed: exit $rc, $(wc -c < $T/out) bytes of output"
# SIGTERM to the parent takes the measuring child with it
$NEXUS benchmark $M --prompt-tokens 16 --decode-tokens 32 --reps 100000 --threads 1 > /dev/null 2>&1 &
parent=$!
child=""
for i in $(seq 1 100); do child=$(pgrep -P $parent | head -1); [ -n "$child" ] && break; sleep 0.1; done
kill -TERM $parent; wait $parent 2>/dev/null
sleep 1
state=$(ps -o stat= -p "${child:-0}" 2>/dev/null)   # gone, or a zombie nobody reaped yet
if [ -n "$child" ] && case "$state" in ""|Z*) true ;; *) false ;; esac; then ok "SIGTERM to the parent ends the measuring child"
else bad "measuring child ${child:-(none seen)} outlived its parent"; [ -n "$child" ] && kill -KILL $child 2>/dev/null; fi

summary
