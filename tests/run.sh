#!/bin/sh
# Run test executables and shell tests; add up their "N passed, N failed"
# lines into one closing line. Shell tests (tests/cli_*.sh, golden_*.sh)
# print the same line. $NEXUS names the binary under test.
: "${NEXUS:=./nexus}"
export NEXUS
total_p=0; total_f=0; broken=""
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
    p=$(echo "$line" | cut -d' ' -f1); f=$(echo "$line" | cut -d' ' -f3)
    total_p=$((total_p + p)); total_f=$((total_f + f))
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && { broken="$broken $t(rc=$rc)"; total_f=$((total_f + 1)); }
done
[ -n "$broken" ] && echo "crashed or no summary:$broken"
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
