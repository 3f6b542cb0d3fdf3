/* plan.c — the memory a run needs, known before anything heavy is loaded.
 *
 * From the teacher's config.json and the student's shape alone (no
 * weights, no data read), the run's large buffers are added up with the
 * same functions that size them when they are allocated:
 *
 *   student    16 bytes per parameter: f32 weights, gradients, AdamW m, v
 *   activations nx_acts_bytes(student, B, T, training)
 *   teacher    nx_model_bytes at teacher.dtype (distilling or copying layers)
 *   teacher activations  nx_acts_bytes(teacher, B, T, inference
 *              (+ attention maps for attention transfer))
 *   losses     nx_trainer_loss_bytes: projections and their AdamW state,
 *              hidden-state and attention-map gradients
 *   evaluation inference activations of both models at B × seq_len (with
 *              validation data)
 *   data       documents tokenized in memory: about one 4-byte id per 4
 *              bytes of text, twice that while the buffer grows (a shard is
 *              mapped, not counted); gzip sizes from the gzip trailer
 *   runtime    a fixed 256 MiB for the program, its libraries, OpenBLAS'
 *              buffers and the tokenizer
 *
 * and set against the memory the process can have: MemAvailable
 * (/proc/meminfo), the cgroup's limit less its usage (v2 memory.max, v1
 * memory.limit_in_bytes), and the data and address-space rlimits — the
 * smallest wins. A run that does not fit is refused at once with the plan,
 * what is available, and what each knob would bring the plan to. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "nexus/fsutil.h"
#include "run_internal.h"

static double file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? (double)st.st_size : 0;
}

/* Text bytes of a document file: the gzip trailer's ISIZE (mod 2^32, so
 * at least 4 × the compressed size when it wrapped), or the file's size. */
static double text_bytes(const char *path) {
    double sz = file_size(path);
    FILE *f = fopen(path, "rb");
    if (!f) return sz;
    unsigned char m[2], t[4];
    double out = sz;
    if (fread(m, 1, 2, f) == 2 && m[0] == 0x1f && m[1] == 0x8b && fseek(f, -4, SEEK_END) == 0 &&
        fread(t, 1, 4, f) == 4) {
        double isize = (double)((uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24);
        out = isize >= sz ? isize : 4 * sz;
    }
    fclose(f);
    return out;
}

static double data_bytes(const char *path) {
    if (!path[0]) return 0;
    struct stat st;
    size_t n = strlen(path);
    if (stat(path, &st) || S_ISDIR(st.st_mode) || (n > 4 && !strcmp(path + n - 4, ".bin"))) return 0;
    return 2 * text_bytes(path); /* ~1 id (4 bytes) per 4 bytes of text, ×2 while growing */
}

/* NX_ACTS_FLASH where the trainer asks for it on the GPU: bf16 precision,
 * no attention-transfer loss (which keeps the maps), and a head size and
 * B·NH that flash attention's training path takes (train.c asks the
 * backend the same through nx_attention_lse_fits) */
static unsigned flash_flag(const nx_run_config *rc, const nx_train_opts *to, const nx_model_config *c, int B) {
    bool on = rc->precision == NX_PREC_BF16 && to->attention_weight <= 0 &&
              nx_cuda_flash(c->HS, (int64_t)B * c->NH, true);
    return on ? NX_ACTS_FLASH : 0;
}

int nx_run_plan_compute(const nx_run_config *rc, bool distill, const nx_model_config *t, const nx_model_config *s,
                nx_run_plan *p, nx_err *err) {
    memset(p, 0, sizeof *p);
    int B = rc->data.batch_size, T = rc->data.seq_len - 1;
    if ((double)B * rc->data.seq_len > 2147483647.0)
        return nx_fail(err, "data.batch_size %d × data.seq_len %d is more tokens than one micro-batch can hold "
                            "(2^31 - 1): lower them", B, rc->data.seq_len);
    nx_train_opts to = nx_run_train_opts(rc, distill);
    bool teacher_weights = distill || rc->student.init.kind != NX_INIT_RANDOM;
    p->params = (double)nx_model_count(s);
    p->student = 16 * p->params;
    unsigned rec = rc->recompute ? NX_ACTS_RECOMPUTE : 0;
    p->activations = (double)nx_acts_bytes(s, B, T, NX_ACTS_TRAIN | rec) + 8.0 * rc->data.grad_accum * B * T;
    if (teacher_weights) p->teacher = (double)nx_model_bytes(t, rc->teacher.dtype);
    if (distill) {
        p->teacher_acts = (double)nx_acts_bytes(t, B, T, to.attention_weight > 0 ? NX_ACTS_KEEP_PROBS : NX_ACTS_INFER);
        p->losses = (double)nx_trainer_loss_bytes(s, t, &to);
    }
    if (rc->data.validation[0])
        p->eval = (double)nx_acts_bytes(s, B, rc->data.seq_len, NX_ACTS_INFER) +
                  (distill ? (double)nx_acts_bytes(t, B, rc->data.seq_len, NX_ACTS_INFER) : 0);
    p->data = data_bytes(rc->data.train) + data_bytes(rc->data.validation);
    p->runtime = 256.0 * (1 << 20);
    if (rc->device == NX_DEVICE_CUDA) {
        /* on the GPU: the trainer's targets instead of the host's batches;
         * the teacher without the CPU's widening buffer (the workspace has it) */
        p->gpu = true;
        /* in bf16 precision the trainer keeps no attention maps where flash
         * attention fits, and holds the products' inputs in bf16 (nx_backend_act_type) */
        unsigned bf = rc->precision == NX_PREC_BF16 ? NX_ACTS_BF16 : 0;
        p->activations =
            (double)nx_acts_bytes(s, B, T, NX_ACTS_TRAIN | rec | bf | flash_flag(rc, &to, s, B)) + 4.0 * B * T;
        if (distill) {
            unsigned tmode = (to.attention_weight > 0 ? NX_ACTS_KEEP_PROBS : NX_ACTS_INFER) | bf;
            p->teacher_acts = (double)nx_acts_bytes(t, B, T, tmode | flash_flag(rc, &to, t, B));
        }
        if (rc->data.validation[0])
            p->eval = (double)nx_acts_bytes(s, B, rc->data.seq_len, NX_ACTS_INFER | bf) +
                      (distill ? (double)nx_acts_bytes(t, B, rc->data.seq_len, NX_ACTS_INFER | bf) : 0);
        if (teacher_weights) p->teacher = (double)nx_model_size(t, rc->teacher.dtype);
        if (rc->data.validation[0]) p->eval += 3 * sizeof(double) + 3 * 4.0 * B * rc->data.seq_len;
        /* the bf16 copy of the student's weights that its products read */
        if (rc->precision == NX_PREC_BF16) p->student += (double)nx_trainer_bf16_bytes(s, distill ? t : NULL, &to);
        /* the largest sizes the backend is planned for: its first plan (4096
         * rows), the activations' (training, teacher, evaluation) and a
         * non-f32 teacher's widest matrix */
        bool ev = rc->data.validation[0] != 0;
        int64_t rows = (int64_t)B * (ev ? rc->data.seq_len : T);
        nx_work w = {.rows = rows > 4096 ? rows : 4096, .vocab = s->V, .ctx = ev ? rc->data.seq_len : T};
        if (teacher_weights && rc->teacher.dtype != NX_F32)
            w.weight_elems = (int64_t)((nx_model_bytes(t, rc->teacher.dtype) - nx_model_size(t, rc->teacher.dtype)) /
                                       sizeof(float));
        p->workspace = (double)nx_cuda_work_bytes(&w, nx_cuda_sort_bound((size_t)w.rows));
        p->context = (double)NX_CUDA_CONTEXT_BYTES;
        p->total = p->student + p->activations + p->teacher + p->teacher_acts + p->losses + p->eval + p->workspace +
                   p->context;
    } else {
        p->total = p->student + p->activations + p->teacher + p->teacher_acts + p->losses + p->eval + p->data +
                   p->runtime;
    }
    for (const double *x = &p->student; x <= &p->total; x++)
        if (!isfinite(*x) || *x >= 0x1p62)
            return nx_fail(err, "the run's memory cannot even be counted (over 2^62 bytes): the student, the batch "
                                "or the sequence length is far too large");
    return NX_OK;
}

/* A number from a one-line file; -1 when absent or unreadable. */
static double read_number(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[64];
    double v = -1;
    if (fgets(buf, sizeof buf, f)) {
        char *end;
        v = strtod(buf, &end);
        if (end == buf) v = -1; /* "max" */
    }
    fclose(f);
    return v;
}

double nx_run_memory_available(char *source, size_t n) {
    double best = INFINITY;
    snprintf(source, n, "unknown");
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) {
                best = kb * 1024.0;
                snprintf(source, n, "MemAvailable in /proc/meminfo");
            }
        fclose(f);
    }
    static const char *const cg[][2] = {{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
                                        {"/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                         "/sys/fs/cgroup/memory/memory.usage_in_bytes"}};
    for (int i = 0; i < 2; i++) {
        double lim = read_number(cg[i][0]), used = read_number(cg[i][1]);
        if (lim > 0 && lim < 0x1p60 && used >= 0 && lim - used < best) {
            best = fmax(0, lim - used);
            snprintf(source, n, "the cgroup's limit (%s) less its usage", cg[i][0]);
        }
    }
    static const struct { int res; const char *name; } lims[] = {{RLIMIT_DATA, "ulimit -d"}, {RLIMIT_AS, "ulimit -v"}};
    for (int i = 0; i < 2; i++) {
        struct rlimit r;
        if (getrlimit(lims[i].res, &r) == 0 && r.rlim_cur != RLIM_INFINITY && (double)r.rlim_cur < best) {
            best = (double)r.rlim_cur;
            snprintf(source, n, "the process limit (%s)", lims[i].name);
        }
    }
    return best;
}

/* The plan with one knob turned, as the total it gives. */
static double total_with(const nx_run_config *rc, bool distill, const nx_model_config *t, const nx_model_config *s,
                         int batch, int accum, int seq_len, nx_dtype tdtype, bool recompute) {
    nx_run_config k = *rc;
    k.data.batch_size = batch, k.data.grad_accum = accum, k.data.seq_len = seq_len, k.teacher.dtype = tdtype;
    k.recompute = recompute;
    nx_run_plan p;
    nx_err e;
    return nx_run_plan_compute(&k, distill, t, s, &p, &e) ? INFINITY : p.total;
}

void nx_run_plan_print(FILE *f, const nx_run_plan *p, const nx_run_config *rc, double avail, const char *source) {
    char b[12][32];
    int B = rc->data.batch_size, S = rc->data.seq_len;
    fprintf(f, "%s memory plan: %s (B %d x T %d, grad_accum %d)\n", p->gpu ? "GPU" : "host", run_bytes(b[0], 32, p->total),
            B, S - 1, rc->data.grad_accum);
    fprintf(f, "  student %s (%.0f parameters: f32 weights, gradients, AdamW m, v%s), activations %s\n",
            run_bytes(b[1], 32, p->student), p->params,
            p->gpu && rc->precision == NX_PREC_BF16 ? "; the weights' bf16 copy" : "", run_bytes(b[2], 32, p->activations));
    fprintf(f, "  teacher %s (%s) + activations %s, losses %s, evaluation %s\n", run_bytes(b[3], 32, p->teacher),
            nx_dtype_name(rc->teacher.dtype), run_bytes(b[4], 32, p->teacher_acts), run_bytes(b[5], 32, p->losses),
            run_bytes(b[6], 32, p->eval));
    if (p->gpu)
        fprintf(f, "  CUDA workspace %s, context + cuBLAS %s; on the host: data ~%s, runtime %s\n",
                run_bytes(b[7], 32, p->workspace), run_bytes(b[8], 32, p->context), run_bytes(b[9], 32, p->data),
                run_bytes(b[10], 32, p->runtime));
    else
        fprintf(f, "  data ~%s, runtime %s\n", run_bytes(b[9], 32, p->data), run_bytes(b[10], 32, p->runtime));
    if (avail >= 0 && isfinite(avail))
        fprintf(f, "  available: %s (%s)\n", run_bytes(b[11], 32, avail), source);
}

/* What each knob would bring the plan to, as lines for an error. */
static void knob_lines(const nx_run_config *rc, bool distill, const nx_model_config *t, const nx_model_config *s,
                       const nx_run_plan *p, char *knobs, size_t n) {
    char b[4][32];
    int B = rc->data.batch_size, A = rc->data.grad_accum, S = rc->data.seq_len;
    bool R = rc->recompute, can_recompute = !R && rc->loss.attention <= 0;
    size_t u = 0;
    knobs[0] = '\0';
    if (can_recompute)
        u += snprintf(knobs + u, n - u, "\n  recompute: true (each layer's activations recomputed in the backward): %s",
                      run_bytes(b[0], 32, total_with(rc, distill, t, s, B, A, S, rc->teacher.dtype, true)));
    if (B > 1)
        u += snprintf(knobs + u, n - u, "\n  data.batch_size 1 with data.grad_accum %d (the same tokens "
                      "per step): %s", A * B, run_bytes(b[0], 32, total_with(rc, distill, t, s, 1, A * B, S, rc->teacher.dtype, R)));
    if (S >= 8)
        u += snprintf(knobs + u, n - u, "\n  data.seq_len %d: %s", S / 4,
                      run_bytes(b[1], 32, total_with(rc, distill, t, s, B, A, S / 4, rc->teacher.dtype, R)));
    if (p->teacher > 0 && rc->teacher.dtype == NX_F32)
        u += snprintf(knobs + u, n - u, "\n  teacher.dtype bf16: %s",
                      run_bytes(b[2], 32, total_with(rc, distill, t, s, B, A, S, NX_BF16, R)));
    if (B > 1 && S >= 8)
        u += snprintf(knobs + u, n - u, "\n  all of these together: %s",
                      run_bytes(b[3], 32, total_with(rc, distill, t, s, 1, A * B, S / 4, p->teacher > 0 ? NX_BF16 : rc->teacher.dtype, R || can_recompute)));
    if (p->gpu)
        snprintf(knobs + u, n - u, "\n  a smaller student (its weights, gradients and AdamW moments take 16 bytes "
                 "per parameter)\n  a GPU with more free memory (other processes on it hold some)");
    else
        snprintf(knobs + u, n - u, "\n  a smaller student (its weights, gradients and AdamW moments "
                 "take 16 bytes per parameter)\n  device: cuda, on a machine with an NVIDIA GPU (the tensors in its memory)");
}

int run_plan_check(const nx_run_config *rc, bool distill, const nx_model_config *t, const nx_model_config *s,
                   nx_backend *be, nx_err *err) {
    nx_run_plan p;
    if (nx_run_plan_compute(rc, distill, t, s, &p, err)) return NX_ERR;
    char src[160], b[2][32], knobs[1024];
    double avail;
    if (p.gpu) {
        /* the tensors live in the GPU's memory: its free memory now (the
         * backend has started, so its context is taken already: counted
         * in the plan, so added back) */
        nx_mem_info mi;
        nx_backend_mem_info(be, &mi);
        avail = mi.has_device ? mi.device_free + mi.allocated + p.context : INFINITY;
        snprintf(src, sizeof src, "the GPU's free memory (cudaMemGetInfo) + what this process holds on it, of %s",
                 run_bytes(b[0], 32, mi.device_total));
        nx_run_plan_print(stderr, &p, rc, avail, src);
    } else {
        avail = nx_run_memory_available(src, sizeof src);
    }
    if (p.total <= avail) return NX_OK;
    knob_lines(rc, distill, t, s, &p, knobs, sizeof knobs);
    char *plan = NULL;
    size_t plen = 0;
    FILE *f = open_memstream(&plan, &plen);
    NX_ASSERTM(f, "out of memory");
    nx_run_plan_print(f, &p, rc, avail, src);
    fclose(f);
    int r = nx_fail(err, "the run needs %s of %smemory but %s is available:\n%swhat would shrink it:%s",
                    run_bytes(b[0], 32, p.total), p.gpu ? "GPU " : "", run_bytes(b[1], 32, avail), plan, knobs);
    free(plan);
    return r;
}
