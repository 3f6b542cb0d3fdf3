# lib.sh — sourced by the shell tests (run from the repository root): the
# binary under test and the pass/fail counters tests/run.sh reads from the
# last line, "N passed, M failed".
: "${NEXUS:=./nexus}"
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
