/* test_model.c — the whole model's backward against finite differences of
 * its loss, on tiny random configurations covering GQA, MQA, q/k/v/o bias
 * and tied embeddings; and a forward at batch B that equals B forwards at
 * batch 1. */
#include "nexus/model.h"
#include "nxtest.h"

static double model_loss(nx_model *m, nx_acts *a, const int32_t *ids, const int32_t *tg, int B,
                         int T, float *dlogits_or_null, const float *teacher) {
    nx_model_forward(m, a, ids, B, T, true);
    int N = B * T;
    double ce, kd;
    nx_cross_entropy(m->be, &ce, dlogits_or_null, 0.5f, a->logits, tg, N, m->cfg.V);
    nx_kd_loss(m->be, &kd, NX_KD_FORWARD_KL, 2.0f, dlogits_or_null, 0.5f, a->logits, teacher, tg, N, m->cfg.V);
    return 0.5 * ce + 0.5 * kd;
}

/* A random model of cfg, its norms and biases perturbed off their 1/0 init. */
static void random_model(nx_model *m, const nx_model_config *cfg, nx_rng *r) {
    CHECK(nx_model_init(m, cfg, NULL) == NX_OK);
    nx_model_init_random(m, 0.3f, r);
    for (size_t i = 0; i < m->nparams; i++) m->params[i] += 0.05f * nx_rng_normal(r);
}

/* Random ids of B × T rows, their next-token targets (−1 at each row's end)
 * and random teacher logits (returned, malloc'd). */
static float *random_batch(nx_rng *r, int V, int B, int T, int32_t *ids, int32_t *tg) {
    int N = B * T;
    for (int n = 0; n < N; n++) ids[n] = (int32_t)nx_rng_below(r, V);
    for (int n = 0; n < N; n++) tg[n] = (n % T == T - 1) ? -1 : ids[n + 1];
    float *teacher = malloc(sizeof(float) * N * V);
    for (int i = 0; i < N * V; i++) teacher[i] = 2 * nx_rng_normal(r);
    return teacher;
}

static void check_config(nx_model_config cfg, uint64_t seed) {
    nx_rng r;
    nx_rng_seed(&r, seed);
    nx_model m;
    random_model(&m, &cfg, &r);
    int B = 2, T = 5, N = B * T;
    nx_acts a;
    CHECK(nx_acts_init(&a, &m, B, T, NX_ACTS_TRAIN, NULL) == NX_OK);
    int32_t ids[10], tg[10];
    float *teacher = random_batch(&r, cfg.V, B, T, ids, tg);

    float *grads = calloc(m.nparams, sizeof(float));
    memset(a.dlogits, 0, sizeof(float) * N * cfg.V);
    model_loss(&m, &a, ids, tg, B, T, a.dlogits, teacher);
    nx_model_backward(&m, &a, grads, NX_GRAD_ADD, NULL, NULL);

    int np = m.ntab;
    const nx_param *tab = m.tab;
    double worst = 0;
    const char *worst_name = "";
    for (int p = 0; p < np; p++)
        for (int probe = 0; probe < 3; probe++) {
            size_t i = tab[p].off / sizeof(float) + nx_rng_below(&r, tab[p].numel);
            float keep = m.params[i], h = 2e-3f;
            m.params[i] = keep + h;
            double up = model_loss(&m, &a, ids, tg, B, T, NULL, teacher);
            m.params[i] = keep - h;
            double dn = model_loss(&m, &a, ids, tg, B, T, NULL, teacher);
            m.params[i] = keep;
            double num = (up - dn) / (2 * h), err = fabs(num - grads[i]) / (fabs(num) + fabs(grads[i]) + 3e-3);
            if (err > worst) worst = err, worst_name = tab[p].name;
        }
    CHECKF(worst < 3e-2, "worst finite-difference disagreement %.3g at %s", worst, worst_name);

    /* batch independence: row b of a batched forward equals a batch-1 forward */
    nx_model_forward(&m, &a, ids, B, T, true);
    float *batched = malloc(sizeof(float) * N * cfg.V);
    memcpy(batched, a.logits, sizeof(float) * N * cfg.V);
    nx_model_forward(&m, &a, ids + T, 1, T, true);
    CHECK_REL(a.logits, batched + T * cfg.V, T * cfg.V, 1e-5);
    free(batched), free(grads), free(teacher);
    nx_acts_free(&a);
    nx_model_free(&m);
}

static nx_model_config base(void) {
    return (nx_model_config){.arch = NX_ARCH_LLAMA, .V = 23, .C = 12, .L = 2, .NH = 4, .KVH = 2,
                             .HS = 4, .F = 20, .max_pos = 16, .eps = 1e-5f, .rope_theta = 10000,
                             .bos_id = -1, .eos_id = -1, .dtype = NX_F32};
}

TEST(backward_matches_finite_differences_gqa) { check_config(base(), 1); }

TEST(backward_matches_finite_differences_mqa_bias_tied) {
    nx_model_config c = base();
    c.KVH = 1;
    c.qkv_bias = c.o_bias = true;
    c.tied = true;
    c.HS = 6; /* head_dim != C / NH */
    check_config(c, 2);
}

/* Qwen3: per-head q/k norms, head_dim != C / NH; a sliding window on the
 * second layer (Qwen2's max_window_layers) and a yarn rope. */
TEST(backward_matches_finite_differences_qwen3_qk_norm_window_yarn) {
    nx_model_config c = base();
    c.arch = NX_ARCH_QWEN3;
    c.qk_norm = true;
    c.HS = 6;
    c.window = 2, c.window_from = 1;
    c.rope = (nx_rope_scaling){.type = NX_ROPE_YARN, .factor = 4, .original_max_pos = 4};
    check_config(c, 4);
}

/* Mistral: every layer slides; llama3 rope. */
TEST(backward_matches_finite_differences_window_every_layer_llama3) {
    nx_model_config c = base();
    c.arch = NX_ARCH_MISTRAL;
    c.window = 3;
    c.rope = (nx_rope_scaling){.type = NX_ROPE_LLAMA3, .factor = 8, .low_freq_factor = 1, .high_freq_factor = 4,
                               .original_max_pos = 8};
    check_config(c, 5);
}

TEST(backward_matches_finite_differences_one_head_one_layer) {
    nx_model_config c = base();
    c.NH = c.KVH = 1;
    c.HS = 12;
    c.L = 1;
    check_config(c, 3);
}

/* Activation recomputation: the forward keeps each layer's input only and
 * the backward recomputes the rest, layer by layer, with the same ops on
 * the same inputs, so the gradients are the same bits; and the hidden
 * states (hidden-state losses) are still every layer's. */
static void recompute_matches(nx_model_config cfg, uint64_t seed) {
    nx_rng r;
    nx_rng_seed(&r, seed);
    nx_model m;
    random_model(&m, &cfg, &r);
    int B = 3, T = 6, N = B * T;
    int32_t ids[18], tg[18];
    float *teacher = random_batch(&r, cfg.V, B, T, ids, tg), *g[2], *hid[2];
    size_t nh = (size_t)(cfg.L + 1) * N * cfg.C;
    for (int k = 0; k < 2; k++) {
        nx_acts a;
        CHECK(nx_acts_init(&a, &m, B, T, NX_ACTS_TRAIN | (k ? NX_ACTS_RECOMPUTE : 0), NULL) == NX_OK);
        g[k] = calloc(m.nparams, sizeof(float));
        hid[k] = malloc(sizeof(float) * nh);
        memset(a.dlogits, 0, sizeof(float) * N * cfg.V);
        model_loss(&m, &a, ids, tg, B, T, a.dlogits, teacher);
        for (int l = 0; l <= cfg.L; l++)
            memcpy(hid[k] + (size_t)l * N * cfg.C, nx_acts_hidden(&a, &cfg, l), sizeof(float) * N * cfg.C);
        nx_model_backward(&m, &a, g[k], NX_GRAD_ADD, NULL, NULL);
        nx_acts_free(&a);
    }
    CHECKF(!memcmp(g[0], g[1], sizeof(float) * m.nparams), "gradients differ with recomputation");
    CHECKF(!memcmp(hid[0], hid[1], sizeof(float) * nh), "hidden states differ with recomputation");
    CHECK(nx_acts_bytes(&cfg, B, T, NX_ACTS_TRAIN | NX_ACTS_RECOMPUTE) < nx_acts_bytes(&cfg, B, T, NX_ACTS_TRAIN));
    for (int k = 0; k < 2; k++) free(g[k]), free(hid[k]);
    free(teacher);
    nx_model_free(&m);
}

TEST(recomputed_activations_give_the_same_gradients) {
    /* four threads whatever the machine: sums over threads' partials must
     * not depend on the order the threads finish in (from 3 threads on) */
    int threads = nx_threads();
    nx_set_threads(4);
    recompute_matches(base(), 11);
    nx_model_config c = base(); /* Qwen3 qk-norms, a window on layer 1, biases, tied, MQA */
    c.arch = NX_ARCH_QWEN3;
    c.qk_norm = true;
    c.HS = 6;
    c.KVH = 1;
    c.window = 2, c.window_from = 1;
    c.qkv_bias = true;
    c.tied = true;
    recompute_matches(c, 12);
    c = base();
    c.L = 3;
    recompute_matches(c, 13);
    nx_set_threads(threads);
}

/* The layout: Hugging Face names in order, q/k/v (and gate/up, and the
 * biases) back to back so that each group is one matrix, groups 64-byte
 * aligned, matrices in the model's weight type and norms/biases in f32. */
TEST(param_table_is_consistent) {
    nx_model_config c = base();
    c.qkv_bias = true;
    for (int k = 0; k < 2; k++) {
        nx_dtype wt = k ? NX_BF16 : NX_F32;
        int n = nx_model_params(&c, wt, NULL);
        CHECK(n == 1 + 2 * 12 + 2);
        nx_param *t = malloc(sizeof *t * n);
        nx_model_params(&c, wt, t);
        CHECK(strcmp(t[0].name, "model.embed_tokens.weight") == 0);
        CHECK(strcmp(t[n - 1].name, "lm_head.weight") == 0);
        for (int i = 1; i < n; i++) {
            bool grouped = strstr(t[i].name, "k_proj") || strstr(t[i].name, "v_proj") || strstr(t[i].name, "up_proj");
            if (grouped) CHECK(t[i].off == t[i - 1].off + t[i - 1].nbytes);
            else CHECK(t[i].off >= t[i - 1].off + t[i - 1].nbytes && t[i].off % 64 == 0);
            bool vec = t[i].ndim == 1;
            CHECK(t[i].type == (vec ? NX_F32 : wt) && t[i].nbytes == t[i].numel * nx_dtype_size(t[i].type));
        }
        CHECK(nx_model_size(&c, wt) >= t[n - 1].off + t[n - 1].nbytes);
        free(t);
    }
    /* the bound views agree with the table */
    nx_model m;
    CHECK(nx_model_init(&m, &c, NULL) == NX_OK);
    int q = nx_model_find(&m, "model.layers.1.self_attn.q_proj.weight");
    int bq = nx_model_find(&m, "model.layers.1.self_attn.q_proj.bias");
    int g = nx_model_find(&m, "model.layers.1.mlp.gate_proj.weight");
    CHECK((char *)m.w.layer[1].qkv.data == (char *)m.data + m.tab[q].off && m.w.layer[1].qkv.rows == 16 + 2 * 8);
    CHECK((char *)m.w.layer[1].bqkv == (char *)m.data + m.tab[bq].off);
    CHECK((char *)m.w.layer[1].gu.data == (char *)m.data + m.tab[g].off && m.w.layer[1].gu.rows == 2 * c.F);
    nx_model_free(&m);
    nx_err e;
    c.KVH = 3;
    CHECK(nx_model_config_check(&c, &e) == NX_ERR && strstr(e.msg, "multiple"));
}

/* nx_model_bind_bf16 points each matrix at the same element of the bf16
 * copy as its f32 data (the buffer padded, tied or not), the embedding's
 * gather left reading f32; NULL unbinds. */
TEST(bf16_copy_binds_each_matrix_at_its_own_elements) {
    for (int tied = 0; tied < 2; tied++) {
        nx_model_config c = base();
        c.tied = tied;
        nx_model m;
        CHECK(nx_model_init(&m, &c, NULL) == NX_OK);
        uint16_t *p16 = malloc(2 * m.nparams);
        nx_model_bind_bf16(&m, p16);
        for (int l = 0; l < c.L; l++) {
            const nx_weight *w[4] = {&m.w.layer[l].qkv, &m.w.layer[l].o, &m.w.layer[l].gu, &m.w.layer[l].down};
            for (int k = 0; k < 4; k++)
                CHECK((const uint16_t *)w[k]->bf16 - p16 == (const float *)w[k]->data - m.params);
        }
        CHECK((const uint16_t *)m.w.head.bf16 - p16 == (const float *)m.w.head.data - m.params);
        CHECK(m.w.wte.bf16 == NULL);
        nx_model_bind_bf16(&m, NULL);
        CHECK(m.w.layer[0].qkv.bf16 == NULL && m.w.head.bf16 == NULL);
        free(p16);
        nx_model_free(&m);
    }
}

/* Parameters are the tensors' sizes; the buffer pads groups to 64 bytes. */
TEST(parameter_count_excludes_padding) {
    nx_model_config c = base(); /* V 23, C 12: most groups are padded */
    int L = c.L, Q = c.NH * c.HS, KV = c.KVH * c.HS;
    size_t want = 2 * (size_t)c.V * c.C + c.C +
                  (size_t)L * (2 * c.C + (size_t)Q * c.C * 2 + (size_t)KV * c.C * 2 + 3 * (size_t)c.F * c.C);
    CHECK(nx_model_count(&c) == want);
    CHECK(nx_model_numel(&c) > want);
}

/* The activation plan against sizes worked out here from the buffer list
 * of model.h (each buffer starts 64-byte aligned; the last one, the logits
 * or their gradient, ends where it ends), not from the plan itself. */
static size_t al(size_t floats) { return (floats * 4 + 63) / 64 * 64; }

TEST(acts_bytes_matches_the_documented_buffers) {
    nx_model_config c = base();
    size_t B = 3, T = 7, N = B * T, C = c.C, F = c.F, V = c.V, L = c.L, H = c.HS / 2;
    size_t Q = c.NH * c.HS, QKV = Q + 2 * c.KVH * c.HS, P = B * c.NH * T * T;
    /* rope cos/sin, pos, ids, residuals, then one layer's set, last, lnf, rstdf, logits */
    size_t layer = al(N * C) + al(N) + al(N * QKV) + al(N * Q) + al(N * C) * 2 + al(N) + al(N * 2 * F) + al(N * F);
    size_t infer = 2 * al(T * H) + 2 * al(N) + al((L + 1) * N * C) + layer + al(N * C) * 2 + al(N) + N * V * 4;
    CHECK(nx_acts_bytes(&c, 3, 7, NX_ACTS_INFER) == infer);
    /* kept maps: one (B, NH, T, T) block per layer */
    CHECK(nx_acts_bytes(&c, 3, 7, NX_ACTS_KEEP_PROBS) == infer + al(L * P));
    /* training: every layer's set, maps, no `last`, and the backward scratch */
    size_t train = 2 * al(T * H) + 2 * al(N) + al((L + 1) * N * C) + al(L * P) + al(N * C) + al(N) + al(N * V) +
                   (al(L * N * C) + al(L * N) + al(L * N * QKV) + al(L * N * Q) + al(L * N * C) * 2 + al(L * N) +
                    al(L * N * 2 * F) + al(L * N * F)) +
                   al(N * C) * 2 + al(N * Q) + al(N * QKV) + al(P) + al(N * F) + al(N * 2 * F) + al(N * C) + N * V * 4;
    CHECK(nx_acts_bytes(&c, 3, 7, NX_ACTS_TRAIN) == train);
    /* the products' inputs ln1, ln2 and h, and gu, in bf16, and the gradients dh, dgu and dlogits (the last
     * buffer: not rounded up): each of those buffers at half the bytes (rounded to 64), and dres's bf16 copy */
    size_t al2 = 0, f32 = 0;
    size_t in[6] = {L * N * C, L * N * C, L * N * F, L * N * 2 * F, N * F, N * 2 * F};
    for (int i = 0; i < 6; i++) al2 += (in[i] * 2 + 63) / 64 * 64, f32 += al(in[i]);
    al2 += (N * C * 2 + 63) / 64 * 64 + N * V * 2, f32 += N * V * 4;
    CHECK(nx_acts_bytes(&c, 3, 7, NX_ACTS_TRAIN | NX_ACTS_BF16) == train - f32 + al2);
    CHECK(nx_acts_bytes(&c, 3, 7, NX_ACTS_TRAIN | NX_ACTS_BF16 | NX_ACTS_F32) == train);
    nx_model m;
    CHECK(nx_model_init(&m, &c, NULL) == NX_OK);
    nx_acts a;
    CHECK(nx_acts_init(&a, &m, 3, 7, NX_ACTS_TRAIN, NULL) == NX_OK && a.arena.size == train);
    nx_acts_free(&a);
    nx_model_free(&m);
}

/* A model held in bf16 computes what the f32 model with the same (rounded)
 * weights computes: the GEMM path widens whole matrices, the decode path
 * widens rows in registers, and both give the same sums. */
TEST(bf16_held_model_equals_its_f32_widening) {
    nx_model_config c = base();
    c.qkv_bias = true;
    nx_rng r;
    nx_rng_seed(&r, 11);
    nx_model f, h;
    CHECK(nx_model_init(&f, &c, NULL) == NX_OK);
    CHECK(nx_model_init_on(&h, &c, NX_BF16, nx_backend_cpu(), NULL) == NX_OK && h.params == NULL);
    nx_model_init_random(&f, 0.3f, &r);
    for (int i = 0; i < f.ntab; i++) {
        float *v = malloc(sizeof(float) * f.tab[i].numel);
        nx_model_get(&f, i, v);
        nx_model_set(&h, i, v, NX_F32);                         /* rounds matrices to bf16 */
        nx_model_get(&h, i, v);
        nx_model_set(&f, i, v, NX_F32);                         /* f = the widening of h */
        free(v);
    }
    for (int B = 1; B <= 4; B += 3) { /* 1 × 5 rows: decode kernels; 4 × 5: GEMM */
        int T = 5, N = B * T;
        int32_t ids[20];
        for (int n = 0; n < N; n++) ids[n] = (int32_t)nx_rng_below(&r, c.V);
        nx_acts af, ah;
        CHECK(nx_acts_init(&af, &f, B, T, NX_ACTS_KEEP_PROBS, NULL) == NX_OK);
        CHECK(nx_acts_init(&ah, &h, B, T, NX_ACTS_KEEP_PROBS, NULL) == NX_OK);
        nx_model_forward(&f, &af, ids, B, T, true);
        nx_model_forward(&h, &ah, ids, B, T, true);
        CHECK(memcmp(af.logits, ah.logits, sizeof(float) * N * c.V) == 0);
        CHECK(memcmp(nx_acts_probs(&af, &c, 1), nx_acts_probs(&ah, &c, 1), sizeof(float) * B * c.NH * T * T) == 0);
        nx_acts_free(&af);
        nx_acts_free(&ah);
    }
    nx_model_free(&f);
    nx_model_free(&h);
}

/* Issue 15, item 11: a shape whose sizes overflow (65536 heads × head_dim
 * 65536: q_proj has 2^32 rows; a vocabulary × width past 2^62 bytes) is
 * refused by the config check, before anything multiplies in int or
 * size_t; a large but countable shape passes. */
TEST(shapes_whose_sizes_overflow_are_refused) {
    nx_err e;
    nx_model_config c = base();
    c.NH = 65536, c.KVH = 1, c.HS = 65536;
    CHECKF(nx_model_config_check(&c, &e) == NX_ERR && strstr(e.msg, "too large"), "%s", e.msg);
    c = base();
    c.V = 2147483647, c.C = 2147483646, c.HS = 2;
    CHECKF(nx_model_config_check(&c, &e) == NX_ERR && strstr(e.msg, "too large"), "%s", e.msg);
    c = base();
    c.L = 4096, c.C = 1 << 20, c.F = 1 << 22;
    CHECKF(nx_model_config_check(&c, &e) == NX_ERR && strstr(e.msg, "too large"), "%s", e.msg);
    /* 441000 tiny layers (fuzz_config_json; 2^31 - 1 of them count below 2^46 too, but their
     * parameter table alone would take terabytes) */
    c = base();
    c.L = 441000;
    CHECKF(nx_model_config_check(&c, &e) == NX_ERR && strstr(e.msg, "more than nexus holds"), "%s", e.msg);
    c = base();
    c.V = 152064, c.C = 8192, c.L = 80, c.NH = 64, c.KVH = 8, c.HS = 128, c.F = 29568; /* a 72 B model */
    CHECKF(nx_model_config_check(&c, &e) == NX_OK, "%s", e.msg);
    CHECK(nx_model_count(&c) > 70000000000ull);
}

/* Issue 15, item 11: activations of an extreme batch (2^20 rows of 2^20
 * positions, as a run config may ask) are not counted in int: the size is
 * SIZE_MAX ("cannot be held"), and nx_acts_init refuses it. */
TEST(acts_of_an_extreme_batch_are_not_counted_in_int) {
    nx_model_config c = base();
    c.max_pos = 1 << 21;
    CHECK(nx_acts_bytes(&c, 1 << 20, (1 << 20) - 1, NX_ACTS_TRAIN) == SIZE_MAX);
    nx_model m;
    nx_err e;
    CHECK(nx_model_init(&m, &c, &e) == NX_OK);
    nx_acts a;
    CHECKF(nx_acts_init(&a, &m, 1 << 20, (1 << 20) - 1, NX_ACTS_INFER, &e) == NX_ERR && strstr(e.msg, "too large"),
           "%s", e.msg);
    nx_model_free(&m);
}

/* The backward in bf16 precision on the GPU (CUDA, where there is one):
 * with flash attention the products' gradients are held in bf16 (dh, datt,
 * dq/dk/dv and the residual gradient's copy, as autocast holds them), and
 * the gradients of every tensor stay near the CPU's f32 ones on the same
 * weights and batch: a bound for bf16's rounding (each tensor's relative
 * error below 0.3; a wrong buffer or type gives errors near 1). On an H200
 * the worst tensors are off by 0.16-0.22 (GQA, biases, head size 16) and
 * 0.028 (Qwen3), the same with these gradients in f32 (the build before
 * them): bf16 products in the forward and backward of these small random
 * models, not the gradients' type. Over GQA, a hidden-state gradient,
 * Qwen3's q/k norms with a window, biases with tied embeddings,
 * recomputation, and a head size without flash. */
static void bf16_backward_near_f32(nx_model_config cfg, uint64_t seed, bool hidden, bool recompute,
                                   const char *what) {
    nx_err e;
    nx_backend *cuda = nx_backend_cuda(&e);
    NX_ASSERT(cuda && nx_backend_set_precision(cuda, NX_PREC_BF16, &e) == NX_OK);
    nx_rng r;
    nx_rng_seed(&r, seed);
    nx_model m, g;
    random_model(&m, &cfg, &r);
    CHECKF(nx_model_init_on(&g, &cfg, NX_F32, cuda, &e) == NX_OK, "%s", e.msg);
    CHECK(g.nparams == m.nparams);
    nx_backend_upload(cuda, g.params, m.params, sizeof(float) * m.nparams);
    void *p16 = nx_backend_alloc(cuda, 2 * m.nparams, "test", &e);
    NX_ASSERT(p16);
    nx_round_bf16(cuda, p16, g.params, (int64_t)m.nparams);
    nx_model_bind_bf16(&g, p16);
    int B = 2, T = 40, N = B * T, V = cfg.V;
    int32_t ids[80], tg[80];
    float *teacher = random_batch(&r, V, B, T, ids, tg);
    size_t nh = (size_t)(cfg.L + 1) * N * cfg.C;
    float *dhid = malloc(sizeof(float) * nh);
    for (size_t i = 0; i < nh; i++) dhid[i] = 0.01f * nx_rng_normal(&r);
    unsigned mode = NX_ACTS_TRAIN | (recompute ? NX_ACTS_RECOMPUTE : 0);
    bool flash = nx_attention_lse_fits(cuda, cfg.HS, B, T, cfg.NH);
    float *want = calloc(m.nparams, sizeof(float)), *got = malloc(sizeof(float) * m.nparams);
    nx_acts a, ag;
    CHECK(nx_acts_init(&a, &m, B, T, mode, NULL) == NX_OK);
    CHECKF(nx_acts_init(&ag, &g, B, T, mode | (flash ? NX_ACTS_FLASH : 0), &e) == NX_OK, "%s", e.msg);
    CHECK(ag.at == NX_BF16);
    double loss[2];
    nx_model_forward(&m, &a, ids, B, T, true);
    nx_distill_loss(m.be, &loss[0], &loss[1], NX_KD_FORWARD_KL, 2.0f, a.dlogits, NX_F32, 0.5f, 0.5f, a.logits, a.lt,
                    teacher, NX_F32, tg, N, V);
    nx_model_backward(&m, &a, want, NX_GRAD_ADD, hidden ? dhid : NULL, NULL);
    float *gradd = nx_backend_alloc(cuda, sizeof(float) * m.nparams, "test", &e), *dhd = NULL, *td;
    int32_t *tgd = nx_backend_alloc(cuda, sizeof tg, "test", &e);
    double *lossd = nx_backend_alloc(cuda, 2 * sizeof(double), "test", &e);
    NX_ASSERT(gradd && tgd && lossd && (td = nx_backend_alloc(cuda, sizeof(float) * N * V, "test", &e)));
    nx_backend_zero(cuda, gradd, sizeof(float) * m.nparams);
    nx_backend_upload(cuda, tgd, tg, sizeof tg);
    nx_backend_upload(cuda, td, teacher, sizeof(float) * N * V);
    if (hidden) {
        NX_ASSERT((dhd = nx_backend_alloc(cuda, sizeof(float) * nh, "test", &e)));
        nx_backend_upload(cuda, dhd, dhid, sizeof(float) * nh);
    }
    nx_model_forward(&g, &ag, ids, B, T, true);
    nx_distill_loss(cuda, lossd, lossd + 1, NX_KD_FORWARD_KL, 2.0f, ag.dlogits, ag.at, 0.5f, 0.5f, ag.logits, ag.lt, td,
                    NX_F32, tgd, N, V);
    nx_model_backward(&g, &ag, gradd, NX_GRAD_ADD, dhd, NULL);
    nx_backend_download(cuda, got, gradd, sizeof(float) * m.nparams);
    double worst = 0;
    const char *worst_name = "";
    for (int p = 0; p < m.ntab; p++) {
        size_t o = m.tab[p].off / sizeof(float);
        double err = nxt_rel_err(got + o, want + o, (long)m.tab[p].numel);
        if (err > worst || err != err) worst = err, worst_name = m.tab[p].name;
    }
    printf("  %s (%s): worst relative error %.3g at %s\n", what, flash ? "flash" : "no flash", worst, worst_name);
    CHECKF(worst < 0.3, "%s: bf16 gradients off the f32 ones by %.3g at %s", what, worst, worst_name);
    nx_acts_free(&a), nx_acts_free(&ag);
    nx_model_bind_bf16(&g, NULL);
    nx_backend_free(cuda, p16), nx_backend_free(cuda, gradd), nx_backend_free(cuda, tgd), nx_backend_free(cuda, lossd);
    nx_backend_free(cuda, td);
    if (dhd) nx_backend_free(cuda, dhd);
    nx_model_free(&m), nx_model_free(&g);
    free(teacher), free(dhid), free(want), free(got);
    NX_ASSERT(nx_backend_set_precision(cuda, NX_PREC_FP32, &e) == NX_OK);
}

TEST(cuda_bf16_backward_stays_near_f32) {
    nx_err e;
    if (!nx_backend_cuda(&e)) SKIP("%.200s", e.msg);
    nx_model_config c = base();
    c.V = 256, c.C = 128, c.NH = 4, c.KVH = 2, c.HS = 32, c.F = 160, c.max_pos = 64;
    bf16_backward_near_f32(c, 21, false, false, "GQA");
    bf16_backward_near_f32(c, 22, true, false, "GQA, hidden-state gradients");
    bf16_backward_near_f32(c, 23, false, true, "GQA, recomputed");
    nx_model_config q = c;
    q.arch = NX_ARCH_QWEN3;
    q.qk_norm = true;
    q.HS = 64;
    q.window = 16, q.window_from = 1;
    bf16_backward_near_f32(q, 24, false, false, "Qwen3 q/k norms, a window");
    nx_model_config b = c;
    b.qkv_bias = b.o_bias = true;
    b.tied = true;
    bf16_backward_near_f32(b, 25, true, false, "biases, tied");
    nx_model_config h = c;
    h.NH = 8, h.KVH = 4, h.HS = 16;
    bf16_backward_near_f32(h, 26, false, false, "head size 16");
}

/* NX_GRAD_WRITE (a step's first micro-batch) against NX_GRAD_ADD into
 * zeros: the products' dW written (beta 0) and every other gradient zeroed
 * first by the model, over a buffer of garbage (NaN); then one more
 * NX_GRAD_ADD backward on top of each (the later micro-batches). On the
 * CPU the same bits (0 + x is x; the CPU backend zeroes dW, then adds); on
 * CUDA (cuda set: bf16 products, flash where it fits) within 1e-6 of each
 * other, the values that differ counted (the products' beta 0 against 1
 * into zeros may take another cuBLAS kernel, and −0 becomes +0). */
static void grads_written_equal_added(nx_backend *cuda, nx_model_config cfg, uint64_t seed, bool hidden,
                                      bool recompute, const char *what) {
    nx_err e;
    nx_rng r;
    nx_rng_seed(&r, seed);
    nx_model host, dev, *m = &host;
    random_model(&host, &cfg, &r);
    void *p16 = NULL;
    if (cuda) {
        NX_ASSERT(nx_backend_set_precision(cuda, NX_PREC_BF16, &e) == NX_OK);
        CHECKF(nx_model_init_on(&dev, &cfg, NX_F32, cuda, &e) == NX_OK, "%s", e.msg);
        nx_backend_upload(cuda, dev.params, host.params, sizeof(float) * host.nparams);
        NX_ASSERT((p16 = nx_backend_alloc(cuda, 2 * host.nparams, "test", &e)));
        nx_round_bf16(cuda, p16, dev.params, (int64_t)host.nparams);
        nx_model_bind_bf16(&dev, p16);
        m = &dev;
    }
    nx_backend *be = m->be;
    int B = 2, T = cuda ? 40 : 5, N = B * T, V = cfg.V;
    int32_t ids[80], tg[80];
    float *teacher = random_batch(&r, V, B, T, ids, tg);
    size_t nh = (size_t)(cfg.L + 1) * N * cfg.C, np = m->nparams;
    float *dhid = malloc(sizeof(float) * nh);
    for (size_t i = 0; i < nh; i++) dhid[i] = 0.01f * nx_rng_normal(&r);
    unsigned mode = NX_ACTS_TRAIN | (recompute ? NX_ACTS_RECOMPUTE : 0);
    bool flash = cuda && nx_attention_lse_fits(cuda, cfg.HS, B, T, cfg.NH);
    nx_acts a;
    CHECKF(nx_acts_init(&a, m, B, T, mode | (flash ? NX_ACTS_FLASH : 0), &e) == NX_OK, "%s", e.msg);
    float *gd[2], *dhd, *td;
    int32_t *tgd;
    double *lossd;
    NX_ASSERT((gd[0] = nx_backend_alloc(be, sizeof(float) * np, "test", &e)) &&
              (gd[1] = nx_backend_alloc(be, sizeof(float) * np, "test", &e)) &&
              (dhd = nx_backend_alloc(be, sizeof(float) * nh, "test", &e)) &&
              (td = nx_backend_alloc(be, sizeof(float) * N * V, "test", &e)) &&
              (tgd = nx_backend_alloc(be, sizeof tg, "test", &e)) &&
              (lossd = nx_backend_alloc(be, 2 * sizeof(double), "test", &e)));
    nx_backend_upload(be, dhd, dhid, sizeof(float) * nh);
    nx_backend_upload(be, td, teacher, sizeof(float) * N * V);
    nx_backend_upload(be, tgd, tg, sizeof tg);
    nx_backend_zero(be, gd[0], sizeof(float) * np);
    be->fill(be, gd[1], 0xff, sizeof(float) * np); /* NaN everywhere, padding included */
    for (int pass = 0; pass < 2; pass++) /* pass 1: the later micro-batches' NX_GRAD_ADD on top */
        for (int k = 0; k < 2; k++) {
            nx_model_forward(m, &a, ids, B, T, true);
            nx_distill_loss(be, lossd, lossd + 1, NX_KD_FORWARD_KL, 2.0f, a.dlogits, a.at, 0.5f, 0.5f, a.logits,
                            a.lt, td, NX_F32, tgd, N, V);
            nx_model_backward(m, &a, gd[k], k && !pass ? NX_GRAD_WRITE : NX_GRAD_ADD, hidden ? dhd : NULL, NULL);
        }
    float *g[2] = {malloc(sizeof(float) * np), malloc(sizeof(float) * np)};
    for (int k = 0; k < 2; k++) nx_backend_download(be, g[k], gd[k], sizeof(float) * np);
    size_t differ = 0;
    for (size_t i = 0; i < np; i++) differ += memcmp(&g[0][i], &g[1][i], sizeof(float)) != 0;
    double worst = 0;
    const char *worst_name = "";
    for (int p = 0; p < m->ntab; p++) {
        size_t o = m->tab[p].off / sizeof(float);
        double err = nxt_rel_err(g[1] + o, g[0] + o, (long)m->tab[p].numel);
        if (err > worst || err != err) worst = err, worst_name = m->tab[p].name;
    }
    bool nan = false; /* the padding too: every float of the buffer finite */
    for (size_t i = 0; i < np; i++) nan = nan || !isfinite(g[1][i]);
    if (cuda) {
        printf("  %s (%s): %zu of %zu values differ, worst relative error %.3g at %s\n", what,
               flash ? "flash" : "no flash", differ, np, worst, worst_name);
        CHECKF(!nan && worst <= 1e-6, "%s: written gradients off the added ones by %.3g at %s", what, worst,
               worst_name);
    } else {
        CHECKF(!nan && !differ, "%s: %zu of %zu gradient floats differ written vs added (worst %.3g at %s)", what,
               differ, np, worst, worst_name);
    }
    nx_acts_free(&a);
    nx_backend_free(be, gd[0]), nx_backend_free(be, gd[1]), nx_backend_free(be, dhd), nx_backend_free(be, td);
    nx_backend_free(be, tgd), nx_backend_free(be, lossd);
    if (cuda) {
        nx_model_bind_bf16(&dev, NULL);
        nx_backend_free(cuda, p16);
        nx_model_free(&dev);
        NX_ASSERT(nx_backend_set_precision(cuda, NX_PREC_FP32, &e) == NX_OK);
    }
    nx_model_free(&host);
    free(teacher), free(dhid), free(g[0]), free(g[1]);
}

/* The configurations of both runs: GQA, hidden-state gradients,
 * recomputation, Qwen3 q/k norms with a window, q/k/v and o biases with
 * tied embeddings (the head's product writes the embedding's gradient,
 * which the embedding's backward then adds into). */
static void grads_written_cases(nx_backend *cuda, nx_model_config c) {
    grads_written_equal_added(cuda, c, 31, false, false, "GQA");
    grads_written_equal_added(cuda, c, 32, true, false, "GQA, hidden-state gradients");
    grads_written_equal_added(cuda, c, 33, false, true, "GQA, recomputed");
    nx_model_config q = c;
    q.arch = NX_ARCH_QWEN3;
    q.qk_norm = true;
    q.HS = cuda ? 64 : 6;
    q.window = cuda ? 16 : 2, q.window_from = 1;
    grads_written_equal_added(cuda, q, 34, false, false, "Qwen3 q/k norms, a window");
    nx_model_config b = c;
    b.qkv_bias = b.o_bias = true;
    b.tied = true;
    grads_written_equal_added(cuda, b, 35, true, false, "biases, tied");
    b.tied = false;
    grads_written_equal_added(cuda, b, 36, false, false, "biases, untied");
}

TEST(backward_writing_gradients_equals_adding_into_zeros) { grads_written_cases(NULL, base()); }

TEST(cuda_backward_writing_gradients_equals_adding_into_zeros) {
    nx_err e;
    nx_backend *cuda = nx_backend_cuda(&e);
    if (!cuda) SKIP("%.200s", e.msg);
    nx_model_config c = base();
    c.V = 256, c.C = 128, c.NH = 4, c.KVH = 2, c.HS = 32, c.F = 160, c.max_pos = 64;
    grads_written_cases(cuda, c);
}
