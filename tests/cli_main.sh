#!/bin/sh
# cli_main.sh — the CLI skeleton: --version, help, every command's --help,
# one-line errors and exit codes (0 ok, 1 runtime, 2 usage).
: "${NEXUS:=./nexus}"
pass=0; fail=0
check() { # name expected_rc pattern -- cmd...
    name=$1 want=$2 pat=$3; shift 4
    out=$("$@" 2>&1); rc=$?
    if [ $rc = "$want" ] && echo "$out" | grep -q -- "$pat"; then pass=$((pass + 1)); echo "ok   $name"
    else fail=$((fail + 1)); echo "FAIL $name (rc $rc, want $want; output: $(echo "$out" | head -3))"; fi
}
check version 0 "^nexus [0-9]" -- $NEXUS --version
check help 0 "distill" -- $NEXUS help
check no-args 2 "usage: nexus" -- $NEXUS
check unknown-command 2 "unknown command 'frobnicate'" -- $NEXUS frobnicate
for c in distill train info tokenize prepare-data generate benchmark; do
    check "$c --help" 0 "usage: nexus $c" -- $NEXUS $c --help
    check "$c unknown flag" 2 "unknown option '--bogus'" -- $NEXUS $c --bogus
done
# a run config (or --set) that does not load is a usage error: nothing was run (issue 15, item 13)
check distill-missing-config 2 "nope.yaml" -- $NEXUS distill nope.yaml
check distill-no-args 2 "missing argument" -- $NEXUS distill
check distill-bad-set 2 "did you mean" -- $NEXUS distill configs/demo.yaml --set optimizer.lrr=1 --print-config
check train-bad-value 2 "optimizer.lr" -- $NEXUS train configs/demo.yaml --set optimizer.lr=fast
Y=$(mktemp /tmp/nx_cli_main_XXXXXX.yaml); printf 'teacher: models/demo-teacher\noptimizer: {lr: fast}\n' > $Y
check info-bad-yaml 2 "optimizer.lr" -- $NEXUS info $Y
rm -f $Y
check resume-and-overwrite 2 "not both" -- $NEXUS distill configs/demo.yaml --resume --overwrite
check print-config 0 "seq_len: 128" -- $NEXUS distill configs/demo.yaml --print-config
check distill-out-short 0 "dir: \"/tmp/nx-elsewhere\"" -- $NEXUS distill configs/demo.yaml -o /tmp/nx-elsewhere --print-config
check distill-threads-short 0 "threads: 1" -- $NEXUS distill configs/demo.yaml -t 1 --print-config
check unknown-short-flag 2 "unknown option '-q'" -- $NEXUS generate m -q
check info-yaml 0 "student of" -- $NEXUS info configs/demo.yaml
echo "$pass passed, $fail failed"
[ $fail = 0 ]
