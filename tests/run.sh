#!/bin/sh
# Run test executables and shell tests; add up their closing lines
# "N passed, N failed[, N skipped]" into one: "N passed, N failed, N skipped",
# after the list of what was skipped and why (a skip is never a pass).
# Shell tests (tests/cli_*.sh, golden_*.sh) print the same line (tests/lib.sh).
# $NEXUS names the binary under test.
: "${NEXUS:=./nexus}"
export NEXUS
total_p=0; total_f=0; total_s=0; broken=""; skips=""
for t in "$@"; do
    [ -e "$t" ] || continue
    echo "== $t"
    case "$t" in *.sh) out=$(sh "$t" 2>&1) ;; *) out=$("./$t" 2>&1) ;; esac
    rc=$?
    echo "$out"
    line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        broken="$broken $t(rc=$rc)"; total_f=$((total_f + 1)); continue
    fi
    p=$(echo "$line" | cut -d' ' -f1); f=$(echo "$line" | cut -d' ' -f3 | tr -d ,)
    s=$(echo "$line" | sed -n 's/.*failed, \([0-9][0-9]*\) skipped.*/\1/p')
    total_p=$((total_p + p)); total_f=$((total_f + f)); total_s=$((total_s + ${s:-0}))
    sk=$(echo "$out" | grep '^skip ' | sed "s|^skip |  $t: |")
    [ -n "$sk" ] && skips="$skips$sk
"
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && { broken="$broken $t(rc=$rc)"; total_f=$((total_f + 1)); }
done
[ -n "$broken" ] && echo "crashed or no summary:$broken"
[ -n "$skips" ] && printf 'skipped:\n%s' "$skips"
echo "$total_p passed, $total_f failed, $total_s skipped"
[ "$total_f" -eq 0 ]
