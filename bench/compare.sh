#!/bin/sh
# compare.sh BASE — this checkout's engine beside commit BASE's, in one run
# on this machine: builds BASE's benchmarks from `git archive` under
# build-base/ (never committed), then runs bench_train and bench_infer
# of both, alternating, ROUNDS times (default 3), and prints each figure's
# best and the ratio new ÷ base: the KD step, the CE step, batch-1 decode
# and 256-token prefill. Needs ../shared (teacher-19m); run from the repo
# root. Other work on the machine depresses both sides alike but adds
# noise: the load average is printed.
set -e
base=${1:?usage: bench/compare.sh BASE_COMMIT}
rounds=${ROUNDS:-3}
dir=build-base
if [ ! -d ../shared/models/teacher-19m ]; then echo "compare: skipped (needs ../shared)"; exit 0; fi
rev=$(git rev-parse --short "$base")
if [ ! -x "$dir/$rev/build/bench/bench_infer" ]; then
    rm -rf "$dir/$rev" && mkdir -p "$dir/$rev"
    git archive "$base" | tar -x -C "$dir/$rev"
    make -s -C "$dir/$rev" -j2 build/bench/bench_train build/bench/bench_infer >/dev/null
fi
make -s -j2 build/bench/bench_train build/bench/bench_infer >/dev/null
# the number before "tokens/s" on the first line matching $2 of file $1
fig() { grep -m1 "$2" "$1" | sed 's/tokens\/s.*//' | awk '{print $NF}'; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }
out=$(mktemp -d)
for k in kd ce dec pre; do eval "new_$k=0 old_$k=0"; done
i=0
while [ $i -lt "$rounds" ]; do
    for side in new old; do
        bin=build/bench; [ $side = old ] && bin=$dir/$rev/build/bench
        $bin/bench_train > "$out/t" 2>&1
        $bin/bench_infer > "$out/i" 2>&1
        eval "${side}_kd=\$(best \$${side}_kd \$(fig $out/t 'nexus   KD step'))"
        eval "${side}_ce=\$(best \$${side}_ce \$(fig $out/t 'nexus   CE step'))"
        eval "${side}_dec=\$(best \$${side}_dec \$(fig $out/i 'decode batch 1'))"
        eval "${side}_pre=\$(best \$${side}_pre \$(fig $out/i 'prefill 256'))"
    done
    i=$((i + 1))
done
rm -rf "$out"
echo "this checkout ($(git rev-parse --short HEAD)) vs $rev: best of $rounds alternating rounds, tokens/s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %10s %10s %7s\n' figure new base ratio
for k in kd ce dec pre; do
    case $k in kd) name="KD step (16x256, teacher-19m)";; ce) name="CE step (16x256)";;
               dec) name="decode, batch 1";; pre) name="prefill, 256 tokens";; esac
    eval "n=\$new_$k o=\$old_$k"
    awk -v name="$name" -v n="$n" -v o="$o" 'BEGIN { printf "%-34s %10.1f %10.1f %7.3f\n", name, n, o, (o > 0 ? n / o : 0) }'
done
