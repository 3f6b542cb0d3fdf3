#!/bin/sh
# golden_memory.sh — issue 15, item 5: configs/nano-4gb.yaml with real
# paths (the ../shared teacher and corpus) plans about 65 GiB, more than
# this machine has: nexus distill must refuse within 2 seconds, before
# loading anything heavy, with the plan, the memory available and the
# knobs. (timeout: should that ever regress, it is not left to allocate.)
. tests/lib.sh
need ../shared/models/teacher-19m/config.json ../shared/data/corpus/train.jsonl.gz || { summary; exit 1; }
T=$(mktemp -d)
t0=$(date +%s.%N)
timeout -k 5 20 $NEXUS distill configs/nano-4gb.yaml --set teacher.path=../shared/models/teacher-19m \
    --set data.train=../shared/data/corpus/train.jsonl.gz --set data.validation=../shared/data/corpus/validation.jsonl \
    --set output.dir=$T/out > $T/log 2>&1
rc=$?
t1=$(date +%s.%N)
[ $rc = 1 ] && grep -q "the run needs .* of memory but .* is available" $T/log && grep -q "data.batch_size 1 with" $T/log \
    && ok "nano-4gb refused with the plan" || { bad "nano-4gb: exit $rc"; cat $T/log; }
s=$(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }")
awk "BEGIN { exit !($s < 2) }" && ok "refused in $s s" || bad "refusal took $s s (limit 2)"
[ ! -e $T/out ] && ok "nothing written" || bad "$T/out was created"
rm -rf $T
summary
