/* quantize.c — the quantizer's policy (quantize.h): which type each matrix
 * group gets, what calibration measures, and the pipeline from a model
 * directory to a quantized one.
 *
 * Steps, for a source model held in f32 on the CPU:
 *   1. the recipe's base type per group (Q4_K groups whose rows cannot
 *      hold super-blocks of 256 fall back to IQ4_NL, reported);
 *   2. with calibration tokens, one forward of the source over the
 *      windows, summing each group's inputs: E[x_c²] per column (the
 *      importance the block searches weigh errors by) and max |x| (static
 *      W8A8's activation scale);
 *   3. with calibration and a recipe or option that needs it, each group's
 *      sensitivity: that group alone quantized (its weights dequantized
 *      into a working f32 copy), mean KL(source ‖ copy) over the
 *      calibration windows against the source's logits computed once;
 *   4. the final types (the N most sensitive kept at F16/BF16; q4_k_m's
 *      upgrades up the ladder 4-bit → Q5_0 → Q8_0 within the size
 *      budget), then each group quantized into the output model.
 * Embeddings have no input activations: their blocks are searched with
 * uniform weights when calibrating (least squares instead of rounding). */
#include "nexus/quantize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/blocks.h"
#include "nexus/dataset.h"
#include "nexus/hf.h"
#include "nexus/qstore.h"
#include "nexus/tokenizer.h"

typedef enum { R_Q8_0, R_Q4_0, R_Q4_K_M, R_W8A8, R_W8A8_STATIC, R_COUNT } recipe;
static const char *RECIPES[R_COUNT] = {"q8_0", "q4_0", "q4_k_m", "w8a8", "w8a8-static"};

static void progress(const nx_quantize_opts *o, const char *what, int i, int n) {
    if (!o->progress) return;
    fprintf(stderr, "\r quantize: %s %d/%d   ", what, i, n);
    if (i == n) fputc('\n', stderr);
    fflush(stderr);
}

/* "layers.3.mlp.down_proj" etc. for reports */
static void group_name(const nx_model_config *c, int g, char *buf, size_t n) {
    static const char *K[4] = {"self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"};
    if (g == 0) snprintf(buf, n, "embed_tokens");
    else if (g == 4 * c->L + 1) snprintf(buf, n, "lm_head");
    else snprintf(buf, n, "layers.%d.%s", (g - 1) / 4, K[(g - 1) % 4]);
}

/* The group's matrix in a model: its data and shape (stacked groups as one). */
static nx_weight group_weight(const nx_model *m, int g) {
    const nx_model_config *c = &m->cfg;
    if (g == 0) return m->w.wte;
    if (g == 4 * c->L + 1) return m->w.head;
    const nx_layer_weights *w = &m->w.layer[(g - 1) / 4];
    switch ((g - 1) % 4) {
    case NX_GROUP_QKV: return w->qkv;
    case NX_GROUP_O: return w->o;
    case NX_GROUP_GU: return w->gu;
    default: return w->down;
    }
}

/* ---- calibration: inputs of every group ---- */

typedef struct calib {
    float **imp;   /* [ngroups] (cols) E[x_c²], NULL for the embeddings */
    float *amax;   /* [ngroups] max |x| */
} calib;

static void calib_free(calib *cs, int ng) {
    if (cs->imp)
        for (int g = 0; g < ng; g++) free(cs->imp[g]);
    free(cs->imp), free(cs->amax);
    memset(cs, 0, sizeof *cs);
}

static void accumulate(float *imp, float *amax, const float *x, int N, int cols) {
    float m = *amax;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < cols; c++) {
            float v = x[(size_t)n * cols + c];
            imp[c] += v * v;
            m = fmaxf(m, fabsf(v));
        }
    *amax = m;
}

static int collect(const nx_model *src, nx_tokens toks, int T, int nwin, calib *cs, const nx_quantize_opts *o,
                   nx_err *err) {
    const nx_model_config *c = &src->cfg;
    int ng = nx_model_ngroups(c), B = nwin < 4 ? nwin : 4, Q = c->NH * c->HS;
    cs->imp = nx_xcalloc(ng, sizeof *cs->imp);
    cs->amax = nx_xcalloc(ng, sizeof *cs->amax);
    for (int g = 1; g < ng; g++) {
        int rows, cols;
        nx_model_group_shape(c, g, &rows, &cols);
        cs->imp[g] = nx_xcalloc(cols, sizeof(float));
    }
    nx_acts a;
    if (nx_acts_init(&a, src, B, T, NX_ACTS_TRAIN | NX_ACTS_F32, err)) return NX_ERR; /* read as f32 below */
    int32_t *ids = nx_xmalloc(sizeof(int32_t) * B * T);
    size_t R = (size_t)a.rows;
    for (int w0 = 0; w0 < nwin; w0 += B) {
        int b = nwin - w0 < B ? nwin - w0 : B, N = b * T;
        for (int i = 0; i < N; i++) ids[i] = nx_tokens_at(toks, (uint64_t)w0 * T + i);
        nx_model_forward(src, &a, ids, b, T, false);
        nx_backend_sync(src->be);
        for (int l = 0; l < c->L; l++) {
            int g = 1 + 4 * l;
            accumulate(cs->imp[g + NX_GROUP_QKV], &cs->amax[g + NX_GROUP_QKV], (const float *)a.ln1 + l * R * c->C, N, c->C);
            accumulate(cs->imp[g + NX_GROUP_O], &cs->amax[g + NX_GROUP_O], a.att + l * R * Q, N, Q);
            accumulate(cs->imp[g + NX_GROUP_GU], &cs->amax[g + NX_GROUP_GU], (const float *)a.ln2 + l * R * c->C, N, c->C);
            accumulate(cs->imp[g + NX_GROUP_DOWN], &cs->amax[g + NX_GROUP_DOWN], (const float *)a.h + l * R * c->F, N, c->F);
        }
        if (!c->tied) accumulate(cs->imp[ng - 1], &cs->amax[ng - 1], a.lnf, N, c->C);
        progress(o, "calibration windows", w0 + b, nwin);
    }
    double rows = (double)nwin * T;
    for (int g = 1; g < ng; g++) {
        int r, cols;
        nx_model_group_shape(c, g, &r, &cols);
        for (int i = 0; i < cols; i++) cs->imp[g][i] = (float)(cs->imp[g][i] / rows) + 1e-10f;
    }
    if (c->tied) { /* the head's inputs weigh the shared matrix; lnf was not summed separately */
        free(cs->imp[ng - 1]);
        cs->imp[ng - 1] = NULL;
    }
    free(ids);
    nx_acts_free(&a);
    return NX_OK;
}

/* Quantizes group g of src (f32) to type t into dst (rows × row_bytes). */
static void quant_group(const nx_model *src, int g, nx_dtype t, const calib *cs, void *dst) {
    nx_weight w = group_weight(src, g);
    int64_t n = (int64_t)w.rows * w.cols;
    const float *imp = cs && cs->imp ? cs->imp[g] : NULL;
    float *ones = NULL;
    if (cs && cs->imp && !imp) { /* embeddings (and a tied head): least squares with equal weights */
        ones = nx_xmalloc(sizeof(float) * w.cols);
        for (int i = 0; i < w.cols; i++) ones[i] = 1;
        imp = ones;
    }
    if (nx_type(t)->block > 1) nx_quantize_weighted(t, dst, w.data, n, w.cols, imp);
    else nx_convert(dst, t, w.data, NX_F32, n);
    free(ones);
}

/* ---- sensitivity: KL of each group alone ---- */

static int sensitivity(const nx_model *src, nx_tokens toks, int T, int nwin, const nx_group_type *base,
                       const calib *cs, double *kl, const nx_quantize_opts *o, nx_err *err) {
    const nx_model_config *c = &src->cfg;
    int ng = nx_model_ngroups(c), V = c->V, B = nwin < 4 ? nwin : 4;
    nx_model work;
    nx_acts a = {0};
    if (nx_model_init(&work, c, err)) return NX_ERR;
    memcpy(work.params, src->params, sizeof(float) * src->nparams);
    int rc = NX_ERR;
    size_t per = (size_t)B * T * V;
    int nb = (nwin + B - 1) / B;
    float *tlog = NULL;
    int32_t *ids = nx_xmalloc(sizeof(int32_t) * B * T), *tg = nx_xmalloc(sizeof(int32_t) * B * T);
    double *sum = NULL;
    int32_t *tgd = NULL;
    if (nx_acts_init(&a, &work, B, T, NX_ACTS_INFER, err)) goto done;
    if (!(tlog = nx_backend_alloc(src->be, sizeof(float) * per * nb, "the source's calibration logits", err)) ||
        !(sum = nx_backend_alloc(src->be, sizeof(double), "a KL sum", err)) ||
        !(tgd = nx_backend_alloc(src->be, sizeof(int32_t) * B * T, "calibration targets", err)))
        goto done;
    for (int k = 0; k < nb; k++) {
        int b = nwin - k * B < B ? nwin - k * B : B;
        for (int i = 0; i < b * T; i++) ids[i] = nx_tokens_at(toks, ((uint64_t)k * B) * T + i);
        nx_model_forward(&work, &a, ids, b, T, true);
        nx_backend_copy(src->be, tlog + per * k, a.logits, sizeof(float) * b * T * V);
    }
    for (int g = 0; g < ng; g++) {
        kl[g] = NAN;
        if (c->tied && g == ng - 1) continue;
        nx_weight w = group_weight(&work, g);
        size_t n = (size_t)w.rows * w.cols;
        float *keep = nx_xmalloc(sizeof(float) * n);
        void *q = nx_xmalloc(nx_row_bytes(base[g].type, (int64_t)n));
        memcpy(keep, w.data, sizeof(float) * n);
        quant_group(src, g, base[g].type, cs, q);
        nx_convert(w.data, NX_F32, q, base[g].type, (int64_t)n);
        double s = 0;
        int64_t cnt = 0;
        for (int k = 0; k < nb; k++) {
            int b = nwin - k * B < B ? nwin - k * B : B, N = b * T;
            for (int i = 0; i < N; i++) {
                ids[i] = nx_tokens_at(toks, ((uint64_t)k * B) * T + i);
                tg[i] = i % T == T - 1 ? -1 : 0; /* every position but the last counts */
            }
            nx_model_forward(&work, &a, ids, b, T, true);
            nx_backend_upload(src->be, tgd, tg, sizeof(int32_t) * N); /* ≥ 0 marks a row that counts */
            nx_kd_loss(src->be, sum, NX_KD_FORWARD_KL, 1.0f, NULL, 0, a.logits, tlog + per * k, tgd, N, V);
            double v;
            nx_backend_download(src->be, &v, sum, sizeof v);
            s += v * b * (T - 1);
            cnt += (int64_t)b * (T - 1);
        }
        kl[g] = s / cnt;
        memcpy(w.data, keep, sizeof(float) * n);
        free(keep), free(q);
        progress(o, "sensitivity of matrix groups", g + 1, ng);
    }
    rc = NX_OK;
done:
    nx_backend_free(src->be, tlog);
    nx_backend_free(src->be, sum);
    nx_backend_free(src->be, tgd);
    nx_acts_free(&a);
    nx_model_free(&work);
    free(ids), free(tg);
    return rc;
}

/* ---- policy ---- */

static int recipe_of(const char *s) {
    for (int r = 0; r < R_COUNT; r++)
        if (s && !strcmp(s, RECIPES[r])) return r;
    return -1;
}

static nx_dtype base_type(recipe r, const nx_model_config *c, int g, bool *fallback) {
    int rows, cols;
    nx_model_group_shape(c, g, &rows, &cols);
    bool head = g == 4 * c->L + 1;
    *fallback = false;
    switch (r) {
    case R_Q4_0: return head ? NX_Q8_0 : NX_Q4_0;
    case R_Q4_K_M:
        if (head) return NX_Q8_0;
        if (cols % NX_QK_K == 0) return NX_Q4_K;
        *fallback = true;
        return NX_IQ4_NL;
    default: return NX_Q8_0;
    }
}

void nx_quantize_report_free(nx_quantize_report *r) {
    free(r->chosen), free(r->kl), free(r->fallback);
    memset(r, 0, sizeof *r);
}

static double gbytes(const nx_model_config *c, int g, nx_dtype t) {
    int rows, cols;
    nx_model_group_shape(c, g, &rows, &cols);
    return (double)rows * (double)nx_row_bytes(t, cols);
}

/* Importance-weighted squared error Σ imp·(w − ŵ)² of group g quantized
 * as t (uniform weights for the embeddings): how a group's output error,
 * and so its KL, scales from one type to another. */
static double group_err(const nx_model *src, int g, nx_dtype t, const calib *cs) {
    nx_weight w = group_weight(src, g);
    int64_t n = (int64_t)w.rows * w.cols;
    void *q = nx_xmalloc(nx_row_bytes(t, n));
    float *y = nx_xmalloc(sizeof(float) * (size_t)n);
    quant_group(src, g, t, cs, q);
    nx_type(t)->to_f32(y, q, n);
    const float *x = w.data, *imp = cs->imp ? cs->imp[g] : NULL;
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = (double)x[i] - y[i];
        e += (imp ? imp[i % w.cols] : 1.0) * r * r;
    }
    free(q), free(y);
    return e;
}

/* The mixed 4-bit models: each group still at its 4-bit base type may move
 * up a ladder base → Q5_0 → Q8_0. A step's KL is estimated as the group's
 * measured KL (at base) times the ratio of its weighted errors, and steps
 * are taken greedily, the largest KL drop per extra byte first, while the
 * total stays within max_mib (0: an eighth of the way from the current
 * size to all-Q8_0). */
enum { LADDER = 3 };
static void upgrade(const nx_model *src, const calib *cs, const nx_group_type *base, const double *kl,
                    nx_group_type *chosen, double max_mib, const nx_quantize_opts *o) {
    const nx_model_config *c = &src->cfg;
    int ng = nx_model_ngroups(c);
    double size = 0, all8 = 0;
    for (int g = 0; g < ng; g++) {
        if (c->tied && g == ng - 1) continue;
        size += gbytes(c, g, chosen[g].type);
        all8 += gbytes(c, g, NX_Q8_0);
    }
    /* with max_mib the norms, biases and alignment count too */
    double budget = max_mib > 0 ? max_mib * 1048576.0 - ((double)nx_model_size_typed(c, chosen) - size)
                                : size + (all8 - size) / 8;
    double (*est)[LADDER] = nx_xcalloc((size_t)ng, sizeof *est);
    nx_dtype (*step)[LADDER] = nx_xcalloc((size_t)ng, sizeof *step);
    int *at = nx_xcalloc((size_t)ng, sizeof *at);
    bool *cand = nx_xcalloc((size_t)ng, sizeof *cand);
    for (int g = 0; g < ng; g++) {
        if ((c->tied && g == ng - 1) || isnan(kl[g]) || chosen[g].type != base[g].type || base[g].type == NX_Q8_0)
            continue;
        cand[g] = true;
        step[g][0] = base[g].type, step[g][1] = NX_Q5_0, step[g][2] = NX_Q8_0;
        double e0 = group_err(src, g, base[g].type, cs);
        est[g][0] = kl[g];
        for (int k = 1; k < LADDER; k++)
            est[g][k] = e0 > 0 ? kl[g] * group_err(src, g, step[g][k], cs) / e0 : 0;
        progress(o, "ladder errors", g + 1, ng);
    }
    for (;;) { /* the best step that fits: from a group's rung to any higher one */
        int bg = -1, bk = 0;
        double best = 0;
        for (int g = 0; g < ng; g++) {
            if (!cand[g]) continue;
            for (int k = at[g] + 1; k < LADDER; k++) {
                double extra = gbytes(c, g, step[g][k]) - gbytes(c, g, step[g][at[g]]);
                double gain = (est[g][at[g]] - est[g][k]) / extra;
                if (extra > 0 && size + extra <= budget && gain > best) best = gain, bg = g, bk = k;
            }
        }
        if (bg < 0) break;
        size += gbytes(c, bg, step[bg][bk]) - gbytes(c, bg, step[bg][at[bg]]);
        at[bg] = bk;
        chosen[bg].type = step[bg][bk];
    }
    free(est), free(step), free(at), free(cand);
}

static int by_kl_desc(const void *a, const void *b, void *ctx) {
    const double *kl = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    double x = isnan(kl[i]) ? -1 : kl[i], y = isnan(kl[j]) ? -1 : kl[j];
    return x < y ? 1 : x > y ? -1 : i - j;
}

int nx_quantize_model(const nx_model *src, nx_tokens toks, const nx_quantize_opts *o, nx_model *out,
                      nx_quantize_report *rep, nx_err *err) {
    memset(out, 0, sizeof *out);
    const nx_model_config *c = &src->cfg;
    int r = recipe_of(o->type);
    if (r < 0)
        return nx_fail(err, "unknown quantization type '%s' (supported: q8_0, q4_0, q4_k_m, w8a8, w8a8-static)",
                       o->type ? o->type : "");
    if (!src->params || !src->be->host_memory)
        return nx_fail(err, "the source model must be held in f32 on the CPU to be quantized");
    int T = o->calib_seq > 0 ? o->calib_seq : 256, nwin = o->calib_windows > 0 ? o->calib_windows : 32;
    if (T > c->max_pos) T = c->max_pos;
    bool have = toks.n > 0;
    if (have) {
        if ((int64_t)(toks.n / (uint64_t)T) < 1)
            return nx_fail(err, "the calibration data holds %llu tokens: fewer than one window of %d",
                           (unsigned long long)toks.n, T);
        if ((uint64_t)nwin * T > toks.n) nwin = (int)(toks.n / (uint64_t)T);
        for (uint64_t i = 0; i < (uint64_t)nwin * T; i++)
            if (nx_tokens_at(toks, i) < 0 || nx_tokens_at(toks, i) >= c->V)
                return nx_fail(err, "calibration token %llu has id %d, outside the model's vocabulary of %d: the "
                                    "tokenizer does not match the model", (unsigned long long)i, nx_tokens_at(toks, i), c->V);
    }
    if (r == R_W8A8_STATIC && !have)
        return nx_fail(err, "w8a8-static needs calibration data (--calib) to fix the activation scales");
    if (o->keep_sensitive > 0 && !have)
        return nx_fail(err, "--keep-sensitive measures each matrix's KL on calibration data: give --calib");
    nx_dtype keep = o->keep_dtype == NX_BF16 ? NX_BF16 : NX_F16;
    int ng = nx_model_ngroups(c);
    nx_quantize_report R = {.ngroups = ng};
    R.chosen = nx_xcalloc(ng, sizeof *R.chosen);
    R.fallback = nx_xcalloc(ng, sizeof *R.fallback);
    nx_group_type *base = nx_xcalloc(ng, sizeof *base);
    for (int g = 0; g < ng; g++) {
        base[g] = (nx_group_type){base_type((recipe)r, c, g, &R.fallback[g]), NX_ACT_BLOCK, 0};
        if (c->tied && g == ng - 1) R.fallback[g] = false, base[g] = base[0];
        R.nfallback += R.fallback[g];
        if (r == R_W8A8) base[g].act = NX_ACT_ROW;
    }
    calib cs = {0};
    int rc = NX_ERR;
    if (have && collect(src, toks, T, nwin, &cs, o, err)) goto done;
    if (r == R_W8A8_STATIC)
        for (int g = 1; g < ng; g++) base[g].act = NX_ACT_STATIC, base[g].act_scale = cs.amax[g] > 0 ? cs.amax[g] : 1;
    memcpy(R.chosen, base, sizeof *base * ng);
    if (o->max_mib > 0 && !have)
        return nx_fail(err, "--max-mib chooses groups by their KL measured on calibration data: give --calib");
    if (have && (o->keep_sensitive > 0 || r == R_Q4_K_M || (r == R_Q4_0 && o->max_mib > 0))) {
        R.kl = nx_xcalloc(ng, sizeof *R.kl);
        int sw = nwin < 8 ? nwin : 8; /* windows for the KL of each group */
        if (sensitivity(src, toks, T, sw, base, &cs, R.kl, o, err)) goto done;
        int *order = nx_xmalloc(sizeof(int) * ng);
        for (int g = 0; g < ng; g++) order[g] = g;
        qsort_r(order, ng, sizeof *order, by_kl_desc, R.kl);
        int kept = 0, k = 0;
        for (; k < ng && kept < o->keep_sensitive; k++) {
            if (isnan(R.kl[order[k]])) continue;
            R.chosen[order[k]] = (nx_group_type){keep, NX_ACT_BLOCK, 0};
            kept++;
        }
        if (r == R_Q4_K_M || (r == R_Q4_0 && o->max_mib > 0)) upgrade(src, &cs, base, R.kl, R.chosen, o->max_mib, o);
        free(order);
    }
    if (c->tied) R.chosen[ng - 1] = R.chosen[0];
    R.nfallback = 0;
    for (int g = 0; g < ng; g++) R.nfallback += R.fallback[g] && R.chosen[g].type == NX_IQ4_NL;
    if (nx_model_init_typed(out, c, R.chosen, nx_backend_cpu(), err)) goto done;
    for (int i = 0; i < out->ntab; i++) /* norms and biases as they are */
        if (nx_model_group(c, out->tab[i].name) < 0) nx_model_set(out, i, nx_param_f32(&src->tab[i], src->data), NX_F32);
    for (int g = 0; g < ng; g++) {
        if (c->tied && g == ng - 1) continue;
        nx_weight w = group_weight(out, g);
        quant_group(src, g, R.chosen[g].type, have ? &cs : NULL, w.data);
        progress(o, "quantizing matrix groups", g + 1, ng - (c->tied ? 1 : 0));
    }
    R.src_bytes = (double)nx_model_size(c, NX_F32);
    R.out_bytes = (double)out->nbytes;
    snprintf(R.method, sizeof R.method, "%s%s%s", have ? "imatrix" : "rtn",
             r == R_W8A8 ? "+w8a8-dynamic" : r == R_W8A8_STATIC ? "+w8a8-static" : "",
             R.kl ? "+kl-mixed" : "");
    if (have) {
        uint64_t h = NX_FNV_INIT;
        for (uint64_t i = 0; i < (uint64_t)nwin * T; i++) {
            int32_t id = nx_tokens_at(toks, i);
            h = nx_fnv1a(&id, sizeof id, h);
        }
        snprintf(R.calib_hash, sizeof R.calib_hash, "%016llx", (unsigned long long)h);
        R.calib_tokens = (long long)nwin * T;
    }
    rc = NX_OK;
done:
    calib_free(&cs, ng);
    free(base);
    if (rc) {
        nx_model_free(out);
        nx_quantize_report_free(&R);
    } else if (rep) {
        *rep = R;
    } else {
        nx_quantize_report_free(&R);
    }
    return rc;
}

/* ---- the command ---- */

static char *report_json(const nx_model_config *c, const nx_quantize_report *r) {
    char *s = nx_xmalloc(256 + 200 * (size_t)r->ngroups), name[64];
    size_t n = 0, cap = 256 + 200 * (size_t)r->ngroups;
    n += snprintf(s + n, cap - n, "{\"fallbacks\": %d, \"bytes\": %.0f, \"source_f32_bytes\": %.0f, \"groups\": [",
                  r->nfallback, r->out_bytes, r->src_bytes);
    for (int g = 0; g < r->ngroups; g++) {
        if (c->tied && g == r->ngroups - 1) continue;
        group_name(c, g, name, sizeof name);
        n += snprintf(s + n, cap - n, "%s{\"group\": \"%s\", \"type\": \"%s\"", g ? ", " : "", name,
                      nx_dtype_name(r->chosen[g].type));
        if (r->kl && !isnan(r->kl[g])) n += snprintf(s + n, cap - n, ", \"kl_alone\": %.6g", r->kl[g]);
        int rows, cols;
        nx_model_group_shape(c, g, &rows, &cols);
        if (r->fallback[g] && r->chosen[g].type == NX_IQ4_NL)
            n += snprintf(s + n, cap - n, ", \"fallback\": \"IQ4_NL: rows of %d are not a multiple of 256\"", cols);
        n += snprintf(s + n, cap - n, "}");
    }
    snprintf(s + n, cap - n, "]}");
    return s;
}

int nx_quantize_dir(const char *src, const char *out, const nx_quantize_opts *o, nx_quantize_report *rep,
                    nx_err *err) {
    nx_model m, q;
    nx_tokenizer *tok = NULL;
    nx_token_stream ts = {0};
    nx_quantize_report R = {0};
    int rc = NX_ERR;
    if (nx_qstore_is(src))
        return nx_fail(err, "%s is already quantized: quantize the f32/bf16 model it came from", src);
    if (nx_hf_load_model(src, &m, err)) return NX_ERR;
    if (o->calib) {
        if (nx_tokenizer_load(&tok, src, err)) goto done;
        int32_t eos = nx_tokenizer_eos_id(tok);
        nx_docs_opts d = {.field = NULL, .eos_id = eos >= 0 ? eos : m.cfg.eos_id, .threads = o->threads};
        if (nx_dataset_tokenize(tok, &o->calib, 1, &d, &ts, NULL, err)) goto done;
    }
    nx_tokens toks = o->calib ? nx_stream_tokens(&ts) : (nx_tokens){NULL, 4, 0};
    if (o->calib && toks.n == 0) {
        nx_fail(err, "%s: no tokens in the calibration data", o->calib);
        goto done;
    }
    if (nx_quantize_model(&m, toks, o, &q, &R, err)) goto done;
    nx_quant_meta meta = {.keep_sensitive = o->keep_sensitive, .calib_tokens = R.calib_tokens};
    snprintf(meta.type, sizeof meta.type, "%s", o->type);
    snprintf(meta.method, sizeof meta.method, "%s", R.method);
    snprintf(meta.source, sizeof meta.source, "%s", src);
    if (o->calib) {
        snprintf(meta.calib_file, sizeof meta.calib_file, "%s", o->calib);
        snprintf(meta.calib_hash, sizeof meta.calib_hash, "%s", R.calib_hash);
    }
    meta.report = report_json(&m.cfg, &R);
    rc = nx_qstore_save(out, &q, &meta, src, err);
    free(meta.report);
    nx_model_free(&q);
done:
    nx_model_free(&m);
    nx_token_stream_free(&ts);
    nx_tokenizer_free(tok);
    if (rc == NX_OK && rep) *rep = R;
    else nx_quantize_report_free(&R);
    return rc;
}
