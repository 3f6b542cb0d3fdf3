#!/bin/sh
# soak_resume.sh [KILLS] — the kill-and-resume soak (issue 15): the demo
# distillation (configs/demo.yaml: 150 steps, here with a checkpoint every
# 3 steps, keep 2; SOAK_SETS adds --set options, e.g. a shorter seq_len on
# a busy machine) is killed with SIGKILL KILLS times (default 50) at random
# moments, each time resumed, and once run into a full disk; its final
# student must be byte-identical to an uninterrupted run's, and its metrics
# (every step's loss, every evaluation) identical but for timings.
#
# Moments: the uninterrupted run first measures how long a start takes (to
# its first step, L) and a step (T). Then, kill by kill: every fifth waits
# for a checkpoint's temporary file (step-N.nxck.tmp) to appear and kills
# during that write; one in five kills during start-up (loading the
# teacher, the data, the checkpoint): a random 0.2 s to L after the start,
# or as the life's first step ends if that comes sooner; the
# others let the life train a random 1 to 2 x checkpoint.every steps (fewer
# near the end), counted from its own progress lines, then wait a random
# fraction of T, so they land anywhere in a step, an evaluation or a
# checkpoint write, and about one life in two reaches a new checkpoint. A
# kill that leaves a .tmp file behind is counted as one during a
# checkpoint write. The run's directory is a tmpfs of 128 MiB (root needed;
# otherwise the disk-full step is skipped and /tmp is used): once, instead
# of a kill, the tmpfs is filled up to 4 MiB while the run trains, so that
# its next checkpoint hits ENOSPC; the run must exit 1 saying the disk is
# full, and resume from its previous checkpoint when the space is back.
#
# Prints one line per kill and a summary; exit 0 when the student and the
# metrics match (about 16 minutes here: docs/BENCHMARKS.md). SOAK_SEED
# replays the random choices. Run from the
# repository root after make; NEXUS names the binary (default ./nexus).
KILLS=${1:-50}
NEXUS=${NEXUS:-./nexus}
CFG=configs/demo.yaml
EVERY=3
SETS="--set checkpoint.every=$EVERY --set checkpoint.keep=2 --set log.every=1 $SOAK_SETS"
W=$(mktemp -d /tmp/nx_soak_XXXXXX)
MNT=$W/mnt
mkdir -p $MNT
tmpfs=0
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=128m tmpfs $MNT 2>/dev/null; then tmpfs=1; fi
cleanup() {
    [ -n "$pid" ] && kill -KILL $pid 2>/dev/null
    [ $tmpfs = 1 ] && umount $MNT
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
OUT=$MNT/run CK=$MNT/run/checkpoints
t_start=$(date +%s)

echo "soak: the uninterrupted run ($CFG $SETS)"
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
t0=$(date +%s.%N)
$NEXUS distill $CFG $SETS --set output.dir=$W/straight > $W/straight.log 2>&1 &
pid=$!
L=""
while kill -0 $pid 2>/dev/null; do
    [ -z "$L" ] && grep -q '"loss"' $W/straight/metrics.jsonl 2>/dev/null && L=$(calc "$(date +%s.%N) - $t0")
    sleep 0.1
done
wait $pid || { echo "straight run failed"; cat $W/straight.log; exit 1; }
pid=""
STEPS=$(grep -c '"loss"' $W/straight/metrics.jsonl)
T=$(calc "($(date +%s.%N) - $t0 - $L) / ($STEPS - 1)")
echo "soak: $STEPS steps; a start takes L = $L s, a step T = $T s (evaluations and checkpoints included)"

# the k-th number of one random sequence, seeded from the clock (printed, to replay)
SEED=${SOAK_SEED:-$(date +%s)}
echo "soak: $KILLS kills, seed $SEED, output on $( [ $tmpfs = 1 ] && echo "a 128 MiB tmpfs" || echo "/tmp (no tmpfs: not root)")"
rand() { awk -v s=$SEED -v k=$1 -v lo=$2 -v hi=$3 'BEGIN { srand(s); for (i = 0; i < k; i++) r = rand(); printf "%.2f", lo + r * (hi - lo) }'; }

last_step() { # the newest checkpoint's step, 0 when none
    s=0
    for f in $CK/step-*.nxck; do [ -e "$f" ] || continue; n=${f##*/step-}; n=${n%.nxck}; s=$(expr $n + 0); done
    echo $s
}

life_steps() { n=$(grep -c '^step ' $W/run.log 2>/dev/null); echo ${n:-0}; } # steps this life has taken

start() { # the run, resumed when it has a checkpoint, else started over
    if [ "$(last_step)" -gt 0 ]; then mode=--resume; else mode=--overwrite; fi
    $NEXUS distill $CFG $SETS --set output.dir=$OUT $mode > $W/run.log 2>&1 &
    pid=$!
}

k=0 during=0 loading=0 full_done=0 full_at=$((KILLS / 2))
while [ $k -lt $KILLS ]; do
    k=$((k + 1))
    before=$(last_step)
    start
    if [ $tmpfs = 1 ] && [ $full_done = 0 ] && [ $k -ge $full_at ]; then
        # the disk-full moment: wait for the run to train a step, then fill the tmpfs
        while kill -0 $pid 2>/dev/null && [ "$(life_steps)" -lt 1 ]; do sleep 0.2; done
        free=$(df -k --output=avail $MNT | tail -1)
        dd if=/dev/zero of=$MNT/filler bs=1k count=$((free - 4096)) 2>/dev/null
        wait $pid; rc=$?; pid=""
        rm -f $MNT/filler
        if [ $rc = 1 ] && grep -q "disk full" $W/run.log; then
            echo "full $k: the run stopped at a full disk (exit 1: $(grep -o 'No space[^;]*' $W/run.log | head -1)); checkpoint at step $(last_step) kept"
            full_done=1
        else
            echo "full $k: expected exit 1 with 'disk full', got exit $rc:"; cat $W/run.log; exit 1
        fi
        k=$((k - 1)) # not a kill
        continue
    fi
    if [ $((k % 5)) = 0 ]; then # during a checkpoint write
        how="at a checkpoint write"
        t0=$(date +%s)
        while kill -0 $pid 2>/dev/null; do
            set -- $CK/step-*.nxck.tmp
            [ -e "$1" ] && break
            [ $(( $(date +%s) - t0 )) -gt 120 ] && break
            sleep 0.01
        done
    elif [ $((k % 5)) = 1 ]; then # during start-up, at most until the first step ends
        d=$(rand $k 0.2 $L)
        how="during start-up, after $d s"
        end=$(calc "$(date +%s.%N) + $d")
        while kill -0 $pid 2>/dev/null && [ "$(life_steps)" -lt 1 ] &&
              [ "$(calc "$(date +%s.%N) < $end")" = 1.00 ]; do sleep 0.05; done
        [ "$(life_steps)" -ge 1 ] && how="during start-up (at the first step's end, before $d s)"
    else # after j steps of this life and a fraction of one
        left=$((STEPS - before - 2))
        j=$(awk -v r=$(rand $k 0 1) -v e=$EVERY -v m=$left 'BEGIN { j = 1 + int(r * 2 * e); if (j > m) j = m; if (j < 0) j = 0; print j }')
        d=$(rand $((k + KILLS)) 0 $T)
        how="after $j steps + $d s"
        while kill -0 $pid 2>/dev/null && [ "$(life_steps)" -lt $j ]; do sleep 0.05; done
        sleep $d
    fi
    if ! kill -KILL $pid 2>/dev/null; then
        wait $pid; rc=$?; pid=""
        echo "kill $k: the run had ended (exit $rc) before the kill"
        [ $rc = 0 ] && { echo "soak: the run finished after $((k - 1)) kills; start again with more steps or fewer kills"; exit 1; }
        cat $W/run.log; exit 1
    fi
    wait $pid 2>/dev/null; pid=""
    tmp=""; set -- $CK/step-*.nxck.tmp; [ -e "$1" ] && tmp=" (a checkpoint was being written: ${1##*/})" && during=$((during + 1))
    [ "$(life_steps)" = 0 ] && loading=$((loading + 1))
    echo "kill $k $how: checkpoint step $before -> $(last_step)$tmp"
done

echo "soak: resuming to the end"
start
wait $pid; rc=$?; pid=""
[ $rc = 0 ] || { echo "final resume failed (exit $rc)"; cat $W/run.log; exit 1; }

# the student and the metrics (timings cut) against the uninterrupted run
strip() { sed 's/, "step_s".*//' "$1"; }
ok=1
cmp -s $W/straight/model.safetensors $OUT/model.safetensors && echo "student: model.safetensors byte-identical" ||
    { echo "student: model.safetensors DIFFERS"; ok=0; }
cmp -s $W/straight/config.json $OUT/config.json || { echo "config.json differs"; ok=0; }
if [ "$(strip $W/straight/metrics.jsonl)" = "$(strip $OUT/metrics.jsonl)" ]; then
    echo "metrics: $(grep -c '"loss"' $OUT/metrics.jsonl) step lines and $(grep -c '"eval"' $OUT/metrics.jsonl) evaluations identical"
else
    echo "metrics differ"; ok=0
fi
echo "summary: $k kills ($during during a checkpoint write, $loading before the life's first step), disk full $( [ $full_done = 1 ] && echo once || echo "skipped (no tmpfs)"), $(( $(date +%s) - t_start )) s; $( [ $ok = 1 ] && echo PASS || echo FAIL)"
[ $ok = 1 ]
