/* threads.c — how the nexus binary's threads wait. Every parallel op ends
 * at an OpenMP barrier (OpenBLAS's OpenMP build shares libgomp's pool). By
 * default libgomp makes a thread that reaches a barrier first spin for up
 * to 300000 iterations before it sleeps: on an idle machine that saves a
 * wake-up, but with any other work on the cores the spinning threads take
 * the time slices the late thread needs, and every barrier waits for the
 * scheduler. bench/bench_busy.c measured it on 2 cores with other work
 * running: batch-1 decode of teacher-19m at 2 tokens/s spinning against 210
 * sleeping, the KD step at 34 against 162 tokens/s (docs/BENCHMARKS.md). So
 * nexus asks libgomp to sleep at once (OMP_WAIT_POLICY=passive), keeping
 * all cores: 2 sleeping threads beat 1 in every case measured.
 *
 * libgomp reads its environment when it is loaded, before main runs, so
 * the variable is set and the binary started again on itself (exec of
 * /proc/self/exe, same arguments) — only for the commands that compute in
 * parallel, since a second start costs a few tens of milliseconds (more on
 * a loaded machine). A user who sets OMP_WAIT_POLICY or GOMP_SPINCOUNT
 * keeps that choice and nothing is re-executed; when the exec fails, nexus
 * runs on with libgomp's default. Batch-1 decode loops do not wait here:
 * they run on the CPU backend's own pool (src/backend/cpu/pool.c), whose
 * workers poll briefly, yielding, before they sleep. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void cli_threads_policy(int argc, char **argv) {
    static const char *parallel[] = {"generate", "benchmark", "distill", "train", "prepare-data"};
    bool compute = false;
    for (size_t i = 0; argc > 1 && i < sizeof parallel / sizeof parallel[0]; i++) compute |= !strcmp(argv[1], parallel[i]);
    if (!compute || getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1)) return;
    execv("/proc/self/exe", argv);
    /* exec failed: go on as we are (the variable set now has no effect on this process) */
}
