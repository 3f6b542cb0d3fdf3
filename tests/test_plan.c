/* test_plan.c — the memory plan's arithmetic, with no GPU (CI has none):
 *   - device: cuda counts what the run allocates on the GPU: the student's
 *     16 bytes per parameter, the training activations with the trainer's
 *     targets (not the host's batches), the teacher at its dtype without
 *     the CPU's widening buffer, its activations, evaluation with its rows,
 *     the CUDA workspace for the largest planned sizes (the widest bf16
 *     teacher matrix, widened) and the context allowance; data and runtime
 *     stay on the host, out of the total;
 *   - the CPU plan of the same run is the host's (data, runtime, the
 *     widening buffer in the teacher);
 *   - nx_cuda_work_bytes grows with each size it is planned for;
 *   - a host backend reports no device memory. */
#include "nexus/backend.h"
#include "nexus/model.h"
#include "nexus/run.h"
#include "nxtest.h"

static const char *RUN =
    "device: cuda\n"
    "precision: bf16\n"
    "teacher:\n"
    "  path: teacher-dir\n"
    "  dtype: bf16\n"
    "student:\n"
    "  arch: llama\n"
    "  hidden_size: 256\n"
    "  intermediate_size: 688\n"
    "  num_layers: 4\n"
    "  num_heads: 4\n"
    "  num_kv_heads: 2\n"
    "  max_position_embeddings: 512\n"
    "  init: random\n"
    "data:\n"
    "  train: data/train.jsonl\n"
    "  validation: data/val.jsonl\n"
    "  seq_len: 257\n"
    "  batch_size: 3\n"
    "optimizer:\n"
    "  lr: 1.0e-3\n"
    "  steps: 10\n";

static nx_model_config teacher_cfg(void) {
    return (nx_model_config){.arch = NX_ARCH_LLAMA, .V = 1000, .C = 512, .L = 6, .NH = 8, .KVH = 4, .HS = 64,
                             .F = 1376, .max_pos = 1024, .eps = 1e-5f, .rope_theta = 10000.0f, .bos_id = -1,
                             .eos_id = -1, .dtype = NX_BF16};
}

static void load(nx_run_config *rc, nx_model_config *t, nx_model_config *s, const char *set) {
    nx_err e = {{0}};
    const char *sets[1] = {set};
    NX_ASSERTM(nx_run_config_parse(rc, RUN, strlen(RUN), "cfgs/x.yaml", sets, set ? 1 : 0, &e) == NX_OK, e.msg);
    *t = teacher_cfg();
    NX_ASSERTM(nx_run_config_student_shape(rc, t, s, &e) == NX_OK, e.msg);
}

TEST(gpu_plan_counts_what_the_run_allocates_on_the_gpu) {
    nx_run_config *rc = malloc(sizeof *rc);
    nx_model_config t, s;
    load(rc, &t, &s, NULL);
    nx_run_plan p;
    nx_err e;
    CHECK(nx_run_plan_compute(rc, true, &t, &s, &p, &e) == NX_OK);
    int B = 3, T = 256, S = 257;
    double N = (double)nx_model_count(&s);
    CHECK(p.gpu);
    /* f32 weights, gradients, AdamW m and v, and the weights' bf16 copy (no projections here) */
    CHECK(p.params == N && p.student == 16 * N + 2.0 * nx_model_numel(&s));
    /* bf16 precision, no attention loss, head size 64: flash attention, no maps kept; the products' inputs in bf16 */
    unsigned bf = NX_ACTS_BF16;
    CHECK(p.activations == (double)nx_acts_bytes(&s, B, T, NX_ACTS_TRAIN | NX_ACTS_FLASH | bf) + 4.0 * B * T);
    CHECK(nx_acts_bytes(&s, B, T, NX_ACTS_TRAIN | bf) < nx_acts_bytes(&s, B, T, NX_ACTS_TRAIN));
    /* L maps and the maps' gradient, each T × T a row, against T log-sum-exps and T row dots */
    CHECK(nx_acts_bytes(&s, B, T, NX_ACTS_TRAIN | NX_ACTS_FLASH) + (size_t)(s.L + 1) * B * s.NH * T * (T - 1) * 4 ==
          nx_acts_bytes(&s, B, T, NX_ACTS_TRAIN));
    CHECK(p.teacher == (double)nx_model_size(&t, NX_BF16));
    /* the teacher through flash attention too: its q/k/v and attention output in bf16 */
    CHECK(p.teacher_acts == (double)nx_acts_bytes(&t, B, T, NX_ACTS_INFER | NX_ACTS_FLASH | bf));
    CHECK(nx_acts_bytes(&t, B, T, NX_ACTS_INFER | NX_ACTS_FLASH | bf) < nx_acts_bytes(&t, B, T, NX_ACTS_INFER | bf));
    CHECK(p.eval == (double)nx_acts_bytes(&s, B, S, NX_ACTS_INFER | bf) +
                        (double)nx_acts_bytes(&t, B, S, NX_ACTS_INFER | bf) + 24 + 12.0 * B * S);
    /* the widest teacher matrix: gate and up stacked, 2F × C, widened to f32 */
    nx_work w = {.rows = 4096, .vocab = 1000, .ctx = S, .weight_elems = 2 * 1376 * 512};
    CHECK(p.workspace == (double)nx_cuda_work_bytes(&w, nx_cuda_sort_bound(4096)));
    CHECK(p.context == (double)NX_CUDA_CONTEXT_BYTES);
    CHECK(p.total == p.student + p.activations + p.teacher + p.teacher_acts + p.losses + p.eval + p.workspace +
                         p.context);
    CHECK(p.runtime > 0);

    /* the same run on the CPU: the host's plan */
    rc->device = NX_DEVICE_CPU;
    nx_run_plan c;
    CHECK(nx_run_plan_compute(rc, true, &t, &s, &c, &e) == NX_OK);
    CHECK(!c.gpu && c.workspace == 0 && c.context == 0);
    CHECK(c.teacher == (double)nx_model_bytes(&t, NX_BF16) && c.teacher > p.teacher);
    CHECK(c.total == c.student + c.activations + c.teacher + c.teacher_acts + c.losses + c.eval + c.data + c.runtime);
    free(rc);
}

TEST(gpu_plan_knobs_shrink_it) {
    nx_run_config *rc = malloc(sizeof *rc);
    nx_model_config t, s;
    nx_run_plan a, b;
    nx_err e;
    load(rc, &t, &s, NULL);
    CHECK(nx_run_plan_compute(rc, true, &t, &s, &a, &e) == NX_OK);
    rc->data.batch_size = 1;
    CHECK(nx_run_plan_compute(rc, true, &t, &s, &b, &e) == NX_OK);
    CHECK(b.total < a.total && b.activations < a.activations && b.student == a.student);
    load(rc, &t, &s, "teacher.dtype=f32");
    CHECK(nx_run_plan_compute(rc, true, &t, &s, &b, &e) == NX_OK);
    /* f32 teacher: twice the weights, no widened matrix in the workspace */
    CHECK(b.teacher == (double)nx_model_size(&t, NX_F32) && b.workspace < a.workspace);
    /* nexus train with a random student: no teacher on the GPU */
    load(rc, &t, &s, NULL);
    CHECK(nx_run_plan_compute(rc, false, &t, &s, &b, &e) == NX_OK);
    CHECK(b.teacher == 0 && b.teacher_acts == 0 && b.total < a.total);
    free(rc);
}

TEST(cuda_workspace_grows_with_each_planned_size) {
    nx_work w = {.rows = 1024};
    size_t base = nx_cuda_work_bytes(&w, 0);
    w.rows = 2048;
    CHECK(nx_cuda_work_bytes(&w, 0) >= base + 1024 * (8 + 6 * 4));
    w.rows = 1024, w.weight_elems = 1 << 20;
    CHECK(nx_cuda_work_bytes(&w, 0) >= base + 4 * (1 << 20));
    w.weight_elems = 0, w.ctx = 64; /* attention's score area: 2^24 floats */
    CHECK(nx_cuda_work_bytes(&w, 0) == base + ((size_t)64 << 20));
    w.ctx = 0;
    CHECK(nx_cuda_work_bytes(&w, nx_cuda_sort_bound(1024)) >= base + 16 * 1024);
}

TEST(host_backend_reports_no_device_memory) {
    nx_mem_info mi;
    nx_backend_mem_info(nx_backend_cpu(), &mi);
    CHECK(!mi.has_device && mi.allocated == 0 && mi.peak == 0 && mi.device_total == 0);
}
