# lib.sh — sourced by the shell tests (run from the repository root): the
# binary under test, the counters and the closing line tests/run.sh reads,
# "N passed, N failed, N skipped".
: "${NEXUS:=./nexus}"
pass=0; fail=0; skipped=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
# skip NAME REASON: a check that cannot run here (never counted as passed).
skip() { skipped=$((skipped + 1)); echo "skip $1: $2"; }
# need FILE...: true when every file exists; otherwise one failure naming the
# missing ones. For inputs a test cannot do without (golden files in ../shared).
need() {
    _missing=""
    for _f in "$@"; do [ -e "$_f" ] || _missing="$_missing $_f"; done
    [ -z "$_missing" ] && return 0
    bad "missing:$_missing (the golden tests need ../shared; see README.md)"
    return 1
}
# The closing line; exit status 1 when anything failed.
summary() { echo "$pass passed, $fail failed, $skipped skipped"; [ "$fail" = 0 ]; }
