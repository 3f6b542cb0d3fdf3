/* test_train.c — optimiser and trainer: AdamW against a hand-computed
 * update, schedules, clipping, gradient accumulation equal to a larger
 * batch, and a tiny student that learns from a tiny teacher. */
#include "nexus/optim.h"
#include "nexus/train.h"
#include "nxtest.h"

TEST(adamw_first_steps_match_hand_computation) {
    nx_backend *be = nx_backend_cpu();
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, -0.25f};
    double guard = 0.3125;
    nx_adamw o;
    CHECK(nx_adamw_init(&o, be, 2, 0.1f, 0.9f, 0.95f, 1e-8f, 0.1f, NULL) == NX_OK);
    nx_adamw_args a = nx_adamw_next(&o, 0.1f, 0.0f);
    nx_adamw_update(be, p, g, o.m, o.v, 2, &a, &guard, 1);
    /* step 1: m̂ = g, v̂ = g², update = lr·g/|g| = ±lr, after decay p·(1 − lr·wd) */
    CHECK(fabsf(p[0] - (1.0f * 0.99f - 0.1f)) < 1e-6f);
    CHECK(fabsf(p[1] - (-2.0f * 0.99f + 0.1f)) < 1e-6f);
    nx_adamw_free(&o);
}

TEST(clip_inside_the_update_and_guard) {
    nx_backend *be = nx_backend_cpu();
    float g[2] = {3.0f, 4.0f}, gs[2] = {3.0f * (float)(1.0 / (5.0 + 1e-6)), 4.0f * (float)(1.0 / (5.0 + 1e-6))};
    float p1[2] = {1, 1}, p2[2] = {1, 1};
    double ss, one = 1.0;
    nx_sumsq(be, &ss, g, 2);
    CHECK(ss == 25.0);
    nx_adamw o1, o2;
    nx_adamw_init(&o1, be, 2, 0.1f, 0.9f, 0.95f, 1e-8f, 0.0f, NULL);
    nx_adamw_init(&o2, be, 2, 0.1f, 0.9f, 0.95f, 1e-8f, 0.0f, NULL);
    nx_adamw_args a1 = nx_adamw_next(&o1, 0.1f, 1.0f), a2 = nx_adamw_next(&o2, 0.1f, 0.0f);
    nx_adamw_update(be, p1, g, o1.m, o1.v, 2, &a1, &ss, 1);  /* clipped: norm 5 > 1 */
    nx_adamw_update(be, p2, gs, o2.m, o2.v, 2, &a2, &one, 1); /* pre-scaled, no clip */
    CHECK(memcmp(p1, p2, sizeof p1) == 0 && memcmp(o1.m, o2.m, 8) == 0);
    float p3[2] = {1, 1};
    double bad[2] = {NAN, 25.0};
    nx_adamw_update(be, p3, g, o1.m, o1.v, 2, &a1, bad, 2); /* a non-finite guard: nothing changes */
    CHECK(p3[0] == 1.0f && p3[1] == 1.0f);
    nx_adamw_free(&o1);
    nx_adamw_free(&o2);
}

TEST(schedules) {
    CHECK(fabsf(nx_lr_at(NX_SCHED_COSINE, 1e-3f, 1e-4f, 15, 150, 0) - 1e-3f / 15) < 1e-9f);
    CHECK(fabsf(nx_lr_at(NX_SCHED_COSINE, 1e-3f, 1e-4f, 15, 150, 14) - 1e-3f) < 1e-9f);
    CHECK(fabsf(nx_lr_at(NX_SCHED_COSINE, 1e-3f, 1e-4f, 15, 150, 15) - 1e-3f) < 1e-9f);
    CHECK(fabsf(nx_lr_at(NX_SCHED_COSINE, 1e-3f, 1e-4f, 15, 150, 149) - 1e-4f) < 1e-9f);
    CHECK(fabsf(nx_lr_at(NX_SCHED_LINEAR, 1.0f, 0.0f, 0, 101, 50) - 0.5f) < 1e-6f);
    CHECK(nx_lr_at(NX_SCHED_CONSTANT, 2.0f, 0.0f, 0, 10, 9) == 2.0f);
}

static nx_model_config tiny(int L) {
    return (nx_model_config){.arch = NX_ARCH_LLAMA, .V = 31, .C = 16, .L = L, .NH = 4, .KVH = 2,
                             .HS = 4, .F = 24, .max_pos = 32, .eps = 1e-5f, .rope_theta = 10000,
                             .bos_id = -1, .eos_id = -1, .dtype = NX_F32};
}

/* windows of T+1 tokens → inputs and targets, as the loader makes them */
static void split(const int32_t *win, int rows, int T, int32_t *in, int32_t *tg) {
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < T; t++) {
            in[r * T + t] = win[r * (T + 1) + t];
            tg[r * T + t] = win[r * (T + 1) + t + 1];
        }
}

static nx_train_opts opts(int B, int accum) {
    return (nx_train_opts){.B = B, .T = 8, .accum = accum, .alpha = 0.5f, .temp = 2.0f,
                           .kd = NX_KD_FORWARD_KL, .lr = 1e-2f, .min_lr = 1e-3f, .beta1 = 0.9f,
                           .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .clip = 1.0f,
                           .sched = NX_SCHED_COSINE, .warmup = 2, .total_steps = 40};
}

TEST(accumulation_equals_larger_batch) {
    nx_model_config c = tiny(2);
    nx_model t, s1, s2;
    nx_rng r;
    nx_rng_seed(&r, 5);
    CHECK(nx_model_init(&t, &c, NULL) == NX_OK);
    nx_model_init_random(&t, 0.5f, &r);
    CHECK(nx_model_init(&s1, &c, NULL) == NX_OK && nx_model_init(&s2, &c, NULL) == NX_OK);
    nx_model_init_random(&s1, 0.2f, &r);
    memcpy(s2.params, s1.params, s1.nparams * sizeof(float));
    nx_trainer a, b;
    nx_train_opts oa = opts(4, 1), ob = opts(2, 2);
    CHECK(nx_trainer_init(&a, &s1, &t, &oa, NULL) == NX_OK);
    CHECK(nx_trainer_init(&b, &s2, &t, &ob, NULL) == NX_OK);
    int32_t win[4 * 9], in[32], tg[32];
    for (int i = 0; i < 36; i++) win[i] = (int32_t)nx_rng_below(&r, c.V);
    split(win, 4, 8, in, tg);
    nx_step_stats sa, sb;
    CHECK(nx_trainer_step(&a, in, tg, &sa) == NX_OK);
    CHECK(nx_trainer_step(&b, in, tg, &sb) == NX_OK);
    CHECK(fabs(sa.loss - sb.loss) < 1e-5 * fabs(sa.loss));
    CHECK(fabs(sa.grad_norm - sb.grad_norm) < 1e-4 * sa.grad_norm);
    CHECK_REL(s1.params, s2.params, (long)s1.nparams, 1e-5);
    nx_trainer_free(&a);
    nx_trainer_free(&b);
    nx_model_free(&s1);
    nx_model_free(&s2);
    nx_model_free(&t);
}

TEST(student_learns_from_teacher_and_is_deterministic) {
    nx_model_config c = tiny(2);
    nx_model t, s;
    nx_rng r;
    nx_rng_seed(&r, 9);
    CHECK(nx_model_init(&t, &c, NULL) == NX_OK && nx_model_init(&s, &c, NULL) == NX_OK);
    nx_model_init_random(&t, 0.5f, &r);
    nx_model_init_random(&s, 0.02f, &r);
    float *init = malloc(s.nparams * sizeof(float));
    memcpy(init, s.params, s.nparams * sizeof(float));
    nx_trainer tr;
    nx_train_opts o = opts(4, 1);
    CHECK(nx_trainer_init(&tr, &s, &t, &o, NULL) == NX_OK);
    int32_t win[4 * 9], in[32], tg[32];
    for (int i = 0; i < 36; i++) win[i] = (int32_t)nx_rng_below(&r, c.V);
    split(win, 4, 8, in, tg);
    nx_step_stats st;
    double first = 0, last = 0;
    for (int k = 0; k < 40; k++) {
        nx_trainer_step(&tr, in, tg, &st);
        if (k == 0) first = st.loss;
        last = st.loss;
    }
    CHECKF(last < 0.5 * first, "loss %.4f -> %.4f", first, last);
    CHECK(nx_params_finite(&c, s.params, NULL, 0));
    /* a second identical run gives identical bits */
    float *after = malloc(s.nparams * sizeof(float));
    memcpy(after, s.params, s.nparams * sizeof(float));
    nx_trainer_free(&tr);
    memcpy(s.params, init, s.nparams * sizeof(float));
    CHECK(nx_trainer_init(&tr, &s, &t, &o, NULL) == NX_OK);
    for (int k = 0; k < 40; k++) nx_trainer_step(&tr, in, tg, &st);
    CHECK(memcmp(after, s.params, s.nparams * sizeof(float)) == 0);
    /* a non-finite loss stops the step before any update, naming the tensor */
    float *before = malloc(s.nparams * sizeof(float));
    s.params[5] = INFINITY;
    memcpy(before, s.params, s.nparams * sizeof(float));
    CHECK(nx_trainer_step(&tr, in, tg, &st) == NX_ERR && st.bad_tensor[0]);
    CHECK(memcmp(before, s.params, s.nparams * sizeof(float)) == 0);
    free(before);
    s.params[7] = NAN;
    char name[96];
    CHECK(!nx_params_finite(&c, s.params, name, sizeof name) && strcmp(name, "model.embed_tokens.weight") == 0);
    free(init), free(after);
    nx_trainer_free(&tr);
    nx_model_free(&s);
    nx_model_free(&t);
}

TEST(vocab_mismatch_is_reported) {
    nx_model_config c = tiny(1), d = tiny(1);
    d.V = 40;
    nx_model t, s;
    CHECK(nx_model_init(&t, &d, NULL) == NX_OK && nx_model_init(&s, &c, NULL) == NX_OK);
    nx_trainer tr;
    nx_err e;
    nx_train_opts o = opts(2, 1);
    CHECK(nx_trainer_init(&tr, &s, &t, &o, &e) == NX_ERR && strstr(e.msg, "vocabulary"));
    nx_model_free(&s);
    nx_model_free(&t);
}

/* The trainer's whole gradient (CE + KD + hidden-state + attention-map
 * losses, accumulated over two micro-batches) against finite differences
 * of the loss it reports: lr 0 and no clipping leave the parameters as they
 * are and tr.grads as the raw gradient. Probes cover the student and, where
 * the teacher is wider, the learned projections. */
static double trainer_fd(nx_model_config tc, float hidden_w, float att_w, uint64_t seed, bool *had_proj) {
    nx_model_config c = tiny(2);
    nx_model t, s;
    nx_rng r;
    nx_rng_seed(&r, seed);
    CHECK(nx_model_init(&t, &tc, NULL) == NX_OK && nx_model_init(&s, &c, NULL) == NX_OK);
    nx_model_init_random(&t, 0.4f, &r);
    nx_model_init_random(&s, 0.3f, &r);
    static const int pairs[3][2] = {{0, 1}, {1, 2}, {1, 0}};
    nx_train_opts o = opts(2, 2);
    o.lr = o.min_lr = 0;
    o.sched = NX_SCHED_CONSTANT;
    o.clip = 0;
    o.weight_decay = 0;
    o.n_layer_map = 3;
    o.layer_map = pairs;
    o.hidden_weight = hidden_w;
    o.attention_weight = att_w;
    o.proj_seed = seed;
    nx_trainer tr;
    CHECK(nx_trainer_init(&tr, &s, &t, &o, NULL) == NX_OK);
    *had_proj = tr.proj != NULL;
    int32_t win[4 * 9], in[32], tg[32];
    for (int i = 0; i < 36; i++) win[i] = (int32_t)nx_rng_below(&r, c.V);
    split(win, 4, 8, in, tg);
    nx_step_stats st;
    CHECK(nx_trainer_step(&tr, in, tg, &st) == NX_OK);
    CHECK(hidden_w == 0 || st.hidden > 0);
    CHECK(att_w == 0 || st.attention > 0);
    float *g = malloc(tr.n_train * sizeof(float));
    memcpy(g, tr.grads, tr.n_train * sizeof(float));
    double worst = 0;
    for (int k = 0; k < 60; k++) {
        /* half the probes on the projections when there are some */
        size_t i = tr.proj && k % 2 ? s.nparams + nx_rng_below(&r, tr.n_train - s.nparams)
                                    : nx_rng_below(&r, s.nparams);
        float keep = s.params[i], h = 1e-3f;
        s.params[i] = keep + h;
        nx_trainer_step(&tr, in, tg, &st);
        double up = st.loss;
        s.params[i] = keep - h;
        nx_trainer_step(&tr, in, tg, &st);
        double dn = st.loss;
        s.params[i] = keep;
        double num = (up - dn) / (2 * h), e = fabs(num - g[i]) / (fabs(num) + fabs(g[i]) + 1e-2);
        if (e > worst) worst = e;
    }
    free(g);
    nx_trainer_free(&tr);
    nx_model_free(&s);
    nx_model_free(&t);
    return worst;
}

TEST(trainer_gradient_with_hidden_and_attention_losses_matches_finite_differences) {
    bool proj;
    /* equal widths and head counts: identity map, per-head attention KL */
    double w = trainer_fd(tiny(3), 0.7f, 0, 21, &proj);
    CHECKF(w < 2e-2 && !proj, "hidden only: worst disagreement %.3g", w);
    w = trainer_fd(tiny(3), 0, 0.9f, 22, &proj);
    CHECKF(w < 2e-2, "attention only: worst disagreement %.3g", w);
    w = trainer_fd(tiny(3), 0.7f, 0.9f, 23, &proj);
    CHECKF(w < 2e-2, "both: worst disagreement %.3g", w);
    /* a wider teacher with other head counts: learned projections, head-mean maps */
    nx_model_config wide = tiny(3);
    wide.C = 24;
    wide.NH = 6;
    wide.KVH = 3;
    w = trainer_fd(wide, 0.7f, 0.9f, 24, &proj);
    CHECKF(w < 2e-2 && proj, "projection + head-mean attention: worst disagreement %.3g", w);
}

/* Projections train with the student: the loss falls, and a layer map out
 * of range is refused. */
TEST(hidden_projection_learns_and_layer_map_is_checked) {
    nx_model_config c = tiny(2), wide = tiny(3);
    wide.C = 24;
    nx_model t, s;
    nx_rng r;
    nx_rng_seed(&r, 31);
    CHECK(nx_model_init(&t, &wide, NULL) == NX_OK && nx_model_init(&s, &c, NULL) == NX_OK);
    nx_model_init_random(&t, 0.5f, &r);
    nx_model_init_random(&s, 0.1f, &r);
    static const int pairs[2][2] = {{0, 1}, {1, 2}};
    nx_train_opts o = opts(4, 1);
    o.n_layer_map = 2;
    o.layer_map = pairs;
    o.hidden_weight = 1.0f;
    nx_trainer tr;
    CHECK(nx_trainer_init(&tr, &s, &t, &o, NULL) == NX_OK);
    CHECK(tr.n_train == s.nparams + 2 * 24 * 16 && s.nextra == 2 * 24 * 16);
    int32_t win[4 * 9], in[32], tg[32];
    for (int i = 0; i < 36; i++) win[i] = (int32_t)nx_rng_below(&r, c.V);
    split(win, 4, 8, in, tg);
    nx_step_stats st;
    double first = 0, last = 0;
    for (int k = 0; k < 40; k++) {
        CHECK(nx_trainer_step(&tr, in, tg, &st) == NX_OK);
        if (k == 0) first = st.hidden;
        last = st.hidden;
    }
    CHECKF(last < 0.7 * first, "hidden loss %.4f -> %.4f", first, last);
    nx_trainer_free(&tr);
    static const int bad[1][2] = {{0, 3}};
    o.n_layer_map = 1;
    o.layer_map = bad;
    nx_err e;
    CHECK(nx_trainer_init(&tr, &s, &t, &o, &e) == NX_ERR && strstr(e.msg, "out of range"));
    nx_model_free(&s);
    nx_model_free(&t);
}
