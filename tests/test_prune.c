/* test_prune.c — the pruners of src/compress/ on small random models:
 *   - calibration sums equal a direct host computation;
 *   - unstructured: exact counts per comparison group (matrix, all
 *     matrices, output row, N:M run), the pruned scores never above the
 *     kept ones, the mask equal to the zeros, nothing else touched; bad
 *     options rejected with the reason;
 *   - structured: removing FFN neurons, KV groups, query heads or a layer
 *     gives the same logits as the full model with those parts zeroed;
 *     removing hidden channels the same as the model whose stream is zero
 *     there (norm weights rescaled by √(C/C'), eps tiny); the plan ranks by
 *     activation importance (dead parts go first);
 *   - target shapes and parameter fitting, with their errors;
 *   - the sparsity mask sidecar round-trips and rejects another model's. */
#include <math.h>
#include <unistd.h>

#include "nexus/hf.h"
#include "nexus/prune.h"
#include "nxtest.h"

static nx_model_config small_cfg(void) {
    return (nx_model_config){.arch = NX_ARCH_LLAMA, .V = 61, .C = 32, .L = 3, .NH = 4, .KVH = 2, .HS = 8,
                             .F = 48, .max_pos = 64, .eps = 1e-5f, .rope_theta = 10000, .bos_id = -1,
                             .eos_id = -1, .dtype = NX_F32};
}

static void make_model(nx_model *m, const nx_model_config *c, uint64_t seed) {
    nx_rng r;
    nx_rng_seed(&r, seed);
    NX_ASSERT(nx_model_init(m, c, NULL) == NX_OK);
    nx_model_init_random(m, 0.2f, &r);
    /* norms away from 1 so that channels differ */
    for (int i = 0; i < m->ntab; i++)
        if (strstr(m->tab[i].name, "norm")) {
            float *p = nx_param_f32(&m->tab[i], m->params);
            for (size_t k = 0; k < m->tab[i].numel; k++) p[k] = 0.5f + (float)nx_rng_uniform(&r);
        }
}

static int32_t *random_ids(int n, int V, uint64_t seed) {
    nx_rng r;
    nx_rng_seed(&r, seed);
    int32_t *ids = malloc(sizeof(int32_t) * n);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)nx_rng_below(&r, (uint64_t)V);
    return ids;
}

static void calibrate(nx_calib *c, const nx_model *m, const int32_t *ids, int n, int T) {
    nx_err e;
    NX_ASSERT(nx_calib_init(c, m, 2, T, &e) == NX_OK);
    for (int b = 0; b < n; b += 2) nx_calib_add(c, ids + (size_t)b * T, n - b < 2 ? n - b : 2);
}

/* Logits of B × T ids (host copy, B·T·V floats). */
static float *logits(const nx_model *m, const int32_t *ids, int B, int T) {
    nx_acts a;
    nx_err e;
    NX_ASSERT(nx_acts_init(&a, m, B, T, NX_ACTS_INFER, &e) == NX_OK);
    nx_model_forward(m, &a, ids, B, T, true);
    size_t n = (size_t)B * T * m->cfg.V;
    float *out = malloc(sizeof(float) * n);
    nx_backend_download(m->be, out, a.logits, sizeof(float) * n);
    nx_acts_free(&a);
    return out;
}

static float *tensor(const nx_model *m, const char *name) {
    int i = nx_model_find(m, name);
    NX_ASSERT(i >= 0);
    return nx_param_f32(&m->tab[i], m->params);
}

static double max_rel(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / (den + 1e-30);
}

TEST(calibration_sums_match_a_direct_computation) {
    nx_model_config c = small_cfg();
    nx_model m;
    make_model(&m, &c, 1);
    int T = 12, n = 3;
    int32_t *ids = random_ids(n * T, c.V, 2);
    nx_calib cal;
    calibrate(&cal, &m, ids, n, T);
    CHECK(cal.rows == (int64_t)n * T);
    /* layer 0's ln1 is the RMSNorm of the embeddings */
    const float *wte = tensor(&m, "model.embed_tokens.weight"), *w = tensor(&m, "model.layers.0.input_layernorm.weight");
    double worst = 0;
    for (int k = 0; k < c.C; k++) {
        double sq = 0, ab = 0;
        for (int r = 0; r < n * T; r++) {
            const float *x = wte + (size_t)ids[r] * c.C;
            double ms = 0;
            for (int j = 0; j < c.C; j++) ms += (double)x[j] * x[j];
            double y = w[k] * x[k] / sqrt(ms / c.C + c.eps);
            sq += y * y, ab += fabs(y);
        }
        worst = fmax(worst, fabs(sq - cal.ln1_sq[k]) / sq);
        worst = fmax(worst, fabs(ab - cal.ln1_abs[k]) / ab);
    }
    CHECKF(worst < 1e-5, "ln1 sums off by %.3g", worst);
    /* block influence of every layer from the hidden states of a forward */
    nx_acts a;
    nx_err e;
    CHECK(nx_acts_init(&a, &m, n, T, NX_ACTS_INFER, &e) == NX_OK);
    nx_model_forward(&m, &a, ids, n, T, false);
    for (int l = 0; l < c.L; l++) {
        const float *x = a.res + (size_t)l * n * T * c.C, *y = x + (size_t)n * T * c.C;
        double s = 0;
        for (int r = 0; r < n * T; r++) {
            double xy = 0, xx = 0, yy = 0;
            for (int j = 0; j < c.C; j++) {
                xy += (double)x[r * c.C + j] * y[r * c.C + j];
                xx += (double)x[r * c.C + j] * x[r * c.C + j];
                yy += (double)y[r * c.C + j] * y[r * c.C + j];
            }
            s += 1 - xy / sqrt(xx * yy);
        }
        CHECKF(fabs(s - cal.bi[l]) <= 1e-6 * fabs(s) + 1e-9, "layer %d block influence %g vs %g", l, cal.bi[l], s);
    }
    nx_acts_free(&a);
    nx_calib_free(&cal);
    nx_model_free(&m);
    free(ids);
}

enum { ROW = 1 << 30 };

/* Checks the zeros of every layer matrix of m against its mask and the
 * scores of the unpruned copy: exactly k zeros per group of g weights
 * (g = 0: the whole matrix, ROW: each row) and no pruned score above a
 * kept one. */
static void check_groups(const nx_model *m, const nx_model *orig, const uint8_t *mask, const nx_calib *cal, size_t g,
                         double sparsity, bool nm_keep_count, int keep_n) {
    for (int i = 0; i < m->ntab; i++) {
        const nx_param *p = &m->tab[i];
        const float *w = nx_param_f32(p, m->params), *w0 = nx_param_f32(p, orig->params);
        const uint8_t *mk = mask + p->off / 4;
        if (!nx_prune_is_sparse_target(p)) {
            bool same = memcmp(w, w0, p->numel * 4) == 0;
            size_t ones = 0;
            for (size_t k = 0; k < p->numel; k++) ones += mk[k] == 1;
            CHECKF(same && ones == p->numel, "%s changed or masked", p->name);
            continue;
        }
        size_t cols = (size_t)p->shape[1], group = g == ROW ? cols : g ? g : p->numel;
        int l = 0;
        sscanf(p->name, "model.layers.%d.", &l);
        const double *xsq = NULL;
        if (cal) {
            size_t C = (size_t)m->cfg.C, Q = (size_t)m->cfg.NH * m->cfg.HS, F = (size_t)m->cfg.F;
            xsq = strstr(p->name, "o_proj") ? cal->att_sq + l * Q : strstr(p->name, "down_proj") ? cal->h_sq + l * F
                : strstr(p->name, "mlp") ? cal->ln2_sq + l * C : cal->ln1_sq + l * C;
        }
        for (size_t g0 = 0; g0 < p->numel; g0 += group) {
            size_t zeros = 0;
            double max_pruned = -1, min_kept = INFINITY;
            for (size_t k = g0; k < g0 + group; k++) {
                double s = fabs((double)w0[k]) * (xsq ? sqrt(xsq[k % cols]) : 1.0);
                if (!mk[k]) {
                    zeros++;
                    max_pruned = fmax(max_pruned, s);
                    CHECKF(w[k] == 0.0f, "%s[%zu] masked but not zero", p->name, k);
                } else {
                    min_kept = fmin(min_kept, s);
                    CHECKF(w[k] == w0[k], "%s[%zu] kept but changed", p->name, k);
                }
            }
            size_t want = nm_keep_count ? group - (size_t)keep_n : (size_t)floor(sparsity * (double)group);
            CHECKF(zeros == want, "%s group at %zu: %zu zeros, want %zu", p->name, g0, zeros, want);
            CHECKF(max_pruned <= min_kept * (1 + 1e-6), "%s: a pruned score %g above a kept one %g", p->name, max_pruned,
                   min_kept);
        }
    }
}

TEST(unstructured_counts_scores_and_masks) {
    nx_model_config c = small_cfg();
    nx_model orig, m;
    make_model(&orig, &c, 3);
    int T = 16, n = 4;
    int32_t *ids = random_ids(n * T, c.V, 4);
    nx_calib cal;
    calibrate(&cal, &orig, ids, n, T);
    uint8_t *mask = malloc(orig.nparams);
    nx_sparse_stats st;
    nx_err e;
    struct { nx_sparse_opts o; size_t g; bool nm; } cases[] = {
        {{NX_PRUNE_MAGNITUDE, 0.5, 0, 0, false}, 0, false},
        {{NX_PRUNE_MAGNITUDE, 0.63, 0, 0, false}, 0, false},
        {{NX_PRUNE_WANDA, 0.5, 0, 0, false}, 0, false}, /* per row */
        {{NX_PRUNE_WANDA, 0.6, 0, 0, false}, 0, false},
        {{NX_PRUNE_WANDA, 0, 2, 4, false}, 4, true},
        {{NX_PRUNE_MAGNITUDE, 0, 4, 8, false}, 8, true},
    };
    for (int k = 0; k < 6; k++) {
        make_model(&m, &c, 3);
        CHECKF(nx_prune_sparse(&m, &cal, &cases[k].o, mask, &st, &e) == NX_OK, "%s", e.msg);
        bool wanda = cases[k].o.method == NX_PRUNE_WANDA;
        size_t g = wanda && !cases[k].nm ? ROW : cases[k].g;
        check_groups(&m, &orig, mask, wanda ? &cal : NULL, g, cases[k].o.sparsity, cases[k].nm, cases[k].o.n);
        CHECK(st.prunable == (size_t)c.L * ((c.NH + 2 * c.KVH) * c.HS * c.C + c.C * c.NH * c.HS + 3 * c.F * c.C));
        nx_model_free(&m);
    }
    /* global magnitude: one threshold over all matrices */
    make_model(&m, &c, 3);
    nx_sparse_opts go = {NX_PRUNE_MAGNITUDE, 0.5, 0, 0, true};
    CHECK(nx_prune_sparse(&m, NULL, &go, mask, &st, &e) == NX_OK);
    CHECK(st.pruned == (size_t)floor(0.5 * (double)st.prunable));
    double max_pruned = 0, min_kept = INFINITY;
    size_t per_matrix_differs = 0;
    for (int i = 0; i < m.ntab; i++) {
        if (!nx_prune_is_sparse_target(&m.tab[i])) continue;
        const float *w0 = nx_param_f32(&m.tab[i], orig.params);
        const uint8_t *mk = mask + m.tab[i].off / 4;
        size_t z = 0;
        for (size_t k = 0; k < m.tab[i].numel; k++) {
            if (!mk[k]) max_pruned = fmax(max_pruned, fabs(w0[k])), z++;
            else min_kept = fmin(min_kept, fabs(w0[k]));
        }
        per_matrix_differs += z != m.tab[i].numel / 2;
    }
    CHECK(max_pruned <= min_kept);
    CHECK(per_matrix_differs > 0); /* global: matrices lose different fractions */
    nx_model_free(&m);
    /* Wanda is not magnitude when input norms differ */
    nx_model a, b;
    make_model(&a, &c, 3), make_model(&b, &c, 3);
    uint8_t *mask2 = malloc(orig.nparams);
    nx_sparse_opts mo = {NX_PRUNE_MAGNITUDE, 0.5, 0, 0, false}, wo = {NX_PRUNE_WANDA, 0.5, 0, 0, false};
    CHECK(nx_prune_sparse(&a, &cal, &wo, mask, &st, &e) == NX_OK && nx_prune_sparse(&b, NULL, &mo, mask2, &st, &e) == NX_OK);
    CHECK(memcmp(mask, mask2, orig.nparams) != 0);
    nx_model_free(&a), nx_model_free(&b);
    free(mask2);
    /* bad options, each with its reason */
    struct { nx_sparse_opts o; const char *needle; } bad[] = {
        {{NX_PRUNE_MAGNITUDE, 1.0, 0, 0, false}, "outside [0, 1)"},
        {{NX_PRUNE_MAGNITUDE, -0.1, 0, 0, false}, "outside [0, 1)"},
        {{NX_PRUNE_WANDA, 0, 2, 5, false}, "multiple of 5"},
        {{NX_PRUNE_WANDA, 0, 4, 2, false}, "0 < N < M"},
        {{NX_PRUNE_WANDA, 0.5, 0, 0, true}, "global threshold is for magnitude"},
        {{NX_PRUNE_MINITRON, 0.5, 0, 0, false}, "magnitude or wanda"},
    };
    for (int k = 0; k < 6; k++)
        CHECKF(nx_sparse_check(&c, &bad[k].o, &e) == NX_ERR && strstr(e.msg, bad[k].needle), "case %d: %s", k, e.msg);
    int pn, pm;
    CHECK(nx_sparse_parse_pattern("2:4", &pn, &pm, &e) == NX_OK && pn == 2 && pm == 4);
    CHECK(nx_sparse_parse_pattern("2:4x", &pn, &pm, &e) == NX_ERR && strstr(e.msg, "2:4x"));
    CHECK(nx_sparse_parse_pattern("4:4", &pn, &pm, &e) == NX_ERR);
    nx_calib_free(&cal);
    nx_model_free(&orig);
    free(mask), free(ids);
}

/* Logits of the pruned model (plan p) against those of `ref`. */
static double compare(const nx_model *src, const nx_prune_plan *p, const nx_model *ref, const int32_t *ids, int B, int T,
                      void (*adjust)(nx_model *, const nx_prune_plan *)) {
    nx_model out;
    nx_err e;
    NX_ASSERT(nx_prune_apply(src, p, &out, &e) == NX_OK);
    if (adjust) adjust(&out, p);
    float *a = logits(&out, ids, B, T), *b = logits(ref, ids, B, T);
    double err = max_rel(a, b, (size_t)B * T * src->cfg.V);
    free(a), free(b);
    nx_model_free(&out);
    return err;
}

static void zero_cols(float *w, int rows, int cols, int c0, int n) {
    for (int r = 0; r < rows; r++) memset(w + (size_t)r * cols + c0, 0, sizeof(float) * n);
}
static void zero_rows(float *w, int cols, int r0, int n) { memset(w + (size_t)r0 * cols, 0, sizeof(float) * n * cols); }

TEST(removing_parts_equals_zeroing_them) {
    nx_model_config c = small_cfg();
    c.KVH = 2, c.NH = 4; /* two groups of two heads */
    nx_model src, ref;
    int B = 2, T = 10;
    int32_t *ids = random_ids(B * T, c.V, 5);
    char name[96];
    /* FFN neurons: keep 0..9 and 20..29 of every layer */
    make_model(&src, &c, 7), make_model(&ref, &c, 7);
    nx_model_config d = c;
    d.F = 20;
    int ffn[3 * 20];
    for (int l = 0; l < 3; l++)
        for (int k = 0; k < 20; k++) ffn[l * 20 + k] = k < 10 ? k : k + 10;
    for (int l = 0; l < 3; l++) {
        snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", l);
        float *dn = tensor(&ref, name);
        zero_cols(dn, c.C, c.F, 10, 10);
        zero_cols(dn, c.C, c.F, 30, c.F - 30);
    }
    nx_prune_plan p;
    nx_prune_plan_from(&p, &c, &d, NULL, NULL, NULL, NULL, ffn);
    double e1 = compare(&src, &p, &ref, ids, B, T, NULL);
    CHECKF(e1 < 1e-5, "FFN neurons: logits differ by %.3g", e1);
    nx_prune_plan_free(&p);
    nx_model_free(&ref);
    /* KV groups: layer 0 keeps group 1, layers 1, 2 group 0; and one query head of two per group */
    make_model(&ref, &c, 7);
    d = c, d.KVH = 1, d.NH = 1;
    int groups[3] = {1, 0, 0}, heads[3] = {3, 0, 1};
    int HS = c.HS, Q = c.NH * HS;
    for (int l = 0; l < 3; l++) {
        snprintf(name, sizeof name, "model.layers.%d.self_attn.o_proj.weight", l);
        float *o = tensor(&ref, name);
        for (int h = 0; h < c.NH; h++)
            if (h != heads[l]) zero_cols(o, c.C, Q, h * HS, HS);
    }
    nx_prune_plan_from(&p, &c, &d, NULL, NULL, groups, heads, NULL);
    double e2 = compare(&src, &p, &ref, ids, B, T, NULL);
    CHECKF(e2 < 1e-5, "heads: logits differ by %.3g", e2);
    nx_prune_plan_free(&p);
    nx_model_free(&ref);
    /* a layer: removing layer 1 = layer 1 with zero o and down (an identity block) */
    make_model(&ref, &c, 7);
    zero_rows(tensor(&ref, "model.layers.1.self_attn.o_proj.weight"), Q, 0, c.C);
    zero_rows(tensor(&ref, "model.layers.1.mlp.down_proj.weight"), c.F, 0, c.C);
    d = c, d.L = 2;
    int layers[2] = {0, 2};
    nx_prune_plan_from(&p, &c, &d, layers, NULL, NULL, NULL, NULL);
    double e3 = compare(&src, &p, &ref, ids, B, T, NULL);
    CHECKF(e3 < 1e-5, "layer: logits differ by %.3g", e3);
    nx_prune_plan_free(&p);
    nx_model_free(&ref);
    nx_model_free(&src);
    free(ids);
}

/* RMSNorm over C' kept channels of a stream that is zero elsewhere: the
 * full model's norm divides by √(Σx²/C), the pruned one by √(Σx²/C'). */
static void rescale_norms(nx_model *m, const nx_prune_plan *p) {
    float s = sqrtf((float)p->src.C / (float)p->dst.C);
    for (int i = 0; i < m->ntab; i++)
        if (strstr(m->tab[i].name, "norm")) {
            float *w = nx_param_f32(&m->tab[i], m->params);
            for (size_t k = 0; k < m->tab[i].numel; k++) w[k] *= s;
        }
}

TEST(removing_hidden_channels_equals_a_stream_zero_there) {
    nx_model_config c = small_cfg();
    c.eps = 1e-12f;
    nx_model src, ref;
    make_model(&src, &c, 9);
    int B = 2, T = 10, Q = c.NH * c.HS;
    int32_t *ids = random_ids(B * T, c.V, 6);
    nx_model_config d = c;
    d.C = 20;
    int hid[20];
    for (int k = 0, j = 0; k < c.C; k++)
        if (k % 8 != 3 && k % 8 != 6 && j < 20) hid[j++] = k;
    /* the source itself with the stream zero outside hid: embeddings, o and down rows */
    bool keep[64] = {false};
    for (int k = 0; k < 20; k++) keep[hid[k]] = true;
    float *wte = tensor(&src, "model.embed_tokens.weight");
    for (int v = 0; v < c.V; v++)
        for (int k = 0; k < c.C; k++)
            if (!keep[k]) wte[(size_t)v * c.C + k] = 0;
    char name[96];
    for (int l = 0; l < c.L; l++)
        for (int k = 0; k < c.C; k++)
            if (!keep[k]) {
                snprintf(name, sizeof name, "model.layers.%d.self_attn.o_proj.weight", l);
                zero_rows(tensor(&src, name), Q, k, 1);
                snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", l);
                zero_rows(tensor(&src, name), c.F, k, 1);
            }
    make_model(&ref, &c, 9);
    memcpy(ref.params, src.params, src.nparams * 4);
    nx_prune_plan p;
    nx_prune_plan_from(&p, &c, &d, NULL, hid, NULL, NULL, NULL);
    double e = compare(&src, &p, &ref, ids, B, T, rescale_norms);
    CHECKF(e < 1e-5, "hidden channels: logits differ by %.3g", e);
    nx_prune_plan_free(&p);
    nx_model_free(&src), nx_model_free(&ref);
    free(ids);
}

TEST(plans_rank_by_activation_importance) {
    nx_model_config c = small_cfg();
    nx_model m;
    make_model(&m, &c, 11);
    int Q = c.NH * c.HS, KV = c.KVH * c.HS;
    (void)KV;
    /* dead parts: layer 0's KV group 0 (v rows zero: its heads output 0),
     * layer 2's neurons 5..14 (up rows zero), hidden channels 0..3 (zero in
     * the embeddings and the norm weights), layer 1 (o and down zero) */
    float *v0 = tensor(&m, "model.layers.0.self_attn.v_proj.weight");
    zero_rows(v0, c.C, 0, c.HS);
    zero_rows(tensor(&m, "model.layers.2.mlp.up_proj.weight"), c.C, 5, 10);
    zero_rows(tensor(&m, "model.layers.1.self_attn.o_proj.weight"), Q, 0, c.C);
    zero_rows(tensor(&m, "model.layers.1.mlp.down_proj.weight"), c.F, 0, c.C);
    for (int i = 0; i < m.ntab; i++)
        if (strstr(m.tab[i].name, "norm")) memset(nx_param_f32(&m.tab[i], m.params), 0, 4 * 4);
    int T = 16, n = 4;
    int32_t *ids = random_ids(n * T, c.V, 12);
    nx_calib cal;
    calibrate(&cal, &m, ids, n, T);
    nx_model_config d;
    nx_err e;
    nx_prune_shape want = {.hidden = 28, .ffn = 38, .kv_heads = 1, .layers = 2};
    CHECK(nx_prune_shape_resolve(&c, &want, &d, &e) == NX_OK && d.NH == 2 && d.KVH == 1);
    nx_prune_plan p;
    nx_prune_plan_make(&p, &cal, &d, NULL);
    CHECKF(p.layers[0] == 0 && p.layers[1] == 2, "kept layers %d %d", p.layers[0], p.layers[1]);
    CHECKF(p.groups[0] == 1 && p.heads[0] == 2 && p.heads[1] == 3, "layer 0 kept group %d", p.groups[0]);
    CHECK(p.hidden[0] == 4 && p.hidden[27] == 31);
    bool dead_kept = false;
    for (int k = 0; k < d.F; k++) dead_kept = dead_kept || (p.ffn[1 * d.F + k] >= 5 && p.ffn[1 * d.F + k] < 15);
    CHECK(!dead_kept);
    nx_model out;
    CHECK(nx_prune_apply(&m, &p, &out, &e) == NX_OK);
    CHECK(nx_model_count(&out.cfg) == nx_model_count(&d));
    /* every kept weight is the source's, unchanged */
    const float *q_src = tensor(&m, "model.layers.2.self_attn.q_proj.weight");
    const float *q_dst = tensor(&out, "model.layers.1.self_attn.q_proj.weight");
    int r = p.heads[1 * d.NH] * c.HS; /* first kept head's first row */
    CHECK(q_dst[0] == q_src[(size_t)r * c.C + p.hidden[0]] && q_dst[5] == q_src[(size_t)r * c.C + p.hidden[5]]);
    nx_model_free(&out);
    nx_prune_plan_free(&p);
    nx_calib_free(&cal);
    nx_model_free(&m);
    free(ids);
}

TEST(target_shapes_and_parameter_fitting) {
    nx_model_config c = small_cfg(), d;
    c.NH = 6, c.KVH = 2, c.C = 48; /* groups of three */
    nx_err e;
    struct { nx_prune_shape s; const char *needle; } bad[] = {
        {{.hidden = 60}, "larger than the model's 48"},
        {{.hidden = 40}, "not a multiple of the 6 attention heads"},
        {{.heads = 4}, "not a whole number of the model's KV groups"},
        {{.heads = 8, .kv_heads = 2}, "larger than the model's 6"},
        {{.heads = 4, .kv_heads = 1}, "more than the model's 3"},
        {{.heads = 3, .kv_heads = 2}, "cannot share 2 KV heads"},
        {{.layers = 4}, "larger than the model's 3"},
        {{.ffn = -1}, "positive"},
    };
    for (int k = 0; k < 8; k++)
        CHECKF(nx_prune_shape_resolve(&c, &bad[k].s, &d, &e) == NX_ERR && strstr(e.msg, bad[k].needle), "case %d: %s",
               k, e.msg);
    CHECK(nx_prune_shape_resolve(&c, &(nx_prune_shape){.heads = 3}, &d, &e) == NX_OK && d.NH == 3 && d.KVH == 1);
    CHECK(nx_prune_shape_resolve(&c, &(nx_prune_shape){.heads = 4, .kv_heads = 2}, &d, &e) == NX_OK && d.NH == 4);
    CHECK(nx_prune_shape_resolve(&c, &(nx_prune_shape){.kv_heads = 1}, &d, &e) == NX_OK && d.NH == 3);
    /* fitting: at most the target, and one step larger would not fit */
    int64_t full = (int64_t)nx_model_count(&c), target = full * 2 / 3;
    nx_prune_shape s;
    CHECK(nx_prune_fit(&c, target, NX_AXIS_HIDDEN | NX_AXIS_FFN, 4, &s, &e) == NX_OK);
    CHECK(s.hidden % 12 == 0 && s.ffn % 4 == 0 && s.hidden > 0 && s.heads == 0 && s.layers == 0);
    CHECK(nx_prune_shape_resolve(&c, &s, &d, &e) == NX_OK && (int64_t)nx_model_count(&d) <= target);
    nx_prune_shape bigger = s;
    bigger.hidden += 12, bigger.ffn += 4; /* hidden: a multiple of 4 and of the 6 heads */
    CHECK(nx_prune_shape_resolve(&c, &bigger, &d, &e) == NX_OK && (int64_t)nx_model_count(&d) > target);
    CHECK(nx_prune_fit(&c, full + 1, NX_AXIS_FFN, 1, &s, &e) == NX_ERR && strstr(e.msg, "larger than the model"));
    CHECK(nx_prune_fit(&c, 10, NX_AXIS_FFN, 1, &s, &e) == NX_ERR && strstr(e.msg, "name more axes"));
    CHECK(nx_prune_fit(&c, target, 0, 1, &s, &e) == NX_ERR && strstr(e.msg, "at least one axis"));
}

TEST(mask_sidecar_roundtrip) {
    nx_model_config c = small_cfg();
    nx_model m;
    make_model(&m, &c, 13);
    uint8_t *mask = malloc(m.nparams), *back = malloc(m.nparams);
    nx_sparse_stats st;
    nx_err e;
    nx_sparse_opts o = {NX_PRUNE_MAGNITUDE, 0, 2, 4, false};
    CHECK(nx_prune_sparse(&m, NULL, &o, mask, &st, &e) == NX_OK);
    char dir[] = "/tmp/nxmaskXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    bool found = true;
    CHECK(nx_hf_load_mask(dir, &c, back, &found, &e) == NX_OK && !found); /* none: all kept */
    CHECK(nx_hf_save_mask(dir, &c, mask, &e) == NX_OK);
    CHECK(nx_hf_load_mask(dir, &c, back, &found, &e) == NX_OK && found);
    /* padding bytes between tensors are 1 in both */
    CHECK(memcmp(mask, back, m.nparams) == 0);
    nx_model_config other = c;
    other.F = 40;
    uint8_t *big = malloc(nx_model_numel(&other));
    CHECKF(nx_hf_load_mask(dir, &other, big, &found, &e) == NX_ERR && strstr(e.msg, "another shape"), "%s", e.msg);
    other = c, other.L = 2;
    CHECKF(nx_hf_load_mask(dir, &other, big, &found, &e) == NX_ERR && strstr(e.msg, "masks no weight"), "%s", e.msg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    free(mask), free(back), free(big);
    nx_model_free(&m);
}
