/* pool.c — the threads of the decode-sized parallel loops.
 *
 * A decode step of a small model is some fifty parallel loops of 5–100 µs
 * each (the linears, attention, the head), with a few µs of serial work
 * between them. nexus runs libgomp with OMP_WAIT_POLICY=passive
 * (src/cli/threads.c: spinning threads wreck a loaded machine), so every
 * OpenMP region there wakes a sleeping thread through the kernel, and in a
 * virtual machine a wake-up is an inter-processor interrupt: ~10 µs per
 * region, a third of a decode step of teacher-19m. llama.cpp spins
 * instead, and falls to a tenth of its speed when the cores are shared.
 *
 * This pool keeps its workers awake for a short while instead: after a
 * loop a worker polls for the next one for up to CPU_POOL_SPIN_US,
 * yielding its core to any other runnable thread between polls
 * (sched_yield), then sleeps on a futex until woken. On an idle core the
 * next loop starts within a microsecond; on a busy machine a polling
 * worker gives its time slice away at every poll, and sleeps soon. The
 * caller runs the first share of every loop itself and polls the same
 * way for the workers to finish.
 *
 * cpu_pool_for(n, T, fn, ctx) splits items 0..n−1 into one contiguous
 * range per thread (T threads at most, as schedule(static) does), calls
 * fn(ctx, begin, end, t) on thread t for each, and returns when every
 * range is done. It runs the loop alone, on the calling thread, inside an
 * OpenMP region or when another thread is using the pool; with
 * NEXUS_POOL=0 in the environment or nx_cpu_pool(0) it runs the same
 * ranges as an OpenMP loop (benchmarks compare the two). */
#include <limits.h>
#include <linux/futex.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cpu_impl.h"

enum { CPU_POOL_MAX = 64, CPU_POOL_SPIN_US = 200 };

typedef struct pool {
    atomic_uint gen;          /* bumped for every loop */
    atomic_int pending;       /* workers yet to finish the current loop (all started ones) */
    atomic_int sleepers;      /* workers asleep on gen */
    atomic_int caller_asleep; /* the caller asleep on pending */
    atomic_flag busy;         /* one loop at a time */
    cpu_range_fn fn;
    void *ctx;
    int n, nthreads, started;
} pool;

static pool P = {.busy = ATOMIC_FLAG_INIT};

static void futex_wait(atomic_int *addr, int val) {
    syscall(SYS_futex, (int *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}
static void futex_wake(atomic_int *addr, int n) { syscall(SYS_futex, (int *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0); }

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

/* Poll until *addr != val (want_change) or == 0 (!want_change) for up to
 * CPU_POOL_SPIN_US, yielding between polls; true when it happened. */
static bool poll_for(atomic_uint *gen, unsigned seen, atomic_int *cnt) {
    double t0 = 0;
    for (int i = 0;; i++) {
        if (gen ? atomic_load(gen) != seen : atomic_load(cnt) == 0) return true;
        if ((i & 15) == 15) {
            if (t0 == 0) t0 = now_us();
            else if (now_us() - t0 > CPU_POOL_SPIN_US) return false;
            sched_yield();
        } else {
            __builtin_ia32_pause();
        }
    }
}

static void range_of(int n, int T, int t, int *b, int *e) {
    *b = (int)((long)n * t / T);
    *e = (int)((long)n * (t + 1) / T);
}

/* arg: the worker's id and, above bit 8, the generation it was made in
 * (it may start running after the caller has posted the next loop) */
static void *worker(void *arg) {
    int id = (int)((long)arg & 255);
    unsigned seen = (unsigned)((long)arg >> 8);
    for (;;) {
        if (!poll_for(&P.gen, seen, NULL)) {
            atomic_fetch_add(&P.sleepers, 1);
            while (atomic_load(&P.gen) == seen) futex_wait((atomic_int *)&P.gen, (int)seen);
            atomic_fetch_sub(&P.sleepers, 1);
        }
        seen = atomic_load(&P.gen);
        if (id < P.nthreads) { /* a worker beyond this loop's count only reports */
            int b, e;
            range_of(P.n, P.nthreads, id, &b, &e);
            if (b < e) P.fn(P.ctx, b, e, id);
        }
        if (atomic_fetch_sub(&P.pending, 1) == 1 && atomic_load(&P.caller_asleep)) futex_wake(&P.pending, 1);
    }
    return NULL;
}

static int ON = -1; /* −1: not yet read from NEXUS_POOL */

static bool pool_enabled(void) {
    if (ON < 0) {
        const char *e = getenv("NEXUS_POOL");
        ON = !(e && !strcmp(e, "0"));
    }
    return ON;
}

bool nx_cpu_pool(int on) {
    if (on >= 0) ON = on != 0;
    return pool_enabled();
}

/* Start workers 1..T−1 (once each; the caller holds the pool); false if a
 * thread cannot be made (P.started says how many there are). */
static bool ensure_workers(int T) {
    bool ok = true;
    while (P.started < T - 1) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        long arg = (long)(P.started + 1) | (long)atomic_load(&P.gen) << 8;
        ok = !pthread_create(&th, &at, worker, (void *)arg);
        pthread_attr_destroy(&at);
        if (!ok) break;
        P.started++;
    }
    return ok;
}

void cpu_pool_for(int n, int T, cpu_range_fn fn, void *ctx) {
    if (T > CPU_POOL_MAX) T = CPU_POOL_MAX;
    if (T > n) T = n;
    if (!pool_enabled() && T > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static) num_threads(T)
        for (int i = 0; i < n; i++) fn(ctx, i, i + 1, omp_get_thread_num());
        return;
    }
    if (T <= 1 || !pool_enabled() || omp_in_parallel() || atomic_flag_test_and_set(&P.busy)) {
        if (n > 0) fn(ctx, 0, n, 0);
        return;
    }
    ensure_workers(T);
    if (T > P.started + 1) T = P.started + 1; /* threads could not be made: fewer */
    if (T <= 1) {
        atomic_flag_clear(&P.busy);
        fn(ctx, 0, n, 0);
        return;
    }
    P.fn = fn, P.ctx = ctx, P.n = n, P.nthreads = T;
    atomic_store(&P.pending, P.started);
    atomic_fetch_add(&P.gen, 1);
    if (atomic_load(&P.sleepers)) futex_wake((atomic_int *)&P.gen, INT_MAX);
    int b, e;
    range_of(n, T, 0, &b, &e);
    if (b < e) fn(ctx, b, e, 0);
    if (!poll_for(NULL, 0, &P.pending)) {
        atomic_store(&P.caller_asleep, 1);
        for (int v; (v = atomic_load(&P.pending)) != 0;) futex_wait(&P.pending, v);
        atomic_store(&P.caller_asleep, 0);
    }
    atomic_flag_clear(&P.busy);
}
