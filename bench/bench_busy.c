/* bench_busy.c — nexus on a busy machine: batch-1 decode of teacher-19m
 * (f32, 32 tokens after a 1-token prompt) and the KD step of P1 at a small
 * batch (teacher-19m forward + S7M forward/backward + AdamW, 4 × 128), each
 * with and without one other CPU-bound process (a busy loop at the same
 * priority) on the machine, under
 *
 *   spin     libgomp's default wait (OMP_WAIT_POLICY unset: threads spin
 *            up to GOMP_SPINCOUNT = 300000 iterations at every barrier) —
 *            what nexus ran with before;
 *   passive  OMP_WAIT_POLICY=passive (threads sleep in the kernel at once) —
 *            what the nexus binary now sets for itself (src/cli/threads.c);
 *
 * at 2 threads and at 1. libgomp reads its environment when it loads, so
 * every measurement is a fresh process (this binary re-run with `child`)
 * started with its own environment; the cases alternate, round after
 * round, and each figure is the best of the rounds. Skips without ../shared.
 *
  *   build/bench/bench_busy [ROUNDS]      (default 2) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nexus/core.h"
#include "nexus/hf.h"
#include "nexus/train.h"

#define TEACHER "../shared/models/teacher-19m"

static double decode(const nx_model *m) {
    nx_kv_cache kv;
    nx_acts s;
    nx_err e;
    int NDEC = 32;
    if (nx_kv_cache_init(&kv, m, 1, 64, &e) || nx_acts_init_rows(&s, m, 1, 1, 64, NX_ACTS_STREAM, &e)) return -1;
    int32_t id[1] = {5};
    nx_span sp = {0, 0, 1};
    nx_model_run(m, &s, &(nx_batch){1, id, &sp, 1, &kv, NX_OUT_LAST}); /* warm-up */
    double t0 = nx_now();
    for (int k = 0; k < NDEC; k++) {
        id[0] = (int32_t)((11 + 7 * k) % m->cfg.V);
        sp = (nx_span){0, 1 + k, 1};
        nx_model_run(m, &s, &(nx_batch){1, id, &sp, 1, &kv, NX_OUT_LAST});
    }
    double tps = NDEC / (nx_now() - t0);
    nx_acts_free(&s);
    nx_kv_cache_free(&kv);
    return tps;
}

static double kd_step(nx_model *t) {
    nx_model_config sc = {.arch = NX_ARCH_LLAMA, .V = 8192, .C = 256, .L = 4, .NH = 4, .KVH = 2, .HS = 64,
                          .F = 704, .max_pos = 1024, .eps = 1e-5f, .rope_theta = 10000, .bos_id = -1,
                          .eos_id = -1, .dtype = NX_F32};
    nx_model s;
    nx_err e;
    if (nx_model_init(&s, &sc, &e)) return -1;
    nx_rng r;
    nx_rng_seed(&r, 1);
    nx_model_init_random(&s, 0.02f, &r);
    int B = 4, T = 128, N = B * T;
    nx_train_opts o = {.B = B, .T = T, .accum = 1, .alpha = 0.5f, .temp = 2.0f, .kd = NX_KD_FORWARD_KL,
                       .lr = 1e-3f, .min_lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                       .weight_decay = 0.1f, .clip = 1.0f, .sched = NX_SCHED_COSINE, .warmup = 15,
                       .total_steps = 150};
    nx_trainer tr;
    if (nx_trainer_init(&tr, &s, t, &o, &e)) return -1;
    int32_t *in = malloc(sizeof(int32_t) * N), *tg = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) in[i] = (int32_t)nx_rng_below(&r, 8192), tg[i] = (int32_t)nx_rng_below(&r, 8192);
    nx_step_stats st;
    nx_trainer_step(&tr, in, tg, &st); /* warm-up */
    double t0 = nx_now();
    nx_trainer_step(&tr, in, tg, &st);
    double tps = N / (nx_now() - t0);
    nx_trainer_free(&tr);
    nx_model_free(&s);
    free(in), free(tg);
    return tps;
}

/* `child THREADS`: one measurement of both, printed as "decode X kd Y". */
static int child(int threads) {
    nx_set_threads(threads);
    nx_model t;
    nx_err e;
    if (nx_hf_load_model(TEACHER, &t, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    double d = decode(&t), k = kd_step(&t);
    printf("decode %.3f kd %.3f\n", d, k);
    nx_model_free(&t);
    return 0;
}

/* Runs `self child threads` with OMP_WAIT_POLICY as policy (NULL: unset). */
static int measure(const char *self, const char *policy, int threads, double *dec, double *kd) {
    int fd[2];
    if (pipe(fd)) return -1;
    pid_t p = fork();
    if (p == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        if (policy) setenv("OMP_WAIT_POLICY", policy, 1);
        else unsetenv("OMP_WAIT_POLICY");
        unsetenv("GOMP_SPINCOUNT");
        char t[16];
        snprintf(t, sizeof t, "%d", threads);
        execl(self, self, "child", t, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char buf[256] = "";
    ssize_t n = read(fd[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    close(fd[0]);
    int st;
    waitpid(p, &st, 0);
    return sscanf(buf, "decode %lf kd %lf", dec, kd) == 2 ? 0 : -1;
}

static pid_t hog(void) {
    pid_t p = fork();
    if (p == 0) {
        volatile unsigned long x = 0;
        for (;;) x++;
    }
    return p;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "child")) return child(atoi(argv[2]));
    if (access(TEACHER "/model.safetensors", R_OK) != 0) {
        printf("bench_busy: skipped (%s not found: needs ../shared)\n", TEACHER);
        return 0;
    }
    int rounds = argc > 1 ? atoi(argv[1]) : 2;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return fprintf(stderr, "bench_busy: cannot find itself\n"), 1;
    self[n] = 0;
    double load[3] = {0};
    getloadavg(load, 3);
    const char *pol[2] = {NULL, "passive"}, *pname[2] = {"spin (before)", "passive (now)"};
    double best[2][2][2][2] = {{{{0}}}}; /* [busy][policy][threads 2, 1][decode, kd] */
    for (int r = 0; r < rounds; r++)
        for (int busy = 0; busy < 2; busy++) {
            pid_t h = busy ? hog() : 0;
            for (int p = 0; p < 2; p++)
                for (int ti = 0; ti < 2; ti++) {
                    double d = 0, k = 0;
                    if (measure(self, pol[p], 2 - ti, &d, &k)) fprintf(stderr, "bench_busy: a run failed\n");
                    if (d > best[busy][p][ti][0]) best[busy][p][ti][0] = d;
                    if (k > best[busy][p][ti][1]) best[busy][p][ti][1] = k;
                    fprintf(stderr, "\rround %d/%d %s", r + 1, rounds, busy ? "busy" : "idle");
                }
            if (h > 0) kill(h, SIGKILL), waitpid(h, NULL, 0);
        }
    fprintf(stderr, "\n");
    printf("teacher-19m f32 on %d cores, load average at the start %.2f %.2f %.2f; best of %d rounds, tokens/s\n",
           (int)sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2], rounds);
    printf("%-15s %7s | %14s %14s | %14s %14s\n", "wait policy", "threads", "decode alone", "decode + busy",
           "KD step alone", "KD step + busy");
    for (int p = 0; p < 2; p++)
        for (int ti = 0; ti < 2; ti++)
            printf("%-15s %7d | %14.1f %14.1f | %14.1f %14.1f\n", pname[p], 2 - ti, best[0][p][ti][0],
                   best[1][p][ti][0], best[0][p][ti][1], best[1][p][ti][1]);
    return 0;
}
