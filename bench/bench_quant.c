/* bench_quant.c — the 8-bit kernels of block-typed weights on the matrix
 * shapes of teacher-19m (C 384, F 1024, V 8192), 2 threads:
 *   decode: one input row (nx_matvec) per weight type and kernel path,
 *           against the f32 kernel on the same matrix (time ratio);
 *   prefill: 256 rows, the int8 GEMM (nx_qmatmul) against widening the
 *           matrix to f32 and calling OpenBLAS (what cpu_linear does when
 *           NEXUS_QPREFILL=dequant), GFLOP/s of each.
 *   decode, pool: the same batch-1 product on the CPU backend's decode
 *           pool against OpenMP regions (nx_cpu_pool), both under
 *           OMP_WAIT_POLICY=passive as the nexus binary runs (this program
 *           starts itself again with it unless the variable is set).
 *   prefill, IQ4_NL and Q5_0: rows widened to Q8_0 blocks once per call
 *           against the type's own tiles (nx_qprefill_widen).
 * Best of several runs, alternated; the load average is printed, since
 * other work on the machine moves every figure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nexus/cpu.h"

static double best_of(void (*fn)(void *), void *ctx, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = nx_now();
        fn(ctx);
        double t = nx_now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

typedef struct {
    nx_weight *w;
    const float *x;
    float *y, *wide;
    int N, iters;
    void *scratch;
} job;

static void run_matvec(void *p) {
    job *j = p;
    for (int i = 0; i < j->iters; i++) nx_matvec(j->y, j->w, j->x, NULL, j->N, false);
}
static void run_qmatmul(void *p) {
    job *j = p;
    for (int i = 0; i < j->iters; i++) nx_qmatmul(j->y, j->w, j->x, NULL, j->N, false, j->scratch);
}
/* nx_qmatmul of j with a switch on and off (nx_cpu_pool, nx_qprefill_widen),
 * alternated over 3 rounds of best_of(reps): the best time of each; the
 * switch is left on. */
static void switch_ab(bool (*sw)(int), job *j, int reps, double *t_on, double *t_off) {
    *t_on = *t_off = 1e30;
    for (int r = 0; r < 3; r++) {
        sw(1);
        double a = best_of(run_qmatmul, j, reps);
        sw(0);
        double b = best_of(run_qmatmul, j, reps);
        *t_on = a < *t_on ? a : *t_on, *t_off = b < *t_off ? b : *t_off;
    }
    sw(1);
}

static void run_dequant_gemm(void *p) {
    job *j = p;
    int OC = j->w->rows, IC = j->w->cols;
    for (int i = 0; i < j->iters; i++) {
#pragma omp parallel for schedule(static)
        for (int o = 0; o < OC; o++)
            nx_type(j->w->type)->to_f32(j->wide + (size_t)o * IC, (const char *)j->w->data + (size_t)o * j->w->row_bytes, IC);
        nx_gemm(false, true, j->N, OC, IC, 1.0f, j->x, IC, j->wide, IC, 0.0f, j->y, OC);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    if (!getenv("OMP_WAIT_POLICY") && !setenv("OMP_WAIT_POLICY", "passive", 1)) execv("/proc/self/exe", argv);
    nx_set_threads(getenv("NX_THREADS") ? atoi(getenv("NX_THREADS")) : 2);
    double load[3] = {0};
    if (getloadavg(load, 3) < 0) load[0] = -1;
    printf("load average %.2f; int8 kernel paths:", load[0]);
    const char *paths[4];
    int np = nx_qkernel_paths(paths, 4);
    for (int p = 0; p < np; p++) printf(" %s", paths[p]);
    printf("\n");
    struct { const char *name; int OC, IC; } shapes[] = {
        {"gate_up", 2048, 384}, {"down", 384, 1024}, {"lm_head", 8192, 384}};
    nx_dtype types[5] = {NX_Q8_0, NX_Q4_0, NX_IQ4_NL, NX_Q4_K, NX_Q5_0};
    nx_rng r;
    nx_rng_seed(&r, 1);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int OC = shapes[s].OC, IC = shapes[s].IC, NP = 256;
        float *W = malloc(sizeof(float) * OC * IC), *X = malloc(sizeof(float) * NP * IC);
        float *Y = malloc(sizeof(float) * NP * OC), *wide = malloc(sizeof(float) * OC * IC);
        for (long i = 0; i < (long)OC * IC; i++) W[i] = 0.05f * nx_rng_normal(&r);
        for (long i = 0; i < (long)NP * IC; i++) X[i] = nx_rng_normal(&r);
        nx_weight wf = nx_weight_view(nx_backend_cpu(), NX_F32, OC, IC, W);
        job jf = {&wf, X, Y, wide, 1, 200, NULL};
        double tf = best_of(run_matvec, &jf, 7) / jf.iters;
        printf("%-8s %5dx%-5d f32 decode %8.1f us\n", shapes[s].name, OC, IC, tf * 1e6);
        for (int k = 0; k < 4; k++) {
            if (IC % nx_type(types[k])->block) continue;
            void *Wq = malloc(nx_row_bytes(types[k], (int64_t)OC * IC));
            nx_convert(Wq, types[k], W, NX_F32, (int64_t)OC * IC);
            nx_weight w = nx_weight_view(nx_backend_cpu(), types[k], OC, IC, Wq);
            void *scratch = malloc(nx_qact_bytes(NP, IC));
            printf("  %-6s decode", nx_dtype_name(types[k]));
            for (int p = 0; p < np; p++) {
                nx_qkernel_select(paths[p]);
                job j = {&w, X, Y, wide, 1, 200, scratch};
                double t = best_of(run_qmatmul, &j, 7) / j.iters;
                printf("  %s %.1f us (%.2fx f32)", paths[p], t * 1e6, tf / t);
            }
            nx_qkernel_select(paths[0]);
            {
                job j = {&w, X, Y, wide, 1, 200, scratch};
                double tp, to;
                switch_ab(nx_cpu_pool, &j, 3, &tp, &to);
                printf("\n         decode %s: pool %.1f us, OpenMP regions %.1f us (pool %.2fx)", paths[0],
                       tp / j.iters * 1e6, to / j.iters * 1e6, to / tp);
            }
            job jq = {&w, X, Y, wide, NP, 3, scratch};
            double tq = 1e30, td = 1e30;
            for (int rep = 0; rep < 3; rep++) { /* alternated */
                double a = best_of(run_qmatmul, &jq, 2), b = best_of(run_dequant_gemm, &jq, 2);
                tq = a < tq ? a : tq, td = b < td ? b : td;
            }
            if (types[k] == NX_IQ4_NL || types[k] == NX_Q5_0) { /* rows widened to Q8_0 once, or unpacked per tile */
                double tw, tn;
                switch_ab(nx_qprefill_widen, &jq, 2, &tw, &tn);
                printf("\n         prefill %d rows: widened to Q8_0 %.1f us, own tiles %.1f us (widened %.2fx)", NP,
                       tw / jq.iters * 1e6, tn / jq.iters * 1e6, tn / tw);
            }
            double flop = 2.0 * NP * OC * IC * jq.iters;
            printf("\n         prefill %d rows: int8 %.1f GFLOP/s, dequant+sgemm %.1f GFLOP/s (int8/dequant %.2fx)\n", NP,
                   flop / tq / 1e9, flop / td / 1e9, td / tq);
            free(Wq), free(scratch);
        }
        free(W), free(X), free(Y), free(wide);
    }
    return 0;
}
