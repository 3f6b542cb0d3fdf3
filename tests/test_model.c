/* test_model.c — the whole model's backward against finite differences of
 * its loss, on tiny random configurations covering GQA, MQA, q/k/v/o bias
 * and tied embeddings; and a forward at batch B that equals B forwards at
 * batch 1. */
#include "nexus/loss.h"
#include "nexus/model.h"
#include "nxtest.h"

static double model_loss(nx_model *m, nx_acts *a, const int32_t *ids, const int32_t *tg, int B,
                         int T, float *dlogits_or_null, const float *teacher) {
    nx_model_forward(m, a, ids, B, T, true);
    int N = B * T;
    double ce = nx_cross_entropy(dlogits_or_null, 0.5f, a->logits, tg, N, m->cfg.V);
    double kd = nx_kd_loss(NX_KD_FORWARD_KL, 2.0f, dlogits_or_null, 0.5f, a->logits, teacher, tg, N, m->cfg.V);
    return 0.5 * ce + 0.5 * kd;
}

static void check_config(nx_model_config cfg, uint64_t seed) {
    nx_rng r;
    nx_rng_seed(&r, seed);
    nx_model m;
    CHECK(nx_model_init(&m, &cfg, NULL) == NX_OK);
    nx_model_init_random(&m, 0.3f, &r);
    for (size_t i = 0; i < m.nparams; i++) /* perturb norms and biases off their 1/0 init */
        m.params[i] += 0.05f * nx_rng_normal(&r);
    int B = 2, T = 5, N = B * T;
    nx_acts a;
    CHECK(nx_acts_init(&a, &cfg, B, T, NX_ACTS_TRAIN, NULL) == NX_OK);
    int32_t ids[10], tg[10];
    for (int n = 0; n < N; n++) ids[n] = (int32_t)nx_rng_below(&r, cfg.V);
    for (int n = 0; n < N; n++) tg[n] = (n % T == T - 1) ? -1 : ids[n + 1];
    float *teacher = malloc(sizeof(float) * N * cfg.V);
    for (int i = 0; i < N * cfg.V; i++) teacher[i] = 2 * nx_rng_normal(&r);

    float *grads = calloc(m.nparams, sizeof(float));
    memset(a.dlogits, 0, sizeof(float) * N * cfg.V);
    model_loss(&m, &a, ids, tg, B, T, a.dlogits, teacher);
    nx_model_backward(&m, &a, grads, NULL, NULL);

    int np = nx_model_params(&cfg, NULL);
    nx_param *tab = malloc(sizeof *tab * np);
    nx_model_params(&cfg, tab);
    double worst = 0;
    const char *worst_name = "";
    for (int p = 0; p < np; p++)
        for (int probe = 0; probe < 3; probe++) {
            size_t i = tab[p].offset + nx_rng_below(&r, tab[p].numel);
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
    free(batched), free(tab), free(grads), free(teacher);
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

TEST(backward_matches_finite_differences_one_head_one_layer) {
    nx_model_config c = base();
    c.NH = c.KVH = 1;
    c.HS = 12;
    c.L = 1;
    check_config(c, 3);
}

TEST(param_table_is_consistent) {
    nx_model_config c = base();
    c.qkv_bias = true;
    int n = nx_model_params(&c, NULL);
    CHECK(n == 1 + 2 * 12 + 2);
    nx_param *t = malloc(sizeof *t * n);
    nx_model_params(&c, t);
    CHECK(strcmp(t[0].name, "model.embed_tokens.weight") == 0);
    CHECK(strcmp(t[n - 1].name, "lm_head.weight") == 0);
    for (int i = 1; i < n; i++) CHECK(t[i].offset >= t[i - 1].offset + t[i - 1].numel && t[i].offset % 16 == 0);
    CHECK(nx_model_numel(&c) >= t[n - 1].offset + t[n - 1].numel);
    free(t);
    nx_err e;
    c.KVH = 3;
    CHECK(nx_model_config_check(&c, &e) == NX_ERR && strstr(e.msg, "multiple"));
}

/* Parameters are the tensors' sizes; the buffer pads each tensor to 16 floats. */
TEST(parameter_count_excludes_padding) {
    nx_model_config c = base(); /* V 23, C 12: every tensor but the 4×4 ones is padded */
    int L = c.L, Q = c.NH * c.HS, KV = c.KVH * c.HS;
    size_t want = 2 * (size_t)c.V * c.C + c.C +
                  (size_t)L * (2 * c.C + (size_t)Q * c.C * 2 + (size_t)KV * c.C * 2 + 3 * (size_t)c.F * c.C);
    CHECK(nx_model_count(&c) == want);
    CHECK(nx_model_numel(&c) > want);
}

TEST(acts_bytes_is_what_init_allocates) {
    nx_model_config c = base();
    for (unsigned mode = 0; mode < 4; mode++) {
        nx_acts a;
        CHECK(nx_acts_init(&a, &c, 3, 7, mode, NULL) == NX_OK);
        CHECK(a.arena.used == nx_acts_bytes(&c, 3, 7, mode));
        nx_acts_free(&a);
    }
    CHECK(nx_acts_bytes(&c, 2, 8, NX_ACTS_TRAIN) > nx_acts_bytes(&c, 2, 8, NX_ACTS_INFER));
    /* kept maps: one (B, NH, T, T) slice per layer instead of one shared */
    CHECK(nx_acts_bytes(&c, 2, 8, NX_ACTS_KEEP_PROBS) - nx_acts_bytes(&c, 2, 8, NX_ACTS_INFER) ==
          (size_t)(c.L - 1) * 2 * c.NH * 8 * 8 * sizeof(float));
}
